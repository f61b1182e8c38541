"""API keys never reach the screen or logs.db: Settings, HTTP backend errors, traces, CLI output."""

from __future__ import annotations

import json
import sqlite3
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from knowbase.cli.main import main
from knowbase.config import Settings
from knowbase.errors import AuthenticationError, ModelHTTPError, ModelResponseError
from knowbase.models.registry import get_chat_model
from knowbase.redaction import REDACTED, is_secret_name, redact, redact_error
from stub_http import serve

#: Not in any well-known key format: only the known-value redaction can catch it.
PLAIN_KEY = "kb-live-7f3a9c1e5d2b"
SK_KEY = "sk-proj-Zx81vQ0aLmN4pT7rW2yE"


class EchoKey(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that reflects the caller's bearer key in its errors.

    ``/auth/v1``: 401 JSON error; ``/plain/v1``: 400 text body with an ``Authorization:``
    line; ``/stream/v1``: 200 SSE stream whose first event is an error naming the key.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        scenario = self.path.strip("/").split("/")[0]
        if scenario == "auth":
            body = {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}}
            self._send(401, json.dumps(body).encode(), "application/json")
        elif scenario == "plain":
            self._send(400, f"bad request\nAuthorization: Bearer {key}\n".encode(), "text/plain")
        else:
            event = {"error": {"message": f"quota exceeded for key {key}"}}
            self._send(200, f"data: {json.dumps(event)}\n\n".encode(), "text/event-stream")


def _assert_clean(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text


def _log_rows(home: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(home / "logs.db")
    try:
        return conn.execute("SELECT * FROM calls").fetchall()
    finally:
        conn.close()


# --- the function ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    (f"HTTP 401: invalid key {SK_KEY}", f"HTTP 401: invalid key {REDACTED}"),
    ("Authorization: Bearer abcdef0123456789", f"Authorization: {REDACTED}"),
    ("curl https://user:pa55word@example.com/v1?api_key=abc123xyz&x=1",
     f"curl https://{REDACTED}@example.com/v1?api_key={REDACTED}&x=1"),
    ('{"password": "hunter2", "max_tokens": 512}', f'{{"password": "{REDACTED}", "max_tokens": 512}}'),
    ("OPENAI_API_KEY=sk-zzzzzzzzzzzzzz", f"OPENAI_API_KEY={REDACTED}"),
    ("x-api-key: 1234567890abcdef", f"x-api-key: {REDACTED}"),
    ("AKIAIOSFODNN7EXAMPLE, ghp_abcdefghijklmnopqrstuvwxyz0123", f"{REDACTED}, {REDACTED}"),
    # ordinary text stays as it was
    ("prompt_tokens: 12, tokenizer: bm25s, author: Bob, token=None",
     "prompt_tokens: 12, tokenizer: bm25s, author: Bob, token=None"),
    ("The bearer bonds; a token embeddings table; primary key: id",
     "The bearer bonds; a token embeddings table; primary key: id"),
])
def test_redact_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_known_values_longest_first() -> None:
    assert redact(f"key {PLAIN_KEY} and {PLAIN_KEY}-2 rejected", [PLAIN_KEY, f"{PLAIN_KEY}-2", None, "ab"]) == \
        f"key {REDACTED} and {REDACTED} rejected"
    assert redact("ab cd", ["ab"]) == "ab cd"  # too short to search for


def test_secret_names() -> None:
    assert [n for n in ("api_key", "OPENAI_API_KEY", "x-api-key", "db.password", "token", "auth_token",
                        "client_secret", "prompt_tokens", "tokenizer", "author", "max_tokens", "id")
            if is_secret_name(n)] == ["api_key", "OPENAI_API_KEY", "x-api-key", "db.password", "token",
                                      "auth_token", "client_secret"]


def test_redact_error_rewrites_message_args_and_fields() -> None:
    exc = ModelHTTPError(f"HTTP 500: {PLAIN_KEY}", status=500, body=f"echo {PLAIN_KEY}", url="http://h/v1",
                         retry_after=None)
    redact_error(exc, [PLAIN_KEY])
    assert str(exc) == f"HTTP 500: {REDACTED}" and exc.args == (f"HTTP 500: {REDACTED}",)
    assert exc.body == f"echo {REDACTED}" and exc.detail["body"] == exc.body and exc.status == 500


