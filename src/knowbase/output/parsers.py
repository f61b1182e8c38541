"""Parsers for model output: JSON inside prose, lists, multiple-choice letters, key-value lines.

Small models wrap answers in prose, code fences and markdown; each parser looks past that.
Functions return plain values; the ``*Parser`` classes wrap them behind one method,
``parse(text) -> value`` (and ``instructions() -> str`` to tell the model the format), so
:class:`~knowbase.chains.llm.LLMChain` can take any of them as its ``output_parser``.

Examples::

    >>> extract_json('Sure! ```json\\n{"a": 1}\\n``` Hope that helps.')
    {'a': 1}
    >>> parse_list("1. apples\\n2) pears\\n- plums")
    ['apples', 'pears', 'plums']
    >>> parse_choice("The answer is **B**.", 3)
    1
    >>> parse_key_values("Name: Ada\\nRole = engineer")
    {'Name': 'Ada', 'Role': 'engineer'}
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Protocol

from knowbase.errors import OutputParseError
from knowbase.safety.jsonsafe import loads_lenient, top_level_spans

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)```", re.DOTALL)


class OutputParser(Protocol):
    """Turns a model's text into a value; raises OutputParseError (with ``raw``) when it cannot."""

    def parse(self, text: str) -> Any: ...


def extract_json(text: str, *, expect: type | None = None) -> Any:
    """The JSON value in ``text``: the whole text, a fenced block, or one embedded in prose.

    Candidates, in order: the whole text, each fenced block, then each outermost
    ``{...}``/``[...]`` span of the text (:func:`~knowbase.safety.jsonsafe.top_level_spans`).
    Each is decoded with :func:`~knowbase.safety.jsonsafe.loads_lenient`: trailing commas
    are the only repair, so the value returned is the one written. A fragment inside a
    span that does not decode is never tried (``{"items": [1, 2], oops}`` is no JSON,
    not the list ``[1, 2]``).

    Args:
        text: model output, e.g. ``'Here you go: {"a": 1}'``.
        expect: ``dict`` or ``list`` to accept only objects or only arrays.

    Raises:
        OutputParseError: no JSON value found (``raw`` holds the text);
            :class:`~knowbase.safety.jsonsafe.JSONLimitError` (a subclass) when a candidate
            nests deeper than :data:`~knowbase.safety.jsonsafe.MAX_JSON_DEPTH` or is too long.
    """
    def ok(value: Any) -> bool:
        return expect is None or isinstance(value, expect)

    def candidates() -> Any:
        yield text.strip()
        for match in _FENCE.finditer(text):
            yield match.group(2).strip()
        for start, end in top_level_spans(text):
            yield text[start:end]

    for candidate in candidates():
        if not candidate:
            continue
        try:
            value = loads_lenient(candidate)
        except json.JSONDecodeError:
            continue
        if ok(value):
            return value
    kind = "JSON object" if expect is dict else "JSON array" if expect is list else "JSON"
    raise OutputParseError(f"no {kind} found in the model output", raw=text)


_BULLET = re.compile(r"^\s*(?:[-*+\u2022\u2023\u25e6\u2043]|\(?\d{1,3}[.)\]:]|\(?[a-zA-Z][.)\]](?=\s))\s+(.*\S)\s*$")


def parse_list(text: str) -> list[str]:
    """Items of a numbered, bulleted, line-per-item or comma-separated list.

    Lines with list markers win (prose lines around them are dropped); otherwise each
    non-empty line is an item; a single line is split on commas (and a final "and").
    Markdown emphasis and trailing full stops are removed from items.

    Raises:
        OutputParseError: the text is empty.
    """
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise OutputParseError("empty list in the model output", raw=text)
    marked = [m.group(1) for m in (_BULLET.match(ln) for ln in lines) if m]
    if marked:
        items = marked
    elif len(lines) > 1:
        items = [ln.strip() for ln in lines]
    else:
        line = lines[0].strip()
        items = _split_inline(line) if re.search(r"[,;]", line) else [line]
    cleaned = [item.strip().rstrip(".").strip("*_`").strip().rstrip(".").strip() for item in items]
    return [c for c in cleaned if c]


def _split_inline(line: str) -> list[str]:
    """Items of ``"a, b; c and d"``: split at commas and semicolons, a leading ``and`` dropped,
    then at `` and `` between words. Linear: each split pattern starts only where a run
    of spaces starts (``\\s*[,;]`` tried at every space of a long run was quadratic)."""
    items: list[str] = []
    for i, part in enumerate(re.split(r"[,;]", line)):
        part = part.strip()
        if i:
            part = re.sub(r"^and\s++", "", part)
        items.extend(re.split(r"(?<!\s)\s++and\s++", part))
    return items


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_EMPHASIS = re.compile(r"[*_`#>]+")


