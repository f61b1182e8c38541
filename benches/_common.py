"""Shared helpers for the benchmark scripts in ``benches/``.

Timing and percentiles, one printed table per run, BEIR-layout data loading, a disk cache
for embeddings, peak memory, and the tokenizers the peer retrievers use. The ranking
metrics themselves live once in :mod:`knowbase.evals.metrics`.

Nothing here is imported by the library; the scripts put ``src/`` and this folder on
``sys.path`` so they run from a checkout with ``.venv/bin/python benches/<script>.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "samples" / "k8s"
DATA = Path(__file__).resolve().parent / "data"

if str(REPO / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO / "src"))

from knowbase.errors import InputFileError  # noqa: E402


# --- environment -------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$KNOWBASE_BENCH_CACHE`` or ``~/.cache/knowbase-bench``: embeddings kept across runs."""
    path = Path(os.environ.get("KNOWBASE_BENCH_CACHE") or Path.home() / ".cache" / "knowbase-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def bench_home(home: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Point ``KNOWBASE_HOME`` at ``home`` (default: a fresh temporary folder, removed at the
    end) with tracing off and Hugging Face offline, so a benchmark neither reads nor
    writes the user's own knowledge bases and logs. The assembled-model folder is kept at
    the user's (``KNOWBASE_MODELS_DIR``) so the 1.1 GB Qwen GGUF is not rebuilt."""
    saved = {k: os.environ.get(k) for k in ("KNOWBASE_HOME", "KNOWBASE_TRACING", "KNOWBASE_MODELS_DIR",
                                            "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.setdefault("KNOWBASE_MODELS_DIR", str(Path.home() / ".knowbase" / "models"))
    os.environ["KNOWBASE_TRACING"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    with contextlib.ExitStack() as stack:
        if home is None:
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="kb-bench-"))
        os.environ["KNOWBASE_HOME"] = str(home)
        try:
            yield Path(home)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# --- timing and memory -------------------------------------------------------------------
@dataclass
class Stopwatch:
    """Accumulates wall time (seconds, ``time.perf_counter``) over several ``with`` blocks."""

    seconds: float = 0.0
    laps: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            lap = time.perf_counter() - t0
            self.seconds += lap
            self.laps.append(lap)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default method);
    NaN for an empty list."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (``getrusage``: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


# --- output ---------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats with ``digits`` decimals, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                notes: Sequence[str] = (), digits: int = 3) -> str:
    """Print (and return) one Markdown table with a title and notes below it."""
    cells = [[fmt(c, digits) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]

    def line(parts: Sequence[str]) -> str:
        return "| " + " | ".join(p.ljust(w) if i == 0 else p.rjust(w) for i, (p, w) in enumerate(zip(parts, widths))) + " |"

    out = [f"### {title}", "", line([str(h) for h in headers]),
           "|" + "|".join(("-" * (w + 1) + ("-" if i == 0 else ":")) for i, w in enumerate(widths)) + "|"]
    out += [line(r) for r in cells]
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    text = "\n".join(out)
    print(text, flush=True)
    return text


# --- BEIR-layout data ------------------------------------------------------------------------
@dataclass(frozen=True)
class BeirSet:
    """A retrieval data set in BEIR layout.

    Attributes:
        name: folder name.
        corpus: ``{doc_id: (title, text)}``.
        queries: ``{query_id: text}``, only the judged ones, in file order.
        qrels: ``{query_id: {doc_id: grade}}``.
    """

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def doc_text(self, doc_id: str) -> str:
        """Title and body as one text (``title``, blank line, ``text``), as indexed by every system."""
        title, text = self.corpus[doc_id]
        return f"{title}\n\n{text}" if title else text


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for row, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputFileError(f"{path}:{row}: not JSON: {exc}", path=str(path), row=row) from exc


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """A BEIR qrels TSV (``query-id corpus-id score`` header; LF or CRLF line ends)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row, line in enumerate(fh, 1):
            parts = line.rstrip("\r\n").split("\t")
            if row == 1 and parts[0] == "query-id" or not line.strip():
                continue
            if len(parts) != 3:
                raise InputFileError(f"{path}:{row}: expected 3 tab-separated fields", path=str(path), row=row)
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError as exc:
                raise InputFileError(f"{path}:{row}: score is not an integer", path=str(path), row=row) from exc
    return qrels


def load_beir(folder: Path, *, split: str, limit: int | None = None) -> BeirSet:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from ``folder``.

    Args:
        folder: a BEIR-layout folder.
        split: qrels file name without ``.tsv`` (``train``, ``dev``, ``test``).
        limit: keep only the first ``limit`` judged queries (file order of queries.jsonl).

    Raises:
        InputFileError: a file is missing or a row is malformed (``path``, ``row``).
    """
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / name).exists():
            raise InputFileError(f"{folder / name} not found", path=str(folder / name))
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    corpus = {str(d["_id"]): (d.get("title") or "", d.get("text") or "") for d in _read_jsonl(folder / "corpus.jsonl")}
    queries: dict[str, str] = {}
    for q in _read_jsonl(folder / "queries.jsonl"):
        qid = str(q["_id"])
        if qid in qrels and (limit is None or len(queries) < limit):
            queries[qid] = q["text"]
    return BeirSet(folder.name, corpus, queries, {q: qrels[q] for q in queries})


