"""Small statistics for evaluation reports: percentiles, mean and spread, macro-F1, and the
paired bootstrap confidence interval of a metric difference.

Example::

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> macro_f1(["a", "a", "b"], ["a", "b", "b"])
    0.6666666666666666
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["percentile", "mean", "mean_spread", "macro_f1", "paired_bootstrap"]

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks (numpy's
    default, Hyndman & Fan 1996 definition 7); None for an empty list."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none (never NaN)."""
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def mean_spread(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "min", "max", "n"}`` over the values that are not None; ``std`` is the
    sample standard deviation (n - 1), None with fewer than two values."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    m = sum(xs) / len(xs)
    std = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return {"mean": m, "std": std, "min": min(xs), "max": max(xs), "n": len(xs)}


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None]) -> float | None:
    """Unweighted mean of per-class F1 over the classes in ``gold`` (macro-F1, as
    scikit-learn's ``f1_score(average="macro")`` with labels = the gold classes; a class with
    no true or predicted positives scores 0). A None prediction is wrong for every class.
    None when ``gold`` is empty."""
    labels = list(dict.fromkeys(gold))
    if not labels:
        return None
    scores = []
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted) if g == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def paired_bootstrap(a: Sequence[T], b: Sequence[T], metric: Callable[[Sequence[T]], float | None], *,
                     resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float | None]:
    """Confidence interval of ``metric(b) - metric(a)`` over paired items, by the paired
    bootstrap: resample item indices with replacement, recompute the metric of both runs on
    the same indices, take the percentile interval of the differences (Efron & Tibshirani,
    *An Introduction to the Bootstrap*, 1993, ch. 13 (percentile intervals) and ch. 15
    (paired data)). Resamples where either metric is undefined are skipped.

    Args:
        a, b: the two runs' items, aligned (``a[i]`` and ``b[i]`` are the same test item).
        metric: items -> value, or None when undefined on those items.
        resamples: bootstrap resamples.
        confidence: two-sided level, e.g. 0.95.
        seed: for repeatable intervals.

    Returns:
        ``{"a", "b", "diff", "low", "high", "p_better"}``: the two metric values, their
        difference, the interval bounds, and the share of resamples with ``b > a``; values are
        None when undefined.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"paired runs differ in length: {len(a)} and {len(b)}")
    va, vb = metric(a), metric(b)
    out: dict[str, float | None] = {"a": va, "b": vb, "diff": None if va is None or vb is None else vb - va,
                                    "low": None, "high": None, "p_better": None}
    n = len(a)
    if n == 0 or out["diff"] is None:
        return out
    rng = random.Random(seed)
    diffs: list[float] = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        ma, mb = metric([a[i] for i in idx]), metric([b[i] for i in idx])
        if ma is not None and mb is not None:
            diffs.append(mb - ma)
    if diffs:
        tail = (1 - confidence) / 2 * 100
        out["low"], out["high"] = percentile(diffs, tail), percentile(diffs, 100 - tail)
        out["p_better"] = sum(1 for d in diffs if d > 0) / len(diffs)
    return out
