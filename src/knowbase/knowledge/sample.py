"""The bundled Kubernetes sample (``samples/k8s``: English pages and their Chinese
translations, CC BY 4.0) and the knowledge base built from it, ``k8s-sample``.

Used by ``knowbase demo`` and as the default documentation of ``knowbase diagnose --explain``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.knowledge.ingest import ProgressFn

SAMPLE_KB = "k8s-sample"
"""Name of the knowledge base built from the sample."""


def find_sample() -> Path | None:
    """The ``samples/k8s`` folder: ``$KNOWBASE_SAMPLE_DIR``, the working directory, or the
    source tree this package runs from (an editable install)."""
    candidates = []
    if os.environ.get("KNOWBASE_SAMPLE_DIR"):
        candidates.append(Path(os.environ["KNOWBASE_SAMPLE_DIR"]))
    candidates.append(Path.cwd() / "samples" / "k8s")
    here = Path(__file__).resolve()
    candidates.extend(parent / "samples" / "k8s" for parent in here.parents[:5])
    for c in candidates:
        if (c / "en").is_dir():
            return c
    return None


def sample_folders(sample: Path) -> list[str]:
    """The folders of the sample that are ingested (``en``, ``zh-cn``; not NOTICE/LICENSE)."""
    return [str(p) for p in (sample / "en", sample / "zh-cn") if p.is_dir()]


def open_sample_kb(settings: Settings, *, progress: ProgressFn | None = None) -> KnowledgeBase:
    """The ``k8s-sample`` knowledge base, built from the sample when it does not exist yet
    (the first time takes minutes on 2 cores: the embedder reads every chunk).

    Raises:
        UserError: the knowledge base does not exist and the sample cannot be found.
    """
    from knowbase.errors import UserError
    from knowbase.knowledge.base import KnowledgeBase

    if (settings.kb_dir / f"{SAMPLE_KB}.db").exists():
        return KnowledgeBase.open(SAMPLE_KB, settings=settings)
    sample = find_sample()
    if sample is None:
        raise UserError(f"no knowledge base {SAMPLE_KB!r} and the Kubernetes sample (samples/k8s) was not found: "
                        "run `knowbase demo` from the repository, set KNOWBASE_SAMPLE_DIR, or pass --kb NAME",
                        path="samples/k8s")
    base = KnowledgeBase.create(SAMPLE_KB, settings=settings, exist_ok=True)
    try:
        base.ingest(sample_folders(sample), prune=True, progress=progress)
    except BaseException:
        base.close()
        raise
    return base
