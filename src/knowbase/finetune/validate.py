"""Check a training file before it is uploaded, each finding with its line number.

Chat format (``openai``): the checks of OpenAI's cookbook "Data preparation and analysis for
chat model fine-tuning", under its names -- ``data_type`` (a line is not an object),
``missing_messages_list``, ``message_missing_key``, ``message_unrecognized_key``,
``unrecognized_role``, ``missing_content``, ``example_missing_assistant_message`` -- plus
``empty_content``, ``over_token_limit`` (examples longer than the model's training context are
truncated: 16,385 tokens by default, as the cookbook) and ``too_few_examples`` (OpenAI needs at
least 10 examples).

Legacy ``completion`` format: the warnings of OpenAI's legacy ``fine_tunes.prepare_data`` tool
-- ``missing_key`` (prompt or completion), ``unknown_key`` (extra columns), ``duplicate``,
``missing_separator`` (prompts should all end with one separator, such as ``\\n\\n###\\n\\n``),
``missing_ending`` (completions should all end with one stop sequence), ``no_leading_space``
(completions should start with a space) -- plus ``empty_content``, ``over_token_limit`` and
``too_few_examples``. ``alpaca`` and ``sharegpt`` files get their shape checks and then the chat
checks.

Every format also gets ``duplicate`` (the same example twice; the legacy tool's warning).
Errors make a file unusable; warnings are advice.

The epoch and billing estimate follows the cookbook: 3 epochs, raised so that epochs x
examples reaches 100 (at most 25 epochs) or lowered so it stays under 25,000 (at least 1);
billed tokens = epochs x the sum of each example's tokens capped at the limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowbase.finetune.formats import FORMATS, SEPARATOR, STOP, Example, detect_format, read_records, to_example
from knowbase.finetune.tokens import TokenCounter, token_counter

__all__ = ["Finding", "ValidationReport", "validate_file", "validate_records", "estimate_epochs",
           "MIN_EXAMPLES", "DEFAULT_TOKEN_LIMIT"]

MIN_EXAMPLES = 10
DEFAULT_TOKEN_LIMIT = 16_385
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
ROLES = {"system", "user", "assistant", "function", "tool"}
MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id", "refusal"}
EXAMPLE_KEYS = {"messages", "tools", "functions", "parallel_tool_calls", "metadata"}
_ENDINGS = ("\n", ".", STOP, "###", "END", "<|endoftext|>")
_MAX_LINES_LISTED = 20


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``code`` (the check's name), ``line`` (1-based, None for the whole file),
    ``severity`` (``error`` or ``warning``) and a message."""

    code: str
    line: int | None
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.severity}: {self.code}: {self.message}"


@dataclass
class ValidationReport:
    """What :func:`validate_file` found, with token statistics and the training estimate."""

    format: str
    examples: int
    findings: list[Finding] = field(default_factory=list)
    tokenizer: str = ""
    tokenizer_exact: bool = False
    token_limit: int = DEFAULT_TOKEN_LIMIT
    tokens: list[int] = field(default_factory=list)
    epochs: int = 0
    billed_tokens: int = 0
    cost_usd: float | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def counts(self) -> dict[str, int]:
        """Findings per code."""
        return dict(Counter(f.code for f in self.findings))

    def to_dict(self) -> dict[str, Any]:
        t = self.tokens
        return {"format": self.format, "examples": self.examples, "ok": self.ok,
                "findings": [{"code": f.code, "line": f.line, "severity": f.severity, "message": f.message}
                             for f in self.findings],
                "tokenizer": self.tokenizer, "tokenizer_exact": self.tokenizer_exact, "token_limit": self.token_limit,
                "tokens": {"total": sum(t), "min": min(t) if t else 0, "max": max(t) if t else 0,
                           "mean": sum(t) / len(t) if t else 0.0},
                "epochs": self.epochs, "billed_tokens": self.billed_tokens, "cost_usd": self.cost_usd}


def estimate_epochs(n_examples: int) -> int:
    """Default epochs for ``n_examples`` (OpenAI cookbook constants: target 3, 100..25,000 examples seen)."""
    if n_examples <= 0:
        return 0
    epochs = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs


