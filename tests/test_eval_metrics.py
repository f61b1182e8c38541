"""Ranking metrics checked against values computed by hand (trec_eval definitions)."""

from __future__ import annotations

import math

import pytest

from knowbase.errors import UserError
from knowbase.evals.metrics import evaluate_run, ndcg_at_k, precision_at_k, recall_at_k, reciprocal_rank

LOG2_3 = math.log2(3)  # discount of rank 2


def test_ndcg_binary_two_relevant() -> None:
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309...; 1.5/1.6309 = 0.91972
    assert ndcg_at_k(["d1", "d2", "d3"], {"d1": 1, "d3": 1}, k=10) == pytest.approx(0.919721, abs=1e-6)


def test_ndcg_graded_gains_are_linear() -> None:
    # ranked c(0), b(1), a(2): DCG = 0 + 1/log2(3) + 2/log2(4) = 1.6309; IDCG = 2 + 1/log2(3) = 2.6309
    qrels = {"a": 2, "b": 1, "c": 0}
    expected = (1 / LOG2_3 + 1.0) / (2 + 1 / LOG2_3)
    assert expected == pytest.approx(0.619906, abs=1e-6)
    assert ndcg_at_k(["c", "b", "a", "x"], qrels, k=10) == pytest.approx(expected, abs=1e-12)


def test_ndcg_cutoff_and_perfect_ranking() -> None:
    qrels = {"a": 2, "b": 1}
    assert ndcg_at_k(["c", "b", "a"], qrels, k=1) == 0.0
    assert ndcg_at_k(["a", "b"], qrels, k=10) == pytest.approx(1.0)
    # IDCG at k=1 uses only the best grade: ranking b first gives 1/2
    assert ndcg_at_k(["b", "a"], qrels, k=1) == pytest.approx(0.5)


def test_ndcg_ideal_counts_unretrieved_relevant_documents() -> None:
    # only one of two relevant documents retrieved, at rank 1: 1 / (1 + 1/log2(3)) = 0.61315
    assert ndcg_at_k(["a"], {"a": 1, "b": 1}, k=10) == pytest.approx(1 / (1 + 1 / LOG2_3), abs=1e-12)
    assert ndcg_at_k(["a"], {"a": 1, "b": 1}, k=10) == pytest.approx(0.613147, abs=1e-6)


def test_ndcg_no_relevant_is_zero() -> None:
    assert ndcg_at_k(["a", "b"], {"a": 0}, k=10) == 0.0
    assert ndcg_at_k([], {"a": 1}, k=10) == 0.0


def test_recall_at_k() -> None:
    qrels = {"a": 1, "b": 3, "c": 0}
    assert recall_at_k(["x", "a", "y", "b"], qrels, k=2) == 0.5
    assert recall_at_k(["x", "a", "y", "b"], qrels, k=4) == 1.0
    assert recall_at_k(["c", "x"], qrels, k=10) == 0.0  # grade 0 is not relevant


def test_precision_divides_by_k() -> None:
    assert precision_at_k(["a", "x"], {"a": 1}, k=5) == pytest.approx(0.2)
    assert precision_at_k(["a", "b", "x"], {"a": 1, "b": 1}, k=2) == 1.0


def test_reciprocal_rank_and_cutoff() -> None:
    qrels = {"a": 1}
    assert reciprocal_rank(["x", "y", "a"], qrels) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y", "a"], qrels, k=2) == 0.0
    assert reciprocal_rank(["a"], qrels) == 1.0


def test_repeated_ids_count_once_at_best_position() -> None:
    qrels = {"b": 1}
    assert reciprocal_rank(["a", "a", "b"], qrels) == 0.5
    assert recall_at_k(["a", "a", "b"], qrels, k=2) == 1.0
    assert ndcg_at_k(["b", "b"], {"b": 1, "c": 1}, k=10) == pytest.approx(1 / (1 + 1 / LOG2_3))


def test_bad_cutoff_is_a_user_error() -> None:
    with pytest.raises(UserError) as info:
        ndcg_at_k(["a"], {"a": 1}, k=0)
    assert info.value.k == 0
    with pytest.raises(UserError):
        recall_at_k(["a"], {"a": 1}, k=-1)


def test_evaluate_run_means_over_judged_queries() -> None:
    qrels = {
        "q1": {"d1": 1},
        "q2": {"d2": 1},            # missing from the run: scores 0
        "q3": {"d3": 0},            # no relevant document: not counted
        "q4": {"d4": 1, "d5": 1},
    }
    run = {"q1": ["d1"], "q4": ["x", "d5"], "q9": ["d9"]}
    out = evaluate_run(run, qrels, ndcg_k=(10,), recall_k=(1, 10))
    assert out["queries"] == 3
    # q1: 1 ; q2: 0 ; q4: ndcg = (1/log2(3)) / (1 + 1/log2(3)) = 0.38685
    q4_ndcg = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    assert out["ndcg@10"] == pytest.approx((1 + 0 + q4_ndcg) / 3)
    assert out["recall@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert out["recall@10"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert out["mrr"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_evaluate_run_empty_qrels() -> None:
    out = evaluate_run({"q": ["a"]}, {})
    assert out == {"ndcg@10": 0.0, "recall@10": 0.0, "mrr": 0.0, "queries": 0.0}
