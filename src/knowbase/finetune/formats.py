"""Fine-tuning data formats and conversion between them.

One canonical form, :class:`Example` (a list of ``{"role", "content"}`` messages), read from
and written to four file formats:

==============  ==========================================================================
``openai``      chat JSONL, one ``{"messages": [{"role": ..., "content": ...}, ...]}`` per line
                (OpenAI's fine-tuning format for chat models)
``completion``  the legacy ``{"prompt": ..., "completion": ...}`` JSONL; written with a
                separator at the end of the prompt, a leading space and a stop sequence at the
                end of the completion, as OpenAI's legacy data-preparation tool advised
``alpaca``      ``{"instruction", "input", "output"}`` (optional ``system``), JSONL or a JSON array
                (Taori et al. 2023, Stanford Alpaca)
``sharegpt``    ``{"conversations": [{"from": "system"|"human"|"gpt", "value": ...}]}``
==============  ==========================================================================

Reading is strict about shape (a record that is not the format raises
:class:`FinetuneDataError` naming the line); the content checks that mirror OpenAI's
validation live in :mod:`knowbase.finetune.validate`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowbase.errors import InputFileError

__all__ = ["FORMATS", "Example", "FinetuneDataError", "detect_format", "read_records", "to_example",
           "from_example", "read_examples", "write_examples", "SEPARATOR", "STOP"]

FORMATS = ("openai", "completion", "alpaca", "sharegpt")
SEPARATOR = "\n\n###\n\n"
"""End of every prompt in the legacy format (the legacy tool's suggested separator)."""
STOP = " END"
"""End of every completion in the legacy format (a stop sequence the model learns to emit)."""
MAX_FILE_BYTES = 512 * 1024 * 1024
"""Largest training file read (bytes; OpenAI accepts files up to 512 MB)."""
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class FinetuneDataError(InputFileError):
    """A training file cannot be read as its format (``path``, ``line``)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One training example: ``messages`` as ``({"role": ..., "content": ...}, ...)``, plus where
    it came from (``source``, e.g. ``feedback:<trace id>`` or ``file.jsonl:12``)."""

    messages: tuple[dict[str, str], ...]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def chat(cls, user: str, assistant: str, *, system: str | None = None, source: str = "") -> Example:
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return cls(tuple(msgs), source)

    def key(self) -> str:
        """A normalised form for de-duplication (roles and whitespace-collapsed, lower-cased content)."""
        return json.dumps([(m["role"], " ".join(m["content"].split()).lower()) for m in self.messages],
                          ensure_ascii=False)

    def text_of(self, role: str) -> str:
        return "\n".join(m["content"] for m in self.messages if m["role"] == role)


def detect_format(record: Any) -> str | None:
    """The format of one parsed record, from its keys; None when none fits."""
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    if "prompt" in record or "completion" in record:
        return "completion"
    return None


def read_records(path: str | Path) -> list[tuple[int, Any]]:
    """``(line, record)`` pairs of a JSONL file (or of a JSON array file, numbered by position).

    Raises:
        FinetuneDataError: unreadable, too large, or a line that is not JSON (names the line).
    """
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise FinetuneDataError(f"{p}: over {MAX_FILE_BYTES} bytes", path=str(p), line=None)
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FinetuneDataError(f"{p}: cannot read: {exc}", path=str(p), line=None) from exc
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise FinetuneDataError(f"{p}: not a valid JSON array: {exc}", path=str(p), line=None) from exc
        return [(i, r) for i, r in enumerate(data, start=1)]
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            raise FinetuneDataError(f"{p}:{n}: not valid JSON: {exc}", path=str(p), line=n) from exc
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def to_example(record: Any, fmt: str, *, source: str = "") -> Example:
    """Convert one record of ``fmt`` to an :class:`Example` (content that is not text becomes "").

    Raises:
        ValueError: the record is not an object of that format (the caller adds the line).
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if fmt == "openai":
        msgs = record.get("messages")
        if not isinstance(msgs, list):
            raise ValueError("'messages' must be a list")
        return Example(tuple({"role": str(m.get("role", "")), "content": _text(m.get("content"))}
                             for m in msgs if isinstance(m, dict)), source)
    if fmt == "completion":
        prompt, completion = _text(record.get("prompt")), _text(record.get("completion"))
        if prompt.endswith(SEPARATOR):
            prompt = prompt[: -len(SEPARATOR)]
        completion = completion[1:] if completion.startswith(" ") else completion
        if completion.endswith(STOP):
            completion = completion[: -len(STOP)]
        return Example.chat(prompt, completion, source=source)
    if fmt == "alpaca":
        user = _text(record.get("instruction"))
        if _text(record.get("input")):
            user += "\n\n" + _text(record.get("input"))
        return Example.chat(user, _text(record.get("output")), system=_text(record.get("system")) or None,
                            source=source)
    if fmt == "sharegpt":
        turns = record.get("conversations")
        if not isinstance(turns, list):
            raise ValueError("'conversations' must be a list")
        return Example(tuple({"role": _SHAREGPT_ROLES.get(str(t.get("from", "")), str(t.get("from", ""))),
                              "content": _text(t.get("value"))} for t in turns if isinstance(t, dict)), source)
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def from_example(ex: Example, fmt: str) -> dict[str, Any]:
    """One record of ``fmt`` for an example. Multi-turn examples written as ``completion`` or
    ``alpaca`` keep the last assistant message as the answer and the turns before it in the prompt.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "openai":
        return {"messages": [dict(m) for m in ex.messages]}
    if fmt == "sharegpt":
        back = {"system": "system", "user": "human", "assistant": "gpt"}
        return {"conversations": [{"from": back.get(m["role"], m["role"]), "value": m["content"]}
                                  for m in ex.messages]}
    last = max((i for i, m in enumerate(ex.messages) if m["role"] == "assistant"), default=len(ex.messages))
    answer = ex.messages[last]["content"] if last < len(ex.messages) else ""
    before = ex.messages[:last]
    system = "\n".join(m["content"] for m in before if m["role"] == "system")
    turns = [m for m in before if m["role"] != "system"]
    if fmt == "completion":
        prompt = "\n\n".join(([system] if system else []) + [
            m["content"] if m["role"] == "user" and len(turns) == 1 else f"{m['role']}: {m['content']}"
            for m in turns])
        return {"prompt": prompt + SEPARATOR, "completion": " " + answer + STOP}
    if fmt == "alpaca":
        instruction = "\n\n".join(m["content"] if m["role"] == "user" and len(turns) == 1
                                  else f"{m['role']}: {m['content']}" for m in turns)
        out: dict[str, Any] = {"instruction": instruction, "input": "", "output": answer}
        if system:
            out["system"] = system
        return out
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def read_examples(path: str | Path, *, fmt: str | None = None) -> tuple[str, list[Example]]:
    """Read every example of a training file; the format is detected from the first record
    unless given. Returns ``(format, examples)``; each example's ``source`` is ``file:line``.

    Raises:
        FinetuneDataError: unreadable, no detectable format, or a record of the wrong shape.
    """
    p = Path(path)
    records = read_records(p)
    if fmt is None:
        fmt = next((f for _, r in records if (f := detect_format(r))), None)
        if fmt is None:
            raise FinetuneDataError(f"{p}: cannot tell the format (expected keys of {', '.join(FORMATS)})",
                                    path=str(p), line=None)
    out = []
    for line, record in records:
        try:
            out.append(to_example(record, fmt, source=f"{p.name}:{line}"))
        except ValueError as exc:
            raise FinetuneDataError(f"{p}:{line}: {exc}", path=str(p), line=line) from exc
    return fmt, out


def write_examples(examples: Iterable[Example], path: str | Path, fmt: str) -> int:
    """Write examples as JSONL of ``fmt`` (UTF-8, one record per line); returns the count."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(from_example(ex, fmt), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(p)
    return n


def iter_lines(examples: Sequence[Example], fmt: str) -> Iterator[str]:
    """The JSONL lines :func:`write_examples` writes."""
    for ex in examples:
        yield json.dumps(from_example(ex, fmt), ensure_ascii=False)
