"""Knowledge bases of N chunks for query-speed benchmarks, and the query-timing function.

Used by ``benches/kb_speed.py`` (the issue-7 table) and runnable on its own::

    .venv/bin/python benches/_kb_scale.py --sizes 5000 100000          # build (cached) and time
    .venv/bin/python benches/_kb_scale.py --sizes 1000000 --synthetic  # 1M chunks, random vectors

How a knowledge base of N chunks is made (:func:`build_kb`):

* the seed: ``../shared/data/k8s-docs/content/en/docs/concepts`` ingested once by knowbase
  itself (its loaders, splitter and embedder; about 2.8k chunks) into
  ``~/.cache/knowbase-bench/k8s-seed-<embedder>.db``, embeddings served by the bench
  embedding cache (:func:`_common.cached_embedder`), so the model runs once per text ever;
* copy ``c`` of each seed document gets the path ``copy<c>/<path>`` (distinct document and
  chunk ids) and its chunk vectors plus Gaussian noise (standard deviation ``noise`` per
  dimension, default 0.02, then L2-normalised again), so copies are near but not equal;
  copy 0 is the seed itself, without noise;
* with ``synthetic=True`` every vector is random (unit Gaussian, normalised) instead: for
  1M chunks, where the recall figure then measures the index on structure-free data;
* rows go in through :meth:`KBStore.write_documents` (the store's public write path), a few
  thousand chunks per transaction.

The texts repeat, so BM25 sees every term ``copies`` times more often: document
frequencies scale like a real corpus of repeated pages, which is the case that makes
FTS5 slow (common terms match tens of thousands of chunks).

:func:`time_queries` measures p50/p95 latency per mode over a fixed question list (the 60
answerable questions of ``benches/data/kb_questions.jsonl`` by default), separately for
the store part (query vector precomputed) and with the query embedding, and recall@10 of
dense search against exact float32 search done with numpy over every stored vector.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, bench_home, cache_dir, cached_embedder, load_questions, percentile, print_table

CONCEPTS = SHARED_DATA / "k8s-docs" / "content" / "en" / "docs" / "concepts"
DEFAULT_EMBEDDER = "sentence-transformers:all-minilm-l6-v2"
MODES = ("bm25", "dense", "hybrid")


@dataclass
class Seed:
    """The seed corpus: documents with their chunks, BM25 tokens and vectors.

    Attributes:
        docs: ``(DocumentRow, [Chunk], [[token]], vectors float32 (n_chunks, dim))`` per document.
        embedder: the embedder's model string.
    """

    docs: list[tuple[Any, list[Any], list[list[str]], np.ndarray]]
    embedder: str

    @property
    def chunks(self) -> int:
        return sum(len(d[1]) for d in self.docs)

    @property
    def dim(self) -> int:
        return int(self.docs[0][3].shape[1])


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def seed_store_path(embedder: str = DEFAULT_EMBEDDER) -> Path:
    """Where the ingested seed knowledge base is cached."""
    return cache_dir() / f"k8s-seed-{_slug(embedder)}.db"


def load_seed(embedder: str = DEFAULT_EMBEDDER, *, folder: Path = CONCEPTS) -> Seed:
    """Ingest ``folder`` once with knowbase (cached), then read back every document's chunks,
    BM25 tokens and vectors.

    Args:
        embedder: embedder model string (the bench embedding cache serves repeated texts).
        folder: the seed corpus (Kubernetes concepts pages by default).

    Raises:
        KnowbaseError: the ingest failed.
    """
    from knowbase.knowledge.bm25 import tokenize
    from knowbase.knowledge.store import KBStore

    path = seed_store_path(embedder)
    if not path.exists():
        from knowbase.knowledge.base import KnowledgeBase

        tmp = path.with_suffix(".building.db")
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        with bench_home():
            kb = KnowledgeBase.create(str(tmp), embedder=cached_embedder(embedder))
            report = kb.ingest([folder])
            kb.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            kb.close()
        if report.failed:
            print(f"seed: {len(report.failed)} files failed: {report.failed[:3]}", file=sys.stderr)
        os.replace(tmp, path)
    store = KBStore(path, readonly=True)
    try:
        docs = []
        for row in store.documents():
            chunks = store.document_chunks(row.id)
            vecs = store.vectors([c.chunk_id for c in chunks])
            docs.append((row, chunks, [tokenize(c.text) for c in chunks],
                         np.stack([vecs[c.chunk_id] for c in chunks]) if chunks else np.zeros((0, 1), np.float32)))
        return Seed([d for d in docs if len(d[1])], store.meta().get("embedder", embedder))
    finally:
        store.close()


@dataclass
class BuildInfo:
    """A built knowledge base.

    Attributes:
        path: its SQLite file. chunks: chunks stored. seconds: build wall time (0 when cached).
        bytes: file size on disk (SQLite file + WAL + any index files beside it).
        synthetic: vectors are random rather than the seed's.
    """

    path: Path
    chunks: int
    seconds: float
    bytes: int
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_per_1000_chunks(self) -> float:
        return self.bytes * 1000 / max(self.chunks, 1)


def kb_files(path: Path) -> list[Path]:
    """The knowledge base file and everything beside it that belongs to it (WAL, index files)."""
    return sorted(p for p in path.parent.glob(path.name + "*") if p.is_file() and not p.name.endswith(".built"))


def disk_bytes(path: Path) -> int:
    """Bytes on disk of :func:`kb_files`."""
    return sum(p.stat().st_size for p in kb_files(path))


def _noisy(vectors: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    out = vectors + rng.normal(0.0, noise, vectors.shape).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def build_kb(path: Path, n_chunks: int, seed: Seed, *, noise: float = 0.02, synthetic: bool = False,
             batch_chunks: int = 5000, rng_seed: int = 0, progress: bool = True) -> BuildInfo:
    """Write a knowledge base of about ``n_chunks`` chunks (whole seed documents) at ``path``.

    Args:
        path: the SQLite file to create (replaced when it exists).
        n_chunks: target size; the last copy is cut at a document boundary past it.
        seed: from :func:`load_seed`.
        noise: standard deviation of the per-dimension Gaussian noise added to each copy's vectors.
        synthetic: random unit vectors instead of the seed's.
        batch_chunks: chunks per write transaction.

    Returns:
        a :class:`BuildInfo` (time includes opening, writing and the final WAL checkpoint).
    """
    from dataclasses import replace

    from knowbase.knowledge.store import KBStore

    for p in kb_files(path):
        p.unlink()
    rng = np.random.default_rng(rng_seed)
    t0 = time.perf_counter()
    store = KBStore(path, create=True)
    store.set_meta(embedder=seed.embedder, name=path.stem)
    written, batch, copy = 0, [], 0
    while written < n_chunks:
        for row, chunks, toks, vecs in seed.docs:
            if written >= n_chunks:
                break
            if synthetic:
                v = rng.normal(size=vecs.shape).astype(np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
            else:
                v = vecs if copy == 0 else _noisy(vecs, rng, noise)
            batch.append((replace(row, path=f"copy{copy}/{row.path}"), chunks, toks, v))
            written += len(chunks)
            if sum(len(b[1]) for b in batch) >= batch_chunks:
                store.write_documents(batch)
                batch = []
                if progress:
                    print(f"    {path.name}: {written}/{n_chunks} chunks, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)
        copy += 1
    if batch:
        store.write_documents(batch)
    prepare = getattr(store, "prepare_index", None)
    if prepare is not None:  # build the search index now, so the first query does not pay for it
        prepare()
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    seconds = time.perf_counter() - t0
    return BuildInfo(path, written, seconds, disk_bytes(path), synthetic)


def cached_kb(n_chunks: int, seed: Seed, *, synthetic: bool = False, folder: Path | None = None,
              rebuild: bool = False) -> BuildInfo:
    """:func:`build_kb` into ``folder`` (default the bench cache), reusing a previous build
    with the same size, seed and store schema (``seconds`` is then the recorded build time)."""
    from knowbase.knowledge import store as st

    folder = folder or cache_dir() / "kb-scale"
    folder.mkdir(parents=True, exist_ok=True)
    key = _slug(f"{seed.embedder}|{seed.chunks}|{synthetic}|{[m for m, _ in st.MIGRATIONS]}|{getattr(st, 'PAGE_SIZE', 0)}")
    path = folder / f"kb-{n_chunks}-{'syn' if synthetic else 'k8s'}-{key}.db"
    stamp = path.with_name(path.name + ".built")
    if not rebuild and path.exists() and stamp.exists():
        chunks, seconds = stamp.read_text().split()
        return BuildInfo(path, int(chunks), float(seconds), disk_bytes(path), synthetic)
    info = build_kb(path, n_chunks, seed, synthetic=synthetic)
    stamp.write_text(f"{info.chunks} {info.seconds:.3f}")
    return info


# --- query timing -------------------------------------------------------------------------------
@dataclass
class QueryTimes:
    """Latency and recall of one mode at one size.

    Attributes:
        mode: bm25 | dense | hybrid. chunks: knowledge-base size.
        store_ms: per-query wall ms with the query vector precomputed (the store part).
        total_ms: per-query wall ms including the query embedding (empty when not measured).
        recall: dense recall@10 against exact search, per query (dense mode only).
        store_cpu_ms: per-query CPU ms of this thread for the store part (``time.thread_time``):
            close to the wall time on an idle machine, since the store part is single-threaded;
            a fairer figure than wall time when other jobs share the cores.
    """

    mode: str
    chunks: int
    store_ms: list[float]
    total_ms: list[float]
    recall: list[float]
    store_cpu_ms: list[float] = field(default_factory=list)

    def row(self) -> list[Any]:
        return [self.chunks, self.mode, percentile(self.store_ms, 50), percentile(self.store_ms, 95),
                percentile(self.store_cpu_ms, 50) if self.store_cpu_ms else None,
                percentile(self.total_ms, 50) if self.total_ms else None,
                percentile(self.total_ms, 95) if self.total_ms else None,
                float(np.mean(self.recall)) if self.recall else None]


class _FixedEmbedder:
    """Serves precomputed query vectors (the store part of a query, without the model)."""

    def __init__(self, real: Any, vectors: dict[str, np.ndarray]) -> None:
        self.real = real
        self.vectors = vectors
        self.languages = real.languages
        self.spec = real.spec
        self.dim = real.dim

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


def exact_top_k(path: Path, queries: np.ndarray, k: int = 10, *, block: int = 200_000) -> list[list[int]]:
    """Exact cosine top-``k`` chunk ids per query by numpy over every stored vector.

    Args:
        queries: float32 ``(n_queries, dim)``, L2-normalised.

    Returns:
        one list of ``k`` chunk ids per query, best first.
    """
    from knowbase.knowledge.store import KBStore

    store = KBStore(path, readonly=True)
    try:
        best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(queries), 0), dtype=np.int64)
        for ids, mat in _vector_blocks(store, block):
            s = queries @ mat.T
            s = np.concatenate([best_s, s], axis=1)
            i = np.concatenate([best_i, np.broadcast_to(ids, (len(queries), len(ids)))], axis=1)
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
        order = np.argsort(-best_s, axis=1)
        return np.take_along_axis(best_i, order, 1).tolist()
    finally:
        store.close()


def cached_exact_top_k(path: Path, queries: np.ndarray, k: int = 10) -> list[list[int]]:
    """:func:`exact_top_k`, kept in the bench cache (keyed by the file, its write generation,
    the query vectors and ``k``) so a timed run does not spend its lock on it."""
    from knowbase.knowledge.store import KBStore

    store = KBStore(path, readonly=True)
    try:
        gen = store.generation
    finally:
        store.close()
    key = hashlib.sha256(f"{path.resolve()}|{gen}|{k}".encode() + np.ascontiguousarray(queries).tobytes()).hexdigest()
    cache = cache_dir() / "kb-scale" / f"exact-{key[:16]}.npy"
    if cache.exists():
        return np.load(cache).tolist()
    result = exact_top_k(path, queries, k)
    np.save(cache, np.asarray(result, dtype=np.int64))
    return result


def _vector_blocks(store: Any, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    ids: list[int] = []
    rows: list[bytes] = []
    for cid, blob in store.conn.execute("SELECT chunk_id, embedding FROM vec_chunks"):
        ids.append(cid)
        rows.append(blob)
        if len(ids) >= block:
            yield np.asarray(ids, dtype=np.int64), np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(ids), -1)
            ids, rows = [], []
    if ids:
        yield np.asarray(ids, dtype=np.int64), np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(ids), -1)


def time_queries(path: Path, questions: Sequence[str], *, embedder: Any, modes: Sequence[str] = MODES, k: int = 10,
                 with_embedding: bool = True, synthetic_queries: bool = False,
                 search_kwargs: dict[str, Any] | None = None) -> list[QueryTimes]:
    """p50/p95 latency per mode and dense recall@10 over ``questions`` on the knowledge base at ``path``.

    Every mode gets one warm-up query first (opens caches, loads any index). Each query is
    ``KnowledgeBase.search(q, k=k, mode=mode)``: the full retrieval path (BM25 and/or
    dense search, fusion, near-duplicate collapsing, fetching the chunk rows).

    Args:
        path: the knowledge base file (from :func:`build_kb`).
        questions: the query texts.
        embedder: a knowbase Embedder, not a caching one (its vectors are computed once up front
            for the store part, then it runs inside every timed query for the total).
        k: results per query (recall is measured at this k).
        with_embedding: also time each query with the embedder called inside.
        synthetic_queries: use random unit query vectors (for synthetic knowledge bases).

    Returns:
        one :class:`QueryTimes` per mode.
    """
    from knowbase.knowledge.base import KnowledgeBase

    if synthetic_queries:
        rng = np.random.default_rng(1)
        qv = rng.normal(size=(len(questions), embedder.dim)).astype(np.float32)
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    else:
        qv = np.stack([embedder.embed_query(q) for q in questions])
    vectors = dict(zip(questions, qv))
    exact = cached_exact_top_k(path, qv, k)
    out = []
    kw = search_kwargs or {}
    fixed = KnowledgeBase.open(path, embedder=_FixedEmbedder(embedder, vectors))
    real = None
    if with_embedding and not synthetic_queries:
        real = KnowledgeBase.open(path, embedder=embedder)
    try:
        n = fixed.store.counts()["chunks"]
        for mode in modes:
            fixed.search(questions[0], k=k, mode=mode, **kw)
            store_ms, total_ms, recall, cpu_ms = [], [], [], []
            for qi, q in enumerate(questions):
                c0, t0 = time.thread_time(), time.perf_counter()
                hits = fixed.search(q, k=k, mode=mode, **kw)
                store_ms.append((time.perf_counter() - t0) * 1000)
                cpu_ms.append((time.thread_time() - c0) * 1000)
                if mode == "dense":
                    got = set(_raw_dense(fixed, vectors[q], k))
                    recall.append(len(got & set(exact[qi])) / len(exact[qi]))
                del hits
            if real is not None:
                real.search(questions[0], k=k, mode=mode, **kw)
                for q in questions:
                    t0 = time.perf_counter()
                    real.search(q, k=k, mode=mode, **kw)
                    total_ms.append((time.perf_counter() - t0) * 1000)
            out.append(QueryTimes(mode, n, store_ms, total_ms, recall, cpu_ms))
    finally:
        fixed.close()
        if real is not None:
            real.close()
    return out


def component_times(path: Path, questions: Sequence[str], vectors: np.ndarray, *, depth: int = 50,
                    baseline_queries: int = 20) -> list[list[Any]]:
    """p50/p95 ms of the store's search calls alone, next to the SQL paths they replace.

    Rows: ``bm25_search`` through the index, FTS5 ``bm25()`` in SQL (``ORDER BY ... LIMIT``,
    the store's previous unfiltered query), ``dense_search`` through the index, and exact
    brute force in SQL (sqlite-vec ``vec_distance_cosine`` over every vector). The SQL paths
    run on the first ``baseline_queries`` questions only (they take 0.1-2 s each at scale).

    Args:
        vectors: float32 ``(len(questions), dim)`` query embeddings.
        depth: results per call (the retriever's default depth).

    Returns:
        rows ``[chunks, operation, p50 ms, p95 ms, CPU p50 ms, queries]`` (CPU: ``time.thread_time``).
    """
    from knowbase.knowledge.bm25 import fts_query, query_tokens
    from knowbase.knowledge.store import KBStore

    store = KBStore(path, readonly=True)
    try:
        n = store.counts()["chunks"]
        store.search_index()
        toks = [query_tokens(q) for q in questions]
        sql = "SELECT rowid, -bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s DESC LIMIT ?"
        ops: list[tuple[str, Callable[[int], Any], int]] = [
            ("bm25_search (index)", lambda i: store.bm25_search(toks[i], depth), len(questions)),
            ("bm25_search distinct (index)", lambda i: store.bm25_search(toks[i], depth, distinct=True), len(questions)),
            ("FTS5 bm25() in SQL", lambda i: list(store.conn.execute(sql, (fts_query(toks[i]), depth))),
             min(baseline_queries, len(questions))),
            ("dense_search (index)", lambda i: store.dense_search(vectors[i], depth), len(questions)),
            ("dense_search distinct (index)", lambda i: store.dense_search(vectors[i], depth, distinct=True),
             len(questions)),
            ("dense exact in SQL (sqlite-vec)", lambda i: store.dense_search(vectors[i], depth, exact=True),
             min(baseline_queries, len(questions))),
        ]
        rows = []
        for name, fn, count in ops:
            fn(0)
            ms, cpu = [], []
            for i in range(count):
                c0, t0 = time.thread_time(), time.perf_counter()
                fn(i)
                ms.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
            rows.append([n, name, percentile(ms, 50), percentile(ms, 95), percentile(cpu, 50), count])
        return rows
    finally:
        store.close()


def _raw_dense(kb: Any, vector: np.ndarray, k: int) -> list[int]:
    """Dense top-k chunk ids straight from the store (before near-duplicate collapsing,
    which would make the comparison with exact search meaningless on repeated copies)."""
    return [cid for cid, _ in kb.store.dense_search(vector, k)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 100_000])
    parser.add_argument("--synthetic", action="store_true", help="random vectors (for 1M)")
    parser.add_argument("--queries", type=int, default=None, help="first N answerable questions only")
    parser.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-embedding", action="store_true", help="store part only")
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--components", action="store_true",
                        help="also time the store's bm25_search/dense_search alone next to the SQL paths")
    parser.add_argument("--baseline-queries", type=int, default=20, help="questions for the slow SQL paths")
    args = parser.parse_args(argv)

    questions = [q["question"] for q in load_questions() if q.get("answerable")][: args.queries]
    with bench_home():
        from knowbase.models.registry import get_embedder

        seed = load_seed(args.embedder)
        emb = get_embedder(args.embedder, tracing=False)  # the real model: query embedding is timed
        emb.embed(["warm up"])
        rows, notes, comp_rows = [], [], []
        for n in args.sizes:
            info = cached_kb(n, seed, synthetic=args.synthetic, rebuild=args.rebuild)
            res = time_queries(info.path, questions, embedder=emb, modes=args.modes,
                               with_embedding=not args.no_embedding, synthetic_queries=args.synthetic)
            for r in res:
                rows.append([*r.row(), info.bytes_per_1000_chunks / 1e6, info.seconds])
            if args.components:
                if args.synthetic:
                    rng = np.random.default_rng(1)
                    qv = rng.normal(size=(len(questions), emb.dim)).astype(np.float32)
                    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
                else:
                    qv = np.stack([emb.embed_query(q) for q in questions])
                comp_rows += component_times(info.path, questions, qv, baseline_queries=args.baseline_queries)
            notes.append(f"{info.chunks} chunks: {info.bytes / 1e6:.1f} MB on disk ({', '.join(p.name.split('.db')[-1] or '.db' for p in kb_files(info.path))})")
    notes += [f"{len(questions)} questions, k=10; store ms: query vector precomputed; total ms: "
              f"with {args.embedder} embedding the query in the loop",
              f"load average at the end: {os.getloadavg()[0]:.2f}"]
    print_table("Knowledge-base query speed by size", ["chunks", "mode", "store p50 ms", "store p95 ms",
                                                        "store CPU p50 ms",
                                                        "total p50 ms", "total p95 ms", "recall@10",
                                                        "MB/1k chunks", "build s"], rows, notes=notes, digits=2)
    if comp_rows:
        print()
        print_table("Store search calls alone (depth 50)", ["chunks", "operation", "p50 ms", "p95 ms", "CPU p50 ms",
                                                             "queries"],
                    comp_rows, digits=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
