"""Cited answers on the Kubernetes sample: correctness, citation precision, abstention, latency.

Runs the questions of ``benches/data/kb_questions.jsonl`` (30 English, 30 Chinese, 20 the
sample cannot answer) through ``KnowledgeBase.ask_stream`` on a knowledge base built from
``samples/k8s/en`` and ``samples/k8s/zh-cn``, with the embedded Qwen2.5-Coder-1.5B by
default, or with no model at all (``--extractive``).

Figures (per group and overall):

* retrieval hit: a passage given to the model comes from a page that answers the question;
* citation precision: cited passages that come from a right page / all cited passages
  (micro-averaged over answered, answerable questions); the English and Chinese versions
  of a page count as the same page (they state the same facts);
* correctness (automatic): the answer holds every key term of the reference answer
  (each term may list alternatives; numbers and Latin words match as whole words,
  Chinese as substrings); ``term share`` is the mean share of key terms found. Abstaining
  on an answerable question counts as wrong. The answers are printed for a person to judge;
* correctness judged by a person: ``benches/data/kb_answers_judgments.jsonl``, one line per
  question and run (``run`` names the model, settings and code state), ``verdict`` one of
  ``correct`` (states the reference fact(s) of the gold page and nothing that contradicts
  it; extra text copied from the page is allowed), ``partial`` (some of the facts),
  ``wrong`` (missing or wrong facts; ``wrong (abstained)`` when the model said NOT FOUND),
  ``abstained (right)`` / ``answered (should abstain)`` for the unanswerable group;
* abstention rate: on the unanswerable group it should be 1; on the others, 0;
* time to first source (the ``sources`` event, retrieval done) and time to first answer
  token, p50 and p95, seconds, measured from the call; model loading and one warm-up call
  come before the clock starts, unless ``--cold`` (then the first question pays for
  loading the model, as the first question of a new process does);
* prompt tokens (p50) and generation speed: completion tokens after the first / seconds
  from the first to the last answer token, summed over the group's generated answers
  (``gen tok/s``); ``--prompt-lookup N`` turns on prompt-lookup decoding with N drafted
  tokens (0 = off), so two runs compare it on the same prompts.

Ingest uses the bench embedding cache (not measured here); questions are embedded for
real. Tracing is off; the knowledge base lives in a temporary ``KNOWBASE_HOME``.

Usage::

    .venv/bin/python benches/kb_answers.py --limit 3                  # 3 per group, Qwen
    .venv/bin/python benches/kb_answers.py --extractive               # all 80, no model
    .venv/bin/python benches/kb_answers.py --lang zh --limit 5 --model llamacpp:smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SAMPLE, bench_home, cached_embedder, load_questions, percentile, print_table

GROUPS = ("en", "zh", "none")


def group_of(q: dict[str, Any]) -> str:
    return q["lang"] if q["answerable"] else "none"


def term_found(term: str, text: str) -> bool:
    """Whole-word, case-insensitive match for ASCII terms; substring for others."""
    if term.isascii():
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None
    return term.lower() in text.lower()


_CITATION = re.compile(r"\[\d+(?:\s*[,，、]\s*\d+)*\]")


def key_term_share(key_terms: Sequence[str | Sequence[str]], text: str) -> float:
    """Share of key terms (each a string or a list of alternatives) found in ``text``, citation
    markers such as ``[2]`` removed first (so they never count as the number 2); 1.0 if none."""
    if not key_terms:
        return 1.0
    text = _CITATION.sub(" ", text)
    hits = sum(1 for k in key_terms if any(term_found(a, text) for a in ([k] if isinstance(k, str) else k)))
    return hits / len(key_terms)


def on_page(path: str, pages: Sequence[str]) -> bool:
    """True when ``path`` is one of ``pages`` (``en/...`` or ``zh-cn/...`` under the sample) in
    either language: the English and Chinese versions of a page state the same facts."""
    p = path.replace("\\", "/")
    for page in pages:
        rest = page.split("/", 1)[1]
        if p.endswith("/en/" + rest) or p.endswith("/zh-cn/" + rest):
            return True
    return False


def rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(SAMPLE.resolve()))
    except ValueError:
        return path


def ask_one(kb: Any, q: dict[str, Any], *, model: Any, k: int, extractive: bool) -> dict[str, Any]:
    """Ask one question; returns a record with the answer, checks and timings (seconds)."""
    t0 = time.perf_counter()
    t_sources = t_first = t_last = None
    answer = None
    for event in kb.ask_stream(q["question"], model=model, k=k, extractive=extractive):
        now = time.perf_counter() - t0
        if event.kind == "sources" and t_sources is None:
            t_sources = now
        elif event.kind == "delta":
            if t_first is None and event.text.strip():
                t_first = now
            t_last = now
        elif event.kind == "answer":
            answer = event.answer
    total = time.perf_counter() - t0
    assert answer is not None
    cited = [c.chunk.path for c in answer.citations]
    pages = q["pages"]
    return {
        "id": q["id"], "group": group_of(q), "question": q["question"], "reference": q["answer"],
        "answer": answer.text, "abstained": answer.abstained,
        "citations": [f"[{c.n}] {rel(c.chunk.path)}" for c in answer.citations],
        "invalid_citations": list(answer.invalid_citations),
        "retrieval_hit": any(on_page(p.chunk.path, pages) for p in answer.passages) if pages else None,
        "cited": len(cited), "cited_right": sum(1 for p in cited if on_page(p, pages)) if pages else 0,
        "term_share": key_term_share(q["key_terms"], answer.text) if q["answerable"] and not answer.abstained else 0.0,
        "t_sources": t_sources, "t_first_token": t_first, "t_total": total,
        "t_gen": (t_last - t_first) if t_first is not None and t_last is not None else None,
        "t_model_ready": answer.timings.get("model_ready"),
        "prompt_tokens": answer.usage.prompt_tokens if answer.usage is not None else None,
        "completion_tokens": answer.usage.completion_tokens if answer.usage is not None else None,
    }


def summarize(records: list[dict[str, Any]]) -> list[Any]:
    """One table row: n, retrieval hit, citation precision, correct, term share, abstained, latencies, tokens."""
    n = len(records)
    answerable = [r for r in records if r["group"] != "none"]
    answered = [r for r in answerable if not r["abstained"]]
    cited = sum(r["cited"] for r in answered)
    ttfs = [r["t_sources"] for r in records if r["t_sources"] is not None]
    ttft = [r["t_first_token"] for r in records if r["t_first_token"] is not None]
    prompts = [r["prompt_tokens"] for r in records if r.get("prompt_tokens")]
    timed = [r for r in records if r.get("completion_tokens") and r.get("t_gen")]
    gen_tokens = sum(r["completion_tokens"] - 1 for r in timed)
    gen_seconds = sum(r["t_gen"] for r in timed)
    return [
        n,
        sum(1 for r in answerable if r["retrieval_hit"]) / len(answerable) if answerable else None,
        sum(r["cited_right"] for r in answered) / cited if cited else None,
        sum(1 for r in answerable if r["term_share"] == 1.0) / len(answerable) if answerable else None,
        sum(r["term_share"] for r in answerable) / len(answerable) if answerable else None,
        sum(1 for r in records if r["abstained"]) / n if n else None,
        percentile(ttfs, 50) if ttfs else None,
        percentile(ttfs, 95) if ttfs else None,
        percentile(ttft, 50) if ttft else None,
        percentile(ttft, 95) if ttft else None,
        percentile([r["t_total"] for r in records], 50) if records else None,
        percentile(prompts, 50) if prompts else None,
        gen_tokens / gen_seconds if gen_seconds else None,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N questions of each group")
    parser.add_argument("--lang", action="append", choices=GROUPS,
                        help="groups to run (repeatable): en, zh, none (the unanswerable); default all")
    parser.add_argument("--model", default=None, help="chat model string (default: configured, the embedded Qwen)")
    parser.add_argument("--extractive", action="store_true", help="no model: extractive answers")
    parser.add_argument("--embedder", default=None, help="embedder model string (default: configured, MiniLM)")
    parser.add_argument("-k", type=int, default=4, help="passages per question")
    parser.add_argument("--kb", type=Path, default=None,
                        help="an existing knowledge base file (.db) built from samples/k8s with the default embedder; "
                             "skips the ingest (it is opened, never written)")
    parser.add_argument("--json", type=Path, default=None, help="write every record to this file")
    parser.add_argument("--quiet", action="store_true", help="do not print each answer")
    parser.add_argument("--prompt-lookup", type=int, default=None,
                        help="prompt-lookup decoding: tokens drafted per step (0 = off; default: the model's default)")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up: the first question loads the model, as in a new process")
    parser.add_argument("--ids", default=None, help="only these question ids (comma-separated)")
    parser.add_argument("--interleave", action="store_true",
                        help="ask the groups in turn (en, zh, none, en...) so that a run cut short covers every group")
    parser.add_argument("--compare-prompt-lookup", default=None, metavar="N,M,...",
                        help="generation speed side by side: each question answered with prompt-lookup off and with "
                             "each N drafted tokens, in turn (order rotated per question), same prompts")
    parser.add_argument("--summarize", type=Path, default=None,
                        help="print the table of a --json file written by an earlier (possibly cut short) run")
    args = parser.parse_args(argv)
    if args.summarize is not None:
        records = json.loads(args.summarize.read_text(encoding="utf-8"))
        if isinstance(records, dict):  # a --compare-prompt-lookup file: the "off" answers
            records = first_asked_times(records["0"])
        print_summary(records, [g for g in GROUPS if any(r["group"] == g for r in records)],
                      f"from {args.summarize} ({len(records)} questions)", args.k, None)
        return 0

    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.registry import get_embedder

    groups = args.lang or list(GROUPS)
    chosen: list[dict[str, Any]] = []
    for g in groups:
        chosen += [q for q in load_questions() if group_of(q) == g
                   and (args.ids is None or q["id"] in args.ids.split(","))][: args.limit]
    if args.interleave:
        per = {g: [q for q in chosen if group_of(q) == g] for g in groups}
        chosen = [q for i in range(max(map(len, per.values()), default=0)) for g in groups
                  for q in per[g][i:i + 1]]
    records: list[dict[str, Any]] = []
    with bench_home():
        if args.kb is None:
            kb = KnowledgeBase.create("k8s-sample", embedder=cached_embedder(args.embedder))
            t0 = time.perf_counter()
            report = kb.ingest([SAMPLE / "en", SAMPLE / "zh-cn"])
            built = (f"built: {len(report.added)} files, {report.chunks} chunks, ingest {time.perf_counter() - t0:.1f} s "
                     f"(cached vectors)")
            kb.close()
        embedder = get_embedder(args.embedder, tracing=False)   # real query embedding from here on
        embedder.embed(["warm up"])
        kb = KnowledgeBase.open(args.kb or "k8s-sample", embedder=embedder)
        if args.kb is not None:
            stats = kb.stats()
            built = f"opened {args.kb}: {stats['documents']} documents, {stats['chunks']} chunks"

        if args.compare_prompt_lookup:
            compare_prompt_lookup(kb, chosen, [0] + [int(x) for x in args.compare_prompt_lookup.split(",")],
                                  model=args.model, k=args.k, out=args.json)
            kb.close()
            return 0
        model = None
        label = "extractive (no model)"
        if not args.extractive:
            if args.prompt_lookup is not None:
                from knowbase.models.registry import get_chat_model

                model = get_chat_model(args.model or kb.settings.chat_model, settings=kb.settings, tracing=False,
                                       prompt_lookup=args.prompt_lookup)
            else:
                model = kb.chat_model(args.model)
            label = model.spec + (f" prompt-lookup {args.prompt_lookup}" if args.prompt_lookup is not None else "")
            if not args.cold:
                t_load = time.perf_counter()
                model.chat("Say OK.", max_tokens=2)        # load the weights before the clock runs
                print(f"model {label} loaded and warmed up in {time.perf_counter() - t_load:.1f} s", flush=True)
        print(f"sample knowledge base {built}; {len(chosen)} questions; {label}", flush=True)
        for q in chosen:
            r = ask_one(kb, q, model=model, k=args.k, extractive=args.extractive)
            records.append(r)
            if args.json:  # after every question: a run cut short keeps what it measured
                args.json.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
            if not args.quiet:
                verdict = ("abstained" if r["abstained"] else
                           f"terms {r['term_share']:.2f}" if r["group"] != "none" else "ANSWERED (should abstain)")
                ttft = f"{r['t_first_token']:.1f}" if r["t_first_token"] is not None else "-"
                print(f"\n[{r['id']}] {r['question']}\n  answer: {r['answer'].strip()[:400]}\n"
                      f"  cites: {'; '.join(r['citations']) or '-'}"
                      f"{'  INVALID ' + str(r['invalid_citations']) if r['invalid_citations'] else ''}\n"
                      f"  reference: {r['reference']}\n  check: {verdict}; retrieval hit {r['retrieval_hit']}; "
                      f"sources {r['t_sources']:.2f} s, first token {ttft} s, total {r['t_total']:.1f} s; "
                      f"prompt {r['prompt_tokens']} tokens, completion {r['completion_tokens']} tokens", flush=True)
        kb.close()
    print_summary(records, groups, label, args.k, args.limit)
    return 0


def first_asked_times(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of one ``--compare-prompt-lookup`` setting with ``t_first_token`` kept only where
    that setting was asked first (the others found the prompt already in the KV cache)."""
    return [dict(r, t_first_token=r["t_first_token"] if r.get("asked_first") else None) for r in records]


