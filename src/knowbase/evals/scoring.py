"""Per-item scores that need no judge model: sources, key facts, citations, SQL results, labels.

Each function scores one item; :mod:`knowbase.evals.summary` averages them into the run's
metrics. Definitions (and their sources) are in ``docs/evaluation.md``.

Example::

    >>> source_matches("/data/k8s/en/concepts/workloads/pods/_index.md", "pods/_index.md")
    True
    >>> key_fact_coverage([("25%",), ("maxSurge", "max surge")], "The default maxSurge is 25% [1].")
    1.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from knowbase.evals.metrics import ndcg_at_k, recall_at_k, reciprocal_rank

__all__ = [
    "source_matches", "ranked_sources", "retrieval_scores", "term_found", "key_fact_coverage",
    "claim_terms", "citation_checks", "result_rows_match", "HIT_KS", "RECALL_KS",
]

HIT_KS = (1, 3, 5)
RECALL_KS = (5, 10)
CLAIM_SUPPORT = 0.5
"""A citation is valid when the cited passage holds at least this share of its claim's key terms."""

_CITATION = re.compile(r"\[\d+(?:\s*[,，、]\s*\d+)*\]")
_MARKER = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]")
_MARKER_RUN = re.compile(r"(?:\[\d+(?:\s*[,，、]\s*\d+)*\]\s*)+")


def _norm_path(path: str) -> str:
    return path.replace("\\", "/").rstrip("/")


def source_matches(path: str, expected: str) -> bool:
    """True when ``path`` ends with ``expected`` at a path-component boundary
    (``a/b/deployment.md`` matches ``deployment.md`` and ``b/deployment.md``, not ``ment.md``)."""
    p, e = _norm_path(path), _norm_path(expected).lstrip("/")
    return bool(e) and (p == e or p.endswith("/" + e))


def ranked_sources(paths: Iterable[str], expected: Sequence[str]) -> list[str]:
    """Retrieved document paths, best first, each replaced by the expected source it matches
    (so two files matching one expected source count once), repeats removed."""
    out: list[str] = []
    seen: set[str] = set()
    for path in paths:
        key = next((e for e in expected if source_matches(path, e)), path)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def retrieval_scores(paths: Sequence[str], expected: Sequence[str]) -> dict[str, float]:
    """hit@k (k in :data:`HIT_KS`), recall@k (:data:`RECALL_KS`), MRR and nDCG@10 of one
    ranked list of document paths against the expected sources (binary relevance).

    Returns ``{"hit@1": 0|1, ..., "recall@5": share, "mrr": 1/rank, "ndcg@10": ...}``.
    """
    ranked = ranked_sources(paths, expected)
    qrels = {e: 1 for e in expected}
    out = {f"hit@{k}": float(any(r in qrels for r in ranked[:k])) for k in HIT_KS}
    out.update({f"recall@{k}": recall_at_k(ranked, qrels, k=k) for k in RECALL_KS})
    out["mrr"] = reciprocal_rank(ranked, qrels)
    out["ndcg@10"] = ndcg_at_k(ranked, qrels, k=10)
    return out


def term_found(term: str, text: str) -> bool:
    """Whole-word, case-insensitive match for ASCII terms (``25%``, ``Forbid``); a substring
    match for others (Chinese has no spaces between words)."""
    term = term.strip()
    if not term:
        return False
    if term.isascii():
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None
    return term.lower() in text.lower()


def key_fact_coverage(facts: Sequence[Sequence[str]], text: str) -> float:
    """Share of key facts found in ``text`` (each fact found when any of its alternatives is),
    citation markers such as ``[2]`` removed first so they never count as the number 2.
    1.0 when there are no facts."""
    if not facts:
        return 1.0
    clean = _CITATION.sub(" ", text)
    return sum(1 for alts in facts if any(term_found(a, clean) for a in alts)) / len(facts)


def claim_terms(sentence: str) -> set[str]:
    """Key terms of a claim: its BM25 tokens (stemmed English words, jieba-segmented Chinese,
    stop words removed), citation markers and question words left out."""
    from knowbase.knowledge.bm25 import question_words, tokenize

    words = question_words()
    return {t for t in tokenize(_CITATION.sub(" ", sentence)) if t not in words}


def citation_checks(answer_text: str, cited: dict[int, str]) -> list[dict[str, Any]]:
    """Check every ``[n]`` marker of the answer against the passage it cites.

    Args:
        answer_text: the answer with its ``[n]`` markers.
        cited: passage text per citation number (the passages given to the model).

    Returns:
        One record per (claim, cited number): ``{"n", "claim", "support", "valid"}`` where
        ``support`` is the share of the claim's key terms found in the passage's tokens and
        ``valid`` is ``support >= CLAIM_SUPPORT``. Claims without key terms are left out;
        a number with no passage is invalid with support 0.
    """
    from knowbase.knowledge.answer import split_sentences
    from knowbase.knowledge.bm25 import tokenize

    # the claim of a marker is the last sentence of the text before it (since the previous
    # marker): "A. B [1] C. [2]" -> B for [1], C for [2]; "X [1][2]" -> X for both
    claims: list[tuple[str, list[int]]] = []
    last = 0
    previous = ""
    for m in _MARKER_RUN.finditer(answer_text):
        sentences = split_sentences(answer_text[last:m.start()])
        claim = sentences[-1] if sentences else previous
        claims.append((claim, _numbers(m.group(0))))
        previous, last = claim, m.end()
    passage_tokens: dict[int, set[str]] = {}
    out: list[dict[str, Any]] = []
    for sentence, numbers in claims:
        if not numbers:
            continue
        terms = claim_terms(sentence)
        if not terms:
            continue
        for n in dict.fromkeys(numbers):
            if n not in cited:
                out.append({"n": n, "claim": sentence, "support": 0.0, "valid": False})
                continue
            if n not in passage_tokens:
                passage_tokens[n] = set(tokenize(cited[n]))
            support = len(terms & passage_tokens[n]) / len(terms)
            out.append({"n": n, "claim": sentence, "support": round(support, 4), "valid": support >= CLAIM_SUPPORT})
    return out


def _numbers(text: str) -> list[int]:
    return [int(x) for m in _MARKER.finditer(text) for x in re.split(r"\s*[,，、]\s*", m.group(1))]


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}" if not value.is_integer() else str(int(value))
    if isinstance(value, int):
        return str(value)
    return "NULL" if value is None else str(value)


def result_rows_match(predicted: Sequence[Sequence[Any]], expected: Sequence[Sequence[Any]], *,
                      ordered: bool = False) -> bool:
    """Execution accuracy of one query: the predicted rows equal the expected rows as a
    multiset (or as a list when ``ordered``), values compared by their printed form, floats
    to 6 significant digits, integral floats equal to integers (``3.0`` = ``3``), booleans as
    0/1 (the execution-accuracy rule of the Spider evaluation, Yu et al. 2018, without its
    column-permutation search)."""
    a = [tuple(_cell(v) for v in row) for row in predicted]
    b = [tuple(_cell(v) for v in row) for row in expected]
    return a == b if ordered else sorted(a) == sorted(b)


def has_order_by(sql: str) -> bool:
    """True when the outermost query of ``sql`` sorts its rows (``ORDER BY`` outside parentheses)."""
    depth = 0
    text = re.sub(r"'(?:[^']|'')*'", "''", sql.upper())
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and text.startswith("ORDER BY", i):
            return True
    return False
