"""Integration with the embedded models on the bundled Kubernetes sample (slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knowbase.knowledge.base import KnowledgeBase

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "k8s"
PAGES = [
    "en/concepts/workloads/pods/static-pods.md",
    "en/concepts/workloads/controllers/ttlafterfinished.md",
    "en/concepts/overview/working-with-objects/annotations.md",
    "en/concepts/containers/container-environment.md",
    "zh-cn/concepts/workloads/pods/static-pods.md",
]


@pytest.fixture(scope="module")
def real_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    pytest.importorskip("onnxruntime")
    from knowbase.config import Settings

    missing = [p for p in PAGES if not (SAMPLE / p).exists()]
    if missing:
        pytest.fail(f"sample pages missing: {missing}")
    home = tmp_path_factory.mktemp("kbhome-real")
    # the default embedder (int8 ONNX MiniLM), exported once into the shared models folder
    models = Path(os.environ.get("KNOWBASE_MODELS_DIR", Path.home() / ".knowbase" / "models"))
    settings = Settings.load(home).with_(extra={"models_dir": str(models)})
    kb = KnowledgeBase.create("k8s-it", settings=settings)
    report = kb.ingest([SAMPLE / p for p in PAGES])
    assert report.failed == [] and len(report.added) == len(PAGES)
    yield kb
    kb.close()


@pytest.mark.slow
def test_real_minilm_retrieval(real_kb: KnowledgeBase) -> None:
    assert real_kb.embedder_spec == "onnx:all-minilm-l6-v2"
    assert real_kb.stats()["dim"] == 384 and real_kb.check().ok
    q = "How long are finished Jobs kept before they are cleaned up automatically?"
    for mode in ("bm25", "dense", "hybrid"):
        hits = real_kb.search(q, k=3, mode=mode)
        assert hits[0].chunk.path.endswith("ttlafterfinished.md"), (mode, [h.chunk.path for h in hits])
    dense = real_kb.search("mirror Pod visible on the API server", k=1, mode="dense")[0]
    assert dense.chunk.path.endswith("en/concepts/workloads/pods/static-pods.md") and dense.dense_score > 0.3
    zh = real_kb.search("静态 Pod 由哪个组件管理？", k=2)
    assert zh[0].chunk.path.endswith("zh-cn/concepts/workloads/pods/static-pods.md")
    assert zh[0].bm25_rank == 1  # MiniLM does not cover Chinese: BM25 leads the fusion


@pytest.mark.slow
def test_real_extractive_and_abstention(real_kb: KnowledgeBase) -> None:
    ans = real_kb.ask("Which component restarts a static Pod if it fails?", extractive=True)
    assert not ans.abstained and "kubelet" in ans.text
    assert ans.citations[0].chunk.path.endswith("static-pods.md")
    off = real_kb.ask("What is the boiling point of ethanol at sea level?", extractive=True)
    assert off.abstained


@pytest.mark.slow
@pytest.mark.qwen
def test_real_qwen_cited_answer(real_kb: KnowledgeBase) -> None:
    pytest.importorskip("llama_cpp")
    ans = real_kb.ask("Which component restarts a static Pod if it fails?", k=3)
    assert not ans.abstained, ans.text
    assert "kubelet" in ans.text.lower()
    assert ans.citations and all(c.chunk.path.endswith("static-pods.md") for c in ans.citations[:1])
    assert ans.invalid_citations == ()
    assert ans.timings["first_token"] < ans.timings["total"]
