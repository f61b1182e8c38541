"""``knowbase agent``: run an agent with tools, resume a saved autonomous run, list runs.

Only click is imported at module level; agents, models and knowledge bases load inside
the commands.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo

AGENT_TYPES = ("router", "react", "functions", "auto", "plugins")


def _split(values: tuple[str, ...] | list[str] | str | None) -> list[str]:
    from knowbase.agents.assembly import split_names

    return split_names(values)


def _echo_step(step: Any, indent: str = "") -> None:
    for line in step.summary().splitlines():
        echo(indent + line)


def _read_line(timeout: float) -> str | None:
    """A line from stdin, or None after ``timeout`` seconds (or at end of input)."""
    import select

    try:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
    except (OSError, ValueError):  # stdin is not selectable (Windows, a test runner)
        ready = [sys.stdin]
    if not ready:
        return None
    line = sys.stdin.readline()
    return line.strip() if line else None


def terminal_approver(timeout: float) -> Any:
    """Ask on the terminal before a call that needs approval: y (run), n (refuse), e (edit
    the arguments as JSON). No answer within ``timeout`` seconds, or no terminal, refuses."""
    from knowbase.tools.approval import Decision

    def approve(call: Any) -> Any:
        echo(f"\napproval needed: {call.tool}({json.dumps(call.arguments, ensure_ascii=False)})", err=True)
        if call.action:
            echo(f"  {call.action}", err=True)
        if not sys.stdin.isatty():
            return Decision(False, None, "no terminal to ask on")
        for _ in range(3):
            echo(f"run it? [y/n/e(dit)] (refused after {timeout:g} s) ", err=True, nl=False)
            answer = _read_line(timeout)
            if answer is None:
                return Decision(False, None, f"no answer within {timeout:g} s")
            if answer.lower() in ("y", "yes"):
                return Decision(True)
            if answer.lower() in ("n", "no", ""):
                return Decision(False, None, "declined by the operator")
            if answer.lower() in ("e", "edit"):
                echo("arguments as one JSON object: ", err=True, nl=False)
                text = _read_line(timeout)
                try:
                    edited = json.loads(text or "")
                except json.JSONDecodeError:
                    edited = None
                if isinstance(edited, dict):
                    return Decision(True, edited)
                echo("not a JSON object", err=True)
        return Decision(False, None, "no clear answer")

    return approve


def _assemble(config: dict[str, Any], settings: Any) -> Any:
    from knowbase.agents.assembly import assemble_tools

    timeout = float(config.get("approval_timeout") or 120.0)
    return assemble_tools(config, settings=settings, approver=terminal_approver(timeout))


def _build_tools(config: dict[str, Any], settings: Any) -> tuple[list[Any], list[Any]]:
    """The tools named in ``config`` and the resources to close afterwards."""
    built = _assemble(config, settings)
    return built.tools, built.closing


def _memory(config: dict[str, Any], settings: Any) -> Any:
    from knowbase.knowledge.base import KnowledgeBase

    path = config["memory_path"]
    return KnowledgeBase.create(path, embedder=config.get("memory_embedder") or settings.embedder, settings=settings,
                                exist_ok=True)


def _feedback_prompt(state: Any, step: Any) -> str | None:
    return click.prompt("feedback (Enter continues, 'stop' stops)", default="", show_default=False,
                        err=True) or None


def _finish(result: Any, as_json: bool) -> None:
    if as_json:
        echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        echo("")
        if result.answer is not None:
            echo(result.answer)
        if result.status not in ("finished",):
            echo(f"[{result.status}] {result.message}", err=True)
        tail = f"{len(result.steps)} steps, {result.usage.total_tokens} tokens, {result.elapsed_s:.1f} s"
        if result.retries:
            tail += f", {result.retries} retries"
        if result.run_id:
            tail += f"; run {result.run_id}"
        if result.trace_id:
            tail += f"; trace {result.trace_id}"
        echo(tail, err=True)
    if not result.ok:
        sys.exit(1)


def _run_auto(ctx: click.Context, config: dict[str, Any], *, goal: str | None, run_id: str | None, feedback: bool,
              as_json: bool, model_spec: str | None) -> None:
    from knowbase.agents import AgentStore, AutonomousAgent
    from knowbase.models.registry import get_chat_model

    settings = settings_from(ctx)
    store = AgentStore.default(settings)
    tools, closing = _build_tools(config, settings)
    memory = _memory(config, settings)
    closing.append(memory)
    printer = (lambda step: None) if as_json else _echo_step
    agent = AutonomousAgent(
        get_chat_model(model_spec or config.get("model"), settings=settings), tools, memory=memory, store=store,
        executor=config.get("executor", "react"), max_steps=config.get("max_steps"),
        max_tokens=config.get("max_tokens"), max_seconds=config.get("max_seconds"),
        react_format=config.get("format", "text"), config=config,
        feedback=_feedback_prompt if feedback else None, on_step=printer,
        on_substep=None if as_json else (lambda step: _echo_step(step, "      ")))
    try:
        result = agent.resume(run_id) if goal is None else agent.run(goal, run_id=run_id)
    except KeyboardInterrupt:
        echo(f"\ninterrupted; continue with: knowbase agent resume {run_id}", err=True)
        raise
    finally:
        for item in closing:
            item.close()
        store.close()
    _finish(result, as_json)


@click.group()
def agent() -> None:
    """Agents: let the model use tools (registered tools, see `knowbase tools list`, and OpenAPI specs)."""


@agent.command("run")
@click.argument("goal")
@click.option("--type", "agent_type", type=click.Choice(AGENT_TYPES), default="react", show_default=True,
              help="router: pick one tool; react: Thought/Action loop; functions: native tool calls; "
                   "auto: plan tasks toward a goal (saved, resumable); plugins: pick one plugin (an OpenAPI "
                   "spec or a tool), then one of its operations.")
@click.option("--tools", "tools", multiple=True, help="Comma-separated tool names (default: calculator, "
              "current_time, plus kb_search with --kb, sql_query with --db, http_get with --allow-host).")
@click.option("--kb", "kb", default=None, help="Knowledge base for kb_search.")
@click.option("--db", "db", default=None, help="Database for sql_query (SQLite path or SQLAlchemy URL; read-only).")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Host http_get may fetch (repeatable).")
@click.option("--allow-private", is_flag=True, help="Let http_get reach private/loopback addresses.")
@click.option("--openapi", "openapi", multiple=True, help="OpenAPI 3 spec (file or URL): its operations become tools.")
@click.option("--mcp", "mcp_servers", multiple=True,
              help="MCP server whose tools to use: an http(s) URL or a command line (repeatable).")
@click.option("--operations", default=None, help="Comma-separated operationIds to offer (default: every GET).")
@click.option("--base-url", default=None, help="Server URL of the API (default: the spec's servers[0]).")
@click.option("--api-key-header", default=None, help="Header carrying the API key (with --api-key-env).")
@click.option("--api-key-env", default=None, help="Environment variable holding the API key.")
@click.option("--bearer-env", default=None, help="Environment variable holding a bearer token.")
@click.option("--approval-timeout", type=float, default=120.0, show_default=True,
              help="Seconds to answer an approval question; no answer refuses the call.")
@click.option("--max-steps", type=int, default=None, help="Step budget (default 8; auto 12).")
@click.option("--max-tokens", type=int, default=None, help="Token budget over every call.")
@click.option("--max-seconds", type=float, default=None, help="Wall-clock limit, seconds.")
@click.option("--model", "model_spec", default=None, help="Chat model string (default: the configured one).")
@click.option("--format", "step_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="ReAct step format.")
@click.option("--executor", type=click.Choice(["react", "functions"]), default="react", show_default=True,
              help="Sub-agent of --type auto.")
@click.option("--no-constrain", is_flag=True,
              help="router/react: do not constrain step formats with grammars or JSON Schema.")
@click.option("--memory-embedder", default=None, help="Embedder of the auto agent's memory (default: configured).")
@click.option("--feedback/--no-feedback", default=None,
              help="Ask for feedback between auto steps (default: when stdin is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def run(ctx: click.Context, goal: str, agent_type: str, tools: tuple[str, ...], kb: str | None, db: str | None,
        allow_hosts: tuple[str, ...], allow_private: bool, openapi: tuple[str, ...], mcp_servers: tuple[str, ...],
        operations: str | None,
        base_url: str | None, api_key_header: str | None, api_key_env: str | None, bearer_env: str | None,
        approval_timeout: float, max_steps: int | None, max_tokens: int | None,
        max_seconds: float | None, model_spec: str | None, step_format: str, executor: str, no_constrain: bool,
        memory_embedder: str | None, feedback: bool | None, as_json: bool) -> None:
    """Run an agent on GOAL, printing each step as it happens."""
    settings = settings_from(ctx)
    config: dict[str, Any] = {"type": agent_type, "tools": _split(tools), "kb": kb, "db": db, "allowed_hosts": list(allow_hosts),
                              "allow_private": allow_private, "model": model_spec or settings.chat_model,
                              "max_steps": max_steps, "max_tokens": max_tokens, "max_seconds": max_seconds,
                              "format": step_format, "executor": executor, "memory_embedder": memory_embedder,
                              "openapi": list(openapi), "mcp": list(mcp_servers), "operations": _split(operations), "base_url": base_url,
                              "api_key_header": api_key_header, "api_key_env": api_key_env, "bearer_env": bearer_env,
                              "approval_timeout": approval_timeout}
    if agent_type == "auto":
        from knowbase.tracing.context import new_id

        run_id = new_id()
        config["memory_path"] = str(settings.home / "agents" / f"{run_id}.db")
        if not as_json:
            echo(f"run {run_id}", err=True)
        ask = sys.stdin.isatty() if feedback is None else feedback
        _run_auto(ctx, config, goal=goal, run_id=run_id, feedback=ask and not as_json, as_json=as_json,
                  model_spec=None)
        return
    from knowbase.agents import FunctionCallingAgent, PluginRouter, ReActAgent, RouterAgent
    from knowbase.models.registry import get_chat_model

    built = _assemble(config, settings)
    tool_list, closing = built.tools, built.closing
    model = get_chat_model(config["model"], settings=settings)
    printer = None if as_json else _echo_step
    try:
        if agent_type == "plugins":
            runner: Any = PluginRouter(model, built.plugins(), constrained=not no_constrain, max_tokens=max_tokens,
                                       max_seconds=max_seconds, on_step=printer)
        elif agent_type == "router":
            runner = RouterAgent(model, tool_list, constrained=not no_constrain, max_tokens=max_tokens,
                                      max_seconds=max_seconds, on_step=printer)
        elif agent_type == "functions":
            runner = FunctionCallingAgent(model, tool_list, max_steps=max_steps, max_tokens=max_tokens,
                                          max_seconds=max_seconds, on_step=printer)
        else:
            runner = ReActAgent(model, tool_list, format=step_format, constrained=not no_constrain,
                                max_steps=max_steps, max_tokens=max_tokens, max_seconds=max_seconds, on_step=printer)
        result = runner.run(goal)
    finally:
        for item in closing:
            item.close()
    _finish(result, as_json)


@agent.command("resume")
@click.argument("run_id")
@click.option("--model", "model_spec", default=None, help="Use another chat model than the run's.")
@click.option("--max-steps", type=int, default=None, help="A new step budget (total, including steps done).")
@click.option("--max-tokens", type=int, default=None, help="A new token budget (total).")
@click.option("--max-seconds", type=float, default=None, help="A new wall-clock limit (total).")
@click.option("--feedback/--no-feedback", default=None, help="Ask for feedback between steps.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def resume(ctx: click.Context, run_id: str, model_spec: str | None, max_steps: int | None, max_tokens: int | None,
           max_seconds: float | None, feedback: bool | None, as_json: bool) -> None:
    """Continue the saved autonomous run RUN_ID (an id prefix is enough)."""
    from knowbase.agents import AgentStore

    settings = settings_from(ctx)
    store = AgentStore.default(settings)
    try:
        state = store.load(run_id)
    finally:
        store.close()
    config = dict(state.config)
    for key, value in (("max_steps", max_steps), ("max_tokens", max_tokens), ("max_seconds", max_seconds)):
        if value is not None:
            config[key] = value
    config.setdefault("memory_path", str(settings.home / "agents" / f"{state.id}.db"))
    if not as_json:
        echo(f"run {state.id}: {state.goal} (step {state.step}, {state.status})", err=True)
        for line in state.log:
            echo("  " + line, err=True)
    ask = sys.stdin.isatty() if feedback is None else feedback
    _run_auto(ctx, config, goal=None, run_id=state.id, feedback=ask and not as_json, as_json=as_json,
              model_spec=model_spec)


@agent.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List saved autonomous runs, newest first."""
    import datetime as dt

    from knowbase.agents import AgentStore

    store = AgentStore.default(settings_from(ctx))
    try:
        rows = store.list(limit=limit)
    finally:
        store.close()
    if as_json:
        echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        echo("no saved agent runs")
        return
    for r in rows:
        when = dt.datetime.fromtimestamp(r["updated"]).strftime("%Y-%m-%d %H:%M")
        goal = r["goal"] if len(r["goal"]) <= 60 else r["goal"][:57] + "..."
        echo(f"{r['id']}  {when}  {r['status']:<12} step {r['step']:<3} {goal}")
