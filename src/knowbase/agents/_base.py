"""Plumbing shared by the agents: the toolbox argument, the budget keywords, the root span."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from knowbase.agents.steps import AgentResult, AgentStep, Budget, Meter, Status, StepCallback
from knowbase.agents.tools import Tool, Toolbox
from knowbase.models.base import ChatModel
from knowbase.tracing.context import Span, span

ToolsLike = Toolbox | Iterable[Tool | Callable[..., Any]]


def as_toolbox(tools: ToolsLike) -> Toolbox:
    """A :class:`Toolbox` from a toolbox, tools or plain functions."""
    return tools if isinstance(tools, Toolbox) else Toolbox(tools)


def make_budget(budget: Budget | None, max_steps: int | None, max_tokens: int | None,
                max_seconds: float | None, default_steps: int) -> Budget:
    """A :class:`Budget` from an explicit one or from the keyword limits."""
    if budget is not None:
        return budget
    return Budget(max_steps=max_steps if max_steps is not None else default_steps, max_tokens=max_tokens,
                  max_seconds=max_seconds)


class Run:
    """The state of one agent run: transcript, meter and the step callback."""

    def __init__(self, meter: Meter, on_step: StepCallback | None, root: Span) -> None:
        self.meter = meter
        self.steps: list[AgentStep] = []
        self.on_step = on_step
        self.root = root

    def record(self, step: AgentStep) -> AgentStep:
        """Append a finished step and tell the callback."""
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        return step

    def next_index(self) -> int:
        return len(self.steps) + 1

    def result(self, answer: str | None, status: Status, message: str) -> AgentResult:
        """The :class:`AgentResult` of this run, with totals filled in."""
        self.root.set(status=status, steps=len(self.steps), retries=self.meter.retries,
                      prompt_tokens=self.meter.usage.prompt_tokens, completion_tokens=self.meter.usage.completion_tokens)
        return AgentResult(answer, status, message, list(self.steps), self.meter.usage, self.meter.retries,
                           self.root.trace_id, self.meter.elapsed)


@contextmanager
def agent_run(kind: str, model: ChatModel, budget: Budget, on_step: StepCallback | None, *,
              tracer: Any = None, meter: Meter | None = None, **attributes: Any) -> Iterator[Run]:
    """Open the ``agent:<kind>`` span (stored in the model's trace store unless ``tracer``
    is given) and yield a :class:`Run` (with a fresh :class:`Meter` unless ``meter``)."""
    store = tracer if tracer is not None else getattr(model, "tracer", None)
    with span(f"agent:{kind}", kind="agent", store=store, model=model.spec, **attributes) as root:
        yield Run(meter or Meter(budget), on_step, root)
