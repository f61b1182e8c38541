"""Chunk stores side by side: SQLite and PostgreSQL (pgvector) on the same chunks and queries.

    .venv/bin/python benches/store_scale.py --chunks 20000 [--pg postgresql://...]

The corpus: the Kubernetes pages of ``samples/k8s`` (English and Chinese), loaded and split by
knowbase and embedded once with the int8 MiniLM (``onnx:all-minilm-l6-v2``; cached under
``~/.cache/knowbase-bench``), then copied until ``--chunks`` chunks exist: copy ``c`` gets
the path ``copy<c>/...`` and the seed vectors plus Gaussian noise (sd 0.02 per dimension,
re-normalised). 2 % of the documents get ``team=rare`` (the rest ``team=common``), for the
selective filter. Both stores get the rows through ``ChunkStore.write_documents`` (50
documents per transaction).

Per store: ingest chunks/s; query p50/p95 in ms for BM25 and dense (query vector precomputed,
the store part) and dense with the query embedding included; dense recall@10 against exact
float32 search (numpy over every vector), without and with the selective filter; BM25
overlap@10 with the SQLite store; disk bytes per 1,000 chunks (SQLite: file + WAL + index;
PostgreSQL: the knowledge base's tables and indexes). Without ``--pg`` a throwaway
PostgreSQL 16 + pgvector is started from the ``pgserver`` wheel (tests/pg_server.py).
Timings on a shared 2-core machine are noisy: compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import cache_dir, percentile, print_table

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "k8s"
EMBEDDER = "onnx:all-minilm-l6-v2"
QUERIES = ["pod lifecycle restart policy", "how does the scheduler assign pods to nodes", "persistent volume claim",
           "service account token", "configmap environment variables", "horizontal pod autoscaler metrics",
           "node affinity taints tolerations", "ingress controller tls", "container probes liveness readiness",
           "kubelet garbage collection images", "network policy namespace selector", "secret encryption at rest",
           "what is a daemonset", "how do init containers work", "resource requests and limits for containers",
           "how to drain a node", "statefulset stable network identity", "what is a namespace",
           "持久卷 存储类", "调度器 节点", "容器 重启 策略", "服务 负载均衡", "命名空间 资源配额", "探针 存活"]


def seed(embedder: Any) -> list[tuple[Any, list[Any], list[list[str]], np.ndarray]]:
    """The sample's documents as write tuples, vectors cached by corpus hash."""
    import hashlib

    from knowbase.knowledge.bm25 import tokenize
    from knowbase.knowledge.files import iter_sources
    from knowbase.knowledge.ingest import Ingestor, file_sha256
    from knowbase.knowledge.loaders import load_document
    from knowbase.knowledge.types import DocumentRow

    splitter = Ingestor(None, embedder)  # type: ignore[arg-type]  # only its split()
    docs = []
    for path in sorted(p for p in iter_sources([SAMPLE]) if isinstance(p, Path)):
        doc = load_document(path)
        chunks = splitter.split(doc)
        if chunks:
            docs.append((DocumentRow(0, str(path.relative_to(REPO)), file_sha256(path)[0], title=doc.title,
                                     language=doc.language, metadata={}), chunks))
    texts = [c.text for _, chunks in docs for c in chunks]
    key = hashlib.sha256("\n\x00".join(texts).encode()).hexdigest()[:16]
    cache = cache_dir() / f"store-seed-{key}.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
        np.save(cache, vectors)
    out, at = [], 0
    for row, chunks in docs:
        out.append((row, chunks, [tokenize(c.text) for c in chunks], vectors[at:at + len(chunks)]))
        at += len(chunks)
    return out


def corpus(seed_docs: list, n_chunks: int) -> list:
    """Copies of the seed (noisy vectors, ``team`` metadata) until ``n_chunks`` chunks."""
    from dataclasses import replace

    rng = np.random.default_rng(7)
    out, total, copy = [], 0, 0
    while total < n_chunks:
        for row, chunks, toks, vecs in seed_docs:
            if total >= n_chunks:
                break
            take = min(len(chunks), n_chunks - total)
            noisy = vecs[:take] + (rng.normal(0, 0.02, size=(take, vecs.shape[1])) if copy else 0)
            noisy = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
            team = "rare" if rng.random() < 0.02 else "common"
            out.append((replace(row, path=f"copy{copy}/{row.path}", metadata={"team": team}), chunks[:take],
                        toks[:take], noisy))
            total += take
        copy += 1
    return out


