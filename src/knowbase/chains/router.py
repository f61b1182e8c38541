"""Route an input to one of several chains by asking the model a multiple-choice question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knowbase.chains.base import Chain
from knowbase.errors import ChainError
from knowbase.output.parsers import options_block, parse_choice
from knowbase.prompts.loader import load_template
from knowbase.prompts.template import PromptTemplate
from knowbase.tracing.context import current_span

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel

NONE_OF_THESE = "none of these"


@dataclass(frozen=True, slots=True)
class Route:
    """A destination: ``name`` (reported as ``destination``), a one-line ``description``
    the model reads, and the ``chain`` that handles it."""

    name: str
    description: str
    chain: Chain


class RouterChain(Chain):
    """The model picks a destination by letter; that chain runs on the same inputs.

    The question lists the routes as ``A) description``, ``B) ...`` and ``none of these``
    last. The reply is parsed robustly (``B``, ``b``, ``B)``, ``**B**``, ``The answer is
    B.``, or the route's name); "none of these" or an unparseable reply goes to
    ``fallback``.

    Args:
        model: the chat model that chooses.
        routes: the destinations.
        fallback: the chain for "none of these" and unparseable replies.
        input_key: the input the model reads to decide (default ``input``).
        prompt: a template with ``{input}`` and ``{options}``; default the shipped
            ``chain_router`` template.
        name: the span name.

    Returns (from ``invoke``): the chosen chain's outputs plus ``destination`` (the route
    name, or ``fallback``) and ``choice`` (the model's raw reply).
    """

    def __init__(self, model: ChatModel, routes: Sequence[Route], *, fallback: Chain, input_key: str = "input",
                 prompt: PromptTemplate | str | None = None, name: str = "RouterChain", max_tokens: int = 8) -> None:
        if not routes:
            raise ChainError("a RouterChain needs at least one route", step=name)
        if len(routes) > 25:
            raise ChainError("a RouterChain takes at most 25 routes (letters A-Y, Z is 'none of these')", step=name)
        self.model = model
        self.routes = list(routes)
        self.fallback = fallback
        self.input_key = input_key
        self.prompt = load_template("chain_router") if prompt is None else (
            PromptTemplate(prompt) if isinstance(prompt, str) else prompt)
        missing = {"input", "options"} - set(self.prompt.variables)
        if missing:
            raise ChainError(f"router prompt lacks slot(s) {', '.join(sorted(missing))}", step=name)
        self.name = name
        self.max_tokens = max_tokens
        chains = [r.chain for r in self.routes] + [fallback]
        self.input_keys = tuple(dict.fromkeys([input_key, *(k for c in chains for k in c.input_keys)]))
        common = set(chains[0].output_keys).intersection(*(c.output_keys for c in chains[1:]))
        self.output_keys = tuple(k for k in chains[0].output_keys if k in common) + ("destination", "choice")
        self.tracer = getattr(model, "tracer", None)
        self._labels = [r.name for r in self.routes] + [NONE_OF_THESE]
        self._options = options_block([r.description for r in self.routes] + [NONE_OF_THESE])

    def choose(self, text: str) -> tuple[Route | None, str]:
        """Ask the model; returns the chosen route (None for fallback) and its raw reply."""
        prompt = self.prompt.render({"input": text, "options": self._options})
        reply = self.model.chat(prompt, max_tokens=self.max_tokens, temperature=0.0).text
        index = parse_choice(reply, len(self._labels), labels=self._labels)
        if index is None or index == len(self.routes):
            return None, reply
        return self.routes[index], reply

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        route, reply = self.choose(str(inputs[self.input_key]))
        target = route.chain if route else self.fallback
        destination = route.name if route else "fallback"
        sp = current_span()
        if sp is not None:
            sp.set(destination=destination)
        out = target.invoke(inputs)
        return {**out, "destination": destination, "choice": reply}
