"""Calibrate the knowledge base's retrieval-based abstention (``AbstainPolicy``) on real data.

Method: shuffle the judged queries of a data set (seed 0) and split them in two halves.
Build a knowledge base from the corpus WITHOUT the relevant documents of the second half.
Then the first half are answerable questions (their documents are in the knowledge base)
and the second half unanswerable ones (in-domain questions whose documents are absent).
For each question, retrieve k=4 passages (default hybrid) and compute the two signals of
``knowbase.knowledge.answer.support_signals``: IDF-weighted topic-term coverage by the best
passage, and the best dense cosine. The table prints both distributions and the share of
each half that a threshold abstains on; the shipped threshold keeps false abstentions on
answerable questions at or under 5 %.

The same signals also hold the unknown-term rule (a question term that occurs in no chunk
of the knowledge base): the share of each half that it abstains on is printed.

``--data k8s`` calibrates instead on the answers benchmark (``benches/data/kb_questions.jsonl``)
against a knowledge base built from ``samples/k8s`` (``--kb``, e.g. the demo's), with a
hold-out: within each group (English, Chinese, unanswerable) the odd-numbered questions
calibrate and the even-numbered ones report. ``min_coverage`` is the multiple of 0.05 that
abstains on no answerable calibration question and on the most unanswerable ones; among
equals the lowest (the least strict on other collections).

Usage (small limits while developing; the fake embedder measures coverage only)::

    .venv/bin/python benches/calibrate_kb_abstain.py --data scifact --queries 200 --docs 1500
    .venv/bin/python benches/calibrate_kb_abstain.py --data cmrc --queries 300
    .venv/bin/python benches/calibrate_kb_abstain.py --data scifact --embedder sentence-transformers:all-minilm-l6-v2
    .venv/bin/python benches/calibrate_kb_abstain.py --data k8s --kb ~/.knowbase/kb/k8s-sample.db
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from knowbase.config import Settings
from knowbase.knowledge.answer import (
    AbstainPolicy,
    idf_table,
    support_signals,
    unknown_share,
    unknown_terms,
    with_known_parts,
)
from knowbase.knowledge.base import KnowledgeBase
from knowbase.knowledge.bm25 import tokenize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {
    "scifact": (DATA / "beir-scifact", "qrels/train.tsv"),
    "cmrc": (DATA / "cmrc2018" / "derived-retrieval-dev", "qrels/dev.tsv"),
}


def load(name: str) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    folder, qrels_name = SETS[name]
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            corpus[str(row["_id"])] = (row.get("title", "") + "\n" + row["text"]).strip()
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, set[str]] = {}
    qpath = folder / qrels_name
    if not qpath.exists():
        qpath = next((folder / "qrels").glob("*.tsv"))
    with open(qpath, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            parts = line.strip().split("\t")
            if len(parts) >= 3 and int(parts[2]) > 0:
                qrels.setdefault(parts[0], set()).add(parts[1])
    return corpus, queries, qrels


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=sorted(SETS) + ["k8s"], default="scifact")
    ap.add_argument("--kb", type=Path, default=None, help="--data k8s: the sample knowledge base file (.db)")
    ap.add_argument("--queries", type=int, default=200, help="questions in all (half answerable)")
    ap.add_argument("--docs", type=int, default=1500, help="most corpus documents in the knowledge base")
    ap.add_argument("--embedder", default="fake", help="embedder model string (fake: coverage only)")
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("--no-split-compounds", dest="split_compounds", action="store_false",
                    help="count a Chinese compound whose parts occur as unknown (knowbase before this rule)")
    args = ap.parse_args()
    if args.data == "k8s":
        calibrate_k8s(args.kb or Path.home() / ".knowbase" / "kb" / "k8s-sample.db", k=args.k, mode=args.mode)
        return

    corpus, queries, qrels = load(args.data)
    rng = random.Random(0)
    qids = sorted(q for q in qrels if q in queries)
    rng.shuffle(qids)
    qids = qids[: args.queries]
    half = len(qids) // 2
    answerable, unanswerable = qids[:half], qids[half:]
    removed = set().union(*(qrels[q] for q in unanswerable)) if unanswerable else set()
    keep = set().union(*(qrels[q] for q in answerable)) - removed
    others = [d for d in corpus if d not in removed and d not in keep]
    rng.shuffle(others)
    doc_ids = sorted(keep) + others[: max(0, args.docs - len(keep))]
    answerable = [q for q in answerable if qrels[q] & set(doc_ids)]

    with tempfile.TemporaryDirectory() as home:
        settings = Settings.load(home, tracing=False)
        kb = KnowledgeBase.create("calib", embedder=args.embedder, settings=settings)
        t0 = time.perf_counter()
        for i in range(0, len(doc_ids), 200):
            part = doc_ids[i:i + 200]
            kb.add_texts([corpus[d] for d in part], metadatas=[{"id": d} for d in part], source=args.data)
        ingest_s = time.perf_counter() - t0
        signals: dict[str, list[tuple[float, float | None]]] = {"answerable": [], "unanswerable": []}
        unknown: dict[str, list[float]] = {"answerable": [], "unanswerable": []}
        for label, ids in (("answerable", answerable), ("unanswerable", unanswerable)):
            for q in ids:
                text = queries[q]
                hits = kb.search(text, k=args.k, mode=args.mode)
                toks = tokenize(text)
                n, dfs = kb.store.doc_freqs(toks)
                signals[label].append(support_signals(toks, hits, idf_table(n, dfs)))
                seen = with_known_parts(toks, dfs, kb.store.doc_freqs) if args.split_compounds else dfs
                unknown[label].append(unknown_share(toks, seen, idf_table(n, dfs)))
        kb.close()

    print(f"\n{args.data}: {len(doc_ids)} documents in the knowledge base (ingest {ingest_s:.0f} s, "
          f"embedder {args.embedder}), {len(answerable)} answerable and {len(unanswerable)} unanswerable questions, "
          f"k={args.k}, mode={args.mode}\n")
    print(f"{'signal':10} {'set':13} {'p5':>6} {'p25':>6} {'p50':>6} {'p75':>6} {'p95':>6}")
    for idx, name in ((0, "coverage"), (1, "cosine")):
        for label, rows in signals.items():
            vals = [r[idx] for r in rows if r[idx] is not None]
            if not vals:
                continue
            print(f"{name:10} {label:13} " + " ".join(f"{pct(vals, p):6.3f}" for p in (5, 25, 50, 75, 95)))
    cov_a = [r[0] for r in signals["answerable"]]
    cov_u = [r[0] for r in signals["unanswerable"]]
    print(f"\n{'min_coverage':>12} {'abstain on answerable':>22} {'abstain on unanswerable':>24}")
    for th in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        fa = np.mean([c < th for c in cov_a]) if cov_a else float("nan")
        fu = np.mean([c < th for c in cov_u]) if cov_u else float("nan")
        print(f"{th:12.2f} {fa:22.3f} {fu:24.3f}")
    print(f"\n{'max_unknown':>12} {'abstain on answerable':>22} {'abstain on unanswerable':>24}  (unknown-term rule)")
    for th in (1e-9, 0.1, 0.2, 0.3, 0.4):
        rates = [np.mean([u >= th for u in unknown[label]]) if unknown[label] else float("nan")
                 for label in ("answerable", "unanswerable")]
        print(f"{th:12.2f} {rates[0]:22.3f} {rates[1]:24.3f}")
    both = {label: [c < policy_cov or u >= 0.2 for (c, _), u in zip(signals[label], unknown[label])]
            for label in signals for policy_cov in [AbstainPolicy().min_coverage]}
    print(f"shipped policy (coverage and unknown-term rules, cosine not counted): abstains on "
          f"{np.mean(both['answerable']):.3f} of answerable, {np.mean(both['unanswerable']):.3f} of unanswerable")
    policy = AbstainPolicy()
    print(f"\nshipped: min_coverage={policy.min_coverage}, min_cosine={policy.min_cosine}; "
          f"5th percentile of answerable coverage: {pct(cov_a, 5):.3f}")


def calibrate_k8s(kb_path: Path, *, k: int = 4, mode: str = "hybrid") -> None:
    """Hold-out calibration of ``min_coverage`` on the answers benchmark (see the module docstring)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import load_questions
    from knowbase.models.registry import get_embedder

    with tempfile.TemporaryDirectory() as home:
        settings = Settings.load(home, tracing=False)
        kb = KnowledgeBase.open(kb_path, settings=settings, embedder=get_embedder(None, tracing=False))
        rows = []
        seen: dict[str, int] = {}
        for q in load_questions():
            group = q["lang"] if q["answerable"] else "none"
            seen[group] = seen.get(group, 0) + 1
            toks = tokenize(q["question"])
            n, dfs = kb.store.doc_freqs(toks)
            cov, cos = support_signals(toks, kb.search(q["question"], k=k, mode=mode), idf_table(n, dfs))
            known = with_known_parts(toks, dfs, kb.store.doc_freqs)
            rows.append({"id": q["id"], "answerable": q["answerable"], "calibrate": seen[group] % 2 == 1,
                         "coverage": cov, "cosine": cos, "unknown": unknown_terms(toks, known), "lang": q["lang"],
                         "share": unknown_share(toks, known, idf_table(n, dfs))})
        kb.close()
    calib = [r for r in rows if r["calibrate"]]
    policy = AbstainPolicy()
    floor = min(r["coverage"] for r in calib if r["answerable"])

    def abstains(r: dict, th: float) -> bool:
        if policy.max_unknown is not None and r["share"] >= policy.max_unknown:
            return True
        return r["coverage"] < th and not (r["lang"] == "en" and r["cosine"] is not None
                                            and r["cosine"] >= policy.min_cosine)

    # no false abstention on the calibration half, the most abstentions on its unanswerable
    # questions; among equals the lowest threshold (the least strict on other collections)
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    ok = [t for t in grid if not any(abstains(r, t) for r in calib if r["answerable"])]
    best = max(sum(abstains(r, t) for r in calib if not r["answerable"]) for t in ok)
    th = min(t for t in ok if sum(abstains(r, t) for r in calib if not r["answerable"]) == best)
    print(f"calibration half: {sum(r['answerable'] for r in calib)} answerable (lowest coverage {floor:.3f}), "
          f"{sum(not r['answerable'] for r in calib)} unanswerable -> min_coverage {th:.2f} "
          f"(thresholds {min(t for t in ok if sum(abstains(r, t) for r in calib if not r['answerable']) == best):.2f}"
          f"..{max(t for t in ok if sum(abstains(r, t) for r in calib if not r['answerable']) == best):.2f} "
          f"separate the calibration half equally well)")
    print(f"shipped: {policy}")
    for name, part in (("calibration", calib), ("report", [r for r in rows if not r["calibrate"]])):
        for answerable in (True, False):
            sel = [r for r in part if r["answerable"] == answerable]
            flag = [policy.max_unknown is not None and r["share"] >= policy.max_unknown for r in sel]
            by_unknown = sum(flag)
            by_cov = sum(1 for r, f in zip(sel, flag) if not f and abstains(r, th))
            print(f"{name:12} {'answerable' if answerable else 'unanswerable':13} n={len(sel):3} "
                  f"abstain {(by_unknown + by_cov) / max(1, len(sel)):.2f} (unknown term {by_unknown}, "
                  f"coverage/cosine {by_cov})")
    for r in rows:
        if not r["answerable"]:
            cos = "-" if r["cosine"] is None else f"{r['cosine']:.2f}"
            print(f"  {r['id']:11} coverage {r['coverage']:.2f} cosine {cos} unknown {r['unknown']} "
                  f"(share {r['share']:.2f})")
    shares = [r["share"] for r in rows if r["answerable"]]
    print(f"unknown share on answerable questions: max {max(shares):.2f}")


if __name__ == "__main__":
    main()
