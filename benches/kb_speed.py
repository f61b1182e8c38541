"""Knowledge-base speed next to LangChain + FAISS and LangChain + Chroma, in one run (issue 7).

One table, one row per system:

* ``knowbase (fp32)``: ``KnowledgeBase`` with ``sentence-transformers:all-minilm-l6-v2``;
* ``knowbase (fast)``: the same with the fast embedder (``--fast-embedder``, default
  ``onnx:all-minilm-l6-v2``, int8 ONNX Runtime: knowbase's default embedder), included
  when its backend is importable;
* ``LangChain + FAISS``: ``DirectoryLoader``/``TextLoader`` + ``RecursiveCharacterTextSplitter``
  (``chunk_size=1000``, LangChain's default overlap of 200) + ``HuggingFaceEmbeddings`` on the
  same all-MiniLM-L6-v2 folder (normalised) + ``FAISS`` (``IndexFlatIP``, exact), saved with
  ``save_local``;
* ``LangChain + Chroma``: the same loader, splitter and embeddings into a persistent Chroma
  collection (HNSW, cosine space, Chroma's default ``ef_search``).

Columns:

* **ingest** of ``../shared/data/k8s-docs/content/en/docs/concepts`` (176 Markdown files,
  2.17 MB): chunks, seconds, chunks/s, and the **peak RSS** (``getrusage`` ``ru_maxrss``)
  of a fresh subprocess per system, so each figure belongs to one system alone. The
  model is loaded and warmed up with one text before the clock starts (the load time is
  in the JSON output); the clock covers reading, splitting, embedding and writing the
  store. Each system uses its own splitter, so chunk counts differ: compare chunks/s.
* **query** p50/p95 (ms, ``k=10``, query embedding included, after one warm-up query)
  and **recall@10 against exact search** at each size (default 5k, 100k, 1M chunks),
  over the 60 answerable questions of ``benches/data/kb_questions.jsonl``. The corpus
  at each size is the one ``benches/_kb_scale.py`` builds: the concepts folder ingested
  by knowbase (seed, about 2.8k chunks), its documents copied to ``N`` chunks with
  distinct ids and every copy's vectors moved by small Gaussian noise, re-normalised
  (no two rows equal, so exact search has no ties). knowbase: ``_kb_scale.cached_kb`` +
  ``_kb_scale.time_queries`` (``KnowledgeBase.search`` in modes hybrid and dense; the
  fast path gets its own seed and knowledge bases, embedded by the fast model). Peers:
  the vectors and texts of the fp32 knowledge base of the same size
  (:func:`kb_corpus`); FAISS through ``FAISS.from_embeddings`` with
  ``DistanceStrategy.MAX_INNER_PRODUCT`` (``IndexFlatIP``), Chroma through its
  collection's ``add`` in batches; both queried with ``similarity_search(q, k=10)``,
  which embeds the query with ``HuggingFaceEmbeddings``. Peer recall is tie-aware
  (:func:`recall_vs_exact`); knowbase's is ``_kb_scale``'s (raw dense top-10 ids against
  numpy exact search, before near-duplicate collapsing). ``--max-size`` skips a system
  above a size (default: Chroma above 100k, whose HNSW build at 1M would take many
  minutes of the shared cores); the notes say so.
* **SciFact nDCG@10** (train judgments) from a JSON written by ``benches/kb_quality.py
  --json`` (``--quality-json``, may be given more than once): knowbase hybrid for the
  knowbase rows, the plain sentence-transformers cosine row for LangChain + FAISS (exact
  cosine with the same model, whole abstracts).

Runs that report timings must hold the machine's CPU lock (2 shared cores); build the
cached knowledge bases first, untimed, with ``--prepare`` under ``nice``::

    nice -n 19 .venv/bin/python benches/kb_speed.py --prepare
    flock -x /tmp/knowbase-cpu.lock .venv/bin/python benches/kb_speed.py --json /tmp/kb_speed.json
    .venv/bin/python benches/kb_speed.py --quick          # smoke test: small folder, 1k and 5k chunks
    .venv/bin/python benches/kb_speed.py --parts ingest --systems lc-faiss,kb-fast
    .venv/bin/python benches/kb_speed.py --render out.json --quality-json scifact.json   # re-print, measure nothing

Each figure is also printed to stderr as a JSON line as soon as it is measured, so an
interrupted run still leaves its finished parts.

Note on ``nice``: with the kernel's autogroup scheduling on (``/proc/sys/kernel/
sched_autogroup_enabled`` = 1, as on the machine this was written on) a niced process in
another session still gets an equal share of the CPU, so niced background work slows a
timing run; quote the ``top`` ``ni`` share or the load with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SHARED_DATA,
    Stopwatch,
    bench_home,
    load_questions,
    minilm_folder,
    peak_rss_mb,
    percentile,
    print_table,
)
from knowbase.errors import UserError

CONCEPTS = SHARED_DATA / "k8s-docs" / "content" / "en" / "docs" / "concepts"
QUICK_FOLDER = CONCEPTS / "overview"
FP32 = "sentence-transformers:all-minilm-l6-v2"
FAST = "onnx:all-minilm-l6-v2"
SYSTEMS = ("kb-fp32", "kb-fast", "lc-faiss", "lc-chroma")
LABELS = {"kb-fp32": "knowbase (fp32)", "kb-fast": "knowbase (fast)", "lc-faiss": "LangChain + FAISS",
          "lc-chroma": "LangChain + Chroma", "st-encode": "sentence-transformers encode only"}
K = 10
CHUNK_SIZE = 1000   # LangChain splitter, characters (issue 7)
RESULT = "KB_SPEED_RESULT "  # prefix of the one JSON line a child process prints


# --- pure helpers (tested in tests/test_bench_helpers.py) ------------------------------------------
def parse_sizes(text: str) -> list[int]:
    """``"5k,100k,1M"`` -> ``[5000, 100000, 1000000]`` (suffixes k and M, case-insensitive).

    Raises:
        UserError: an entry is not a positive whole number of chunks.
    """
    sizes: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1].lower(), 1)
        digits = part[:-1] if scale != 1 else part
        try:
            value = float(digits) * scale
        except ValueError as exc:
            raise UserError(f"not a size: {part!r} (use e.g. 5k, 100k, 1M)") from exc
        if value < 1 or value != int(value):
            raise UserError(f"not a size: {part!r} (a positive whole number of chunks)")
        sizes.append(int(value))
    return sizes


def exact_top_k(queries: np.ndarray, corpus: np.ndarray, k: int = K, *, block: int = 262_144) -> np.ndarray:
    """Exact inner-product top-``k`` scores per query (cosine for unit vectors).

    Args:
        queries: float ``(Q, dim)``.
        corpus: float ``(N, dim)``.
        k: depth.
        block: corpus rows scored per step.

    Returns:
        float32 ``(Q, min(k, N))``, each row's scores best first.
    """
    best = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    for start in range(0, len(corpus), block):
        scores = queries @ corpus[start:start + block].T
        both = np.concatenate([best, scores], axis=1)
        keep = min(k, both.shape[1])
        best = -np.sort(-np.partition(both, both.shape[1] - keep, axis=1)[:, -keep:], axis=1)
    return best


def recall_vs_exact(found: Sequence[int], *, query: np.ndarray, corpus: np.ndarray, kth_score: float,
                    k: int = K, tol: float = 1e-4) -> float:
    """Share of exact search's top ``k`` that an approximate search returned, tie-aware.

    A returned row counts when its true score (``corpus[row] @ query``) is at least the
    exact ``k``-th best score minus ``tol``, so rows tied with the ``k``-th are all right
    answers. Only the first ``k`` returned rows count; duplicates count once.

    Args:
        found: row numbers returned, best first.
        query: float ``(dim,)``.
        corpus: float ``(N, dim)``.
        kth_score: the exact ``k``-th best score for ``query`` (:func:`exact_top_k`).
        k: depth.
        tol: score tolerance (float32 rounding between libraries).

    Returns:
        A share in [0, 1]; 1.0 when the search found ``k`` rows as good as exact search's.
    """
    rows = list(dict.fromkeys(int(r) for r in found))[:k]
    if not rows:
        return 0.0
    true = corpus[rows] @ query
    return float(np.count_nonzero(true >= kth_score - tol)) / min(k, len(corpus))


def parse_child_result(stdout: str) -> dict[str, Any]:
    """The JSON object of the last ``KB_SPEED_RESULT`` line a child printed.

    Raises:
        UserError: no such line, or it is not a JSON object.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT):
            try:
                value = json.loads(line[len(RESULT):])
            except json.JSONDecodeError as exc:
                raise UserError(f"child result is not JSON: {exc}") from exc
            if isinstance(value, dict):
                return value
            break
    raise UserError("the child process printed no result line")


