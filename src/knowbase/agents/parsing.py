"""Parsers for what models write in agent loops: a multiple-choice letter, a ReAct step
(text or JSON), a JSON object, and tool calls written as text.

Every parser either returns a value or raises :class:`StepParseError` whose message is
written to be sent back to the model (ReAct-style retry), never a stack trace.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from knowbase.errors import OutputParseError
from knowbase.models.base import ToolCall
from knowbase.safety.jsonsafe import JSONLimitError, loads_lenient, top_level_spans

FINAL = "final_answer"


class StepParseError(OutputParseError):
    """A model's step output did not parse (``raw`` holds it); the message says what was expected."""


# --- multiple choice ---------------------------------------------------------------------
_MARKUP = re.compile(r"[*_`#>\"]")
_PHRASE = re.compile(
    r"\b(?:answer|option|choice|choose|chose|chosen|pick|picked|select|selected|letter|go\s+with|would\s+be)\b"
    r"\s*+(?:is|would\s++be|:|-|=)?\s*+(?:option\s++|letter\s++)?[(\[]?([A-Za-z])(?![A-Za-z])(\s+[a-z])?",
    re.IGNORECASE)
_LEADING = re.compile(r"^[(\[]?([A-Za-z])\s*(?:[).:\]]|\s-|$)")
_WHOLE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[).:\],]?")


def choice_letters(n: int) -> str:
    """The first ``n`` letters, ``A``, ``B``, ...; at most 26 options."""
    if not 1 <= n <= 26:
        raise ValueError(f"between 1 and 26 options, not {n}")
    return string.ascii_uppercase[:n]


def parse_choice(text: str, n: int, *, names: Sequence[str] = ()) -> int | None:
    """The 0-based option a model picked from letters ``A..``, or None when unclear.

    Accepts ``"B"``, ``"B)"``, ``"(b)"``, ``"**b**"``, ``"Answer: B"``, ``"The answer is B."``,
    ``"I choose B because..."``, ``"B) order_lookup"``; when no letter is found, an option
    name (``names[i]``, e.g. a tool name) mentioned alone picks that option, and "none"
    picks the last option. A lowercase ``a``/``i`` followed by a word ("is a tool") is read
    as English, not a letter.

    Args:
        text: the model's reply.
        n: how many options were offered.
        names: optional names of the options, same order as the letters.

    Examples:
        >>> parse_choice("Answer: **c**", 4)
        2
        >>> parse_choice("I choose B because it is an order question", 4)
        1
        >>> parse_choice("I am not sure", 4) is None
        True
    """
    letters = choice_letters(n)
    clean = _MARKUP.sub(" ", text or "").strip()
    if not clean:
        return None
    whole = _WHOLE.fullmatch(clean)
    if whole and whole[1].upper() in letters:
        return letters.index(whole[1].upper())
    for m in _PHRASE.finditer(clean):
        letter, next_word = m[1], m[2]
        if letter.islower() and letter in "ai" and next_word:
            continue
        if letter.upper() in letters:
            return letters.index(letter.upper())
    first_line = clean.splitlines()[0].strip()
    lead = _LEADING.match(first_line)
    if lead and lead[1].upper() in letters and (lead[1].isupper() or lead[1] not in "ai"):
        return letters.index(lead[1].upper())
    lowered = (text or "").lower()
    hits = [i for i, name in enumerate(names) if name and re.search(rf"\b{re.escape(name.lower())}\b", lowered)]
    if len(hits) == 1:
        return hits[0]
    if re.search(r"\bnone\b", lowered):
        return n - 1
    return None


