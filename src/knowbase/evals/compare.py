"""Two evaluation runs side by side: per item, and per metric with a paired bootstrap interval.

The tool for prompt iteration: run the same test set with two prompt templates, two models,
two chunk sizes or two retrieval modes, then::

    cmp = compare_reports(EvalReport.load("runs/a"), EvalReport.load("runs/b"))
    for m in cmp.metrics: print(m["name"], m["diff"], m["low"], m["high"])

Items are paired by id (items in only one run are listed, not compared). Each metric's
difference ``B - A`` gets a 95% percentile interval from the paired bootstrap
(:func:`knowbase.evals.stats.paired_bootstrap`; Efron & Tibshirani 1993): an interval that
excludes 0 is a difference the test set supports; one that straddles 0 is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowbase.errors import UserError
from knowbase.evals.runner import EvalReport
from knowbase.evals.stats import paired_bootstrap
from knowbase.evals.summary import METRICS, Record

__all__ = ["Comparison", "compare_reports"]


@dataclass
class Comparison:
    """Result of :func:`compare_reports`.

    Attributes:
        a_name, b_name: labels of the two runs.
        metrics: per metric ``{"name", "a", "b", "diff", "low", "high", "p_better",
            "higher_is_better", "verdict"}``; verdict ``better``, ``worse`` or ``no clear difference``
            (the interval straddles 0), or ``unmeasured``.
        items: per paired item ``{"id", "kind", "prompt", "a_passed", "b_passed", "change",
            "a_output", "b_output", "a_failures", "b_failures"}``; change ``fixed``, ``broken``,
            ``same``.
        only_a, only_b: ids found in one run only.
    """

    a_name: str
    b_name: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    resamples: int = 1000
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a_name, "b": self.b_name, "resamples": self.resamples, "confidence": self.confidence,
                "metrics": self.metrics, "items": self.items, "only_a": self.only_a, "only_b": self.only_b}


def _verdict(diff: float | None, low: float | None, high: float | None, higher_is_better: bool) -> str:
    if diff is None:
        return "unmeasured"
    if low is None or high is None or (low <= 0 <= high):
        return "no clear difference"
    improved = low > 0 if higher_is_better else high < 0
    return "better" if improved else "worse"


def compare_reports(a: EvalReport, b: EvalReport, *, resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0, a_name: str = "A", b_name: str = "B") -> Comparison:
    """Compare run B against run A (first repetition of each).

    Raises:
        UserError: the runs share no item id.
    """
    recs_a: dict[str, Record] = {r["id"]: r for r in a.records}
    recs_b: dict[str, Record] = {r["id"]: r for r in b.records}
    common = [i for i in recs_a if i in recs_b]
    if not common:
        raise UserError("the two runs have no item id in common: were they run on the same test set?")
    pa = [recs_a[i] for i in common]
    pb = [recs_b[i] for i in common]
    cmp = Comparison(a_name, b_name, only_a=[i for i in recs_a if i not in recs_b],
                     only_b=[i for i in recs_b if i not in recs_a], resamples=resamples, confidence=confidence)
    for name, metric in METRICS.items():
        res = paired_bootstrap(pa, pb, metric.compute, resamples=resamples, confidence=confidence, seed=seed)
        if res["a"] is None and res["b"] is None:
            continue
        cmp.metrics.append({"name": name, **res, "higher_is_better": metric.higher_is_better, "unit": metric.unit,
                            "verdict": _verdict(res["diff"], res["low"], res["high"], metric.higher_is_better)})
    for ra, rb in zip(pa, pb):
        change = "same"
        if ra.get("passed") is False and rb.get("passed") is True:
            change = "fixed"
        elif ra.get("passed") is True and rb.get("passed") is False:
            change = "broken"
        cmp.items.append({"id": ra["id"], "kind": ra["kind"], "prompt": ra.get("prompt", ""),
                          "a_passed": ra.get("passed"), "b_passed": rb.get("passed"), "change": change,
                          "a_output": ra.get("output", ""), "b_output": rb.get("output", ""),
                          "a_failures": ra.get("failures", []), "b_failures": rb.get("failures", [])})
    order = {"broken": 0, "fixed": 1, "same": 2}
    cmp.items.sort(key=lambda r: (order[r["change"]], r["b_passed"] is not False))
    return cmp
