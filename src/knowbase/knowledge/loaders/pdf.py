"""PDF loader (pypdf): text per page, with :class:`Page` spans and 1-based page numbers.

An encrypted PDF (RC4 or AES; AES needs the ``cryptography`` package, a dependency) is
opened with the empty user password (owner-password-only files, which any viewer opens),
else with the password given for it in
:class:`~knowbase.knowledge.loaders.options.LoadOptions` (``pdf_passwords`` by path, or
``pdf_password``); otherwise it is refused with ``reason`` ``encrypted PDF: password
required ...`` or ``encrypted PDF: wrong password ...``. A file pypdf cannot parse is
refused as ``corrupt PDF``.

Before any page is read the page tree is walked (without parsing page contents): more
than ``pdf_max_pages`` leaves, or an object reached twice (a cycle, or one page listed
many times: a "page bomb" of 20,000 references to one page in 120 KB), refuse the file.
pypdf itself bounds each decoded stream (75 MB, ``pypdf.filters``).
A PDF with no extractable text (scanned images) has an empty text and is reported by
:func:`~knowbase.knowledge.loaders.load_document` as ``no text to index``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from knowbase.errors import InputFileError
from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders._text import normalize_text
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document
from knowbase.safety.files import FileLimits, limit_error

__all__ = ["PDFLoader"]


def _fail(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _count_pages(path: Path, reader, limits: FileLimits) -> int:
    """Leaves of the page tree, walked iteratively; refuses a tree that is not a tree, is
    deeper than ``limits.pdf_max_tree_depth`` or has more than ``limits.pdf_max_pages``
    leaves."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    root = reader.trailer["/Root"].get_object()
    top = root.get("/Pages")
    if top is None:
        raise _fail(path, "corrupt PDF: no page tree (/Pages)")
    seen: set[tuple[int, int]] = set()
    stack = [(top, 1)]
    pages = 0
    while stack:
        ref, depth = stack.pop()
        if depth > limits.pdf_max_tree_depth:
            raise limit_error(path, "pdf_max_tree_depth", depth, limits.pdf_max_tree_depth, "PDF page tree depth")
        if isinstance(ref, IndirectObject):
            key = (ref.idnum, ref.generation)
            if key in seen:
                raise _fail(path, f"corrupt PDF: page tree reaches object {key[0]} {key[1]} R twice "
                                  "(a cycle or a repeated page; refused as a page bomb)")
            seen.add(key)
        node = ref.get_object()
        if not isinstance(node, DictionaryObject):
            continue
        kids = node.get("/Kids")
        if kids is None or node.get("/Type") == "/Page":
            pages += 1
            if pages > limits.pdf_max_pages:
                raise limit_error(path, "pdf_max_pages", pages, limits.pdf_max_pages, "PDF pages (counted so far)")
            continue
        kids = kids.get_object()
        if isinstance(kids, ArrayObject):
            if len(kids) > limits.pdf_max_pages:
                raise limit_error(path, "pdf_max_pages", len(kids), limits.pdf_max_pages,
                                  "PDF page-tree node children")
            stack.extend((kid, depth + 1) for kid in reversed(kids))
    return pages


def _decrypt(path: Path, reader, options: LoadOptions) -> None:
    """Open an encrypted PDF with the passwords of ``options``, empty password first."""
    from pypdf.errors import DependencyError

    tried = options.passwords_for(path)
    for password in tried:
        try:
            if reader.decrypt(password):
                return
        except (DependencyError, NotImplementedError) as exc:
            raise _fail(path, f"encrypted PDF: cannot decrypt ({exc}); the password could not be tried") from exc
    if len(tried) > 1:
        raise _fail(path, "encrypted PDF: wrong password (the password given does not open it)")
    raise _fail(path, "encrypted PDF: password required (give it with --pdf-password, or pdf_passwords "
                      "in the Python API)")


class PDFLoader:
    """Loads ``.pdf`` files.

    Metadata: ``format`` (``pdf``), ``pages`` (page count), ``warnings`` (pages whose
    text could not be extracted), and the PDF's ``author``/``subject`` when set.
    """

    extensions: tuple[str, ...] = (".pdf",)
    binary = True

    def load(self, path: Path, options: LoadOptions | None = None) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors.

        Raises:
            InputFileError: ``encrypted PDF: password required``, ``encrypted PDF: wrong
                password``, ``corrupt PDF: ...``.
            FileLimitError: more pages than ``pdf_max_pages``, or more text than
                ``max_text_bytes``.
        """
        options = options or LoadOptions()
        limits = options.limits
        from pypdf import PdfReader
        from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        with path.open("rb") as head:
            if not head.read(1024).lstrip().startswith(b"%PDF-"):
                raise _fail(path, "corrupt PDF: no %PDF- header")
        try:
            reader = PdfReader(path)
            if reader.is_encrypted:
                _decrypt(path, reader, options)
            _count_pages(path, reader, limits)
            pages = reader.pages
            count = len(pages)
        except FileNotDecryptedError as exc:
            raise _fail(path, "encrypted PDF: password required") from exc
        except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AssertionError,
                AttributeError, RecursionError) as exc:
            raise _fail(path, f"corrupt PDF: {exc}") from exc
        builder = TextBuilder()
        warnings: list[str] = []
        for number in range(1, count + 1):
            builder.begin_page(number)
            try:
                page_text = pages[number - 1].extract_text() or ""
            except FileNotDecryptedError as exc:
                raise _fail(path, "encrypted PDF: password required") from exc
            except Exception as exc:
                warnings.append(f"page {number}: text not extracted ({type(exc).__name__}: {exc})")
                continue
            builder.block(normalize_text(page_text))
            if builder.length > limits.max_text_bytes:
                raise limit_error(path, "max_text_bytes", builder.length, limits.max_text_bytes,
                                  f"characters of text by page {number}")
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
