"""Claim checking: every sentence of an answer against the passages it cites, with no model.

An answer that contradicts the page it cites is the worst failure of a knowledge-base QA
system, and the failures seen with a small model are mostly of a few checkable kinds
(the issue's reading of 31 answers): a negation flipped, a number off by one or swapped
for its neighbour, a named value swapped for the other value of a two-value setting, a
list member the page does not list. So each answer sentence (a *claim*) is checked the
way a careful reader checks a citation, in this order:

1. **Evidence.** The claim's content words (knowbase's BM25 tokens: stemmed English,
   jieba words for Chinese, stop words and question words dropped) are matched against
   every sentence of the cited passages; the sentence with the largest IDF-free share of
   the claim's words is the evidence (ties: the earlier passage). Coverage is that share
   over the cited passage as a whole (a claim may draw on two sentences).
2. **Numbers** (``3``, ``25%``, ``1.5``, ``300s``; English number words one..twenty): each
   number of the claim must occur in the cited passage; else *unsupported*
   (``number 6 not in [1]``).
3. **Named values**: identifiers written as code (`` `x` ``), CamelCase (``BestEffort``,
   ``maxSurge``), dotted paths (``.spec.replicas``), ALL-CAPS words, quoted strings and
   other words with an inner capital, digit, ``_`` or ``-``: each must occur in the cited
   passage (case-sensitive for code-like values); else *unsupported*.
4. **List members**: a claim that enumerates ("A, B and C", "A、B 和 C") must find every
   member's content words in the cited passage; else *unsupported*
   (``list member 'disk' not in [2]``).
5. **Polarity**: when the evidence sentence shares at least half of the claim's words,
   the two must agree on negation (``not``, ``never``, ``no``, ``cannot``, ``n't``,
   ``without``...; ``不``, ``没``, ``无``, ``非``, ``未``, ``禁止``...); an odd number of
   cues on one side and an even number on the other is *unsupported*
   (``negation differs from [1]``).
6. **Support**: a claim that passes 2-5 is *supported* when its coverage is at least
   :data:`MIN_COVERAGE`, else *unverified* (the passage neither confirms nor contradicts).

A claim's citations are then pointed at the passage holding its evidence when another
cited (or, for an uncited claim, any) passage supports it better: "the sentence is in
passage 1 but cites 2 and 3" is repaired. The offsets of the evidence sentence in the
chunk and in the source document go with each claim, so a page can highlight it.

:func:`check_answer` returns the claims; :func:`apply_checks` removes unsupported claims
from the answer text and, when nothing supported remains, reports that the caller should
fall back to quoting the passages (the extractive answer). The checker is measured on a
labelled set of supported and unsupported claims in ``benches/verify_claims.py``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from knowbase.knowledge.types import Chunk

MIN_COVERAGE = 0.5
"""Share of a claim's content words that the cited passage must contain for *supported*."""
POLARITY_MIN_OVERLAP = 0.5
"""Evidence overlap above which the claim and the evidence sentence must agree on negation."""
LOCAL_MIN_OVERLAP = 0.34
"""A claim's numbers and named values must occur in a passage sentence sharing at least this
share of its content words (or in the best-matching sentences when none does)."""
MAX_CLAIMS = 64
"""Most sentences checked in one answer (a longer answer's tail is left *unverified*)."""
MAX_CLAIM_CHARS = 2000

_CITE = re.compile(r"\[(\d+)\]")
_SENT = re.compile(r".+?(?:[.!?;]+[\"'”’)）]*(?=\s|\[|$)(?:\s*(?:\[\d+\])+)?|[。！？；]+[\"'”’)）]*(?:\s*(?:\[\d+\])+)?|\n+|$)",
                   re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\.\d+)?(?=%|[a-zA-Z]{0,3}\b|\D|$)")
_WORD_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_CODE = re.compile(r"`([^`\n]{1,80})`")
_QUOTED = re.compile(r"[\"“「『]([^\"”」』\n]{1,60})[\"”」』]")
_IDENT = re.compile(r"(?<![\w.])\.?[A-Za-z][\w.\-/]*[\w]")
_NEG_EN = re.compile(r"\b(?:not|no|never|none|nothing|neither|nor|cannot|without|n't)\b|n't\b", re.IGNORECASE)
# Chinese negation cues, less the common words that merely contain one: 除非 (unless), 非常 (very),
# 不仅/不但 (not only), 不过 (however), 不论/无论 (regardless), 不断 (constantly), 不同 (different),
# 是否 (whether), 否则 (otherwise), 未来 (future), 别的/别人 (other)
_NEG_ZH = re.compile(r"(?<!除)非(?!常)|不(?!仅|但|过|论|断|同|管|少|久)|没|無(?!論)|无(?!论)|未(?!来|來)|别(?!的|人)|勿|禁止|"
                     r"(?<!是)否(?!则|則)")
