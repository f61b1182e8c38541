"""Pipelines: steps run in order, each reading named values the earlier ones wrote."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from knowbase.chains.base import Chain
from knowbase.errors import ChainError

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.tracing.store import TraceStore


class SequentialChain(Chain):
    """Run ``steps`` in order over one growing dict of named values.

    The wiring is checked when the chain is built: every key a step needs must be one of
    the chain's inputs or an output of an earlier step, and no step may overwrite a key
    that already exists. Either mistake raises :class:`ChainError` naming the step and
    the key, before anything runs.

    Args:
        steps: the steps (any :class:`Chain`).
        input_keys: the keys the caller gives; default the first step's input keys.
        name: the span name.
        tracer: where the run's spans go; default the first tracer found among the steps.

    ``invoke`` returns every value: the inputs plus each step's outputs. ``output_keys``
    lists the keys the steps add.

    Example::

        chain = SequentialChain([outline, draft, TransformChain(count_words, ["draft"], ["words"])],
                                input_keys=["topic"])
        chain.invoke({"topic": "SQLite"})["words"]
    """

    def __init__(self, steps: Sequence[Chain], *, input_keys: Sequence[str] | None = None,
                 name: str = "SequentialChain", tracer: TraceStore | None = None) -> None:
        if not steps:
            raise ChainError("a SequentialChain needs at least one step", step=name)
        for i, step in enumerate(steps):
            if not isinstance(step, Chain):
                raise ChainError(f"step {i + 1} of {name} is a {type(step).__name__}, not a Chain", step=name)
        self.steps = list(steps)
        self.name = name
        self.flattenable = name == "SequentialChain"
        self.input_keys = tuple(input_keys) if input_keys is not None else tuple(steps[0].input_keys)
        available = list(self.input_keys)
        added: list[str] = []
        for i, step in enumerate(self.steps, start=1):
            missing = [k for k in step.input_keys if k not in available]
            if missing:
                raise ChainError(
                    f"step {i} ({step.name}) needs {', '.join(missing)}, which no earlier step provides; "
                    f"available: {', '.join(available) or 'none'} (declare caller inputs with input_keys=)",
                    step=step.name, index=i, missing=missing)
            clash = [k for k in step.output_keys if k in available]
            if clash:
                raise ChainError(f"step {i} ({step.name}) would overwrite {', '.join(clash)}; give it another "
                                 f"output_key", step=step.name, index=i, clash=clash)
            available.extend(step.output_keys)
            added.extend(step.output_keys)
        self.output_keys = tuple(added)
        self.tracer = tracer or next((s.tracer for s in self.steps if s.tracer is not None), None)

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        state = dict(inputs)
        for step in self.steps:
            state.update(step.invoke(state))
        return state

    def _stream(self, inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Runs every step but the last, then streams the last step's chunks."""
        state = dict(inputs)
        for step in self.steps[:-1]:
            state.update(step.invoke(state))
        yield from self.steps[-1].stream(state)
