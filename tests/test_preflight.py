"""The real-model preflight of tests/conftest.py and faulthandler, seen from a pytest run in a
child process: a runtime that cannot run fails the ``slow`` tests with the doctor's message while
the fast tests pass, and a native crash inside a test names that test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")
INI = "[pytest]\nmarkers =\n    slow: real model\n    qwen: qwen\naddopts = -p no:cacheprovider\n"


def _run_pytest(folder: Path, tests: str, **env: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / "pytest.ini").write_text(INI)
    (folder / "test_sample.py").write_text(tests)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", str(folder)], cwd=folder, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})


def test_slow_tests_fail_with_the_doctor_message_when_the_runtime_cannot_run(tmp_path: Path) -> None:
    tests = ("import pytest\n\n"
             "def test_fast():\n    assert 1 + 1 == 2\n\n"
             "@pytest.mark.slow\ndef test_real_model():\n    raise AssertionError('must not run')\n")
    # llama-cpp-python loads its library from LLAMA_CPP_LIB_PATH: an empty folder cannot be loaded
    (tmp_path / "nolib").mkdir()
    proc = _run_pytest(tmp_path, tests, LLAMA_CPP_LIB_PATH=str(tmp_path / "nolib"))
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "PASSED test_sample.py::test_fast" in out
    assert "ERROR test_sample.py::test_real_model" in out  # failed in its set-up, before running
    assert "knowbase doctor --smoke: the model runtime failed with exit status 1" in out
    assert "must not run" not in out


def test_a_native_crash_in_a_test_is_named_by_faulthandler(tmp_path: Path) -> None:
    tests = ("import os, signal\n\n"
             "def test_crashes_in_native_code():\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    proc = _run_pytest(tmp_path, tests)
    assert proc.returncode == -11
    assert "Fatal Python error: Segmentation fault" in proc.stderr
    assert 'test_sample.py", line 4 in test_crashes_in_native_code' in proc.stderr
