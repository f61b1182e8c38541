"""The chunk-store contract: one test class every backend subclasses (Haystack's
``DocumentStoreBaseTests`` pattern).

A backend's test module does::

    from store_conformance import ChunkStoreTests

    class TestMyStore(ChunkStoreTests):
        @pytest.fixture
        def url(self, tmp_path):
            return "mystore://...#conformance"

and every test below runs against it: write/replace in one transaction, deletes,
re-ingest, BM25 scores against a reference implementation of the formula, dense results
against exact cosine, filters (pre-filter: ``k`` results whenever ``k`` match) against
:meth:`SearchFilter.matches`, doc_freqs, meta, check, and concurrency (two processes
writing one path end as one document; readers never see half a document; a writer killed
with SIGKILL leaves no partial document).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from knowbase.config import Settings
from knowbase.errors import UserError
from knowbase.knowledge.bm25 import query_tokens, tokenize
from knowbase.knowledge.stores import ChunkStore, SearchFilter, locate
from knowbase.knowledge.types import Chunk, DocumentRow
from knowbase.models.fake import FakeEmbedder

DIM = 32
_EMB = FakeEmbedder(DIM)


def embed(texts: Sequence[str]) -> np.ndarray:
    """Deterministic L2-normalised float32 ``(len(texts), DIM)`` vectors (the fake hash embedder)."""
    vecs = np.asarray(_EMB.encode(list(texts)), dtype=np.float32).reshape(len(texts), DIM)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms > 0, norms, 1.0)


def doc(path: str, texts: Sequence[str], *, metadata: dict | None = None, language: str | None = "en",
        kind: str = "file", sha: str = "h") -> tuple[DocumentRow, list[Chunk], list[list[str]], np.ndarray]:
    """One ``write_document`` argument tuple for ``texts`` as consecutive chunks of ``path``."""
    chunks, at = [], 0
    for i, t in enumerate(texts):
        chunks.append(Chunk(text=t, start=at, end=at + len(t), index=i, section=("S", str(i)), page=None, tokens=3))
        at += len(t) + 1
    row = DocumentRow(0, path, sha, size=at, mtime=1_700_000_000.0, title=path.rsplit("/", 1)[-1],
                      language=language, metadata=dict(metadata or {}), kind=kind)
    return row, chunks, [tokenize(t) for t in texts], embed(texts)


def reference_bm25(corpus: dict[int, list[str]], query: Sequence[str]) -> dict[int, float]:
    """BM25 as the contract states it (FTS5's ``bm25()``: k1=1.2, b=0.75, IDF floored at 1e-6)."""
    n = len(corpus)
    avgdl = sum(len(t) for t in corpus.values()) / n
    tfs = {cid: Counter(t) for cid, t in corpus.items()}
    out: dict[int, float] = {}
    for term in dict.fromkeys(query):
        df = sum(1 for c in tfs.values() if term in c)
        if not df:
            continue
        idf = math.log((n - df + 0.5) / (df + 0.5))
        idf = idf if idf > 0 else 1e-6
        for cid, c in tfs.items():
            if term in c:
                tf = c[term]
                out[cid] = out.get(cid, 0.0) + idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(corpus[cid]) / avgdl))
    return out


TEAMS = {"a.md": ("infra", 2022, "en"), "b.md": ("infra", 2024, "en"), "c.pdf": ("web", 2023, "en"),
         "d.txt": ("web", 2025, "en"), "e.md": ("data", 2024, "zh")}


