"""knowbase diagnose: analyzers on the realistic scenarios, grouping, inputs and limits,
anonymisation (round trip, leak check in logs.db with tracing on), explanation plumbing
(fake model), the cache key, the CLI's exit codes, the agent tool."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml

from knowbase.diagnose import diagnose, needs_anonymizing
from knowbase.diagnose.analyzers import REASONS, analyze, valid_cron
from knowbase.diagnose.anonymise import Anonymizer
from knowbase.diagnose.explain import Explainer, cache_key, cut_solution, split_answer
from knowbase.diagnose.inputs import parse_text, read_inputs
from knowbase.models.base import Message
from knowbase.safety.datafiles import DataLimits

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "benches" / "data" / "diagnose").glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text("utf-8"))


def write_files(sc: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in sc["files"].items():
        (folder / name).write_text(text, "utf-8")
        out.append(str(folder / name))
    return out


def scenario(name: str) -> dict:
    return load(next(p for p in SCENARIOS if load(p)["id"] == name))


def test_at_least_40_scenarios_each_with_source_expectation_and_solution() -> None:
    assert len(SCENARIOS) >= 40
    for p in SCENARIOS:
        sc = load(p)
        assert sc["source"] and sc["files"], p.name
        assert "expected" in sc and "solution" in sc, p.name


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_findings_are_exactly_the_expected_ones(path: Path, tmp_path: Path) -> None:
    sc = load(path)
    d = diagnose(write_files(sc, tmp_path))
    assert not d.errors
    got = {(f.kind, f.namespace, f.name, f.reason) for f in d.findings}
    want = {(e["kind"], e["namespace"], e["name"], e["reason"]) for e in sc["expected"]}
    assert got == want
    assert all(f.evidence for f in d.findings)
    assert d.exit_code() == (1 if any(REASONS.get(e["reason"], ("warning",))[0] != "info" for e in sc["expected"])
                             else 0)


def test_scenarios_cover_k8sgpt_core_reasons() -> None:
    reasons = {e["reason"] for p in SCENARIOS for e in load(p)["expected"]}
    kinds = {e["kind"] for p in SCENARIOS for e in load(p)["expected"]}
    for r in ("CrashLoopBackOff", "ImagePullBackOff", "CreateContainerConfigError", "CreateContainerError",
              "RunContainerError", "InvalidImageName", "OOMKilled", "Evicted", "Unschedulable", "LivenessProbeFailed",
              "ReadinessProbeFailed", "StartupProbeFailed", "FailedMount", "FailedCreatePodSandBox", "NotReady",
              "MemoryPressure", "DiskPressure", "PIDPressure", "NoEndpoints", "NoPodsMatchSelector",
              "MissingIngressClass", "BackendServiceNotFound", "TLSSecretNotFound", "ProvisioningFailed"):
        assert r in reasons, r
    for k in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service", "Ingress",
              "PersistentVolumeClaim", "Node", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
        assert k in kinds, k


def test_pods_of_one_deployment_are_one_finding_with_the_pods_and_the_log(tmp_path: Path) -> None:
    d = diagnose(write_files(scenario("crashloop-deployment"), tmp_path))
    (f,) = d.findings
    assert (f.kind, f.name, f.reason, f.severity) == ("Deployment", "checkout", "CrashLoopBackOff", "critical")
    assert [r.name for r in f.related] == ["checkout-7c9d8f6b5d-4xq2p", "checkout-7c9d8f6b5d-m8v7k"]
    texts = " | ".join(e.text for e in f.evidence)
    assert "availableReplicas: 0" in texts  # the Deployment's own symptom folded in
    assert "DATABASE_URL is not set" in texts  # the log line of one of its Pods
    assert any(e.source.endswith("checkout.log:2") for e in f.evidence)


def test_service_without_endpoints_joins_the_crashing_pods_finding(tmp_path: Path) -> None:
    d = diagnose(write_files(scenario("service-with-crashing-pods-grouped"), tmp_path))
    (f,) = d.findings
    assert {r.kind for r in f.related} == {"Pod", "Service"}
    assert any("Endpoints wordpress" in e.text for e in f.evidence)


def test_filter_keeps_kind_and_owners_of_that_kind(tmp_path: Path) -> None:
    files = write_files(scenario("crashloop-deployment"), tmp_path / "a") + write_files(
        scenario("node-pid-pressure"), tmp_path / "b")
    assert {f.kind for f in diagnose(files).findings} == {"Deployment", "Node"}
    assert [f.kind for f in diagnose(files, kinds=["node"]).findings] == ["Node"]
    assert [f.kind for f in diagnose(files, kinds=["Pod"]).findings] == ["Deployment"]  # its Pods are related


def test_describe_parsing_rebuilds_container_state() -> None:
    snap = parse_text(scenario("oomkilled-describe")["files"]["describe.txt"], source="d.txt")
    (pod,) = snap.objects
    cs = pod.data["status"]["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert cs["lastState"]["terminated"] == {"reason": "OOMKilled", "exitCode": 137}
    assert pod.data["metadata"]["labels"] == {"app": "report-worker", "pod-template-hash": "5f7b9c6d4"}
    assert [e.reason for e in snap.events] == ["Scheduled", "Pulled", "BackOff"]
    assert snap.events[2].count == 61


def test_valid_cron() -> None:
    assert valid_cron("*/5 * * * *") and valid_cron("0 3 * * MON-FRI") and valid_cron("@hourly")
    assert valid_cron("CRON_TZ=Europe/Paris 0 9 1 * *")
    assert not valid_cron("0 25 * * *") and not valid_cron("* * * *") and not valid_cron("61 * * * *")


# --- bad input ---------------------------------------------------------------------------------
def test_bad_inputs_are_reported_with_line_and_the_rest_is_analysed(tmp_path: Path) -> None:
    good = write_files(scenario("node-pid-pressure"), tmp_path)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"kind": "Pod",\n "metadata": {"name": "x"}\n "spec": {}}')
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n")
    binary = tmp_path / "core.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(200))
    latin = tmp_path / "latin.log"
    latin.write_bytes("ok line\ncaf\xe9 failed\n".encode("latin-1"))
    d = diagnose([*good, str(bad_json), str(bad_yaml), str(binary), str(latin), str(tmp_path / "missing.json")])
    assert [f.reason for f in d.findings] == ["PIDPressure"]
    errors = {Path(e.source).name: e.message for e in d.errors}
    assert errors["bad.json"].startswith("line 3 column 2: invalid JSON")
    assert re.match(r"line \d+ column \d+: invalid YAML", errors["bad.yaml"])
    assert "binary data" in errors["core.bin"]
    assert errors["latin.log"].startswith("line 2: not UTF-8")
    assert errors["missing.json"] == "no such file"
    assert d.exit_code() == 2


def test_object_without_name_names_the_field(tmp_path: Path) -> None:
    p = tmp_path / "pods.json"
    p.write_text(json.dumps({"kind": "List", "items": [{"kind": "Pod", "metadata": {}}, {"metadata": {"name": "a"}}]}))
    d = diagnose([str(p)])
    assert [e.message for e in d.errors] == ["items[0].metadata.name: missing or not a string", "items[1].kind: missing"]


def test_yaml_alias_bomb_is_refused_before_expansion(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 13):  # 12 x 9 = 108 aliases, 9**13 strings once expanded
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    p = tmp_path / "bomb.yaml"
    p.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join("  " + ln for ln in lines))
    d = diagnose([str(p)])
    assert "more than 100 YAML aliases" in d.errors[0].message


def test_deep_json_is_refused_from_a_scan(tmp_path: Path) -> None:
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    d = diagnose([str(p)])
    assert "JSON nested deeper than 64 levels" in d.errors[0].message


def test_size_limit_applies_before_reading(tmp_path: Path) -> None:
    p = tmp_path / "big.log"
    p.write_text("x" * 1001)
    limits = DataLimits(max_bytes=1000)
    d = diagnose([str(p)], limits=limits)
    assert d.errors[0].message == "1001 bytes, larger than the limit of 1000 bytes"
    d = diagnose(["-"], limits=limits, stdin=io.BytesIO(b"y" * 1001))
    assert "standard input is larger than the limit" in d.errors[0].message


def test_stdin_and_nothing_to_read() -> None:
    text = scenario("node-pid-pressure")["files"]["node.json"].encode()
    d = diagnose(["-"], stdin=io.BytesIO(text))
    assert [f.reason for f in d.findings] == ["PIDPressure"]
    from knowbase.errors import UserError

    with pytest.raises(UserError):
        diagnose([])


# --- anonymisation -----------------------------------------------------------------------------------
ORIGINALS = ["checkout", "checkout-7c9d8f6b5d-4xq2p", "checkout-7c9d8f6b5d-m8v7k", "shop", "registry.acme-corp.io",
             "10.0.3.201", "ip-10-0-3-17.eu-west-1.compute.internal", "0b7f3d9e-2f55-4b0b-a4c1-6f3f2f1f8a90"]


def test_mask_round_trip_and_stable_keyed_tokens() -> None:
    snap = read_inputs([])
    snap.extend(parse_text(scenario("crashloop-deployment")["files"]["workloads.json"], source="w.json"))
    key = b"k" * 32
    a, b, other = Anonymizer(key), Anonymizer(key), Anonymizer(b"o" * 32)
    for anon in (a, b, other):
        anon.collect(snap)
    text = ("Deployment shop/checkout: pod=checkout-7c9d8f6b5d-4xq2p_shop(0b7f3d9e-2f55-4b0b-a4c1-6f3f2f1f8a90) on "
            "ip-10-0-3-17.eu-west-1.compute.internal (10.0.3.201) image registry.acme-corp.io/shop/checkout:2.4.1 "
            "hostPath /srv/customers/acme volume \"conf\": configmap \"billing-settings\" not found; "
            "see /var/run/secrets/kubernetes.io/serviceaccount and https://kubernetes.io/docs/")
    masked = a.mask(text)
    assert a.unmask(masked) == text
    for value in [*ORIGINALS, "/srv/customers/acme", "billing-settings"]:
        assert value not in masked, value
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in masked and "https://kubernetes.io/docs/" in masked
    assert "CrashLoopBackOff" == a.mask("CrashLoopBackOff")
    assert b.mask(text) == masked  # same key: same tokens
    assert other.mask(text) != masked  # another key: other tokens
    assert "checkout" not in repr(a) and "values masked" in repr(a)
    assert a.add("storage", "ns").startswith("ns-") and a.add("storage", "obj") == "storage"  # a namespace always
    assert a.add("kube-system", "ns") == "kube-system"
    token = a.add("payments-api", "obj")
    assert a.unmask(f"restart {token[:-1]} now") == "restart payments-api now"  # a digit dropped by the model


def test_home_key_is_private_and_reused(tmp_path: Path) -> None:
    a = Anonymizer.for_home(tmp_path)
    mode = stat.S_IMODE((tmp_path / "diagnose.key").stat().st_mode)
    assert mode == 0o600
    assert Anonymizer.for_home(tmp_path).add("payments", "ns") == a.add("payments", "ns")


def test_anonymisation_default_follows_the_model() -> None:
    assert needs_anonymizing("openai:gpt-4o-mini@https://api.openai.com/v1")
    assert needs_anonymizing("someplugin:model")
    assert not needs_anonymizing("llamacpp:qwen2.5-coder-1.5b")
    assert not needs_anonymizing("fake")


@pytest.fixture
def docs_kb(knowbase_home: Path):
    from tests.conftest import SAMPLE

    from knowbase import KnowledgeBase

    kb = KnowledgeBase.create("docs", embedder="fake")
    kb.ingest([str(SAMPLE / "en/concepts/workloads/pods/pod-lifecycle.md"),
               str(SAMPLE / "en/concepts/containers/images.md"),
               str(SAMPLE / "en/tasks/configure-pod-container/assign-memory-resource.md")])
    yield kb
    kb.close()


def _echo_token_model():
    """A fake model answering with the first masked name of the prompt and citations [1] and [9]."""
    from knowbase.models.base import ChatModel
    from knowbase.models.fake import FakeChat

    def reply(messages, options):
        user = messages[-1].content
        token = re.search(r"\bobj-[0-9a-f]{6}\b", user)
        name = token.group(0) if token else "?"
        return (f"Error: The containers of {name} keep crashing [1].\n"
                f"Solution: 1. Run kubectl logs {name} --previous [1]. 2. Fix the missing setting [9]. "
                + "3. Redeploy. " * 40)

    return ChatModel(FakeChat(reply, name="token-echo"))


def test_explain_masks_restores_checks_citations_and_cuts(tmp_path: Path, docs_kb, knowbase_home: Path) -> None:
    model = _echo_token_model()
    d = diagnose(write_files(scenario("crashloop-deployment"), tmp_path), explain=True, model=model, kb=docs_kb,
                 anonymize=True, max_chars=120)
    assert d.anonymized
    x = d.findings[0].explanation
    (messages, _), = model.backend.calls
    prompt = "\n".join(m.content for m in messages)
    for value in ORIGINALS:
        assert value not in prompt, value
    assert "--- Deployment ns-" in prompt and "CrashLoopBackOff" in prompt and "[1] (" in prompt
    assert re.search(r"kubectl logs checkout(-7c9d8f6b5d-\w+)? --previous", x.solution)  # restored
    assert x.error.startswith("The containers of checkout")
    assert [c.n for c in x.citations] == [1] and x.invalid_citations == (9,)
    assert x.truncated and len(re.sub(r"\[\d+\]", "", x.solution)) <= 121  # 120 characters and the ellipsis
    assert x.citations[0].chunk.path.endswith(".md")


def test_no_original_name_in_logs_db_with_tracing_on(tmp_path: Path, docs_kb, knowbase_home: Path) -> None:
    files = write_files(scenario("crashloop-deployment"), tmp_path / "a") + write_files(
        scenario("errimagepull-private-registry-events"), tmp_path / "b") + write_files(
        scenario("failed-create-pod-sandbox"), tmp_path / "c")
    d = diagnose(files, explain=True, model="fake", kb=docs_kb)  # fake is in-process: force masking below
    assert not d.anonymized
    d = diagnose(files, explain=True, model="fake", kb=docs_kb, anonymize=True)
    assert d.anonymized and all(f.explanation for f in d.findings)
    con = sqlite3.connect(knowbase_home / "logs.db")
    tables = {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in ("calls", "spans")}
    masked_rows = [json.dumps(r, default=str) for r in tables["calls"] if "ns-" in json.dumps(r, default=str)]
    assert len(masked_rows) == 3  # one prompt per finding of the masked run
    sensitive = [*ORIGINALS, "ledger-api-6d5f8b7c9-q7w2n", "payments", "europe-docker.pkg.dev", "acme-prod",
                 "orders-api-5b7d9c8f6-2mzkq", "worker-7"]
    for row in masked_rows:
        for value in sensitive:
            assert not re.search(r"(?<![A-Za-z0-9.-])" + re.escape(value) + r"(?![A-Za-z0-9-])", row), value
    spans = json.dumps(tables["spans"], default=str)
    for value in sensitive:
        assert value not in spans, value
    key = (knowbase_home / "diagnose.key").read_bytes()
    assert key.hex() not in json.dumps(tables, default=str)


def test_cache_is_keyed_by_model_prompt_version_and_masked_text(tmp_path: Path, docs_kb) -> None:
    msgs = [Message.system("s"), Message.user("--- Pod ns-abc/obj-123 ---")]
    assert cache_key("fake:a", msgs, 100) != cache_key("fake:b", msgs, 100)
    assert cache_key("fake:a", msgs, 100) == cache_key("fake:a", list(msgs), 100)
    from knowbase.models.base import ChatModel
    from knowbase.models.fake import FakeChat

    def model(name: str, text: str) -> ChatModel:
        return ChatModel(FakeChat(default=text, name=name))

    files = write_files(scenario("node-pid-pressure"), tmp_path)
    first = diagnose(files, explain=True, model=model("a", "Error: PIDs. Solution: raise the limit [1]."), kb=docs_kb,
                     anonymize=True).findings[0].explanation
    again = diagnose(files, explain=True, model=model("a", "Error: changed. Solution: changed [1]."), kb=docs_kb,
                     anonymize=True).findings[0].explanation
    other = diagnose(files, explain=True, model=model("b", "Error: other. Solution: other [1]."), kb=docs_kb,
                     anonymize=True).findings[0].explanation
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert again.solution == first.solution == "raise the limit [1]."
    assert other.solution == "other [1]."


def test_chinese_prompt_and_labels(docs_kb) -> None:
    from knowbase.diagnose.types import Finding

    ex = Explainer(model=lambda: _echo_token_model(), search=lambda q, k: docs_kb.search(q, k=k),
                   doc_freqs=docs_kb.store.doc_freqs, language="zh", max_chars=50)
    f = Finding("Pod", "web", "frontend", "ImagePullBackOff", "critical", "container nginx is waiting")
    messages, hits = ex.messages(f)
    assert "请用简体中文" in messages[1].content and "不超过 50 个字符" in messages[1].content
    x = ex.parse("错误：镜像不存在 [1]。\n解决方案：1. 修正镜像标签 [1]。", hits)
    assert (x.error, x.solution) == ("镜像不存在 [1]。", "1. 修正镜像标签 [1]。")
    assert split_answer("**Error:** a\n**Solution:** b") == ("a", "b")
    assert cut_solution("short [1]", 5) == ("short [1]", False)


def test_unknown_language_is_refused() -> None:
    from knowbase.errors import UserError

    with pytest.raises(UserError):
        Explainer(model=lambda: None, language="fr")  # type: ignore[arg-type,return-value]


# --- CLI and agent tool -------------------------------------------------------------------------------
def run_cli(args: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from knowbase.cli.main import cli

    result = CliRunner().invoke(cli, args, input=stdin, standalone_mode=True)
    return result.exit_code, result.stdout, result.stderr


def test_cli_exit_codes_text_and_json(tmp_path: Path) -> None:
    problems = write_files(scenario("crashloop-deployment"), tmp_path / "p")
    healthy = write_files(scenario("healthy-cluster"), tmp_path / "h")
    code, out, _ = run_cli(["diagnose", *problems])
    assert code == 1 and "CRITICAL Deployment shop/checkout: CrashLoopBackOff" in out
    code, out, _ = run_cli(["diagnose", *healthy])
    assert code == 0 and "No problems found." in out
    code, out, _ = run_cli(["diagnose", "--output", "json", *problems])
    doc = json.loads(out)
    assert code == 1 and doc["version"] == 1 and doc["problems"] is True
    assert doc["findings"][0]["reason"] == "CrashLoopBackOff" and doc["summary"]["critical"] == 1
    assert set(doc["findings"][0]) == {"kind", "namespace", "name", "reason", "severity", "message", "evidence",
                                       "related", "explanation"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata: {name: [x\n")
    code, out, err = run_cli(["diagnose", str(bad), *problems])
    assert code == 2 and "bad.yaml: line" in err and "CrashLoopBackOff" in out
    code, out, _ = run_cli(["diagnose", "--filter", "Node", *problems])
    assert code == 0 and "No problems found." in out
    code, out, _ = run_cli(["diagnose", "-"], stdin=Path(problems[0]).read_bytes())
    assert code == 1 and "checkout" in out


def test_cli_strips_terminal_escapes(tmp_path: Path) -> None:
    p = tmp_path / "events.txt"
    p.write_text("NAMESPACE   LAST SEEN   TYPE      REASON      OBJECT      MESSAGE\n"
                 "x           1m          Warning   BackOff     pod/evil    Back-off restarting \x1b[2J\x1b]0;pwn\x07 failed\n")
    code, out, _ = run_cli(["diagnose", str(p)])
    assert code == 1 and "\x1b" not in out and "\x07" not in out


def test_agent_tool_runs_the_analyzers() -> None:
    from knowbase.diagnose.tool import make_diagnose_tool

    tool = make_diagnose_tool()
    result = tool.run({"kubectl_output": scenario("readiness-probe-failing")["files"]["events.txt"]})
    assert result.ok and "WARNING Pod portal/portal-ui-0: ReadinessProbeFailed" in result.output
    assert tool.run({"kubectl_output": "all good\n"}).output == "No problems found."


def test_old_events_columns_with_an_empty_cell_keep_their_places() -> None:
    text = ("LAST SEEN   FIRST SEEN   COUNT   NAME      KIND   SUBOBJECT   TYPE      REASON             SOURCE"
            "              MESSAGE\n"
            "1m          10m          35      redis-0   Pod                Warning   FailedScheduling   "
            "default-scheduler   0/2 nodes are available: 2 Insufficient memory.\n")
    (ev,) = parse_text(text, source="e.txt").events
    assert (ev.object.kind, ev.object.name, ev.type, ev.reason, ev.count) == ("Pod", "redis-0", "Warning",
                                                                               "FailedScheduling", 35)
    assert ev.message == "0/2 nodes are available: 2 Insufficient memory."


def test_job_whose_pods_are_oomkilled_is_one_oomkilled_finding() -> None:
    job = {"kind": "Job", "metadata": {"name": "agg", "namespace": "etl"},
           "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    pod = {"kind": "Pod", "metadata": {"name": "agg-5kq9z", "namespace": "etl",
                                       "ownerReferences": [{"kind": "Job", "name": "agg", "controller": True}]},
           "status": {"phase": "Failed", "containerStatuses": [
               {"name": "a", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}
    (f,) = analyze(parse_text(json.dumps({"kind": "List", "items": [job, pod]}), source="j.json"))
    assert (f.kind, f.name, f.reason) == ("Job", "agg", "OOMKilled")
    assert any("BackoffLimitExceeded" in e.text for e in f.evidence)


def test_read_texts_checks_every_size_before_parsing_and_names_the_document() -> None:
    from knowbase.diagnose.inputs import read_texts
    from knowbase.errors import InputFileError

    limits = DataLimits(max_bytes=100)
    with pytest.raises(InputFileError, match="big.log: 101 bytes") as err:  # the malformed one first is not parsed
        read_texts([("bad.json", "{]"), ("big.log", "é" * 50 + "x")], limits=limits)
    assert (err.value.detail["reason"], err.value.detail["index"]) == ("size", 1)
    with pytest.raises(InputFileError, match=r"bad.json: line 2 column 1: invalid JSON") as err:
        read_texts([("ok.log", "fine"), ("bad.json", "{\n]")], limits=limits)
    assert (err.value.detail["index"], err.value.detail["line"]) == (1, 2)
    snap = read_texts([("web-0.log", "\ufeffpanic: boom")])
    assert snap.inputs == ["web-0.log"] and snap.logs[0].target == "web-0" and snap.logs[0].lines == ((1, "panic: boom"),)


def test_grouping_many_pods_of_one_owner_is_linear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouping 3,000 crashing Pods of one Deployment compares evidence a bounded number of times
    per Pod (a list scan made it quadratic: a new user's 60 MB dump did not finish in 120 s)."""
    import json as _json

    from knowbase.diagnose import diagnose
    from knowbase.diagnose.types import Evidence

    def pod(i: int) -> dict:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"api-7d9f8b6c5-p{i:05d}", "namespace": "shop",
                             "ownerReferences": [{"kind": "ReplicaSet", "name": "api-7d9f8b6c5", "controller": True}],
                             "labels": {"app": "api", "pod-template-hash": "7d9f8b6c5"}},
                "status": {"phase": "Running", "containerStatuses": [{
                    "name": "api", "image": "shop/api:1", "ready": False, "restartCount": 7,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}}]}}

    dump = tmp_path / "pods.json"
    dump.write_text(_json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod(i) for i in range(3000)]}),
                    encoding="utf-8")
    calls = 0
    original = Evidence.__eq__

    def counting(self: Evidence, other: object) -> bool:
        nonlocal calls
        calls += 1
        return original(self, other)

    monkeypatch.setattr(Evidence, "__eq__", counting)
    result = diagnose([dump])
    assert [f.reason for f in result.findings] == ["CrashLoopBackOff"]
    assert result.findings[0].ref.kind == "Deployment" and len(result.findings[0].related) >= 3000
    assert calls < 20 * 3000  # linear: a list scan would be about 3000 * 3000 / 2


def test_empty_input_is_an_error_not_a_healthy_cluster(tmp_path: Path) -> None:
    """Found by a new user: an empty file (a failed `kubectl ... > dump.json`) said 'No problems found', exit 0."""
    from knowbase.diagnose import diagnose
    from knowbase.diagnose.inputs import EMPTY_INPUT, read_texts
    from knowbase.errors import InputFileError

    empty = tmp_path / "dump.json"
    empty.write_text("  \n", encoding="utf-8")
    result = diagnose([empty])
    assert result.exit_code() == 2 and [e.message for e in result.errors] == [EMPTY_INPUT]
    with pytest.raises(InputFileError, match="empty"):
        read_texts([("e.txt", "")])
