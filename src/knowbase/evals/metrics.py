"""Ranking metrics for retrieval evaluation: nDCG@k, recall@k, precision@k, reciprocal rank.

Definitions follow ``trec_eval`` as used by BEIR (Thakur et al. 2021, via ``pytrec_eval``),
so figures here are comparable with published BEIR tables:

* a *run* is a ranked list of document ids for one query, best first;
* *qrels* map a document id to a graded relevance (``int``); grade ``<= 0`` is not relevant;
* nDCG@k uses linear gains ``rel`` and the discount ``1 / log2(rank + 1)`` (Järvelin &
  Kekäläinen 2002, the ``ndcg_cut`` measure of trec_eval); the ideal ranking is built from
  every judged document of the query, not only the retrieved ones;
* recall@k is the share of the relevant documents found in the top ``k``;
* reciprocal rank is ``1 / rank`` of the first relevant document (0 when none is found
  within the cut-off); its mean over queries is MRR (Voorhees 1999).

Repeated ids in a run count once, at their first (best) position.

Example::

    >>> qrels = {"d1": 1, "d3": 1}
    >>> round(ndcg_at_k(["d1", "d2", "d3"], qrels, k=10), 4)
    0.9197
    >>> recall_at_k(["d1", "d2", "d3"], qrels, k=2)
    0.5
    >>> reciprocal_rank(["d2", "d1"], qrels)
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from knowbase.errors import UserError

__all__ = [
    "ndcg_at_k",
    "recall_at_k",
    "precision_at_k",
    "reciprocal_rank",
    "evaluate_run",
]


def _dedupe(ranked: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
    return out


def _check_k(k: int) -> None:
    if k < 1:
        raise UserError(f"cut-off k must be >= 1, got {k}", k=k)


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], *, k: int = 10) -> float:
    """Normalised discounted cumulative gain of one ranked list, cut at ``k``.

    Args:
        ranked: document ids, best first.
        qrels: graded relevance per document id; grades ``<= 0`` are not relevant.
        k: cut-off rank (>= 1).

    Returns:
        nDCG@k in [0, 1]; 0.0 when the query has no relevant document.

    Raises:
        UserError: ``k`` is below 1 (field ``k``).
    """
    _check_k(k)
    gains = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    if ideal == 0:
        return 0.0
    dcg = sum(max(qrels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(_dedupe(ranked)[:k]))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], *, k: int = 10) -> float:
    """Share of the relevant documents that appear in the top ``k``.

    Returns:
        recall@k in [0, 1]; 0.0 when the query has no relevant document.

    Raises:
        UserError: ``k`` is below 1 (field ``k``).
    """
    _check_k(k)
    relevant = {d for d, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedupe(ranked)[:k])) / len(relevant)


def precision_at_k(ranked: Sequence[str], qrels: Mapping[str, int], *, k: int = 10) -> float:
    """Share of the top ``k`` positions that hold a relevant document (divides by ``k``,
    as trec_eval ``P_k`` does, even when fewer than ``k`` ids were returned).

    Raises:
        UserError: ``k`` is below 1 (field ``k``).
    """
    _check_k(k)
    return sum(1 for d in _dedupe(ranked)[:k] if qrels.get(d, 0) > 0) / k


def reciprocal_rank(ranked: Sequence[str], qrels: Mapping[str, int], *, k: int | None = None) -> float:
    """``1 / rank`` of the first relevant document (rank from 1), looking at the top ``k``
    only when ``k`` is given; 0.0 when none is found.

    Raises:
        UserError: ``k`` is given and below 1 (field ``k``).
    """
    if k is not None:
        _check_k(k)
    for i, doc_id in enumerate(_dedupe(ranked)[:k] if k is not None else _dedupe(ranked)):
        if qrels.get(doc_id, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate_run(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], *,
                 ndcg_k: Sequence[int] = (10,), recall_k: Sequence[int] = (10,),
                 mrr_k: int | None = None) -> dict[str, float]:
    """Mean metrics of a whole run over the judged queries.

    Every query in ``qrels`` with at least one relevant document counts; a query missing
    from ``run`` scores 0 on every metric (as in BEIR). Queries in ``run`` without
    judgments are ignored.

    Args:
        run: ranked document ids per query id, best first.
        qrels: graded relevance per query id and document id.
        ndcg_k: cut-offs for nDCG (keys ``ndcg@k``).
        recall_k: cut-offs for recall (keys ``recall@k``).
        mrr_k: cut-off for reciprocal rank, or None for the whole list (key ``mrr``).

    Returns:
        ``{"ndcg@10": ..., "recall@10": ..., "mrr": ..., "queries": n}``; means in [0, 1],
        ``queries`` is the number of judged queries averaged over (0 gives all-zero means).
    """
    judged = [q for q, rels in qrels.items() if any(g > 0 for g in rels.values())]
    totals: dict[str, float] = {f"ndcg@{k}": 0.0 for k in ndcg_k}
    totals.update({f"recall@{k}": 0.0 for k in recall_k})
    totals["mrr"] = 0.0
    for qid in judged:
        ranked = run.get(qid, ())
        rels = qrels[qid]
        for k in ndcg_k:
            totals[f"ndcg@{k}"] += ndcg_at_k(ranked, rels, k=k)
        for k in recall_k:
            totals[f"recall@{k}"] += recall_at_k(ranked, rels, k=k)
        totals["mrr"] += reciprocal_rank(ranked, rels, k=mrr_k)
    n = len(judged)
    out = {name: (value / n if n else 0.0) for name, value in totals.items()}
    out["queries"] = float(n)
    return out
