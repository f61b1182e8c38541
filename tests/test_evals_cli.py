"""``knowbase eval`` end to end: the shipped sample test sets on the bundled Kubernetes
sample (fake embedder; extractive answers or the scripted fake model), Text2SQL and
classification items, the judge, ``compare`` and ``generate``."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from knowbase.cli.main import cli, main
from knowbase.config import Settings
from knowbase.evals.datasets import load_testset
from knowbase.evals.generate import clean_question, generate_questions
from knowbase.evals.scoring import source_matches
from knowbase.knowledge.base import KnowledgeBase
from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "k8s"
SETS = REPO / "samples" / "k8s-evals"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge base (fake embedder) of every sample page the shipped test sets expect,
    in both languages, plus the rest of the workloads pages as distractors."""
    home = tmp_path_factory.mktemp("evalhome")
    suffixes = {s for name in ("en.yaml", "zh.yaml") for i in load_testset(SETS / name) for s in i.expected_sources}
    pages = sorted({p for p in SAMPLE.rglob("*.md") if any(source_matches(str(p), s) for s in suffixes)}
                   | set(SAMPLE.glob("*/concepts/workloads/**/*.md")))
    path = home / "k8s.db"
    kb = KnowledgeBase.create(str(path), embedder="fake", settings=Settings.load(home, tracing=False))
    kb.ingest([str(p) for p in pages])
    kb.close()
    return path


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_sample_set_extractive(sample_kb: Path, tmp_path: Path, lang: str) -> None:
    out = tmp_path / "run"
    code, stdout, _ = run("--no-trace", "eval", str(sample_kb), str(SETS / f"{lang}.yaml"), "--out", str(out),
                          "--extractive", "--json")
    assert code == 0, stdout
    m = json.loads(stdout)["metrics"]
    assert m["recall@5"] >= 0.9 and m["hit@1"] >= 0.6 and 0 < m["mrr"] <= 1
    assert m["citation_validity"] == 1.0  # extractive answers quote the passages they cite
    assert 0.3 < m["key_fact_coverage"] < 1.0
    assert m["abstention_recall"] is not None and m["sql_execution_accuracy"] is None
    n = len(load_testset(SETS / f"{lang}.yaml"))
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests") or 0) == n
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert len(report["runs"][0]) == n and report["config"]["model"] == "extractive"
    assert "<svg" in (out / "report.html").read_text(encoding="utf-8")