_LIST_SPLIT = re.compile(r"\s*(?:,|;|、|，|\band\b|\bor\b|和|或|及|以及)\s*", re.IGNORECASE)
_TERMINAL = re.compile(r"[.!?;:。！？；：…]['\"”’)）]*$")
_LIST_MARKER = re.compile(r"\(?\d{1,3}[.)、]|[-*•]")
_TRIVIAL = 2  # a claim with fewer content words than this is not checked (connectives, "See [1].")


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a claim's support was found.

    Attributes:
        n: the passage number (1-based, as numbered in the prompt).
        text: the evidence sentence.
        chunk_start, chunk_end: character offsets of the sentence in the chunk text.
        doc_start, doc_end: the same in the source document's text (chunk.start added).
        overlap: share of the claim's content words in this sentence (0..1).
    """

    n: int
    text: str
    chunk_start: int
    chunk_end: int
    doc_start: int
    doc_end: int
    overlap: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "text": self.text, "chunk_start": self.chunk_start, "chunk_end": self.chunk_end,
                "doc_start": self.doc_start, "doc_end": self.doc_end, "overlap": round(self.overlap, 3)}


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of an answer and the verdict on it.

    Attributes:
        text: the sentence without its citation markers.
        start, end: offsets of the sentence (markers included) in the checked answer text.
        cited: passage numbers the sentence cited.
        status: ``supported``, ``unsupported`` (contradicted or invented), ``unverified``
            (too little overlap to tell) or ``trivial`` (too short to check).
        reasons: why, one short phrase per failed check (empty when supported).
        evidence: the best supporting sentence (None when no passage shares a word).
        citations: the passage numbers the claim should cite after repair (the evidence's
            passage first); equal to ``cited`` when nothing needed repair.
        coverage: share of the claim's content words found in the cited passages.
    """

    text: str
    start: int
    end: int
    cited: tuple[int, ...]
    status: str
    reasons: tuple[str, ...] = ()
    evidence: Evidence | None = None
    citations: tuple[int, ...] = ()
    coverage: float = 0.0

    @property
    def supported(self) -> bool:
        return self.status == "supported"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "cited": list(self.cited),
                "status": self.status, "reasons": list(self.reasons),
                "evidence": self.evidence.to_dict() if self.evidence else None, "citations": list(self.citations),
                "coverage": round(self.coverage, 3)}


@dataclass(frozen=True, slots=True)
class CheckedAnswer:
    """An answer after :func:`apply_checks`.

    Attributes:
        text: the answer with unsupported sentences removed and citations repaired.
        citations: passage numbers cited by the kept sentences, in order of first use.
        claims: every checked sentence.
        removed: the sentences removed (unsupported).
        fallback: True when no supported sentence remained, so the caller should quote
            the passages instead (the extractive answer).
    """

    text: str
    citations: tuple[int, ...]
    claims: tuple[Claim, ...]
    removed: tuple[str, ...] = ()
    fallback: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- text pieces ------------------------------------------------------------------------------
def split_claims(text: str) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """Sentences of an answer with their ``[n]`` markers: ``(text without markers, start, end, cited)``.

    A marker right after a sentence's end (``... evicted first. [1]``) belongs to that sentence.
    """
    out = []
    for m in _SENT.finditer(text[: MAX_CLAIM_CHARS * MAX_CLAIMS]):
        raw = m.group(0)
        if not raw.strip():
            continue
        cited = tuple(dict.fromkeys(int(x) for x in _CITE.findall(raw)))
        clean = re.sub(r"\s+", " ", _CITE.sub("", raw)).strip()
        clean = re.sub(r"\s+([.,;:!?。，；！？])", r"\1", clean)
        if clean:
            out.append((clean[:MAX_CLAIM_CHARS], m.start(), m.end(), cited))
    return out


