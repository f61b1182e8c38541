"""Fine-tuning data checks on deliberately broken files: each check fires once, with its line.

Writes two files to a temporary folder -- a chat (``openai``) file and a legacy
``prompt``/``completion`` file, each line broken in one way -- runs
:func:`knowbase.finetune.validate.validate_file` on them with the gpt-4o-mini tokenizer and
prints one table row per finding (line, code, severity, message), plus the token, epoch and
cost estimate.

Usage::

    .venv/bin/python benches/finetune_checks.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _common import print_table


def chat_rows() -> list:
    def good(i: int) -> dict:
        return {"messages": [{"role": "system", "content": "Answer from the docs."},
                             {"role": "user", "content": f"Question {i}?"},
                             {"role": "assistant", "content": f"Answer {i}."}]}
    return [
        good(1),
        [1, 2],                                                                           # data_type
        {"prompt": "x"},                                                                  # missing_messages_list
        {"messages": [{"content": "no role"}, {"role": "assistant", "content": "a"}]},    # message_missing_key
        {"messages": [{"role": "user", "content": "q", "weight2": 1}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q only"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]},
        {"messages": [{"role": "user", "content": "word " * 20000}, {"role": "assistant", "content": "a"}]},
        good(1),                                                                          # duplicate
    ]


def legacy_rows() -> list:
    sep = "\n\n###\n\n"
    rows: list = [{"prompt": f"Question {i}?{sep}", "completion": f" Answer {i}. END"} for i in range(8)]
    rows[2] = {"prompt": "Question 2?", "completion": " Answer 2. END"}                   # missing_separator
    rows[3] = {"prompt": f"Question 3?{sep}", "completion": " Answer 3."}                 # missing_ending
    rows[4] = {"prompt": f"Question 4?{sep}", "completion": "Answer 4. END"}              # no_leading_space
    rows[5] = {"prompt": f"Question 5?{sep}", "completion": " Answer 5. END", "label": 1}  # unknown_key
    rows[6] = {"prompt": f"Question 6?{sep}"}                                             # missing_key
    rows.append(rows[0])                                                                  # duplicate
    return rows                                                                           # 9 < 10: too_few_examples


def main() -> int:
    from knowbase.finetune.validate import validate_file

    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("broken-chat.jsonl", chat_rows()), ("broken-legacy.jsonl", legacy_rows())):
            path = Path(tmp) / name
            path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
            report = validate_file(path, model="openai:gpt-4o-mini", price_per_million=3.0)
            d = report.to_dict()
            print_table(f"{name} ({report.format}, {report.examples} lines)", ["line", "code", "severity", "message"],
                        [[f.line or "file", f.code, f.severity, f.message[:70]] for f in report.findings],
                        notes=[f"tokens by {report.tokenizer}: total {d['tokens']['total']}, max {d['tokens']['max']}; "
                               f"{report.epochs} default epochs, {report.billed_tokens} billed tokens, "
                               f"${report.cost_usd:.2f} at $3 per million"])
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
