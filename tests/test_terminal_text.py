"""Model, document and tool text printed by the CLI: never markup, never terminal control."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.safety.text import plain, terminal_safe

OSC52 = "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07"
HOSTILE_TEXT = f"[/x] [red]red[/red] {OSC52} \x1b[2J\x9b31m bell\x07 back\x08\x08 cr\rover \u202eevil\u202c [bold"


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b]52;c;ZXZpbA==\x07", "\\u001b]52;c;ZXZpbA==\\u0007"),           # OSC 52 clipboard write
    ("\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\", "\\u001b]8;;http://evil/\\u001b\\link\\u001b]8;;\\u001b\\"),
    ("\x1b[2J\x1b[H", "\\u001b[2J\\u001b[H"),                              # CSI clear screen
    ("\x9b2J", "\\u009b2J"),                                               # C1 CSI
    ("\x90q\x9c", "\\u0090q\\u009c"),                                      # C1 DCS ... ST
    ("ok\x08\x08no", "ok\\u0008\\u0008no"),                                # backspace
    ("safe\rEVIL", "safe\\u000dEVIL"),                                     # lone carriage return
    ("a\r\nb\tc", "a\nb\tc"),                                              # line ends and tabs kept
    ("abc\u202edcba\u2066x\u2069", "abc\\u202edcba\\u2066x\\u2069"),         # bidi override / isolate
    ("\x00\x7f", "\\u0000\\u007f"),
    ("naïve 中文 [/x] émoji 🙂", "naïve 中文 [/x] émoji 🙂"),
])
def test_control_characters_are_made_visible(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_every_c0_c1_and_bidi_control_is_neutralised() -> None:
    controls = [chr(c) for c in (*range(0x20), 0x7f, *range(0x80, 0xa0))] + list("\u061c\u200e\u200f\u202a\u202b"
                                                                                  "\u202c\u202d\u202e\u2066\u2067"
                                                                                  "\u2068\u2069")
    out = terminal_safe("".join(controls))
    assert set(out) <= set("\\u0123456789abcdef\t\n")


def test_sanitised_json_is_still_the_same_json() -> None:
    data = {"v": HOSTILE_TEXT}
    text = terminal_safe(json.dumps(data, ensure_ascii=False))
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert json.loads(text) == data


def test_plain_is_printed_literally_by_rich() -> None:
    from rich.console import Console

    console = Console(record=True, width=200, color_system=None)
    console.print(plain(HOSTILE_TEXT))
    out = console.export_text()
    assert "[/x] [red]red[/red]" in out and "[bold" in out
    assert "\x1b" not in out and "\\u001b]52;c;" in out


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes VALUES (1, ?)", (HOSTILE_TEXT,))
    conn.commit()
    conn.close()
    return path


def _no_control(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\u202e" not in text and "\r" not in text


def test_sql_ask_prints_hostile_values_and_answers_as_text(shop: Path) -> None:
    from knowbase.cli.main import cli

    answer = "The note says [/x] and " + OSC52
    out = CliRunner().invoke(cli, ["--no-trace", "sql", "ask", str(shop), "What does the note say?", "--model",
                                   "fake:SELECT body FROM notes"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    _no_control(out.output)
    assert "[/x] [red]red[/red]" in out.output and "\\u001b]52;c;ZXZpbCBjbGlwYm9hcmQ=\\u0007" in out.output
    refused = CliRunner().invoke(cli, ["--no-trace", "sql", "ask", str(shop), "x", "--attempts", "1", "--model",
                                       f"fake:DROP TABLE notes -- {answer}"])
    assert refused.exit_code == 1
    _no_control(refused.output)
    assert "[/x]" in refused.output and "Not run." in refused.output
    as_json = CliRunner().invoke(cli, ["--no-trace", "sql", "ask", str(shop), "q", "--json", "--no-answer",
                                       "--model", "fake:SELECT body FROM notes"])
    _no_control(as_json.output)
    assert json.loads(as_json.output)["rows"] == [[HOSTILE_TEXT]]


def test_chat_and_errors_print_model_text_without_control_sequences() -> None:
    from knowbase.cli.main import cli

    out = CliRunner().invoke(cli, ["--no-trace", "chat", "--model", f"fake:{HOSTILE_TEXT}", "hi"])
    assert out.exit_code == 0, out.output
    _no_control(out.output)
    assert "[/x] [red]red[/red]" in out.output


def test_logs_table_and_trace_tree_print_markup_as_text(tmp_path: Path) -> None:
    from knowbase.cli.main import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["chat", "--model", f"fake:{HOSTILE_TEXT}", f"question {HOSTILE_TEXT}"]).exit_code == 0
    out = runner.invoke(cli, ["logs"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    _no_control(out.output)
    assert "[/x]" in out.output
    rows = json.loads(runner.invoke(cli, ["logs", "--json"], catch_exceptions=False).output)
    shown = runner.invoke(cli, ["logs", "show", rows[0]["id"]], catch_exceptions=False)
    assert shown.exit_code == 0
    _no_control(shown.output)
    assert "\\u001b]52;c;" in shown.output and "[/x] [red]red[/red]" in shown.output
    tree = runner.invoke(cli, ["logs", "--trace", rows[0]["trace_id"]], catch_exceptions=False)
    assert tree.exit_code == 0
    _no_control(tree.output)
    assert "[/x]" in tree.output