def _sentences_with_offsets(text: str) -> list[tuple[str, int, int]]:
    out = []
    for m in re.finditer(r".+?(?:[.!?;]+[\"'”’)）]*(?=\s|$)|[。！？；]+[\"'”’)）]*|\n+|$)", text, re.DOTALL):
        raw = m.group(0)
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            out.append((stripped, m.start() + lead, m.start() + lead + len(stripped)))
    return out


@functools.lru_cache(maxsize=4096)
def _content(text: str) -> tuple[str, ...]:
    """Content words of ``text`` (BM25 tokens less stop and question words), first occurrence order;
    cached because the same passage sentences are tokenised for every claim."""
    from knowbase.knowledge.bm25 import tokenize, topic_tokens

    return tuple(dict.fromkeys(topic_tokens(tokenize(text))))


def numbers(text: str) -> set[str]:
    """Numbers in ``text``, normalised (``1,000`` -> ``1000``; English number words -> digits).

    Example::

        >>> sorted(numbers("Set maxSurge to 25% and wait three minutes (180s)."))
        ['180', '25', '3']
    """
    found = {m.group(0).lstrip("+").replace(",", "") for m in _NUMBER.finditer(text)}
    found |= {_WORD_NUMBERS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _WORD_NUMBERS}
    return {f for f in found if f not in {"", "-"}}


def named_values(text: str) -> set[str]:
    """Identifiers and literal values in ``text``: code spans, quoted strings, CamelCase,
    dotted paths, ALL-CAPS words, words with an inner capital, digit, ``_`` or ``-``.

    Example::

        >>> sorted(named_values("Use `IfNotPresent` so BestEffort Pods in .spec.containers keep OOM_SCORE."))
        ['.spec.containers', 'BestEffort', 'IfNotPresent', 'OOM_SCORE']
    """
    values = {m.group(1).strip() for m in _CODE.finditer(text)}
    values |= {m.group(1).strip() for m in _QUOTED.finditer(text) if len(m.group(1).split()) <= 3}
    for m in _IDENT.finditer(_CODE.sub(" ", text)):
        word = m.group(0).rstrip(".-/")
        core = word.lstrip(".")
        if len(core) < 2:
            continue
        inner_cap = any(c.isupper() for c in core[1:]) and any(c.islower() for c in core)
        dotted = word.startswith(".") or ("." in core and not core.endswith("."))
        marked = any(c in core for c in "_") or any(c.isdigit() for c in core) and any(c.isalpha() for c in core)
        caps = core.isupper() and len(core) >= 3 and core.isalpha()
        if inner_cap or dotted or marked or caps:
            values.add(word)
    return {v for v in values if v}


def negations(text: str) -> int:
    """Count of negation cues in ``text`` (English words and Chinese characters/words)."""
    return len(_NEG_EN.findall(text)) + len(_NEG_ZH.findall(text))


def list_members(text: str) -> list[str]:
    """Members of an enumeration in ``text`` ("A, B and C" -> ``[A, B, C]``), or ``[]``.

    Only a run of at least three parts, or two parts joined by a comma, counts as a list,
    so an ordinary "X and Y" clause is not taken apart.
    """
    if "," not in text and "、" not in text and "，" not in text:
        return []
    parts = [p.strip(" .。:：") for p in _LIST_SPLIT.split(text) if p and p.strip(" .。:：")]
    if len(parts) < 3 and not re.search(r"[,、，]", text):
        return []
    # keep the short parts (list members); a long part is a clause, not a member
    members = [p for p in parts if 0 < len(p.split()) <= 4 or (len(p) <= 12 and not re.search(r"\s", p))]
    return members if len(members) >= 2 else []


# --- the check ----------------------------------------------------------------------------------
def _contains_value(value: str, passage: str) -> bool:
    if value in passage:
        return True
    if value.isupper() or any(c in value for c in "._/-") or any(c.isupper() for c in value[1:]):
        return False  # code-like: exact only
    return value.lower() in passage.lower()


def _best_evidence(words: Sequence[str], n: int, chunk: Chunk) -> Evidence | None:
    if not words:
        return None
    wanted = set(words)
    best: Evidence | None = None
    for sent, s, e in _sentences_with_offsets(chunk.text):
        have = set(_content(sent))
        share = len(wanted & have) / len(wanted)
        if share > 0 and (best is None or share > best.overlap):
            best = Evidence(n, sent, s, e, chunk.start + s, chunk.start + e, share)
    return best


