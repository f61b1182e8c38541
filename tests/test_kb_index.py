"""The search index beside a knowledge base: FTS5-identical BM25, dense rescoring, refresh
on writes, crash safety of the index file, the vec0 -> plain vector table migration, and
near-duplicate collapsing with many copies."""

from __future__ import annotations

import numpy as np
import pytest

from knowbase.knowledge import index as ix
from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.bm25 import fts_query, query_tokens, tokenize
from knowbase.knowledge.store import DocumentRow, KBStore
from knowbase.knowledge.types import Chunk
from knowbase.models.base import Embedder
from knowbase.models.fake import FakeEmbedder

WORDS = ("pod node deployment service volume secret configmap scheduler kubelet controller replica "
         "network policy ingress storage class quota limit taint toleration affinity label selector").split()


def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))) + f" item{i}" for i in range(n)]


@pytest.fixture
def big(tmp_path) -> KBStore:
    """A store of 600 random-word chunks in 60 documents, 32-dim random vectors."""
    store = KBStore(tmp_path / "big.db", create=True)
    rng = np.random.default_rng(1)
    texts = _corpus(600)
    items = []
    for d in range(60):
        part = texts[d * 10:(d + 1) * 10]
        vecs = rng.normal(size=(10, 32)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        chunks = [Chunk(text=t, start=0, end=len(t), index=i) for i, t in enumerate(part)]
        items.append((DocumentRow(0, f"doc{d}.txt", "x"), chunks, [tokenize(t) for t in part], vecs))
    store.write_documents(items)
    yield store
    store.close()


def _fts(store: KBStore, tokens: list[str], k: int) -> list[tuple[int, float]]:
    return [(r[0], r[1]) for r in store.conn.execute(
        "SELECT rowid, -bm25(chunks_fts) s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s DESC, rowid LIMIT ?",
        (fts_query(tokens), k))]


def _same(ours: list[tuple[int, float]], theirs: list[tuple[int, float]]) -> None:
    assert [c for c, _ in ours] == [c for c, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-9)


@pytest.mark.parametrize("query", ["pod node", "scheduler taint toleration affinity", "item17 quota", "kubelet",
                                   "pod pod label selector limit class"])
def test_index_bm25_equals_fts5(big: KBStore, query: str) -> None:
    toks = query_tokens(query)
    ours = big.bm25_search(toks, 20)
    assert len(ours) == 20
    _same(ours, _fts(big, toks, 20))


def test_index_dense_matches_exact_search(big: KBStore) -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        q = rng.normal(size=32).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = big.dense_search(q, 10, exact=True)
        # the index holds 600 rows: with candidates/rescore >= 600 it is exact
        full = big.dense_search(q, 10, candidates=600, rescore=600)
        assert [c for c, _ in full] == [c for c, _ in exact]
        np.testing.assert_allclose([s for _, s in full], [s for _, s in exact], atol=1e-5)
        # a narrow search (Hamming 200 -> int8 50 -> float32) still finds most of the top 10
        narrow = big.dense_search(q, 10, candidates=200, rescore=50)
        assert len({c for c, _ in narrow} & {c for c, _ in exact}) >= 6


def test_index_refreshes_after_writes_and_deletes(big: KBStore) -> None:
    before = big.search_index()
    assert before.generation == big.generation == 1
    assert big.bm25_search(["zebra"], 5) == []
    doc_id = big.write_document(DocumentRow(0, "new.txt", "y"), [Chunk(text="zebra crossing", start=0, end=14)],
                                [["zebra", "cross"]], np.ones((1, 32), dtype=np.float32) / np.sqrt(32))
    hits = big.bm25_search(["zebra"], 5)
    assert len(hits) == 1 and big.generation == 2 and big.search_index().n == 601
    _same(hits, _fts(big, ["zebra"], 5))
    dense = big.dense_search(np.ones(32, dtype=np.float32), 1)
    assert dense[0][0] == hits[0][0] and dense[0][1] == pytest.approx(1.0, abs=1e-5)
    gone = big.document("doc3.txt")
    big.delete_document(gone.id)
    big.delete_document(doc_id)
    assert big.search_index().n == 590
    assert big.bm25_search(["zebra"], 5) == []
    toks = query_tokens("pod node item35")
    _same(big.bm25_search(toks, 10), _fts(big, toks, 10))


def test_index_file_is_reused_and_a_damaged_one_rebuilt(big: KBStore, tmp_path) -> None:
    big.search_index()
    path = big.index_path
    assert path.exists() and path.read_bytes()[:8] == ix.MAGIC
    loaded = ix.load(path)
    assert loaded is not None and loaded.generation == big.generation and len(loaded.ids) == 600
    toks = query_tokens("service volume")
    expected = big.bm25_search(toks, 10)
    big.close()
    path.write_bytes(b"KBINDEX1" + b"\xff" * 40)  # torn or foreign file
    again = KBStore(tmp_path / "big.db")
    assert again.bm25_search(toks, 10) == expected
    assert ix.load(path) is not None  # rewritten
    path.unlink()
    assert again.bm25_search(toks, 10) == expected  # the in-memory copy still answers
    assert again.check().ok
    again.close()


def test_stale_index_file_from_before_a_write_is_refreshed(big: KBStore, tmp_path) -> None:
    big.search_index()
    stale = big.index_path.read_bytes()
    big.write_document(DocumentRow(0, "late.txt", "z"), [Chunk(text="walrus", start=0, end=6)], [["walrus"]],
                       np.ones((1, 32), dtype=np.float32) / np.sqrt(32))
    big.close()
    (tmp_path / "big.db.index").write_bytes(stale)  # as if a crash lost the index update
    again = KBStore(tmp_path / "big.db")
    assert [c for c, _ in again.bm25_search(["walrus"], 3)] == [c for c, _ in _fts(again, ["walrus"], 3)]
    assert len(again.bm25_search(["walrus"], 3)) == 1
    again.close()


def test_vec0_table_migrates_to_plain_table(tmp_path) -> None:
    from knowbase.knowledge import store as st

    path = tmp_path / "old.db"
    old = KBStore(path, create=True)
    # rebuild the pre-m002 layout: a sqlite-vec vec0 table and m002 not yet applied
    old.conn.execute("DROP TABLE IF EXISTS vec_chunks")
    old.conn.execute("DELETE FROM _migrations WHERE name = 'm002_plain_vectors'")
    old.conn.execute("CREATE VIRTUAL TABLE vec_chunks USING vec0(chunk_id INTEGER PRIMARY KEY, "
                     "embedding float[4] distance_metric=cosine)")
    old.conn.execute("INSERT INTO meta VALUES ('dim', '4')")
    old.conn.execute("INSERT INTO documents (path, sha256, added, updated) VALUES ('a', 'h', 0, 0)")
    old.conn.execute("INSERT INTO chunks (doc_id, idx, text, start, \"end\", norm) VALUES (1, 0, 'alpha', 0, 5, 'n1')")
    old.conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (1, 'alpha')")
    vec = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    old.conn.execute("INSERT INTO vec_chunks VALUES (1, ?)", (vec.tobytes(),))
    old.close()
    new = KBStore(path)
    sql = list(new.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'vec_chunks'"))[0][0]
    assert "vec0" not in sql.lower()
    np.testing.assert_array_equal(new.vectors([1])[1], vec)
    assert new.check().ok
    assert [c for c, _ in new.dense_search(vec, 1)] == [1]
    assert "m002_plain_vectors" in {r[0] for r in new.conn.execute("SELECT name FROM _migrations")}
    assert st.MIGRATIONS[-1][0] == "m002_plain_vectors"
    new.close()


def test_many_copies_still_give_k_distinct_passages() -> None:
    kb = KnowledgeBase.create("copies", embedder=Embedder(FakeEmbedder(64)))
    texts = ["Pods are scheduled onto nodes by the scheduler.", "A Service gives Pods a stable address.",
             "Volumes keep data across container restarts.", "Secrets hold passwords and tokens for Pods."]
    for copy in range(30):  # every text 30 times, under different sources
        kb.add_texts([t + " " * (copy % 3) for t in texts], source=f"copy{copy}")
    for mode in ("bm25", "dense", "hybrid"):
        hits = kb.search("Pods nodes scheduler Service address Secrets", k=3, mode=mode)
        norms = [" ".join(h.chunk.text.split()) for h in hits]
        assert len(hits) == 3 and len(set(norms)) == 3, (mode, norms)
    assert kb.check().ok
    kb.close()
