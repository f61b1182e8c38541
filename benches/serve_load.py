"""Load on ``knowbase serve`` next to a plain FastAPI + LangChain retriever app, in one run (issue 15).

Loopback only, bounded in time and count. Two phases, each ``--seconds`` long:

1. **knowbase**: ``--search-clients`` concurrent clients (default 50) each looping
   ``POST /api/kbs/NAME/search`` (k=5) with the questions of ``benches/data/kb_questions.jsonl``,
   plus ``--ask-clients`` (default 4) looping ``POST /api/kbs/NAME/ask`` (non-streamed) through
   the one in-process model and its bounded queue. The server is ``knowbase serve`` in a
   subprocess (its own CPU time and memory).
2. **peer**: the same search load against a plain FastAPI app (uvicorn, one worker, in a
   subprocess) serving a LangChain ``InMemoryVectorStore`` retriever (``as_retriever(k=5)``)
   over the same chunk texts and vectors, queried with the same embedder (so the difference
   is the serving stack and the retrieval, not the model).

Columns: requests, errors (non-2xx other than 503), refused (503 with Retry-After: the model
queue full), p50/p95 latency (ms) and throughput per endpoint, and the server's peak RSS
(``VmHWM``). ``--build`` creates the knowledge base from ``samples/k8s`` first (with
``--embedder``); ``--model fake`` measures the plumbing without a real model.

Example::

    nice -n 19 .venv/bin/python benches/serve_load.py --build --embedder fake --model fake --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from _common import SAMPLE, load_questions, percentile, print_table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start in {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def client_loop(client: httpx.AsyncClient, method: str, url: str, bodies: list[dict[str, Any]], start: int,
                      until: float, out: dict[str, list[Any]]) -> None:
    i = start
    while time.monotonic() < until:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            resp = await client.request(method, url, json=body)
            status: int | str = resp.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        elapsed = (time.perf_counter() - t0) * 1000
        if status == 503:
            out["refused"].append(elapsed)
            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
        elif isinstance(status, int) and 200 <= status < 300:
            out["ok"].append(elapsed)
        else:
            out["errors"].append(status)


async def run_load(base: str, plans: list[tuple[str, str, int, list[dict[str, Any]]]], seconds: float
                   ) -> dict[str, dict[str, list[Any]]]:
    results = {name: {"ok": [], "errors": [], "refused": []} for name, *_ in plans}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(600.0), limits=limits) as client:
        until = time.monotonic() + seconds
        tasks = [client_loop(client, "POST", path, bodies, n * 7, until, results[name])
                 for name, path, clients, bodies in plans for n in range(clients)]
        await asyncio.gather(*tasks)
    return results


PEER_APP = textwrap.dedent('''
    import sys
    from fastapi import FastAPI
    from pydantic import BaseModel
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore
    from knowbase.knowledge.store import KBStore
    from knowbase.models.registry import get_embedder

    path, spec = sys.argv[1], sys.argv[2]
    embedder = get_embedder(spec, tracing=False)

    class KB(Embeddings):
        def embed_documents(self, texts):
            return embedder.embed(texts).tolist()
        def embed_query(self, text):
            return embedder.embed([text], prompt="query")[0].tolist()

    store = KBStore(path, readonly=True)
    rows = store.conn.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
    store.close()
    texts = [t for _, t in rows]
    vs = InMemoryVectorStore(KB())
    vs.add_texts(texts)   # embedded once at start, with the same embedder as knowbase's
    retriever = vs.as_retriever(search_kwargs={"k": 5})
    app = FastAPI()

    class Query(BaseModel):
        query: str
        k: int = 5

    @app.post("/search")
    def search(q: Query):
        return {"hits": [d.page_content for d in retriever.invoke(q.query)]}

    @app.get("/health")
    def health():
        return {"chunks": len(texts)}
''')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", default="k8s-sample")
    ap.add_argument("--home", default=None, help="KNOWBASE_HOME (default: a temporary folder; with --build)")
    ap.add_argument("--build", action="store_true", help="create the knowledge base from samples/k8s first")
    ap.add_argument("--embedder", default=None, help="embedder for --build (default: the configured one)")
    ap.add_argument("--model", default=None, help="chat model the server uses (default: the configured one)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--search-clients", type=int, default=50)
    ap.add_argument("--ask-clients", type=int, default=4)
    ap.add_argument("--queue", type=int, default=8, help="the server's --queue (requests waiting for the model)")
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 600:
        raise SystemExit("--seconds must be between 1 and 600")

    tmp = tempfile.TemporaryDirectory(prefix="kb-serve-load-")
    home = Path(args.home or tmp.name)
    env = {**os.environ, "KNOWBASE_HOME": str(home), "KNOWBASE_TRACING": "0", "HF_HUB_OFFLINE": "1"}
    env.setdefault("KNOWBASE_MODELS_DIR", str(Path.home() / ".knowbase" / "models"))
    knowbase = [sys.executable, "-m", "knowbase"]
    if args.build:
        create = [*knowbase, "kb", "create", args.kb] + (["--embedder", args.embedder] if args.embedder else [])
        subprocess.run(create, env=env, check=False, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([*knowbase, "kb", "ingest", args.kb, str(SAMPLE / "en"), str(SAMPLE / "zh-cn")], env=env,
                       check=True, capture_output=True)
        print(f"built {args.kb} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    kb_path = home / "kb" / f"{args.kb}.db"
    if not kb_path.exists():
        raise SystemExit(f"no knowledge base at {kb_path}: pass --build or --home")

    questions = [q["question"] for q in load_questions()]
    search_bodies = [{"query": q, "k": 5} for q in questions]
    ask_bodies = [{"question": q} for q in questions if q]
    rows, notes = [], []

    port = free_port()
    cmd = [*knowbase, "serve", "--port", str(port), "--kb", args.kb, "--queue", str(args.queue)]
    if args.model:
        cmd += ["--model", args.model]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/api/health", server)
        httpx.post(base + f"/api/kbs/{args.kb}/search", json={"query": "warm up", "k": 5}, timeout=300)
        plans = [("search", f"/api/kbs/{args.kb}/search", args.search_clients, search_bodies)]
        if args.ask_clients:
            plans.append(("ask", f"/api/kbs/{args.kb}/ask", args.ask_clients, ask_bodies))
        res = asyncio.run(run_load(base, plans, args.seconds))
        rss = peak_rss_mb(server.pid)
        for name, *_ in plans:
            r = res[name]
            if r["errors"]:
                from collections import Counter

                notes.append(f"knowbase {name} errors by status or exception: {dict(Counter(r['errors']))}")
            rows.append([f"knowbase {name}", len(r["ok"]) + len(r["errors"]) + len(r["refused"]), len(r["errors"]),
                         len(r["refused"]), percentile(r["ok"], 50), percentile(r["ok"], 95),
                         len(r["ok"]) / args.seconds, rss])
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)

    if not args.no_peer:
        script = home / "peer_app.py"
        script.write_text(PEER_APP)
        spec = subprocess.run([*knowbase, "kb", "stats", args.kb, "--json"], env=env, capture_output=True,
                              text=True, check=True)
        import json

        emb = json.loads(spec.stdout)["embedder"]
        port = free_port()
        peer = subprocess.Popen([sys.executable, "-c",
                                 f"import runpy,sys; sys.argv=['peer', {str(kb_path)!r}, {emb!r}]; "
                                 f"g=runpy.run_path({str(script)!r}); import uvicorn; "
                                 f"uvicorn.run(g['app'], host='127.0.0.1', port={port}, log_level='warning')"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/health", peer, timeout=600)
            httpx.post(base + "/search", json={"query": "warm up"}, timeout=300)
            res = asyncio.run(run_load(base, [("search", "/search", args.search_clients, search_bodies)],
                                       args.seconds))
            r = res["search"]
            if r["errors"]:
                from collections import Counter

                notes.append(f"peer search errors by status or exception: {dict(Counter(r['errors']))}")
            rows.append(["FastAPI + LangChain search", len(r["ok"]) + len(r["errors"]) + len(r["refused"]),
                         len(r["errors"]), len(r["refused"]), percentile(r["ok"], 50), percentile(r["ok"], 95),
                         len(r["ok"]) / args.seconds, peak_rss_mb(peer.pid)])
        finally:
            peer.send_signal(signal.SIGINT)
            peer.wait(timeout=30)
        notes.append("peer: plain FastAPI (sync route, uvicorn, 1 worker) + LangChain InMemoryVectorStore retriever "
                     "(k=5, dense only) over the same chunks, embedded with the same embedder; knowbase search is "
                     "hybrid (BM25 + dense, fused), k=5")
    notes += [f"{args.search_clients} search clients + {args.ask_clients} ask clients for {args.seconds:.0f} s, "
              f"loopback; model {args.model or 'configured default'}; queue {args.queue}",
              "refused = 503 with Retry-After (the in-process model's queue was full; the client waited Retry-After)",
              f"CPU: {os.cpu_count()} cores, shared with other work: figures are noisy; compare rows of one run"]
    print_table("knowbase serve under load", ["endpoint", "requests", "errors", "refused", "p50 ms", "p95 ms",
                                              "req/s", "server peak RSS MiB"], rows, notes=notes, digits=1)
    tmp.cleanup()


if __name__ == "__main__":
    main()
