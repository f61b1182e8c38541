"""Metadata filters: the text syntax and its errors, the reference semantics, and filters on a
knowledge base (front matter, CSV columns, file type, user metadata at ingest) from the
Python API and the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli, main
from knowbase.errors import UserError
from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.stores.filters import (
    MAX_DEPTH,
    MAX_FILTER_CHARS,
    MAX_IN_VALUES,
    And,
    Condition,
    Not,
    Or,
    SearchFilter,
)
from knowbase.knowledge.types import DocumentRow


@pytest.mark.parametrize(("text", "expr"), [
    ("team=infra", Condition("team", "=", "infra")),
    ("year >= 2023", Condition("year", ">=", 2023)),
    ("score<0.5", Condition("score", "<", 0.5)),
    ("date>2024-01-05", Condition("date", ">", date(2024, 1, 5))),
    ("team == 'a b'", Condition("team", "=", "a b")),
    ('"my key"="it\'s"', Condition("my key", "=", "it's")),
    ("year='2023'", Condition("year", "=", "2023")),
    ("type in (md, pdf)", Condition("type", "in", ("md", "pdf"))),
    ("type NOT IN (md)", Condition("type", "not in", ("md",))),
    ("path=*/pods/*", Condition("path", "=", "*/pods/*")),
    ("a=1 and b=2 or c=3", Or((And((Condition("a", "=", 1), Condition("b", "=", 2))), Condition("c", "=", 3)))),
    ("a=1 and (b=2 or c=3)", And((Condition("a", "=", 1), Or((Condition("b", "=", 2), Condition("c", "=", 3)))))),
    ("not a=1 and b=2", And((Not(Condition("a", "=", 1)), Condition("b", "=", 2)))),
    ("path=other:*,language=zh", And((Condition("path", "=", "other:*"), Condition("language", "=", "zh")))),
])
def test_parse(text: str, expr: object) -> None:
    flt = SearchFilter.parse(text)
    assert flt is not None and flt.expr == expr
    assert SearchFilter.parse(str(flt)).expr == expr  # the printed form parses back to the same tree


@pytest.mark.parametrize(("text", "position", "words"), [
    ("team=", 6, "expected a value, found the end"),
    ("team infra", 6, "expected an operator after 'team'"),
    ("team=infra and", 15, "expected a field name"),
    ("(team=infra", 12, "expected ')'"),
    ("team='infra", 6, "unterminated quoted string"),
    ("team ~ infra", 6, "found '~'"),
    ("year in 2023", 9, "expected '(' to start the list"),
    ("team=infra year=2", 12, "expected 'and', 'or' or the end"),
    ("a!b", 2, "unknown operator '!'"),
])
def test_syntax_errors_name_the_position(text: str, position: int, words: str) -> None:
    with pytest.raises(UserError) as info:
        SearchFilter.parse(text)
    assert str(info.value).startswith(f"bad filter at position {position}: ") and words in str(info.value)
    assert info.value.position == position - 1 and info.value.field == "filter"


def test_limits_apply_before_parsing() -> None:
    with pytest.raises(UserError, match=f"the limit is {MAX_FILTER_CHARS}"):
        SearchFilter.parse("a=" + "x" * MAX_FILTER_CHARS)
    assert SearchFilter.parse("(" * MAX_DEPTH + "a=1" + ")" * MAX_DEPTH) is not None
    with pytest.raises(UserError, match="nested deeper"):
        SearchFilter.parse("(" * (MAX_DEPTH + 1) + "a=1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(UserError, match="nested deeper"):
        SearchFilter.parse("not " * (MAX_DEPTH + 1) + "a=1")
    assert SearchFilter.parse(f"a in ({','.join(['1'] * MAX_IN_VALUES)})") is not None
    with pytest.raises(UserError, match=f"more than {MAX_IN_VALUES} values"):
        SearchFilter.parse(f"a in ({','.join(['1'] * (MAX_IN_VALUES + 1))})")


def test_dict_form_and_combinators() -> None:
    flt = SearchFilter.parse({"team": "infra", "type": ["md", "pdf"], "year": {">=": 2023, "<": 2026}})
    assert str(flt) == "team=infra and type in (md, pdf) and year>=2023 and year<2026"
    combined = SearchFilter.parse("team=infra") & ~SearchFilter.parse("year=2022") | SearchFilter.parse("team=web")
    assert str(combined) == "team=infra and not year=2022 or team=web"
    with pytest.raises(UserError, match="unknown filter operator '~'"):
        SearchFilter.parse({"year": {"~": 1}})
    with pytest.raises(UserError):
        SearchFilter.parse({"team": {"nested": "dict"}})
    assert SearchFilter.parse(None) is None and SearchFilter.parse("  ") is None
    assert SearchFilter().matches(DocumentRow(1, "x", "")) and not SearchFilter()


ROW = DocumentRow(7, "/docs/guide/a.md", "h", size=1200, mtime=1_704_067_200.0, title="A", language="en",
                  metadata={"team": "infra", "year": 2024, "version": "1.10", "tags": ["k8s", "net"], "draft": False,
                            "date": "2024-03-05", "owner": {"name": "ada"}, "columns": ["id", "price"]},
                  kind="file", added=1_700_000_000.0, updated=1_709_251_200.0)  # updated = 2024-03-01 00:00 UTC


@pytest.mark.parametrize(("text", "expected"), [
    ("team=infra", True), ("team=INFRA", False), ("team!=infra", False), ("missing!=x", True),
    ("not missing=x", True), ("missing=x", False), ("missing<5", False),
    ("year=2024", True), ("year>2024", False), ("year>=2024 and year<2025", True), ("year='2024'", True),
    ("version=1.1", True), ("version>1.9", False),  # numeric text compares as a number
    ("tags=k8s", True), ("tags in (x, net)", True), ("tags not in (k8s)", False),
    ("columns=price", True), ("draft=false", True), ("owner.name=ada", True), ("meta.team=infra", True),
    ("date>=2024-03-05", True), ("date>2024-03-05", False), ("date<=2024-03-05", True), ("date=2024-03-05", True),
    ("date<2024-03-05", False), ("date>=2024-03-05T12:00", False),
    ("ingested=2024-03-01", True), ("ingested>2024-02-29", True), ("ingested<2024-03-01", False),
    ("added<2024-01-01", True), ("mtime>=2024-01-01", True), ("size>1000", True),
    ("type=md", True), ("type in (pdf, txt)", False), ("path=*/guide/*", True), ("path=/docs/*.pdf", False),
    ("path in (/x/*, /docs/*)", True), ("language=en and kind=file and title=A", True),
    ("(team=web or year=2024) and not tags=net", False),
])
def test_reference_semantics(text: str, expected: bool) -> None:
    assert SearchFilter.parse(text).matches(ROW) is expected


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "infra-2022.md").write_text("---\ntitle: Old network\nteam: infra\nyear: 2022\ntags: [net, legacy]\n---\n"
                                     "# Network\n\nThe walrus proxy routes traffic between nodes.\n", encoding="utf-8")
    (d / "infra-2024.md").write_text("---\nteam: infra\nyear: 2024\npublished: 2024-05-01\n---\n"
                                     "# Storage\n\nThe walrus volume keeps data on every node.\n", encoding="utf-8")
    (d / "web-2024.md").write_text("---\nteam: web\nyear: 2024\n---\n# Frontend\n\nThe walrus page shows charts.\n",
                                   encoding="utf-8")
    (d / "prices.csv").write_text("item,price,team\nwalrus food,12,infra\nwalrus toy,3,web\n", encoding="utf-8")
    (d / "notes.txt").write_text("A walrus note without any front matter.\n", encoding="utf-8")
    return d


@pytest.fixture
def kb(corpus: Path):
    base = KnowledgeBase.create("filters", embedder="fake:32")
    assert base.ingest([corpus]).ok
    yield base
    base.close()


def _names(hits) -> list[str]:
    return sorted({Path(h.chunk.path).name for h in hits})


def test_front_matter_csv_and_file_type_filters(kb: KnowledgeBase) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        assert _names(kb.search("walrus", k=10, mode=mode, filter="team=infra and year>=2023")) == ["infra-2024.md"]
        assert _names(kb.search("walrus", k=10, mode=mode, filter="type in (csv, txt)")) == ["notes.txt", "prices.csv"]
    assert _names(kb.search("walrus", k=10, filter="tags=net")) == ["infra-2022.md"]
    assert _names(kb.search("walrus", k=10, filter="published>=2024-01-01")) == ["infra-2024.md"]
    assert _names(kb.search("walrus", k=10, filter="columns=price")) == ["prices.csv"]
    assert _names(kb.search("walrus", k=10, filter="format=markdown and not year=2022")) == ["infra-2024.md",
                                                                                             "web-2024.md"]
    assert _names(kb.search("walrus", k=10, filter={"year": {"<": 2024}})) == ["infra-2022.md"]
    assert _names(kb.search("walrus", k=10, filter="ingested>=2020-01-01")) == sorted(
        ["infra-2022.md", "infra-2024.md", "web-2024.md", "prices.csv", "notes.txt"])
    assert kb.search("walrus", k=10, filter="team=nobody") == []


def test_a_field_no_document_has_is_an_error(kb: KnowledgeBase) -> None:
    with pytest.raises(UserError, match="unknown filter field 'teem': no document has it; known: .*team"):
        kb.search("walrus", filter="teem=infra")


def test_user_metadata_at_ingest(kb: KnowledgeBase, corpus: Path) -> None:
    extra = corpus.parent / "extra"
    extra.mkdir()
    (extra / "runbook.md").write_text("# Runbook\n\nRestart the walrus service.\n", encoding="utf-8")
    report = kb.ingest([extra], metadata={"team": "sre", "reviewed": 2025})
    assert report.added == [str(extra / "runbook.md")]
    assert _names(kb.search("walrus", k=10, filter="team=sre and reviewed>2024")) == ["runbook.md"]
    # the same unchanged file with other metadata: updated in place, nothing embedded again
    again = kb.ingest([extra], metadata={"team": "platform"})
    assert again.updated == [str(extra / "runbook.md")] and again.reused == again.chunks > 0
    assert _names(kb.search("walrus", k=10, filter="team=platform")) == ["runbook.md"]
    assert kb.ingest([extra], metadata={"team": "platform"}).skipped == [str(extra / "runbook.md")]
    with pytest.raises(UserError):
        kb.ingest([extra], metadata={"": "x"})
    with pytest.raises(UserError):
        kb.ingest([extra], metadata={"team": ["a", "list"]})


def test_cli_meta_and_filter(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["kb", "create", "c", "--embedder", "fake:32"]).exit_code == 0
    result = runner.invoke(cli, ["kb", "ingest", "c", str(corpus), "--meta", "owner=ops", "--meta", "quarter=3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["kb", "search", "c", "walrus", "-k", "10", "--json", "--filter",
                                 "team=infra and year>=2023 and owner=ops and quarter<4"])
    assert result.exit_code == 0 and [Path(h["path"]).name for h in json.loads(result.stdout)] == ["infra-2024.md"]
    with pytest.raises(SystemExit) as info:
        main(["kb", "search", "c", "walrus", "--filter", "team=infra and (year>2023"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad filter at position 26: expected ')'" in err
    with pytest.raises(SystemExit):
        main(["kb", "ingest", "c", str(corpus), "--meta", "novalue"])
    assert "is not KEY=VALUE" in capsys.readouterr().err
