"""Depth-bounded JSON decoding and a repair that never changes what was written.

Model text is hostile input: ``[[[[...]]]]`` nested a thousand deep makes the standard
decoder raise ``RecursionError`` (an uncaught crash, not a parse error), and a lenient
scanner that falls back to "the first thing that decodes" turns
``{"items": [1, 2, 3],}`` into the list ``[1, 2, 3]``. This module is the one place where
knowbase decodes JSON written by a model:

* :func:`loads` -- :func:`json.loads` after a linear, string-aware depth scan: nesting
  deeper than :data:`MAX_JSON_DEPTH` or text longer than :data:`MAX_JSON_CHARS` raises
  :class:`JSONLimitError` before the decoder runs.
* :func:`repair` -- the only syntax repair applied: commas directly before a closing
  ``}`` or ``]`` (outside strings) are removed. A trailing comma carries no value, so the
  repaired text denotes exactly the object that was written; nothing else is guessed.
* :func:`loads_lenient` -- :func:`loads`, then :func:`repair` + :func:`loads`.
* :func:`top_level_spans` -- the outermost balanced ``{...}``/``[...]`` spans of prose.
  Callers decode these and never look inside a span that failed: an inner fragment is
  a different value than the one the model wrote.

Example::

    >>> loads_lenient('{"items": [1, 2, 3],}')
    {'items': [1, 2, 3]}
    >>> loads("[" * 5000 + "]" * 5000)
    Traceback (most recent call last):
    ...
    knowbase.safety.jsonsafe.JSONLimitError: JSON nested 5000 deep; the limit is 100
"""

from __future__ import annotations

import json
from typing import Any

from knowbase.errors import OutputParseError

#: Deepest nesting of arrays and objects accepted, levels. Real tool arguments and
#: structured outputs nest a few levels; CPython's decoder recurses once per level and
#: fails near 1,000, pydantic-core's near 200.
MAX_JSON_DEPTH = 100

#: Longest JSON text decoded, characters (a model reply is far shorter).
MAX_JSON_CHARS = 2_000_000


class JSONLimitError(OutputParseError):
    """JSON text over a limit (``limit`` names it: ``depth`` or ``chars``; ``value``, ``maximum``)."""


def json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in ``text``, ignoring brackets inside JSON strings.

    Linear in ``len(text)``; unbalanced text gives the deepest level reached.

    >>> json_depth('{"a": [1, {"b": "[[["}]}')
    3
    """
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]}" and depth:
            depth -= 1
    return deepest


def check_limits(text: str, *, max_depth: int = MAX_JSON_DEPTH, max_chars: int = MAX_JSON_CHARS) -> None:
    """Raise :class:`JSONLimitError` when ``text`` is longer or nests deeper than allowed."""
    if len(text) > max_chars:
        raise JSONLimitError(f"JSON text of {len(text)} characters; the limit is {max_chars}", raw=text[:200],
                             limit="chars", value=len(text), maximum=max_chars)
    depth = json_depth(text)
    if depth > max_depth:
        raise JSONLimitError(f"JSON nested {depth} deep; the limit is {max_depth}", raw=text[:200],
                             limit="depth", value=depth, maximum=max_depth)


def loads(text: str, *, max_depth: int = MAX_JSON_DEPTH, max_chars: int = MAX_JSON_CHARS) -> Any:
    """:func:`json.loads` with the depth and size limits checked first.

    Raises:
        JSONLimitError: over :data:`MAX_JSON_DEPTH` levels or :data:`MAX_JSON_CHARS` characters.
        json.JSONDecodeError: not valid JSON.
    """
    check_limits(text, max_depth=max_depth, max_chars=max_chars)
    return json.loads(text)


def raw_decode(text: str, start: int = 0, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, int]:
    """:meth:`json.JSONDecoder.raw_decode` of ``text`` from ``start``, depth-checked first.

    Returns ``(value, end index)``. Raises as :func:`loads`.
    """
    check_limits(text[start:], max_depth=max_depth)
    return json.JSONDecoder().raw_decode(text, start)


def repair(text: str) -> str:
    """``text`` with every comma that directly precedes ``}`` or ``]`` removed (outside strings).

    Whitespace between the comma and the bracket is kept. Nothing else changes, so when
    the result decodes it denotes the value that was written.

    >>> repair('{"a": [1, 2,], "s": "x,]",}')
    '{"a": [1, 2], "s": "x,]"}'
    """
    out: list[str] = []
    pending: int | None = None  # index in out of a comma that may be trailing
    in_str = esc = False
    for ch in text:
        if in_str:
            out.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch in " \t\r\n":
            out.append(ch)
            continue
        if ch in "}]" and pending is not None:
            del out[pending]
        pending = None
        if ch == ",":
            pending = len(out)
        elif ch == '"':
            in_str = True
        out.append(ch)
    return "".join(out)


def loads_lenient(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """:func:`loads`, then the same after :func:`repair` (trailing commas only).

    Raises:
        JSONLimitError: over a limit.
        json.JSONDecodeError: not valid JSON even without trailing commas (the error of
            the text as written).
    """
    try:
        return loads(text, max_depth=max_depth)
    except json.JSONDecodeError as first:
        fixed = repair(text)
        if fixed == text:
            raise
        try:
            return json.loads(fixed)
        except json.JSONDecodeError:
            raise first from None


def top_level_spans(text: str, opens: str = "{[") -> list[tuple[int, int]]:
    """``(start, end)`` of each outermost balanced bracket span in ``text`` (end exclusive).

    A span starts at a character in ``opens``; inside it strings are honoured (a bracket
    in a string does not count), and both bracket kinds nest. Outside spans quotes are
    prose (``don't``) and ignored. A span never closed runs to the end and is not
    returned. Linear in ``len(text)``.

    >>> top_level_spans('see [1] and {"a": [2]} then {')
    [(4, 7), (12, 22)]
    """
    spans: list[tuple[int, int]] = []
    depth, start = 0, -1
    in_str = esc = False
    for i, ch in enumerate(text):
        if depth:
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    spans.append((start, i + 1))
        elif ch in opens:
            depth, start = 1, i
    return spans