# --- Settings ----------------------------------------------------------------------------------
def test_settings_never_show_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(f'api_key = "{PLAIN_KEY}"\nhub_token = "tok-998877665544"\n'
                                          f'region = "eu"\n', encoding="utf-8")
    settings = Settings.load(tmp_path)
    assert settings.api_key == PLAIN_KEY
    for shown in (repr(settings), str(settings), f"{settings}", json.dumps(settings.to_dict())):
        _assert_clean(shown, PLAIN_KEY, "tok-998877665544")
    data = settings.to_dict()
    assert data["api_key"] == REDACTED and data["extra"] == {"hub_token": REDACTED, "region": "eu"}
    assert settings.secrets() == (PLAIN_KEY, "tok-998877665544")
    assert Settings.load(tmp_path / "none").to_dict()["api_key"] is None


# --- the OpenAI-compatible backend, its traces and the CLI --------------------------------------
@pytest.mark.parametrize("key", [PLAIN_KEY, SK_KEY])
def test_key_echoed_in_error_bodies_is_redacted(key: str, knowbase_home: Path) -> None:
    settings = Settings.load(api_key=key, max_retries=0)
    with serve(EchoKey) as base:
        with pytest.raises(AuthenticationError) as auth:
            get_chat_model(f"openai:m@{base}/auth/v1", settings=settings).chat("hi")
        with pytest.raises(ModelHTTPError) as plain:
            get_chat_model(f"openai:m@{base}/plain/v1", settings=settings).chat("hi")
        with pytest.raises(ModelResponseError) as stream:
            get_chat_model(f"openai:m@{base}/stream/v1", settings=settings).chat("hi")
    assert str(auth.value).endswith(f"Incorrect API key provided: {REDACTED}.")
    assert plain.value.status == 400 and f"Authorization: {REDACTED}" in plain.value.body
    assert f"quota exceeded for key {REDACTED}" in str(stream.value)
    for err in (auth.value, plain.value, stream.value):
        _assert_clean(str(err) + repr(err.args) + repr(err.detail), key)
    rows = _log_rows(knowbase_home)
    # the 401 and the stream errors quote the key (the 400's message is its body's first line)
    assert len(rows) == 3 and sum(REDACTED in str(r) for r in rows) == 2
    _assert_clean(repr(rows), key)


def test_cli_error_line_and_logs_never_show_the_key(knowbase_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KNOWBASE_API_KEY", PLAIN_KEY)
    knowbase_home.mkdir(parents=True)
    (knowbase_home / "config.toml").write_text("max_retries = 0\n", encoding="utf-8")
    with serve(EchoKey) as base, pytest.raises(SystemExit) as exit_info:
        main(["chat", "-m", f"openai:m@{base}/auth/v1", "hi"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and f"Incorrect API key provided: {REDACTED}" in err
    _assert_clean(err, PLAIN_KEY)
    # a row written before redaction existed is still shown redacted
    conn = sqlite3.connect(knowbase_home / "logs.db")
    conn.execute("UPDATE calls SET error = ?", (f"old error with {PLAIN_KEY}",))
    conn.commit()
    conn.close()
    main(["logs", "--json"])
    out = capsys.readouterr().out
    assert json.loads(out)[0]["error"] == f"old error with {REDACTED}"
    _assert_clean(out, PLAIN_KEY)


def test_redact_is_linear_on_hostile_text() -> None:
    """Inputs that make a naive pattern quadratic (long runs, many unclosed quotes, many
    scheme-like prefixes), 0.6-1 MB each, in a child process with a time limit: a quadratic
    pattern would take hours, linear ones take about a second on 2 shared cores."""
    import subprocess
    import sys

    code = ("from knowbase.redaction import redact\n"
            "for s in ['a' * 1_000_000, 'x-' * 300_000 + 'token', 'token=\"' * 100_000, 'a://' * 200_000,\n"
            "          'x://a:' * 100_000, 'sk-' * 300_000, 'Bearer ' * 100_000, '\"password\": \"' * 60_000]:\n"
            "    assert len(redact(s)) > 0\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_model_url_with_credentials_parses_and_is_redacted() -> None:
    """Found by a new user: 'openai:m@http://u:PW@host/v1' was split at the last '@' (the URL
    lost its scheme) and 'openai:m@http://u:PW' was stored in logs.db as the model."""
    from knowbase.config import ModelSpec
    from knowbase.redaction import redact

    spec = ModelSpec.parse("openai:gpt-x@http://u:PWSECRET@127.0.0.1:9/v1")
    assert (spec.name, spec.base_url) == ("gpt-x", "http://u:PWSECRET@127.0.0.1:9/v1")
    assert "PWSECRET" not in redact(spec.raw)
    assert ModelSpec.parse("onnx:all-minilm-l6-v2@fp32").base_url == "fp32"
