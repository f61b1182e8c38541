"""Re-ingesting an edited file embeds only the chunks whose text changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowbase.knowledge.base import KnowledgeBase
from knowbase.models.base import Embedder
from knowbase.models.fake import FakeEmbedder


def _write(path: Path, paragraphs: list[str]) -> None:
    path.write_text("# Operating notes\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")


def _paragraphs() -> list[str]:
    return [f"Section {i}: the scheduler places pods on nodes using rule number {i * 11}. " * 6 for i in range(12)]


def _stored(kb: KnowledgeBase, path: Path) -> tuple[list[str], list[np.ndarray]]:
    doc = kb.store.document(str(path))
    assert doc is not None
    chunks = kb.store.document_chunks(doc.id)
    vectors = kb.store.vectors([c.chunk_id for c in chunks])
    return [c.text for c in chunks], [vectors[c.chunk_id] for c in chunks]


def test_edited_file_reuses_vectors_of_unchanged_chunks(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "notes.md"
    page.parent.mkdir()
    paragraphs = _paragraphs()
    _write(page, paragraphs)
    backend = FakeEmbedder(64)
    kb = KnowledgeBase.create("reuse", embedder=Embedder(backend))
    try:
        first = kb.ingest([page])
        assert first.chunks >= 6 and first.reused == 0 and backend.encoded == first.chunks
        old_texts, _ = _stored(kb, page)

        paragraphs[5] = "Section 5 now explains taints and tolerations instead. " * 6   # one paragraph edited
        _write(page, paragraphs)
        second = kb.ingest([page])
        new_texts, new_vectors = _stored(kb, page)
        changed = [t for t in new_texts if t not in set(old_texts)]
        assert second.updated == [str(page)]
        assert 1 <= len(changed) < len(new_texts)          # the edit touched some chunks, not all
        assert second.reused == len(new_texts) - len(changed)
        assert backend.encoded == first.chunks + len(changed)  # only the changed chunks hit the model
        assert second.to_dict()["reused"] == second.reused
        assert kb.check().ok
    finally:
        kb.close()

    # the result equals embedding every chunk from scratch
    fresh_backend = FakeEmbedder(64)
    fresh = KnowledgeBase.create("fresh", embedder=Embedder(fresh_backend))
    try:
        fresh.ingest([page])
        fresh_texts, fresh_vectors = _stored(fresh, page)
        assert fresh_texts == new_texts
        for a, b in zip(fresh_vectors, new_vectors):
            np.testing.assert_allclose(a, b, atol=1e-6)
    finally:
        fresh.close()


def test_reuse_requires_the_exact_text(tmp_path: Path) -> None:
    """A chunk that differs only in case and punctuation (same near-duplicate hash) is embedded anew."""
    page = tmp_path / "page.md"
    _write(page, ["Pods run containers, and nodes run pods."])
    backend = FakeEmbedder(64)
    kb = KnowledgeBase.create("exact", embedder=Embedder(backend))
    try:
        kb.ingest([page])
        before = backend.encoded
        _write(page, ["PODS run containers and nodes run pods!"])
        report = kb.ingest([page])
        assert report.updated == [str(page)] and report.reused == 0
        assert backend.encoded == before + report.chunks
    finally:
        kb.close()
