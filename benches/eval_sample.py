"""``knowbase eval`` on the shipped sample test sets, with ragas's ID-based metrics side by side.

Builds a knowledge base from ``samples/k8s`` (English and Chinese) with the default embedder
(vectors from the bench embedding cache; questions are embedded for real), then runs
:class:`knowbase.evals.runner.EvalRunner` on ``samples/k8s-evals/en.yaml`` and ``zh.yaml``:

* extractive answers (no model) on every item;
* the embedded Qwen2.5-Coder-1.5B (or ``--model``) on the first ``--limit`` answerable and
  one unanswerable item of each set, and extractive answers on the same items, so the two
  rows compare like with like.

Then the retrieval of every item is scored again by ragas's non-LLM metrics
``IDBasedContextRecall`` and ``IDBasedContextPrecision`` (retrieved ids: the top-5 distinct
documents, each mapped to the expected source it matches; reference ids: the expected
sources), beside knowbase's recall@5 and precision over the same five documents, to show the
numbers agree. ragas is optional: without it the second table says so.

Usage (KNOWBASE_N_THREADS=1 on a shared machine)::

    KNOWBASE_N_THREADS=1 .venv/bin/python benches/eval_sample.py --limit 3
    .venv/bin/python benches/eval_sample.py --no-model            # extractive only, every item
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _common import SAMPLE, bench_home, cached_embedder, print_table

SETS = SAMPLE.parent / "k8s-evals"
COLUMNS = ("recall@5", "hit@1", "mrr", "ndcg@10", "key_fact_coverage", "citation_validity", "citation_precision",
           "abstention_precision", "abstention_recall", "latency_p50", "latency_p95")


def subset(items: Sequence[Any], limit: int) -> list[Any]:
    """The first ``limit`` answerable items and the first unanswerable one."""
    return [i for i in items if not i.unanswerable][:limit] + [i for i in items if i.unanswerable][:1]


def ragas_scores(records: Sequence[dict[str, Any]], items: dict[str, Any]) -> tuple[list[tuple], str]:
    """Per item: knowbase recall@5 and precision over the top-5 documents, ragas's ID-based
    recall and precision on the same ids. Returns rows and a note."""
    from knowbase.evals.scoring import ranked_sources

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ragas.dataset_schema import SingleTurnSample
            from ragas.metrics import IDBasedContextPrecision, IDBasedContextRecall
    except Exception as exc:  # not installed, or an incompatible langchain
        return [], f"ragas not available here ({type(exc).__name__}: {exc})"
    import ragas

    precision, recall = IDBasedContextPrecision(), IDBasedContextRecall()
    rows = []
    for r in records:
        item = items[r["id"]]
        if not item.expected_sources:
            continue
        top5 = ranked_sources(r["details"]["retrieved"], item.expected_sources)[:5]
        sample = SingleTurnSample(retrieved_context_ids=top5, reference_context_ids=list(item.expected_sources))
        kb_precision = sum(1 for d in top5 if d in item.expected_sources) / len(top5) if top5 else 0.0
        rows.append((r["id"], r["scores"]["recall@5"], float(recall.single_turn_score(sample)), kb_precision,
                     float(precision.single_turn_score(sample))))
    return rows, f"ragas {ragas.__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=3, help="answerable items per set for the model run")
    parser.add_argument("--model", default=None, help="chat model (default: the configured, embedded Qwen)")
    parser.add_argument("--no-model", action="store_true", help="extractive answers only")
    args = parser.parse_args(argv)

    from knowbase.evals.datasets import EvalSet, load_testset
    from knowbase.evals.runner import EvalRunner
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.registry import get_embedder

    sets = {lang: load_testset(SETS / f"{lang}.yaml") for lang in ("en", "zh")}
    everything = EvalSet(name="k8s-en+zh", items=tuple(i for s in sets.values() for i in s))
    few = EvalSet(name="subset", items=tuple(i for s in sets.values() for i in subset(s.items, args.limit)))
    by_id = {i.id: i for i in everything}
    rows: list[list[Any]] = []
    with bench_home():
        kb = KnowledgeBase.create("k8s-sample", embedder=cached_embedder())
        t0 = time.perf_counter()
        rep = kb.ingest([SAMPLE / "en", SAMPLE / "zh-cn"])
        built = f"{len(rep.added)} files, {rep.chunks} chunks, ingest {time.perf_counter() - t0:.0f} s (cached vectors)"
        kb.close()
        embedder = get_embedder(None, tracing=False)
        embedder.embed(["warm up"])
        kb = KnowledgeBase.open("k8s-sample", embedder=embedder)
        print(f"sample knowledge base: {built}", flush=True)

        def run(label: str, tset: EvalSet, **kw: Any) -> list[dict[str, Any]]:
            t = time.perf_counter()
            report = EvalRunner(kb=kb, **kw).run(tset)
            took = time.perf_counter() - t
            m = report.metrics
            rows.append([label, len(tset), *(m.get(c) for c in COLUMNS), took / len(tset)])
            print(f"{label}: {len(tset)} items in {took:.0f} s", flush=True)
            return report.records

        all_records = run("extractive, every item", everything, extractive=True)
        run(f"extractive, subset ({len(few)})", few, extractive=True)
        if not args.no_model:
            model = kb.chat_model(args.model)
            t = time.perf_counter()
            model.chat("Say OK.", max_tokens=2)
            print(f"model {model.spec} loaded in {time.perf_counter() - t:.0f} s", flush=True)
            run(f"{model.spec}, subset ({len(few)})", few, model=model)
        kb.close()
    print()
    print_table("knowbase eval on samples/k8s-evals (en + zh)", ["run", "items", *COLUMNS, "s/item"], rows,
                notes=["latency: seconds per item (the ask call; model loaded and warmed up first)",
                       "unmeasured metrics print as '-'; timings are noisy on a shared 2-core machine"])
    ragas_rows, note = ragas_scores(all_records, by_id)
    print()
    if not ragas_rows:
        print(f"ragas: {note}")
        return 0
    n = len(ragas_rows)
    diffs = [max(abs(r[1] - r[2]), abs(r[3] - r[4])) for r in ragas_rows]
    print_table("retrieval: knowbase vs ragas ID-based metrics (top-5 documents, same ids)",
                ["metric", "items", "knowbase", "ragas", "max |diff| per item"],
                [["context recall (recall@5)", n, sum(r[1] for r in ragas_rows) / n, sum(r[2] for r in ragas_rows) / n,
                  max(abs(r[1] - r[2]) for r in ragas_rows)],
                 ["context precision (top-5 docs)", n, sum(r[3] for r in ragas_rows) / n,
                  sum(r[4] for r in ragas_rows) / n, max(abs(r[3] - r[4]) for r in ragas_rows)]],
                notes=[note, f"items that differ anywhere: {sum(1 for d in diffs if d > 1e-9)}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
