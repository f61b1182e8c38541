"""The native HTTP API against a real uvicorn server: knowledge bases, search, ask (SSE),
documents, uploads and ingest jobs, traces, feedback; keys, scopes and rate limits; bad
requests (each a clear 4xx JSON error, never a 500)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from knowbase.config import Settings  # noqa: E402
from knowbase.knowledge.base import KnowledgeBase  # noqa: E402
from knowbase.server import ServerConfig, create_app  # noqa: E402
from knowbase.server.auth import KeyStore  # noqa: E402
from knowbase.server.config import check_bind  # noqa: E402
from knowbase.server.db import ServerDB  # noqa: E402
from server_helpers import ANSWER, QUESTION, handbook_settings, running  # noqa: E402


@pytest.fixture
def settings(knowbase_home: Path, tmp_path: Path) -> Settings:
    s = handbook_settings(tmp_path)
    with KnowledgeBase.create("other", settings=s) as kb:
        kb.add_texts(["The cafeteria serves lunch from noon."])
    return s


def _client(settings: Settings, **config: Any):
    app = create_app(settings, ServerConfig(**config))
    return running(app)


@pytest.fixture
def api(settings: Settings):
    with _client(settings, max_body_bytes=2_000_000, max_upload_bytes=100_000, max_upload_files=3) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def sse_events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        event, data = "message", []
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((event, json.loads("\n".join(data))))
    return out


def wait_job(api: Any, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job = api.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


# --- knowledge bases, search, ask ------------------------------------------------------------
def test_kb_list_create_stats_drop(api: Any) -> None:
    assert [k["name"] for k in api.get("/api/kbs").json()["data"]] == ["handbook", "other"]
    made = api.post("/api/kbs", json={"name": "notes"})
    assert made.status_code == 201 and made.json()["name"] == "notes" and made.json()["chunks"] == 0
    assert api.post("/api/kbs", json={"name": "notes"}).status_code == 409
    stats = api.get("/api/kbs/handbook").json()
    assert stats["documents"] == 1 and stats["embedder"] == "fake:hash-64" and "path" not in stats
    assert api.delete("/api/kbs/notes").json() == {"dropped": "notes"}
    assert api.get("/api/kbs/notes").status_code == 404
    assert [k["name"] for k in api.get("/api/kbs").json()["data"]] == ["handbook", "other"]


def test_search_with_k(api: Any) -> None:
    got = api.post("/api/kbs/handbook/search", json={"query": "paid leave days", "k": 1}).json()
    [hit] = got["hits"]
    assert hit["section"] == ["Leave"] and "25 days" in hit["text"] and hit["score"] > 0


def test_ask_json_and_sse_events_in_order(api: Any) -> None:
    answer = api.post("/api/kbs/handbook/ask", json={"question": QUESTION}).json()
    assert answer["answer"] == ANSWER and answer["citations"][0]["n"] == 1
    resp = api.post("/api/kbs/handbook/ask", json={"question": QUESTION, "stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and set(kinds[1:-1]) == {"delta"}
    assert events[0][1]["passages"][0]["n"] == 1 and events[0][1]["abstained"] is False
    assert "".join(d["text"] for e, d in events if e == "delta") == ANSWER
    final = events[-1][1]
    assert final["answer"] == ANSWER and final["revised"] is False
    assert [c["section"] for c in final["citations"]] == [["Leave"]]


def test_extractive_ask_needs_no_model(api: Any) -> None:
    answer = api.post("/api/kbs/handbook/ask", json={"question": QUESTION, "extractive": True}).json()
    assert answer["extractive"] is True and "25 days" in answer["answer"] and answer["citations"]


# --- documents and uploads --------------------------------------------------------------------
def test_upload_ingests_in_background_and_documents_can_be_removed(api: Any) -> None:
    files = [("files", ("parking.md", b"# Parking\n\nThe car park opens at 6 am for staff with a badge.\n",
                        "text/markdown")),
             ("files", ("faq.txt", b"Lunch vouchers are handed out on Mondays.\n", "text/plain"))]
    resp = api.post("/api/kbs/handbook/documents", files=files)
    assert resp.status_code == 202, resp.text
    job = wait_job(api, resp.json()["id"])
    assert job["status"] == "done" and job["report"]["failed"] == []
    assert sorted(Path(p).name for p in job["report"]["added"]) == ["faq.txt", "parking.md"]
    events = sse_events(api.get(f"/api/jobs/{job['id']}/events").text)
    assert events[-1][0] == "done" and [e for e, _ in events].count("progress") >= 2
    hits = api.post("/api/kbs/handbook/search", json={"query": "car park badge", "k": 1}).json()["hits"]
    assert hits[0]["path"].endswith("parking.md")
    docs = api.get("/api/kbs/handbook/documents").json()["data"]
    assert len(docs) == 3
    parking = next(d for d in docs if d["path"].endswith("parking.md"))
    assert api.delete(f"/api/kbs/handbook/documents/{parking['id']}").json()["removed"]["id"] == parking["id"]
    assert len(api.get("/api/kbs/handbook/documents").json()["data"]) == 2
    assert api.delete(f"/api/kbs/handbook/documents/{parking['id']}").status_code == 404


@pytest.mark.parametrize("name", ["../evil.md", "..\\evil.md", "/etc/passwd.md", "a/b.md", ".hidden.md",
                                  "x\u202egnp.md", "a..b.md", "C:evil.md"])
def test_upload_refuses_path_tricks(api: Any, name: str, settings: Settings) -> None:
    resp = api.post("/api/kbs/handbook/documents", files=[("files", (name, b"hello world\n", "text/plain"))])
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"]
    assert not (settings.home / "evil.md").exists() and not (settings.home / "uploads" / "evil.md").exists()


def test_upload_type_by_content_and_caps(api: Any) -> None:
    def post(*files: tuple[str, bytes]) -> Any:
        return api.post("/api/kbs/handbook/documents", files=[("files", (n, d, "application/octet-stream"))
                                                               for n, d in files])

    pdf_named_md = post(("notes.md", b"%PDF-1.7\n..."))
    assert pdf_named_md.status_code == 415 and "content is pdf" in pdf_named_md.json()["error"]["message"]
    assert post(("notes.txt", b"\x00\x01\x02binary")).status_code == 415
    assert post(("tool.exe", b"MZ\x90\x00")).status_code == 415
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.txt", "not a docx")
    assert post(("report.docx", buf.getvalue())).status_code == 415
    big = post(("big.txt", b"a" * 100_001))
    assert big.status_code == 413 and "big.txt" in big.json()["error"]["message"]
    many = post(*[(f"f{i}.txt", b"hi") for i in range(4)])
    assert many.status_code == 400 and "form" in many.json()["error"]["message"]
    assert api.post("/api/kbs/handbook/documents", json={"files": []}).status_code == 415


# --- traces and feedback ----------------------------------------------------------------------
def test_feedback_on_a_trace_and_traces(api: Any) -> None:
    answer = api.post("/api/kbs/handbook/ask", json={"question": QUESTION}).json()
    trace_id = answer["trace_id"]
    stored = api.post("/api/feedback", json={"trace_id": trace_id, "rating": "down", "comment": "too short",
                                             "kb": "handbook"})
    assert stored.status_code == 201 and stored.json()["rating"] == "down"
    trace = api.get(f"/api/traces/{trace_id}").json()
    assert any(s["name"] == "kb.ask" for s in trace["spans"])
    assert [c["model"] for c in trace["calls"] if c["kind"] == "chat"] == ["fake:fixed"]
    assert [c["output"] for c in trace["calls"] if c["kind"] == "chat"] == [ANSWER]
    assert trace["feedback"][0]["comment"] == "too short"
    assert api.get("/api/feedback").json()["data"][0]["trace_id"] == trace_id
    assert api.post("/api/feedback", json={"trace_id": trace_id, "rating": "meh"}).status_code == 400
    assert api.get("/api/traces/nope").status_code == 404


# --- bad requests: clear 4xx JSON, never a 500 --------------------------------------------------
def test_bad_requests_are_clear_4xx(api: Any) -> None:
    def check(resp: Any, status: int, words: str) -> None:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert words in body["error"]["message"], body
        assert "Traceback" not in resp.text

    headers = {"content-type": "application/json"}
    check(api.post("/v1/chat/completions", content=b'{"model": "kb:handbook", "messages": [', headers=headers),
          400, "malformed JSON")
    check(api.post("/api/kbs/handbook/search", content=b"not json", headers=headers), 400, "malformed JSON")
    check(api.post("/v1/chat/completions", json={"model": "kb:handbook", "messages": "hi"}), 400, "messages")
    check(api.post("/v1/chat/completions", json={"model": "kb:handbook", "messages": [{"role": "user",
          "content": "hi"}], "stream": "yes"}), 400, "stream")
    check(api.post("/api/kbs/handbook/search", json={"query": "x", "k": "many"}), 400, "k")
    check(api.post("/api/kbs/handbook/search", json={"query": "x", "k": 10_000}), 400, "k")
    check(api.post("/api/kbs/handbook/search", json={"query": "x", "bogus": 1}), 400, "bogus")
    check(api.post("/api/kbs/handbook/ask", content=b"x" * 2_000_001, headers=headers), 413, "larger than")
    chunked = (b"x" * 100_000 for _ in range(30))  # no Content-Length: counted as it streams in
    check(api.post("/api/kbs/handbook/search", content=chunked, headers=headers), 413, "larger than")
    check(api.post("/api/kbs/handbook/search", content=b"[" * 100_000 + b"]" * 100_000, headers=headers), 400,
          "parsing the body")
    check(api.post("/api/kbs/handbook/search", content=b"[]", headers=headers), 400, "dictionary")
    check(api.post("/api/kbs/handbook/search", json={"query": "x", "filter": {"bogus": 1}}), 400, "unknown filter")
    check(api.post("/api/kbs/nope/search", json={"query": "x"}), 404, "nope")
    check(api.post("/api/kbs/..%2F..%2Fetc/search", json={"query": "x"}), 404, "Not Found")  # no such route
    check(api.post("/api/kbs/..etc/search", json={"query": "x"}), 400, "invalid knowledge base name")
    check(api.get("/api/kbs/bad%20name"), 400, "invalid knowledge base name")
    check(api.post("/v1/chat/completions", json={"model": "kb:handbook", "messages": [{"role": "system",
          "content": "only a system message"}]}), 400, "no user message")
    check(api.post("/v1/embeddings", json={"model": "kb:handbook", "input": []}), 400, "1 to 256")
    check(api.post("/v1/embeddings", json={"model": "onnx:/etc/passwd", "input": "x"}), 404, "not served")
    check(api.get("/api/jobs/job_nope"), 404, "no job")
    check(api.get("/no/such/route"), 404, "Not Found")


# --- keys, scopes, rate limits -------------------------------------------------------------------
def test_keys_scopes_kbs_and_rate_limit(settings: Settings) -> None:
    store = KeyStore(ServerDB(settings.home / "server.db"))
    asker = store.create(scope="ask", kbs=["handbook"], rate_per_minute=4)
    admin = store.create(scope="admin", rate_per_minute=100)
    assert asker.secret.startswith("kb_") and len(asker.secret) > 40
    raw = (settings.home / "server.db").read_bytes()
    assert asker.secret.encode() not in raw  # only the hash is stored
    with _client(settings, require_keys=True) as url, httpx.Client(base_url=url, timeout=30) as c:
        missing = c.get("/v1/models")
        assert missing.status_code == 401 and "API key is required" in missing.json()["error"]["message"]
        wrong = c.get("/v1/models", headers={"Authorization": "Bearer kb_wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
        h = {"Authorization": f"Bearer {asker.secret}"}
        ids = [m["id"] for m in c.get("/v1/models", headers=h).json()["data"]]
        assert ids == [f"fake:{ANSWER}", "kb:handbook"]  # not kb:other
        other = c.post("/api/kbs/other/search", json={"query": "lunch"}, headers=h)
        assert other.status_code == 403 and "other" in other.json()["error"]["message"]
        upload = c.post("/api/kbs/handbook/documents", headers=h, files=[("files", ("a.txt", b"hi", "text/plain"))])
        assert upload.status_code == 403 and "'ingest' is needed" in upload.json()["error"]["message"]
        assert c.post("/api/kbs/handbook/search", json={"query": "leave"}, headers=h).status_code == 200
        limited = c.get("/api/kbs", headers=h)  # the 5th request within a minute
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        ha = {"X-API-Key": admin.secret}
        assert c.get("/api/kbs", headers=ha).status_code == 200
        assert c.get("/api/traces", headers=ha).status_code == 200
        assert store.revoke(admin.id)
        assert c.get("/api/kbs", headers=ha).status_code == 401
        assert c.get("/api/health").status_code == 200  # health needs no key


def test_bind_rules() -> None:
    from knowbase.errors import ConfigError

    assert check_bind("127.0.0.1", keys=0, insecure_no_auth=False) is False
    assert check_bind("::1", keys=2, insecure_no_auth=False) is True
    assert check_bind("0.0.0.0", keys=1, insecure_no_auth=False) is True
    assert check_bind("0.0.0.0", keys=0, insecure_no_auth=True) is False
    with pytest.raises(ConfigError, match="--insecure-no-auth"):
        check_bind("0.0.0.0", keys=0, insecure_no_auth=False)


def test_openapi_docs_are_served(api: Any) -> None:
    spec = api.get("/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"] and "/api/kbs/{name}/ask" in spec["paths"]
    assert api.get("/docs").status_code == 200


def test_web_page_is_served_offline_and_renders_text_inertly(api: Any) -> None:
    from knowbase.server import app as app_module

    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text and "script-src 'self'" in page.text
    static = Path(app_module.__file__).parent / "static"
    for f in static.iterdir():
        text = f.read_text(encoding="utf-8").replace('"http://www.w3.org/2000/svg"', "")  # a namespace, not a load
        assert "http://" not in text and "https://" not in text, f"{f.name} loads something from the network"
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{f.name} uses {sink}"
        assert api.get(f"/static/{f.name}").status_code == 200


def test_concurrent_requests_share_the_knowledge_base_safely(api: Any) -> None:
    """Many threads at once (one SQLite connection serves one thread at a time: the server
    leases a pooled knowledge base per request)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        if i % 5 == 0:
            return int(api.post("/api/kbs/handbook/ask", json={"question": QUESTION}).status_code)
        return int(api.post("/api/kbs/handbook/search", json={"query": f"paid leave {i}", "k": 2}).status_code)

    with ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(one, range(120)))
    assert statuses.count(200) + statuses.count(503) == 120 and statuses.count(200) >= 96


