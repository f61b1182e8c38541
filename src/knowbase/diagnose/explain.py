"""Explain a finding as ``Error:`` / ``Solution:``, grounded in cited documentation.

K8sGPT's prompt (``pkg/ai/prompts.go``) asks a model to simplify an error message and give a
step-by-step solution in no more than 280 characters. knowbase adds what K8sGPT lacks:

* the analyzers' evidence lines (not only a one-line failure text);
* documentation passages retrieved from a knowledge base (the bundled Kubernetes sample by
  default), numbered ``[n]`` and checked with the same citation code as ``knowbase ask``
  (:func:`knowbase.knowledge.answer.parse_citations`, :func:`~knowbase.knowledge.answer.attribute`);
* anonymisation before the model sees anything (:mod:`knowbase.diagnose.anonymise`), the
  names restored in the result;
* a cache keyed by the model string, :data:`PROMPT_VERSION` and the anonymised prompt
  (K8sGPT's cache key omits the model).

The retrieval query is built from the finding's kind and reason and the reason's fixed
description (:data:`knowbase.diagnose.analyzers.REASONS`), never from names, so the embedder's
logged inputs hold no names either.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knowbase.diagnose.analyzers import REASONS
from knowbase.diagnose.anonymise import Anonymizer
from knowbase.diagnose.types import Explanation, Finding
from knowbase.knowledge.answer import attribute, fill, idf_table, parse_citations, template, trim_passage
from knowbase.knowledge.bm25 import tokenize, topic_tokens
from knowbase.knowledge.types import Citation, ScoredChunk

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel, Message
    from knowbase.models.cache import ResponseCache

PROMPT_VERSION = "diagnose-5"
"""Changes whenever the diagnosis prompts change, so cached explanations of an older prompt are not reused."""

DEFAULT_MAX_CHARS = 280
"""K8sGPT's limit for the solution, in characters (``pkg/ai/prompts.go``)."""

LANGUAGES = ("en", "zh")
MAX_EVIDENCE_LINES = 8
MAX_LINE_CHARS = 300

_LABELS = {
    "error": re.compile(r"(?<!\w)(?:\*\*)?(?:Error|错误)(?:\*\*)?\s*[:：](?:\*\*)?\s*", re.IGNORECASE),
    "solution": re.compile(r"(?<!\w)(?:\*\*)?(?:Solution|解决方案|解决办法|解决)(?:\*\*)?\s*[:：](?:\*\*)?\s*", re.IGNORECASE),
}
_MARK = re.compile(r"\[\d+\]")


def camel_words(reason: str) -> str:
    """``CrashLoopBackOff`` -> ``Crash Loop Back Off`` (for retrieval queries)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", reason)


def retrieval_query(finding: Finding) -> str:
    """The documentation query for a finding: kind, reason and the reason's description; no names."""
    description = REASONS.get(finding.reason, ("", ""))[1]
    return f"{finding.kind} {finding.reason} {camel_words(finding.reason)} {description}".strip()


def problem_text(finding: Finding, anonymizer: Anonymizer | None = None) -> str:
    """The finding as the model sees it: one summary line and up to :data:`MAX_EVIDENCE_LINES`
    evidence lines (each cut to :data:`MAX_LINE_CHARS`), masked when ``anonymizer`` is given."""
    lines = [f"{finding.kind} {finding.namespace + '/' if finding.namespace else ''}{finding.name}: "
             f"{finding.reason}: {finding.message}"]
    if finding.related:
        lines.append("related: " + ", ".join(r.label() for r in finding.related[:5])
                     + (f" and {len(finding.related) - 5} more" if len(finding.related) > 5 else ""))
    for ev in finding.evidence[:MAX_EVIDENCE_LINES]:
        lines.append("- " + ev.text[:MAX_LINE_CHARS])
    text = "\n".join(lines)
    return anonymizer.mask(text) if anonymizer is not None else text