def test_fake_model_that_always_abstains(sample_kb: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run("--no-trace", "eval", str(sample_kb), str(SETS / "en.yaml"), "--out",
                               str(tmp_path / "nf"), "--model", "fake:NOT FOUND", "--json",
                               "--fail-under", "abstention_recall=0.9,key_fact_coverage=0.5")
    m = json.loads(stdout)["metrics"]
    ts = load_testset(SETS / "en.yaml")
    unanswerable = sum(i.unanswerable for i in ts)
    assert m["abstention_recall"] == 1.0
    assert m["abstention_precision"] == pytest.approx(unanswerable / len(ts))
    assert m["key_fact_coverage"] == 0.0 and m["citation_validity"] is None
    assert code == 1 and "below threshold: key_fact_coverage = 0 < 0.5" in stderr
    assert "abstention_recall" not in stderr


def test_judge_and_compare(sample_kb: Path, tmp_path: Path) -> None:
    tset = tmp_path / "two.yaml"
    tset.write_text("- id: surge\n  question: What is the default maxSurge of a Deployment rolling update?\n"
                    "  expected_sources: [deployment.md]\n  key_facts: ['25%']\n  reference: 25%\n"
                    "- id: none\n  question: How do I bake sourdough bread?\n  unanswerable: true\n",
                    encoding="utf-8")
    answer = "fake:The default maxSurge of a Deployment rolling update is 25% [1]."
    judge = 'fake:{"verdict": "yes", "reason": "stated in passage 1"}'
    code, stdout, _ = run("--no-trace", "eval", str(sample_kb), str(tset), "--out", str(tmp_path / "b"),
                          "--model", answer, "--judge", judge, "--json", "--no-verify")
    b = json.loads(stdout)["metrics"]
    assert b["faithfulness"] == 1.0 and b["answer_correctness"] == 1.0 and b["key_fact_coverage"] == 1.0
    code_a, _, _ = run("--no-trace", "eval", str(sample_kb), str(tset), "--out", str(tmp_path / "a"),
                       "--model", "fake:NOT FOUND")
    assert code_a == 0
    code, stdout, _ = run("eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                          str(tmp_path / "cmp"), "--json", "--resamples", "200")
    assert code == 0
    cmp = json.loads(stdout)
    kfc = next(m for m in cmp["metrics"] if m["name"] == "key_fact_coverage")
    assert (kfc["a"], kfc["b"], kfc["diff"]) == (0.0, 1.0, 1.0)
    assert {i["id"]: i["change"] for i in cmp["items"]}["surge"] == "fixed"
    assert (tmp_path / "cmp" / "comparison.html").read_text(encoding="utf-8").count("<svg") == 2


def test_repeat_reports_spread(sample_kb: Path, tmp_path: Path) -> None:
    tset = tmp_path / "one.jsonl"
    tset.write_text('{"question": "What is a Pod?", "expected_sources": ["pods/_index.md"]}\n', encoding="utf-8")
    code, stdout, _ = run("--no-trace", "eval", str(sample_kb), str(tset), "--out", str(tmp_path / "r"),
                          "--extractive", "--repeat", "3", "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["spread"]["hit@5"]["n"] == 3 and data["spread"]["hit@5"]["std"] == 0.0
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert [r["run"] for run_ in report["runs"] for r in run_] == [0, 1, 2]


def test_sql_items_execution_accuracy(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE items (name TEXT, price REAL); "
                           "INSERT INTO items VALUES ('pen', 1.5), ('book', 12.0), ('bag', 30.0);")
    tset = tmp_path / "sql.yaml"
    tset.write_text("- id: count\n  question: How many items are there?\n  sql: SELECT COUNT(*) FROM items\n"
                    "- id: cheap\n  question: Which items cost under 20?\n  expected_rows: [[pen], [book]]\n",
                    encoding="utf-8")
    code, stdout, stderr = run("--no-trace", "eval", "-", str(tset), "--db", str(db), "--out", str(tmp_path / "o"),
                               "--model", "fake:SELECT COUNT(*) FROM items", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["metrics"]["sql_execution_accuracy"] == 0.5
    records = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))["runs"][0]
    assert [(r["id"], r["passed"]) for r in records] == [("count", True), ("cheap", False)]


def test_classification_items(tmp_path: Path) -> None:
    tset = tmp_path / "cl.yaml"
    tset.write_text("labels: [positive, negative]\nitems:\n  - {text: I love it, label: positive}\n"
                    "  - {text: Great, label: positive}\n  - {text: Awful, label: negative}\n", encoding="utf-8")
    code, stdout, _ = run("--no-trace", "eval", "-", str(tset), "--out", str(tmp_path / "o"), "--model", "fake:A",
                          "--json")
    m = json.loads(stdout)["metrics"]
    # always "positive": accuracy 2/3; F1 positive = 0.8, negative = 0 -> macro-F1 0.4
    assert m["classification_accuracy"] == pytest.approx(2 / 3) and m["classification_macro_f1"] == pytest.approx(0.4)
    assert code == 0


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- question: a?\n- question: b?\n  expected: x.md\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "-", str(bad), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and f"{bad}:2: unknown key 'expected'" in err and "\n" not in err
    sql = tmp_path / "sql.yaml"
    sql.write_text("- question: n?\n  sql: SELECT 1\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["eval", "-", str(sql), "--out", str(tmp_path / "o")])
    assert "need a database (--db)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "-", str(sql), "--fail-under", "recal@5=1"])
    assert "unknown metric 'recal@5'" in capsys.readouterr().err


def test_model_errors_are_recorded_and_exit_nonzero(sample_kb: Path, tmp_path: Path) -> None:
    tset = tmp_path / "one.yaml"
    tset.write_text("- question: What is the default maxSurge of a Deployment?\n  key_facts: ['25%']\n",
                    encoding="utf-8")
    code, stdout, stderr = run("--no-trace", "eval", str(sample_kb), str(tset), "--out", str(tmp_path / "o"),
                               "--model", "openai:m@http://127.0.0.1:9/v1", "--json")
    assert code == 1 and "1 item(s) could not run" in stderr
    assert json.loads(stdout)["metrics"]["error_rate"] == 1.0


# --- generate ------------------------------------------------------------------------------
def test_clean_question() -> None:
    assert clean_question("\n1. Question: **What is a Pod?**\nmore") == "What is a Pod?"
    assert clean_question("问题：什么是 Pod？") == "什么是 Pod？"


def _question_from_passage(messages, _options):  # type: ignore[no-untyped-def]
    text = messages[-1].content.split("Passage (", 1)[1]
    title = text.split(")", 1)[0]
    return f"What does the documentation say about {title}?"


def test_generate_questions_grounded_and_deduplicated(sample_kb: Path) -> None:
    with KnowledgeBase.open(str(sample_kb), settings=Settings.load(tracing=False)) as kb:
        drafts = generate_questions(kb, model=ChatModel(FakeChat(_question_from_passage)), n=5)
        assert len(drafts.items) == 5
        docs = [d.path for d in kb.documents()]
        for item in drafts.items:
            assert item.question.startswith("What does the documentation say about")
            assert sum(source_matches(p, item.expected_sources[0]) for p in docs) == 1
        assert len({i.expected_sources[0] for i in drafts.items}) == 5  # one chunk per document first
        same = generate_questions(kb, model=ChatModel(FakeChat(default="What is a Deployment rollout?")), n=3,
                                  max_attempts=6)
        reasons = {r["reason"].split(" (")[0] for r in same.rejected}
        assert len(same.items) <= 1 and reasons <= {"near duplicate of a kept question", "not grounded in its passage"}


def test_generate_cli_writes_reviewable_yaml(sample_kb: Path, tmp_path: Path) -> None:
    out = tmp_path / "draft.yaml"
    code, stdout, stderr = run("--no-trace", "eval", "generate", str(sample_kb), "-n", "3", "--model",
                               "fake:Hello there", "--out", str(out))
    assert code == 0 and "0 questions written" in stdout and "rejected" in stderr and "not a question" in stderr
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert data["items"] == [] and out.read_text(encoding="utf-8").startswith("# Draft questions")


@pytest.mark.slow
def test_sample_subset_with_the_real_embedder(tmp_path: Path) -> None:
    """Four English and two Chinese sample questions (and two unanswerable ones) on their own
    pages, embedded by the default MiniLM: retrieval finds the expected page."""
    from knowbase.evals.datasets import EvalSet
    from knowbase.evals.runner import EvalRunner

    en, zh = load_testset(SETS / "en.yaml"), load_testset(SETS / "zh.yaml")
    items = ([i for i in en if not i.unanswerable][:4] + [i for i in zh if not i.unanswerable][:2]
             + [i for i in en if i.unanswerable][:2])
    suffixes = {s for i in items for s in i.expected_sources}
    pages = sorted(p for p in SAMPLE.rglob("*.md") if any(source_matches(str(p), s) for s in suffixes))
    settings = Settings.load(tracing=False)
    kb = KnowledgeBase.create("k8s-real", settings=settings)  # the default embedder: MiniLM int8 on ONNX Runtime
    kb.ingest([str(p) for p in pages])
    report = EvalRunner(kb=kb, extractive=True).run(EvalSet(name="subset", items=tuple(items)))
    kb.close()
    m = report.metrics
    assert m["recall@5"] is not None and m["recall@5"] >= 0.8 and m["mrr"] >= 0.6
    assert m["citation_validity"] == 1.0 and m["error_rate"] == 0.0
    assert len(report.records) == 8