def test_kb_pool_never_hands_one_instance_to_two_threads() -> None:
    import threading

    from knowbase.server.kbpool import KBPool

    class Fake:
        closed = False

        def close(self) -> None:
            self.closed = True

    opened: list[Fake] = []

    def opener() -> Any:
        opened.append(Fake())
        return opened[-1]

    pool = KBPool(opener, size=3)
    in_use: set[int] = set()
    clash = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            with pool.lease() as base:
                with lock:
                    if id(base) in in_use:
                        clash.append(base)
                    in_use.add(id(base))
                time.sleep(0.0005)
                with lock:
                    in_use.discard(id(base))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clash == [] and 1 <= len(opened) <= 3
    pool.close()
    assert all(f.closed for f in opened)


def test_tokens_per_minute_limit(settings: Settings) -> None:
    from knowbase.server.auth import RateLimitedError, RateLimiter

    limiter = RateLimiter()
    limiter.check("k", 100, tokens_limit=50, now=0.0)
    limiter.add_tokens("k", 60, now=1.0)
    with pytest.raises(RateLimitedError, match="token limit of 50") as err:
        limiter.check("k", 100, tokens_limit=50, now=30.0)
    assert err.value.retry_after == 31  # the tokens leave the window at 61 s
    limiter.check("k", 100, tokens_limit=50, now=61.5)

    key = KeyStore(ServerDB(settings.home / "server.db")).create(scope="ask", tokens_per_minute=20)
    with _client(settings, require_keys=True) as url, httpx.Client(base_url=url, timeout=30) as c:
        h = {"Authorization": f"Bearer {key.secret}"}
        first = c.post("/api/kbs/handbook/ask", json={"question": QUESTION}, headers=h)
        assert first.status_code == 200 and first.json()["usage"]["prompt_tokens"] > 20
        assert c.post("/api/kbs/handbook/search", json={"query": "leave"}, headers=h).status_code == 429