def parse_choice(text: str, n_options: int, *, labels: Sequence[str] | None = None) -> int | None:
    """Which option (0-based) a multiple-choice answer picks, or None.

    Options are lettered A, B, C... Understood: ``B``, ``b``, ``B)``, ``(B)``, ``**B**``,
    ``B. Billing``, ``The answer is B.``, ``Answer: B``, ``option B``; when ``labels`` are
    given, also the label text itself (``"billing"``) when exactly one label is named.
    Letters outside the options are ignored.
    """
    if n_options <= 0:
        return None
    valid = _LETTERS[:n_options]
    clean = _EMPHASIS.sub("", text).strip()

    def pick(letter: str | None) -> int | None:
        if letter and letter.upper() in valid:
            return valid.index(letter.upper())
        return None

    patterns = [
        r"^\W*([A-Za-z])\W*$",                                                  # "B", "(b)", "B."
        # possessive "\s*+": a long run of spaces is not re-split between the two runs (quadratic)
        r"\b(?:answer|choice|option|letter|destination|label)\s*+(?:is|would be|:|-|=)?\s*+[(\[]?([A-Za-z])\b(?![''])",
        r"^\W*([A-Za-z])\s*[).:\]-](?:\s|$)",                                     # "B) billing", "B: ..."
        r"^\W*([A-Z])\b(?!['])",                                                 # "B billing"
    ]
    for pattern in patterns:
        match = re.search(pattern, clean, flags=re.IGNORECASE if pattern != patterns[3] else 0)
        if match and (found := pick(match.group(1))) is not None:
            return found
    if labels:
        lowered = clean.lower()
        for i, label in enumerate(labels):
            if lowered.rstrip(".! ") == label.lower():
                return i
        hits = {i for i, label in enumerate(labels) if label and re.search(r"\b" + re.escape(label.lower()) + r"\b", lowered)}
        if len(hits) == 1:
            return hits.pop()
    capitals = {c for c in re.findall(r"(?<![\w'])([A-Z])(?![\w'])", clean) if c in valid and c not in "AI"}
    if len(capitals) == 1:
        return valid.index(capitals.pop())
    return None


def _key_value(line: str) -> tuple[str, str] | None:
    """``(key, value)`` of a ``key: value`` / ``key = value`` line, or None.

    The key is the text before the first ``:`` or ``=``, without a list marker, markdown
    emphasis and spaces around it, 1 to 60 characters. Written with string operations, not
    one regular expression: the expression this replaces backtracked cubically on a long
    run of spaces.
    """
    cuts = [i for i in (line.find(":"), line.find("=")) if i >= 0]
    if not cuts:
        return None
    cut = min(cuts)
    key = line[:cut].strip()
    if key[:1] in ("-", "*", "+", "\u2022"):
        key = key[1:].lstrip()
    key = key.strip("*_`").strip()
    if not 1 <= len(key) <= 60:
        return None
    return key, line[cut + 1:].strip()


def parse_key_values(text: str, *, keys: Sequence[str] | None = None) -> dict[str, str]:
    """``key: value`` or ``key = value`` lines as a dict (first occurrence wins).

    Args:
        text: the model output.
        keys: if given, only these keys are kept, matched case-insensitively and returned
            with the spelling given here.

    Raises:
        OutputParseError: none of the expected lines were found.
    """
    wanted = {k.lower(): k for k in keys} if keys else None
    out: dict[str, str] = {}
    for line in text.splitlines():
        pair = _key_value(line)
        if pair is None:
            continue
        key, value = pair[0], pair[1].strip("*_`").strip()
        if not value:  # "Here you go:" is prose, not a field
            continue
        if wanted is not None:
            if key.lower() not in wanted:
                continue
            key = wanted[key.lower()]
        out.setdefault(key, value)
    if not out:
        raise OutputParseError("no key: value lines found in the model output", raw=text)
    return out


# --- parser objects -------------------------------------------------------------------------
class StrParser:
    """The text, stripped."""

    def parse(self, text: str) -> str:
        return text.strip()

    def instructions(self) -> str:
        return ""


class JsonParser:
    """Any JSON value found in the text (see :func:`extract_json`)."""

    def __init__(self, *, expect: type | None = None) -> None:
        self.expect = expect

    def parse(self, text: str) -> Any:
        return extract_json(text, expect=self.expect)

    def instructions(self) -> str:
        return "Reply with JSON only."


class ListParser:
    """A list of strings (see :func:`parse_list`)."""

    def parse(self, text: str) -> list[str]:
        return parse_list(text)

    def instructions(self) -> str:
        return "Reply with a numbered list, one item per line."


class ChoiceParser:
    """One of ``labels``, from a letter or the label text (see :func:`parse_choice`).

    Args:
        labels: the options, lettered A, B, C... in the prompt.
        default: returned when nothing matches; when None a miss raises OutputParseError.
    """

    def __init__(self, labels: Sequence[str], *, default: str | None = None) -> None:
        self.labels = list(labels)
        self.default = default

    def options_text(self) -> str:
        """``"A) first\\nB) second"``: the options as the prompt shows them."""
        return options_block(self.labels)

    def parse(self, text: str) -> str:
        index = parse_choice(text, len(self.labels), labels=self.labels)
        if index is None:
            if self.default is not None:
                return self.default
            raise OutputParseError(f"no option letter found in {text[:80]!r}", raw=text)
        return self.labels[index]

    def instructions(self) -> str:
        return "Answer with the letter of one option only."


class KeyValueParser:
    """``key: value`` lines as a dict (see :func:`parse_key_values`)."""

    def __init__(self, keys: Sequence[str] | None = None) -> None:
        self.keys = list(keys) if keys else None

    def parse(self, text: str) -> dict[str, str]:
        return parse_key_values(text, keys=self.keys)

    def instructions(self) -> str:
        keys = ", ".join(self.keys) if self.keys else "each field"
        return f"Reply with one 'key: value' line for {keys}."


def letters(n: int) -> str:
    """The first ``n`` option letters (``letters(3) == "ABC"``)."""
    return _LETTERS[:n]


def options_block(labels: Sequence[str]) -> str:
    """Lettered options, one per line: ``A) first``."""
    return "\n".join(f"{_LETTERS[i]}) {label}" for i, label in enumerate(labels))