def check_claim(text: str, cited: Sequence[int], passages: Sequence[Chunk], *, start: int = 0,
                end: int | None = None) -> Claim:
    """Check one sentence against the passages it cites (all passages when it cites none).

    Args:
        text: the sentence without citation markers.
        cited: 1-based passage numbers it cites (numbers outside ``passages`` are ignored).
        passages: the passages given to the model, in prompt order.

    Returns:
        the :class:`Claim` with its status, reasons, evidence and repaired citations.
    """
    end = start + len(text) if end is None else end
    valid = tuple(n for n in cited if 1 <= n <= len(passages))
    words = _content(text)
    if _LIST_MARKER.fullmatch(text) or (len(words) < _TRIVIAL and not numbers(text) and not named_values(text)):
        return Claim(text, start, end, tuple(cited), "trivial", citations=valid)
    pool = valid or tuple(range(1, len(passages) + 1))

    wanted = set(words)

    def judge(ns: Sequence[int]) -> tuple[list[str], Evidence | None, float]:
        joined = "\n".join(passages[n - 1].text for n in ns)
        reasons = []
        have = set(_content(joined))
        cover = len(wanted & have) / len(wanted) if wanted else 1.0
        # numbers and named values must sit in a sentence about the same thing: one sharing at
        # least LOCAL_MIN_OVERLAP of the claim's words (or the best such sentence), not anywhere
        per_passage = [[s for s, _, _ in _sentences_with_offsets(passages[n - 1].text)] for n in ns]
        sents = [s for group in per_passage for s in group]
        shares = [len(wanted & set(_content(s))) / len(wanted) if wanted else 1.0 for s in sents]
        top = max(shares, default=0.0)
        local = "\n".join(s for s, sh in zip(sents, shares) if sh >= min(LOCAL_MIN_OVERLAP, top) and sh > 0) or joined
        local_numbers = numbers(local)
        for num in sorted(numbers(text)):
            if num not in local_numbers:
                where = _label(ns) if num not in numbers(joined) else f"the sentences of {_label(ns)} on this"
                reasons.append(f"number {num} not in {where}")
        for value in sorted(named_values(text)):
            if not _contains_value(value, local):
                where = _label(ns) if not _contains_value(value, joined) else f"the sentences of {_label(ns)} on this"
                reasons.append(f"value {value!r} not in {where}")
        facts = sorted(numbers(text)) + sorted(named_values(text))
        if not reasons and len(facts) >= 2 and not _together(facts, per_passage):
            # each value is on the page, but never with the others: a row or sentence mixed with another
            reasons.append(f"{', '.join(facts)} never appear together in {_label(ns)}")
        for member in list_members(text):
            member_words = _content(member)
            if member_words and not any(w in have for w in member_words):
                reasons.append(f"list member {member!r} not in {_label(ns)}")
        evidence = None
        for n in ns:
            ev = _best_evidence(words, n, passages[n - 1])
            if ev is not None and (evidence is None or ev.overlap > evidence.overlap):
                evidence = ev
        if evidence is not None and evidence.overlap >= POLARITY_MIN_OVERLAP and _polarity_differs(text, evidence.text):
            reasons.append(f"negation differs from [{evidence.n}]")
        return reasons, evidence, cover

    reasons, evidence, cover = judge(pool)
    status = "unsupported" if reasons else ("supported" if cover >= MIN_COVERAGE else "unverified")
    if not valid and status == "supported":
        status = "unverified"  # an uncited claim is supported only by one passage on its own (below)
    citations = valid
    # repair: a single passage that supports the claim on its own beats the cited set
    singles = []
    for n in range(1, len(passages) + 1):
        r, ev, c = judge((n,))
        if not r and c >= MIN_COVERAGE and ev is not None:
            singles.append((c, ev.overlap, -n, n, ev))
    if singles:
        singles.sort(reverse=True)
        _, _, _, best_n, best_ev = singles[0]
        if status != "supported" or best_n not in valid:
            if status != "supported":
                status, reasons, evidence = "supported", [], best_ev
                cover = singles[0][0]
            if best_n not in valid or len(valid) > 1:
                citations = (best_n,)
                evidence = best_ev
    elif status == "supported" and evidence is not None:
        citations = (evidence.n,) + tuple(n for n in valid if n != evidence.n)
    return Claim(text, start, end, tuple(cited), status, tuple(reasons), evidence, citations, cover)