def load_questions(path: Path | None = None) -> list[dict[str, Any]]:
    """The question set ``benches/data/kb_questions.jsonl`` (see ``benches/README.md``)."""
    return list(_read_jsonl(path or DATA / "kb_questions.jsonl"))


# --- embedding cache ------------------------------------------------------------------------------
class EmbeddingCache:
    """Raw embedding vectors on disk, keyed by model and SHA-256 of the exact text.

    One SQLite file per model under :func:`cache_dir`. A hit is the identical computation
    (same model, same text), so reusing it changes no result, only the time.
    """

    def __init__(self, model_key: str, *, folder: Path | None = None) -> None:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_key)[:80]
        self.path = (folder or cache_dir()) / f"emb-{slug}-{hashlib.sha256(model_key.encode()).hexdigest()[:8]}.sqlite"
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get_many(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        out: list[np.ndarray | None] = []
        for text in texts:
            row = self.db.execute("SELECT dim, vec FROM emb WHERE key = ?", (self.key(text),)).fetchone()
            out.append(np.frombuffer(row[1], dtype=np.float32).copy() if row else None)
        return out

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)",
                                [(self.key(t), int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes())
                                 for t, v in zip(texts, vectors)])


class CachingBackend:
    """An :class:`~knowbase.models.base.EmbeddingBackend` that serves repeated texts from an
    :class:`EmbeddingCache` and sends only the misses to the wrapped backend.

    It reports the wrapped backend's name, model, dimension and limits, so a knowledge base
    sees the same embedding model as without the cache.

    Attributes:
        encode_seconds: wall time spent in the wrapped backend (cache misses only).
        save_every: misses encoded and written to the cache per step.
    """

    def __init__(self, inner: Any, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.backend_name = inner.backend_name
        self.model_name = inner.model_name
        self.dim = inner.dim
        self.max_seq_length = inner.max_seq_length
        self.languages = inner.languages
        self.encode_seconds = 0.0
        self.save_every = 256

    def __getattr__(self, name: str) -> Any:  # count_tokens, tokenizer... of the wrapped model
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        found = self.cache.get_many(texts)
        missing = [i for i, v in enumerate(found) if v is None]
        self.cache.hits += len(texts) - len(missing)
        self.cache.misses += len(missing)
        for start in range(0, len(missing), self.save_every):  # saved as it goes: an interrupted run keeps its work
            part = missing[start:start + self.save_every]
            t0 = time.perf_counter()
            fresh = np.asarray(self.inner.encode([texts[i] for i in part]), dtype=np.float32)
            self.encode_seconds += time.perf_counter() - t0
            self.cache.put_many([texts[i] for i in part], fresh)
            for i, vec in zip(part, fresh):
                found[i] = vec
            if len(missing) > self.save_every:
                print(f"    embedded {min(start + self.save_every, len(missing))}/{len(missing)} uncached texts "
                      f"({self.encode_seconds:.0f} s)", file=sys.stderr, flush=True)
        return np.stack(found) if found else np.zeros((0, self.dim), dtype=np.float32)


def cached_embedder(spec: str | None = None, *, batch_size: int = 32) -> Any:
    """A knowbase :class:`~knowbase.models.base.Embedder` for ``spec`` (default: the configured
    embedder) whose backend goes through an :class:`EmbeddingCache`; tracing off."""
    from knowbase.config import Settings
    from knowbase.models.base import Embedder
    from knowbase.models.registry import get_embedder

    settings = Settings.load()
    real = get_embedder(spec, settings=settings, tracing=False, batch_size=batch_size)
    backend = CachingBackend(real.backend, EmbeddingCache(f"{real.spec}"))
    return Embedder(backend, tracer=None, batch_size=batch_size)


# --- tokenizers for the peer retrievers -------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


def jieba_tokens(text: str) -> list[str]:
    """Words of ``text`` by jieba's default (accurate) mode, lower-cased, without spaces and
    punctuation: the Chinese tokenisation given to bm25s."""
    import jieba

    return [t.lower() for t in jieba.lcut(text) if _WORD.search(t)]


def minilm_folder() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 sentence-transformers model."""
    from knowbase.config import Settings
    from knowbase.models.catalog import model_path

    return model_path("all-minilm-l6-v2", Settings.load())
