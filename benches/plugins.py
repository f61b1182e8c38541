"""Plugins benchmark: route requests over four API plugins (or "none fits"), then answer through them.

Plugins (each an OpenAPI 3 spec; the router sees the spec's ``info.title`` and ``info.description``):
Acme Shop API (``tests/data/shop_openapi.yaml``: orders and catalogue), Calendar, Office devices
and HR leave (``benches/data/plugins/*.yaml``). Requests: ``benches/data/plugin_requests.jsonl``,
36 labelled (7 per plugin, 8 that no plugin serves).

Measured with :class:`knowbase.agents.PluginRouter` ("A) ... B) ... E) none of these", one
letter, grammar-constrained on llama.cpp unless ``--free``):

* routing accuracy over all requests, over in-scope requests, and the "none fits" rate
  (how often the router answered "none"; recall on the 8 none-labelled requests and
  false "none" on in-scope ones);
* task success on the requests with an expected fact (15, read-only): the full run
  (plugin, then operation, arguments, the call against local stubs on 127.0.0.1, the
  phrased answer) succeeds when the answer contains the fact (case-insensitive; ``a|b``
  accepts either form).

Usage::

    KNOWBASE_N_THREADS=1 python benches/plugins.py                 # embedded Qwen, routing + tasks
    python benches/plugins.py --tasks 0                            # routing only
    python benches/plugins.py --model llamacpp:smollm2-135m --limit 3

Peers: LangChain's OpenAPI toolkit and LlamaIndex's ``OpenAPIToolSpec`` are not run here (see
the note printed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import _common  # noqa: E402

REQUESTS = _common.DATA / "plugin_requests.jsonl"
SPECS = {"Acme Shop API": HERE.parent / "tests" / "data" / "shop_openapi.yaml",
         "Calendar": _common.DATA / "plugins" / "calendar.yaml",
         "Office devices": _common.DATA / "plugins" / "devices.yaml",
         "HR leave": _common.DATA / "plugins" / "hr.yaml"}
PEER_NOTE = ("LangChain OpenAPI toolkit / LlamaIndex OpenAPIToolSpec: not run. Neither is installed here "
             "(langchain-community, llama-index-tools-openapi), and neither routes between several APIs: "
             "LangChain's planner/controller agent takes one spec per agent with prompts of several thousand "
             "tokens per step (minutes per request for the 1.5B model on 2 shared cores); OpenAPIToolSpec only "
             "loads a spec for a generic requests tool. A fair peer row needs its own session.")


class OfficeStub(BaseHTTPRequestHandler):
    """Canned answers for the Calendar (/api/events...), HR (/api/leave..., /api/holidays) and
    Office devices (/v2/...) specs. Writes are refused (405): the benchmark is read-only."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        body: Any
        if path == "/api/events/next":
            body = {"title": "Budget review", "start": "Tuesday 2026-12-08T10:00", "attendees": ["Anna", "Omar"]}
        elif path == "/api/events":
            body = [{"title": "Team standup", "start": f"{query.get('from', '2026-12-07')}T09:00"},
                    {"title": "1:1 with Omar", "start": f"{query.get('from', '2026-12-07')}T14:00"}]
        elif path == "/api/leave/balance":
            body = {"vacationDaysLeft": 12, "sickDaysUsed": 3, "year": 2026}
        elif path == "/api/holidays":
            body = [{"date": "2026-10-03", "name": "German Unity Day"}, {"date": "2026-12-25", "name": "Christmas Day"},
                    {"date": "2026-12-26", "name": "Second Day of Christmas"}]
        elif path == "/v2/devices":
            room = query.get("room", "Kepler")
            body = [{"id": f"light-{room.lower()}", "type": "light"},
                    {"id": f"th-{room.lower()}", "type": "thermostat"}]
        elif path.startswith("/v2/devices/") and path.endswith("/state"):
            device = path.split("/")[3]
            body = {"id": device, "on": True, "celsius": 21} if device.startswith("th-") else {"id": device, "on": False}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def load_requests(limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in REQUESTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not limit:
        return rows
    kept: list[dict[str, Any]] = []
    for row in rows:
        if sum(1 for k in kept if k["plugin"] == row["plugin"]) < limit:
            kept.append(row)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="llamacpp:qwen2.5-coder-1.5b")
    parser.add_argument("--limit", type=int, default=None, help="first N requests per plugin (and of 'none')")
    parser.add_argument("--tasks", type=int, default=None, help="full runs on the first N requests with an "
                        "expected fact (default: all of them; 0: routing only)")
    parser.add_argument("--free", action="store_true", help="do not constrain the letter by grammar")
    parser.add_argument("--template", default="agent_plugin_router",
                        help="prompt template of the choice (agent_router: the tool router's)")
    parser.add_argument("--ids", default=None, help="comma-separated request ids (after --limit)")
    parser.add_argument("--out", default=None, help="write per-request rows as JSON here")
    args = parser.parse_args(argv)

    from knowbase.agents import Plugin, PluginRouter
    from knowbase.config import Settings
    from knowbase.models.registry import get_chat_model
    from knowbase.tools.openapi import ApiAuth, OpenAPIToolset
    from shop_stub import TOKEN, ShopHandler
    from stub_http import serve

    requests = load_requests(args.limit)
    if args.ids:
        wanted = {i.strip() for i in args.ids.split(",")}
        requests = [r for r in requests if r["id"] in wanted]
    os.environ["ACME_SHOP_TOKEN"] = TOKEN
    with _common.bench_home() as home, serve(ShopHandler) as shop, serve(OfficeStub) as office:
        bases = {"Acme Shop API": shop + "/v1", "Calendar": office + "/api", "Office devices": office + "/v2",
                 "HR leave": office + "/api"}
        plugins = []
        for name, spec in SPECS.items():
            toolset = OpenAPIToolset.from_source(
                spec, base_url=bases[name], allowed_hosts=["127.0.0.1"], allow_private=True, max_tokens=300,
                auth=ApiAuth.bearer_from_env("ACME_SHOP_TOKEN") if name == "Acme Shop API" else None)
            plugins.append(Plugin.from_toolset(toolset))
        model = get_chat_model(args.model, settings=Settings.load(home, tracing=False), tracing=False)
        router = PluginRouter(model, plugins, constrained=not args.free, template=args.template)
        print(f"model {args.model}, {len(requests)} requests, plugins: "
              + "; ".join(f"{p.name} ({len(p.tools)} tools)" for p in plugins), flush=True)

        rows: list[dict[str, Any]] = []
        for req in requests:
            t0 = time.perf_counter()
            try:
                route = router.route(req["request"])
                got, raw = route.plugin or ("none" if route.index is not None else "unclear"), route.raw
            except Exception as exc:  # a row, not a crash
                got, raw = "error", f"{type(exc).__name__}: {exc}"
            row = {"id": req["id"], "label": req["plugin"], "routed": got, "raw": raw.strip()[:40],
                   "ok": got == req["plugin"], "route_s": round(time.perf_counter() - t0, 2)}
            rows.append(row)
            print(f"  route {req['id']:<7} {'ok ' if row['ok'] else 'BAD'} {got:<15} ({row['route_s']:.1f} s)",
                  flush=True)

        tasks = [r for r in requests if r.get("expect")]
        tasks = tasks[: args.tasks] if args.tasks is not None else tasks
        task_rows: list[dict[str, Any]] = []
        for req in tasks:
            t0 = time.perf_counter()
            try:
                result = router.run(req["request"])
                answer, status, steps = result.answer or "", result.status, len(result.steps)
                tokens = result.usage.total_tokens
            except Exception as exc:
                answer, status, steps, tokens = "", f"crash: {type(exc).__name__}", 0, 0
            ok = any(alt.lower() in answer.lower() for alt in req["expect"].split("|"))
            task_rows.append({"id": req["id"], "ok": ok, "status": status, "steps": steps, "tokens": tokens,
                              "answer": answer, "seconds": round(time.perf_counter() - t0, 2)})
            print(f"  task  {req['id']:<7} {'ok ' if ok else 'BAD'} {status:<12} steps={steps} "
                  f"{task_rows[-1]['seconds']:.1f} s  {answer[:70]!r}", flush=True)

    inscope = [r for r in rows if r["label"] != "none"]
    nones = [r for r in rows if r["label"] == "none"]

    def frac(sel: list[dict[str, Any]], pred: Any) -> str:
        return f"{sum(1 for r in sel if pred(r))}/{len(sel)}" if sel else "-"

    print()
    _common.print_table(
        f"Routing over {len(plugins)} plugins + none ({args.model}, {'free' if args.free else 'grammar'}, "
        f"prompt {args.template})",
        ["router", "accuracy", "in-scope acc.", "none rate", "none recall", "false none", "unclear", "s/request"],
        [["knowbase PluginRouter", frac(rows, lambda r: r["ok"]), frac(inscope, lambda r: r["ok"]),
          frac(rows, lambda r: r["routed"] == "none"), frac(nones, lambda r: r["routed"] == "none"),
          frac(inscope, lambda r: r["routed"] == "none"), frac(rows, lambda r: r["routed"] in ("unclear", "error")),
          sum(r["route_s"] for r in rows) / max(1, len(rows))]],
        notes=["none rate: share of all requests answered 'none of these'; none recall: on the none-labelled "
               "requests; false none: in-scope requests sent to 'none'.", PEER_NOTE])
    for plugin in [*SPECS, "none"]:
        sel = [r for r in rows if r["label"] == plugin]
        wrong = {r["routed"] for r in sel if not r["ok"]}
        print(f"  {plugin:<15} {frac(sel, lambda r: r['ok'])}" + (f"  (wrong: {', '.join(sorted(wrong))})" if wrong
                                                                  else ""))
    if task_rows:
        print()
        _common.print_table(
            "Task success (route, operation, arguments, call on a local stub, answer)",
            ["agent", "success", "steps", "tokens/task", "s/task"],
            [["PluginRouter -> RouterAgent", frac(task_rows, lambda r: r["ok"]),
              sum(r["steps"] for r in task_rows) / len(task_rows),
              sum(r["tokens"] for r in task_rows) / len(task_rows),
              sum(r["seconds"] for r in task_rows) / len(task_rows)]],
            notes=["success: the answer contains the expected fact (case-insensitive; '|' separates accepted forms)."])
    if args.out:
        Path(args.out).write_text(json.dumps({"routing": rows, "tasks": task_rows}, indent=2, ensure_ascii=False),
                                  encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
