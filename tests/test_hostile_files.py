"""Every case of the hostile-file corpus (tests/hostile_files.py) through the loader
registry, each in a child process with an address-space limit (RLIMIT_AS) and a timeout,
so a bomb that got through would fail the test (MemoryError, killed, timed out) instead
of taking the test run down. Nothing here asserts a duration: the timeout only turns a
hang into a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hostile_files import CASES, TAIL, TEXT_PAYLOADS, Case

MEMORY_LIMIT = 1536 * 1024 * 1024  # bytes of address space for the child
TIMEOUT = 300  # seconds; a hang guard, not a measurement

_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from knowbase.knowledge.loaders import LoadOptions, load_document
from knowbase.safety.files import FileLimits

limits = FileLimits(**json.loads(sys.argv[2]))
results = []
for path in sys.argv[3:]:
    try:
        doc = load_document(path, options=LoadOptions(limits=limits))
        out = {"ok": True, "text": doc.text, "metadata": doc.metadata}
    except Exception as exc:
        out = {"ok": False, "error": type(exc).__name__, "classes": [c.__name__ for c in type(exc).__mro__],
               "message": str(exc), "path": str(getattr(exc, "path", ""))}
    out["file"] = path
    results.append(out)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
results.append({"maxrss_kb": hwm})
print(json.dumps(results, default=str))
"""


def _run(paths: list[Path], limits: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(MEMORY_LIMIT), json.dumps(limits), *map(str, paths)],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    return results[:-1], results[-1]["maxrss_kb"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    [result], maxrss_kb = _run([path], case.limits)
    assert maxrss_kb * 1024 < MEMORY_LIMIT
    if case.error is None:
        assert result["ok"], result.get("message")
        assert case.check is not None and case.check(result["text"], result["metadata"]), result["metadata"]
        return
    assert not result["ok"], f"{case.name} loaded; expected {case.error} ({case.limit})"
    assert case.error in result["classes"], result
    assert "InputFileError" in result["classes"]  # the ingest reports it as a failed file
    assert str(path) in result["message"] and result["path"] == str(path)  # names the file
    assert case.limit in result["message"], result["message"]


@pytest.mark.parametrize("ext", [".md", ".txt", ".html", ".csv", ".rst"])
def test_every_text_loader_reads_backtracking_payloads(ext: str, tmp_path: Path) -> None:
    """Each pathological line through the registry's loader for ``ext``: it loads and
    keeps the paragraph after it (the CSV loader may find a single header row and
    nothing to index, or a header wider than ``csv_max_columns``), in bounded memory."""
    paths = []
    for name, payload in TEXT_PAYLOADS.items():
        path = tmp_path / f"{name}{ext}"
        path.write_text(payload + TAIL, encoding="utf-8")
        paths.append(path)
    results, maxrss_kb = _run(paths, {})
    assert maxrss_kb * 1024 < MEMORY_LIMIT
    for result in results:
        if ext == ".csv" and not result["ok"] and (result["message"].endswith("no text to index")
                                                   or "FileLimitError" in result["classes"]):
            assert result["path"] == result["file"]
            continue
        assert result["ok"], result
        if ext == ".html" and "</" in TEXT_PAYLOADS[Path(result["file"]).stem]:
            continue  # "</*" opens a bogus comment that, unclosed, runs to the end (HTML5 tokenizer)
        assert "Tail paragraph." in result["text"], result["file"]
