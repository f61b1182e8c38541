"""The sentence-transformers embedder (all-MiniLM-L6-v2 from its PyPI package)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knowbase.config import Settings
from knowbase.errors import ModelFileError, UnknownModelError
from knowbase.models.registry import get_embedder
from knowbase.models.sentence_transformers import STEmbedder, folder_dim, folder_max_seq_length


def test_description_and_token_counts_without_torch(knowbase_home: Path) -> None:
    """dim, max_seq_length and count_tokens must not import torch or sentence_transformers."""
    code = (
        "import sys, json\n"
        "from knowbase.models.registry import get_embedder\n"
        "e = get_embedder('sentence-transformers:all-minilm-l6-v2')\n"
        "out = dict(dim=e.dim, max_len=e.max_seq_length, langs=e.languages,\n"
        "           n=e.count_tokens('Kubernetes schedules pods onto nodes.'),\n"
        "           heavy=[m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules])\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["dim"] == 384 and out["max_len"] == 256 and out["langs"] == ["en"]
    assert 6 <= out["n"] <= 12
    assert out["heavy"] == []


def test_folder_facts(knowbase_home: Path) -> None:
    emb = get_embedder("sentence-transformers:all-minilm-l6-v2", settings=Settings.load())
    folder = emb.backend.folder
    assert folder_dim(folder) == 384 and folder_max_seq_length(folder) == 256
    # a local folder path works as a model string too, languages then unknown
    by_path = get_embedder(f"sentence-transformers:{folder}", settings=Settings.load())
    assert by_path.dim == 384 and by_path.languages is None


@pytest.mark.slow
def test_long_inputs_are_truncated_and_order_is_kept(knowbase_home: Path) -> None:
    emb = get_embedder("sentence-transformers:all-minilm-l6-v2", settings=Settings.load())
    base = "Pods are the smallest deployable units of computing in Kubernetes. " * 30  # > 256 word pieces
    assert emb.count_tokens(base) > 256
    longer = base + " Completely different trailing words about cooking pasta." * 20
    v = emb.embed([base, longer])
    # only the first 256 word pieces count: the extra tail changes nothing
    assert float(v[0] @ v[1]) > 0.999
    texts = ["short", "a much much longer text about deployments and services", "mid length text"]
    batch = emb.embed(texts, batch_size=2)  # length-sorted across batches, restored to input order
    singles = np.stack([emb.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_bad_names_and_folders(tmp_path: Path, knowbase_home: Path) -> None:
    with pytest.raises(UnknownModelError):
        get_embedder("sentence-transformers:no-such-model", settings=Settings.load())
    with pytest.raises(ModelFileError) as err:
        STEmbedder(tmp_path / "missing")
    assert err.value.path == str(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError) as bad:
        _ = STEmbedder(broken).dim
    assert bad.value.path == str(broken / "config.json")
