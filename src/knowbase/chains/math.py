"""The model writes an arithmetic expression; :func:`~knowbase.safety.math.safe_eval` computes it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from knowbase.chains.base import Chain
from knowbase.errors import SafetyError
from knowbase.prompts.loader import load_template
from knowbase.prompts.template import PromptTemplate
from knowbase.safety.math import safe_eval
from knowbase.tracing.context import current_span

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_SYMBOLS = str.maketrans({"\u00d7": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-", "\u00b7": "*"})


def extract_expression(text: str) -> str:
    """The arithmetic expression in a model reply.

    Takes a fenced block if there is one, else the first line with a digit; drops a
    leading ``Expression:``/``Answer:`` label, a trailing ``= result``, ``$`` signs and a
    final full stop; maps ``×``, ``÷``, ``−`` to ``*``, ``/``, ``-``.

    Example::

        >>> extract_expression("Expression: 12 × (3 + 4) = 84.")
        '12 * (3 + 4)'
    """
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    lines = [ln.strip().strip("`") for ln in body.splitlines() if ln.strip()]
    line = next((ln for ln in lines if re.search(r"\d", ln)), lines[0] if lines else "")
    line = re.sub(r"^\s*(?:expression|answer|result|calculation)\s*[:=]\s*", "", line, flags=re.IGNORECASE)
    line = line.translate(_SYMBOLS).replace("$", "")
    if "=" in line:
        line = line.split("=", 1)[0]
    return line.strip().rstrip(".").strip()


class MathChain(Chain):
    """Answer arithmetic questions: the model writes the expression, safe code computes it.

    The model's text is never executed: it goes through :func:`safe_eval`, which accepts
    numbers, operators and a whitelist of functions only, and bounds exponents and result
    sizes. An expression it refuses raises :class:`~knowbase.errors.SafetyError`.

    Args:
        model: the chat model.
        input_key: the question's key (default ``question``).
        output_key: the answer's key (default ``answer``); ``expression`` is output too.
        prompt: a template with ``{question}``; default the shipped ``chain_math``.
        max_power, max_length: passed to :func:`safe_eval`.
    """

    def __init__(self, model: ChatModel, *, input_key: str = "question", output_key: str = "answer",
                 prompt: PromptTemplate | str | None = None, max_power: int = 10_000, max_length: int = 500,
                 max_tokens: int = 64, name: str = "MathChain") -> None:
        self.model = model
        self.prompt = load_template("chain_math") if prompt is None else (
            PromptTemplate(prompt) if isinstance(prompt, str) else prompt)
        self.input_key = input_key
        self.output_key = output_key
        self.max_power = max_power
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.name = name
        self.input_keys = (input_key,)
        self.output_keys = (output_key, "expression")
        self.tracer = getattr(model, "tracer", None)

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        text = self.prompt.render({"question": inputs[self.input_key]})
        reply = self.model.chat(text, max_tokens=self.max_tokens, temperature=0.0).text
        expression = extract_expression(reply)
        sp = current_span()
        if sp is not None:
            sp.set(expression=expression)
        try:
            value = safe_eval(expression, max_power=self.max_power, max_length=self.max_length)
        except SafetyError as exc:
            exc.detail["expression"] = expression
            exc.expression = expression  # type: ignore[attr-defined]
            raise
        return {self.output_key: value, "expression": expression}
