"""PDF loader (pypdf): text per page, with :class:`Page` spans and 1-based page numbers.

An encrypted PDF is opened only when its user password is empty (owner-password-only
files, which any viewer opens); otherwise it is refused with ``reason`` ``encrypted PDF
(password required)``. A file pypdf cannot parse is refused as ``corrupt PDF``.
A PDF with no extractable text (scanned images) has an empty text and is reported by
:func:`~knowbase.knowledge.loaders.load_document` as ``no text to index``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from knowbase.errors import InputFileError
from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders._text import normalize_text
from knowbase.knowledge.types import Document

__all__ = ["PDFLoader"]


def _fail(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


class PDFLoader:
    """Loads ``.pdf`` files.

    Metadata: ``format`` (``pdf``), ``pages`` (page count), ``warnings`` (pages whose
    text could not be extracted), and the PDF's ``author``/``subject`` when set.
    """

    extensions: tuple[str, ...] = (".pdf",)
    binary = True

    def load(self, path: Path) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors.

        Raises:
            InputFileError: ``encrypted PDF (password required)``, ``corrupt PDF: ...``.
        """
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        with path.open("rb") as head:
            if not head.read(1024).lstrip().startswith(b"%PDF-"):
                raise _fail(path, "corrupt PDF: no %PDF- header")
        try:
            reader = PdfReader(path)
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")
                except (DependencyError, NotImplementedError) as exc:
                    raise _fail(path, f"encrypted PDF (cannot decrypt: {exc})") from exc
                if not ok:
                    raise _fail(path, "encrypted PDF (password required)")
            pages = reader.pages
            count = len(pages)
        except FileNotDecryptedError as exc:
            raise _fail(path, "encrypted PDF (password required)") from exc
        except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AssertionError) as exc:
            raise _fail(path, f"corrupt PDF: {exc}") from exc
        builder = TextBuilder()
        warnings: list[str] = []
        for number in range(1, count + 1):
            builder.begin_page(number)
            try:
                page_text = pages[number - 1].extract_text() or ""
            except FileNotDecryptedError as exc:
                raise _fail(path, "encrypted PDF (password required)") from exc
            except Exception as exc:
                warnings.append(f"page {number}: text not extracted ({type(exc).__name__}: {exc})")
                continue
            builder.block(normalize_text(page_text))
        text, _, page_spans = builder.build()
        title = ""
        meta: dict[str, object] = {"format": "pdf", "pages": count}
        try:
            info = reader.metadata
        except Exception:
            info = None
        if info:
            title = str(info.title or "").strip()
            if info.author:
                meta["author"] = str(info.author)
            if info.subject:
                meta["subject"] = str(info.subject)
        if warnings:
            meta["warnings"] = warnings
        return Document(path=str(path), text=text, title=title or path.stem, metadata=meta,
                        pages=page_spans)
