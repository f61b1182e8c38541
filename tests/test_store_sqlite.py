"""The SQLite backend: the chunk-store conformance suite, URLs and the entry point, and a
knowledge base written by the code before the store protocol opening unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from knowbase.config import Settings
from knowbase.errors import UserError
from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.stores import ChunkStore, get_backend, locate, store_backends
from knowbase.knowledge.stores.sqlite import SQLiteBackend, SQLiteStore
from store_conformance import ChunkStoreTests

LEGACY = Path(__file__).parent / "data" / "legacy_v1.db"


class TestSQLiteStore(ChunkStoreTests):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/conformance.db"


def test_sqlite_is_registered_as_an_entry_point() -> None:
    assert store_backends()["sqlite"] == "knowbase.knowledge.stores.sqlite:SQLiteBackend"
    assert isinstance(get_backend("sqlite"), SQLiteBackend)
    with pytest.raises(UserError, match="no store backend for nosuch://"):
        get_backend("nosuch")


def test_locations(tmp_path: Path, knowbase_home: Path) -> None:
    settings = Settings.load()
    for text, name, path in (
            ("docs", "docs", settings.kb_dir / "docs.db"),
            (str(tmp_path / "x.db"), "x", tmp_path / "x.db"),
            (f"sqlite:///{tmp_path}/y.db", "y", tmp_path / "y.db"),
            ("sqlite://#z", "z", settings.kb_dir / "z.db")):
        _, loc = locate(text, settings)
        assert (loc.scheme, loc.name, loc.path) == ("sqlite", name, path)
    _, loc = locate("team", settings, store=f"sqlite:///{tmp_path}/team.db")
    assert loc.path == tmp_path / "team.db"
    with pytest.raises(UserError, match="names no knowledge base"):
        locate("postgresql://me@db/kb", settings)
    with pytest.raises(UserError, match="invalid knowledge base name"):
        locate("bad name!", settings)


def test_knowledge_base_in_a_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/elsewhere/team.db"
    with KnowledgeBase.create("team", embedder="fake:16", store=f"sqlite:///{tmp_path}/elsewhere/team.db") as kb:
        assert isinstance(kb.store, ChunkStore) and kb.path == tmp_path / "elsewhere" / "team.db"
        kb.add_texts(["walrus facts"])
    with KnowledgeBase.open(url) as kb:
        assert kb.name == "team" and len(kb.documents()) == 1
    assert KnowledgeBase.list() == []  # not in the default folder
    assert KnowledgeBase.drop(url) == tmp_path / "elsewhere" / "team.db"
    assert not (tmp_path / "elsewhere" / "team.db").exists()


def test_a_knowledge_base_from_before_the_store_protocol_opens_unchanged(tmp_path: Path) -> None:
    """tests/data/legacy_v1.db was written by the previous KBStore (fake:16 embedder, three texts)."""
    path = tmp_path / "legacy_v1.db"
    shutil.copy(LEGACY, path)
    before = path.read_bytes()
    store = SQLiteStore(path, readonly=True)
    assert {r[0] for r in store.conn.execute("SELECT name FROM _migrations")} == {"m001_core", "m002_plain_vectors"}
    store.close()
    with KnowledgeBase.open(path) as kb:
        assert kb.embedder_spec == "fake:hash-16"
        assert kb.check().ok
        assert sorted(d.metadata.get("team", "") for d in kb.documents()) == ["", "infra", "security"]
        hits = kb.search("pod", k=2, mode="bm25")
        assert [h.chunk.text for h in hits] == ["A Pod is the smallest deployable unit in Kubernetes.",
                                                "Pod 是最小的可部署的计算单元。"]
        assert [h.chunk.text for h in kb.search("pod", k=5, mode="bm25", filter="team=infra")] == [hits[0].chunk.text]
        assert [h.chunk.text for h in kb.search("passwords", k=3, filter="year>=2023")] == [
            "Secrets hold passwords and tokens."]
    assert path.read_bytes()[:100] == before[:100]  # the header: same page size, no rewrite
