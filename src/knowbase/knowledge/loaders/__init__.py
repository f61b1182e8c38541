"""Loaders: one file in, one :class:`~knowbase.knowledge.types.Document` out.

Public API:

* :func:`load_document` -- load a file, choosing the loader by extension; every failure
  is an :class:`~knowbase.errors.InputFileError` with ``path`` and ``reason``.
* :class:`Loader` -- the protocol a format implements (``extensions``, ``load(path)``,
  optionally ``load(path, options)``).
* :class:`LoadOptions` -- per-file limits, a fixed text encoding, PDF passwords.
* :func:`available_loaders`, :func:`supported_extensions`, :func:`loader_for` -- the
  registry (entry-point group ``knowbase.loaders``).

Built-in formats: Markdown (``.md``, ``.markdown``), plain text (``.txt``, ``.text``,
``.rst``, ``.log``), HTML (``.html``, ``.htm``), PDF, DOCX, CSV/TSV.
"""

from knowbase.knowledge.loaders.registry import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    LOADER_GROUP,
    Loader,
    LoadOptions,
    available_loaders,
    load_document,
    loader_for,
    supported_extensions,
)

__all__ = [
    "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILE_BYTES", "LOADER_GROUP", "Loader", "LoadOptions",
    "available_loaders", "load_document", "loader_for", "supported_extensions",
]
