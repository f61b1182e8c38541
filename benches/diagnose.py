"""knowbase diagnose on realistic failure scenarios, next to a K8sGPT-style bare prompt.

Scenarios: ``benches/data/diagnose/*.yaml`` (48; each names its source, the expected findings
and the elements a correct solution must contain). Figures:

* analyzer recall and precision (all scenarios, no model): a finding is right when kind,
  namespace, name and reason match an expected one (or the expected object is among its
  ``related`` objects with the same reason: a Pod folded into its Deployment); the healthy
  scenario counts every finding as a false positive. Milliseconds per analysis.
* leak check (all scenarios, the fake model, tracing on, names masked): every prompt stored
  in ``logs.db`` is searched for every value the anonymiser registered (object names,
  namespaces, labels, hosts, IPs, registries, paths) as a whole word; reported as leaked
  values / prompts. The bare-prompt row shows how many of its prompts hold original names.
* with a model (a subset, ``--ids``, default 8 scenarios; ``--model``, default the embedded
  Qwen2.5-Coder-1.5B): explanation correctness (every solution element present in
  ``Error + Solution``; each element lists alternatives, case-insensitive substrings) and
  element share; citation precision (cited passages from a page listed for the finding's
  reason in :data:`RELEVANT_PAGES` / cited passages, over scenarios that list pages); seconds
  per diagnosis (``diagnose(explain=True)`` wall time, model loaded and warmed up first).
  Row ``knowbase``: analyzers' evidence + 3 passages from the sample, names masked. Row
  ``K8sGPT-style bare prompt``: K8sGPT's prompt (``pkg/ai/prompts.go``) around the raw
  kubectl output (first 1,500 characters, as a user would paste it), no evidence, no docs.

Documentation: a knowledge base built from ``samples/k8s/en`` (embedding cache of the benches).

Run-to-run variation: each run uses a fresh ``KNOWBASE_HOME``, so a new anonymisation key and
new tokens in the prompts; with the same prompt text the knowbase row scored 7/8 (element
share 0.938) in one run and 5/8 (0.750) in the next, while the bare row (no tokens) gave the
same 4/8 (0.688) answers every time. Eight scenarios do not separate the rows firmly.

Usage::

    .venv/bin/python benches/diagnose.py --no-model                 # analyzers + leak check, seconds
    KNOWBASE_N_THREADS=1 .venv/bin/python benches/diagnose.py       # + Qwen on 8 scenarios (minutes)
    .venv/bin/python benches/diagnose.py --model llamacpp:smollm2-135m --ids all
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from _common import DATA, SAMPLE, bench_home, cached_embedder, percentile, print_table

SCENARIOS = DATA / "diagnose"
DEFAULT_IDS = ("crashloop-deployment", "oomkilled-describe", "imagepullbackoff-yaml", "create-container-config-error",
               "unschedulable-insufficient-cpu", "liveness-probe-failing", "pvc-provisioning-failed",
               "hpa-missing-resource-requests")
BARE_INPUT_CHARS = 1500

# Pages of samples/k8s/en that document each reason (file names); a citation of another page is imprecise.
_POD = ["pod-lifecycle.md"]
_PROBES = ["configure-liveness-readiness-startup-probes.md", "probes.md", "pod-lifecycle.md"]
_STORAGE = ["persistent-volumes.md", "storage-classes.md", "dynamic-provisioning.md"]
_NODES = ["nodes.md", "manage-resources-containers.md", "safely-drain-node.md", "pod-qos.md"]
RELEVANT_PAGES: dict[str, list[str]] = {
    "CrashLoopBackOff": _POD + ["init-containers.md", "define-environment-variable-container.md"],
    "Error": _POD,
    "OOMKilled": ["assign-memory-resource.md", "manage-resources-containers.md", "pod-qos.md"] + _POD,
    "ImagePullBackOff": ["images.md"] + _POD, "InvalidImageName": ["images.md"] + _POD,
    "CreateContainerConfigError": ["configmap.md", "secret.md", "managing-secret-using-kubectl.md"] + _POD,
    "CreateContainerError": ["volumes.md"] + _POD, "RunContainerError": _POD + ["container-environment.md"],
    "Evicted": ["manage-resources-containers.md", "pod-qos.md", "ephemeral-volumes.md"],
    "Unschedulable": ["kube-scheduler.md", "assign-pod-node.md", "taint-and-toleration.md",
                      "manage-resources-containers.md"],
    "LivenessProbeFailed": _PROBES, "ReadinessProbeFailed": _PROBES, "StartupProbeFailed": _PROBES,
    "FailedMount": ["volumes.md", "configmap.md", "secret.md"] + _STORAGE,
    "ProgressDeadlineExceeded": ["deployment.md", "run-stateless-application-deployment.md"],
    "ReplicasUnavailable": ["deployment.md", "daemonset.md", "statefulset.md"] + _POD,
    "FailedCreate": ["resource-quotas.md", "limit-range.md", "replicaset.md"],
    "ServiceNotFound": ["statefulset.md", "service.md"], "StorageClassNotFound": ["statefulset.md"] + _STORAGE,
    "Misscheduled": ["daemonset.md", "assign-pod-node.md"],
    "BackoffLimitExceeded": ["job.md"], "DeadlineExceeded": ["job.md"],
    "InvalidSchedule": ["cron-jobs.md", "automated-tasks-with-cron-jobs.md"],
    "Suspended": ["cron-jobs.md", "automated-tasks-with-cron-jobs.md"],
    "NoEndpoints": ["service.md", "labels.md"] + _PROBES, "NoPodsMatchSelector": ["service.md", "labels.md",
                                                                                  "network-policies.md",
                                                                                  "configure-pdb.md"],
    "MissingIngressClass": ["ingress.md"], "BackendServiceNotFound": ["ingress.md", "service.md"],
    "TLSSecretNotFound": ["ingress.md", "secret.md"],
    "ProvisioningFailed": _STORAGE, "FailedBinding": _STORAGE, "Pending": _STORAGE,
    "NotReady": _NODES, "MemoryPressure": _NODES, "DiskPressure": _NODES, "PIDPressure": _NODES,
    "ScaleTargetNotFound": ["horizontal-pod-autoscale.md"],
    "MissingResourceRequests": ["horizontal-pod-autoscale.md", "manage-resources-containers.md"],
    "InsufficientPods": ["configure-pdb.md", "disruptions.md", "safely-drain-node.md"],
}


def load_scenarios(folder: Path = SCENARIOS) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text("utf-8")) | {"file": p.name} for p in sorted(folder.glob("*.yaml"))]


def write_files(sc: dict[str, Any], folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sc["files"].items():
        (folder / name).write_text(text, "utf-8")
        paths.append(str(folder / name))
    return paths


def matches(finding: Any, exp: dict[str, str]) -> bool:
    if finding.reason != exp["reason"]:
        return False
    obj = (exp["kind"], exp["namespace"], exp["name"])
    return (finding.kind, finding.namespace, finding.name) == obj or any(
        (r.kind, r.namespace, r.name) == obj for r in finding.related)


def elements_present(text: str, elements: list[list[str]]) -> tuple[int, int]:
    low = text.lower()
    return sum(1 for alts in elements if any(str(a).lower() in low for a in alts)), len(elements)


def analyzer_rows(scenarios: list[dict[str, Any]], work: Path, label: str) -> tuple[list[list[Any]], list[str]]:
    from knowbase.diagnose import diagnose

    tp = fp = fn = 0
    times: list[float] = []
    misses: list[str] = []
    per_kind: dict[str, list[int]] = {}
    for sc in scenarios:
        files = write_files(sc, work / sc["id"])
        t0 = time.perf_counter()
        d = diagnose(files)
        times.append((time.perf_counter() - t0) * 1000)
        used: set[int] = set()
        for exp in sc["expected"]:
            hit = next((i for i, f in enumerate(d.findings) if i not in used and matches(f, exp)), None)
            stats = per_kind.setdefault(exp["kind"], [0, 0])
            stats[1] += 1
            if hit is None:
                fn += 1
                misses.append(f"{sc['id']}: missed {exp['kind']} {exp['name']} {exp['reason']}")
            else:
                tp += 1
                stats[0] += 1
                used.add(hit)
        for i, f in enumerate(d.findings):
            if i not in used:
                fp += 1
                misses.append(f"{sc['id']}: extra {f.kind} {f.name} {f.reason}")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    rows = [[label, len(scenarios), tp + fn, tp, fp, fn, recall, precision,
             percentile(times, 50), percentile(times, 95)]]
    notes = [f"{k}: {v[0]}/{v[1]}" for k, v in sorted(per_kind.items())]
    return rows, misses + ["recall per expected kind: " + ", ".join(notes)]


def leak_check(scenarios: list[dict[str, Any]], work: Path, home: Path, kb: Any) -> list[Any]:
    """Run every scenario with the fake model, names masked, tracing on; search logs.db."""
    from knowbase.diagnose import diagnose
    from knowbase.diagnose.anonymise import BUILTIN_NAMESPACES, Anonymizer
    from knowbase.diagnose.inputs import read_inputs

    os.environ["KNOWBASE_TRACING"] = "1"
    logs = home / "logs.db"
    prompts = leaked = values_checked = 0
    examples: list[str] = []
    try:
        for sc in scenarios:
            files = write_files(sc, work / sc["id"])
            before = _count_calls(logs)
            diagnose(files, explain=True, model="fake", kb=kb, anonymize=True)
            anon = Anonymizer(b"x" * 32)  # any key: only the registered originals are used
            snap = read_inputs(files)
            anon.collect(snap)
            for text in [t for lg in snap.logs for _, t in lg.lines]:
                anon.mask(text)  # registers hosts, IPs, paths of the logs too
            for ev in snap.events:
                anon.mask(ev.text)
            originals = [v for v in anon._forward if len(v) >= 3]  # the values masking must hide
            # and, independent of what the anonymiser recognises, the objects the scenario names
            originals += [v for e in sc["expected"] for v in (e["name"], e["namespace"])
                          if len(v) >= 3 and v not in BUILTIN_NAMESPACES and v not in originals]
            values_checked += len(originals)
            for prompt in _prompts_since(logs, before):
                prompts += 1
                found = anon.leaks(prompt, originals)
                leaked += len(found)
                examples += [f"{sc['id']}: {v}" for v in found[:2]]
    finally:
        os.environ["KNOWBASE_TRACING"] = "0"
    return [prompts, values_checked, leaked, examples[:5]]


def _count_calls(logs: Path) -> int:
    if not logs.exists():
        return 0
    with sqlite3.connect(logs) as con:
        return int(con.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


def _prompts_since(logs: Path, offset: int) -> list[str]:
    with sqlite3.connect(logs) as con:
        rows = con.execute("SELECT * FROM calls WHERE kind = 'chat' ORDER BY rowid LIMIT -1 OFFSET ?",
                           (offset,)).fetchall()
    return [json.dumps(r, default=str, ensure_ascii=False) for r in rows]


def model_rows(scenarios: list[dict[str, Any]], work: Path, kb: Any, model_spec: str | None,
               language: str) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    from knowbase.diagnose import diagnose
    from knowbase.diagnose.anonymise import Anonymizer
    from knowbase.diagnose.explain import Explainer, bare_messages, split_answer
    from knowbase.diagnose.inputs import read_inputs
    from knowbase.models.registry import get_chat_model

    model = get_chat_model(model_spec, tracing=False)
    model.chat("Say OK.", max_tokens=2)  # load and warm up before the clock starts
    records: list[dict[str, Any]] = []
    for sc in scenarios:
        files = write_files(sc, work / ("m-" + sc["id"]))
        t0 = time.perf_counter()
        d = diagnose(files, explain=True, model=model, kb=kb, anonymize=True, language=language)
        seconds = time.perf_counter() - t0
        problems = [f for f in d.findings if f.explanation is not None]
        f = problems[0] if problems else None
        text = f"{f.explanation.error}\n{f.explanation.solution}" if f and f.explanation else ""
        got, total = elements_present(text, sc["solution"])
        pages = RELEVANT_PAGES.get(f.reason, []) if f else []
        cited = [Path(c.chunk.path).name for c in f.explanation.citations] if f and f.explanation else []
        records.append({"row": "knowbase", "id": sc["id"], "seconds": seconds, "elements": got, "of": total,
                        "cited": cited, "relevant_cited": sum(1 for c in cited if c in pages) if pages else None,
                        "text": text, "reason": f.reason if f else None})
        raw = "\n".join(Path(p).read_text("utf-8") for p in files)[:BARE_INPUT_CHARS]
        anon = Anonymizer(b"x" * 32)
        snap = read_inputs(files)
        anon.collect(snap)
        ex = Explainer(model=lambda: model, language=language)
        t0 = time.perf_counter()
        result = model.chat(bare_messages(raw, language=language), max_tokens=ex.max_tokens(), temperature=0.0)
        seconds = time.perf_counter() - t0
        error, solution = split_answer(result.text)
        bare_text = f"{error}\n{solution}"
        got, total = elements_present(bare_text, sc["solution"])
        records.append({"row": "bare", "id": sc["id"], "seconds": seconds, "elements": got, "of": total,
                        "cited": [], "relevant_cited": None, "text": bare_text,
                        "leaks": len(anon.leaks(raw, [v for v in anon._forward if len(v) >= 3]))})
        print(f"  {sc['id']}: knowbase {records[-2]['elements']}/{total} in {records[-2]['seconds']:.1f} s, "
              f"bare {got}/{total} in {seconds:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for row, label in (("knowbase", "knowbase: analyzers + 3 cited passages, names masked"),
                       ("bare", "K8sGPT-style bare prompt (raw output, no evidence, no docs)")):
        recs = [r for r in records if r["row"] == row]
        correct = sum(1 for r in recs if r["of"] and r["elements"] == r["of"])
        share = sum(r["elements"] / r["of"] for r in recs if r["of"]) / max(1, sum(1 for r in recs if r["of"]))
        judged = [r for r in recs if r["relevant_cited"] is not None]
        cites = sum(len(r["cited"]) for r in judged)
        precision = sum(r["relevant_cited"] for r in judged) / cites if cites else None
        secs = [r["seconds"] for r in recs]
        leaks = "0 (masked)" if row == "knowbase" else f"{sum(1 for r in recs if r.get('leaks'))}/{len(recs)} prompts"
        rows.append([label, len(recs), f"{correct}/{len(recs)}", share, precision, leaks, percentile(secs, 50),
                     sum(secs) / max(1, len(secs))])
    return rows, records


def build_kb(home: Path, embedder: str | None) -> Any:
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.registry import get_embedder

    kb = KnowledgeBase.create("k8s-docs", embedder=cached_embedder(embedder))
    kb.ingest([SAMPLE / "en"])
    kb.close()
    emb = get_embedder(embedder, tracing=False)
    emb.embed(["warm up"])
    return KnowledgeBase.open("k8s-docs", embedder=emb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="chat model string (default: the embedded Qwen)")
    parser.add_argument("--no-model", action="store_true", help="analyzers and leak check only")
    parser.add_argument("--ids", default=",".join(DEFAULT_IDS), help="scenario ids for the model rows, or 'all'")
    parser.add_argument("--language", default="en", choices=["en", "zh"])
    parser.add_argument("--embedder", default=None, help="embedder of the documentation knowledge base")
    parser.add_argument("--json", type=Path, default=None, help="write the per-scenario records here")
    args = parser.parse_args(argv)
    scenarios = load_scenarios()
    out: dict[str, Any] = {}
    with bench_home() as home, tempfile.TemporaryDirectory(prefix="diag-bench-") as tmp:
        work = Path(tmp)
        rows, notes = analyzer_rows(scenarios, work / "a", "knowbase analyzers: scenarios written with them")
        heldout = load_scenarios(SCENARIOS / "heldout")
        more, more_notes = analyzer_rows(heldout, work / "h", "knowbase analyzers: held-out scenarios")
        print_table(f"Analyzers on {len(scenarios)} + {len(heldout)} held-out scenarios (no model)",
                    ["system", "scenarios", "expected", "right", "extra", "missed", "recall", "precision",
                     "ms p50", "ms p95"], rows + more,
                    notes=notes + more_notes + [
                        "held-out: written after the analyzers. Their first run found 7 of 8 expected findings with 2 "
                        "extra (recall 0.875, precision 0.778): an old-style events table with an empty cell, and a "
                        "Job reported twice (BackoffLimitExceeded beside its Pods' OOMKilled); both were then fixed, "
                        "so this row is no longer independent"])
        kb = build_kb(home, args.embedder)
        prompts, values, leaked, examples = leak_check(scenarios, work / "l", home, kb)
        print_table("Leak check: masked prompts in logs.db (fake model, tracing on)",
                    ["prompts", "original values searched (summed over scenarios)", "leaked"],
                    [[prompts, values, leaked]],
                    notes=examples or ["no original value found in any prompt"])
        out["leak"] = {"prompts": prompts, "values": values, "leaked": leaked, "examples": examples}
        if not args.no_model:
            chosen = scenarios if args.ids == "all" else [s for s in scenarios if s["id"] in args.ids.split(",")]
            rows, records = model_rows(chosen, work / "m", kb, args.model, args.language)
            label = args.model or "the embedded Qwen2.5-Coder-1.5B"
            print_table(f"Explanations with {label} on {len(chosen)} scenarios ({args.language}), same run",
                        ["system", "scenarios", "correct", "element share", "citation precision", "names leaked",
                         "s p50", "s mean"], rows,
                        notes=["correct: every solution element of the scenario present in Error + Solution",
                               "citation precision: cited passages from a page documenting the reason",
                               f"KNOWBASE_N_THREADS={os.environ.get('KNOWBASE_N_THREADS', '(default)')}; "
                               "timings on a shared 2-core machine are indications"])
            for r in records:
                print(f"\n[{r['row']}] {r['id']} ({r['elements']}/{r['of']}, cited {r['cited']}):\n{r['text']}")
            out["records"] = records
        kb.close()
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
