"""knowbase diagnose --context: the official kubernetes client against a local server replaying
recorded API responses (no cluster is reachable in CI). Only GET list calls may be made."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

kubernetes = pytest.importorskip("kubernetes")

RECORDED = json.loads((Path(__file__).parent / "data" / "k8s_api_responses.json").read_text("utf-8"))


class _Replay(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict]] = []

    def _answer(self) -> None:
        url = urlparse(self.path)
        type(self).requests.append((self.command, url.path, parse_qs(url.query)))
        if self.command != "GET":
            self.send_response(405)
            self.end_headers()
            return
        body = RECORDED.get(url.path)
        if isinstance(body, str):
            body = RECORDED[body]
        if body is None:
            kind = url.path.rstrip("/").rsplit("/", 1)[-1]
            body = {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": []}
        status = body.get("_status", 200)
        data = json.dumps({k: v for k, v in body.items() if k != "_status"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def api_client() -> Iterator[object]:
    _Replay.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{server.server_address[1]}"
    client = kubernetes.client.ApiClient(config)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()


def test_cluster_read_is_list_only_and_analysed(api_client: object) -> None:
    from knowbase.diagnose import diagnose
    from knowbase.diagnose.cluster import KINDS, read_cluster

    snap = read_cluster(api_client=api_client)
    assert snap.inputs == ["cluster:current"]
    assert {m for m, _, _ in _Replay.requests} == {"GET"}
    assert len(_Replay.requests) == len(KINDS)
    assert all(q.get("limit") == ["5000"] for _, _, q in _Replay.requests)
    assert not any("secrets" in p for _, p, _ in _Replay.requests)  # Secrets are never read
    assert [e.message for e in snap.errors] == ["PodDisruptionBudget: HTTP 403 Forbidden (skipped)"]
    d = diagnose(snapshot=snap)
    got = {(f.kind, f.namespace, f.name, f.reason) for f in d.findings}
    assert got == {("Deployment", "shop", "web", "OOMKilled"), ("Node", "", "node-b", "NotReady")}
    oom = next(f for f in d.findings if f.reason == "OOMKilled")
    assert any("BackOff" in e.text and "(x17)" in e.text for e in oom.evidence)
    assert d.exit_code() == 2  # a kind could not be listed: said so, the rest analysed


def test_cluster_namespace_uses_namespaced_lists(api_client: object) -> None:
    from knowbase.diagnose.cluster import read_cluster

    snap = read_cluster(api_client=api_client, namespace="shop", kinds=("Pod", "Node", "Deployment"))
    paths = [p for _, p, _ in _Replay.requests]
    assert paths == ["/api/v1/namespaces/shop/pods", "/api/v1/nodes", "/apis/apps/v1/namespaces/shop/deployments"]
    assert {o.kind for o in snap.objects} == {"Pod", "Node", "Deployment"}


def test_unknown_context_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from knowbase.diagnose.cluster import api_client_for
    from knowbase.errors import UserError

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(UserError, match="cannot use kubeconfig context 'prod'"):
        api_client_for("prod")
