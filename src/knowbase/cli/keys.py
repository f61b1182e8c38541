"""``knowbase keys``: API keys for ``knowbase serve`` (create, list, revoke)."""

from __future__ import annotations

import json

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo
from knowbase.server.auth import KeyStore


def _store(ctx: click.Context) -> KeyStore:
    from knowbase.server.db import ServerDB

    return KeyStore(ServerDB(settings_from(ctx).home / "server.db"))


@click.group()
def keys() -> None:
    """API keys for the HTTP server (stored hashed in server.db)."""


@keys.command("create")
@click.option("--kb", "kbs", multiple=True, metavar="NAME", help="Knowledge base the key may use (repeatable; default all).")
@click.option("--scope", type=click.Choice(["ask", "ingest", "admin"]), default="ask", show_default=True,
              help="ask: search, ask, chat; ingest: also upload and remove documents; admin: everything.")
@click.option("--rate", "rate_per_minute", type=click.IntRange(1, 100000), default=60, show_default=True,
              help="Requests per minute.")
@click.option("--tokens", "tokens_per_minute", type=click.IntRange(1), default=None,
              help="Model tokens (prompt + completion) per minute; default no token limit.")
@click.option("--name", default="", help="A label for the key.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def create(ctx: click.Context, kbs: tuple[str, ...], scope: str, rate_per_minute: int,
           tokens_per_minute: int | None, name: str, as_json: bool) -> None:
    """Create a key. It is shown once: store it now."""
    created = _store(ctx).create(scope=scope, kbs=kbs, rate_per_minute=rate_per_minute,
                                 tokens_per_minute=tokens_per_minute, name=name)
    if as_json:
        echo(json.dumps(created.to_dict(), indent=2))
        return
    echo(created.secret)
    where = ", ".join(created.kbs) or "all knowledge bases"
    tokens = f" · {created.tokens_per_minute} tokens/min" if created.tokens_per_minute else ""
    echo(f"id {created.id} · scope {created.scope} · {where} · {created.rate_per_minute}/min{tokens} "
               "(the key is not stored: this is the only time it is shown)", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_keys(ctx: click.Context, as_json: bool) -> None:
    """Keys (never their secrets)."""
    rows = _store(ctx).list()
    if as_json:
        echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "revoked" if r["revoked"] else "active"
        echo(f"{r['id']}  {r['scope']:6}  {','.join(r['kbs']) or '*':20}  {r['rate_per_minute']}/min  {state}"
                   + (f"  {r['name']}" if r["name"] else ""))


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id."""
    if not _store(ctx).revoke(key_id):
        raise click.ClickException(f"no active key {key_id!r}")
    echo(f"revoked {key_id}")
