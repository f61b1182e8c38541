"""Uploaded files: safe names, type by content, size and count caps.

A name is kept only when it is a plain file name: no folder separators, no ``..``, no
leading dot, no control characters, at most 200 characters. The type comes from the bytes
(``%PDF-`` for PDF, a ZIP holding ``word/document.xml`` for DOCX, HTML by its first tag,
else UTF-8 text without NUL bytes); the name's extension must agree with it, so a PDF
named ``notes.md`` or a binary named ``notes.txt`` is refused rather than mis-read.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile

from knowbase.errors import UserError

TEXT_EXTENSIONS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
                   ".csv": "csv", ".html": "html", ".htm": "html"}
BINARY_EXTENSIONS = {".pdf": "pdf", ".docx": "docx"}
_MAX_NAME = 200


class UploadNameError(UserError):
    """An upload's file name is not a plain, safe file name (``name``; HTTP 400)."""


class UploadTypeError(UserError):
    """An upload's content is not a supported type or does not match its name (``name``; HTTP 415)."""


def safe_name(name: str | None) -> str:
    """The upload's name if it is a plain file name.

    Raises:
        UploadNameError: empty, too long, a path (``/``, ``\\``, ``..``), hidden, or with control characters.
    """
    if not name:
        raise UploadNameError("an uploaded file has no name", name="")
    clean = unicodedata.normalize("NFC", name)
    if len(clean) > _MAX_NAME:
        raise UploadNameError(f"file name is longer than {_MAX_NAME} characters", name=clean[:50])
    if ("/" in clean or "\\" in clean or clean in (".", "..") or clean.startswith(".") or ".." in clean
            or ":" in clean or any(unicodedata.category(c) in ("Cc", "Cf") for c in clean)):
        raise UploadNameError(f"refused file name {clean!r}: use a plain file name without folders", name=clean)
    return clean


def extension(name: str) -> str:
    m = re.search(r"\.[A-Za-z0-9]+$", name)
    return m.group(0).lower() if m else ""


def sniff(data: bytes) -> str:
    """The kind of ``data`` by content: ``pdf``, ``docx``, ``html``, ``text`` or ``binary``."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return "docx" if "word/document.xml" in zf.namelist() else "binary"
        except zipfile.BadZipFile:
            return "binary"
    if b"\x00" in data[:65536]:
        return "binary"
    try:
        head = data[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 4090:  # a multi-byte character cut at the end of the sample is fine
            return "binary"
        head = data[:exc.start].decode("utf-8")
    lowered = head.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "html"
    return "text"


def check_upload(name: str | None, data: bytes, *, max_bytes: int) -> str:
    """Check one uploaded file; returns its safe name.

    Raises:
        UploadNameError: a bad name.
        UploadTypeError: over ``max_bytes`` (with ``status=413``), an unsupported type, or content that
            does not match the extension.
    """
    clean = safe_name(name)
    if len(data) > max_bytes:
        raise UploadTypeError(f"{clean}: {len(data)} bytes is over the limit of {max_bytes}", name=clean, status=413)
    ext = extension(clean)
    kind = sniff(data)
    if ext in BINARY_EXTENSIONS:
        if kind != BINARY_EXTENSIONS[ext]:
            raise UploadTypeError(f"{clean}: the name says {ext} but the content is {kind}", name=clean)
    elif ext in TEXT_EXTENSIONS:
        if kind not in ("text", "html"):
            raise UploadTypeError(f"{clean}: the name says {ext} but the content is {kind}", name=clean)
    else:
        raise UploadTypeError(f"{clean}: unsupported file type {ext or '(no extension)'}; supported: "
                              f"{', '.join(sorted({*TEXT_EXTENSIONS, *BINARY_EXTENSIONS}))}", name=clean)
    return clean