def quality_label(spec: str) -> str:
    """The row suffix ``kb_quality.py`` gives an extra embedder: ``onnx:all-minilm-l6-v2`` -> ``onnx int8``,
    ``onnx:NAME@fp32`` -> ``onnx fp32``; another backend keeps its model string."""
    backend, _, rest = spec.partition(":")
    if backend == "onnx":
        return f"onnx {rest.rpartition('@')[2] if '@' in rest else 'int8'}"
    return spec


def ndcg_from_quality(results: dict[str, Any], *, variant: str | None = None, mode: str = "hybrid") -> float | None:
    """SciFact nDCG@10 of a knowbase search mode from ``kb_quality.py --json`` output.

    ``results`` maps system name to data set to metrics. The system is ``knowbase <mode>``
    (the default embedder) or, with ``variant``, ``knowbase <mode> (<variant>)`` (an extra
    embedder, e.g. ``onnx int8``; see :func:`quality_label`).

    Returns:
        nDCG@10, or None when that system has no SciFact figure.
    """
    system = f"knowbase {mode}" + (f" ({variant})" if variant else "")
    value = (results.get(system) or {}).get("scifact", {}).get("ndcg@10")
    return None if value is None else float(value)


def ndcg_of_peer(results: dict[str, Any]) -> float | None:
    """SciFact nDCG@10 of plain sentence-transformers exact cosine (``ST cosine ...`` row), or None."""
    for system, by_set in results.items():
        if system.startswith("ST cosine"):
            value = (by_set or {}).get("scifact", {}).get("ndcg@10")
            if value is not None:
                return float(value)
    return None


