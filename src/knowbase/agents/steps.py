"""What every agent shares: the step record, the result, and the budgets that stop a run.

An agent never crashes because it ran out of steps, tokens or time: it returns an
:class:`AgentResult` whose ``status`` says which limit held, whose ``message`` says so in
a sentence, and whose ``steps`` hold the partial transcript.
:meth:`AgentResult.raise_for_status` turns that into :class:`~knowbase.errors.BudgetExceeded`
for callers that prefer an exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from knowbase.errors import BudgetExceeded, KnowbaseError
from knowbase.models.base import ChatResult, Usage

Status = Literal["finished", "max_steps", "token_budget", "time_limit", "parse_error", "no_tool", "stopped", "error",
                 "repeated_failure"]
BUDGET_STATUSES = ("max_steps", "token_budget", "time_limit")


@dataclass(slots=True)
class AgentStep:
    """One step of a run, as printed by the CLI and saved in traces.

    Attributes:
        index: 1-based step number.
        kind: ``choose`` (router), ``arguments``, ``tool`` (a tool call), ``answer``,
            ``plan``, ``task``, ``check`` (autonomous), ``parse_error`` or ``budget``.
        thought: the model's reasoning, when it gave one.
        action: the tool called, ``final_answer``, or None.
        action_input: the arguments the model wrote.
        observation: what the tool returned (or the error shown to the model).
        raw: the model's output for this step (the last attempt, if it was retried).
        retries: outputs of this step that did not parse and were sent back.
        usage: tokens spent on this step, retries included.
        ok: False when the tool call failed or was refused.
    """

    index: int
    kind: str
    thought: str = ""
    action: str | None = None
    action_input: Any = None
    observation: str | None = None
    raw: str = ""
    retries: int = 0
    usage: Usage = field(default_factory=Usage)
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {"index": self.index, "kind": self.kind, "thought": self.thought, "action": self.action,
                "action_input": self.action_input, "observation": self.observation, "raw": self.raw,
                "retries": self.retries, "ok": self.ok,
                "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens}}

    def summary(self) -> str:
        """One or two lines for a terminal."""
        head = f"[{self.index}] {self.kind}"
        if self.thought:
            head += f": {self.thought}"
        lines = [head]
        if self.action:
            lines.append(f"    -> {self.action}({_short(self.action_input)})")
        if self.observation is not None:
            lines.append(f"    <- {_short(self.observation, 300)}")
        if self.retries:
            lines.append(f"    ({self.retries} output(s) did not parse and were retried)")
        return "\n".join(lines)


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(slots=True)
class AgentResult:
    """The outcome of a run.

    Attributes:
        answer: the final answer, or None when the run stopped without one.
        status: ``finished``; a budget (``max_steps``, ``token_budget``, ``time_limit``);
            ``parse_error`` (outputs kept failing to parse); ``no_tool`` (the router chose
            "none of these"; ``answer`` holds the polite fallback); ``stopped`` (by the
            human-feedback callback); ``error`` (a model call failed); ``repeated_failure``
            (the same failing tool call was made again: stopped early instead of looping).
        message: one sentence explaining the status.
        steps: the transcript, in order.
        usage: tokens spent in total.
        retries: outputs that did not parse and were sent back, over the whole run.
        trace_id: the trace holding every step and tool call, when tracing is on.
        elapsed_s: wall time of the run, seconds.
        run_id: the saved run's id (autonomous runs), for ``knowbase agent resume``.
    """

    answer: str | None
    status: Status
    message: str
    steps: list[AgentStep] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    retries: int = 0
    trace_id: str | None = None
    elapsed_s: float = 0.0
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the run produced an answer on purpose (``finished`` or ``no_tool``)."""
        return self.status in ("finished", "no_tool")

    @property
    def tool_calls(self) -> list[AgentStep]:
        """The steps that called a tool."""
        return [s for s in self.steps if s.kind == "tool"]

    def raise_for_status(self) -> AgentResult:
        """Return self when ok; raise :class:`BudgetExceeded` (``partial=self``) for a budget,
        :class:`KnowbaseError` (``result=self``) otherwise."""
        if self.ok:
            return self
        if self.status in BUDGET_STATUSES:
            raise BudgetExceeded(self.message, partial=self, status=self.status)
        raise KnowbaseError(self.message, result=self, status=self.status)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (for ``--json``)."""
        return {"answer": self.answer, "status": self.status, "message": self.message,
                "steps": [s.to_dict() for s in self.steps], "retries": self.retries, "trace_id": self.trace_id,
                "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens},
                "elapsed_s": round(self.elapsed_s, 3), "run_id": self.run_id}


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits on one run; None means no limit.

    Attributes:
        max_steps: model steps (ReAct iterations, function-calling turns, autonomous tasks).
        max_tokens: prompt plus completion tokens summed over every call (``ChatResult.usage``).
        max_seconds: wall-clock seconds.
        max_repeated_failures: stop when one tool call (same tool, same arguments) has failed
            this many times: an agent repeating a failing call only burns its step budget
            (HolmesGPT PR #2433). None never stops for this.
    """

    max_steps: int | None = 8
    max_tokens: int | None = None
    max_seconds: float | None = None
    max_repeated_failures: int | None = 2


StepCallback = Callable[[AgentStep], None]


class Meter:
    """Counts steps, tokens, retries and time against a :class:`Budget` during one run.

    Args:
        budget: the limits.
        used: tokens already spent (a resumed run).
        elapsed: seconds already spent (a resumed run).
        steps: steps already taken (a resumed run).
    """

    def __init__(self, budget: Budget, *, used: Usage | None = None, elapsed: float = 0.0, steps: int = 0) -> None:
        self.budget = budget
        self.usage = used or Usage()
        self.steps = steps
        self.retries = 0
        self.failures: dict[str, int] = {}
        self._base_elapsed = elapsed
        self._t0 = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds spent so far, including earlier sessions of a resumed run."""
        return self._base_elapsed + time.monotonic() - self._t0

    def add(self, result: ChatResult) -> Usage:
        """Count one model call's tokens; returns its usage."""
        self.usage = self.usage + result.usage
        return result.usage

    def note_failure(self, tool: str | None, arguments: Any) -> tuple[Status, str] | None:
        """Count a failed tool call; ``("repeated_failure", message)`` when this exact call
        (tool name and arguments, compared as canonical JSON) has now failed
        ``budget.max_repeated_failures`` times, else None."""
        try:
            key = json.dumps([tool, arguments], sort_keys=True, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            key = repr((tool, arguments))
        self.failures[key] = count = self.failures.get(key, 0) + 1
        limit = self.budget.max_repeated_failures
        if limit is not None and count >= limit:
            return ("repeated_failure", f"stopped: the call {tool}({_short(arguments, 120)}) failed {count} times "
                                        "with the same arguments")
        return None

    def exceeded(self) -> tuple[Status, str] | None:
        """``(status, message)`` for the first budget that ran out, or None.

        The step limit is checked before a new step starts: ``steps >= max_steps`` stops.
        """
        b = self.budget
        if b.max_tokens is not None and self.usage.total_tokens >= b.max_tokens:
            return ("token_budget",
                    f"stopped: token budget of {b.max_tokens} used up ({self.usage.total_tokens} tokens spent)")
        if b.max_seconds is not None and self.elapsed >= b.max_seconds:
            return "time_limit", f"stopped: time limit of {b.max_seconds:g} s reached ({self.elapsed:.1f} s spent)"
        if b.max_steps is not None and self.steps >= b.max_steps:
            return "max_steps", f"stopped: step limit of {b.max_steps} reached without a final answer"
        return None
