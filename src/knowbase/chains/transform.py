"""A plain Python function as a step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from knowbase.chains.base import Chain
from knowbase.errors import ChainError


class TransformChain(Chain):
    """Run ``fn`` on the named inputs; it returns a dict with the named outputs.

    Args:
        fn: ``(inputs: dict) -> dict``; receives only ``input_keys``.
        input_keys: keys ``fn`` reads.
        output_keys: keys ``fn`` must return (others it returns are dropped).
        name: the span name; default the function's name.

    Raises:
        ChainError: (at run time) ``fn`` did not return a dict with every output key.

    Example::

        words = TransformChain(lambda d: {"n": len(d["text"].split())}, ["text"], ["n"])
        words.invoke({"text": "one two three"})     # {'n': 3}
    """

    def __init__(self, fn: Callable[[dict[str, Any]], Mapping[str, Any]], input_keys: Sequence[str],
                 output_keys: Sequence[str], *, name: str | None = None) -> None:
        if isinstance(input_keys, str) or isinstance(output_keys, str):
            raise ChainError("input_keys and output_keys are lists of names, not one string", step=name or "transform")
        self.fn = fn
        self.input_keys = tuple(input_keys)
        self.output_keys = tuple(output_keys)
        label = name or getattr(fn, "__name__", "transform")
        self.name = "transform" if label == "<lambda>" else str(label)

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        out = self.fn({k: inputs[k] for k in self.input_keys})
        if not isinstance(out, Mapping):
            raise ChainError(f"{self.name} returned {type(out).__name__}, not a dict", step=self.name)
        missing = [k for k in self.output_keys if k not in out]
        if missing:
            raise ChainError(f"{self.name} did not return {', '.join(missing)}", step=self.name, missing=missing)
        return {k: out[k] for k in self.output_keys}
