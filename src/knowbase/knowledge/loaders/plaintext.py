"""Plain-text loader: encoding detection and normalisation, no structure."""

from __future__ import annotations

from pathlib import Path

from knowbase.knowledge.loaders._text import normalize_text, read_text
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document

__all__ = ["TextLoader"]


class TextLoader:
    """Loads ``.txt``-like files as one block of normalised text (no sections).

    Metadata: ``format`` (``text``), ``encoding`` (as detected or given), ``warnings``
    (an uncertain encoding) if any.
    """

    extensions: tuple[str, ...] = (".txt", ".text", ".rst", ".log")

    def load(self, path: Path, options: LoadOptions | None = None) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors."""
        decoded = read_text(path, (options or LoadOptions()).encoding)
        text = normalize_text(decoded.text)
        meta: dict[str, object] = {"format": "text", "encoding": decoded.encoding}
        if decoded.warnings:
            meta["warnings"] = list(decoded.warnings)
        return Document(path=str(path), text=text, title=path.stem, metadata=meta)
