"""The PostgreSQL backend against a real PostgreSQL 16 + pgvector (started from the pgserver
wheel, see tests/pg_server.py): the chunk-store conformance suite, BM25 agreement with the
SQLite backend, and a knowledge base created, searched, asked, checked and dropped by URL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_server import postgres_with_pgvector
from store_conformance import ChunkStoreTests

_names = itertools.count()


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_with_pgvector() as url:
        yield url


class TestPostgreSQLStore(ChunkStoreTests):
    @pytest.fixture
    def url(self, pg: str) -> str:
        return f"{pg}#conf{next(_names)}"


# --- the knowledge-base tests of test_kb_store.py, on PostgreSQL ------------------------------------
from knowbase.knowledge.base import KnowledgeBase  # noqa: E402
from knowbase.models.base import Embedder  # noqa: E402
from knowbase.models.fake import FakeEmbedder  # noqa: E402
from test_kb_store import (  # noqa: E402  (collected here again, with the kb fixture below)
    TEXTS,
    test_add_texts_dedupes_and_returns_ids,
    test_bm25_dense_hybrid_search,
    test_chinese_query_uses_jieba,
    test_embedder_mismatch_is_an_error,
    test_filter_by_path_glob_and_language,
    test_hybrid_drops_dense_for_uncovered_language,
    test_near_duplicates_collapsed,
    test_remove_and_check,
    test_stats,
    test_stored_vectors_are_the_embeddings,
)

__all__ = ["test_add_texts_dedupes_and_returns_ids", "test_bm25_dense_hybrid_search", "test_chinese_query_uses_jieba",
           "test_embedder_mismatch_is_an_error", "test_filter_by_path_glob_and_language",
           "test_hybrid_drops_dense_for_uncovered_language", "test_near_duplicates_collapsed", "test_remove_and_check",
           "test_stats", "test_stored_vectors_are_the_embeddings"]


@pytest.fixture
def kb(pg: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[KnowledgeBase]:
    """test_kb_store's knowledge base, in PostgreSQL; ``KnowledgeBase.open("t")`` finds it there too."""
    name = f"t{next(_names)}"
    base = KnowledgeBase.create(name, embedder=Embedder(FakeEmbedder(64)), store=pg)
    base.add_texts(TEXTS, metadatas=[{"title": f"t{i}"} for i in range(len(TEXTS))])
    real_open = KnowledgeBase.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(KnowledgeBase, "open", classmethod(
        lambda cls, n, **kw: real_open(cls, f"{pg}#{name}" if n == "t" else n, **kw)))
    create = KnowledgeBase.create.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(KnowledgeBase, "create", classmethod(
        lambda cls, n, **kw: create(cls, f"{pg}#{name}" if n == "t" else n, **kw)))
    yield base
    base.close()
    KnowledgeBase.drop(f"{pg}#{name}")


# --- BM25 agreement with SQLite, and the whole CLI on a PostgreSQL store -------------------------------
QUERIES = ["pod lifecycle restart policy", "how does the scheduler assign pods to nodes", "persistent volume claim",
           "service account token", "configmap environment variables", "horizontal pod autoscaler metrics",
           "node affinity taints tolerations", "ingress controller tls", "container probes liveness readiness",
           "kubelet garbage collection images", "network policy namespace selector", "secret encryption at rest",
           "持久卷 存储类", "调度器 节点", "容器 重启 策略", "服务 负载均衡", "命名空间 资源配额", "探针 存活"]


