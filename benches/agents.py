"""Agents benchmark: router, ReAct and function calling side by side on tasks with known answers.

Tasks: ``benches/data/agent_tasks.jsonl`` (30: 10 arithmetic, 10 lookups in the Kubernetes
sample knowledge base, 10 lookup-then-calculate). A task succeeds when the agent's final
answer contains the expected number. Reported per agent configuration: success rate
(overall and per kind), mean steps (transcript entries), the fraction of model replies
that did not parse and were sent back (``retry/call``), seconds and tokens per task.
Grammar-constrained and free variants of the same agent run in the same table, so the
effect of the constraint on parse retries is read off directly.

Usage::

    python benches/agents.py --limit 1                       # 1 task per kind, default configs
    python benches/agents.py --configs react-text,react-text-free --limit 3
    python benches/agents.py --model llamacpp:smollm2-135m --limit 2 --out /tmp/agents.json

``--limit N`` takes the first N tasks of each kind (3N tasks). The knowledge base is built
once in a temporary home from ``samples/k8s/en`` (fake embedder by default, so BM25
carries hybrid search; ``--embedder sentence-transformers:all-minilm-l6-v2`` for MiniLM).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

TASKS = ROOT / "benches" / "data" / "agent_tasks.jsonl"
KINDS = ("arithmetic", "kb", "multi")

CONFIGS: dict[str, tuple[str, str]] = {
    # name: (agent, constraint)
    "router": ("router", "grammar"),
    "router-free": ("router", "none"),
    "react-text": ("react text", "grammar"),
    "react-text-free": ("react text", "none"),
    "react-json": ("react json", "json schema"),
    "react-json-free": ("react json", "none"),
    # functions: the backend constrains the call format (llama.cpp grammar / OpenAI tools);
    # functions-req: the first turn must call a tool (tool_choice="required")
    "functions": ("functions", "backend"),
    "functions-req": ("functions+req", "backend"),
}
DEFAULT_CONFIGS = "router,react-text,react-text-free,react-json,functions,functions-req"


class CountingBackend:
    """Wraps a chat backend and counts its calls (the ChatModel stays the same otherwise)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.backend_name = inner.backend_name
        self.model_name = inner.model_name
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def execute(self, messages: Any, options: Any) -> Any:
        self.calls += 1
        return self.inner.execute(messages, options)


def has_number(text: str | None, expected: str) -> bool:
    number = expected.rstrip("%")
    return bool(text) and re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text.replace(",", "")) is not None


def load_tasks(limit: int | None) -> list[dict[str, Any]]:
    tasks = [json.loads(line) for line in TASKS.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit is None:
        return tasks
    return [t for kind in KINDS for t in [x for x in tasks if x["kind"] == kind][:limit]]


def build_agent(config: str, model: Any, tools: list[Any]) -> Callable[[str], Any]:
    from knowbase.agents import FunctionCallingAgent, ReActAgent, RouterAgent

    if config.startswith("router"):
        return RouterAgent(model, tools, constrained=config == "router", arg_max_tokens=48, answer_max_tokens=48).run
    if config.startswith("react"):
        fmt = "json" if "json" in config else "text"
        return ReActAgent(model, tools, format=fmt, constrained=not config.endswith("-free"), max_steps=4,
                          step_max_tokens=80).run
    return FunctionCallingAgent(model, tools, max_steps=4, step_max_tokens=64,
                                require_tool=config == "functions-req").run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N tasks of each kind (default: all 30)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--model", default="llamacpp:qwen2.5-coder-1.5b")
    parser.add_argument("--embedder", default="fake", help="embedder of the k8s knowledge base")
    parser.add_argument("--ids", default=None, help="comma-separated task ids to run (after --limit)")
    parser.add_argument("--out", default=None, help="write per-task results as JSON here")
    args = parser.parse_args(argv)

    from knowbase.agents.builtin import calculator, make_kb_search
    from knowbase.agents.tools import Tool
    from knowbase.config import Settings
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel
    from knowbase.models.registry import get_chat_model

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs: {unknown}")
    tasks = load_tasks(args.limit)
    if args.ids:
        wanted = {i.strip() for i in args.ids.split(",")}
        tasks = [t for t in tasks if t["id"] in wanted]
    home = Path(tempfile.mkdtemp(prefix="kb-agents-bench-"))
    settings = Settings.load(home, tracing=False)
    t0 = time.perf_counter()
    kb = KnowledgeBase.create("k8s", embedder=args.embedder, settings=settings)
    report = kb.ingest([ROOT / "samples" / "k8s" / "en"])
    print(f"knowledge base: samples/k8s/en, {report.chunks} chunks, embedder {args.embedder}, "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    tools = [Tool.from_function(calculator), make_kb_search(kb, k=2, max_chars=300)]
    base = get_chat_model(args.model, settings=settings, tracing=False)
    counter = CountingBackend(base.backend)
    model = ChatModel(counter)

    rows: list[dict[str, Any]] = []
    for config in configs:
        run = build_agent(config, model, tools)
        for task in tasks:
            before = counter.calls
            start = time.perf_counter()
            try:
                result = run(task["question"])
                answer, status, steps, retries = result.answer, result.status, len(result.steps), result.retries
                tokens = result.usage.total_tokens
            except Exception as exc:  # a benchmark row, not a crash
                answer, status, steps, retries, tokens = None, f"crash: {type(exc).__name__}: {exc}", 0, 0, 0
            row = {"config": config, "id": task["id"], "kind": task["kind"], "expected": task["answer"],
                   "answer": answer, "status": status, "ok": has_number(answer, task["answer"]), "steps": steps,
                   "retries": retries, "calls": counter.calls - before, "tokens": tokens,
                   "seconds": round(time.perf_counter() - start, 2)}
            rows.append(row)
            print(f"  {config:<16} {task['id']} {'ok ' if row['ok'] else 'BAD'} {status:<12} steps={steps} "
                  f"retries={retries} calls={row['calls']} {row['seconds']:.1f}s  {str(answer)[:60]!r}", flush=True)
    kb.close()

    print()
    print(f"model: {args.model}   tasks: {len(tasks)} ({'first ' + str(args.limit) + ' per kind' if args.limit else 'all'})"
          f"   kb: samples/k8s/en ({args.embedder} embedder, hybrid search)")
    header = f"{'agent':<13} {'constraint':<12} {'success':>8} {'arith':>6} {'kb':>6} {'multi':>6} " \
             f"{'steps':>6} {'retry/call':>10} {'s/task':>7} {'tok/task':>9}"
    print(header)
    print("-" * len(header))
    for config in configs:
        mine = [r for r in rows if r["config"] == config]
        if not mine:
            continue
        agent, constraint = CONFIGS[config]

        def rate(kind: str | None, mine: list[dict] = mine) -> str:
            sel = [r for r in mine if kind is None or r["kind"] == kind]
            return f"{sum(r['ok'] for r in sel)}/{len(sel)}" if sel else "-"

        calls = sum(r["calls"] for r in mine)
        print(f"{agent:<13} {constraint:<12} {rate(None):>8} {rate('arithmetic'):>6} {rate('kb'):>6} "
              f"{rate('multi'):>6} {sum(r['steps'] for r in mine) / len(mine):>6.2f} "
              f"{(sum(r['retries'] for r in mine) / calls if calls else 0):>10.2f} "
              f"{sum(r['seconds'] for r in mine) / len(mine):>7.1f} {sum(r['tokens'] for r in mine) / len(mine):>9.0f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