# --- JSON ----------------------------------------------------------------------------------
def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text`` (code fences and chatter around it are ignored).

    The whole text is tried first, then each outermost ``{...}``/``[...]`` span; each is
    decoded with :func:`~knowbase.safety.jsonsafe.loads_lenient` (trailing commas are the
    only repair) and a fragment inside a span that failed is never tried, so the object
    returned is the one the model wrote.

    Raises:
        StepParseError: no JSON object could be decoded, or one is over a limit of
            :mod:`knowbase.safety.jsonsafe` (then ``limit`` names it).
    """
    raw = text or ""
    stripped = re.sub(r"```(?:json)?", "", raw).strip()
    try:
        for candidate in (stripped, *(stripped[a:b] for a, b in top_level_spans(stripped))):
            try:
                value = loads_lenient(candidate)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    except JSONLimitError as exc:
        raise StepParseError(f"the JSON is too large: {exc}", raw=raw, limit=exc.detail.get("limit")) from None
    raise StepParseError("expected one JSON object, found none" if "{" not in raw
                         else "the JSON object is not valid JSON (check quotes, commas and braces)", raw=raw)


# --- ReAct steps ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReActStep:
    """One parsed ReAct step: an ``action`` (a tool name, or ``final_answer``) and its input."""

    thought: str
    action: str
    action_input: Any

    @property
    def is_final(self) -> bool:
        return self.action == FINAL


# Linear on hostile text: line starts are matched as "\n[ \t]*", not "\n\s*" (the same lines,
# but a run of blank lines is not rescanned from each of its newlines), and the whitespace
# and digit runs between key words are possessive ("*+"): "Action" + 100,000 spaces fails
# once instead of trying every split of the run between two "\s*" (quadratic).
_THOUGHT = re.compile(r"Thought\s*+:\s*(.*?)(?=\n[ \t]*+(?:Action|Final\s*+Answer)\b|\Z)",
                      re.IGNORECASE | re.DOTALL)
_ACTION = re.compile(r"^[ \t]*+Action[ \t]*+\d*+[ \t]*+:[ \t]*+(.*)$", re.IGNORECASE | re.MULTILINE)
_INPUT = re.compile(r"Action\s*+\d*+\s*+Input\s*+\d*+\s*+:\s*(.*?)(?=\n[ \t]*+(?:Observation|Thought|Action)\b|\Z)",
                    re.IGNORECASE | re.DOTALL)
_FINAL_RE = re.compile(r"Final\s*+Answer\s*+:\s*(.*)", re.IGNORECASE | re.DOTALL)
_CALL_FORM = re.compile(r"^([A-Za-z0-9_-]+)\s*\((.*)\)$", re.DOTALL)


def _clean_name(name: str) -> str:
    name = name.strip().strip("`*\"'[]<> .")
    return name.split()[0] if name else ""


def _decode_input(text: str, raw: str) -> Any:
    body = re.sub(r"^```(?:json)?|```$", "", text.strip()).strip()
    if body.startswith("{"):
        try:
            return parse_json_object(body)
        except StepParseError as exc:
            if exc.detail.get("limit"):
                raise
            raise StepParseError("'Action Input:' is not a valid JSON object (check quotes, commas and braces; "
                                 "write it on one line)", raw=raw) from None
    return body


def _is_final_name(name: str) -> bool:
    return name.lower().replace(" ", "_").replace("-", "_") in (FINAL, "finish", "final")


def parse_react_text(text: str) -> ReActStep:
    """Parse a text ReAct step: ``Thought: / Action: / Action Input:`` or ``Final Answer:``.

    When both an action and a final answer appear, whichever comes first wins (a final
    answer after an action is the model imagining the observation). ``Action:
    calculator(2+2)`` without an ``Action Input`` line is accepted as the call form.

    Raises:
        StepParseError: neither an action nor a final answer was found.
    """
    raw = text or ""
    thought_m = _THOUGHT.search(raw)
    thought = " ".join(thought_m[1].split()) if thought_m else ""
    action_m = _ACTION.search(raw)
    final_m = _FINAL_RE.search(raw)
    if final_m and (not action_m or final_m.start() < action_m.start()):
        answer = final_m[1].strip()
        if not answer:
            raise StepParseError("'Final Answer:' is empty; write the answer after it", raw=raw)
        return ReActStep(thought, FINAL, answer)
    if not action_m:
        raise StepParseError("expected 'Action:' and 'Action Input:' lines, or 'Final Answer:'", raw=raw)
    action_text = action_m[1].strip().strip("`")
    input_m = _INPUT.search(raw, action_m.end())
    call = _CALL_FORM.match(action_text)
    if call and not input_m:
        return ReActStep(thought, call[1], _decode_input(call[2].strip().strip("\"'"), raw))
    name = _clean_name(action_text)
    if not name:
        raise StepParseError("'Action:' is empty; name one tool", raw=raw)
    if _is_final_name(name):
        return ReActStep(thought, FINAL, _decode_input(input_m[1], raw) if input_m else "")
    return ReActStep(thought, name, _decode_input(input_m[1], raw) if input_m else None)


def parse_react_json(text: str) -> ReActStep:
    """Parse a JSON ReAct step ``{"thought": ..., "action": ..., "action_input": ...}``.

    Raises:
        StepParseError: no JSON object, or no ``action`` string in it.
    """
    obj = parse_json_object(text)
    action = obj.get("action")
    if not isinstance(action, str) or not action.strip():
        raise StepParseError('the JSON object needs an "action" string (a tool name or "final_answer")', raw=text)
    thought = str(obj.get("thought") or "")
    value = obj.get("action_input", obj.get("input"))
    if _is_final_name(action.strip()):
        if isinstance(value, dict):
            value = value.get("answer", next(iter(value.values()), "")) if value else ""
        return ReActStep(thought, FINAL, "" if value is None else str(value))
    return ReActStep(thought, _clean_name(action), value)


# --- tool calls written as text -------------------------------------------------------------
_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)


def parse_text_tool_calls(text: str) -> list[ToolCall]:
    """Tool calls a model wrote as text instead of native calls.

    Understands Qwen/Hermes ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
    blocks and a reply that is only such a JSON object. Returns [] when there are none.
    """
    raw = text or ""
    bodies = _TOOL_CALL_TAG.findall(raw)
    if not bodies and raw.strip().startswith("{"):
        bodies = [raw.strip()]
    calls = []
    for i, body in enumerate(bodies):
        try:
            obj = parse_json_object(body)
        except StepParseError:
            continue
        name = obj.get("name")
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = loads_lenient(args)
            except (json.JSONDecodeError, JSONLimitError):
                args = {"__raw__": args}
        if isinstance(name, str) and name and isinstance(args, dict):
            calls.append(ToolCall(name, args, f"call_{i}"))
    return calls
