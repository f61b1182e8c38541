"""Retrieval quality of knowbase next to its peers, on the same queries in the same run.

Data (``../shared/data``):

* BEIR SciFact (English claims -> abstracts), train judgments ``qrels/train.tsv``
  (809 queries, 919 judgments): nDCG@10 and recall@10. Published anchor: BM25
  nDCG@10 = 0.665 on the *test* split (BEIR paper, Thakur et al. 2021), so train figures
  are comparable in size, not equal.
* CMRC 2018 derived retrieval set (Chinese questions -> their source paragraph; dev,
  3,219 queries over 848 paragraphs): recall@1, recall@5 and MRR. Only the source
  paragraph is judged relevant, so recall is a lower bound.

Systems (rows):

* ``knowbase bm25 | dense | hybrid``: ``KnowledgeBase.search(query, mode=...)`` on a
  knowledge base built from the corpus (one ``.txt`` file per document: title, blank
  line, text), chunks mapped back to their document (best chunk counts), with the
  fp32 embedder (``sentence-transformers:all-minilm-l6-v2`` on torch; ``--embedder`` changes it).
* ``knowbase dense | hybrid (onnx int8)``: the same with each ``--extra-embedders`` model
  (default ``onnx:all-minilm-l6-v2``: the same weights exported to ONNX and quantised to
  int8, see ``knowbase.models.onnx_embedder``), in the modes that use vectors (bm25 does
  not depend on the embedder: same tokenizer, same chunks).
* ``bm25s``: bm25s 0.2+ (Lucene BM25, k1=1.5, b=0.75) over the same title+text; English
  with PyStemmer's English stemmer and bm25s' English stop words, Chinese on jieba words.
* ``ST cosine``: sentence-transformers with the same all-MiniLM-L6-v2, one vector per
  document (the model truncates at 256 word pieces), exact cosine search.
* ``RRF(bm25s, ST)``: plain Reciprocal Rank Fusion of the two peers (Cormack et al. 2009,
  k=60, top 100 of each): the naive fusion the hybrid mode has to beat.

Embeddings are cached on disk (``~/.cache/knowbase-bench``, keyed by model and SHA-256 of
the exact text; see ``_common.EmbeddingCache``), because embedding SciFact's 5,183
abstracts takes minutes on 2 cores. The peer and knowbase share one cache only because
the computation is identical: the same model folder, ``SentenceTransformer.encode`` with
``normalize_embeddings=False`` on the same text, normalised afterwards (knowbase's
``STEmbedder`` + ``Embedder`` do exactly this). So a vector is reused only where the
peer's document text equals a knowbase chunk text (a short abstract kept whole); every
other text is embedded for real. The notes under the table give the embedding seconds
actually spent in this run and the hit counts, so a cached run is never mistaken for a
fast one.

Usage::

    .venv/bin/python benches/kb_quality.py                     # both data sets, all queries
    .venv/bin/python benches/kb_quality.py --limit 100         # first 100 judged queries each
    .venv/bin/python benches/kb_quality.py --datasets cmrc --no-peers
    .venv/bin/python benches/kb_quality.py --datasets scifact --modes bm25 --embedder fake:384 --peers bm25s --extra-embedders ''   # BM25 only, no model
    nice -n 19 .venv/bin/python benches/kb_quality.py --datasets scifact --extra-embedders onnx:all-minilm-l6-v2,onnx:all-minilm-l6-v2@fp32
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SHARED_DATA,
    BeirSet,
    CachingBackend,
    EmbeddingCache,
    Stopwatch,
    bench_home,
    cached_embedder,
    jieba_tokens,
    load_beir,
    minilm_folder,
    peak_rss_mb,
    print_table,
)
from knowbase.errors import KnowbaseError
from knowbase.evals.metrics import evaluate_run

DATASETS = {
    "scifact": {"folder": SHARED_DATA / "beir-scifact", "split": "train", "lang": "en", "label": "SciFact"},
    "cmrc": {"folder": SHARED_DATA / "cmrc2018" / "derived-retrieval-dev", "split": "dev", "lang": "zh",
             "label": "CMRC"},
}
METRICS = {"en": ("ndcg@10", "recall@10"), "zh": ("recall@1", "recall@5", "mrr")}
DEPTH = 100       # ranked documents kept per query (for fusion of the peers)
CHUNK_DEPTH = 50  # chunks asked from knowbase per query, collapsed to documents
RRF_K = 60        # Cormack et al. 2009


Run = dict[str, list[str]]


# --- knowbase --------------------------------------------------------------------------------
def run_knowbase(data: BeirSet, modes: Sequence[str], *, embedder_spec: str | None,
                 notes: list[str], suffix: str = "") -> dict[str, tuple[Run, float]]:
    """Ingest the corpus into a fresh knowledge base and search every query in every mode.

    Args:
        suffix: appended to the knowledge base's name (one per embedder in a run).

    Returns ``{mode: (run, mean seconds per query)}``.
    """
    from knowbase.knowledge.base import KnowledgeBase

    embedder = cached_embedder(embedder_spec)
    with tempfile.TemporaryDirectory(prefix=f"kb-{data.name}-docs-") as tmp:
        folder = Path(tmp)
        for doc_id in data.corpus:
            (folder / f"{doc_id}.txt").write_text(data.doc_text(doc_id), encoding="utf-8")
        kb = KnowledgeBase.create(f"bench-{data.name}{suffix}", embedder=embedder)
        t0 = time.perf_counter()
        report = kb.ingest([folder])
        ingest_s = time.perf_counter() - t0
    backend: CachingBackend = embedder.backend
    notes.append(f"{data.name}: knowbase [{embedder.spec}] ingest {ingest_s:.1f} s ({_describe(report)}); "
                 f"embedding {backend.encode_seconds:.1f} s spent, cache {backend.cache.hits} hits / "
                 f"{backend.cache.misses} misses")
    out: dict[str, tuple[Run, float]] = {}
    for mode in modes:
        run: Run = {}
        watch = Stopwatch()
        for qid, text in data.queries.items():
            with watch():
                hits = kb.search(text, k=CHUNK_DEPTH, mode=mode)
            run[qid] = _collapse(Path(h.chunk.path).stem for h in hits)
        out[mode] = (run, watch.seconds / max(1, len(data.queries)))
    close = getattr(kb, "close", None)
    if callable(close):
        close()
    return out


def embedder_label(spec: str) -> str:
    """Short row label of an extra embedder: ``onnx int8``, ``onnx fp32``, else the model string."""
    backend, _, rest = spec.partition(":")
    if backend == "onnx":
        return f"onnx {rest.rpartition('@')[2] if '@' in rest else 'int8'}"
    return spec


def _describe(report: Any) -> str:
    """``added 5183, failed 0, ...`` from an IngestReport (counts or lists of items)."""
    parts = []
    for key in ("added", "updated", "skipped", "failed", "chunks"):
        value = getattr(report, key, None)
        if isinstance(value, (list, tuple, dict)):
            value = len(value)
        if isinstance(value, int):
            parts.append(f"{key} {value}")
    return ", ".join(parts) or type(report).__name__


def _collapse(doc_ids: Any) -> list[str]:
    """Document ids in order of their best chunk, each once."""
    seen: dict[str, None] = {}
    for d in doc_ids:
        seen.setdefault(d, None)
    return list(seen)


# --- peers -------------------------------------------------------------------------------------
def run_bm25s(data: BeirSet, lang: str) -> tuple[Run, float]:
    """bm25s over title+text; returns (run, mean seconds per query)."""
    import bm25s

    ids = list(data.corpus)
    texts = [data.doc_text(d) for d in ids]
    if lang == "en":
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
        corpus_tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)

        def tokenize(q: list[str]) -> Any:
            return bm25s.tokenize(q, stopwords="en", stemmer=stemmer, show_progress=False)
    else:
        corpus_tokens = [jieba_tokens(t) for t in texts]

        def tokenize(q: list[str]) -> Any:
            return [jieba_tokens(x) or ["\u2205"] for x in q]
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)
    run: Run = {}
    watch = Stopwatch()
    for qid, text in data.queries.items():
        with watch():
            docs, scores = retriever.retrieve(tokenize([text]), k=min(DEPTH, len(ids)), show_progress=False)
        run[qid] = [ids[i] for i, s in zip(docs[0], scores[0]) if s > 0]
    return run, watch.seconds / max(1, len(data.queries))


class _STPeer:
    """Plain sentence-transformers encoding, as an embedding backend for the cache."""

    backend_name = "peer-sentence-transformers"

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        folder = minilm_folder()
        self.model = SentenceTransformer(str(folder), device="cpu")
        self.model_name = folder.name
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = dim_of()
        self.max_seq_length = self.model.max_seq_length
        self.languages = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=32, normalize_embeddings=False, convert_to_numpy=True,
                                 show_progress_bar=False)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def run_st(data: BeirSet, notes: list[str]) -> tuple[Run, float]:
    """Exact cosine search over one MiniLM vector per document; (run, mean s per query)."""
    # same cache as knowbase's default embedder: identical computation (see the module docstring)
    peer = CachingBackend(_STPeer(), EmbeddingCache("sentence-transformers:all-minilm-l6-v2"))
    ids = list(data.corpus)
    doc_vecs = _unit(peer.encode([data.doc_text(d) for d in ids]))
    doc_s = peer.encode_seconds
    run: Run = {}
    watch = Stopwatch()
    for qid, text in data.queries.items():
        with watch():
            q = _unit(peer.encode([text])[0])
            scores = doc_vecs @ q
            top = np.argpartition(-scores, min(DEPTH, len(ids) - 1))[:DEPTH]
            top = top[np.argsort(-scores[top])]
        run[qid] = [ids[i] for i in top]
    notes.append(f"{data.name}: ST peer document embedding {doc_s:.1f} s spent in this run "
                 f"(cache {peer.cache.hits} hits / {peer.cache.misses} misses over documents and queries)")
    return run, watch.seconds / max(1, len(data.queries))


def rrf(*runs: Run, k: int = RRF_K, depth: int = DEPTH) -> Run:
    """Reciprocal Rank Fusion of several runs: score(d) = sum 1/(k + rank), rank from 1."""
    fused: Run = {}
    for qid in runs[0]:
        scores: dict[str, float] = {}
        for run in runs:
            for rank, doc in enumerate(run.get(qid, [])[:depth], 1):
                scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
        fused[qid] = sorted(scores, key=lambda d: -scores[d])
    return fused


def _cell(value: float | None, metric: str) -> object:
    return f"{value:.1f}" if value is not None and metric == "ms/query" else value


# --- main ----------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="scifact,cmrc", help="comma list: scifact, cmrc")
    parser.add_argument("--limit", type=int, default=None, help="first N judged queries per data set")
    parser.add_argument("--modes", default="bm25,dense,hybrid", help="knowbase search modes")
    parser.add_argument("--embedder", default="sentence-transformers:all-minilm-l6-v2",
                        help="knowbase embedder of the main rows (default: the fp32 MiniLM on torch)")
    parser.add_argument("--extra-embedders", default="onnx:all-minilm-l6-v2",
                        help="comma list of more knowbase embedders, rows for the modes that use vectors ('' for none)")
    parser.add_argument("--peers", default="bm25s,st", help="comma list of peers: bm25s, st ('' for none)")
    parser.add_argument("--no-peers", action="store_true", help="skip every peer (same as --peers '')")
    parser.add_argument("--no-knowbase", action="store_true", help="peers only")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown data set(s): {', '.join(unknown)}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    extra_embedders = [e.strip() for e in args.extra_embedders.split(",") if e.strip()]
    peers = set() if args.no_peers else {p.strip() for p in args.peers.split(",") if p.strip()}
    if peers - {"bm25s", "st"}:
        parser.error(f"unknown peer(s): {', '.join(sorted(peers - {'bm25s', 'st'}))}")
    notes: list[str] = []
    results: dict[str, dict[str, dict[str, float]]] = {}   # system -> dataset -> metrics
    systems: list[str] = []

    def record(system: str, dataset: str, run: Run, per_query_s: float, data: BeirSet, lang: str) -> None:
        m = evaluate_run(run, data.qrels, ndcg_k=(10,), recall_k=(1, 5, 10))
        m["ms/query"] = round(per_query_s * 1000, 1)
        results.setdefault(system, {})[dataset] = m
        if system not in systems:
            systems.append(system)
        shown = ", ".join(f"{k}={m[k]:.3f}" for k in METRICS[lang])
        print(f"  {DATASETS[dataset]['label']:8} {system:22} {shown}  ({m['ms/query']:.1f} ms/query)", flush=True)

    with bench_home():
        for name in names:
            cfg = DATASETS[name]
            data = replace(load_beir(cfg["folder"], split=cfg["split"], limit=args.limit), name=cfg["label"])
            lang = cfg["lang"]
            print(f"{cfg['label']}: {len(data.corpus)} documents, {len(data.queries)} judged queries", flush=True)
            if not args.no_knowbase:  # first: the peer reuses vectors of identical texts (see the docstring)
                try:
                    kb_runs = run_knowbase(data, modes, embedder_spec=args.embedder, notes=notes)
                except ImportError as exc:
                    notes.append(f"{name}: knowbase skipped: {exc}")
                else:
                    for mode, (run, s) in kb_runs.items():
                        record(f"knowbase {mode}", name, run, s, data, lang)
                vector_modes = [m for m in modes if m != "bm25"]
                for n_extra, spec in enumerate(extra_embedders if vector_modes else []):
                    try:
                        kb_runs = run_knowbase(data, vector_modes, embedder_spec=spec, notes=notes,
                                               suffix=f"-extra{n_extra}")
                    except (ImportError, KnowbaseError) as exc:
                        notes.append(f"{name}: knowbase with {spec} skipped: {exc}")
                        continue
                    for mode, (run, s) in kb_runs.items():
                        record(f"knowbase {mode} ({embedder_label(spec)})", name, run, s, data, lang)
            peer_runs: dict[str, Run] = {}
            if "bm25s" in peers:
                run, s = run_bm25s(data, lang)
                peer_runs["bm25s"] = run
                record("bm25s" + (" (jieba)" if lang == "zh" else ""), name, run, s, data, lang)
            if "st" in peers:
                run, s = run_st(data, notes)
                peer_runs["st"] = run
                record("ST cosine (MiniLM)", name, run, s, data, lang)
            if len(peer_runs) == 2:
                record("RRF(bm25s, ST) k=60", name, rrf(peer_runs["bm25s"], peer_runs["st"]), 0.0, data, lang)

    systems.sort(key=lambda s: s.startswith("knowbase"))  # peers first, then knowbase's modes (stable order)
    headers = ["system"]
    columns: list[tuple[str, str]] = []
    for name in names:
        for metric in METRICS[DATASETS[name]["lang"]]:
            headers.append(f"{DATASETS[name]['label']} {metric}")
            columns.append((name, metric))
        headers.append(f"{DATASETS[name]['label']} ms/q")
        columns.append((name, "ms/query"))
    rows = [[s] + [_cell(results[s].get(d, {}).get(m), m) for d, m in columns] for s in systems]
    queries = {n: int(next((r[n]["queries"] for r in results.values() if n in r), 0)) for n in names}
    notes = ["queries judged: " + ", ".join(f"{DATASETS[n]['label']} {queries[n]}" for n in names)
             + (f" (--limit {args.limit})" if args.limit else " (all)"),
             "published anchor: BM25 nDCG@10 = 0.665 on SciFact *test* (BEIR paper); this is the train split",
             "ms/q: search wall time per query (knowbase: KnowledgeBase.search incl. query embedding; "
             "RRF row: fusion only, 0)", *notes, f"peak RSS {peak_rss_mb():.0f} MiB"]
    print()
    print_table("Retrieval quality (higher is better)", headers, rows, notes=notes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
