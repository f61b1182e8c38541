"""The Text2SQL benchmark helpers (benches/text2sql.py): result comparison, sampling, reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benches"))

import text2sql  # noqa: E402  - benches/ is put on sys.path just above


def test_result_eq_follows_the_test_suite_rules() -> None:
    gold = [(1, "a"), (2, "b")]
    assert text2sql.result_eq([(2, "b"), (1, "a")], gold, order_matters=False)
    assert not text2sql.result_eq([(2, "b"), (1, "a")], gold, order_matters=True)
    assert text2sql.result_eq([("a", 1), ("b", 2)], gold, order_matters=True)  # a column permutation
    assert not text2sql.result_eq([(1, "a")], gold, order_matters=False)
    assert not text2sql.result_eq([(1, "a"), (1, "a")], gold, order_matters=False)  # multisets, not sets
    assert not text2sql.result_eq([(1,), (2,)], gold, order_matters=False)
    assert text2sql.result_eq([], [], order_matters=False)


def test_stratified_sample_is_seeded_and_proportional() -> None:
    items = [{"id": f"q{i}", "db_id": "a" if i < 60 else "b", "hardness": "easy" if i % 2 else "hard"}
             for i in range(100)]
    first = text2sql.stratified_sample(items, 10, seed=7)
    assert [it["id"] for it in first] == [it["id"] for it in text2sql.stratified_sample(items, 10, seed=7)]
    assert len(first) == 10 and sum(it["db_id"] == "a" for it in first) == 6
    assert sum(it["hardness"] == "easy" for it in first) == 5
    assert text2sql.stratified_sample(items, 500, seed=7) == items


def test_report_files_keeps_the_questions_every_system_answered(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def rec(qid: str, system: str, correct: bool, db: str = "x") -> dict[str, object]:
        return {"id": qid, "db_id": db, "hardness": "easy" if db != "chinook" else "en", "system": system,
                "correct": correct, "status": "ok" if correct else "invalid", "seconds": 2.0, "attempts": 1,
                "timings": {"schema": 0.0, "generation": 1.5, "validation": 0.1, "execution": 0.4}}

    (tmp_path / "raw.json").write_text(json.dumps([rec("q1", "raw", True), rec("q2", "raw", False),
                                                   rec("q3", "raw", True)]))
    (tmp_path / "kb.json").write_text(json.dumps([rec("q1", "knowbase", True), rec("q2", "knowbase", True),
                                                  rec("c1", "knowbase", True, "chinook")]))
    assert text2sql.main(["--report", str(tmp_path / "raw.json"), str(tmp_path / "kb.json")]) == 0
    out = capsys.readouterr().out
    assert "# spider: 2 questions answered by every system (knowbase, raw); left out (not answered by all): " \
           "{'raw': 1}" in out
    assert "| raw | 0.500 | 0.500 (2) | - | - | - | 0.500 |" in out
    assert "| knowbase | 1.000 | 1.000 (2) | - | - | - | 0.000 |" in out
    assert "# chinook: 1 questions answered by every system (knowbase)" in out
