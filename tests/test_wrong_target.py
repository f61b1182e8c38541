"""Commands that delete or migrate a file refuse one that knowbase did not make, and leave it untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from knowbase.agents.state import AgentStore
from knowbase.cli.main import main
from knowbase.errors import NotAKnowbaseFileError
from knowbase.knowledge.base import KnowledgeBase
from knowbase.memory.store import MemoryStore
from knowbase.models.cache import ResponseCache
from knowbase.tracing.store import TraceStore


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _other_program_db(path: Path) -> Path:
    """A SQLite database of another program, with tables named like knowbase's own."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE sessions (id TEXT PRIMARY KEY, user TEXT);
        INSERT INTO sessions VALUES ('s1', 'alice'), ('s2', 'bob');
        CREATE TABLE meta (key TEXT, value TEXT);
        CREATE TABLE documents (id INTEGER PRIMARY KEY);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY);
        CREATE TABLE runs (id TEXT PRIMARY KEY);
        CREATE TABLE calls (id TEXT PRIMARY KEY);
    """)
    conn.commit()
    conn.close()
    return path


def _drop(target: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(["kb", "drop", target, "--yes"])
    return int(exc.value.code or 0), capsys.readouterr().err


def test_kb_drop_refuses_a_plain_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes\n", encoding="utf-8")
    code, err = _drop(str(victim), capsys)
    assert code == 1
    assert err.strip() == (f"Error: {victim} is not a knowbase knowledge base: it is not a SQLite database; "
                           "nothing was changed")
    assert victim.read_text(encoding="utf-8") == "my notes\n"


def test_kb_drop_refuses_another_programs_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = _other_program_db(tmp_path / "app.db")
    before = _digest(victim)
    code, err = _drop(str(victim), capsys)
    assert code == 1 and "knowbase did not create" in err
    assert _digest(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, -shm or .index made or removed


def test_kb_drop_refuses_a_folder_and_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "x.db"
    folder.mkdir()
    code, err = _drop(str(folder), capsys)
    assert code == 1 and "it is not a regular file" in err and folder.is_dir()
    empty = tmp_path / "empty.db"
    empty.touch()
    code, err = _drop(str(empty), capsys)
    assert code == 1 and "it is not a SQLite database" in err and empty.exists()


def test_kb_drop_by_name_refuses_a_link_leaving_the_folder(knowbase_home: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    KnowledgeBase.create(str(elsewhere / "real.db"), embedder="fake").close()
    kb_dir = knowbase_home / "kb"
    kb_dir.mkdir(parents=True)
    (kb_dir / "linked.db").symlink_to(elsewhere / "real.db")
    code, err = _drop("linked", capsys)
    assert code == 1 and "outside" in err
    assert (elsewhere / "real.db").is_file() and (kb_dir / "linked.db").is_symlink()


def test_kb_drop_deletes_a_knowledge_base(knowbase_home: Path, tmp_path: Path) -> None:
    KnowledgeBase.create("mine", embedder="fake").close()
    path = KnowledgeBase.drop("mine")
    assert path == knowbase_home / "kb" / "mine.db" and not path.exists()
    by_path = tmp_path / "other.db"
    KnowledgeBase.create(str(by_path), embedder="fake").close()
    assert KnowledgeBase.drop(str(by_path)) == by_path and not by_path.exists()


def test_opening_another_programs_database_as_a_knowledge_base_changes_nothing(tmp_path: Path) -> None:
    victim = _other_program_db(tmp_path / "app.db")
    before = _digest(victim)
    with pytest.raises(NotAKnowbaseFileError) as exc:
        KnowledgeBase.open(str(victim))
    assert exc.value.expected == "knowledge base" and exc.value.path == str(victim)
    with pytest.raises(NotAKnowbaseFileError):
        KnowledgeBase.create(str(victim), embedder="fake", exist_ok=True)
    assert _digest(victim) == before
    conn = sqlite3.connect(victim)
    assert "_migrations" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()


def test_memory_delete_refuses_another_programs_database(knowbase_home: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    knowbase_home.mkdir(parents=True)
    victim = _other_program_db(knowbase_home / "memory.db")
    with pytest.raises(SystemExit) as exc:
        main(["memory", "delete", "s1"])
    assert exc.value.code == 1
    assert "is not a knowbase memory store: it is a SQLite database that knowbase did not create" in \
        capsys.readouterr().err
    conn = sqlite3.connect(victim)
    assert conn.execute("SELECT id FROM sessions ORDER BY id").fetchall() == [("s1",), ("s2",)]
    conn.close()


@pytest.mark.parametrize(("store", "kind"), [(TraceStore, "trace log"), (AgentStore, "agent store"),
                                             (ResponseCache, "response cache")])
def test_stores_refuse_another_programs_database(tmp_path: Path, store: type, kind: str) -> None:
    victim = _other_program_db(tmp_path / "x.db")
    before = _digest(victim)
    with pytest.raises(NotAKnowbaseFileError) as exc:
        store(victim).conn  # noqa: B018  (the connection opens, and the file is checked, on first use)
    assert exc.value.expected == kind
    assert _digest(victim) == before


def test_stores_accept_their_own_and_new_files(tmp_path: Path) -> None:
    MemoryStore(tmp_path / "m.db").close()
    MemoryStore(tmp_path / "m.db").close()  # reopened: its own file
    (tmp_path / "empty.db").touch()
    MemoryStore(tmp_path / "empty.db").close()  # an empty file is a new database
    assert MemoryStore(tmp_path / "empty.db").sessions() == []
    with pytest.raises(NotAKnowbaseFileError):  # a memory store is not a trace log
        TraceStore(tmp_path / "m.db").conn  # noqa: B018
