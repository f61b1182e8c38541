"""Shared fixtures. Every test gets its own KNOWBASE_HOME; assembled model files are
shared across tests (KNOWBASE_MODELS_DIR) so the 1.1 GB Qwen GGUF is built only once."""

from __future__ import annotations

import os
from pathlib import Path

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
def shared_data() -> Path:
    """``../shared/data`` beside the repository (real public data sets)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
