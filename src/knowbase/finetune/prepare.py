"""Build fine-tuning files from what knowbase learned: answers people liked, evaluation items
with reference answers, and question/answer tables.

Example::

    examples = examples_from_feedback(TraceStore(settings.logs_path))     # thumbs-up answers
    examples += examples_from_testset("samples/k8s-evals/en.yaml")       # items with a reference
    result = prepare(examples, out_dir="ft", fmt="openai", holdout=["samples/k8s-evals/zh.yaml"])
    result.train_path, result.validation_path, result.leaks, result.report.findings

Steps of :func:`prepare`: exact de-duplication (normalised text), the leak check (a training
example whose user text contains a held-out evaluation question is removed and reported, so a
later ``knowbase eval`` is not measured on training data), a seeded shuffle, the train /
validation split, writing both files in the chosen format, and validating the training file
(:mod:`knowbase.finetune.validate`).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.errors import UserError
from knowbase.finetune.formats import FORMATS, Example, FinetuneDataError, read_examples, write_examples

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.finetune.tokens import TokenCounter
    from knowbase.finetune.validate import ValidationReport
    from knowbase.tracing.store import TraceStore

__all__ = ["examples_from_feedback", "examples_from_testset", "examples_from_qa", "examples_from_file",
           "prepare", "PrepareResult"]

_QA_KEYS = (("question", "answer"), ("prompt", "completion"), ("instruction", "output"), ("input", "output"))
MAX_CSV_FIELD = 1_000_000
"""Largest CSV cell read (characters)."""


def examples_from_feedback(store: TraceStore, *, since: float | None = None) -> list[Example]:
    """One chat example per trace whose feedback is positive on balance (ups minus downs > 0):
    the last successful chat call of the trace, messages as the model saw them (system prompt,
    passages, question) and its reply as the assistant message."""
    net: Counter[str] = Counter()
    for f in store.feedback(since=since):
        net[f["trace_id"]] += 1 if f["rating"] > 0 else -1
    out = []
    for trace_id, score in net.items():
        if score <= 0:
            continue
        calls = [c for c in store.calls(trace_id=trace_id, limit=1000)
                 if c["kind"] == "chat" and not c["error"] and c["output"]]
        if not calls:
            continue
        call = max(calls, key=lambda c: c["started"])
        try:
            msgs = json.loads(call["messages"] or "[]")
        except ValueError:
            continue
        messages = [{"role": str(m.get("role")), "content": str(m.get("content") or "")}
                    for m in msgs if isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")]
        messages.append({"role": "assistant", "content": call["output"]})
        out.append(Example(tuple(messages), f"feedback:{trace_id}", {"model": call["model"]}))
    return out


def examples_from_testset(path: str | Path) -> list[Example]:
    """Examples from evaluation items that carry an answer: ``kb`` items with ``reference``,
    ``sql`` items with gold ``sql``, classification items (text -> label).

    Raises:
        EvalSetError: a malformed test set (names the line).
    """
    from knowbase.evals.datasets import load_testset

    ts = load_testset(path)
    name = Path(path).name
    out = []
    for item in ts:
        answer = item.reference if item.kind == "kb" else item.sql if item.kind == "sql" else item.label
        if answer:
            out.append(Example.chat(item.prompt, answer, source=f"{name}:{item.line}"))
    return out


def examples_from_qa(path: str | Path) -> list[Example]:
    """Examples from a question/answer table: CSV with a header, or JSONL, with columns
    ``question``/``answer`` (or ``prompt``/``completion``, ``instruction``/``output``) and an
    optional ``system``.

    Raises:
        FinetuneDataError: unreadable, no recognised columns, or an empty answer (names the line).
    """
    p = Path(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    if p.suffix.lower() == ".csv":
        try:
            with p.open(encoding="utf-8-sig", newline="") as fh:
                csv.field_size_limit(MAX_CSV_FIELD)
                reader = csv.DictReader(fh)
                for row in reader:
                    rows.append((reader.line_num, dict(row)))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise FinetuneDataError(f"{p}: cannot read CSV: {exc}", path=str(p), line=None) from exc
    else:
        from knowbase.finetune.formats import read_records

        rows = [(n, r if isinstance(r, dict) else {}) for n, r in read_records(p)]
    if not rows:
        return []
    keys = next((k for k in _QA_KEYS if k[0] in rows[0][1] and k[1] in rows[0][1]), None)
    if keys is None:
        raise FinetuneDataError(f"{p}: needs columns question and answer (or prompt/completion, "
                                f"instruction/output); found {', '.join(map(str, rows[0][1])) or 'none'}",
                                path=str(p), line=1)
    out = []
    for line, row in rows:
        q, a = str(row.get(keys[0]) or "").strip(), str(row.get(keys[1]) or "").strip()
        if not q or not a:
            raise FinetuneDataError(f"{p}:{line}: empty {keys[0] if not q else keys[1]!r}", path=str(p), line=line)
        out.append(Example.chat(q, a, system=str(row.get("system") or "") or None, source=f"{p.name}:{line}"))
    return out


def examples_from_file(path: str | Path, *, fmt: str | None = None) -> list[Example]:
    """Examples of an existing training file in any of the four formats (for conversion and merging)."""
    return read_examples(path, fmt=fmt)[1]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass
class PrepareResult:
    """What :func:`prepare` wrote and found.

    Attributes:
        train_path, validation_path: the files (validation None when the split is empty).
        train, validation: example counts.
        duplicates: sources of examples dropped as duplicates.
        leaks: ``{"source", "eval_item"}`` for examples dropped because they hold an eval question.
        sources: examples per origin (``feedback``, a file name...).
        report: validation of the training file.
    """

    train_path: Path
    validation_path: Path | None
    train: int
    validation: int
    duplicates: list[str] = field(default_factory=list)
    leaks: list[dict[str, str]] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    report: ValidationReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"train_path": str(self.train_path),
                "validation_path": str(self.validation_path) if self.validation_path else None,
                "train": self.train, "validation": self.validation, "duplicates": self.duplicates,
                "leaks": self.leaks, "sources": self.sources,
                "validation_report": self.report.to_dict() if self.report else None}


def prepare(examples: Sequence[Example], *, out_dir: str | Path, fmt: str = "openai",
            validation_fraction: float = 0.1, seed: int = 0, holdout: Sequence[str | Path] = (),
            counter: TokenCounter | None = None, token_limit: int | None = None,
            price_per_million: float | None = None) -> PrepareResult:
    """De-duplicate, drop held-out evaluation questions, split and write training files.

    Args:
        examples: the examples, in any order.
        out_dir: folder for ``train.jsonl`` and ``validation.jsonl`` (created).
        fmt: output format (:data:`~knowbase.finetune.formats.FORMATS`).
        validation_fraction: share held out for validation (0 for none); at least one example
            when the fraction is above 0 and there are two or more examples.
        seed: shuffle seed.
        holdout: evaluation test sets whose questions must not appear in training data.
        counter, token_limit, price_per_million: for the validation report.

    Raises:
        UserError: an unknown format, a fraction outside [0, 1), or no example left.
        EvalSetError: a malformed holdout test set.
    """
    from knowbase.evals.datasets import load_testset
    from knowbase.finetune.tokens import token_counter
    from knowbase.finetune.validate import DEFAULT_TOKEN_LIMIT, validate_file

    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", field="format")
    if not 0 <= validation_fraction < 1:
        raise UserError("validation fraction must be in [0, 1)", field="validation_fraction")
    questions: list[tuple[str, str]] = []
    for path in holdout:
        ts = load_testset(path)
        questions += [(_norm(i.prompt), f"{Path(path).name}:{i.id}") for i in ts if len(_norm(i.prompt)) >= 8]
    kept: list[Example] = []
    seen: set[str] = set()
    result = PrepareResult(Path(out_dir) / "train.jsonl", None, 0, 0)
    for ex in examples:
        key = ex.key()
        if key in seen:
            result.duplicates.append(ex.source)
            continue
        seen.add(key)
        user = _norm(ex.text_of("user"))
        leak = next((name for q, name in questions if q in user), None)
        if leak is not None:
            result.leaks.append({"source": ex.source, "eval_item": leak})
            continue
        kept.append(ex)
    if not kept:
        raise UserError("no training example left after de-duplication and the leak check")
    for ex in kept:
        origin = ex.source.split(":", 1)[0]
        result.sources[origin] = result.sources.get(origin, 0) + 1
    rng = random.Random(seed)
    order = list(kept)
    rng.shuffle(order)
    n_val = round(len(order) * validation_fraction)
    if validation_fraction > 0 and len(order) >= 2:
        n_val = max(1, n_val)
    val, train = order[:n_val], order[n_val:]
    result.train = write_examples(train, result.train_path, fmt)
    if val:
        result.validation_path = Path(out_dir) / "validation.jsonl"
        result.validation = write_examples(val, result.validation_path, fmt)
    result.report = validate_file(result.train_path, fmt=fmt, counter=counter or token_counter(None),
                                  token_limit=token_limit or DEFAULT_TOKEN_LIMIT, price_per_million=price_per_million)
    return result
