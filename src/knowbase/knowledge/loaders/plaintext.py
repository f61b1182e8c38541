"""Plain-text loader: encoding detection and normalisation, no structure."""

from __future__ import annotations

from pathlib import Path

from knowbase.knowledge.loaders._text import normalize_text, read_text
from knowbase.knowledge.types import Document

__all__ = ["TextLoader"]


class TextLoader:
    """Loads ``.txt``-like files as one block of normalised text (no sections).

    Metadata: ``format`` (``text``), ``encoding`` (as detected).
    """

    extensions: tuple[str, ...] = (".txt", ".text", ".rst", ".log")

    def load(self, path: Path) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors."""
        raw, encoding = read_text(path)
        text = normalize_text(raw)
        return Document(path=str(path), text=text, title=path.stem,
                        metadata={"format": "text", "encoding": encoding})