def _chat_checks(line: int, record: dict[str, Any], out: list[Finding]) -> None:
    msgs = record.get("messages")
    if not isinstance(msgs, list) or not msgs:
        out.append(Finding("missing_messages_list", line, "error", "no 'messages' list"))
        return
    for key in record:
        if key not in EXAMPLE_KEYS:
            out.append(Finding("unknown_key", line, "warning", f"unknown key {key!r} in the example"))
    for i, m in enumerate(msgs, start=1):
        if not isinstance(m, dict):
            out.append(Finding("data_type", line, "error", f"message {i} is not an object"))
            continue
        for key in ("role", "content"):
            if key not in m and not (key == "content" and ("function_call" in m or "tool_calls" in m)):
                out.append(Finding("message_missing_key", line, "error", f"message {i} has no {key!r}"))
        for key in m:
            if key not in MESSAGE_KEYS:
                out.append(Finding("message_unrecognized_key", line, "error", f"message {i} has unknown key {key!r}"))
        if "role" in m and m["role"] not in ROLES:
            out.append(Finding("unrecognized_role", line, "error", f"message {i} has role {m['role']!r}"))
        content = m.get("content")
        if "content" in m and content is not None and not isinstance(content, str):
            out.append(Finding("missing_content", line, "error", f"message {i} content is not text"))
        elif isinstance(content, str) and not content.strip() and not m.get("tool_calls"):
            out.append(Finding("empty_content", line, "error", f"message {i} ({m.get('role')}) is empty"))
        elif content is None and "content" in m and not (m.get("function_call") or m.get("tool_calls")):
            out.append(Finding("missing_content", line, "error", f"message {i} content is null"))
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs):
        out.append(Finding("example_missing_assistant_message", line, "error", "no assistant message"))


def _shape_checks(line: int, record: dict[str, Any], fmt: str, out: list[Finding]) -> None:
    if fmt == "completion":
        for key in ("prompt", "completion"):
            if key not in record:
                out.append(Finding("missing_key", line, "error", f"no {key!r}"))
            elif not isinstance(record[key], str):
                out.append(Finding("data_type", line, "error", f"{key!r} is not text"))
            elif not record[key].strip():
                out.append(Finding("empty_content", line, "error", f"{key!r} is empty"))
        for key in record:
            if key not in ("prompt", "completion"):
                out.append(Finding("unknown_key", line, "warning", f"unknown key {key!r} (it is ignored)"))
    elif fmt == "alpaca":
        for key in ("instruction", "output"):
            if not isinstance(record.get(key), str):
                out.append(Finding("missing_key", line, "error", f"no {key!r} text"))
            elif not record[key].strip():
                out.append(Finding("empty_content", line, "error", f"{key!r} is empty"))
        for key in record:
            if key not in ("instruction", "input", "output", "system", "history"):
                out.append(Finding("unknown_key", line, "warning", f"unknown key {key!r}"))
    elif fmt == "sharegpt":
        turns = record.get("conversations")
        if not isinstance(turns, list) or not turns:
            out.append(Finding("missing_messages_list", line, "error", "no 'conversations' list"))
            return
        for i, t in enumerate(turns, start=1):
            if not isinstance(t, dict) or "from" not in t or "value" not in t:
                out.append(Finding("message_missing_key", line, "error", f"turn {i} needs 'from' and 'value'"))
            elif t["from"] not in ("system", "human", "gpt", "user", "assistant"):
                out.append(Finding("unrecognized_role", line, "error", f"turn {i} is from {t['from']!r}"))
            elif not isinstance(t["value"], str) or not t["value"].strip():
                out.append(Finding("empty_content", line, "error", f"turn {i} is empty"))
        if not any(isinstance(t, dict) and t.get("from") in ("gpt", "assistant") for t in turns):
            out.append(Finding("example_missing_assistant_message", line, "error", "no 'gpt' turn"))


def _common(values: Sequence[str], candidates: Sequence[str], *, suffix: bool) -> str | None:
    """The candidate most values end (or start) with, if at least half of them do."""
    best = None
    best_n = 0
    for c in candidates:
        n = sum(1 for v in values if (v.endswith(c) if suffix else v.startswith(c)))
        if n > best_n:
            best, best_n = c, n
    return best if best_n * 2 >= len(values) and best_n > 0 else None


def _legacy_warnings(rows: Sequence[tuple[int, dict[str, Any]]], out: list[Finding]) -> None:
    ok = [(n, r) for n, r in rows if isinstance(r.get("prompt"), str) and isinstance(r.get("completion"), str)]
    if not ok:
        return
    prompts = [r["prompt"] for _, r in ok]
    sep = _common(prompts, (SEPARATOR, "\n\n", "\n", "->", "###", ":"), suffix=True)
    if sep is None:
        out.append(Finding("missing_separator", None, "warning",
                           f"prompts do not end with a common separator; add one such as {SEPARATOR!r} so the "
                           "model knows where the prompt ends"))
    else:
        for n, r in ok:
            if not r["prompt"].endswith(sep):
                out.append(Finding("missing_separator", n, "warning", f"prompt does not end with {sep!r}"))
    completions = [r["completion"] for _, r in ok]
    end = _common(completions, _ENDINGS, suffix=True)
    if end is None:
        out.append(Finding("missing_ending", None, "warning",
                           f"completions do not end with a common stop sequence; add one such as {STOP!r}"))
    else:
        for n, r in ok:
            if not r["completion"].endswith(end):
                out.append(Finding("missing_ending", n, "warning", f"completion does not end with {end!r}"))
    for n, r in ok:
        if r["completion"] and not r["completion"][0].isspace():
            out.append(Finding("no_leading_space", n, "warning", "completion should start with a space"))


