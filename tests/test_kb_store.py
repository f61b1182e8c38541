"""Store, BM25 tokenisation, retrieval and fusion, with the fake embedder."""

from __future__ import annotations

import numpy as np
import pytest

from knowbase.errors import EmbedderMismatchError, KnowledgeBaseExistsError, KnowledgeBaseNotFoundError, UserError
from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.bm25 import fts_query, tokenize
from knowbase.knowledge.retriever import Weights, default_weights, rrf
from knowbase.models.base import Embedder
from knowbase.models.fake import FakeEmbedder

TEXTS = [
    "A Pod is the smallest deployable unit of computing that you can create and manage in Kubernetes.",
    "A Deployment provides declarative updates for Pods and ReplicaSets.",
    "Services expose an application running on a set of Pods as a network service.",
    "ConfigMaps store non-confidential configuration data as key-value pairs.",
    "Pod 是可以在 Kubernetes 中创建和管理的、最小的可部署的计算单元。",
    "Secret 是一种包含少量敏感信息例如密码、令牌或密钥的对象。",
]


@pytest.fixture
def kb() -> KnowledgeBase:
    base = KnowledgeBase.create("t", embedder=Embedder(FakeEmbedder(64)))
    base.add_texts(TEXTS, metadatas=[{"title": f"t{i}"} for i in range(len(TEXTS))])
    yield base
    base.close()


def test_tokenize_english_matches_bm25s_pipeline() -> None:
    bm25s = pytest.importorskip("bm25s")
    Stemmer = pytest.importorskip("Stemmer")
    text = "The Pods are running; a Deployment's ReplicaSets were scaled to 3 replicas by the controller."
    ours = tokenize(text)
    theirs = bm25s.tokenize([text], stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False,
                            show_progress=False)[0]
    assert ours == theirs
    assert "the" not in ours and "pod" in ours


def test_tokenize_chinese_and_mixed() -> None:
    toks = tokenize("Pod 的生命周期包括 Pending 阶段")
    assert toks[0] == "pod"
    assert "生命周期" in toks and "pend" in toks
    assert "的" not in toks


def test_tokenize_without_cjk_keeps_exactly_the_latin_tokens() -> None:
    text = "静态 Pod 由 kubelet 守护进程直接管理，不需要 API server 监管。Static Pods run on nodes."
    full = tokenize(text)
    latin = tokenize(text, cjk=False)
    assert latin == [t for t in full if t.isascii()] and latin == ["pod", "kubelet", "api", "server", "static",
                                                                   "pod", "run", "node"]
    assert tokenize("Pods run", cjk=False) == tokenize("Pods run") == ["pod", "run"]


def test_fts_query_quotes_tokens() -> None:
    assert fts_query(["pod", 'a"b', "pod"]) == '"pod" OR "a""b"'
    assert fts_query([]) == ""


def test_rrf_fuses_and_weights() -> None:
    assert [i for i, _ in rrf([[1, 2, 3], [3, 1]], [1.0, 1.0])] == [1, 3, 2]
    fused = rrf([[1, 2], [2, 9]], [1.0, 0.0])
    assert [i for i, _ in fused] == [1, 2, 9]
    assert fused[0][1] == pytest.approx(1 / 61)
    assert fused[2][1] == 0.0


def test_default_weights_follow_embedder_languages() -> None:
    assert default_weights("zh", ("en",)) == Weights(1.0, 0.0)
    assert default_weights("en", ("en",)) == Weights(1.0, 1.0)
    assert default_weights("zh", None) == Weights(1.0, 1.0)


def test_create_open_list_drop(kb: KnowledgeBase) -> None:
    assert kb.embedder_spec == "fake:hash-64"
    with pytest.raises(KnowledgeBaseExistsError):
        KnowledgeBase.create("t", embedder="fake")
    infos = KnowledgeBase.list()
    assert [(i.name, i.documents, i.chunks) for i in infos] == [("t", 6, 6)]
    kb.close()
    again = KnowledgeBase.open("t")
    assert len(again.documents()) == 6
    again.close()
    KnowledgeBase.drop("t")
    with pytest.raises(KnowledgeBaseNotFoundError):
        KnowledgeBase.open("t")
    assert KnowledgeBase.list() == []


def test_invalid_name_is_user_error() -> None:
    with pytest.raises(UserError):
        KnowledgeBase.create("bad name!", embedder="fake")


def test_embedder_mismatch_is_an_error(kb: KnowledgeBase) -> None:
    kb.close()
    with pytest.raises(EmbedderMismatchError) as info:
        KnowledgeBase.open("t", embedder="fake:32")
    assert info.value.expected == "fake:hash-64" and info.value.actual == "fake:hash-32"
    with pytest.raises(EmbedderMismatchError):
        KnowledgeBase.create("t", embedder="fake:32", exist_ok=True)


