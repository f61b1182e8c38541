"""Ingest reliability: incremental re-ingest, bad files, kill -9 mid-ingest, readers during a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from knowbase.knowledge.base import KnowledgeBase
from knowbase.models.base import Embedder
from knowbase.models.fake import FakeEmbedder

TOPICS = ["pods", "services", "volumes", "secrets", "ingress", "nodes", "jobs", "namespaces"]


def make_corpus(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = "\n\n".join(
            f"Paragraph {j} of note {i}: {topic} are described here with detail number {i * 7 + j}. "
            f"The {topic} controller reconciles state for item {i}." for j in range(14))
        p = folder / f"note{i:03d}.md"
        p.write_text(f"# Note {i} about {topic}\n\n{body}\n", encoding="utf-8")
        paths.append(p)
    return paths


def snapshot(kb: KnowledgeBase) -> dict[str, tuple[str, list[str], list[bytes]]]:
    """path -> (sha256, chunk texts, vector bytes), independent of row ids."""
    out = {}
    for doc in kb.documents():
        chunks = kb.store.document_chunks(doc.id)
        vecs = kb.store.vectors([c.chunk_id for c in chunks])
        out[doc.path] = (doc.sha256, [c.text for c in chunks], [vecs[c.chunk_id].tobytes() for c in chunks])
    return out


@pytest.fixture
def fake_kb() -> KnowledgeBase:
    base = KnowledgeBase.create("ing", embedder=Embedder(FakeEmbedder(64)))
    yield base
    base.close()


def test_ingest_then_reingest_is_incremental(fake_kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    paths = make_corpus(docs, 6)
    backend = fake_kb.embedder().backend
    first = fake_kb.ingest([docs])
    assert len(first.added) == 6 and first.failed == [] and first.chunks > 6
    assert backend.encoded == first.chunks
    # unchanged: nothing embedded again
    again = fake_kb.ingest([docs])
    assert len(again.skipped) == 6 and again.added == [] and again.updated == [] and again.chunks == 0
    assert backend.encoded == first.chunks
    # one file changed, one deleted, one new
    paths[0].write_text("# Changed\n\nCompletely new text about etcd snapshots and backups.\n", encoding="utf-8")
    paths[1].unlink()
    (docs / "new.md").write_text("# New\n\nA fresh page about autoscaling.\n", encoding="utf-8")
    third = fake_kb.ingest([docs], prune=True)
    assert third.updated == [str(paths[0])]
    assert third.added == [str(docs / "new.md")]
    assert third.removed == [str(paths[1])]
    assert len(third.skipped) == 4
    assert backend.encoded == first.chunks + third.chunks
    hits = fake_kb.search("etcd snapshots", k=3, mode="bm25")
    assert hits[0].chunk.path == str(paths[0])
    old_text = fake_kb.search("Paragraph 3 of note 0", k=20, mode="bm25")
    assert all(h.chunk.path != str(paths[0]) or "etcd" in h.chunk.text for h in old_text)
    assert fake_kb.check().ok
    assert len(fake_kb.documents()) == 6


def test_progress_callback_reports_files_and_chunks(fake_kb: KnowledgeBase, tmp_path: Path) -> None:
    make_corpus(tmp_path / "d", 3)
    seen = []
    report = fake_kb.ingest([tmp_path / "d"], progress=seen.append)
    assert [p.files_done for p in seen] == [0, 1, 2, 3]
    assert [p.files_total for p in seen] == [3, 3, 3, 3]
    assert seen[-1].chunks == report.chunks and [p.status for p in seen] == ["started"] + ["added"] * 3


def test_bad_files_are_reported_and_the_rest_ingested(fake_kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "mixed"
    make_corpus(docs, 2)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nthis is not a pdf\n")
    (docs / "gbk.txt").write_bytes("容器编排系统中的调度器负责把工作负载分配到节点上。".encode("gbk"))
    (docs / "loop").symlink_to(docs)
    report = fake_kb.ingest([docs])
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"empty.txt", "binary.txt", "broken.pdf", "loop"}
    assert "loop" in failed["loop"]
    assert all(reason.strip() for reason in failed.values())
    assert sorted(Path(p).name for p in report.added) == ["gbk.txt", "note000.md", "note001.md"]
    hits = fake_kb.search("调度器 节点", k=1, mode="bm25")
    assert hits and hits[0].chunk.path.endswith("gbk.txt")
    assert fake_kb.check().ok


def test_missing_path_is_reported(fake_kb: KnowledgeBase, tmp_path: Path) -> None:
    report = fake_kb.ingest([tmp_path / "nope"])
    assert len(report.failed) == 1 and "nope" in report.failed[0][0]


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from knowbase.knowledge.base import KnowledgeBase
    kb = KnowledgeBase.open(sys.argv[1])
    def progress(p):
        print(p.files_done, flush=True)
        time.sleep(0.02)
    kb.ingest([sys.argv[2]], progress=progress)
    print("finished", flush=True)
""")


def test_kill_9_during_ingest_then_reingest_is_identical(tmp_path: Path, knowbase_home: Path) -> None:
    docs = tmp_path / "many"
    make_corpus(docs, 120)
    KnowledgeBase.create("victim", embedder="fake").close()
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, "victim", str(docs)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "KNOWBASE_HOME": str(knowbase_home)})
    done = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().isdigit():
            done = int(line)
        if done >= 30:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with KnowledgeBase.open("victim") as kb:
        report = kb.check()
        assert report.ok, report.problems
        partial = len(kb.documents())
        assert 0 < partial < 120
        resumed = kb.ingest([docs])
        assert len(resumed.skipped) == partial and len(resumed.added) == 120 - partial
        assert kb.check().ok
        interrupted = snapshot(kb)
    with KnowledgeBase.create("clean", embedder="fake") as clean:
        clean.ingest([docs])
        assert snapshot(clean) == interrupted


def test_reader_gets_results_while_writer_ingests(fake_kb: KnowledgeBase, tmp_path: Path) -> None:
    make_corpus(tmp_path / "seed", 4)
    fake_kb.ingest([tmp_path / "seed"])
    make_corpus(tmp_path / "bulk", 80)
    errors: list[BaseException] = []
    results: list[int] = []

    def writer() -> None:
        try:
            with KnowledgeBase.open("ing") as w:
                w.ingest([tmp_path / "bulk"], progress=lambda p: time.sleep(0.005))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    with KnowledgeBase.open("ing") as reader:
        while t.is_alive():
            results.append(len(reader.search("controller reconciles state", k=3)))
    t.join()
    assert not errors
    assert len(results) >= 3 and min(results) == 3
    assert len(fake_kb.documents()) == 84


def test_vectors_match_embedder(fake_kb: KnowledgeBase, tmp_path: Path) -> None:
    make_corpus(tmp_path / "v", 1)
    fake_kb.ingest([tmp_path / "v"])
    doc = fake_kb.documents()[0]
    chunks = fake_kb.chunks(doc.path)
    vecs = fake_kb.store.vectors([c.chunk_id for c in chunks])
    expected = fake_kb.embedder().embed([c.text for c in chunks])
    np.testing.assert_allclose(np.stack([vecs[c.chunk_id] for c in chunks]), expected, rtol=1e-6)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.path == doc.path for c in chunks)
