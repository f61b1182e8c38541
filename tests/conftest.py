"""Shared fixtures. Every test gets its own KNOWBASE_HOME; assembled model files are
shared across tests (KNOWBASE_MODELS_DIR) so the 1.1 GB Qwen GGUF is built only once.

Before the first test marked ``slow`` or ``qwen``, the doctor's model smoke test runs once in
a child process (:func:`model_runtime`). If the llama.cpp build cannot run on this machine
(a native crash, SIGILL/SIGSEGV), every real-model test fails with the doctor's message
instead of the first one killing pytest; the fast tests run either way. A crash that still
happens inside a test is dumped by pytest's faulthandler plugin (on by default; keep it):
the Python stack it prints names the test function and file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "samples" / "k8s"


@pytest.fixture(autouse=True)
def knowbase_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh user directory for each test; model strings and keys from the caller's
    environment are cleared so tests see the defaults."""
    home = tmp_path / "kbhome"
    monkeypatch.setenv("KNOWBASE_HOME", str(home))
    monkeypatch.setenv("KNOWBASE_MODELS_DIR", os.environ.get("KNOWBASE_MODELS_DIR",
                                                             str(Path.home() / ".knowbase" / "models")))
    for var in ("KNOWBASE_MODEL", "KNOWBASE_EMBEDDER", "KNOWBASE_TRACING", "KNOWBASE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def model_runtime() -> Any:
    """The doctor's smoke test of the embedded llama.cpp runtime, run once per session in a
    child process (a :class:`knowbase.doctor.CheckResult`)."""
    from knowbase.config import Settings
    from knowbase.doctor import check_smoke

    return check_smoke(Settings.load())  # one llama.cpp thread unless KNOWBASE_N_THREADS says otherwise


@pytest.fixture(autouse=True)
def _real_model_preflight(request: pytest.FixtureRequest) -> None:
    """Tests marked ``slow``/``qwen`` fail with the doctor's message when the runtime cannot run."""
    if request.node.get_closest_marker("slow") is None and request.node.get_closest_marker("qwen") is None:
        return
    result = request.getfixturevalue("model_runtime")
    if result.status == "fail":
        pytest.fail(f"knowbase doctor --smoke: {result.summary} (fix: {result.fix}); "
                    "real-model tests are not run in this process", pytrace=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (real public data sets)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
