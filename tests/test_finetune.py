"""Fine-tuning data: formats and conversion, validation findings with line numbers (each check
on a deliberately broken file), token counts, and ``prepare`` from feedback, eval items and Q/A
tables with de-duplication, split and the leak check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli
from knowbase.config import Settings
from knowbase.errors import UserError
from knowbase.finetune.formats import (
    SEPARATOR,
    Example,
    FinetuneDataError,
    from_example,
    read_examples,
    to_example,
    write_examples,
)
from knowbase.finetune.prepare import examples_from_feedback, examples_from_qa, examples_from_testset, prepare
from knowbase.finetune.tokens import TokenCounter, token_counter
from knowbase.finetune.validate import estimate_epochs, validate_file
from knowbase.knowledge.base import KnowledgeBase
from knowbase.models.fake import fake_count_tokens
from knowbase.tracing.store import TraceStore

WORDS = TokenCounter("words", fake_count_tokens, exact=False)


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _good(i: int) -> dict:
    return {"messages": [{"role": "system", "content": "Answer from the docs."},
                         {"role": "user", "content": f"Question {i}?"},
                         {"role": "assistant", "content": f"Answer {i}."}]}


def test_broken_chat_file_each_check_fires_once_with_its_line(tmp_path: Path) -> None:
    rows = [
        _good(1),
        [1, 2],
        {"prompt": "x"},
        {"messages": [{"content": "no role"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q", "weight2": 1}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q only"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]},
        {"messages": [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "a"}]},
        _good(1),
    ]
    report = validate_file(_jsonl(tmp_path / "broken.jsonl", rows), counter=WORDS, token_limit=50)
    assert [(f.line, f.code) for f in report.findings] == [
        (2, "data_type"), (3, "missing_messages_list"), (4, "message_missing_key"),
        (5, "message_unrecognized_key"), (6, "unrecognized_role"), (7, "missing_content"),
        (8, "example_missing_assistant_message"), (9, "empty_content"), (10, "over_token_limit"),
        (11, "duplicate")]
    assert not report.ok and len(report.errors) == 9
    assert report.format == "openai" and report.epochs == estimate_epochs(11) == 9


def test_broken_legacy_file_warnings_with_lines(tmp_path: Path) -> None:
    rows = [{"prompt": f"Question {i}?{SEPARATOR}", "completion": f" Answer {i}. END"} for i in range(8)]
    rows[2] = {"prompt": "Question 2?", "completion": " Answer 2. END"}
    rows[3] = {"prompt": f"Question 3?{SEPARATOR}", "completion": " Answer 3."}
    rows[4] = {"prompt": f"Question 4?{SEPARATOR}", "completion": "Answer 4. END"}
    rows[5] = {"prompt": f"Question 5?{SEPARATOR}", "completion": " Answer 5. END", "label": "x"}
    rows[6] = {"prompt": f"Question 6?{SEPARATOR}"}
    rows.append(rows[0])
    report = validate_file(_jsonl(tmp_path / "legacy.jsonl", rows), counter=WORDS)
    assert [(f.line, f.code, f.severity) for f in report.findings] == [
        (None, "too_few_examples", "error"), (3, "missing_separator", "warning"), (4, "missing_ending", "warning"),
        (5, "no_leading_space", "warning"), (6, "unknown_key", "warning"), (7, "missing_key", "error"),
        (9, "duplicate", "warning")]


def test_legacy_file_without_common_separator(tmp_path: Path) -> None:
    rows = [{"prompt": f"Q{i} {'abc'[i % 3]}", "completion": f" A{i}{'xyz'[i % 3]}"} for i in range(12)]
    report = validate_file(_jsonl(tmp_path / "x.jsonl", rows), counter=WORDS)
    assert {(f.line, f.code) for f in report.findings} == {(None, "missing_separator"), (None, "missing_ending")}
    assert report.ok


def test_sharegpt_and_alpaca_shape_checks(tmp_path: Path) -> None:
    sg = [{"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
          for i in range(10)]
    sg.append({"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]})
    sg.append({"conversations": [{"from": "human", "value": "only a question"}]})
    report = validate_file(_jsonl(tmp_path / "sg.jsonl", sg), counter=WORDS)
    assert [(f.line, f.code) for f in report.findings] == [
        (11, "example_missing_assistant_message"), (11, "unrecognized_role"),  # a 'bot' turn is no answer
        (12, "example_missing_assistant_message")]
    al = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(10)] + [{"instruction": "q"}]
    report = validate_file(_jsonl(tmp_path / "al.json", al), counter=WORDS)
    assert [(f.line, f.code) for f in report.findings] == [(11, "missing_key")]


def test_round_trip_between_all_formats() -> None:
    ex = Example.chat("What is a Pod?", "The smallest deployable unit.", system="Be brief.")
    for fmt in ("openai", "sharegpt", "alpaca", "completion"):
        back = to_example(from_example(ex, fmt), fmt)
        assert back.text_of("user").endswith("What is a Pod?") and back.text_of("assistant") == ex.text_of("assistant")
        if fmt != "completion":
            assert back.messages == ex.messages
    legacy = from_example(ex, "completion")
    assert legacy["prompt"].endswith(SEPARATOR) and legacy["completion"] == " The smallest deployable unit. END"


def test_read_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"messages": []}\n{"messages": [\n', encoding="utf-8")
    with pytest.raises(FinetuneDataError) as err:
        read_examples(p)
    assert err.value.line == 2 and f"{p}:2" in str(err.value)
    unknown = _jsonl(tmp_path / "u.jsonl", [{"x": 1}])
    with pytest.raises(FinetuneDataError, match="cannot tell the format"):
        read_examples(unknown)


def test_token_counters() -> None:
    exact = token_counter("openai:gpt-4o-mini@https://api.openai.com/v1")
    assert exact.exact and exact.name.startswith("o200k_base") and exact.count("Hello world") == 2
    assert token_counter("gpt-3.5-turbo").name.startswith("cl100k_base")
    approx = token_counter("openai:qwen2.5:1.5b@http://localhost:11434/v1")
    assert not approx.exact and "approximation" in approx.name
    fake = token_counter("fake")
    assert fake.exact and fake.count("a b, c") == 4
    # 3 tokens per message + 3 priming: 2 messages of 1 word each
    assert fake.count_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]) == 11


def test_epoch_estimate_matches_the_cookbook() -> None:
    assert [estimate_epochs(n) for n in (0, 5, 10, 34, 100, 9000, 100_000)] == [0, 20, 10, 3, 3, 2, 1]


def test_prepare_from_feedback_eval_items_and_qa(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pods.md").write_text("# Pods\n\nA Pod is the smallest deployable unit of computing in Kubernetes.\n",
                                  encoding="utf-8")
    settings = Settings.load()
    kb = KnowledgeBase.create("docs", embedder="fake", settings=settings)
    kb.ingest([str(docs)])
    liked = kb.ask("What is the smallest deployable unit of computing?", model="fake:A Pod [1].")
    disliked = kb.ask("Which unit of computing can be deployed?", model="fake:A cluster [1].")
    kb.close()
    store = TraceStore(settings.logs_path)
    store.add_feedback(liked.trace_id, "up")
    store.add_feedback(disliked.trace_id, "up")
    store.add_feedback(disliked.trace_id, "down")
    store.add_feedback(disliked.trace_id, "down")
    fb = examples_from_feedback(store)
    assert len(fb) == 1 and fb[0].source == f"feedback:{liked.trace_id}"
    assert fb[0].messages[-1] == {"role": "assistant", "content": "A Pod [1]."}
    assert "smallest deployable unit of computing" in fb[0].text_of("user")  # the passages and the question

    tset = tmp_path / "set.yaml"
    tset.write_text("- {question: 'What is a Pod?', reference: The smallest deployable unit.}\n"
                    "- {question: 'Capital of France?', unanswerable: true}\n"
                    "- {question: 'How many rows?', sql: SELECT COUNT(*) FROM t}\n"
                    "- {text: great, label: positive}\n", encoding="utf-8")
    ev = examples_from_testset(tset)
    assert [e.text_of("assistant") for e in ev] == ["The smallest deployable unit.", "SELECT COUNT(*) FROM t",
                                                    "positive"]
    qa = tmp_path / "faq.csv"
    rows = "\n".join(f'"How do I do task {i}?","Run step {i}."' for i in range(12))
    qa.write_text("question,answer\n" + rows + '\n"How do I do task 0?","Run step 0."\n', encoding="utf-8")
    table = examples_from_qa(qa)
    assert len(table) == 13 and table[-1].source == "faq.csv:14"

    holdout = tmp_path / "holdout.yaml"
    holdout.write_text("- {id: leak, question: 'How do I do task 3?', reference: x}\n", encoding="utf-8")
    result = prepare(fb + ev + table, out_dir=tmp_path / "ft", fmt="openai", validation_fraction=0.2,
                     holdout=[holdout], counter=WORDS, seed=1)
    assert result.duplicates == ["faq.csv:14"]
    assert result.leaks == [{"source": "faq.csv:5", "eval_item": "holdout.yaml:leak"}]
    assert result.train + result.validation == 1 + 3 + 12 - 1 and result.validation == 3
    assert result.sources == {"feedback": 1, "set.yaml": 3, "faq.csv": 11}
    train = [json.loads(x) for x in result.train_path.read_text(encoding="utf-8").splitlines()]
    assert len(train) == result.train and all("messages" in t for t in train)
    assert result.report is not None and result.report.ok and result.report.examples == result.train
    with pytest.raises(UserError, match="no training example left"):
        prepare([table[3]], out_dir=tmp_path / "none", holdout=[holdout], counter=WORDS)


def test_qa_table_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("q,a\nx,y\n", encoding="utf-8")
    with pytest.raises(FinetuneDataError, match="needs columns question and answer"):
        examples_from_qa(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("question,answer\nfine?,yes\nnothing?,\n", encoding="utf-8")
    with pytest.raises(FinetuneDataError) as err:
        examples_from_qa(empty)
    assert err.value.line == 3 and "empty 'answer'" in str(err.value)


def test_finetune_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    src = _jsonl(tmp_path / "chat.jsonl", [_good(i) for i in range(12)] + [{"messages": [
        {"role": "user", "content": "no answer"}]}])
    res = runner.invoke(cli, ["finetune", "validate", str(src)], catch_exceptions=False)
    assert res.exit_code == 1 and "line 13: error: example_missing_assistant_message" in res.stdout
    res = runner.invoke(cli, ["finetune", "convert", str(src), str(tmp_path / "a.jsonl"), "--to", "alpaca"],
                        catch_exceptions=False)
    assert res.exit_code == 0 and "12 examples converted from openai to alpaca" in res.stdout
    assert "chat.jsonl:13" in res.stderr
    res = runner.invoke(cli, ["finetune", "prepare", "--input", str(tmp_path / "a.jsonl"), "--format", "sharegpt",
                              "--out", str(tmp_path / "ft"), "--json"], catch_exceptions=False)
    data = json.loads(res.stdout)
    assert res.exit_code == 0 and data["train"] == 11 and data["validation"] == 1
    assert data["validation_report"]["findings"] == [] and data["validation_report"]["format"] == "sharegpt"
    res = runner.invoke(cli, ["finetune", "prepare", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "at least one source" in res.output


def test_write_examples_is_jsonl(tmp_path: Path) -> None:
    n = write_examples([Example.chat("你好？", "你好。")], tmp_path / "o.jsonl", "openai")
    assert n == 1 and "你好" in (tmp_path / "o.jsonl").read_text(encoding="utf-8")
