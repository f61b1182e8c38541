"""``knowbase demo``: the first command of the README, offline and with no key.

Creates (or reuses, incrementally) the knowledge base ``k8s-sample`` from the bundled
Kubernetes sample (``samples/k8s``: English pages and their Chinese translations,
CC BY 4.0), ingests it with the embedded all-MiniLM-L6-v2, then answers one English and
one Chinese question with the embedded Qwen2.5-Coder-1.5B, with citations, printing the
time to first source and to first answer token.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo
from knowbase.knowledge.sample import SAMPLE_KB as DEMO_KB
from knowbase.knowledge.sample import find_sample

QUESTIONS = (
    "When a node runs out of resources, in which order are Pods evicted by QoS class?",
    "静态 Pod 由哪个组件直接管理？",
)


def _is_under(path: str, folder: str) -> bool:
    """True when ``path`` lies inside ``folder`` (both resolved)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def _progress_lines(every: int = 20) -> Any:
    """A progress callback that prints one plain line every ``every`` files (no terminal)."""
    def update(p: Any) -> None:
        if p.files_done and (p.files_done % every == 0 or p.files_done == p.files_total):
            echo(f"  {p.files_done}/{p.files_total} files, {p.chunks} chunks, {p.seconds:.0f} s", err=True)

    return update


@click.command()
@click.option("--model", "-m", default=None, help="Chat model string (default: the embedded Qwen).")
@click.option("--embedder", default=None, help="Embedder for a new demo knowledge base (default: embedded MiniLM).")
@click.option("--question", "-q", "questions", multiple=True, help="Ask these instead of the two built-in questions.")
@click.option("-k", "k", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--serve", "serve_port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Instead of asking, serve the demo knowledge base on 127.0.0.1:PORT (knowbase serve).")
@click.pass_context
def demo(ctx: click.Context, model: str | None, embedder: str | None, questions: tuple[str, ...], k: int,
         serve_port: int | None) -> None:
    """Build a knowledge base from the bundled Kubernetes sample and ask it two questions."""
    from knowbase.cli.ask import print_stream
    from knowbase.errors import UserError
    from knowbase.knowledge.base import KnowledgeBase

    sample = find_sample()
    if sample is None:
        raise UserError("the Kubernetes sample (samples/k8s) was not found: run from the knowbase repository, "
                        "or set KNOWBASE_SAMPLE_DIR to the folder", path="samples/k8s")
    settings = settings_from(ctx)
    if model:
        from knowbase.models.registry import check_chat_spec

        check_chat_spec(model)
    echo(f"sample: {sample} (Kubernetes documentation, CC BY 4.0; see {sample / 'NOTICE.md'})")
    t0 = time.perf_counter()
    base = KnowledgeBase.create(DEMO_KB, embedder=embedder, settings=settings, exist_ok=True)
    with base:
        echo(f"knowledge base {base.name} at {base.path} (embedder {base.embedder_spec})")
        from knowbase.cli.kb import _ingest_with_bar

        folders = [str(p) for p in (sample / "en", sample / "zh-cn") if p.is_dir()]  # not NOTICE/LICENSE
        # the demo knowledge base mirrors this sample: pages ingested from another copy of the
        # repository (another clone, a moved folder) would stand beside these as duplicates
        stale = [d for d in base.documents()
                 if d.kind == "file" and not any(_is_under(d.path, f) for f in folders)]
        for doc in stale:
            base.remove(doc.id)
        if stale:
            echo(f"removed {len(stale)} pages ingested from another copy of the sample")
        if sys.stderr.isatty():
            report = _ingest_with_bar(base, tuple(folders), True, True)
        else:
            echo("ingesting the sample (the first time takes a few minutes on 2 cores: the embedding model "
                       "reads every chunk; later runs skip unchanged files)")
            report = base.ingest(folders, prune=True, progress=_progress_lines())
        echo(f"ingest: {len(report.added)} added, {len(report.updated)} updated, {len(report.skipped)} "
                   f"unchanged, {len(report.removed)} removed, {len(report.failed)} failed; {report.chunks} chunks "
                   f"in {report.seconds:.1f} s")
        for path, reason in report.failed:
            echo(f"  failed: {path}: {reason}", err=True)
        for q in () if serve_port is not None else (questions or QUESTIONS):
            echo("")
            echo(f"question: {q}", bold=True)
            print_stream(base, q, model=model, k=k, extractive=False)
    if serve_port is not None:
        from knowbase.server.run import serve

        echo(f"serving {DEMO_KB} on http://127.0.0.1:{serve_port} (API docs at /docs; Ctrl-C stops)")
        serve(settings, port=serve_port, kbs=(DEMO_KB,), models=(model,) if model else ())
        return
    echo(f"\ndemo done in {time.perf_counter() - t0:.0f} s. Try: knowbase ask {DEMO_KB} \"your question\"")
