"""Reading and splitting speed: knowbase's loaders + splitter next to LangChain and semchunk.

Usage::

    .venv/bin/python benches/ingest_split.py                      # en/docs/concepts, MiniLM tokens
    .venv/bin/python benches/ingest_split.py --limit 40 --tokenizer fake
    .venv/bin/python benches/ingest_split.py --folder ../shared/data/k8s-docs/content/zh-cn/docs/concepts

Every system gets the same files and the same token counter (MiniLM's word pieces through
``tokenizers``, or the fake word counter) and targets 200-token chunks with 30 tokens of
overlap. CPU seconds are ``time.process_time`` (best of ``--repeat`` runs), split into the
time spent inside the token counter and the rest. Columns:

* ``calls``: token-counter calls; ``> max``: chunks longer than the embedder's limit
  (254 word pieces for MiniLM = 256 positions minus [CLS] and [SEP]);
* ``lost``: non-space characters of the (cleaned) text in no chunk; ``offsets``: whether
  each chunk's character offsets into the source are known.

Peers: ``RecursiveCharacterTextSplitter`` (langchain-text-splitters) on the raw files and
on knowbase's cleaned text, ``semchunk.chunk`` (offsets=True) on the cleaned text, and a
naive 800-character window as the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, print_table
from knowbase.knowledge.files import iter_sources
from knowbase.knowledge.loaders import load_document
from knowbase.knowledge.splitter import split_document
from knowbase.models.fake import fake_count_tokens

CHUNK, OVERLAP = 200, 30


class TimedCounter:
    """A token counter that counts its calls and the CPU seconds spent inside it."""

    def __init__(self, fn: Callable[[str], int]) -> None:
        self.fn = fn
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, text: str) -> int:
        t0 = time.process_time()
        n = self.fn(text)
        self.seconds += time.process_time() - t0
        self.calls += 1
        return n


def _counter(kind: str) -> tuple[Callable[[str], int], int]:
    if kind == "fake":
        return fake_count_tokens, 254
    from knowbase.models.registry import get_embedder

    embedder = get_embedder("sentence-transformers:all-minilm-l6-v2", tracing=False)
    embedder.count_tokens("warm up")
    return embedder.count_tokens, embedder.max_seq_length - 2


def _lost(text: str, spans: list[tuple[int, int]]) -> int:
    covered = bytearray(len(text))
    for s, e in spans:
        covered[s:e] = b"\x01" * (e - s)
    return sum(1 for i, ch in enumerate(text) if not covered[i] and not ch.isspace())


def _row(name: str, run: Callable[[TimedCounter], tuple[list[str], Any, bool]], count: Callable[[str], int],
         limit: int, repeat: int, files: int) -> list[Any]:
    best: tuple[float, float, int, list[str], int | None, bool] | None = None
    for _ in range(repeat):
        counter = TimedCounter(count)
        t0 = time.process_time()
        chunks, lost, offsets = run(counter)
        total = time.process_time() - t0
        if callable(lost):  # coverage is checked outside the timed part
            lost = lost()
        if best is None or total - counter.seconds < best[0] - best[1]:
            best = (total, counter.seconds, counter.calls, chunks, lost, offsets)
    assert best is not None
    total, tok_s, calls, chunks, lost, offsets = best
    sizes = [count(c) for c in chunks]
    return [name, files, len(chunks), statistics.median(sizes) if sizes else 0, max(sizes, default=0),
            sum(s > limit for s in sizes), calls, round(total - tok_s, 3), round(total, 3),
            "-" if lost is None else lost, "yes" if offsets else "no"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=SHARED_DATA / "k8s-docs/content/en/docs/concepts")
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    parser.add_argument("--tokenizer", choices=("minilm", "fake"), default="minilm")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    count, limit = _counter(args.tokenizer)
    paths = [p for p in iter_sources([args.folder]) if isinstance(p, Path)][: args.limit]
    size = sum(p.stat().st_size for p in paths)
    docs = [load_document(p) for p in paths]
    raw = [p.read_text(encoding="utf-8", errors="replace") for p in paths]
    rows: list[list[Any]] = []

    def knowbase_full(counter: TimedCounter) -> tuple[list[str], int | None, bool]:
        out, spans = [], []
        for path in iter_sources([args.folder]):
            if not isinstance(path, Path) or path not in set_paths:
                continue
            doc = load_document(path)
            chunks = split_document(doc, count_tokens=counter, chunk_size=CHUNK, chunk_overlap=OVERLAP,
                                    max_tokens=limit)
            spans.append((doc.text, [(c.start, c.end) for c in chunks]))
            out.extend(c.text for c in chunks)
        return out, lambda: sum(_lost(t, sp) for t, sp in spans), True

    set_paths = set(paths)
    rows.append(_row("knowbase: load + split", knowbase_full, count, limit, args.repeat, len(paths)))

    def knowbase_split(counter: TimedCounter) -> tuple[list[str], int | None, bool]:
        out = []
        for doc in docs:
            out.extend(c.text for c in split_document(doc, count_tokens=counter, chunk_size=CHUNK,
                                                      chunk_overlap=OVERLAP, max_tokens=limit))
        return out, None, True

    rows.append(_row("knowbase: split only", knowbase_split, count, limit, args.repeat, len(paths)))

    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError:
        RecursiveCharacterTextSplitter = None
    if RecursiveCharacterTextSplitter is not None:
        def langchain(texts: list[str]) -> Callable[[TimedCounter], tuple[list[str], int | None, bool]]:
            def run(counter: TimedCounter) -> tuple[list[str], int | None, bool]:
                splitter = RecursiveCharacterTextSplitter(
                    chunk_size=CHUNK, chunk_overlap=OVERLAP, length_function=counter,
                    separators=["\n\n", "\n", "。", ". ", " ", ""], keep_separator="end")
                out = []
                for text in texts:
                    out.extend(splitter.split_text(text))
                return out, None, False
            return run

        rows.append(_row("langchain recursive, raw files", langchain(raw), count, limit, args.repeat, len(paths)))
        rows.append(_row("langchain recursive, knowbase text", langchain([d.text for d in docs]), count, limit,
                         args.repeat, len(paths)))
    try:
        import semchunk
    except ImportError:
        semchunk = None
    if semchunk is not None:
        def semchunk_run(counter: TimedCounter) -> tuple[list[str], int | None, bool]:
            out, spans = [], []
            for doc in docs:
                chunks, offsets = semchunk.chunk(doc.text, chunk_size=CHUNK, token_counter=counter,
                                                 offsets=True, overlap=OVERLAP, memoize=False)
                spans.append((doc.text, offsets))
                out.extend(chunks)
            return out, lambda: sum(_lost(t, sp) for t, sp in spans), True

        rows.append(_row("semchunk, knowbase text", semchunk_run, count, limit, args.repeat, len(paths)))

    def naive(counter: TimedCounter) -> tuple[list[str], int | None, bool]:
        out = []
        for text in raw:
            out.extend(text[i:i + 800] for i in range(0, len(text), 800 - 120))
        return out, None, True

    rows.append(_row("naive 800-char windows, raw files", naive, count, limit, args.repeat, len(paths)))
    print_table(
        f"Reading and splitting {len(paths)} files ({size / 1e6:.2f} MB) of {args.folder.name}, "
        f"{args.tokenizer} tokens, chunk {CHUNK}/overlap {OVERLAP}, limit {limit}",
        ["system", "files", "chunks", "median tok", "max tok", "> max", "calls", "CPU s excl. tokenizer",
         "CPU s total", "lost chars", "offsets"],
        rows,
        notes=["CPU seconds: best of the repeats, this process only (the machine is shared).",
               "knowbase: load + split includes walking the folder, decoding, Markdown cleaning.",
               "semchunk and LangChain call the counter on many candidate pieces; knowbase estimates "
               "and measures each chunk once."])


if __name__ == "__main__":
    main()