def compare_prompt_lookup(kb: Any, questions: Sequence[dict[str, Any]], settings: Sequence[int], *,
                          model: str | None, k: int, out: Path | None) -> None:
    """Answer each question once per prompt-lookup setting (0 = off) and print generation speed.

    One loaded model; its draft model is swapped between settings, so after the first
    setting the prompt is already in the KV cache and the others cost only their
    generation. The order of the settings rotates from question to question so that a
    change in machine load falls on all of them alike. Greedy decoding: the answers should
    be identical, and the table says how many were.
    """
    from knowbase.models.llamacpp_state import prompt_lookup_draft
    from knowbase.models.registry import get_chat_model

    spec = model or kb.settings.chat_model
    shared = get_chat_model(spec, settings=kb.settings, tracing=False, prompt_lookup=max(settings))
    shared.chat("Say OK.", max_tokens=2)
    llama = shared.backend.loaded().llama
    drafts = {n: prompt_lookup_draft([llama], num_pred_tokens=n) if n else None for n in settings}

    rows: dict[int, list[dict[str, Any]]] = {n: [] for n in settings}
    for i, q in enumerate(questions):
        order = list(settings[i % len(settings):]) + list(settings[: i % len(settings)])
        for n in order:
            llama.draft_model = drafts[n]
            r = ask_one(kb, q, model=shared, k=k, extractive=False)
            r["asked_first"] = n == order[0]   # only the first setting reads the prompt
            rows[n].append(r)
            print(f"[{q['id']}] prompt-lookup {n}: first token {r['t_first_token'] or 0:.1f} s, "
                  f"{r['completion_tokens']} tokens in {r['t_gen'] or 0:.1f} s", flush=True)
        if out:  # after every question: a run cut short keeps what it measured
            out.write_text(json.dumps({str(n): rows[n] for n in settings}, ensure_ascii=False, indent=1),
                           encoding="utf-8")
    base = {r["id"]: r["answer"] for r in rows[settings[0]]}
    table = []
    for n in settings:
        timed = [r for r in rows[n] if r.get("completion_tokens") and r.get("t_gen")]
        toks = sum(r["completion_tokens"] - 1 for r in timed)
        secs = sum(r["t_gen"] for r in timed)
        ttft = [r["t_first_token"] for r in rows[n] if r["t_first_token"] is not None]
        table.append([f"{n} tokens" if n else "off", len(rows[n]), toks, secs, toks / secs if secs else None,
                      percentile(ttft, 50) if ttft else None,
                      sum(1 for r in rows[n] if r["answer"] == base[r["id"]]) / max(1, len(rows[n]))])
    print()
    print_table("Prompt-lookup decoding on the answers benchmark", ["prompt lookup", "questions", "gen tokens",
                "gen s", "gen tok/s", "first token p50 s", "same answer as off"], table,
                notes=[f"{spec}; k={k}; gen tokens: completion tokens after the first; gen s: first to last token",
                       "first token: only the setting asked first reads the prompt (order rotates per question)"],
                digits=2)
    # the answers with prompt lookup off, as a normal run would report them; first-token times
    # only from the questions where "off" was asked first (the others found the prompt cached)
    off = first_asked_times(rows[settings[0]])
    print_summary(off, [g for g in GROUPS if any(r["group"] == g for r in off)],
                  f"{spec}, prompt lookup off", k, None)


def print_summary(records: list[dict[str, Any]], groups: Sequence[str], label: str, k: int, limit: int | None) -> None:
    """The results table, one row per group and one for all."""
    headers = ["group", "n", "retrieval hit", "citation precision", "correct", "term share", "abstained",
               "first source p50 s", "p95 s", "first token p50 s", "p95 s", "total p50 s", "prompt tokens p50",
               "gen tok/s"]
    rows = [[g, *summarize([r for r in records if r["group"] == g])] for g in groups if any(r["group"] == g for r in records)]
    rows.append(["all", *summarize(records)])
    notes = [f"answers by {label}; k={k}; " + (f"--limit {limit} per group" if limit else "the questions listed"),
             "abstained: share of the group's questions answered with an abstention (goal: 1 on none, 0 elsewhere)",
             "correct: every key term of the reference answer present (automatic; read the answers above)",
             "citation precision: cited passages from a page that answers the question / all cited passages"]
    print()
    print_table("Answers on the Kubernetes sample", headers, rows, notes=notes, digits=2)


if __name__ == "__main__":
    raise SystemExit(main())
