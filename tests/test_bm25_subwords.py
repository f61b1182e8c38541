"""Chinese words inside longer compounds are found by BM25; old knowledge bases keep working."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.bm25 import TOKENIZER_V1, TOKENIZER_VERSION, document_tokens, query_tokens, tokenize
from knowbase.models.base import Embedder
from knowbase.models.fake import FakeEmbedder

DOCS = {
    "harbin.md": "# 哈尔滨\n\n哈尔滨冰雪节每年一月举行，冰灯和雪雕吸引了很多游客。\n",
    "pods.md": "# Pods\n\nA Pod is the smallest deployable unit in Kubernetes.\n",
    "volumes.md": "# 存储卷\n\n持久卷是集群中的一块存储，由管理员配置。\n",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def _names(hits: list) -> list[str]:
    return [Path(h.chunk.path).name for h in hits]


def _both_paths(kb: KnowledgeBase, query: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """BM25 through the memory-mapped index and through FTS5's own bm25() over the stored rows."""
    from knowbase.knowledge.bm25 import fts_query

    toks = query_tokens(query)
    index = kb.store.bm25_search(toks, 10)
    sql = [(int(r), float(s)) for r, s in kb.store.conn.execute(
        "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts), rowid "
        "LIMIT 10", (fts_query(toks),))]
    return index, sql


def test_tokens() -> None:
    assert tokenize("哈尔滨冰雪节") == ["哈尔滨", "冰雪节"]  # queries: precise words
    doc = document_tokens("哈尔滨冰雪节")
    assert {"冰雪", "冰雪节", "哈尔滨"} <= set(doc)  # chunks: the words inside compounds too
    assert document_tokens("哈尔滨冰雪节", version=TOKENIZER_V1) == ["哈尔滨", "冰雪节"]
    assert document_tokens("The Pods are running") == tokenize("The Pods are running") == ["pod", "run"]
    with pytest.raises(ValueError, match="unknown BM25 tokenizer version"):
        document_tokens("x", version="future/9")


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_sub_word_finds_the_compound(folder: Path, mode: str) -> None:
    kb = KnowledgeBase.create("zh", embedder=Embedder(FakeEmbedder(64)))
    kb.ingest([folder])
    assert kb.store.tokenizer == TOKENIZER_VERSION
    assert _names(kb.search("冰雪", mode=mode, k=3))[0] == "harbin.md"
    assert _names(kb.search("冰雪节", mode=mode, k=3))[0] == "harbin.md"
    assert _names(kb.search("存储", mode=mode, k=3))[0] == "volumes.md"  # 存储卷 holds 存储
    index, sql = _both_paths(kb, "冰雪")
    assert index and [c for c, _ in index] == [c for c, _ in sql]
    assert [s for _, s in index] == pytest.approx([s for _, s in sql])
    answer = kb.ask("冰雪", extractive=True)
    assert not answer.abstained and "冰雪节" in answer.text
    kb.close()


def test_old_knowledge_base_keeps_working_and_is_reindexed_on_ingest(folder: Path) -> None:
    kb = KnowledgeBase.create("old", embedder=Embedder(FakeEmbedder(64)))
    kb.ingest([folder])
    # make it a knowledge base of the previous version: precise-mode rows, meta says v1
    store = kb.store
    with store.transaction():
        rows = list(store.conn.execute("SELECT id, text FROM chunks"))
        store.conn.execute("DELETE FROM chunks_fts")
        for chunk_id, text in rows:
            store.conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (chunk_id, " ".join(tokenize(text))))
        store.conn.execute("UPDATE meta SET value = ? WHERE key = 'tokenizer'", (TOKENIZER_V1,))
        store.conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    kb.close()

    old = KnowledgeBase.open("old", embedder=Embedder(FakeEmbedder(64)))
    assert old.store.tokenizer == TOKENIZER_V1
    assert _names(old.search("冰雪节", mode="bm25"))[0] == "harbin.md"  # its own words still match
    assert old.search("冰雪", mode="bm25") == []  # as before: the index has no sub-words yet
    index, sql = _both_paths(old, "冰雪节")  # the search index is built with the v1 tokens of its rows
    assert [c for c, _ in index] == [c for c, _ in sql] and index
    (folder / "new.md").write_text("# 新\n\n冬季的冰雪运动很受欢迎。\n", encoding="utf-8")
    report = old.ingest([folder])
    assert report.retokenized == len(rows) and report.added == [str(folder / "new.md")]
    assert old.store.tokenizer == TOKENIZER_VERSION
    assert sorted(_names(old.search("冰雪", mode="bm25"))) == ["harbin.md", "new.md"]
    index, sql = _both_paths(old, "冰雪")
    assert [c for c, _ in index] == [c for c, _ in sql] and len(index) == 2
    assert old.ingest([folder]).retokenized == 0  # once
    old.close()
