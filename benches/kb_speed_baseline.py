"""Speed baseline of the knowledge base: ingest throughput, query latency, store size, memory.

What it measures (one table; the speed goals and peers are a later issue):

* ingest throughput, chunks/s and files/s, of ``../shared/data/k8s-docs/content/en/docs/concepts``
  with the configured embedder (all-MiniLM-L6-v2 by default; real embedding, no cache),
  and the same ingest with the ``fake`` embedder, which isolates loading, splitting,
  BM25 indexing and SQLite writes from the model;
* more Kubernetes folders (``tasks``, then the Chinese ``concepts`` and ``tasks``) are
  ingested until the knowledge base holds about ``--target-chunks`` chunks (default 5,000);
* query latency p50/p95 per search mode (bm25, dense, hybrid) at that size, over the 80
  questions of ``benches/data/kb_questions.jsonl``, after one warm-up query per mode;
  ``KnowledgeBase.search(k=5)``, including the query embedding;
* store size per 1,000 chunks (SQLite file + WAL, from ``KnowledgeBase.stats()``);
* peak resident memory of the process (``getrusage``), after ingest and at the end.

Tracing is off (``KNOWBASE_TRACING=0``) and the knowledge bases live in a temporary
``KNOWBASE_HOME``. Usage::

    .venv/bin/python benches/kb_speed_baseline.py
    .venv/bin/python benches/kb_speed_baseline.py --target-chunks 1000 --queries 20   # quick look
    .venv/bin/python benches/kb_speed_baseline.py --cached-embeddings   # reuse ~/.cache vectors (not a real ingest speed)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SHARED_DATA,
    Stopwatch,
    bench_home,
    cached_embedder,
    load_questions,
    peak_rss_mb,
    percentile,
    print_table,
)

K8S = SHARED_DATA / "k8s-docs" / "content"
FIRST = K8S / "en" / "docs" / "concepts"
MORE = [K8S / "en" / "docs" / "tasks", K8S / "zh-cn" / "docs" / "concepts", K8S / "zh-cn" / "docs" / "tasks"]
MODES = ("bm25", "dense", "hybrid")


def ingest_timed(kb: object, folder: Path) -> tuple[int, int, float, int]:
    """Ingest one folder; returns (files, chunks, seconds, failed)."""
    t0 = time.perf_counter()
    report = kb.ingest([folder])  # type: ignore[attr-defined]
    seconds = time.perf_counter() - t0
    return len(report.added) + len(report.updated), report.chunks, seconds, len(report.failed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-chunks", type=int, default=5000, help="grow the knowledge base to about this size")
    parser.add_argument("--queries", type=int, default=None, help="use only the first N questions")
    parser.add_argument("--embedder", default=None, help="embedder model string (default: configured)")
    parser.add_argument("--cached-embeddings", action="store_true",
                        help="serve embeddings from the bench cache (fast re-runs; throughput then excludes the model)")
    parser.add_argument("--no-fake", action="store_true", help="skip the fake-embedder ingest row")
    args = parser.parse_args(argv)

    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.registry import get_embedder

    questions = [q["question"] for q in load_questions()][: args.queries]
    rows: list[list[object]] = []
    notes: list[str] = []
    with bench_home():
        if not args.no_fake:
            kb = KnowledgeBase.create("speed-fake", embedder="fake:384")
            files, chunks, seconds, failed = ingest_timed(kb, FIRST)
            rows.append(["ingest en/concepts, fake embedder (no model)", files, chunks, seconds,
                         chunks / seconds, files / seconds, None, None])
            kb.close()
        embedder = (cached_embedder(args.embedder) if args.cached_embeddings
                    else get_embedder(args.embedder, tracing=False))
        embedder.embed(["warm up the model"])  # model load is not ingest time
        kb = KnowledgeBase.create("speed", embedder=embedder)
        files, chunks, seconds, failed = ingest_timed(kb, FIRST)
        label = "cached vectors" if args.cached_embeddings else embedder.spec
        rows.append([f"ingest en/concepts, {label}", files, chunks, seconds, chunks / seconds, files / seconds,
                     None, None])
        if failed:
            notes.append(f"{failed} files failed in {FIRST.relative_to(K8S)}")
        rss_after_first = peak_rss_mb()
        total_chunks = kb.stats()["chunks"]
        used = [FIRST]
        for folder in MORE:
            if total_chunks >= args.target_chunks:
                break
            files, chunks, seconds, failed = ingest_timed(kb, folder)
            if failed:
                notes.append(f"{failed} files failed in {folder.relative_to(K8S)}")
            used.append(folder)
            total_chunks = kb.stats()["chunks"]
            rows.append([f"ingest {folder.parent.parent.name}/{folder.name}, {label}", files, chunks, seconds,
                         chunks / seconds, files / seconds, None, None])
        stats = kb.stats()
        for mode in MODES:
            kb.search(questions[0], k=5, mode=mode)  # warm-up: caches, prepared statements
            watch = Stopwatch()
            for q in questions:
                with watch():
                    kb.search(q, k=5, mode=mode)
            ms = [lap * 1000 for lap in watch.laps]
            rows.append([f"query {mode} (k=5) at {stats['chunks']} chunks", None, None, None, None, None,
                         percentile(ms, 50), percentile(ms, 95)])
        kb.close()
    headers = ["step", "files", "chunks", "seconds", "chunks/s", "files/s", "p50 ms", "p95 ms"]
    notes = [*notes,
        f"knowledge base at query time: {stats['documents']} documents, {stats['chunks']} chunks from "
        + ", ".join(str(p.relative_to(K8S)) for p in used),
        f"store size: {stats['bytes'] / 1e6:.1f} MB in all, {stats['bytes_per_1000_chunks'] / 1e6:.2f} MB per 1,000 chunks "
        f"(SQLite file + WAL; {stats.get('dim')}-dim float vectors, text, FTS5 index)",
        f"peak RSS: {rss_after_first:.0f} MiB after the first ingest, {peak_rss_mb():.0f} MiB at the end",
        f"latency over {len(questions)} questions (English and Chinese) per mode, after one warm-up query",
    ]
    print_table("Knowledge-base speed baseline", headers, rows, notes=notes, digits=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
