"""``knowbase models``: the backends and embedded models, which are installed, which are defaults."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import console, echo, plain

# backend name -> (library it needs, what it runs)
_BACKEND_NOTES: dict[str, tuple[str | None, str]] = {
    "llamacpp": ("llama_cpp", "in-process GGUF models: embedded names or llamacpp:/path/model.gguf"),
    "openai": ("httpx", "any OpenAI-compatible endpoint: openai:MODEL@BASE_URL"),
    "fake": (None, "scripted replies / hashed vectors, for tests"),
    "sentence-transformers": ("sentence_transformers", "in-process embedders: embedded names or a model folder"),
    "onnx": ("onnxruntime", "ONNX Runtime embedders exported from a sentence-transformers model: NAME[@int8|@fp32]"),
}


def _size(n: int | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return "-"  # pragma: no cover


def describe(settings: Any) -> dict[str, Any]:
    """Everything ``knowbase models`` shows, as one JSON-ready dict."""
    from knowbase.config import ModelSpec
    from knowbase.models.catalog import CATALOG
    from knowbase.models.registry import CHAT_GROUP, EMBED_GROUP, backends

    chat_default = ModelSpec.parse(settings.chat_model)
    embed_default = ModelSpec.parse(settings.embedder)

    def backend_rows(group: str, kind: str) -> list[dict[str, Any]]:
        rows = []
        for name, target in sorted(backends(group).items()):
            module, note = _BACKEND_NOTES.get(name, (None, target))
            rows.append({"name": name, "kind": kind, "available": module is None or importlib.util.find_spec(module) is not None,
                         "description": note})
        return rows

    models = []
    for entry in CATALOG:
        info = entry.describe(settings)
        default = chat_default if entry.kind == "chat" else embed_default
        info["default"] = (default.backend == entry.backend and default.name in (entry.name, *entry.aliases)
                           and not default.base_url)
        models.append(info)
        if entry.backend == "sentence-transformers":
            models += onnx_rows(entry, info, embed_default, settings)
    return {
        "default_chat_model": settings.to_dict()["chat_model"],  # a URL may carry credentials
        "default_embedder": settings.to_dict()["embedder"],
        "models_dir": str(settings.models_dir),
        "backends": backend_rows(CHAT_GROUP, "chat") + backend_rows(EMBED_GROUP, "embedding"),
        "models": models,
    }


def onnx_rows(entry: Any, info: dict[str, Any], default: Any, settings: Any) -> list[dict[str, Any]]:
    """The ONNX Runtime variants of a sentence-transformers catalogue model (int8, fp32):
    usable when the model and ``onnxruntime`` are installed; exported on first use
    (``size`` is the exported file's, once it exists)."""
    import contextlib

    from knowbase.errors import KnowbaseError
    from knowbase.models.onnx_embedder import VARIANTS, plan_export

    runtime = importlib.util.find_spec("onnxruntime") is not None
    plan = None
    if info["installed"]:
        with contextlib.suppress(KnowbaseError, OSError):
            plan = plan_export(entry.path(settings), settings.models_dir)
    rows = []
    for variant in VARIANTS:
        spec = f"onnx:{entry.name}" + ("" if variant == "int8" else f"@{variant}")
        size = None
        if plan is not None and plan.path(variant).is_file():
            size = plan.path(variant).stat().st_size
        rows.append({
            **info, "spec": spec, "backend": "onnx", "size": size, "sha256": None,
            "title": f"{entry.title}, ONNX {variant}", "installed": bool(info["installed"] and runtime),
            "source": f"{entry.source.description}, exported on first use",
            "default": default.backend == "onnx" and default.name in (entry.name, *entry.aliases)
            and (default.base_url or "int8") == variant,
        })
    return rows


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the model backends and the embedded models (installed or not, and the defaults)."""
    info = describe(settings_from(ctx))
    if as_json:
        echo(json.dumps(info, indent=2))
        return
    from rich.table import Table

    out = console()
    table = Table(title="Embedded models", title_justify="left", box=None, pad_edge=False)
    for col in ("model string", "kind", "installed", "default", "size", "licence", "source"):
        table.add_column(col, no_wrap=col != "source")
    for m in info["models"]:
        installed = "yes" if m["installed"] else "no"
        if m.get("assembled") is False and m["installed"]:
            installed = "yes (built on first use)"
        table.add_row(*(plain(v) for v in (m["spec"], m["kind"], installed, "default" if m["default"] else "",
                                           _size(m["size"]), m["licence"], m["source"])))
    out.print(table)
    out.print()
    backends = Table(title="Backends", title_justify="left", box=None, pad_edge=False)
    for col in ("backend", "kind", "available", "use"):
        backends.add_column(col, no_wrap=col != "use")
    for b in info["backends"]:
        backends.add_row(*(plain(v) for v in (b["name"], b["kind"],
                                              "yes" if b["available"] else "no (pip install 'knowbase[local]')",
                                              b["description"])))
    out.print(backends)
    out.print()
    out.print(plain(f"default chat model: {info['default_chat_model']}"))
    out.print(plain(f"default embedder:   {info['default_embedder']}"))
    out.print(plain(f"model files:        {info['models_dir']}"))