def cut_solution(solution: str, max_chars: int) -> tuple[str, bool]:
    """``solution`` cut to ``max_chars`` characters, citation markers not counted; ends at a
    word boundary with ``…`` when cut. Returns ``(text, truncated)``."""
    if len(re.sub(r"\s*\[\d+\]", "", solution)) <= max_chars:
        return solution, False
    out, used = [], 0
    for piece in re.split(r"(\[\d+\])", solution):
        if _MARK.fullmatch(piece):
            out.append(piece)
            continue
        room = max_chars - used
        if len(piece) <= room:
            out.append(piece)
            used += len(piece)
            continue
        head = piece[:room]
        cut = max(head.rfind(" "), head.rfind("，"), head.rfind("。"))
        out.append((head[:cut] if cut > room // 2 else head).rstrip(" ,;:，"))
        break
    return "".join(out).rstrip() + "…", True


def split_answer(text: str) -> tuple[str, str]:
    """``(error, solution)`` from an ``Error: ... Solution: ...`` answer (Chinese labels too);
    text without the labels is all error."""
    s = _LABELS["solution"].search(text)
    e = _LABELS["error"].search(text)
    if s is None:
        return (text[e.end():] if e else text).strip(), ""
    error = text[e.end():s.start()] if e is not None and e.start() < s.start() else text[:s.start()]
    return error.strip(), text[s.end():].strip()


def cache_key(model: str, messages: Sequence[Message], max_tokens: int) -> str:
    """SHA-256 hex of the model string, :data:`PROMPT_VERSION`, the generation limit and the
    (anonymised) messages."""
    payload = {"model": model, "prompt_version": PROMPT_VERSION, "max_tokens": max_tokens,
               "messages": [m.to_openai() for m in messages]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Explainer:
    """Explains findings with a chat model and documentation passages.

    Args:
        model: ``() -> ChatModel`` (called once, when the first finding is explained).
        search: ``(query, k) -> list[ScoredChunk]`` over the documentation (None: no passages).
        doc_freqs: ``tokens -> (N, {token: df})`` of that knowledge base (for passage trimming).
        anonymizer: masks the prompt and restores the answer (None: no masking).
        language: ``en`` or ``zh``.
        max_chars: most characters of the solution (citations not counted).
        k: passages per finding.
        passage_budget: tokens of passage text per prompt, all passages together.
        cache: a :class:`~knowbase.models.cache.ResponseCache` (None: no cache).
    """

    model: Callable[[], ChatModel]
    search: Callable[[str, int], list[ScoredChunk]] | None = None
    doc_freqs: Callable[[Sequence[str]], tuple[int, dict[str, int]]] | None = None
    anonymizer: Anonymizer | None = None
    language: str = "en"
    max_chars: int = DEFAULT_MAX_CHARS
    k: int = 3
    passage_budget: int = 240
    cache: ResponseCache | None = None

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            from knowbase.errors import UserError

            raise UserError(f"unknown language {self.language!r}; use one of {', '.join(LANGUAGES)}", field="language")
        if self.max_chars < 20:
            from knowbase.errors import UserError

            raise UserError(f"--max-chars must be at least 20, got {self.max_chars}", field="max_chars")
        self._chat: ChatModel | None = None

    def chat_model(self) -> ChatModel:
        if self._chat is None:
            self._chat = self.model()
        return self._chat

    def passages(self, finding: Finding) -> tuple[list[ScoredChunk], str]:
        """``(hits, numbered passage text)`` for a finding."""
        if self.search is None:
            return [], "(none)"
        query = retrieval_query(finding)
        hits = self.search(query, self.k)
        if not hits:
            return [], "(none)"
        q_tokens = tokenize(query)
        n_docs, dfs = self.doc_freqs(q_tokens) if self.doc_freqs else (1, {})
        idf = idf_table(n_docs, dfs)
        count = self.chat_model().count_tokens
        per = max(40, self.passage_budget // len(hits))
        blocks = []
        for n, hit in enumerate(hits, start=1):
            head = f"[{n}]" + (f" ({' > '.join(hit.chunk.section[-2:])})" if hit.chunk.section else "")
            blocks.append(f"{head} {trim_passage(hit.chunk.text, q_tokens, idf, per, count)}")
        return hits, "\n\n".join(blocks)

    def messages(self, finding: Finding) -> tuple[list[Message], list[ScoredChunk]]:
        """The ``[system, user]`` messages (anonymised when an anonymizer is set) and the passages."""
        from knowbase.models.base import Message

        hits, passages = self.passages(finding)
        if self.anonymizer is not None:
            passages = self.anonymizer.mask(passages)  # documentation may quote a name from the cluster
        instruction = fill(template(f"diagnose_lang_{self.language}"), max_chars=str(self.max_chars))
        user = fill(template("diagnose_user"), passages=passages, problem=problem_text(finding, self.anonymizer),
                    instruction=instruction)
        return [Message.system(template("diagnose_system")), Message.user(user)], hits

    def max_tokens(self) -> int:
        """Generation limit: room for the Error line and a solution of ``max_chars`` characters
        (about 3 characters per token in English, 1 in Chinese) and its citations."""
        per_char = 1.0 if self.language == "zh" else 1 / 3
        return int(80 + self.max_chars * per_char * 1.3)

    def explain(self, finding: Finding) -> Explanation:
        """Explain one finding.

        Raises:
            KnowbaseError: the model or the knowledge base failed.
        """
        from knowbase.tracing.context import span

        with span("diagnose.explain", kind="diagnose", reason=finding.reason, kind_of_object=finding.kind):
            messages, hits = self.messages(finding)
            model = self.chat_model()
            max_tokens = self.max_tokens()
            key = cache_key(model.spec, messages, max_tokens)
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                raw, is_cached = cached.text, True
            else:
                result = model.chat(messages, max_tokens=max_tokens, temperature=0.0)
                if self.cache is not None:
                    self.cache.put(key, result)
                raw, is_cached = result.text, False
        return self.parse(raw, hits, model=model.spec, cached=is_cached)

    def parse(self, raw: str, hits: Sequence[ScoredChunk], *, model: str = "", cached: bool = False) -> Explanation:
        """An :class:`Explanation` from the model's raw (anonymised) answer: names restored,
        citations checked against ``hits``, the solution cut to ``max_chars``."""
        text = self.anonymizer.unmask(raw.strip()) if self.anonymizer is not None else raw.strip()
        clean, valid, invalid = parse_citations(text, len(hits))
        attributed = False
        if not valid and hits and self.doc_freqs is not None:
            words = topic_tokens(tokenize(clean))
            best = attribute(words, hits, idf_table(*self.doc_freqs(words)))
            if best is not None:
                valid, attributed = [best], True
                clean = f"{clean} [{best}]"
        error, solution = split_answer(clean)
        solution, truncated = cut_solution(solution, self.max_chars)
        cites = tuple(Citation(n, hits[n - 1].chunk) for n in valid)
        return Explanation(error=error, solution=solution, text=clean, citations=cites, invalid_citations=tuple(invalid),
                           language=self.language, model=model, cached=cached, truncated=truncated,
                           attributed=attributed)


def bare_messages(problem: str, *, language: str = "en", max_chars: int = DEFAULT_MAX_CHARS) -> list[Any]:
    """K8sGPT's prompt as it is (no evidence, no passages): the baseline of ``benches/diagnose.py``."""
    from knowbase.models.base import Message

    lang = {"en": "english", "zh": "chinese"}.get(language, language)
    return [Message.user(fill(template("diagnose_bare"), language=lang, problem=problem, max_chars=str(max_chars)))]