def test_bm25_dense_hybrid_search(kb: KnowledgeBase) -> None:
    bm = kb.search("declarative updates for ReplicaSets", k=3, mode="bm25")
    assert bm[0].chunk.text == TEXTS[1]
    assert bm[0].bm25_rank == 1 and bm[0].score > 0
    dense = kb.search("configuration data key-value pairs", k=2, mode="dense")
    assert dense[0].chunk.text == TEXTS[3]
    assert -1.0 <= dense[0].score <= 1.0 and dense[0].dense_rank == 1
    hy = kb.search("network service Pods", k=3)
    assert hy[0].chunk.text == TEXTS[2]
    assert hy[0].bm25_rank is not None and hy[0].dense_rank is not None
    assert hy[0].score == pytest.approx(1 / (60 + hy[0].bm25_rank) + 1 / (60 + hy[0].dense_rank))


def test_chinese_query_uses_jieba(kb: KnowledgeBase) -> None:
    hits = kb.search("敏感信息 密码", k=2, mode="bm25")
    assert hits[0].chunk.text == TEXTS[5]


def test_hybrid_drops_dense_for_uncovered_language(kb: KnowledgeBase) -> None:
    kb.embedder().backend.languages = ("en",)
    hits = kb.search("可部署的计算单元", k=6)
    assert hits[0].chunk.text == TEXTS[4]
    # dense search only annotates: chunks it alone found have no fused evidence and are not listed
    assert hits and all(h.bm25_rank is not None and h.score > 0 for h in hits)
    assert any(h.dense_rank is not None for h in hits)
    bm25_only = kb.search("可部署的计算单元", k=6, mode="bm25")
    assert [h.chunk.chunk_id for h in hits] == [h.chunk.chunk_id for h in bm25_only]


def test_near_duplicates_collapsed(kb: KnowledgeBase) -> None:
    kb.add_texts(["A Deployment provides declarative updates for pods and ReplicaSets!"], source="copy")
    hits = kb.search("declarative updates ReplicaSets", k=5, mode="bm25")
    texts = [h.chunk.text for h in hits]
    assert sum("declarative updates" in t for t in texts) == 1


def test_filter_by_path_glob_and_language(kb: KnowledgeBase) -> None:
    kb.add_texts(["Pods in the other source are special."], source="other")
    hits = kb.search("Pods", k=10, mode="bm25", filter="path=other:*")
    assert [h.chunk.path.split(":")[0] for h in hits] == ["other"]
    dense = kb.search("Pods", k=10, mode="dense", filter={"path": "other:*"})
    assert len(dense) == 1 and dense[0].chunk.path.startswith("other:")
    zh = kb.search("Pod", k=10, mode="bm25", filter="language=zh")
    assert zh and all(h.chunk.text in TEXTS[4:] for h in zh)
    with pytest.raises(UserError):
        kb.search("Pods", filter="colour=red")
    with pytest.raises(UserError):
        kb.search("Pods", mode="fuzzy")


def test_add_texts_dedupes_and_returns_ids(kb: KnowledgeBase) -> None:
    first = kb.search(TEXTS[0], k=1, mode="bm25")[0].chunk.doc_id
    ids = kb.add_texts([TEXTS[0], "brand new memory about etcd backups"])
    assert ids[0] == first
    assert len(kb.documents()) == 7
    assert kb.search("etcd backups", k=1, mode="bm25")[0].chunk.doc_id == ids[1]


def test_remove_and_check(kb: KnowledgeBase) -> None:
    doc = kb.documents()[0]
    kb.remove(doc.id)
    assert doc.path not in {d.path for d in kb.documents()}
    report = kb.check()
    assert report.ok, report.problems
    assert (report.documents, report.chunks, report.fts_rows, report.vectors) == (5, 5, 5, 5)
    with pytest.raises(UserError):
        kb.remove("no-such-doc")


def test_check_finds_missing_vector_and_orphan(kb: KnowledgeBase) -> None:
    cid = kb.search("ConfigMaps", k=1, mode="bm25")[0].chunk.chunk_id
    kb.store.conn.execute("DELETE FROM vec_chunks WHERE chunk_id = ?", (cid,))
    kb.store.conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (99999, 'ghost')")
    report = kb.check()
    assert not report.ok
    assert any("without a vector" in p for p in report.problems)
    assert any("orphan FTS rows" in p for p in report.problems)


def test_stored_vectors_are_the_embeddings(kb: KnowledgeBase) -> None:
    hit = kb.search("ConfigMaps", k=1, mode="bm25")[0]
    stored = kb.store.vectors([hit.chunk.chunk_id])[hit.chunk.chunk_id]
    expected = kb.embedder().embed([hit.chunk.text])[0]
    np.testing.assert_allclose(stored, expected, rtol=1e-6)


def test_stats(kb: KnowledgeBase) -> None:
    st = kb.stats()
    assert st["documents"] == 6 and st["chunks"] == 6 and st["vectors"] == 6 and st["dim"] == 64
    assert st["languages"] == {"en": 4, "zh": 2}
    assert st["bytes"] > 0
