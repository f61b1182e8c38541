"""``knowbase finetune submit|status|events|cancel`` against a local server that follows
OpenAI's fine-tuning API (files, jobs, events, cancel) on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli
from knowbase.errors import AuthenticationError, UserError
from knowbase.finetune.remote import FineTuningClient
from stub_http import serve


class FineTuningAPI(BaseHTTPRequestHandler):
    """Files, jobs and events in memory; requires ``Authorization: Bearer sk-test``."""

    files: ClassVar[dict[str, dict[str, Any]]] = {}
    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != "Bearer sk-test":
            self._send(401, {"error": {"message": "Incorrect API key provided"}})
            return False
        return True

    def do_POST(self) -> None:
        if not self._authorised():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if self.path == "/v1/files":
            raw = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + self.rfile.read(length)
            parts = {p.get_param("name", header="content-disposition"): p
                     for p in BytesParser(policy=HTTP).parsebytes(raw).iter_parts()}
            content = parts["file"].get_payload(decode=True)
            with self.lock:
                fid = f"file-{len(self.files) + 1}"
                self.files[fid] = {"id": fid, "object": "file", "bytes": len(content),
                                   "purpose": parts["purpose"].get_payload(decode=True).decode(),
                                   "filename": parts["file"].get_filename(), "lines": content.decode().count("\n")}
            self._send(200, self.files[fid])
            return
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/v1/fine_tuning/jobs":
            if body.get("training_file") not in self.files:
                self._send(400, {"error": {"message": f"invalid training_file: {body.get('training_file')}"}})
                return
            with self.lock:
                jid = f"ftjob-{len(self.jobs) + 1}"
                self.jobs[jid] = {"id": jid, "object": "fine_tuning.job", "model": body["model"], "status": "queued",
                                  "training_file": body["training_file"],
                                  "validation_file": body.get("validation_file"),
                                  "hyperparameters": body.get("hyperparameters") or {"n_epochs": "auto"},
                                  "suffix": body.get("suffix"), "fine_tuned_model": None, "trained_tokens": None}
            self._send(200, self.jobs[jid])
        elif self.path.endswith("/cancel"):
            jid = self.path.split("/")[-2]
            if jid not in self.jobs:
                self._send(404, {"error": {"message": "job not found"}})
                return
            self.jobs[jid]["status"] = "cancelled"
            self._send(200, self.jobs[jid])
        else:
            self._send(404, {"error": {"message": "no such route"}})

    def do_GET(self) -> None:
        if not self._authorised():
            return
        path = self.path.split("?")[0]
        parts = path.split("/")
        if path == "/v1/fine_tuning/jobs":
            self._send(200, {"object": "list", "data": list(self.jobs.values())[::-1]})
        elif len(parts) == 5 and parts[3] == "jobs" and parts[4] in self.jobs:
            job = self.jobs[parts[4]]
            if job["status"] == "queued":  # one status call later it has finished
                job.update(status="succeeded", fine_tuned_model=f"ft:{job['model']}:knowbase::{parts[4]}",
                           trained_tokens=1234)
            self._send(200, job)
        elif len(parts) == 6 and parts[5] == "events" and parts[4] in self.jobs:
            self._send(200, {"object": "list", "data": [
                {"object": "fine_tuning.job.event", "created_at": 1700000100, "level": "info",
                 "message": "Step 10/30: training loss=0.41"},
                {"object": "fine_tuning.job.event", "created_at": 1700000000, "level": "info",
                 "message": "Fine-tuning job started"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})


def _train_file(tmp_path: Path, n: int = 10) -> Path:
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"},
                                                  {"role": "assistant", "content": f"A{i}."}]}) + "\n"
                         for i in range(n)), encoding="utf-8")
    return p


@pytest.fixture
def api() -> Any:
    FineTuningAPI.files.clear()
    FineTuningAPI.jobs.clear()
    with serve(FineTuningAPI) as url:
        yield url + "/v1"


def test_client_upload_create_status_events_cancel(api: str, tmp_path: Path) -> None:
    with FineTuningClient(api, api_key="sk-test") as client:
        f = client.upload(_train_file(tmp_path))
        assert f["id"] == "file-1" and f["purpose"] == "fine-tune" and f["lines"] == 10
        job = client.create_job("gpt-4o-mini", f["id"], suffix="kb", epochs=3)
        assert job["status"] == "queued" and job["hyperparameters"] == {"n_epochs": 3}
        done = client.job(job["id"])
        assert done["status"] == "succeeded" and done["fine_tuned_model"] == "ft:gpt-4o-mini:knowbase::ftjob-1"
        # continuing from the fine-tuned model: a new job on top of it
        again = client.create_job(done["fine_tuned_model"], f["id"])
        assert again["model"] == "ft:gpt-4o-mini:knowbase::ftjob-1"
        assert [e["message"] for e in client.events(job["id"])][0].startswith("Step 10/30")
        assert client.cancel(again["id"])["status"] == "cancelled"
        assert [j["id"] for j in client.jobs()] == ["ftjob-2", "ftjob-1"]
        with pytest.raises(UserError, match="invalid job id"):
            client.job("../files")
    with FineTuningClient(api, api_key="wrong") as bad, pytest.raises(AuthenticationError, match="Incorrect API key"):
        bad.jobs()


def test_cli_submit_status_events_cancel(api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWBASE_API_KEY", "sk-test")
    model = f"openai:gpt-4o-mini@{api}"
    runner = CliRunner()
    train = _train_file(tmp_path)
    res = runner.invoke(cli, ["finetune", "submit", str(train), "--validation", str(train), "-m", model,
                              "--suffix", "kb"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "uploaded" in res.stdout and "file-1" in res.stdout and "file-2" in res.stdout
    assert "ftjob-1 · queued · model gpt-4o-mini" in res.stdout and "sk-test" not in res.stdout
    res = runner.invoke(cli, ["finetune", "status", "ftjob-1", "-m", model], catch_exceptions=False)
    assert "succeeded" in res.stdout and "ft:gpt-4o-mini:knowbase::ftjob-1" in res.stdout
    res = runner.invoke(cli, ["finetune", "events", "ftjob-1", "-m", model], catch_exceptions=False)
    lines = res.stdout.strip().splitlines()
    assert lines[0].endswith("Fine-tuning job started") and "training loss=0.41" in lines[1]
    res = runner.invoke(cli, ["finetune", "cancel", "ftjob-1", "-m", model], catch_exceptions=False)
    assert "cancelled" in res.stdout


def test_submit_refuses_an_invalid_file(api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from knowbase.cli.main import main

    monkeypatch.setenv("KNOWBASE_API_KEY", "sk-test")
    small = _train_file(tmp_path, n=3)
    with pytest.raises(SystemExit) as exit_:
        main(["finetune", "submit", str(small), "-m", f"openai:gpt-4o-mini@{api}"])
    assert exit_.value.code == 1 and "too_few_examples" in capsys.readouterr().err
    assert FineTuningAPI.files == {}  # nothing was uploaded
    with pytest.raises(SystemExit):
        main(["finetune", "status", "ftjob-1", "-m", "llamacpp:qwen2.5-coder-1.5b"])
    assert "OpenAI-compatible model string" in capsys.readouterr().err
