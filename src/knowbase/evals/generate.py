"""Draft a question set from a knowledge base, for a person to review.

For each sampled chunk the model writes one question the chunk answers; the chunk's
document becomes the question's expected source. Drafts are then filtered:

* not a question (no ``?`` or ``？``), too short (under 4 words / 6 Chinese characters) or
  too long (over 40 words / 80 characters of Chinese);
* not grounded: under :data:`MIN_GROUNDING` of the question's key terms occur in its chunk
  (the model drifted off the passage);
* copied: the question is a verbatim substring of the chunk;
* near duplicate: key-term Jaccard similarity of at least :data:`MAX_SIMILARITY` with a kept
  question (the near-duplicate filter of synthetic test-set generators such as ragas'
  ``TestsetGenerator``, done on terms instead of embeddings).

Chunks are sampled round-robin across documents (a seeded shuffle), so a set of 20 covers
20 documents before it takes a second chunk of any. Key facts are left empty: the reviewer
adds them.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knowbase.errors import KnowbaseError, UserError
from knowbase.evals.datasets import EvalItem
from knowbase.evals.scoring import claim_terms

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel

__all__ = ["generate_questions", "GeneratedSet", "clean_question", "MIN_GROUNDING", "MAX_SIMILARITY"]

MIN_GROUNDING = 0.3
MAX_SIMILARITY = 0.7
MIN_CHUNK_CHARS = 200
MAX_PASSAGE_CHARS = 1500
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass
class GeneratedSet:
    """Kept draft items and the rejected drafts with their reason (``{"question", "source", "reason"}``)."""

    items: list[EvalItem] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)


def clean_question(reply: str) -> str:
    """The question in a model reply: the first non-empty line, without a ``Question:`` label,
    list marker, quotes or Markdown emphasis."""
    for line in reply.splitlines():
        line = line.strip()
        if not line:
            continue
        line = re.sub(r"^(?:\d+[.)]\s*|[-*]\s+)", "", line)
        line = re.sub(r"^(?:question|q|问题)\s*[:：]\s*", "", line, flags=re.IGNORECASE)
        return line.strip().strip("*_`\"'“”「」").strip()
    return ""


def _reject_reason(question: str, chunk_text: str) -> str | None:
    if "?" not in question and "？" not in question:
        return "not a question"
    cjk = len(_CJK.findall(question))
    words = len(question.split())
    if (cjk < 6 and words < 4) or words > 40 or cjk > 80:
        return "too short or too long"
    if question.rstrip("?？ ").lower() in chunk_text.lower():
        return "copied from the passage"
    terms = claim_terms(question)
    if not terms:
        return "no key terms"
    from knowbase.knowledge.bm25 import tokenize

    found = len(terms & set(tokenize(chunk_text))) / len(terms)
    if found < MIN_GROUNDING:
        return f"not grounded in its passage ({found:.0%} of its terms)"
    return None


def generate_questions(kb: KnowledgeBase, *, model: ChatModel, n: int = 20, seed: int = 0,
                       max_attempts: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> GeneratedSet:
    """Draft up to ``n`` questions from ``kb``'s chunks.

    Args:
        kb: the knowledge base.
        model: the chat model that writes the questions.
        n: questions wanted.
        seed: the chunk sample's seed.
        max_attempts: chunks tried at most (default ``3 * n``).
        progress: ``(tried, max_attempts)`` after each chunk.

    Raises:
        UserError: ``n`` below 1, or the knowledge base holds no chunk long enough.
    """
    from knowbase.prompts.loader import load_template

    if n < 1:
        raise UserError("n must be at least 1", field="n")
    docs = kb.documents()
    rng = random.Random(seed)
    pools: list[list[Any]] = []
    for doc in sorted(docs, key=lambda d: d.path):
        chunks = [c for c in kb.chunks(doc.id) if len(c.text) >= MIN_CHUNK_CHARS]
        rng.shuffle(chunks)
        if chunks:
            pools.append(chunks)
    rng.shuffle(pools)
    if not pools:
        raise UserError(f"knowledge base {kb.name!r} has no chunk of {MIN_CHUNK_CHARS}+ characters to ask about")
    order: list[Any] = []
    depth = 0
    limit = max_attempts or 3 * n
    while len(order) < limit and any(depth < len(p) for p in pools):
        order.extend(p[depth] for p in pools if depth < len(p))
        depth += 1
    order = order[:limit]
    paths = [d.path for d in docs]
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    template = load_template("eval_generate_question")
    out = GeneratedSet()
    kept_terms: list[set[str]] = []
    for tried, chunk in enumerate(order, start=1):
        if len(out.items) >= n:
            break
        source = os.path.relpath(chunk.path, root) if root else chunk.path
        source = source.replace(os.sep, "/")
        title = " > ".join(chunk.section) or os.path.basename(chunk.path)
        try:
            reply = model.chat(template.format(title=title, passage=chunk.text[:MAX_PASSAGE_CHARS]),
                               temperature=0.0, max_tokens=80).text
        except KnowbaseError as exc:
            out.rejected.append({"question": "", "source": source, "reason": f"model error: {exc}"})
            continue
        question = clean_question(reply)
        reason = _reject_reason(question, chunk.text)
        terms = claim_terms(question) if reason is None else set()
        if reason is None:
            for prev in kept_terms:
                if len(terms & prev) / len(terms | prev) >= MAX_SIMILARITY:
                    reason = "near duplicate of a kept question"
                    break
        if reason is not None:
            out.rejected.append({"question": question, "source": source, "reason": reason})
        else:
            kept_terms.append(terms)
            lang = "zh" if _CJK.search(question) else "en"
            out.items.append(EvalItem(id=f"gen-{len(out.items) + 1:03d}", kind="kb", question=question,
                                      expected_sources=(source,), lang=lang))
        if progress is not None:
            progress(tried, len(order))
    return out
