"""``knowbase kb``: create, ingest, list, inspect, search, check and drop knowledge bases.

Only click is imported at module level; the knowledge-base code (and any model) loads
inside the commands.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo, terminal_safe


def _open(ctx: click.Context, name: str, **kwargs: Any) -> Any:
    from knowbase.knowledge.base import KnowledgeBase

    return KnowledgeBase.open(name, settings=settings_from(ctx), **kwargs)


def _rel(path: str) -> str:
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("../..") else rel


def _source(chunk: Any) -> str:
    out = _rel(chunk.path)
    if chunk.section:
        out += " § " + " > ".join(chunk.section)
    if chunk.page:
        out += f" (p. {chunk.page})"
    return out


@click.group()
def kb() -> None:
    """Knowledge bases: your documents, indexed for search and cited answers."""


_STORE_HELP = ("Store URL, e.g. sqlite:////srv/kb/NAME.db (default: SQLite in the knowbase folder); other "
               "schemes come from store backends (the knowbase.stores entry points).")


@kb.command("create")
@click.argument("name")
@click.option("--embedder", "embedder", default=None, help="Embedding model string (default: the configured one).")
@click.option("--store", "store", default=None, help=_STORE_HELP)
@click.pass_context
def create(ctx: click.Context, name: str, embedder: str | None, store: str | None) -> None:
    """Create an empty knowledge base NAME (a name, or a store URL ending in #NAME)."""
    from knowbase.knowledge.base import KnowledgeBase

    with KnowledgeBase.create(name, embedder=embedder, settings=settings_from(ctx), store=store) as base:
        echo(f"created {base.name} ({base.embedder_spec}) at {base.path}")


@kb.command("ingest")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True)
@click.option("--prune", is_flag=True, help="Remove documents whose files are gone.")
@click.option("--no-recursive", is_flag=True, help="Do not walk sub-folders.")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE",
              help="Metadata stored with every document of this ingest, for --filter (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--encoding", default=None, metavar="ENC",
              help="Encoding of the text files (e.g. cp1252, gb18030); no detection.")
@click.option("--pdf-password", default=None, envvar="KNOWBASE_PDF_PASSWORD", metavar="PASSWORD",
              help="User password for encrypted PDFs (or set KNOWBASE_PDF_PASSWORD).")
@click.option("--follow-links", is_flag=True,
              help="Follow symbolic links that lead outside the folders given (skipped by default).")
@click.pass_context
def ingest(ctx: click.Context, name: str, paths: tuple[str, ...], prune: bool, no_recursive: bool,
           meta: tuple[str, ...], as_json: bool, encoding: str | None, pdf_password: str | None,
           follow_links: bool) -> None:
    """Add or update the files, folders or globs PATHS in NAME (unchanged files are skipped).

    Symbolic links leading outside a folder given are skipped (listed with the reason)
    unless --follow-links. Exits with status 1 when any file failed (each failure is
    listed with its reason).
    """
    import codecs

    from knowbase.knowledge.ingest import parse_metadata_items

    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise click.BadParameter(f"unknown encoding {encoding!r}", param_hint="--encoding") from exc
    metadata = parse_metadata_items(meta)
    options = {"encoding": encoding, "pdf_password": pdf_password, "follow_links": follow_links, "metadata": metadata}
    with _open(ctx, name) as base:
        if sys.stderr.isatty() and not as_json:
            report = _ingest_with_bar(base, paths, prune, not no_recursive, options)
        else:
            report = base.ingest(list(paths), prune=prune, recursive=not no_recursive, **options)
    if as_json:
        echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        echo(f"{len(report.added)} added, {len(report.updated)} updated, {len(report.skipped)} unchanged, "
                   f"{len(report.removed)} removed, {len(report.ignored)} not followed, {len(report.failed)} failed; "
                   f"{report.chunks} chunks"
                   + (f" ({report.reused} with unchanged text kept their vectors)" if report.reused else "")
                   + f" in {report.seconds:.1f} s ({report.chunks_per_second:.1f} chunks/s)")
        if report.retokenized:
            echo(f"re-indexed the BM25 tokens of {report.retokenized} existing chunks "
                 "(Chinese words inside longer words are now found)")
        for path, reason in report.ignored:
            echo(f"  not followed: {_rel(path)}: {reason}", err=True)
        for path, warning in report.warnings:
            echo(f"  warning: {_rel(path)}: {warning}", err=True)
        for path, reason in report.failed:
            echo(f"  failed: {_rel(path)}: {reason}", err=True)
    if report.failed:
        ctx.exit(1)


