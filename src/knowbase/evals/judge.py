"""An optional judge model: faithfulness and answer correctness as schema-validated verdicts.

The judge is any chat model string (the embedded Qwen included; no key is needed unless the
model is remote). Each verdict is a :class:`Verdict` obtained with
:func:`knowbase.output.structured.chat_structured` (constrained JSON where the backend
supports it, validation, retries with the error shown to the model). Replies are cached in
``$KNOWBASE_HOME/judge_cache.db``, keyed by the model string and the SHA-256 of the whole
prompt (:class:`knowbase.models.cache.ResponseCache`), so re-running an evaluation does not
pay for the same verdict twice.

A verdict the judge could not give (the model failed, or its reply never validated) is
``None``: the report counts it as *unmeasured* and leaves it out of the average, instead of
averaging a NaN into the metric (the failure mode of ragas #733 and #1274).

Scores: ``yes`` = 1.0, ``partly`` = 0.5, ``no`` = 0.0 (a three-point scale, as in the
LLM-as-judge setups of Zheng et al. 2023, "Judging LLM-as-a-Judge", reduced to a coarse
scale small models can follow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from knowbase.errors import KnowbaseError

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings
    from knowbase.models.base import ChatModel

__all__ = ["Verdict", "Judge", "JudgeScore", "SCORE"]

SCORE = {"yes": 1.0, "partly": 0.5, "no": 0.0}
MAX_PASSAGE_CHARS = 1200
"""Characters of each passage shown to the judge (keeps prompts lean for small models)."""


class Verdict(BaseModel):
    """What the judge must reply: ``{"verdict": "yes" | "partly" | "no", "reason": "..."}``."""

    verdict: Literal["yes", "partly", "no"]
    reason: str = Field(default="", max_length=500)


@dataclass(frozen=True, slots=True)
class JudgeScore:
    """One judged value: ``score`` in {0, 0.5, 1} or None when unmeasured, with the reason
    (the judge's, or why it could not judge)."""

    score: float | None
    reason: str
    attempts: int = 0


class Judge:
    """Scores answers with a chat model.

    Args:
        model: a :class:`~knowbase.models.base.ChatModel` (build one with :meth:`from_spec`
            to get the cache).
        max_attempts: model calls per verdict (the first plus retries on invalid output).
    """

    def __init__(self, model: ChatModel, *, max_attempts: int = 3) -> None:
        self.model = model
        self.max_attempts = max_attempts

    @classmethod
    def from_spec(cls, spec: str, *, settings: Settings, max_attempts: int = 3) -> Judge:
        """A judge for a model string, its replies cached in ``settings.home / "judge_cache.db"``."""
        from knowbase.models.cache import ResponseCache
        from knowbase.models.registry import get_chat_model

        cache = ResponseCache(settings.home / "judge_cache.db")
        return cls(get_chat_model(spec, settings=settings, cache=cache), max_attempts=max_attempts)

    @property
    def spec(self) -> str:
        return self.model.spec

    def _ask(self, template: str, **values: str) -> JudgeScore:
        from knowbase.output.structured import Structured, chat_structured
        from knowbase.prompts.loader import load_template

        prompt = load_template(template).format(**values)
        try:
            out: Structured[Verdict] = chat_structured(self.model, prompt, Verdict, max_attempts=self.max_attempts, temperature=0.0,
                                  max_tokens=160)
        except KnowbaseError as exc:
            return JudgeScore(None, f"unmeasured: {exc}", int(exc.detail.get("attempts", 0) or 0))
        return JudgeScore(SCORE[out.value.verdict], out.value.reason, out.attempts)

    def faithfulness(self, question: str, answer: str, passages: Sequence[str]) -> JudgeScore:
        """Is the answer supported by the passages it was written from?"""
        shown = "\n\n".join(f"[{i}] {p[:MAX_PASSAGE_CHARS]}" for i, p in enumerate(passages, start=1))
        return self._ask("eval_judge_faithfulness", passages=shown or "(none)", question=question, answer=answer)

    def correctness(self, question: str, answer: str, reference: str) -> JudgeScore:
        """Does the answer agree with the reference answer?"""
        return self._ask("eval_judge_correctness", question=question, reference=reference, answer=answer)
