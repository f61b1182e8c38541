"""Token prices, for the cost estimates of ``knowbase eval`` and ``knowbase logs stats``.

Models that run in-process (``llamacpp``, ``onnx``, ``sentence-transformers``, ``fake``)
cost nothing per token. Prices of remote models come from the ``[prices]`` table of
``config.toml``, in US dollars per million tokens, keyed by model string (``backend:model``,
as traces record it) or by the bare model name::

    [prices]
    "openai:gpt-4o-mini" = { prompt = 0.15, completion = 0.60 }
    "deepseek-chat" = { prompt = 0.27, completion = 1.10 }

A remote model with no price has an unknown cost (None), never a made-up one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knowbase.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings

LOCAL_BACKENDS = frozenset({"llamacpp", "onnx", "sentence-transformers", "fake"})


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices per million tokens: ``{model: (prompt, completion)}`` in US dollars."""

    table: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices:
        """Read ``[prices]`` from the settings' config file (``settings.extra["prices"]``).

        Raises:
            ConfigError: an entry is not ``{prompt = N, completion = N}`` with numbers >= 0.
        """
        return cls.from_mapping(settings.extra.get("prices") or {})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Prices:
        """Build from ``{model: {"prompt": N, "completion": N}}`` (or ``[prompt, completion]``).

        Raises:
            ConfigError: a malformed entry (names the model).
        """
        table: dict[str, tuple[float, float]] = {}
        for model, value in raw.items():
            try:
                if isinstance(value, Mapping):
                    pair = (float(value["prompt"]), float(value["completion"]))
                else:
                    pair = (float(value[0]), float(value[1]))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise ConfigError(f"price of {model!r} must be {{prompt = N, completion = N}} "
                                  f"(dollars per million tokens)", field=f"prices.{model}") from exc
            if min(pair) < 0:
                raise ConfigError(f"price of {model!r} is negative", field=f"prices.{model}")
            table[str(model)] = pair
        return cls(table)

    def per_million(self, model: str) -> tuple[float, float] | None:
        """``(prompt, completion)`` dollars per million tokens; ``(0, 0)`` for local
        backends; None when unknown."""
        if model in self.table:
            return self.table[model]
        backend, _, name = model.partition(":")
        if backend in LOCAL_BACKENDS:
            return (0.0, 0.0)
        name = name.split("@", 1)[0]
        return self.table.get(name)

    def cost(self, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """Dollars for one call; None when the price or the token counts are unknown."""
        price = self.per_million(model)
        if price is None or prompt_tokens is None:
            return None
        return (prompt_tokens * price[0] + (completion_tokens or 0) * price[1]) / 1_000_000