def test_bm25_rankings_agree_with_sqlite(pg: str, tmp_path: Path) -> None:
    sample = Path(__file__).parents[1] / "samples" / "k8s"
    lite = KnowledgeBase.create(str(tmp_path / "lite.db"), embedder="fake:32")
    post = KnowledgeBase.create("agree", embedder="fake:32", store=pg)
    try:
        assert lite.ingest([sample]).ok and post.ingest([sample]).ok
        assert lite.stats()["chunks"] == post.stats()["chunks"] > 500
        overlaps = []
        for q in QUERIES:
            a = [(h.chunk.path, h.chunk.index, round(h.score, 6)) for h in lite.search(q, k=10, mode="bm25")]
            b = [(h.chunk.path, h.chunk.index, round(h.score, 6)) for h in post.search(q, k=10, mode="bm25")]
            assert len(a) == len(b) == 10
            overlaps.append(len({x[:2] for x in a} & {x[:2] for x in b}) / 10)
            assert [x[2] for x in a] == pytest.approx([x[2] for x in b], rel=1e-6)  # the same scores, rank by rank
        print(f"BM25 overlap@10 PostgreSQL vs SQLite over {len(QUERIES)} queries: {sum(overlaps) / len(overlaps):.3f}")
        assert sum(overlaps) / len(overlaps) >= 0.99
        assert post.check().ok and lite.check().ok
    finally:
        lite.close()
        post.close()
        KnowledgeBase.drop(f"{pg}#agree")


def test_cli_create_ingest_search_ask_check_drop_by_url(pg: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from knowbase.cli.main import cli
    from knowbase.errors import KnowledgeBaseExistsError, KnowledgeBaseNotFoundError

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pods.md").write_text("---\nteam: infra\n---\n# Pods\n\nA Pod is the smallest deployable unit.\n",
                                  encoding="utf-8")
    (docs / "web.md").write_text("---\nteam: web\n---\n# Pages\n\nThe Pod dashboard page shows charts.\n",
                                 encoding="utf-8")
    run = lambda *args: CliRunner().invoke(cli, list(args), catch_exceptions=False)  # noqa: E731
    url = f"{pg}#team"
    result = run("kb", "create", "team", "--store", pg, "--embedder", "fake")
    assert result.exit_code == 0 and "created team (fake:hash-64)" in result.stdout
    with pytest.raises(KnowledgeBaseExistsError):
        run("kb", "create", "team", "--store", pg, "--embedder", "fake")
    result = run("kb", "ingest", url, str(docs), "--meta", "year=2024")
    assert result.exit_code == 0 and result.stdout.startswith("2 added"), result.stdout
    assert run("kb", "ingest", url, str(docs), "--meta", "year=2024").stdout.startswith("0 added, 0 updated, 2 unchanged")
    hits = __import__("json").loads(run("kb", "search", url, "pod", "--json", "--filter",
                                        "team=infra and year>=2024").stdout)
    assert [Path(h["path"]).name for h in hits] == ["pods.md"]
    result = run("ask", url, "What is a Pod?", "--model", "fake:The smallest deployable unit [1].")
    assert result.exit_code == 0 and "smallest deployable unit" in result.stdout
    result = run("kb", "check", url)
    assert result.exit_code == 0 and result.stdout.strip().endswith("ok")
    assert run("kb", "drop", "team", "--store", pg, "--yes").exit_code == 0
    with pytest.raises(KnowledgeBaseNotFoundError):
        run("kb", "stats", url)


def test_store_setting_makes_postgresql_the_default(pg: str, knowbase_home: Path) -> None:
    knowbase_home.mkdir(parents=True, exist_ok=True)
    (knowbase_home / "config.toml").write_text(f'store = "{pg}"\n', encoding="utf-8")
    with KnowledgeBase.create("configured", embedder="fake:16") as kb:
        assert kb.path == f"{pg}#configured"
        kb.add_texts(["walrus facts"])
    infos = [i for i in KnowledgeBase.list() if i.name == "configured"]
    assert [(i.path, i.documents, i.chunks, i.embedder) for i in infos] == [(f"{pg}#configured", 1, 1, "fake:hash-16")]
    with KnowledgeBase.open("configured") as kb:
        assert kb.search("walrus", k=1, mode="bm25")[0].chunk.text == "walrus facts"
    KnowledgeBase.drop("configured")
    assert not [i for i in KnowledgeBase.list() if i.name == "configured"]