def _together(facts: Sequence[str], per_passage: Sequence[Sequence[str]]) -> bool:
    """True when one window of a passage holds every number and named value of ``facts``: a
    sentence with the next one, or a single line for a table row (``|``), so values of two
    different rows or statements are never combined into one claim."""
    wanted_numbers = {f for f in facts if f in numbers(f)}
    wanted_values = [f for f in facts if f not in wanted_numbers]
    for group in per_passage:
        for i, sent in enumerate(group):
            window = sent if "|" in sent or i + 1 >= len(group) or "|" in group[i + 1] else f"{sent} {group[i + 1]}"
            if wanted_numbers <= numbers(window) and all(_contains_value(v, window) for v in wanted_values):
                return True
    return False


def _with_marks(sentence: str, ns: Sequence[int]) -> str:
    """``sentence`` with ``[n]`` markers placed before its final punctuation, after a space
    (``Pods restart [1].``, ``默认值是 1 [2]。``), as :func:`~knowbase.knowledge.answer.parse_citations` leaves them."""
    marks = "".join(f"[{n}]" for n in ns)
    if not marks:
        return sentence
    m = re.search(r"[.!?;。！？；]+[\"'”’)）]*$", sentence)
    if m is None:
        return f"{sentence} {marks}"
    return f"{sentence[: m.start()].rstrip()} {marks}{m.group(0)}"


_CLAUSE = re.compile(r"[,;:，；：()（）]|\s[-–—]\s|\b(?:but|because|while|whereas|unless|although|so that|which|if|when)\b|"
                     r"但|因为|而|除非|如果|虽然")


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE.split(text) if c and c.strip()]


def _polarity_differs(claim: str, evidence: str) -> bool:
    """True when a clause of ``claim`` and the clause of ``evidence`` that shares most of its
    words (at least :data:`POLARITY_MIN_OVERLAP`) disagree on negation (odd vs even count).

    Clause by clause, because a negation in one clause of a long sentence says nothing about
    another ("X is created, but it is not started" vs "X is created")."""
    ev_clauses = [(c, set(_content(c)), negations(c) % 2) for c in _clauses(evidence)]
    for clause in _clauses(claim):
        words = set(_content(clause))
        if len(words) < 2:
            continue
        best = max(ev_clauses, key=lambda e: len(words & e[1]), default=None)
        if best is None or len(words & best[1]) / len(words) < POLARITY_MIN_OVERLAP:
            continue
        if negations(clause) % 2 != best[2]:
            return True
    return False


def _label(ns: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in ns) if ns else "the passages"


def check_answer(text: str, passages: Sequence[Chunk]) -> list[Claim]:
    """Check every sentence of ``text`` (an answer with ``[n]`` markers) against ``passages``.

    At most :data:`MAX_CLAIMS` sentences are checked; the rest are returned *unverified*.
    """
    claims = []
    for i, (clean, s, e, cited) in enumerate(split_claims(text)):
        if i >= MAX_CLAIMS:
            claims.append(Claim(clean, s, e, cited, "unverified", ("not checked: answer too long",)))
            continue
        claims.append(check_claim(clean, cited, passages, start=s, end=e))
    return claims


def apply_checks(text: str, passages: Sequence[Chunk], *, language: str = "en") -> CheckedAnswer:
    """Check ``text`` and rebuild it: unsupported sentences removed, citations repaired.

    Kept sentences are ``supported``, ``unverified`` and ``trivial`` ones (an unverified
    sentence keeps its own citations; it is reported in :attr:`CheckedAnswer.claims`).
    When no sentence is supported, :attr:`CheckedAnswer.fallback` is True.
    """
    claims = check_answer(text, passages)
    kept: list[str] = []
    cites: list[int] = []
    removed = []
    sep = "" if language == "zh" else " "
    marker = ""  # a bare list marker ("2.") goes with the sentence after it, kept or removed
    for c in claims:
        if c.status == "trivial" and _LIST_MARKER.fullmatch(c.text):
            marker = c.text
            continue
        if c.status == "trivial" and not _TERMINAL.search(c.text):
            # a fragment with no sentence end: a heading copied from a passage ("... last. Criteria [2][3]")
            removed.append(c.text)
            continue
        if c.status == "unsupported":
            removed.append(c.text)
            marker = ""
            continue
        kept.append((marker + " " if marker else "") + _with_marks(c.text, c.citations))
        marker = ""
        cites.extend(n for n in c.citations if n not in cites)
    fallback = not any(c.supported for c in claims)
    return CheckedAnswer(sep.join(kept).strip(), tuple(cites), tuple(claims), tuple(removed), fallback)
