"""``knowbase serve``: the HTTP API (OpenAI-compatible and native) over the knowledge bases."""

from __future__ import annotations

import click

from knowbase.cli.main import settings_from


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. Off loopback, API keys are required (see 'knowbase keys').")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--kb", "kbs", multiple=True, metavar="NAME", help="Serve only this knowledge base (repeatable).")
@click.option("--model", "-m", "models", multiple=True, metavar="SPEC",
              help="Chat model requests may use (repeatable; the first is the default). Default: the configured one.")
@click.option("--queue", "queue_max_waiting", type=click.IntRange(0, 1000), default=8, show_default=True,
              help="Requests that may wait for the in-process model; more get 503 with Retry-After.")
@click.option("--insecure-no-auth", is_flag=True, help="Serve without API keys even on a network interface.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, kbs: tuple[str, ...], models: tuple[str, ...],
          queue_max_waiting: int, insecure_no_auth: bool) -> None:
    """Serve the knowledge bases over HTTP: /v1 (OpenAI-compatible), /api (native), /docs."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:  # the server extra is missing
        raise click.ClickException(f"the server needs the 'server' extra: pip install 'knowbase[server]' ({exc})") \
            from exc
    from knowbase.server.config import ServerConfig
    from knowbase.server.run import serve as run

    if models:
        from knowbase.models.registry import check_chat_spec

        for spec in models:
            check_chat_spec(spec)
    run(settings_from(ctx), host=host, port=port, kbs=kbs, models=models, insecure_no_auth=insecure_no_auth,
        config=ServerConfig(queue_max_waiting=queue_max_waiting))
