"""Empty, whitespace-only and punctuation-only queries are refused before anything is embedded."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowbase.cli.main import main
from knowbase.errors import EmptyQueryError, UserError
from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.query import check_query
from knowbase.models.base import Embedder
from knowbase.models.fake import FakeChat, FakeEmbedder

TEXTS = ["A Pod is the smallest deployable unit in Kubernetes.", "冰雪节在哈尔滨举行。"]
EMPTY = ["", " ", "\t\n", "?", "...", "?!", "……", "。？", "—", "''", "()[]"]


@pytest.fixture
def kb() -> tuple[KnowledgeBase, FakeEmbedder]:
    fake = FakeEmbedder(64)
    base = KnowledgeBase.create("q", embedder=Embedder(fake))
    base.add_texts(TEXTS)
    yield base, fake
    base.close()


@pytest.mark.parametrize("query", EMPTY)
def test_search_and_ask_refuse_without_embedding(kb: tuple[KnowledgeBase, FakeEmbedder], query: str) -> None:
    base, fake = kb
    chat = FakeChat(["should not be called"])
    before = fake.encoded
    for mode in ("hybrid", "dense", "bm25"):
        with pytest.raises(EmptyQueryError) as err:
            base.search(query, mode=mode)
        assert isinstance(err.value, ValueError) and isinstance(err.value, UserError)
        assert err.value.field == "query" and err.value.exit_code == 2
    with pytest.raises(EmptyQueryError) as err:
        base.ask(query, model=chat)
    assert err.value.field == "question"
    with pytest.raises(EmptyQueryError):
        base.ask(query, extractive=True)
    assert fake.encoded == before  # no embedding call
    assert chat.calls == []  # no model call


@pytest.mark.parametrize("query", ["Pod", "冰雪", "3", "k8s?", "é", "½"])
def test_queries_with_a_letter_or_digit_pass(kb: tuple[KnowledgeBase, FakeEmbedder], query: str) -> None:
    assert check_query(query) == query
    base, fake = kb
    before = fake.encoded
    base.search(query, mode="dense")
    assert fake.encoded == before + 1


def test_check_query_messages() -> None:
    with pytest.raises(EmptyQueryError, match=r"^the query is empty: give words to search for$"):
        check_query("   ")
    with pytest.raises(EmptyQueryError, match=r"^the question is '\?!', which has no letter or digit"):
        check_query("?!", field="question")
    with pytest.raises(EmptyQueryError, match="must be text"):
        check_query(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [["kb", "search", "cli", ""], ["kb", "search", "cli", "  "],
                                  ["kb", "search", "cli", "?!", "--json"], ["ask", "cli", "..."],
                                  ["ask", "cli", " ", "--extractive"], ["ask", "cli", ""]])
def test_cli_exits_2_with_one_line(args: list[str], knowbase_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    KnowledgeBase.create("cli", embedder="fake").close()
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    assert exc.value.code == 2
    assert captured.out == ""
    assert captured.err.startswith("Error: the ") and captured.err.count("\n") == 1
