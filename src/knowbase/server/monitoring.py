"""Monitoring figures for the operator view, read from ``logs.db`` (model calls and spans) and
the server's feedback, in time buckets.

Per bucket and model (from ``calls``): chat calls, errors, latency p50/p95 (ms), prompt and
completion tokens. Per bucket and knowledge base (from the ``kb`` and ``kb.ask`` spans of each
ask, joined by trace id): asks, abstentions (the ``abstained`` attribute), errors, ask latency
p50/p95 (ms), and feedback up/down on those traces. Percentiles are nearest-rank.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _rows(path: Path, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(sql, tuple(args)))
    except sqlite3.OperationalError:  # no such table yet
        return []
    finally:
        conn.close()


def monitoring(logs_path: Path, feedback: Sequence[dict[str, Any]], *, since: float,
               bucket_seconds: int = 3600) -> dict[str, Any]:
    """Figures since ``since`` (Unix seconds) in buckets of ``bucket_seconds``.

    Args:
        logs_path: ``logs.db``.
        feedback: feedback rows (``trace_id``, ``rating``, ``created``).

    Returns:
        ``{"since", "bucket_seconds", "models": [...], "kbs": [...]}``, each list ordered by
        bucket start then name; every row has ``start`` (Unix seconds of the bucket).
    """
    def bucket(t: float) -> int:
        return int(t // bucket_seconds * bucket_seconds)

    models: dict[tuple[int, str], dict[str, Any]] = {}
    for started, model, latency, p_tok, c_tok, error in _rows(
            logs_path, "SELECT started, model, latency_ms, prompt_tokens, completion_tokens, error FROM calls "
                       "WHERE kind = 'chat' AND started >= ?", [since]):
        row = models.setdefault((bucket(started), model), {"start": bucket(started), "model": model, "calls": 0,
                                                           "errors": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                                           "_lat": []})
        row["calls"] += 1
        row["errors"] += 1 if error else 0
        row["prompt_tokens"] += p_tok or 0
        row["completion_tokens"] += c_tok or 0
        if latency is not None and not error:
            row["_lat"].append(float(latency))

    kb_of: dict[str, str] = {}
    asks: list[tuple[str, float, float | None, str, dict[str, Any]]] = []
    for trace_id, name, started, ended, status, attributes in _rows(
            logs_path, "SELECT trace_id, name, started, ended, status, attributes FROM spans "
                       "WHERE name IN ('kb', 'kb.ask') AND started >= ?", [since]):
        attrs = json.loads(attributes) if attributes else {}
        if name == "kb" and attrs.get("kb"):
            kb_of[trace_id] = str(attrs["kb"])
        elif name == "kb.ask":
            asks.append((trace_id, started, ended, status, attrs))
    ratings: dict[str, list[str]] = {}
    for f in feedback:
        ratings.setdefault(str(f["trace_id"]), []).append(str(f["rating"]))
    kbs: dict[tuple[int, str], dict[str, Any]] = {}
    for trace_id, started, ended, status, attrs in asks:
        kb = kb_of.get(trace_id, "?")
        row = kbs.setdefault((bucket(started), kb), {"start": bucket(started), "kb": kb, "asks": 0, "abstained": 0,
                                                    "errors": 0, "feedback_up": 0, "feedback_down": 0, "_lat": []})
        row["asks"] += 1
        row["abstained"] += 1 if attrs.get("abstained") else 0
        row["errors"] += 1 if status == "error" else 0
        if ended is not None and status != "error":
            row["_lat"].append((ended - started) * 1000)
        for rating in ratings.get(trace_id, []):
            row["feedback_up" if rating == "up" else "feedback_down"] += 1

    def finish(rows: dict[tuple[int, str], dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for key in sorted(rows):
            row = rows[key]
            lat = row.pop("_lat")
            row["p50_ms"], row["p95_ms"] = nearest_rank(lat, 50), nearest_rank(lat, 95)
            out.append(row)
        return out

    return {"since": since, "bucket_seconds": bucket_seconds, "models": finish(models), "kbs": finish(kbs)}