def measure(name: str, store: Any, docs: list, queries: list[str], qvecs: np.ndarray, embedder: Any,
            bytes_fn: Any) -> dict[str, Any]:
    from knowbase.knowledge.bm25 import query_tokens
    from knowbase.knowledge.stores import SearchFilter

    t0 = time.perf_counter()
    for at in range(0, len(docs), 50):
        store.write_documents(docs[at:at + 50])
    store.prepare()
    ingest_s = time.perf_counter() - t0
    print(f"{name}: ingested {len(docs)} documents in {ingest_s:.1f} s", file=sys.stderr, flush=True)
    n = sum(len(d[1]) for d in docs)
    flt = SearchFilter.parse("team=rare")
    res: dict[str, Any] = {"store": name, "chunks": n, "ingest chunks/s": n / ingest_s}
    times: dict[str, list[float]] = {"bm25": [], "dense": [], "dense+embed": [], "dense filtered": []}
    bm25_top: list[list[tuple[str, int]]] = []
    dense_ids, dense_f_ids = [], []
    for q, v in zip(queries, qvecs):
        t = time.perf_counter()
        hits = store.bm25_search(query_tokens(q), 10)
        times["bm25"].append(time.perf_counter() - t)
        chunks = store.chunks([c for c, _ in hits])
        bm25_top.append([(chunks[c].path, chunks[c].index) for c, _ in hits])
        t = time.perf_counter()
        dense_ids.append([c for c, _ in store.dense_search(v, 10)])
        times["dense"].append(time.perf_counter() - t)
        t = time.perf_counter()
        store.dense_search(embedder.embed_query(q), 10)
        times["dense+embed"].append(time.perf_counter() - t)
        t = time.perf_counter()
        dense_f_ids.append([c for c, _ in store.dense_search(v, 10, filter=flt)])
        times["dense filtered"].append(time.perf_counter() - t)
    print(f"{name}: queries done at {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    # exact answers from the store's own ids: every vector, then only the filtered documents' vectors
    ids = np.array(sorted(c.chunk_id for d in store.documents() for c in store.document_chunks(d.id)), dtype=np.int64)
    parts = []
    for i in range(0, len(ids), 5000):
        block = ids[i:i + 5000].tolist()
        found = store.vectors(block)
        parts.append(np.stack([found[c] for c in block]))
    mat = np.concatenate(parts)
    allowed = set()
    for d in store.documents():
        if flt.matches(d):
            allowed.update(c.chunk_id for c in store.document_chunks(d.id))
    mask = np.isin(ids, np.array(sorted(allowed), dtype=np.int64))
    recall, recall_f = [], []
    for v, got, got_f in zip(qvecs, dense_ids, dense_f_ids):
        sims = mat @ v
        exact = ids[np.argsort(-sims, kind="stable")[:10]]
        recall.append(len(set(got) & set(exact.tolist())) / 10)
        sims_f = np.where(mask, sims, -np.inf)
        exact_f = ids[np.argsort(-sims_f, kind="stable")[:10]]
        recall_f.append(len(set(got_f) & set(exact_f.tolist())) / min(10, int(mask.sum())))
    for key, vals in times.items():
        res[f"{key} p50 ms"] = percentile(vals, 50) * 1000
        res[f"{key} p95 ms"] = percentile(vals, 95) * 1000
    res["dense recall@10"] = float(np.mean(recall))
    res["filtered recall@10"] = float(np.mean(recall_f))
    res["bytes/1k chunks"] = bytes_fn() * 1000 / n
    res["_bm25_top"] = bm25_top
    return res


def _checkpointed_bytes(store: Any) -> int:
    """The SQLite store's bytes after folding the WAL into the file (what it keeps at rest)."""
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(store.counts()["bytes"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL with pgvector (default: start one from pgserver)")
    args = parser.parse_args(argv)

    from knowbase.config import Settings
    from knowbase.knowledge.stores import locate
    from knowbase.knowledge.stores.sqlite import SQLiteStore
    from knowbase.models.registry import get_embedder

    embedder = get_embedder(EMBEDDER, settings=Settings.load())
    seed_docs = seed(embedder)
    docs = corpus(seed_docs, args.chunks)
    qvecs = np.stack([embedder.embed_query(q) for q in QUERIES]).astype(np.float32)
    rows = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kb_store_scale_")))
        lite = SQLiteStore(tmp / "bench.db", create=True)
        rows.append(measure("sqlite", lite, docs, QUERIES, qvecs, embedder, lambda: _checkpointed_bytes(lite)))
        lite.close()
        url = args.pg
        if url is None:
            from pg_server import postgres_with_pgvector

            url = stack.enter_context(postgres_with_pgvector())
        backend, loc = locate(f"{url.split('#')[0]}#bench", Settings.load())
        if backend.exists(loc):
            backend.drop(loc)
        pg = backend.open(loc, create=True)
        rows.append(measure("postgresql", pg, docs, QUERIES, qvecs, embedder, lambda: pg.counts()["bytes"]))
        pg.close()
        backend.drop(loc)
    base = rows[0]["_bm25_top"]
    for r in rows:
        r["bm25 overlap@10 vs sqlite"] = float(np.mean([len(set(a) & set(b)) / max(len(a), 1)
                                                        for a, b in zip(base, r.pop("_bm25_top"))]))
    headers = [k for k in rows[0] if not k.startswith("_")]
    import platform

    print_table(f"Chunk stores at {args.chunks} chunks ({len(QUERIES)} queries, k=10)", headers,
                [[r[h] for h in headers] for r in rows],
                notes=[f"embedder {EMBEDDER}; seed {sum(len(d[1]) for d in seed_docs)} chunks of samples/k8s, copied "
                       "with noisy vectors; filter team=rare keeps about 2 % of the documents",
                       f"{platform.processor() or platform.machine()}; one run, shared machine: noisy timings"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