class ChunkStoreTests:
    """The contract. Subclasses provide the ``url`` fixture (a new, empty knowledge base)."""

    @pytest.fixture
    def url(self, tmp_path) -> str:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def open(self, url: str, *, create: bool = False) -> ChunkStore:
        backend, loc = locate(url, Settings.load())
        return backend.open(loc, create=create)

    @pytest.fixture
    def store(self, url: str) -> Iterator[ChunkStore]:
        st = self.open(url, create=True)
        yield st
        st.close()

    @pytest.fixture
    def teams(self, store: ChunkStore) -> ChunkStore:
        """Five documents with team/year metadata, tags and two chunks each."""
        for name, (team, year, lang) in TEAMS.items():
            texts = [f"The {team} team runs pods and nodes in {year}.", f"Document {name} tells about {team} storage."]
            if lang == "zh":
                texts = ["数据团队管理存储和节点。", "Pod 是最小的可部署的计算单元。"]
            store.write_document(*doc(f"/kb/{name}", texts, language=lang,
                                      metadata={"team": team, "year": year, "tags": [team, "all"],
                                                "date": f"{year}-06-01"}))
        return store

    # --- writes -------------------------------------------------------------------------
    def test_is_a_chunk_store(self, store: ChunkStore) -> None:
        assert isinstance(store, ChunkStore)
        assert store.counts()["documents"] == 0 and store.check().ok

    def test_write_then_read_back(self, store: ChunkStore) -> None:
        row, chunks, toks, vecs = doc("/kb/x.md", ["alpha beta", "gamma delta", "epsilon"], metadata={"team": "x"})
        doc_id = store.write_document(row, chunks, toks, vecs)
        got = store.document("/kb/x.md")
        assert got is not None and got.id == doc_id and store.document(doc_id) == got
        assert (got.chunks, got.sha256, got.title, got.language, got.metadata, got.kind) == (
            3, "h", "x.md", "en", {"team": "x"}, "file")
        assert got.added > 0 and got.updated >= got.added
        stored = store.document_chunks(doc_id)
        assert [c.text for c in stored] == ["alpha beta", "gamma delta", "epsilon"]
        assert [(c.index, c.start, c.end, c.section, c.path, c.doc_id) for c in stored] == [
            (i, ch.start, ch.end, ch.section, "/kb/x.md", doc_id) for i, ch in enumerate(chunks)]
        ids = [c.chunk_id for c in stored]
        assert store.chunks(ids) == {c.chunk_id: c for c in stored}
        got_vecs = store.vectors(ids)
        for i, cid in enumerate(ids):
            np.testing.assert_allclose(got_vecs[cid], vecs[i], rtol=1e-6)
        assert len(set(store.norms(ids).values())) == 3
        assert store.dim == DIM
        c = store.counts()
        assert (c["documents"], c["chunks"], c["vectors"]) == (1, 3, 3) and c["bytes"] >= 0
        assert store.chunks([10**9]) == {} and store.document("/nope") is None and store.document(10**9) is None

    def test_rewrite_replaces_the_document_in_place(self, store: ChunkStore) -> None:
        first = store.write_document(*doc("/kb/x.md", ["old walrus text", "more walrus"]))
        second = store.write_document(*doc("/kb/x.md", ["new narwhal text"], sha="h2"))
        assert first == second
        assert [d.path for d in store.documents()] == ["/kb/x.md"]
        assert store.document(first).sha256 == "h2" and store.document(first).chunks == 1
        assert store.bm25_search(["walrus"], 5) == []
        assert [store.chunks([c])[c].text for c, _ in store.bm25_search(["narwhal"], 5)] == ["new narwhal text"]
        report = store.check()
        assert report.ok, report.problems
        assert (report.documents, report.chunks, report.vectors) == (1, 1, 1)

    def test_a_failed_write_changes_nothing(self, store: ChunkStore) -> None:
        store.write_document(*doc("/kb/keep.md", ["kept text"]))
        good = doc("/kb/new.md", ["fresh text"])
        bad_row, bad_chunks, bad_toks, bad_vecs = doc("/kb/bad.md", ["x", "y"])
        with pytest.raises(ValueError):
            store.write_document(bad_row, bad_chunks, bad_toks[:1], bad_vecs)
        with pytest.raises(UserError):  # vectors of another width than the store's
            store.write_documents([good, (bad_row, bad_chunks, bad_toks, np.ones((2, DIM + 1), np.float32))])
        broken = Chunk(text=None, start=0, end=1)  # type: ignore[arg-type]
        with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises, the transaction rolls back
            store.write_documents([good, (bad_row, [broken], [["x"]], embed(["x"]))])
        assert [d.path for d in store.documents()] == ["/kb/keep.md"]
        assert store.check().ok

    def test_write_documents_returns_ids_in_order(self, store: ChunkStore) -> None:
        ids = store.write_documents([doc(f"/kb/{i}.md", [f"text number {i}"]) for i in range(5)])
        assert [store.document(i).path for i in ids] == [f"/kb/{i}.md" for i in range(5)]
        assert [d.path for d in store.documents()] == sorted(f"/kb/{i}.md" for i in range(5))

    def test_delete(self, store: ChunkStore) -> None:
        keep = store.write_document(*doc("/kb/a.md", ["walrus on ice"]))
        gone = store.write_document(*doc("/kb/b.md", ["walrus in water", "second walrus"]))
        assert store.delete_document(gone) is True
        assert store.delete_document(gone) is False
        assert store.document(gone) is None and store.document_chunks(gone) == []
        hits = store.bm25_search(["walrus"], 10)
        assert [store.chunks([c])[c].doc_id for c, _ in hits] == [keep]
        assert [store.chunks([c])[c].doc_id for c, _ in store.dense_search(embed(["walrus in water"])[0], 10)] == [keep]
        assert store.doc_freqs(["walrus"]) == (1, {"walrus": 1})
        report = store.check()
        assert report.ok and (report.documents, report.chunks, report.vectors) == (1, 1, 1)

    def test_documents_by_kind_and_meta(self, store: ChunkStore) -> None:
        store.write_document(*doc("/kb/a.md", ["file text"]))
        store.write_document(*doc("memory:1", ["remembered text"], kind="memory"))
        assert [d.path for d in store.documents(kind="memory")] == ["memory:1"]
        assert [d.path for d in store.documents(kind="file")] == ["/kb/a.md"]
        store.set_meta(embedder="fake:hash-32", threshold=0.5)
        again = store.meta()
        assert again["embedder"] == "fake:hash-32" and again["threshold"] == "0.5"

    def test_reopen_sees_everything(self, store: ChunkStore, url: str) -> None:
        doc_id = store.write_document(*doc("/kb/a.md", ["persistent walrus"], metadata={"team": "infra"}))
        store.set_meta(embedder="fake:hash-32")
        store.close()
        again = self.open(url)
        try:
            assert again.document(doc_id).metadata == {"team": "infra"}
            assert again.meta()["embedder"] == "fake:hash-32" and again.dim == DIM
            assert len(again.bm25_search(["walrus"], 3)) == 1
        finally:
            again.close()

    # --- searches -----------------------------------------------------------------------
    def test_bm25_scores_follow_the_formula(self, store: ChunkStore) -> None:
        rng = np.random.default_rng(3)
        words = "pod node service volume secret scheduler kubelet ingress quota taint label".split()
        texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 12)))) for _ in range(40)]
        store.write_documents([doc(f"/kb/{i}.md", texts[i * 4:(i + 1) * 4]) for i in range(10)])
        corpus = {c.chunk_id: tokenize(c.text) for d in store.documents() for c in store.document_chunks(d.id)}
        for query in ("pod scheduler", "taint quota label", "kubelet"):
            toks = query_tokens(query)
            expected = sorted(reference_bm25(corpus, toks).items(), key=lambda cs: (-cs[1], cs[0]))[:10]
            got = store.bm25_search(toks, 10)
            assert [c for c, _ in got] == [c for c, _ in expected]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-6)

    def test_bm25_nothing_for_unknown_or_empty(self, store: ChunkStore) -> None:
        store.write_document(*doc("/kb/a.md", ["some text"]))
        assert store.bm25_search(["zzzunknown"], 5) == []
        assert store.bm25_search([], 5) == []
        assert store.bm25_search(["text"], 0) == []

    def test_dense_is_cosine_best_first(self, store: ChunkStore) -> None:
        texts = [f"chunk about topic {i} with words {i * 7}" for i in range(30)]
        store.write_documents([doc(f"/kb/{i}.md", texts[i * 3:(i + 1) * 3]) for i in range(10)])
        ids = {c.text: c.chunk_id for d in store.documents() for c in store.document_chunks(d.id)}
        query = embed(["chunk about topic 17 with words 119"])[0]
        all_vecs = embed(texts)
        exact = sorted(((ids[t], float(all_vecs[i] @ query)) for i, t in enumerate(texts)), key=lambda cs: (-cs[1], cs[0]))
        for hits in (store.dense_search(query, 5), store.dense_search(query, 5, exact=True)):
            assert hits[0][0] == ids[texts[17]] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
            np.testing.assert_allclose([s for _, s in hits], [s for _, s in exact[:5]], rtol=1e-5, atol=1e-6)
            by_id = dict(exact)
            np.testing.assert_allclose([s for _, s in hits], [by_id[c] for c, _ in hits], rtol=1e-5, atol=1e-6)

    def test_distinct_collapses_near_duplicates(self, store: ChunkStore) -> None:
        store.write_document(*doc("/kb/a.md", ["Walrus colony on the ice."]))
        store.write_document(*doc("/kb/b.md", ["walrus colony on the ice"]))
        store.write_document(*doc("/kb/c.md", ["A walrus alone."]))
        assert len(store.bm25_search(["walrus"], 10)) == 3
        distinct = store.bm25_search(["walrus"], 10, distinct=True)
        assert len(distinct) == 2
        assert len(store.dense_search(embed(["walrus colony"])[0], 10, distinct=True)) == 2

    def test_doc_freqs(self, teams: ChunkStore) -> None:
        n, dfs = teams.doc_freqs(["infra", "web", "zzz", "infra"])
        assert n == 10 and dfs == {"infra": 4, "web": 4, "zzz": 0}

    # --- filters ------------------------------------------------------------------------
    FILTERS = ("team=infra", "team in (web, data)", "year>=2024", "year>2023 and year<2025", "date>=2024-01-01",
               "team=infra or year=2025", "not team=infra", "tags=all and not tags=web", "type=md", "type in (pdf, txt)",
               "path=*/c.*", "language=zh", "kind=file", "team!=web", "(team=web or team=data) and year<=2024",
               "ingested>=2020-01-01", "year=2022, team=infra", "team=nobody")

    @pytest.mark.parametrize("text", FILTERS)
    def test_filters_match_the_reference_semantics(self, teams: ChunkStore, text: str) -> None:
        flt = SearchFilter.parse(text)
        expected = {d.path for d in teams.documents() if flt.matches(d)}
        paths = lambda hits: {teams.chunks([c])[c].path for c, _ in hits}  # noqa: E731
        bm = teams.bm25_search(["pod", "node", "storag", "team", "document", "tell", "数据", "pod"], 50, filter=flt)
        dense = teams.dense_search(embed(["team pods storage"])[0], 50, filter=flt)
        exact = teams.dense_search(embed(["team pods storage"])[0], 50, filter=flt, exact=True)
        assert paths(bm) == expected
        assert paths(dense) == expected == paths(exact)
        assert len(dense) == 2 * len(expected)

    def test_filtered_search_returns_k_when_k_match(self, store: ChunkStore) -> None:
        # 60 documents that rank higher, 6 matching ones that rank lower: a post-filter of the top k finds none
        strong = [doc(f"/kb/noise{i}.md", ["walrus walrus walrus ice", "walrus ice"], metadata={"team": "noise"})
                  for i in range(60)]
        weak = [doc(f"/kb/match{i}.md", [f"a long text with one walrus among many other words number {i}"],
                    metadata={"team": "rare"}) for i in range(6)]
        store.write_documents(strong + weak)
        flt = SearchFilter.parse("team=rare")
        bm = store.bm25_search(["walrus"], 5, filter=flt)
        assert len(bm) == 5 and all(store.chunks([c])[c].path.startswith("/kb/match") for c, _ in bm)
        dense = store.dense_search(embed(["walrus walrus walrus ice"])[0], 5, filter=flt)
        assert len(dense) == 5 and all(store.chunks([c])[c].path.startswith("/kb/match") for c, _ in dense)
        assert len(store.bm25_search(["walrus"], 10, filter=flt)) == 6

    def test_filtered_bm25_keeps_corpus_statistics(self, teams: ChunkStore) -> None:
        """A filter selects chunks; it does not change their scores (IDF over the whole knowledge base)."""
        toks = ["pod", "storag"]
        full = dict(teams.bm25_search(toks, 50))
        part = teams.bm25_search(toks, 50, filter=SearchFilter.parse("team=web"))
        assert part and all(full[c] == pytest.approx(s, rel=1e-9) for c, s in part)

    def test_metadata_keys(self, teams: ChunkStore) -> None:
        assert {"team", "year", "tags", "date"} <= teams.metadata_keys()

    # --- check and concurrency -----------------------------------------------------------
    def test_check_counts(self, teams: ChunkStore) -> None:
        report = teams.check()
        assert report.ok, report.problems
        assert (report.documents, report.chunks, report.vectors) == (5, 10, 10)

    def test_two_processes_writing_one_path_end_as_one_document(self, store: ChunkStore, url: str) -> None:
        store.write_document(*doc("/kb/seed.md", ["seed text"]))  # the schema exists before the writers start
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
            from store_conformance import doc
            from knowbase.config import Settings
            from knowbase.knowledge.stores import locate
            backend, loc = locate({url!r}, Settings.load())
            st = backend.open(loc)
            who = sys.argv[1]
            for i in range(15):
                n = 3 if (i + int(who)) % 2 else 5
                st.write_document(*doc("/kb/shared.md", [f"version {{who}}-{{i}} part {{j}}" for j in range(n)],
                                       sha=f"{{who}}-{{i}}"))
            st.close()
        """)
        procs = [subprocess.Popen([sys.executable, "-c", script, str(w)]) for w in (1, 2)]
        seen_sizes = set()
        while any(p.poll() is None for p in procs):
            row = store.document("/kb/shared.md")
            if row is not None:
                chunks = store.document_chunks(row.id)
                versions = {c.text.split(" part ")[0] for c in chunks}
                assert len(versions) <= 1, versions  # never half of one version and half of another
                seen_sizes.add(len(chunks))
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        rows = [d for d in store.documents() if d.path == "/kb/shared.md"]
        assert len(rows) == 1
        final = store.document_chunks(rows[0].id)
        assert len(final) in (3, 5) and len({c.text.split(" part ")[0] for c in final}) == 1
        assert seen_sizes <= {0, 3, 5}
        report = store.check()
        assert report.ok, report.problems
        assert report.documents == 2

    def test_a_killed_writer_leaves_no_partial_document(self, store: ChunkStore, url: str) -> None:
        store.write_document(*doc("/kb/seed.md", ["seed text"]))
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
            from store_conformance import doc
            from knowbase.config import Settings
            from knowbase.knowledge.stores import locate
            backend, loc = locate({url!r}, Settings.load())
            st = backend.open(loc)
            print("ready", flush=True)
            i = 0
            while True:  # big documents, one after another, until killed
                st.write_document(*doc(f"/kb/big{{i % 3}}.md", [f"part {{j}} of version {{i}}" for j in range(400)]))
                i += 1
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            while store.document("/kb/big1.md") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # somewhere inside a write now
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        time.sleep(0.5)  # the server notices the dropped connection
        for row in store.documents():
            chunks = store.document_chunks(row.id)
            if row.path.startswith("/kb/big"):
                assert len(chunks) == 400 and len({c.text.split(" of ")[1] for c in chunks}) == 1
        report = store.check()
        assert report.ok, report.problems
        assert report.chunks == report.vectors == 1 + 400 * (report.documents - 1)
