"""Hostile files before and after the per-file limits (issue 12): time and peak memory.

Each bomb of ``tests/hostile_files.py`` that runs under the default limits, plus the
issue's 60 KB ``*a *a ...`` Markdown line and a heading line of 60,000 blanks, is loaded
through ``load_document`` in a child process, once with the source tree given by
``--before`` (e.g. a checkout of the previous version) and once with this tree. Each
child has a 4 GiB address-space limit and a timeout; the table gives the outcome, wall
seconds of the load and the child's peak RSS (VmHWM, imports included).

    .venv/bin/python benches/hostile_files.py --before ../main/src

Timings on a shared 2-core machine are noisy: compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from hostile_files import CASES, Case  # noqa: E402

_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from knowbase.knowledge.loaders import load_document
t = time.perf_counter()
try:
    doc = load_document(sys.argv[1])
    outcome = f"loaded ({len(doc.text):,} chars)"
except MemoryError:
    outcome = "MemoryError"
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(getattr(exc, "reason", exc))[:70]
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - t, "rss_mb": hwm / 1024}))
"""

BOMBS = ["docx_inflate_bomb", "docx_ratio", "docx_element_flood", "docx_two_million_paragraphs",
         "yaml_billion_laughs", "yaml_big_metadata", "pdf_repeated_page", "pdf_page_count", "html_element_flood",
         "csv_wide_header", "html_deep_divs"]


def _extra_cases() -> list[Case]:
    return [Case("md_emphasis_60kb", ".md", lambda: ("*a " * 20_000 + "\n").encode(), None),
            Case("md_heading_60k_blanks", ".md", lambda: ("# a" + " " * 60_000 + "b\n").encode(), None)]


def _run(src: Path, path: Path, timeout: float) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(src), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"outcome": f"killed after {timeout:.0f} s", "seconds": time.perf_counter() - t, "rss_mb": float("nan")}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:70]
        return {"outcome": f"crashed ({proc.returncode}): {tail}", "seconds": time.perf_counter() - t,
                "rss_mb": float("nan")}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="src/ folder of the version to compare with")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per load (default 180)")
    args = parser.parse_args()
    after = HERE.parent / "src"
    cases = [c for c in CASES if c.name in BOMBS] + _extra_cases()
    print("| file | size | before: outcome | s | peak MB | after: outcome | s | peak MB |")
    print("|---|---:|---|---:|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            path = case.write(Path(tmp))
            row = [case.name + case.ext, f"{path.stat().st_size / 1024:,.0f} KB"]
            for src in (args.before, after):
                r = _run(src.resolve(), path, args.timeout)
                row += [str(r["outcome"]), f"{float(r['seconds']):.1f}", f"{float(r['rss_mb']):.0f}"]  # type: ignore[arg-type]
            print("| " + " | ".join(row) + " |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
