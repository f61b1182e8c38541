"""Run-level metrics from per-item records: the names a report shows, ``--fail-under`` checks
and ``eval compare`` bootstraps.

An item record is the JSON-able dict :mod:`knowbase.evals.runner` writes (``kind``,
``scores``, ``latency_s``, tokens, ``cost``). Every metric is a function of a list of records
that returns None when it is undefined on them (no item of that kind, no abstention, the
judge scored nothing), so an average never holds a NaN and an unmeasured item never
counts as 0. Definitions and sources: ``docs/evaluation.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from knowbase.errors import UserError
from knowbase.evals.scoring import HIT_KS, RECALL_KS
from knowbase.evals.stats import macro_f1, mean, percentile

Record = dict[str, Any]

__all__ = ["Metric", "METRICS", "summarize", "parse_thresholds", "check_thresholds"]


@dataclass(frozen=True, slots=True)
class Metric:
    """A run-level metric: ``compute(records) -> value | None``; ``higher_is_better`` tells
    comparisons which way is an improvement; ``unit`` is ``""`` for shares in [0, 1]."""

    name: str
    compute: Callable[[Sequence[Record]], float | None]
    higher_is_better: bool = True
    unit: str = ""
    description: str = ""


def _kind(records: Sequence[Record], kind: str) -> list[Record]:
    return [r for r in records if r.get("kind") == kind]


def _score_mean(name: str, kind: str) -> Callable[[Sequence[Record]], float | None]:
    def compute(records: Sequence[Record]) -> float | None:
        return mean([r["scores"].get(name) for r in _kind(records, kind)])
    return compute


def _ratio(num: str, den: str) -> Callable[[Sequence[Record]], float | None]:
    def compute(records: Sequence[Record]) -> float | None:
        kb = _kind(records, "kb")
        d = sum(r["scores"].get(den) or 0 for r in kb)
        return sum(r["scores"].get(num) or 0 for r in kb) / d if d else None
    return compute


def _abstention(which: str) -> Callable[[Sequence[Record]], float | None]:
    def compute(records: Sequence[Record]) -> float | None:
        kb = [r for r in _kind(records, "kb") if r.get("error") is None]
        tp = sum(1 for r in kb if r["scores"].get("abstained") and r["scores"].get("unanswerable"))
        den = sum(1 for r in kb if r["scores"].get("abstained" if which == "precision" else "unanswerable"))
        return tp / den if den else None
    return compute


def _classification(which: str) -> Callable[[Sequence[Record]], float | None]:
    def compute(records: Sequence[Record]) -> float | None:
        cl = _kind(records, "classification")
        if not cl:
            return None
        gold = [r["details"]["label"] for r in cl]
        pred = [r["details"].get("predicted") for r in cl]
        if which == "accuracy":
            return sum(1 for g, p in zip(gold, pred) if g == p) / len(cl)
        return macro_f1(gold, pred)
    return compute


def _latency(q: float) -> Callable[[Sequence[Record]], float | None]:
    def compute(records: Sequence[Record]) -> float | None:
        return percentile([r["latency_s"] for r in records if r.get("latency_s") is not None], q)
    return compute


def _tokens(records: Sequence[Record]) -> float | None:
    counted = [r for r in records if r.get("prompt_tokens") is not None]
    return mean([(r["prompt_tokens"] or 0) + (r.get("completion_tokens") or 0) for r in counted]) if counted else None


def _cost(records: Sequence[Record]) -> float | None:
    return mean([r.get("cost") for r in records])


def _error_rate(records: Sequence[Record]) -> float | None:
    return sum(1 for r in records if r.get("error")) / len(records) if records else None


def _pass_rate(records: Sequence[Record]) -> float | None:
    judged = [r for r in records if r.get("passed") is not None]
    return sum(1 for r in judged if r["passed"]) / len(judged) if judged else None


def _build() -> dict[str, Metric]:
    ms: list[Metric] = []
    for k in HIT_KS:
        ms.append(Metric(f"hit@{k}", _score_mean(f"hit@{k}", "kb"),
                         description=f"share of questions with an expected source in the top {k} documents"))
    for k in RECALL_KS:
        ms.append(Metric(f"recall@{k}", _score_mean(f"recall@{k}", "kb"),
                         description=f"share of the expected sources found in the top {k} documents"))
    ms += [
        Metric("mrr", _score_mean("mrr", "kb"), description="mean reciprocal rank of the first expected source"),
        Metric("ndcg@10", _score_mean("ndcg@10", "kb"), description="nDCG@10 by expected source (binary gains)"),
        Metric("key_fact_coverage", _score_mean("key_fact_coverage", "kb"),
               description="share of key facts found in the answer"),
        Metric("citation_validity", _ratio("citations_valid", "citations_checked"),
               description="cited passages that hold their claim's key terms / citations checked"),
        Metric("citation_precision", _ratio("cited_expected", "cited_judged"),
               description="citations of an expected source / citations (items with expected sources)"),
        Metric("abstention_precision", _abstention("precision"),
               description="abstentions on unanswerable items / all abstentions"),
        Metric("abstention_recall", _abstention("recall"),
               description="unanswerable items abstained on / unanswerable items"),
        Metric("faithfulness", _score_mean("faithfulness", "kb"), description="judge: answer supported by passages"),
        Metric("answer_correctness", _score_mean("answer_correctness", "kb"),
               description="judge: answer agrees with the reference answer"),
        Metric("sql_execution_accuracy", _score_mean("execution_match", "sql"),
               description="share of SQL questions whose result equals the expected result"),
        Metric("classification_accuracy", _classification("accuracy"), description="share of labels right"),
        Metric("classification_macro_f1", _classification("macro_f1"), description="unweighted mean per-class F1"),
        Metric("pass_rate", _pass_rate, description="share of items that passed every check"),
        Metric("error_rate", _error_rate, higher_is_better=False, description="share of items that failed to run"),
        Metric("latency_p50", _latency(50), higher_is_better=False, unit="s", description="median seconds per item"),
        Metric("latency_p95", _latency(95), higher_is_better=False, unit="s", description="95th percentile seconds"),
        Metric("tokens_per_item", _tokens, higher_is_better=False, unit="tokens",
               description="mean prompt + completion tokens per item"),
        Metric("cost_per_item", _cost, higher_is_better=False, unit="$", description="mean dollars per item"),
    ]
    return {m.name: m for m in ms}


METRICS: dict[str, Metric] = _build()
"""Every run-level metric by name, in report order."""


def summarize(records: Sequence[Record]) -> dict[str, float | None]:
    """Every metric of :data:`METRICS` on ``records`` (None where undefined)."""
    return {name: m.compute(records) for name, m in METRICS.items()}


def parse_thresholds(text: str) -> dict[str, float]:
    """``"recall@5=0.9,key_fact_coverage=0.8"`` -> ``{"recall@5": 0.9, ...}``.

    Raises:
        UserError: a malformed pair, an unknown metric name, or a value that is not a number.
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise UserError(f"--fail-under: {part!r} is not METRIC=VALUE", field="fail_under")
        if name not in METRICS:
            raise UserError(f"--fail-under: unknown metric {name!r} (known: {', '.join(METRICS)})",
                            field="fail_under")
        try:
            out[name] = float(value)
        except ValueError:
            raise UserError(f"--fail-under: {value.strip()!r} is not a number", field="fail_under") from None
    return out


def check_thresholds(metrics: dict[str, float | None], thresholds: dict[str, float]) -> list[str]:
    """Failed checks, one line each (``"recall@5 = 0.80 < 0.90"``); a metric that could not
    be measured fails too. For metrics where lower is better (latency, cost), the threshold
    is a ceiling."""
    failed = []
    for name, limit in thresholds.items():
        value = metrics.get(name)
        better_high = METRICS[name].higher_is_better
        if value is None:
            failed.append(f"{name} unmeasured (threshold {limit:g})")
        elif better_high and value < limit:
            failed.append(f"{name} = {value:.4g} < {limit:g}")
        elif not better_high and value > limit:
            failed.append(f"{name} = {value:.4g} > {limit:g}")
    return failed