def _ingest_with_bar(base: Any, paths: tuple[str, ...], prune: bool, recursive: bool,
                     options: dict[str, Any] | None = None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                  TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]:.1f} chunks/s"), TimeElapsedColumn(),
                  TextColumn("{task.fields[current]}", markup=False), transient=True) as bar:
        task = bar.add_task("ingest", total=None, chunks=0, rate=0.0, current="")

        def update(p: Any) -> None:
            bar.update(task, completed=p.files_done, total=p.files_total, chunks=p.chunks, rate=p.chunks_per_second,
                       current=terminal_safe(_rel(p.path)[-50:]))

        return base.ingest(list(paths), prune=prune, progress=update, recursive=recursive, **(options or {}))


@kb.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the knowledge bases."""
    from knowbase.knowledge.base import KnowledgeBase

    infos = KnowledgeBase.list(settings_from(ctx))
    if as_json:
        echo(json.dumps([{"name": i.name, "path": str(i.path), "embedder": i.embedder, "documents": i.documents,
                                "chunks": i.chunks, "bytes": i.bytes} for i in infos], indent=2))
        return
    if not infos:
        echo("no knowledge bases yet; create one with: knowbase kb create NAME")
    for i in infos:
        echo(f"{i.name:24} {i.documents:6} docs {i.chunks:8} chunks {i.bytes / 1e6:8.1f} MB  {i.embedder}")


@kb.command("stats")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, name: str, as_json: bool) -> None:
    """Counts, size and embedder of NAME."""
    with _open(ctx, name) as base:
        st = base.stats()
    if as_json:
        echo(json.dumps(st, ensure_ascii=False, indent=2))
        return
    for key, value in st.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        echo(f"{key:22} {value}")


@kb.command("abstain")
@click.argument("name")
@click.option("--min-coverage", default=None, help="Least share (0..1) of the question's IDF-weighted terms one passage "
              "must cover.")
@click.option("--min-cosine", default=None, help="Or at least this cosine (0..1) to the question (embedder languages).")
@click.option("--max-unknown", default=None, help="Most IDF share (0..1) of question terms the knowledge base never "
              "mentions; 'off' turns the rule off.")
@click.option("--unknown-min-chunks", default=None, help="Apply the unknown-term rule from this many chunks on.")
@click.option("--reset", is_flag=True, help="Back to the defaults (before any other option given).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def abstain(ctx: click.Context, name: str, min_coverage: str | None, min_cosine: str | None, max_unknown: str | None,
            unknown_min_chunks: str | None, reset: bool, as_json: bool) -> None:
    """Show or change when NAME abstains instead of answering (stored in the knowledge base).

    With no option, prints the thresholds in force. Lower --min-coverage for collections
    whose questions share few words with the text (claims, reading comprehension).
    """
    changes = {k: v for k, v in (("min_coverage", min_coverage), ("min_cosine", min_cosine),
                                 ("max_unknown", max_unknown), ("unknown_min_chunks", unknown_min_chunks))
               if v is not None}
    with _open(ctx, name) as base:
        if changes or reset:
            try:
                policy = base.set_abstain(reset=reset, **changes)
            except ValueError as exc:
                raise click.UsageError(f"{name}: {exc}") from exc
        else:
            policy = base.policy
    values = {k: getattr(policy, k) for k in policy.FIELDS}
    if as_json:
        echo(json.dumps(values, indent=2))
        return
    for key, value in values.items():
        echo(f"{key:20} {'off' if value is None else value}")


@kb.command("docs")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def docs(ctx: click.Context, name: str, as_json: bool) -> None:
    """List the documents of NAME."""
    with _open(ctx, name) as base:
        rows = base.documents()
    if as_json:
        echo(json.dumps([{"id": r.id, "path": r.path, "title": r.title, "language": r.language,
                                "chunks": r.chunks, "size": r.size, "sha256": r.sha256} for r in rows],
                              ensure_ascii=False, indent=2))
        return
    for r in rows:
        echo(f"{r.id:6} {r.chunks:5} chunks  {r.language or '?':3} {_rel(r.path)}  {r.title}")


@kb.command("remove")
@click.argument("name")
@click.argument("doc")
@click.pass_context
def remove(ctx: click.Context, name: str, doc: str) -> None:
    """Remove document DOC (id or path) from NAME."""
    with _open(ctx, name) as base:
        row = base.remove(doc)
    echo(f"removed {row.path} ({row.chunks} chunks)")


@kb.command("drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--store", "store", default=None, help=_STORE_HELP)
@click.pass_context
def drop(ctx: click.Context, name: str, yes: bool, store: str | None) -> None:
    """Delete knowledge base NAME and its file."""
    from knowbase.knowledge.base import KnowledgeBase

    if not yes:
        click.confirm(f"Delete knowledge base {name!r} and all its data?", abort=True)
    path = KnowledgeBase.drop(name, settings_from(ctx), store=store)
    echo(f"dropped {name} ({path})")


@kb.command("check")
@click.argument("name")
@click.pass_context
def check(ctx: click.Context, name: str) -> None:
    """Integrity check: every chunk has its vector and FTS row; no duplicates, no orphans.

    Exits with status 1 when a problem is found.
    """
    with _open(ctx, name) as base:
        report = base.check()
    echo(f"{report.documents} documents, {report.chunks} chunks, {report.fts_rows} FTS rows, "
               f"{report.vectors} vectors")
    for p in report.problems:
        echo(f"problem: {p}", err=True)
    echo("ok" if report.ok else f"{len(report.problems)} problems")
    if not report.ok:
        ctx.exit(1)


@kb.command("search")
@click.argument("name")
@click.argument("query")
@click.option("--mode", type=click.Choice(["bm25", "dense", "hybrid"]), default="hybrid", show_default=True)
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--filter", "filter_", default=None,
              help="Document filter, e.g. 'team=infra and year>=2023', 'type in (md, pdf)', path=*/pods/*, "
                   "language=zh (fields: path, type, language, kind, title, size, mtime, ingested, added, metadata keys).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(ctx: click.Context, name: str, query: str, mode: str, k: int, filter_: str | None, as_json: bool) -> None:
    """Ranked chunks of NAME for QUERY, with scores and sources."""
    with _open(ctx, name) as base:
        hits = base.search(query, k=k, mode=mode, filter=filter_)
    if as_json:
        echo(json.dumps([{
            "rank": i, "score": h.score, "bm25_rank": h.bm25_rank, "dense_rank": h.dense_rank,
            "bm25_score": h.bm25_score, "dense_score": h.dense_score, "path": h.chunk.path,
            "section": list(h.chunk.section), "page": h.chunk.page, "chunk_id": h.chunk.chunk_id,
            "doc_id": h.chunk.doc_id, "start": h.chunk.start, "end": h.chunk.end, "text": h.chunk.text,
        } for i, h in enumerate(hits, start=1)], ensure_ascii=False, indent=2))
        return
    if not hits:
        echo("no results")
    for i, h in enumerate(hits, start=1):
        echo(f"{i:2}. {h.score:.4f}  {_source(h.chunk)}")
        snippet = " ".join(h.chunk.text.split())
        echo(f"    {snippet[:200]}{'…' if len(snippet) > 200 else ''}")