def dir_bytes(path: Path) -> int:
    """Total size in bytes of the files under ``path`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --- ingest: one fresh process per system ---------------------------------------------------------
def fast_available() -> bool:
    """Whether the fast embedder's backend module is importable in this tree."""
    return importlib.util.find_spec("knowbase.models.onnx_embedder") is not None


def _hf_embeddings() -> Any:
    """LangChain's ``HuggingFaceEmbeddings`` on the local all-MiniLM-L6-v2 folder (no network), normalised."""
    import warnings

    with warnings.catch_warnings():  # langchain-community's sunset and class-moved deprecation notices
        warnings.simplefilter("ignore")
        try:  # the maintained package first; langchain-community's class is the same code
            from langchain_huggingface import HuggingFaceEmbeddings
        except ImportError:
            from langchain_community.embeddings import HuggingFaceEmbeddings
        return HuggingFaceEmbeddings(model_name=str(minilm_folder()),
                                     model_kwargs={"device": "cpu", "local_files_only": True},
                                     encode_kwargs={"normalize_embeddings": True})


def _lc_split(folder: Path) -> tuple[int, list[Any]]:
    """LangChain loading and splitting: (files, chunk Documents)."""
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    docs = DirectoryLoader(str(folder), glob="**/*.md", loader_cls=TextLoader,
                           loader_kwargs={"encoding": "utf-8"}).load()
    return len(docs), RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE).split_documents(docs)


def _chroma_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))


