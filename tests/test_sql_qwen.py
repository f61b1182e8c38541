"""Text2SQL with the embedded Qwen2.5-Coder-1.5B on Chinook (three questions, one in Chinese)."""

from __future__ import annotations

import re

import pytest

from knowbase.config import Settings
from knowbase.models.registry import get_chat_model
from knowbase.sql.pipeline import Text2SQL

pytestmark = [pytest.mark.slow, pytest.mark.qwen]
TABLES = ["Artist", "Album", "Genre", "Track", "Customer"]   # a lean prompt: five of the eleven tables


@pytest.fixture(scope="module")
def chinook(shared_data):
    model = get_chat_model("llamacpp:qwen2.5-coder-1.5b", settings=Settings.load(), tracing=False)
    return lambda **kw: Text2SQL(shared_data / "chinook" / "Chinook_Sqlite.sqlite", model=model, tables=TABLES,
                                 sample_values=2, **kw)


def test_qwen_counts_tracks(chinook) -> None:
    result = chinook(answer=False).ask("How many tracks are there?")
    assert result.error is None and result.rows == [(3503,)]


def test_qwen_joins_artist_and_album(chinook) -> None:
    result = chinook(answer=False).ask("How many albums are by the artist named 'AC/DC'?")
    assert result.error is None and result.rows == [(2,)]
    assert "JOIN" in result.sql.upper() or "IN (SELECT" in result.sql.upper()


def test_qwen_answers_a_chinese_question_in_chinese(chinook) -> None:
    result = chinook(answer=True).ask("有多少位客户来自巴西（Brazil）？")
    assert result.error is None and result.rows == [(5,)]
    assert "5" in result.answer and re.search(r"[\u4e00-\u9fff]", result.answer)
