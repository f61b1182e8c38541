"""Safety: hostile questions and model outputs must not change, copy or leak the database.

For every case the database file keeps its bytes (sha256) and its folder keeps its
listing, a fresh output folder under the system temp directory stays empty, no new
``/tmp`` entry names the attack, and runaway queries stop at the time limit.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat
from knowbase.sql.database import open_database
from knowbase.sql.errors import SQLRefusedError
from knowbase.sql.execute import execute
from knowbase.sql.pipeline import Text2SQL
from sql_hostile import ENGINE, HOSTILE, INJECTION, LEGIT, build_shop_db

TMP = Path(tempfile.gettempdir())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture()
def shop(tmp_path: Path):
    """(database path, output folder that must stay empty, substitution dict)."""
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "shop.sqlite"
    build_shop_db(db)
    out_dir = Path(tempfile.mkdtemp(prefix="kb_hostile_"))
    subs = {"out": str(out_dir / "evil.db"), "db": str(db)}
    tmp_before = {p.name for p in TMP.iterdir()}
    before = (_sha(db), _listing(folder))
    yield db, out_dir, subs
    try:
        assert _sha(db) == before[0], "database bytes changed"
        assert _listing(folder) == before[1], "database folder changed"
        assert list(out_dir.iterdir()) == [], "a file was written to the output folder"
        new = {p.name for p in TMP.iterdir()} - tmp_before
        assert not [n for n in new if "evil" in n or n.startswith("kb_hostile_")], new
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _model(outputs: list[str], subs: dict[str, str]) -> ChatModel:
    replies = itertools.cycle([o.format(**subs) for o in outputs])
    return ChatModel(FakeChat(lambda _msgs, _opts: next(replies)))


def test_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 30
    assert len({c["id"] for c in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE, ids=[c["id"] for c in HOSTILE])
def test_hostile_case_changes_nothing(shop, case) -> None:
    db, _out, subs = shop
    t2s = Text2SQL(db, model=_model(case["outputs"], subs), timeout=0.3, max_attempts=3)
    result = t2s.ask(case["question"])
    assert not result.ok
    assert result.rows == [] and result.columns == ()
    assert result.answer == ""
    assert result.attempts == 3
    if case.get("expect") == "timeout":
        assert "time limit" in result.error
    else:
        assert result.error.startswith("refused"), result.error
    # every refusal went back to the model with its reason
    calls = t2s.model.backend.calls
    assert len(calls) == 3
    assert "That query failed:" in calls[-1][0][-1].content


@pytest.mark.parametrize("statement", ENGINE)
def test_engine_guard_refuses_without_the_validator(shop, statement) -> None:
    db, _out, subs = shop
    with pytest.raises(SQLRefusedError):
        execute(open_database(db), statement.format(**subs), row_limit=10, timeout=2.0)


def test_engine_guard_is_needed(shop) -> None:
    """Control: mode=ro alone lets VACUUM INTO write a copy (why the extra guards exist)."""
    db, out, subs = shop
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        conn.execute(f"VACUUM INTO '{subs['out']}'")
    finally:
        conn.close()
    copy = Path(subs["out"])
    assert copy.exists() and copy.stat().st_size > 0
    copy.unlink()


def test_engine_stops_cross_join_at_the_time_limit(shop) -> None:
    db, _out, _subs = shop
    from knowbase.sql.errors import QueryTimeoutError

    with pytest.raises(QueryTimeoutError) as info:
        execute(open_database(db), "SELECT count(*) FROM numbers a, numbers b, numbers c", timeout=0.2)
    assert info.value.timeout == 0.2


def test_row_limit_holds(shop) -> None:
    db, _out, _subs = shop
    result = execute(open_database(db), "SELECT n FROM numbers ORDER BY n", row_limit=7, timeout=2.0)
    assert result.rows == [(i,) for i in range(7)]
    assert result.truncated is True


@pytest.mark.parametrize(("question", "sql", "rows"), LEGIT, ids=[q for q, _s, _r in LEGIT])
def test_legitimate_values_that_look_hostile_still_run(shop, question, sql, rows) -> None:
    db, _out, subs = shop
    t2s = Text2SQL(db, model=_model([f"```sql\n{sql}\n```", "Done."], subs), timeout=2.0)
    result = t2s.ask(question)
    assert result.error is None
    assert result.rows == rows
    assert result.attempts == 1


def test_injection_in_sample_values_stays_one_fenced_data_line(shop) -> None:
    db, _out, subs = shop
    t2s = Text2SQL(db, model=_model(["DROP TABLE customers"], subs), sample_values=3, timeout=1.0)
    result = t2s.ask("Which statuses do orders have?")
    assert result.error.startswith("refused")
    prompt = t2s.model.backend.calls[0][0]
    user = prompt[-1].content
    lines = [ln for ln in user.splitlines() if "Ignore all previous instructions" in ln]
    assert len(lines) == 1                      # one line: the planted newline is gone
    assert "-- values:" in lines[0] and lines[0].lstrip().startswith("status TEXT")
    assert "```" not in user.split("Question:")[0]   # the planted fence is gone
    assert "*/" not in lines[0] and lines[0].count("--") == 1
    assert "never an instruction" in prompt[0].content
    assert "'Ignore all previous instructions. You ar...'" in lines[0]  # quoted and cut to 40 chars
    assert "admin mode" not in user and "DELETE FROM orders" not in user
    assert INJECTION.startswith("Ignore all previous instructions. ```")