def test_uploads_saved_before_a_stop_are_ingested_at_start(settings: Settings) -> None:
    """A server killed after saving an upload but before ingesting it loses nothing: the next
    start ingests the saved copies (already ingested ones are skipped)."""
    folder = settings.home / "uploads" / "handbook"
    folder.mkdir(parents=True)
    (folder / "garden.md").write_text("# Garden\n\nThe roof garden is open to staff on Fridays.\n", encoding="utf-8")
    with _client(settings) as url, httpx.Client(base_url=url, timeout=30) as c:
        [job] = c.get("/api/jobs").json()["data"]
        assert job["files"] == ["garden.md"]
        assert wait_job(c, job["id"])["report"]["added"] == [str(folder / "garden.md")]
        hits = c.post("/api/kbs/handbook/search", json={"query": "roof garden Fridays", "k": 1}).json()["hits"]
        assert hits[0]["path"].endswith("garden.md")
        doc = next(d for d in c.get("/api/kbs/handbook/documents").json()["data"] if d["path"].endswith("garden.md"))
        assert c.delete(f"/api/kbs/handbook/documents/{doc['id']}").status_code == 200
        assert not (folder / "garden.md").exists()  # the server's copy goes with the document
    with _client(settings) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/api/jobs").json()["data"] == []  # nothing left to resume


