"""The ONNX Runtime embedder: model strings, export bookkeeping, and parity with sentence-transformers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from knowbase.config import ModelSpec, Settings
from knowbase.errors import ConfigError, ModelFileError, UnknownModelError
from knowbase.models.onnx_embedder import (
    INT8_RECIPE,
    ExportPlan,
    OnnxEmbedder,
    QuantRecipe,
    _write_sidecar,
    ensure_export,
    mean_pool,
    plan_export,
    resolve_threads,
)
from knowbase.models.registry import get_embedder

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "k8s"


# --- model strings and description (no export) ------------------------------------------------
def test_model_strings_choose_the_variant(tmp_path: Path) -> None:
    settings = Settings.load()
    int8 = get_embedder("onnx:all-minilm-l6-v2", settings=settings, models_dir=tmp_path)
    fp32 = get_embedder("onnx:minilm@fp32", settings=settings, models_dir=tmp_path)
    assert int8.spec == "onnx:all-minilm-l6-v2" and int8.backend.variant == "int8"
    assert fp32.spec == "onnx:all-minilm-l6-v2@fp32" and fp32.backend.variant == "fp32"
    assert ModelSpec.parse(fp32.spec).base_url == "fp32"  # the recorded string builds the same variant
    assert get_embedder("onnx:all-minilm-l6-v2@INT8", settings=settings, models_dir=tmp_path).spec == int8.spec
    # description and token counts match the sentence-transformers backend, and nothing was exported
    st = get_embedder("sentence-transformers:all-minilm-l6-v2", settings=settings)
    text = "Pods are the smallest deployable units of computing in Kubernetes."
    assert (int8.dim, int8.max_seq_length, int8.max_input_tokens) == (384, 256, 254)
    assert int8.count_tokens(text) == st.count_tokens(text) == 15
    assert int8.languages == ("en",)
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("spec", ["onnx:all-minilm-l6-v2@int4", "onnx:no-such-model"])
def test_unknown_model_strings(spec: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        get_embedder(spec, settings=Settings.load())
    assert info.value.spec == spec


def test_bad_folder_and_variant(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        OnnxEmbedder(tmp_path / "missing")
    folder = _fake_folder(tmp_path / "m", pooling="cls")
    with pytest.raises(ModelFileError, match="cls pooling"):
        OnnxEmbedder(folder)
    with pytest.raises(ConfigError):
        OnnxEmbedder(_fake_folder(tmp_path / "m2"), variant="int4")


def test_threads_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWBASE_N_THREADS", "1")
    assert resolve_threads(None) == 1
    monkeypatch.setenv("KNOWBASE_N_THREADS", "two")
    with pytest.raises(ConfigError) as info:
        resolve_threads(None)
    assert info.value.field == "n_threads"
    monkeypatch.delenv("KNOWBASE_N_THREADS")
    assert resolve_threads(None) >= 1


def test_mean_pool_ignores_padding() -> None:
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                       [[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2.0, 3.0], [2.0, 0.0]])
    assert mean_pool(hidden, np.zeros((2, 3), dtype=np.int64)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


# --- export bookkeeping (no torch) -------------------------------------------------------------
def _fake_folder(folder: Path, *, pooling: str = "mean", weights: bytes = b"weights-v1") -> Path:
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 8, f"pooling_mode_{pooling}_token{'s' if pooling == 'mean' else ''}": True}))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8, "max_position_embeddings": 64}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _pretend_exported(plan: ExportPlan, variant: str) -> None:
    plan.target_dir.mkdir(parents=True, exist_ok=True)
    plan.path(variant).write_bytes(b"onnx bytes")
    _write_sidecar(plan, variant)


def test_export_is_current_until_source_recipe_or_file_changes(tmp_path: Path) -> None:
    folder = _fake_folder(tmp_path / "src")
    models = tmp_path / "models"
    plan = plan_export(folder, models)
    assert plan.source_sha256 == hashlib.sha256(b"weights-v1").hexdigest()
    assert plan.target_dir == models / "onnx" / f"src-{plan.source_sha256[:12]}"
    assert not plan.is_current("int8")
    _pretend_exported(plan, "int8")
    assert plan.is_current("int8") and not plan.is_current("fp32")
    assert plan_export(folder, models).is_current("int8")          # same source, same recipe
    other = QuantRecipe(weight_type="QInt8", per_channel=False)
    assert other != INT8_RECIPE
    assert not plan_export(folder, models, recipe=other).is_current("int8")   # recipe changed
    # the file was replaced behind the sidecar's back
    plan.path("int8").write_bytes(b"a different, longer onnx file")
    assert not plan.is_current("int8")
    _pretend_exported(plan, "int8")
    # new weights: a new plan (new hash, new folder), nothing current
    (folder / "model.safetensors").write_bytes(b"weights-v2")
    newer = plan_export(folder, models)
    assert newer.source_sha256 != plan.source_sha256 and not newer.is_current("int8")
    # a damaged sidecar means "not current", never a crash
    plan.sidecar("int8").write_text("{not json")
    assert not plan.is_current("int8")


def test_folder_without_weights(tmp_path: Path) -> None:
    folder = _fake_folder(tmp_path / "src")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFileError):
        plan_export(folder, tmp_path / "models")


def test_unknown_variant_for_export(tmp_path: Path) -> None:
    plan = plan_export(_fake_folder(tmp_path / "src"), tmp_path / "models")
    with pytest.raises(ConfigError):
        ensure_export(plan, "int4")


# --- the real model (export once per machine into KNOWBASE_MODELS_DIR) ---------------------------
def _sample_texts(n: int = 24) -> list[str]:
    from knowbase.knowledge.loaders import load_document
    from knowbase.knowledge.splitter import split_document

    files = sorted((SAMPLE / "en").rglob("*.md"))[:6]
    st = get_embedder("sentence-transformers:all-minilm-l6-v2", settings=Settings.load())
    texts: list[str] = []
    for f in files:
        chunks = split_document(load_document(f), count_tokens=st.count_tokens, chunk_size=200, chunk_overlap=30,
                                max_tokens=st.max_input_tokens)
        texts += [c.text for c in chunks[:4]]
    return texts[:n] + ["Pods", "How do I roll back a Deployment?", "x " * 400]


@pytest.mark.slow
def test_vectors_match_sentence_transformers() -> None:
    settings = Settings.load()
    texts = _sample_texts()
    assert len(texts) >= 20
    reference = get_embedder("sentence-transformers:all-minilm-l6-v2", settings=settings).embed(texts)
    fp32 = get_embedder("onnx:all-minilm-l6-v2@fp32", settings=settings).embed(texts)
    int8 = get_embedder("onnx:all-minilm-l6-v2", settings=settings).embed(texts)
    assert fp32.shape == int8.shape == (len(texts), 384) and int8.dtype == np.float32
    cos_fp32 = (fp32 * reference).sum(axis=1)
    cos_int8 = (int8 * reference).sum(axis=1)
    assert cos_fp32.min() > 0.999, cos_fp32.min()
    assert cos_int8.min() > 0.98, cos_int8.min()
    assert cos_int8.mean() > 0.99, cos_int8.mean()
    # the ranking a query sees is nearly the same: top hit agrees for most chunks used as queries
    agree = ((int8 @ int8.T).argsort(axis=1)[:, -2] == (reference @ reference.T).argsort(axis=1)[:, -2]).mean()
    assert agree >= 0.8, agree


@pytest.mark.slow
def test_stale_int8_export_is_redone_and_fp32_reused(tmp_path: Path) -> None:
    settings = Settings.load()
    shared = get_embedder("onnx:all-minilm-l6-v2@fp32", settings=settings).backend
    shared_fp32 = shared.model_path()
    plan = plan_export(shared.folder, tmp_path)
    plan.target_dir.mkdir(parents=True)
    shutil.copy2(shared_fp32, plan.path("fp32"))          # copy2 keeps mtime, so the sidecar still matches
    shutil.copy2(shared_fp32.with_name(shared_fp32.name + ".json"), plan.sidecar("fp32"))
    assert plan.is_current("fp32")
    fp32_stat = os.stat(plan.path("fp32")).st_mtime_ns
    first = ensure_export(plan, "int8")
    assert plan.is_current("int8") and first.stat().st_size < plan.path("fp32").stat().st_size / 3
    # a sidecar from another source hash: quantised again, the fp32 file untouched
    data = json.loads(plan.sidecar("int8").read_text())
    data["source_sha256"] = "0" * 64
    plan.sidecar("int8").write_text(json.dumps(data))
    assert not plan.is_current("int8")
    ensure_export(plan, "int8")
    assert plan.is_current("int8") and os.stat(plan.path("fp32")).st_mtime_ns == fp32_stat
    sidecar = json.loads(plan.sidecar("int8").read_text())
    assert sidecar["source_sha256"] == plan.source_sha256 and sidecar["recipe"]["per_channel"] is True
    assert "onnxruntime" in sidecar["versions"]
    emb = OnnxEmbedder(shared.folder, models_dir=tmp_path)
    out = emb.encode(["Pods run containers.", "A Service exposes pods."])
    assert out.shape == (2, 384) and np.all(np.isfinite(out))


def test_batches_respect_text_and_token_limits(tmp_path: Path) -> None:
    emb = OnnxEmbedder(_fake_folder(tmp_path / "m"), batch_size=4, max_batch_tokens=100)
    lengths = [5, 5, 5, 5, 5, 30, 30, 30, 30, 60, 200]
    batches = emb._batches(list(range(len(lengths))), lengths)
    assert batches == [[0, 1, 2, 3], [4, 5, 6], [7, 8], [9], [10]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