def child_ingest(system: str, folder: Path, *, fast_spec: str) -> dict[str, Any]:
    """Ingest ``folder`` with one system in this process; returns its figures (seconds, MiB)."""
    os.environ["ANONYMIZED_TELEMETRY"] = "False"   # Chroma: no network
    with bench_home() as home:
        t0 = time.perf_counter()
        if system in ("kb-fp32", "kb-fast"):
            from knowbase.knowledge.base import KnowledgeBase
            from knowbase.models.registry import get_embedder

            embedder = get_embedder(FP32 if system == "kb-fp32" else fast_spec, tracing=False)
            embedder.embed(["warm up the model"])
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            kb = KnowledgeBase.create("speed", embedder=embedder)
            report = kb.ingest([folder])
            seconds = time.perf_counter() - t1
            files, chunks, failed = len(report.added) + len(report.updated), report.chunks, len(report.failed)
            kb.close()
            store = home
            spec = embedder.spec
        else:
            embeddings = _hf_embeddings()
            embeddings.embed_query("warm up the model")
            load_s = time.perf_counter() - t0
            store = home / system
            t1 = time.perf_counter()
            files, docs = _lc_split(folder)
            if system == "lc-faiss":
                from langchain_community.vectorstores import FAISS
                from langchain_community.vectorstores.utils import DistanceStrategy

                index = FAISS.from_documents(docs, embeddings, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
                index.save_local(str(store))
            elif system == "lc-chroma":
                from langchain_chroma import Chroma

                Chroma.from_documents(docs, embeddings, client=_chroma_client(store), collection_name="speed",
                                      collection_metadata={"hnsw:space": "cosine"})
            elif system == "st-encode":
                embeddings.embed_documents([d.page_content for d in docs])
            else:
                raise UserError(f"unknown system {system!r}; use one of {', '.join((*SYSTEMS, 'st-encode'))}")
            seconds = time.perf_counter() - t1
            chunks, failed, spec = len(docs), 0, str(minilm_folder().name)
        return {"system": system, "spec": spec, "files": files, "chunks": chunks, "failed": failed,
                "seconds": seconds, "chunks_per_s": chunks / seconds if seconds else None, "load_s": load_s,
                "peak_rss_mib": peak_rss_mb(), "store_bytes": dir_bytes(Path(store))}


def run_ingest_child(system: str, folder: Path, *, fast_spec: str) -> dict[str, Any]:
    """Run :func:`child_ingest` in a fresh Python process (so its peak RSS is its own)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", system, "--folder", str(folder),
           "--fast-embedder", fast_spec]
    print(f"ingest: {LABELS.get(system, system)} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"system": system, "error": " / ".join(tail) or f"exit {proc.returncode}"}
    try:
        return parse_child_result(proc.stdout)
    except UserError as exc:
        return {"system": system, "error": str(exc)}


# --- query: knowbase and the peers on the same scaled corpus ---------------------------------------
@dataclass
class QueryFigures:
    """Latency (ms, query embedding included) and recall@10 against exact search at one size."""

    system: str
    n: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    recall: float | None = None
    build_s: float | None = None
    bytes_per_1000: float | None = None
    store_p50_ms: float | None = None
    store_p95_ms: float | None = None
    note: str = ""


def kb_corpus(path: Path) -> tuple[list[str], np.ndarray]:
    """Chunk texts and vectors of a knowledge base built by ``_kb_scale``: the peers' corpus.

    Row ``i`` of the matrix and ``texts[i]`` are the same chunk (in the store's vector
    order); equal texts share one string object (the corpus repeats the seed pages).

    Returns:
        (texts, float32 ``(N, dim)`` unit vectors).
    """
    import _kb_scale
    from knowbase.knowledge.store import KBStore

    store = KBStore(path, readonly=True)
    try:
        ids, blocks = [], []
        for block_ids, mat in _kb_scale._vector_blocks(store, 200_000):
            ids.append(block_ids)
            blocks.append(mat)
        shared: dict[str, str] = {}
        rows = store.conn.execute("SELECT id, text FROM chunks")
        text_of = {cid: shared.setdefault(text, text) for cid, text in rows}
    finally:
        store.close()
    order = np.concatenate(ids)
    return [text_of[int(c)] for c in order], np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


def _timed_queries(search: Callable[[str], list[int]], questions: Sequence[str], qvecs: np.ndarray,
                   corpus: np.ndarray, kth: np.ndarray) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, mean recall@10) of ``search`` over ``questions`` after one warm-up call."""
    search(questions[0])
    watch = Stopwatch()
    recalls = []
    for i, q in enumerate(questions):
        with watch():
            rows = search(q)
        recalls.append(recall_vs_exact(rows, query=qvecs[i], corpus=corpus, kth_score=float(kth[i, -1])))
    ms = [lap * 1000 for lap in watch.laps]
    return percentile(ms, 50), percentile(ms, 95), float(np.mean(recalls))


def query_faiss(texts: Sequence[str], corpus: np.ndarray, embeddings: Any, questions: Sequence[str],
                qvecs: np.ndarray, kth: np.ndarray) -> QueryFigures:
    """LangChain + FAISS ``IndexFlatIP`` over ``corpus`` (row ``i`` has text ``texts[i]``)."""
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    n = len(corpus)
    t0 = time.perf_counter()
    index = FAISS.from_embeddings(((texts[i], corpus[i]) for i in range(n)), embeddings,
                                  ids=[str(i) for i in range(n)], distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="kb-speed-faiss-") as tmp:
        index.save_local(tmp)
        size = dir_bytes(Path(tmp))

    def search(q: str) -> list[int]:
        return [int(d.id) for d in index.similarity_search(q, k=K)]

    p50, p95, recall = _timed_queries(search, questions, qvecs, corpus, kth)
    return QueryFigures("lc-faiss", n, p50, p95, recall, build_s, size / n * 1000)


def query_chroma(texts: Sequence[str], corpus: np.ndarray, embeddings: Any, questions: Sequence[str],
                 qvecs: np.ndarray, kth: np.ndarray) -> QueryFigures:
    """LangChain + Chroma (persistent, HNSW, cosine) over ``corpus``, vectors added through the collection."""
    from langchain_chroma import Chroma

    n = len(corpus)
    with tempfile.TemporaryDirectory(prefix="kb-speed-chroma-") as tmp:
        client = _chroma_client(Path(tmp))
        store = Chroma(client=client, collection_name="scale", embedding_function=embeddings,
                       collection_metadata={"hnsw:space": "cosine"})
        batch = client.get_max_batch_size()
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            rows = range(start, min(start + batch, n))
            store._collection.add(ids=[str(i) for i in rows], embeddings=corpus[start:rows.stop],
                                  documents=[texts[i] for i in rows])
        build_s = time.perf_counter() - t0

        def search(q: str) -> list[int]:
            return [int(d.id) for d in store.similarity_search(q, k=K)]

        p50, p95, recall = _timed_queries(search, questions, qvecs, corpus, kth)
        size = dir_bytes(Path(tmp))
    return QueryFigures("lc-chroma", n, p50, p95, recall, build_s, size / n * 1000)


def query_questions(limit: int | None) -> list[str]:
    """The answerable questions of ``benches/data/kb_questions.jsonl`` (English and Chinese), first ``limit``."""
    return [q["question"] for q in load_questions() if q.get("answerable")][:limit]


def prepare(sizes: Sequence[int], systems: Sequence[str], *, fast_spec: str, max_size: dict[str, int],
            synthetic_from: int | None) -> None:
    """Build and cache every knowledge base the query part will open (no timing)."""
    import _kb_scale

    with bench_home():
        specs = {FP32: "kb-fp32"} | ({fast_spec: "kb-fast"} if "kb-fast" in systems else {})
        for spec, system in specs.items():
            seed = _kb_scale.load_seed(spec)
            for n in sizes:
                peers_need = spec == FP32 and any(n <= max_size.get(p, n) for p in systems if p.startswith("lc-"))
                if n <= max_size.get(system, n) or peers_need:
                    info = _kb_scale.cached_kb(n, seed, synthetic=synthetic_from is not None and n >= synthetic_from)
                    print(f"ready: {info.path} ({info.chunks:,} chunks, built in {info.seconds:.0f} s)", flush=True)


def query_embedding_ms(embedders: dict[str, Any], questions: Sequence[str]) -> dict[str, float]:
    """p50 ms of embedding one question alone, per knowbase embedder (already warm)."""
    out: dict[str, float] = {}
    for spec, embedder in embedders.items():
        watch = Stopwatch()
        for q in questions:
            with watch():
                embedder.embed_query(q)
        out[spec] = percentile([lap * 1000 for lap in watch.laps], 50)
    return out


def run_queries(sizes: Sequence[int], systems: Sequence[str], *, questions: Sequence[str], fast_spec: str,
                max_size: dict[str, int], synthetic_from: int | None,
                embedders: dict[str, Any]) -> Iterator[QueryFigures]:
    """Query figures of every system at every size.

    knowbase: ``_kb_scale.cached_kb`` (the seed ingested by knowbase with the system's
    embedder, repeated with noise; cached under ``~/.cache/knowbase-bench/kb-scale``) timed
    by ``_kb_scale.time_queries`` in modes dense and hybrid, the query embedded by
    ``embedders[spec]`` inside the timed call. Peers: the vectors and texts of the fp32
    knowledge base of the same size (:func:`kb_corpus`), so every system searches the
    same corpus.
    """
    import _kb_scale

    seeds: dict[str, Any] = {}

    def seed(spec: str) -> Any:
        if spec not in seeds:
            seeds[spec] = _kb_scale.load_seed(spec)
        return seeds[spec]

    peers = [s for s in systems if s in ("lc-faiss", "lc-chroma")]
    hf = _hf_embeddings() if peers else None
    qvecs = np.asarray(hf.embed_documents(list(questions)), dtype=np.float32) if hf is not None else None
    for n in sizes:
        synthetic = synthetic_from is not None and n >= synthetic_from
        for system in systems:
            if n > max_size.get(system, n):
                yield QueryFigures(system, n, note=f"skipped above {max_size[system]:,} chunks (--max-size)")
                continue
            if not system.startswith("kb-"):
                continue
            spec = FP32 if system == "kb-fp32" else fast_spec
            print(f"query: {LABELS[system]} at {n:,} chunks ...", file=sys.stderr, flush=True)
            info = _kb_scale.cached_kb(n, seed(spec), synthetic=synthetic)
            # real questions even on synthetic vectors: the timed path (embedding included) is the peers' one
            for t in _kb_scale.time_queries(info.path, questions, embedder=embedders[spec], modes=("dense", "hybrid"),
                                            k=K, synthetic_queries=False):
                ms = t.total_ms or t.store_ms
                yield QueryFigures(f"{system}:{t.mode}", t.chunks, percentile(ms, 50), percentile(ms, 95),
                                   float(np.mean(t.recall)) if t.recall else None, info.seconds,
                                   info.bytes_per_1000_chunks, store_p50_ms=percentile(t.store_ms, 50),
                                   store_p95_ms=percentile(t.store_ms, 95))
        todo = [p for p in peers if n <= max_size.get(p, n)]
        if not todo:
            continue
        texts, corpus = kb_corpus(_kb_scale.cached_kb(n, seed(FP32), synthetic=synthetic).path)
        kth = exact_top_k(qvecs, corpus)
        for system in todo:
            print(f"query: {LABELS[system]} at {len(corpus):,} chunks ...", file=sys.stderr, flush=True)
            yield (query_faiss if system == "lc-faiss" else query_chroma)(texts, corpus, hf, questions, qvecs, kth)
        del texts, corpus


# --- the table ---------------------------------------------------------------------------------------
def _three(value: float | None) -> str | None:
    """A share or score shown with 3 decimals (the table's other floats have 1)."""
    return None if value is None else f"{value:.3f}"


def size_label(n: int) -> str:
    """``5000`` -> ``5k``, ``1000000`` -> ``1M``, ``1234`` -> ``1234``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def table_rows(systems: Sequence[str], *, modes: bool = True) -> list[str]:
    """Row keys in table order: with ``modes`` a knowbase system gives two rows (``S`` = hybrid, ``S:dense``)."""
    rows: list[str] = []
    for system in systems:
        rows += [system, f"{system}:dense"] if modes and system.startswith("kb-") else [system]
    return rows


def build_table(ingest: dict[str, dict[str, Any]], queries: Sequence[QueryFigures], sizes: Sequence[int],
                systems: Sequence[str], ndcg: dict[str, float | None], *,
                modes: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the table.

    One row per system; a knowbase system has a second row for its dense mode (its first
    row is hybrid, the mode its goal is set for). Ingest columns appear on a system's
    first row; recall@10 against exact search is a dense measure, so knowbase's hybrid row
    leaves it empty.
    """
    headers = ["system", "ingest chunks", "ingest s", "chunks/s", "peak RSS MiB"]
    for n in sizes:
        label = size_label(n)
        headers += [f"{label} p50 ms", f"{label} p95 ms", f"{label} R@10"]
    headers.append("SciFact nDCG@10")
    by_key = {(q.system.removesuffix(":hybrid"), n): q for q in queries for n in sizes if _near(q.n, n)}
    rows = []
    for key in table_rows(systems, modes=modes):
        base, _, mode = key.partition(":")
        suffix = f" {mode}" if mode else (" hybrid" if modes and base.startswith("kb-") else "")
        ing = {} if mode else ingest.get(base, {})
        row: list[Any] = [LABELS.get(base, base) + suffix, ing.get("chunks"), ing.get("seconds"),
                          ing.get("chunks_per_s"), ing.get("peak_rss_mib")]
        for n in sizes:
            q = by_key.get((key, n))
            row += [q.p50_ms, q.p95_ms, _three(q.recall)] if q else [None, None, None]
        row.append(_three(ndcg.get(key)))
        rows.append(row)
    return headers, rows


def _near(actual: int, wanted: int) -> bool:
    """``_kb_scale`` stops at a document boundary just past the size asked for (within 2%)."""
    return wanted <= actual <= wanted * 1.02 + 100


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: ingest concepts/overview, query at 1k and 5k chunks, 10 questions")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma list of {', '.join(SYSTEMS)}, st-encode (ingest only)")
    parser.add_argument("--parts", default="ingest,query", help="comma list: ingest, query")
    parser.add_argument("--folder", type=Path, default=None, help="folder to ingest (default: en/docs/concepts)")
    parser.add_argument("--sizes", default=None, help="query corpus sizes (default 5k,100k,1M; --quick 1k,5k)")
    parser.add_argument("--queries", type=int, default=None, help="first N answerable questions (default all 60)")
    parser.add_argument("--fast-embedder", default=FAST, help=f"model string of the fast path (default {FAST})")
    parser.add_argument("--max-size", default="lc-chroma=100k,kb-fast=100k",
                        help="largest query corpus per system (default: lc-chroma=100k,kb-fast=100k)")
    parser.add_argument("--synthetic-from", default="1M",
                        help="sizes from this one on use _kb_scale's random vectors and random query vectors "
                             "(knowbase: store part only); 'none' for never (default 1M)")
    parser.add_argument("--quality-json", type=Path, action="append", default=[],
                        help="kb_quality.py --json output(s) for the SciFact nDCG@10 column")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    parser.add_argument("--prepare", action="store_true",
                        help="only build (and cache) the seeds and knowledge bases of the query part, untimed: "
                             "run it with nice before the timed run")
    parser.add_argument("--render", type=Path, default=None,
                        help="measure nothing: print the table of an earlier --json output (with --quality-json)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    folder = args.folder or (QUICK_FOLDER if args.quick else CONCEPTS)
    if args.child:
        print(RESULT + json.dumps(child_ingest(args.child, folder, fast_spec=args.fast_embedder)), flush=True)
        return 0
    try:
        sizes = parse_sizes(args.sizes or ("1k,5k" if args.quick else "5k,100k,1M"))
        max_size = {k.strip(): parse_sizes(v)[0] for k, v in
                    (item.split("=", 1) for item in args.max_size.split(",") if "=" in item)}
        synthetic_from = None if args.synthetic_from.lower() == "none" else parse_sizes(args.synthetic_from)[0]
    except UserError as exc:
        parser.error(str(exc))
    limit = args.queries or (10 if args.quick else None)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - {*SYSTEMS, "st-encode"}
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    notes: list[str] = []
    if "kb-fast" in systems and not fast_available():
        systems.remove("kb-fast")
        notes.append(f"knowbase fast path ({args.fast_embedder}) skipped: knowbase.models.onnx_embedder not importable")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if args.prepare:
        prepare(sizes, systems, fast_spec=args.fast_embedder, max_size=max_size, synthetic_from=synthetic_from)
        return 0
    if args.render:
        saved = json.loads(args.render.read_text(encoding="utf-8"))
        ingest, queries = saved["ingest"], [QueryFigures(**q) for q in saved["queries"]]
        notes = [n for n in saved["notes"] if not n.startswith("SciFact nDCG@10")]
        sizes, systems, parts = saved["sizes"], saved["systems"], set(saved["parts"])
    else:
        ingest, queries = measure(args, folder=folder, sizes=sizes, systems=systems, parts=parts, limit=limit,
                                  max_size=max_size, synthetic_from=synthetic_from, notes=notes)
    ndcg, quality_notes = read_quality(args.quality_json, fast_spec=args.fast_embedder)
    notes += quality_notes
    headers, rows = build_table(ingest, queries, sizes if "query" in parts else [], systems, ndcg,
                                modes="query" in parts)
    print_table("Knowledge-base speed: knowbase next to LangChain (issue 7)", headers, rows, notes=notes, digits=1)
    if args.json:
        args.json.write_text(json.dumps({"ingest": ingest, "queries": [q.__dict__ for q in queries], "ndcg": ndcg,
                                         "sizes": sizes, "systems": systems, "parts": sorted(parts),
                                         "notes": notes}, indent=2), encoding="utf-8")
    return 0


def measure(args: argparse.Namespace, *, folder: Path, sizes: Sequence[int], systems: Sequence[str], parts: set[str],
            limit: int | None, max_size: dict[str, int], synthetic_from: int | None,
            notes: list[str]) -> tuple[dict[str, dict[str, Any]], list[QueryFigures]]:
    """Run the ingest and query parts; returns (ingest figures per system, query figures); appends notes."""
    load = os.getloadavg()
    notes.append(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")

    ingest: dict[str, dict[str, Any]] = {}
    if "ingest" in parts:
        for system in systems:
            ingest[system] = run_ingest_child(system, folder, fast_spec=args.fast_embedder)
            print(f"  {LABELS.get(system, system)}: {json.dumps(ingest[system])}", file=sys.stderr, flush=True)
            if "error" in ingest[system]:
                notes.append(f"ingest {LABELS.get(system, system)} failed: {ingest[system]['error']}")
        where = folder.relative_to(SHARED_DATA) if folder.is_relative_to(SHARED_DATA) else folder
        notes.append(f"ingest of {where}, each system in a fresh process (peak RSS is that process's); model load "
                     "and warm-up not timed: " + ", ".join(f"{LABELS.get(s, s)} {r['load_s']:.1f} s"
                                                          for s, r in ingest.items() if "load_s" in r))

    queries: list[QueryFigures] = []
    if "query" in parts:
        from knowbase.models.registry import get_embedder

        questions = query_questions(limit)
        with bench_home():
            embedders = {}
            for spec in [FP32] + ([args.fast_embedder] if "kb-fast" in systems else []):
                embedders[spec] = get_embedder(spec, tracing=False)
                embedders[spec].embed(["warm up the model"])
            for figures in run_queries(sizes, [s for s in systems if s != "st-encode"], questions=questions,
                                       fast_spec=args.fast_embedder, max_size=max_size, synthetic_from=synthetic_from,
                                       embedders=embedders):
                print(f"  {json.dumps(figures.__dict__)}", file=sys.stderr, flush=True)   # partial results as they come
                queries.append(figures)
            embed_ms = query_embedding_ms(embedders, questions)
        notes.append(f"query: {len(questions)} answerable questions (en + zh), k={K}, one warm-up query first; "
                     "p50/p95 include embedding the query; embedding alone p50: "
                     + ", ".join(f"{spec} {ms:.1f} ms" for spec, ms in embed_ms.items()))
        notes.append("corpus at each size: _kb_scale's knowledge base (the concepts seed ingested by knowbase, "
                     "copies with Gaussian noise); the peers index the fp32 one's vectors and texts; "
                     "R@10 = share of exact top-10 found (dense; knowbase: before near-duplicate collapsing)")
        if synthetic_from is not None and any(n >= synthetic_from for n in sizes):
            notes.append(f"from {size_label(synthetic_from)} chunks on, the vectors are _kb_scale's synthetic ones "
                         "(random unit vectors; texts still the seed's, so BM25 is unchanged); the queries are still "
                         "the real questions, embedded inside the timed call, for every system")
        for q in queries:
            label = LABELS.get(q.system.partition(":")[0], q.system) + (
                f" {q.system.partition(':')[2]}" if ":" in q.system else "")
            if q.note and q.p50_ms is None:
                notes.append(f"{label} at {size_label(q.n)}: {q.note}")
            elif q.build_s is not None and not q.system.endswith(":dense"):
                store = (f"; store part alone p50 {q.store_p50_ms:.1f} / p95 {q.store_p95_ms:.1f} ms"
                         if q.store_p50_ms is not None else "")
                notes.append(f"{label} at {q.n:,} chunks: built in {q.build_s:.1f} s, "
                             f"{q.bytes_per_1000 / 1e6:.2f} MB on disk per 1,000 chunks{store}")

    load = os.getloadavg()
    notes.append(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return ingest, queries


def read_quality(paths: Sequence[Path], *, fast_spec: str) -> tuple[dict[str, float | None], list[str]]:
    """SciFact nDCG@10 per table row from ``kb_quality.py --json`` files (a later file fills only what the
    earlier ones left empty); a missing or unreadable file becomes a note. Returns (figures, notes)."""
    ndcg: dict[str, float | None] = {}
    notes: list[str] = []
    used: list[str] = []
    for path in paths:
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"SciFact nDCG@10: cannot read {path}: {exc}")
            continue
        used.append(str(path))
        fast = quality_label(fast_spec)
        found = {"kb-fp32": ndcg_from_quality(results), "kb-fast": ndcg_from_quality(results, variant=fast),
                 "kb-fp32:dense": ndcg_from_quality(results, mode="dense"),
                 "kb-fast:dense": ndcg_from_quality(results, variant=fast, mode="dense"),
                 "lc-faiss": ndcg_of_peer(results)}
        for system, value in found.items():
            if ndcg.get(system) is None and value is not None:
                ndcg[system] = value
    if used:
        notes.append("SciFact nDCG@10 (train judgments) from kb_quality.py --json: " + ", ".join(used)
                     + ("; LangChain + FAISS: its plain sentence-transformers exact-cosine row (same model, "
                        "whole abstracts)" if ndcg.get("lc-faiss") is not None else ""))
    return ndcg, notes


if __name__ == "__main__":
    raise SystemExit(main())
