"""``POST /v1/diagnose`` against a real uvicorn server: the same JSON as ``knowbase diagnose
--output json`` on the realistic scenarios, ``filter``, ``explain`` through the model queue
with the fake model (names masked for the model when asked, restored in the reply), keys and
scopes, and one clear 4xx JSON error per class of bad input (never a 500)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from knowbase.config import Settings  # noqa: E402
from knowbase.diagnose import diagnose  # noqa: E402
from knowbase.knowledge.base import KnowledgeBase  # noqa: E402
from knowbase.models.base import ChatModel  # noqa: E402
from knowbase.models.fake import FakeChat  # noqa: E402
from knowbase.server import ServerConfig, create_app  # noqa: E402
from knowbase.server.auth import KeyStore  # noqa: E402
from knowbase.server.db import ServerDB  # noqa: E402
from server_helpers import running  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "k8s"
SCENARIOS = {(sc := yaml.safe_load(p.read_text("utf-8")))["id"]: sc
             for p in sorted((REPO / "benches" / "data" / "diagnose").glob("*.yaml"))}
ORIGINALS = ["checkout-7c9d8f6b5d-4xq2p", "checkout-7c9d8f6b5d-m8v7k", "registry.acme-corp.io", "10.0.3.201"]


def documents(*ids: str) -> list[dict[str, str]]:
    return [{"name": name, "text": text} for i in ids for name, text in SCENARIOS[i]["files"].items()]


def token_echo(messages: Any, options: Any) -> str:
    """Answers with the first masked name of the prompt (or the Deployment's name) and a citation."""
    user = messages[-1].content
    m = re.search(r"\bobj-[0-9a-f]{6}\b", user)
    name = m.group(0) if m else "checkout"
    return f"Error: The containers of {name} keep crashing [1].\nSolution: 1. Run kubectl logs {name} --previous [1]."


@pytest.fixture
def settings(knowbase_home: Path) -> Settings:
    s = Settings.load(embedder="fake", model="fake:echo")
    with KnowledgeBase.create("docs", settings=s) as kb:
        kb.ingest([str(SAMPLE / "en/concepts/workloads/pods/pod-lifecycle.md"),
                   str(SAMPLE / "en/tasks/configure-pod-container/assign-memory-resource.md")])
    return s


@pytest.fixture
def served(settings: Settings) -> Any:
    models: dict[str, ChatModel] = {}

    def factory(spec: str) -> ChatModel:
        models[spec] = ChatModel(FakeChat(token_echo, name=spec.split(":", 1)[1]))
        return models[spec]

    app = create_app(settings, ServerConfig(models=("fake:echo", "fake:other"), max_document_bytes=20_000,
                                            max_body_bytes=1_000_000), chat_model_factory=factory)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, models


def check(resp: Any, status: int, *needles: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    for n in needles:
        assert n in err["message"], (n, err)
    return err


def test_reply_is_the_cli_json_for_the_same_inputs(served: Any, tmp_path: Path) -> None:
    api, models = served
    for sc in ("crashloop-deployment", "oomkilled-describe", "errimagepull-private-registry-events", "invalid-image-name-table"):
        got = api.post("/v1/diagnose", json={"documents": documents(sc)})
        assert got.status_code == 200, got.text
        files = []
        for name, text in SCENARIOS[sc]["files"].items():
            (tmp_path / name).write_text(text, "utf-8")
            files.append(name)
        import os

        cwd = os.getcwd()
        os.chdir(tmp_path)  # the CLI's sources are the paths given; here the bare names
        try:
            want = diagnose(files).to_dict()
        finally:
            os.chdir(cwd)
        body = got.json()
        assert set(body["timings"]) == {"analyze", "total"}
        body.pop("timings"), want.pop("timings")
        assert body == want
        assert {(f["kind"], f["namespace"], f["name"], f["reason"]) for f in body["findings"]} == \
            {(e["kind"], e["namespace"], e["name"], e["reason"]) for e in SCENARIOS[sc]["expected"]}
    crash = api.post("/v1/diagnose", json={"documents": documents("crashloop-deployment")}).json()
    (f,) = crash["findings"]
    assert (f["kind"], f["name"], f["severity"], f["explanation"]) == ("Deployment", "checkout", "critical", None)
    assert any(e["source"].startswith("workloads.json: ") for e in f["evidence"])
    assert any(e["source"] == "checkout.log:2" for e in f["evidence"])  # the log named after its Pod
    assert crash["problems"] is True and crash["anonymized"] is False
    assert models == {}  # no model was loaded without explain


def test_filter_keeps_one_kind(served: Any) -> None:
    api, _ = served
    both = documents("crashloop-deployment", "node-pid-pressure")
    assert {f["kind"] for f in api.post("/v1/diagnose", json={"documents": both}).json()["findings"]} == \
        {"Deployment", "Node"}
    only = api.post("/v1/diagnose", json={"documents": both, "filter": ["node"]}).json()
    assert [f["kind"] for f in only["findings"]] == ["Node"]


def test_explain_through_the_queue_with_names_masked_and_restored(served: Any) -> None:
    api, models = served
    body = {"documents": documents("crashloop-deployment"), "explain": True, "kb": "docs", "model": "fake:other",
            "anonymize": True, "max_chars": 200}
    got = api.post("/v1/diagnose", json=body)
    assert got.status_code == 200, got.text
    d = got.json()
    assert d["anonymized"] is True and "explain" in d["timings"]
    x = d["findings"][0]["explanation"]
    assert x["model"] == "fake:other" and [c["n"] for c in x["citations"]] == [1]
    assert x["citations"][0]["path"].endswith(".md")
    assert re.search(r"kubectl logs checkout(-7c9d8f6b5d-\w+)? --previous", x["solution"])  # restored
    (messages, _), = models["fake:other"].backend.calls
    prompt = "\n".join(m.content for m in messages)
    assert "CrashLoopBackOff" in prompt and "obj-" in prompt
    for value in ORIGINALS:
        assert value not in prompt, value
    assert api.get("/api/health").json()["queue"]["in_use"] == 0  # the ticket was given back
    # in-process model and no anonymize: as the CLI, names are not masked
    plain = api.post("/v1/diagnose", json={**body, "anonymize": None, "model": None}).json()
    assert plain["anonymized"] is False and plain["findings"][0]["explanation"]["model"] == "fake:echo"
    assert "checkout" in "\n".join(m.content for m in models["fake:echo"].backend.calls[0][0])


def test_explain_needs_a_served_model_and_an_existing_kb(served: Any) -> None:
    api, models = served
    docs = documents("crashloop-deployment")
    check(api.post("/v1/diagnose", json={"documents": docs, "explain": True, "kb": "docs",
                                         "model": "openai:gpt-4o@https://example.com/v1"}), 404, "not served")
    check(api.post("/v1/diagnose", json={"documents": docs, "explain": True, "kb": "nope"}), 404, "nope")
    check(api.post("/v1/diagnose", json={"documents": docs, "explain": True}), 404, "k8s-sample")
    check(api.post("/v1/diagnose", json={"documents": docs, "kb": "../etc"}), 400, "invalid knowledge base name")
    assert models == {}


def test_bad_documents_and_options_are_4xx_naming_document_and_line(served: Any) -> None:
    api, _ = served
    good = {"name": "pods.json", "text": SCENARIOS["crashloop-deployment"]["files"]["workloads.json"]}
    post = lambda body: api.post("/v1/diagnose", json=body)  # noqa: E731
    err = check(post({"documents": [good, {"name": "bad.json", "text": '{"kind": "Pod",\n  "metadata": {]\n}'}]}),
                400, "bad.json", "line 2", "invalid JSON")
    assert (err["code"], err["param"]) == ("invalid_document", "documents[1].text")
    check(post({"documents": [{"name": "bad.yaml", "text": "apiVersion: v1\nkind: Pod\nmetadata: [a\n  b: c\n"}]}),
          400, "bad.yaml", "line ", "invalid YAML")
    big = check(post({"documents": [good, {"name": "huge.log", "text": "x" * 20_001}]}), 413, "huge.log", "20000")
    assert big["code"] == "document_too_large"
    check(post({"documents": [{"name": "bin.log", "text": "ok\n\x00\x01"}]}), 400, "bin.log", "line 2", "binary")
    check(api.post("/v1/diagnose", content=b'{"documents": [{"name": "s.log", "text": "a\\n\\ud800"}]}',
                   headers={"content-type": "application/json"}), 400, "s.log", "line 2", "surrogate")
    check(post({"documents": [{"name": "alias.yaml", "text": "apiVersion: v1\nkind: List\na: &x [1]\n" + "".join(
        f"b{i}: *x\n" for i in range(200))}]}), 400, "alias.yaml", "alias")
    check(post({"documents": [good], "explainn": True}), 400, "explainn")
    check(post({"documents": [good], "explain": "yes"}), 400, "explain")
    check(post({"documents": [good], "language": "fr"}), 400, "language")
    check(post({"documents": [good], "max_chars": 5}), 400, "max_chars")
    check(post({"documents": []}), 400, "documents")
    check(post({"documents": [good, good]}), 400, "same name")
    check(post({"documents": [{"name": "a\x1b[31m", "text": "x"}]}), 400, "name")
    check(api.post("/v1/diagnose", content=b'{"documents": [', headers={"content-type": "application/json"}),
          400, "malformed JSON")
    # an object without its name inside a readable List: reported in errors, the rest analysed (as the CLI)
    partial = post({"documents": [{"name": "l.json", "text": '{"kind": "List", "items": [{"kind": "Pod"}]}'}]})
    assert partial.status_code == 200
    assert partial.json()["errors"] == [{"source": "l.json", "message": "items[0].metadata.name: missing or not a "
                                                                        "string"}]


def test_scope_ask_and_the_keys_knowledge_bases(settings: Settings) -> None:
    with KnowledgeBase.create("other", settings=settings) as kb:
        kb.add_texts(["unrelated"])
    store = KeyStore(ServerDB(settings.home / "server.db"))
    asker = store.create(scope="ask", kbs=["other"])
    app = create_app(settings, ServerConfig(require_keys=True))
    docs = documents("node-pid-pressure")
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        check(c.post("/v1/diagnose", json={"documents": docs}), 401, "API key")
        h = {"Authorization": f"Bearer {asker.secret}"}
        ok = c.post("/v1/diagnose", json={"documents": docs}, headers=h)
        assert ok.status_code == 200 and ok.json()["findings"][0]["reason"] == "PIDPressure"
        check(c.post("/v1/diagnose", json={"documents": docs, "explain": True, "kb": "docs"}, headers=h), 403, "docs")