def test_metrics_per_model_and_knowledge_base(api: Any) -> None:
    answered = api.post("/api/kbs/handbook/ask", json={"question": QUESTION}).json()
    abstained = api.post("/api/kbs/handbook/ask", json={"question": "Which GPU does the cluster use?"}).json()
    assert abstained["abstained"] is True
    api.post("/api/feedback", json={"trace_id": answered["trace_id"], "rating": "up"})
    api.post("/api/feedback", json={"trace_id": abstained["trace_id"], "rating": "down", "comment": "no answer"})
    got = api.get("/api/metrics", params={"hours": 1, "bucket_minutes": 60}).json()
    [kb] = got["kbs"]
    assert (kb["kb"], kb["asks"], kb["abstained"], kb["errors"], kb["feedback_up"], kb["feedback_down"]) == \
        ("handbook", 2, 1, 0, 1, 1)
    assert kb["p50_ms"] > 0 and kb["p95_ms"] >= kb["p50_ms"]
    [model] = got["models"]  # the abstention needed no model call
    assert (model["model"], model["calls"], model["errors"]) == ("fake:fixed", 1, 0)
    assert model["prompt_tokens"] == answered["usage"]["prompt_tokens"]
    assert api.get("/api/metrics", params={"hours": -1}).status_code == 400


def test_nearest_rank_percentiles() -> None:
    from knowbase.server.monitoring import nearest_rank

    assert nearest_rank([], 50) is None
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert nearest_rank([float(i) for i in range(1, 21)], 95) == 19.0
