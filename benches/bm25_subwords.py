"""Chinese sub-words in BM25: which indexing finds ``冰雪`` inside ``冰雪节`` without hurting recall.

One run, one knowledge base per data set (ingested once, fake embedder: BM25 does not use
vectors), re-indexed in turn with each BM25 tokenization of the chunks, every judged query
searched with the tokens that indexing expects (SQL FTS5 BM25, k1=1.2, b=0.75):

* ``precise (v1)``: jieba precise mode, the tokenizer before this change (queries: the same).
* ``search mode (v2)``: jieba ``cut_for_search`` for the chunks (precise words plus the
  dictionary words inside longer ones); queries in precise mode. knowbase's choice.
* ``search mode both``: ``cut_for_search`` for chunks and queries.
* ``precise + bigrams``: precise words plus every CJK character bigram, chunks and queries.

Data (``../shared/data``): CMRC 2018 derived retrieval dev set (3,219 Chinese questions ->
their paragraph; recall@1, recall@5, MRR) and BEIR SciFact train (English; nDCG@10, which
must not move: English tokens are the same in every variant). Ingest: chunks per second of
``KnowledgeBase.ingest`` (fake embedder; v2 tokens), and seconds to re-index every chunk with
each tokenization (the only ingest work that differs between them).

Usage::

    KNOWBASE_N_THREADS=1 .venv/bin/python benches/bm25_subwords.py [--limit N]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, BeirSet, bench_home, load_beir, print_table
from knowbase.evals.metrics import evaluate_run
from knowbase.knowledge.bm25 import TOKENIZER_V1, TOKENIZER_VERSION, query_tokens, tokenize

DATASETS = {
    "scifact": (SHARED_DATA / "beir-scifact", "train", "SciFact", ("ndcg@10", "recall@10")),
    "cmrc": (SHARED_DATA / "cmrc2018" / "derived-retrieval-dev", "dev", "CMRC", ("recall@1", "recall@5", "mrr")),
}
DEPTH = 50
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _bigrams(text: str) -> list[str]:
    return [run[i:i + 2] for run in _CJK.findall(text) for i in range(len(run) - 1)]


Variant = tuple[str, Callable[[str], list[str]], Callable[[str], list[str]]]
VARIANTS: list[Variant] = [
    ("precise (v1)", lambda t: tokenize(t), query_tokens),
    ("search mode (v2)", lambda t: tokenize(t, search=True), query_tokens),
    ("search mode both", lambda t: tokenize(t, search=True), lambda q: tokenize(q, search=True)),
    ("precise + bigrams", lambda t: tokenize(t) + _bigrams(t), lambda q: query_tokens(q) + _bigrams(q)),
]


def _reindex(store: object, doc_tokens: Callable[[str], list[str]]) -> float:
    """Rewrite every chunk's FTS row with ``doc_tokens``; seconds taken."""
    conn = store.conn  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    with store.transaction():  # type: ignore[attr-defined]
        rows = list(conn.execute("SELECT id, text FROM chunks"))
        conn.execute("DELETE FROM chunks_fts")
        for chunk_id, text in rows:
            conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (chunk_id, " ".join(doc_tokens(text))))
    return time.perf_counter() - t0


def run_dataset(data: BeirSet, metrics: Sequence[str], rows: dict[str, list[object]], notes: list[str]) -> None:
    from knowbase.knowledge.base import KnowledgeBase

    with tempfile.TemporaryDirectory(prefix="kb-subwords-") as tmp:
        folder = Path(tmp)
        for doc_id in data.corpus:
            (folder / f"{doc_id}.txt").write_text(data.doc_text(doc_id), encoding="utf-8")
        kb = KnowledgeBase.create(f"subwords-{data.name}", embedder="fake:16")
        t0 = time.perf_counter()
        report = kb.ingest([folder])
        ingest_s = time.perf_counter() - t0
    assert kb.store.tokenizer == TOKENIZER_VERSION
    notes.append(f"{data.name}: ingest {report.chunks} chunks in {ingest_s:.1f} s = {report.chunks / ingest_s:.0f} "
                 f"chunks/s (fake embedder, {TOKENIZER_VERSION} tokens)")
    chunk_doc = {cid: Path(path).stem for cid, path in kb.store.conn.execute(
        "SELECT c.id, d.path FROM chunks c JOIN documents d ON d.id = c.doc_id")}
    for label, doc_tokens, q_tokens in VARIANTS:
        reindex_s = _reindex(kb.store, doc_tokens)
        run: dict[str, list[str]] = {}
        t0 = time.perf_counter()
        for qid, text in data.queries.items():
            hits = kb.store.bm25_search(q_tokens(text), DEPTH, path_glob="*")  # SQL FTS5: this variant's rows
            run[qid] = list(dict.fromkeys(chunk_doc[cid] for cid, _ in hits))
        per_q = (time.perf_counter() - t0) / max(1, len(data.queries))
        m = evaluate_run(run, data.qrels, ndcg_k=(10,), recall_k=(1, 5, 10))
        rows.setdefault(label, [label]).extend([*(m[k] for k in metrics), f"{per_q * 1000:.1f}", f"{reindex_s:.1f}"])
        print(f"  {data.name:8} {label:20} " + ", ".join(f"{k}={m[k]:.3f}" for k in metrics)
              + f"  ({per_q * 1000:.1f} ms/query, re-index {reindex_s:.1f} s)", flush=True)
    kb.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cmrc,scifact")
    parser.add_argument("--limit", type=int, default=None, help="first N judged queries per data set")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    rows: dict[str, list[object]] = {}
    notes: list[str] = [f"old tokenizer {TOKENIZER_V1}; new {TOKENIZER_VERSION}",
                        "ms/q: BM25 search per query (SQL FTS5 path); re-index s: every chunk's tokens rewritten"]
    headers = ["BM25 indexing"]
    with bench_home():
        for name in names:
            folder, split, label, metrics = DATASETS[name]
            data = replace(load_beir(folder, split=split, limit=args.limit), name=label)
            print(f"{label}: {len(data.corpus)} documents, {len(data.queries)} judged queries", flush=True)
            run_dataset(data, metrics, rows, notes)
            headers += [f"{label} {m}" for m in metrics] + [f"{label} ms/q", f"{label} re-index s"]
    print()
    print_table("Chinese sub-words in BM25 (higher is better)", headers, list(rows.values()), notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
