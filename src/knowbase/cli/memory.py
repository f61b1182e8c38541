"""``knowbase memory``: list, show and delete stored conversations (``memory.db``)."""

from __future__ import annotations

import json
import time

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo


def _store(ctx: click.Context):
    from knowbase.memory.store import MemoryStore

    return MemoryStore(settings_from(ctx).home / "memory.db")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@click.group()
def memory() -> None:
    """Conversations remembered by `knowbase chat --session ID`."""


@memory.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List sessions, most recent first."""
    sessions = _store(ctx).sessions()
    if as_json:
        echo(json.dumps([{"id": s.id, "memory_type": s.memory_type, "turns": s.turns, "created": s.created,
                                "updated": s.updated} for s in sessions], ensure_ascii=False))
        return
    if not sessions:
        echo("No sessions.")
        return
    for s in sessions:
        echo(f"{s.id}\t{s.memory_type}\t{s.turns} turn{'s' if s.turns != 1 else ''}\t{_when(s.updated)}")


@memory.command()
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """Show one session: its turns, summary and entity notes."""
    from knowbase.errors import UserError

    store = _store(ctx)
    info = store.get(session_id)
    if info is None:
        raise UserError(f"no session {session_id!r} (see `knowbase memory list`)", session_id=session_id)
    turns = store.turns(session_id)
    if as_json:
        echo(json.dumps({"id": info.id, "memory_type": info.memory_type, "created": info.created,
                               "updated": info.updated, "summary": info.summary, "folded": info.folded,
                               "entities": info.entities,
                               "turns": [{"n": t.n, "user": t.user, "assistant": t.assistant} for t in turns]},
                              ensure_ascii=False))
        return
    echo(f"Session {info.id} ({info.memory_type}, {info.turns} turns, updated {_when(info.updated)})")
    if info.summary:
        echo(f"\nSummary (turns 1-{info.folded}):\n{info.summary}")
    if info.entities:
        echo("\nEntities:")
        for name, facts in info.entities.items():
            echo(f"  {name}: {'; '.join(facts)}")
    for t in turns:
        echo(f"\n[{t.n}] user: {t.user}\n[{t.n}] assistant: {t.assistant}")


@memory.command()
@click.argument("session_id")
@click.pass_context
def delete(ctx: click.Context, session_id: str) -> None:
    """Delete a session and everything remembered in it."""
    from knowbase.errors import UserError

    if not _store(ctx).delete(session_id):
        raise UserError(f"no session {session_id!r}", session_id=session_id)
    echo(f"Deleted session {session_id}.")