def validate_records(records: Sequence[tuple[int, Any]], fmt: str, *, counter: TokenCounter,
                     token_limit: int = DEFAULT_TOKEN_LIMIT,
                     price_per_million: float | None = None) -> ValidationReport:
    """Run every check on parsed ``(line, record)`` pairs of format ``fmt`` (see the module doc)."""
    report = ValidationReport(format=fmt, examples=len(records), tokenizer=counter.name,
                              tokenizer_exact=counter.exact, token_limit=token_limit)
    out = report.findings
    seen: dict[str, int] = {}
    legacy_rows: list[tuple[int, dict[str, Any]]] = []
    for line, record in records:
        if not isinstance(record, dict):
            out.append(Finding("data_type", line, "error", f"expected a JSON object, got {type(record).__name__}"))
            continue
        if fmt == "openai":
            _chat_checks(line, record, out)
        else:
            _shape_checks(line, record, fmt, out)
            if fmt == "completion":
                legacy_rows.append((line, record))
        try:
            ex: Example | None = to_example(record, fmt)
        except ValueError:
            ex = None
        if ex is None:
            continue
        if fmt in ("alpaca", "sharegpt") and not ex.text_of("assistant").strip() and not any(
                f.line == line for f in out):
            out.append(Finding("example_missing_assistant_message", line, "error", "no answer"))
        key = ex.key()
        if key in seen:
            out.append(Finding("duplicate", line, "warning", f"same example as line {seen[key]}"))
        else:
            seen[key] = line
        n_tokens = (counter.count_messages(ex.messages) if fmt != "completion"
                    else counter.count(str(record.get("prompt", ""))) + counter.count(str(record.get("completion", ""))))
        report.tokens.append(n_tokens)
        if n_tokens > token_limit:
            out.append(Finding("over_token_limit", line, "error" if fmt == "openai" else "warning",
                               f"{n_tokens} tokens, over the {token_limit}-token limit (it would be truncated)"))
    if fmt == "completion":
        _legacy_warnings(legacy_rows, out)
    if len(records) < MIN_EXAMPLES:
        out.append(Finding("too_few_examples", None, "error",
                           f"{len(records)} examples; at least {MIN_EXAMPLES} are required"))
    report.findings.sort(key=lambda f: (f.line or 0, f.code))
    report.epochs = estimate_epochs(len(records))
    report.billed_tokens = report.epochs * sum(min(token_limit, t) for t in report.tokens)
    if price_per_million is not None:
        report.cost_usd = report.billed_tokens * price_per_million / 1_000_000
    return report


def validate_file(path: str | Path, *, fmt: str | None = None, model: str | None = None,
                  token_limit: int = DEFAULT_TOKEN_LIMIT, price_per_million: float | None = None,
                  counter: TokenCounter | None = None) -> ValidationReport:
    """Validate a training file (format detected from its records unless given).

    Args:
        path: a JSONL file (or a JSON array).
        fmt: one of :data:`knowbase.finetune.formats.FORMATS`, or None to detect.
        model: the target model, for its tokenizer (see :func:`token_counter`).
        token_limit: tokens per example before truncation.
        price_per_million: training price in dollars per million tokens, for the cost estimate.
        counter: a token counter (overrides ``model``).

    Raises:
        FinetuneDataError: the file cannot be read or a line is not JSON (names the line).
        UserError: an unknown format.
    """
    from knowbase.errors import UserError
    from knowbase.finetune.formats import FinetuneDataError

    records = read_records(path)
    if fmt is None:
        fmt = next((f for _, r in records if (f := detect_format(r))), None)
        if fmt is None:
            raise FinetuneDataError(f"{path}: cannot tell the format (expected keys of {', '.join(FORMATS)})",
                                    path=str(path), line=None)
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", field="format")
    return validate_records(records, fmt, counter=counter or token_counter(model), token_limit=token_limit,
                            price_per_million=price_per_million)


def brief(findings: Sequence[Finding]) -> list[str]:
    """Findings as lines for people, long runs of one code summarised after :data:`_MAX_LINES_LISTED`."""
    lines: list[str] = []
    per_code: Counter[str] = Counter()
    for f in findings:
        per_code[f.code] += 1
        if per_code[f.code] <= _MAX_LINES_LISTED:
            lines.append(str(f))
    for code, n in per_code.items():
        if n > _MAX_LINES_LISTED:
            lines.append(f"... {n - _MAX_LINES_LISTED} more {code}")
    return lines
