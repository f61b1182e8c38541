"""knowbase.evals units: test-set loading and its errors, per-item scores, run metrics,
statistics, the judge, comparisons and reports (no real model)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from knowbase.config import Settings
from knowbase.errors import UserError
from knowbase.evals.compare import compare_reports
from knowbase.evals.datasets import EvalItem, EvalSetError, dump_items, load_testset
from knowbase.evals.judge import Judge
from knowbase.evals.report import junit_xml, report_html, write_report
from knowbase.evals.runner import EvalReport
from knowbase.evals.scoring import (
    citation_checks,
    has_order_by,
    key_fact_coverage,
    result_rows_match,
    retrieval_scores,
    source_matches,
)
from knowbase.evals.stats import macro_f1, mean, mean_spread, paired_bootstrap, percentile
from knowbase.evals.summary import check_thresholds, parse_thresholds, summarize
from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat, json_reply
from knowbase.tracing.pricing import Prices

REPO = Path(__file__).resolve().parent.parent


# --- test sets ---------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_yaml_items_of_every_kind(tmp_path: Path) -> None:
    p = _write(tmp_path, "set.yaml", """name: mixed
items:
  - id: q1
    question: What is the default maxSurge?
    expected_sources: deployment.md
    key_facts: ["25%", [max surge, maxSurge]]
    reference: 25%
  - question: Capital of France?
    unanswerable: true
  - question: How many albums?
    sql: SELECT COUNT(*) FROM albums
  - text: I love it
    label: positive
""")
    ts = load_testset(p)
    assert ts.name == "mixed" and len(ts) == 4
    kb, none, sql, cl = ts.items
    assert kb.kind == "kb" and kb.expected_sources == ("deployment.md",)
    assert kb.key_facts == (("25%",), ("max surge", "maxSurge")) and kb.line == 3
    assert none.unanswerable and none.id == "kb-8"
    assert sql.kind == "sql" and sql.sql == "SELECT COUNT(*) FROM albums"
    assert cl.kind == "classification" and cl.label == "positive"
    assert ts.kinds() == ["kb", "sql", "classification"]


def test_jsonl_error_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "set.jsonl", '{"question": "a?"}\n\n{"question": "b?", "expected_source": "x.md"}\n')
    with pytest.raises(EvalSetError) as err:
        load_testset(p)
    assert err.value.line == 3 and err.value.field == "expected_source"
    assert f"{p}:3" in str(err.value) and "unknown key 'expected_source'" in str(err.value)


def test_jsonl_bad_json_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "set.jsonl", '{"question": "a?"}\n{"question": "b?",\n')
    with pytest.raises(EvalSetError) as err:
        load_testset(p)
    assert err.value.line == 2 and "not valid JSON" in str(err.value)


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("- question: a?\n- question: b?\n  unanswerable: yes-ish\n", 2, "'unanswerable' must be true or false"),
    ("- question: a?\n  id: x\n- question: b?\n  id: x\n", 3, "duplicate id 'x' (first on line 1)"),
    ("- question: a?\n- question: [b\n", 3, "not valid YAML"),
    ("- question: ''\n", 1, "'question' is empty"),
    ("- sql: SELECT 1\n", 1, "missing 'question'"),
    ("- question: q?\n  kind: sql\n", 1, "needs 'sql'"),
    ("- text: t\n", 1, "missing 'label'"),
    ("- question: a?\n  unanswerable: true\n  key_facts: [x]\n", 1, "cannot have"),
    ("- &a question: a?\n- *a\n", 1, "anchors and aliases"),
])
def test_yaml_errors_name_the_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    with pytest.raises(EvalSetError) as err:
        load_testset(_write(tmp_path, "set.yaml", text))
    assert err.value.line == line, str(err.value)
    assert needle in str(err.value)


def test_yaml_top_level_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="unknown top-level key 'itemz'"):
        load_testset(_write(tmp_path, "a.yaml", "itemz: []\n"))
    with pytest.raises(EvalSetError, match="expected a list of items"):
        load_testset(_write(tmp_path, "b.yaml", "just text\n"))
    with pytest.raises(EvalSetError, match="cannot read"):
        load_testset(tmp_path / "missing.yaml")


def test_dump_items_round_trips(tmp_path: Path) -> None:
    items = [EvalItem(id="g1", kind="kb", question="Wie?", expected_sources=("a/b.md",), key_facts=(("x", "y"),)),
             EvalItem(id="g2", kind="kb", question="None?", unanswerable=True)]
    p = _write(tmp_path, "d.yaml", dump_items(items, name="draft", header="review me"))
    assert p.read_text(encoding="utf-8").startswith("# review me\n")
    back = load_testset(p)
    assert [(i.id, i.question, i.expected_sources, i.key_facts, i.unanswerable) for i in back] == [
        ("g1", "Wie?", ("a/b.md",), (("x", "y"),), False), ("g2", "None?", (), (), True)]


@pytest.mark.parametrize("name", ["en.yaml", "zh.yaml"])
def test_shipped_sample_sets_load(name: str) -> None:
    ts = load_testset(REPO / "samples" / "k8s-evals" / name)
    assert len(ts) >= 38 and ts.kinds() == ["kb"]
    assert sum(i.unanswerable for i in ts) >= 8
    for item in ts:
        for src in item.expected_sources:
            hits = list((REPO / "samples" / "k8s").rglob(Path(src).name))
            assert any(source_matches(str(h), src) for h in hits), f"{item.id}: {src} is not in the sample"


# --- per-item scores ---------------------------------------------------------------------
def test_source_suffix_matching() -> None:
    assert source_matches("/s/en/concepts/workloads/pods/_index.md", "pods/_index.md")
    assert source_matches("C:\\s\\en\\job.md", "job.md")
    assert not source_matches("/s/en/cronjob.md", "job.md")
    assert not source_matches("/s/en/job.md", "")


def test_retrieval_scores_by_expected_source() -> None:
    paths = ["/s/en/a.md", "/s/zh-cn/a.md", "/s/en/b.md", "/s/en/c.md"]
    s = retrieval_scores(paths, ["c.md"])
    # the two language versions of a.md are two different (irrelevant) documents; c.md is third
    assert s["hit@1"] == 0.0 and s["hit@3"] == 0.0 and s["hit@5"] == 1.0
    assert s["mrr"] == pytest.approx(1 / 4)
    assert s["ndcg@10"] == pytest.approx(1 / math.log2(5))
    both = retrieval_scores(paths, ["a.md", "b.md"])
    # en/a.md and zh-cn/a.md match one expected source: ranked [a.md, b.md, c.md]
    assert both["hit@1"] == 1.0 and both["recall@5"] == 1.0 and both["ndcg@10"] == pytest.approx(1.0)


def test_key_fact_coverage_words_alternatives_and_markers() -> None:
    assert key_fact_coverage([("25%",), ("Forbid", "forbidden")], "maxSurge is 25% [1]; policy forbidden.") == 1.0
    assert key_fact_coverage([("2",)], "See passage [2].") == 0.0  # the marker is not the fact
    assert key_fact_coverage([("10",)], "It keeps 100 revisions.") == 0.0  # whole numbers only
    assert key_fact_coverage([("默认值",), ("3",)], "默认值是 1。") == 0.5
    assert key_fact_coverage([], "anything") == 1.0


def test_citation_checks_attach_markers_to_their_claim() -> None:
    passages = {1: "A Deployment keeps ten old ReplicaSets for rollback by default.",
                2: "The kubelet restarts containers that fail their liveness probe."}
    text = ("A Deployment keeps ten old ReplicaSets for rollback. [1] The kubelet restarts failing containers [2] "
            "A Deployment keeps ReplicaSets [2]")
    checks = citation_checks(text, passages)
    assert [(c["n"], c["valid"]) for c in checks] == [(1, True), (2, True), (2, False)]
    assert checks[2]["claim"] == "A Deployment keeps ReplicaSets"
    missing = citation_checks("Deployments roll out. [5]", passages)
    assert missing == [{"n": 5, "claim": "Deployments roll out.", "support": 0.0, "valid": False}]


def test_sql_result_matching() -> None:
    assert result_rows_match([(1, "a"), (2, "b")], [[2, "b"], [1, "a"]])
    assert not result_rows_match([(1, "a"), (2, "b")], [[2, "b"], [1, "a"]], ordered=True)
    assert result_rows_match([(3.0,)], [(3,)]) and result_rows_match([(True,)], [(1,)])
    assert not result_rows_match([(1,)], [(1,), (1,)])
    assert has_order_by("SELECT a FROM t ORDER BY a") and not has_order_by("SELECT (SELECT 1 ORDER BY 1) FROM t")
    assert not has_order_by("SELECT 'ORDER BY' FROM t")


# --- statistics ----------------------------------------------------------------------------
def test_stats() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None
    assert mean([1.0, None, 3.0]) == 2.0 and mean([None]) is None
    assert mean_spread([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    # class a: P=1/1 R=1/2 F1=2/3; class b: P=1/2 R=1/1 F1=2/3; macro = 2/3
    assert macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    assert macro_f1(["a", "b"], [None, None]) == 0.0


def test_paired_bootstrap_interval() -> None:
    a = [0.0] * 20 + [1.0] * 20
    b = [1.0] * 40
    res = paired_bootstrap(a, b, lambda xs: sum(xs) / len(xs), resamples=500)
    assert res["diff"] == pytest.approx(0.5)
    assert 0.3 < res["low"] < 0.5 < res["high"] <= 0.7 and res["p_better"] == 1.0
    same = paired_bootstrap(a, a, lambda xs: sum(xs) / len(xs), resamples=200)
    assert same["low"] == same["high"] == 0.0
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [], lambda xs: 0.0)


# --- run metrics ---------------------------------------------------------------------------
def _kb_rec(i: int, *, abstained: bool, unanswerable: bool, hit: float = 1.0, cov: float | None = 1.0,
            latency: float = 1.0, faith: float | None = None, passed: bool = True) -> dict:
    scores: dict = {"abstained": abstained, "unanswerable": unanswerable}
    if not unanswerable:
        scores.update({"hit@1": hit, "hit@3": hit, "hit@5": hit, "recall@5": hit, "recall@10": hit, "mrr": hit,
                       "ndcg@10": hit, "citations_checked": 2, "citations_valid": 1, "cited_judged": 2,
                       "cited_expected": 2})
        if cov is not None:
            scores["key_fact_coverage"] = cov
    if faith is not None or "faith" in str(i):
        scores["faithfulness"] = faith
    return {"id": f"q{i}", "kind": "kb", "prompt": f"question {i}", "output": "x", "passed": passed, "failures": [],
            "error": None, "latency_s": latency, "prompt_tokens": 100, "completion_tokens": 20, "cost": None,
            "scores": scores, "details": {}}


def test_summarize_abstention_and_unmeasured() -> None:
    recs = [_kb_rec(1, abstained=False, unanswerable=False, faith=1.0),
            _kb_rec(2, abstained=True, unanswerable=False, hit=0.0, cov=0.0, faith=None),
            _kb_rec(3, abstained=True, unanswerable=True),
            _kb_rec(4, abstained=False, unanswerable=True, latency=3.0)]
    m = summarize(recs)
    assert m["abstention_precision"] == 0.5 and m["abstention_recall"] == 0.5
    assert m["hit@1"] == 0.5 and m["key_fact_coverage"] == 0.5
    assert m["citation_validity"] == 0.5 and m["citation_precision"] == 1.0
    assert m["faithfulness"] == 1.0  # the unmeasured verdict is left out, not averaged as NaN or 0
    assert m["answer_correctness"] is None and m["sql_execution_accuracy"] is None
    assert m["latency_p50"] == 1.0 and m["latency_p95"] == pytest.approx(2.7)
    assert m["tokens_per_item"] == 120.0 and m["cost_per_item"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())


def test_thresholds() -> None:
    t = parse_thresholds("recall@5=0.9, latency_p95=2")
    assert t == {"recall@5": 0.9, "latency_p95": 2.0}
    failed = check_thresholds({"recall@5": 0.8, "latency_p95": 3.0}, t)
    assert failed == ["recall@5 = 0.8 < 0.9", "latency_p95 = 3 > 2"]
    assert check_thresholds({"recall@5": None}, {"recall@5": 0.5}) == ["recall@5 unmeasured (threshold 0.5)"]
    with pytest.raises(UserError, match="unknown metric 'recal@5'"):
        parse_thresholds("recal@5=0.9")
    with pytest.raises(UserError, match="not a number"):
        parse_thresholds("recall@5=high")


def test_prices() -> None:
    p = Prices.from_mapping({"openai:gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}, "deepseek-chat": [0.27, 1.1]})
    assert p.cost("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert p.cost("openai:deepseek-chat", 1000, 0) == pytest.approx(0.00027)
    assert p.cost("llamacpp:qwen2.5-coder-1.5b", 5000, 100) == 0.0
    assert p.cost("openai:unknown", 10, 10) is None
    from knowbase.errors import ConfigError

    with pytest.raises(ConfigError, match="price of 'x'"):
        Prices.from_mapping({"x": {"prompt": 1}})


# --- judge -------------------------------------------------------------------------------------
def test_judge_verdicts_retries_and_unmeasured() -> None:
    backend = FakeChat(["not json at all", json_reply({"verdict": "partly", "reason": "one claim unsupported"})])
    judge = Judge(ChatModel(backend))
    score = judge.faithfulness("q?", "answer [1]", ["passage"])
    assert (score.score, score.reason, score.attempts) == (0.5, "one claim unsupported", 2)
    assert "passage" in backend.calls[0][0][-1].content
    bad = Judge(ChatModel(FakeChat(default='{"verdict": "maybe"}')), max_attempts=2)
    res = bad.correctness("q?", "a", "ref")
    assert res.score is None and res.reason.startswith("unmeasured") and res.attempts == 2


def test_judge_cache_by_model_and_prompt(knowbase_home: Path) -> None:
    settings = Settings.load()
    spec = 'fake:{"verdict": "yes", "reason": "ok"}'
    first = Judge.from_spec(spec, settings=settings)
    assert first.faithfulness("q?", "a", ["p"]).score == 1.0
    second = Judge.from_spec(spec, settings=settings)
    assert second.faithfulness("q?", "a", ["p"]).score == 1.0
    from knowbase.models.cache import ResponseCache

    assert ResponseCache(knowbase_home / "judge_cache.db").stats() == {"entries": 1, "hits": 1}


# --- reports and comparisons -------------------------------------------------------------------
def _report(passes: list[bool], name: str = "set") -> EvalReport:
    recs = [_kb_rec(i, abstained=False, unanswerable=False, hit=1.0 if ok else 0.0, cov=1.0 if ok else 0.0,
                    passed=ok) for i, ok in enumerate(passes)]
    return EvalReport(name=name, runs=[recs], config={"model": "fake"})


def test_compare_reports_pairs_items_and_bootstraps() -> None:
    a = _report([True] * 10 + [False] * 30)
    b = _report([True] * 40)
    cmp = compare_reports(a, b, resamples=300)
    hit = next(m for m in cmp.metrics if m["name"] == "hit@1")
    assert hit["a"] == 0.25 and hit["b"] == 1.0 and hit["diff"] == 0.75 and hit["verdict"] == "better"
    lat = next(m for m in cmp.metrics if m["name"] == "latency_p50")
    assert lat["diff"] == 0.0 and lat["verdict"] == "no clear difference"
    assert [i["change"] for i in cmp.items[:30]] == ["fixed"] * 30
    with pytest.raises(UserError, match="no item id in common"):
        compare_reports(a, EvalReport(name="x", runs=[[]]))
    with pytest.raises(UserError, match="lacks 'id'"):
        EvalReport.from_dict({"name": "x", "runs": [[{"id": "q1"}]]})


def test_reports_are_self_contained_and_escaped(tmp_path: Path) -> None:
    rep = _report([True, False])
    rep.records[1]["prompt"] = "<script>alert(1)</script>"
    rep.records[1]["failures"] = ["key facts missing: <b>x</b>"]
    paths = write_report(rep, tmp_path / "out", threshold_failures=["hit@1 = 0.5 < 0.9"],
                         thresholds=["hit@1=0.9"])
    html = paths["html"].read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<svg" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert html.index("q1") < html.index("q0")  # failures first
    suites = ET.fromstring(paths["junit"].read_text(encoding="utf-8"))
    items, gates = suites.findall("testsuite")
    assert items.get("tests") == "2" and items.get("failures") == "1"
    assert gates.find("testcase/failure").get("message") == "hit@1 = 0.5 < 0.9"
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["metrics"]["hit@1"] == 0.5 and EvalReport.load(tmp_path / "out").records[0]["id"] == "q0"
    assert "NaN" not in paths["json"].read_text(encoding="utf-8")


def test_repeat_reports_mean_and_spread() -> None:
    rep = EvalReport(name="r", runs=[_report([True, True]).records, _report([True, False]).records])
    assert rep.metrics["hit@1"] == 0.75
    assert rep.spread["hit@1"]["std"] == pytest.approx(math.sqrt(0.125)) and rep.spread["hit@1"]["n"] == 2
    assert "std" in report_html(rep) and junit_xml(rep).count("<testcase") == 2
