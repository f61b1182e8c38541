"""The loader registry and :func:`load_document`.

A loader turns one file into a :class:`~knowbase.knowledge.types.Document`. Loaders are
found by file extension through the entry-point group ``knowbase.loaders``; knowbase
registers its own loaders the same way a plugin would (see ``pyproject.toml``), with a
built-in table as fallback when running from a source tree. A plugin adds a format by
declaring::

    [project.entry-points."knowbase.loaders"]
    rst = "my_pkg.rst:RstLoader"

where ``RstLoader()`` (called without arguments) has ``extensions = (".rst",)`` and
``load(path) -> Document`` (or ``load(path, options) -> Document`` to receive the
:class:`~knowbase.knowledge.loaders.options.LoadOptions`: limits, encoding, passwords).
A plugin's loader wins over a built-in one for the same extension.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, cast, runtime_checkable

from knowbase.errors import InputFileError, KnowbaseError
from knowbase.knowledge.language import detect_language
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document
from knowbase.safety.files import FileLimits, limit_error

__all__ = [
    "Loader", "LoadOptions", "LOADER_GROUP", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILE_BYTES",
    "available_loaders", "supported_extensions", "loader_for", "load_document",
]

log = logging.getLogger(__name__)

LOADER_GROUP = "knowbase.loaders"

#: Largest text accepted: text files by size on disk, other formats by extracted text
#: (UTF-8 bytes). 20 MB is about 5,000 pages of prose.
DEFAULT_MAX_BYTES = FileLimits().max_text_bytes
#: Largest container file (PDF, DOCX: images inflate them) accepted before parsing.
DEFAULT_MAX_FILE_BYTES = FileLimits().max_file_bytes

_BUILTIN: dict[str, str] = {
    "text": "knowbase.knowledge.loaders.plaintext:TextLoader",
    "markdown": "knowbase.knowledge.loaders.markdown:MarkdownLoader",
    "html": "knowbase.knowledge.loaders.html:HTMLLoader",
    "pdf": "knowbase.knowledge.loaders.pdf:PDFLoader",
    "docx": "knowbase.knowledge.loaders.docx:DocxLoader",
    "csv": "knowbase.knowledge.loaders.csv:CSVLoader",
}


@runtime_checkable
class Loader(Protocol):
    """Turns a file into a :class:`Document`.

    Attributes:
        extensions: lower-case file extensions with the dot, e.g. ``(".md", ".markdown")``.

    A loader may also set ``binary = True`` (a container format such as PDF or DOCX):
    its file size is then checked against ``max_file_bytes`` and its extracted text
    against ``max_bytes``, instead of the file size against ``max_bytes``.
    """

    extensions: tuple[str, ...]

    def load(self, path: Path) -> Document:
        """Read ``path`` (absolute, a readable regular file, not empty). A loader may
        take a second parameter, ``options`` (:class:`LoadOptions`).

        Raises:
            InputFileError: the file cannot be parsed (``path``, ``reason``).
        """
        ...


def _takes_options(loader: Loader) -> bool:
    """Whether ``loader.load`` accepts a second positional argument (``options``)."""
    try:
        params = list(inspect.signature(loader.load).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _entry_points(group: str) -> list:
    """Installed entry points of ``group`` (importlib.metadata is imported only here: it
    is slow to import and ``knowbase --help`` must stay fast)."""
    from importlib.metadata import entry_points

    return list(entry_points(group=group))


def _import(target: str) -> object:
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@lru_cache(maxsize=1)
def available_loaders() -> Mapping[str, Loader]:
    """``{extension: loader}`` for every registered loader (built-ins, then plugins).

    A plugin that fails to import is skipped with a logged warning.
    """
    table: dict[str, Loader] = {}
    targets = [(name, target, True) for name, target in _BUILTIN.items()]
    for ep in _entry_points(LOADER_GROUP):
        if _BUILTIN.get(ep.name) != ep.value:
            targets.append((ep.name, ep.value, False))
    for name, target, builtin in targets:
        try:
            factory = _import(target)
            loader = factory() if callable(factory) else factory
            if not isinstance(loader, Loader):
                raise TypeError(f"{target} is not a Loader (needs extensions and load)")
        except Exception as exc:
            if builtin:
                raise
            log.warning("loader plugin %s (%s) failed to load: %s", name, target, exc)
            continue
        for ext in loader.extensions:
            table[ext.lower()] = loader
    return MappingProxyType(table)


def supported_extensions() -> frozenset[str]:
    """File extensions (lower case, with the dot) that some loader reads."""
    return frozenset(available_loaders())


def _extension(path: Path) -> str:
    return path.suffix.lower()


def loader_for(path: str | os.PathLike[str], *, loaders: Iterable[Loader] = ()) -> Loader:
    """The loader for a path, by extension.

    Args:
        path: a file path.
        loaders: extra loaders tried before the registered ones.

    Raises:
        InputFileError: no loader reads this extension (``reason`` says which).
    """
    p = Path(path)
    ext = _extension(p)
    for loader in loaders:
        if ext in loader.extensions:
            return loader
    found = available_loaders().get(ext)
    if found is None:
        reason = (f"unsupported file type {ext!r}" if ext else "no file extension") + \
            f" (supported: {', '.join(sorted(available_loaders()))})"
        raise InputFileError(f"{p}: {reason}", path=str(p), reason=reason)
    return found


def _fail(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def load_document(path: str | os.PathLike[str], *, max_bytes: int | None = None,
                  max_file_bytes: int | None = None, loaders: Iterable[Loader] = (),
                  options: LoadOptions | None = None) -> Document:
    """Load one file as a :class:`Document`, choosing the loader by extension.

    Checks run before parsing, cheapest first: the file exists, is a regular file, is
    readable, is not empty, is not too large. The loader's errors (and any unexpected
    exception from a third-party parser) come back as :class:`InputFileError`.

    Args:
        path: the file.
        max_bytes: largest text accepted, in bytes (default ``options.limits.max_text_bytes``,
            20 MB): the file size for text formats, the extracted text (UTF-8) for
            container formats.
        max_file_bytes: largest container file (PDF, DOCX) accepted, in bytes (default
            ``options.limits.max_file_bytes``).
        loaders: extra loaders tried before the registered ones.
        options: limits, a fixed text encoding, PDF passwords (:class:`LoadOptions`).

    Returns:
        The document; ``path`` is absolute, ``language`` detected when the loader did
        not set it.

    Raises:
        InputFileError: with ``path`` and a one-line ``reason``: ``not found``, ``not a
            regular file``, ``permission denied``, ``empty file (0 bytes)``, ``too large``,
            ``unsupported file type``, ``binary content``, ``undecodable text``,
            ``corrupt PDF``, ``encrypted PDF``, ``no text``...; a
            :class:`~knowbase.safety.files.FileLimitError` (a subclass) when the file
            exceeds one of ``options.limits``.
    """
    options = options or LoadOptions()
    max_bytes = options.limits.max_text_bytes if max_bytes is None else max_bytes
    max_file_bytes = options.limits.max_file_bytes if max_file_bytes is None else max_file_bytes
    p = Path(path).expanduser().absolute()
    loader = loader_for(p, loaders=loaders)
    try:
        st = p.stat()
    except FileNotFoundError as exc:
        reason = "broken symlink" if p.is_symlink() else "not found"
        raise _fail(p, reason) from exc
    except PermissionError as exc:
        raise _fail(p, "permission denied") from exc
    except OSError as exc:  # ELOOP, ENAMETOOLONG...
        reason = "symlink loop" if exc.errno == 40 else f"cannot stat: {exc.strerror or exc}"
        raise _fail(p, reason) from exc
    if not stat.S_ISREG(st.st_mode):
        raise _fail(p, "not a regular file" + (" (a directory)" if stat.S_ISDIR(st.st_mode) else ""))
    if not os.access(p, os.R_OK):
        raise _fail(p, "permission denied")
    if st.st_size == 0:
        raise _fail(p, "empty file (0 bytes)")
    binary = bool(getattr(loader, "binary", False))
    limit = max_file_bytes if binary else max_bytes
    if st.st_size > limit:
        name = "max_file_bytes" if binary else "max_text_bytes"
        raise limit_error(p, name, st.st_size, limit, "file size",
                          reason=f"too large: {_mb(st.st_size)} > {_mb(limit)} limit ({name})")
    try:
        doc = cast(Any, loader).load(p, options) if _takes_options(loader) else loader.load(p)
    except KnowbaseError:
        raise
    except PermissionError as exc:
        raise _fail(p, "permission denied") from exc
    except OSError as exc:
        raise _fail(p, f"cannot read: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise _fail(p, f"cannot parse: {type(exc).__name__}: {exc}") from exc
    if binary and len(doc.text) > max_bytes // 4 and len(doc.text.encode("utf-8")) > max_bytes:
        size = len(doc.text.encode("utf-8"))
        raise limit_error(p, "max_text_bytes", size, max_bytes, "extracted text",
                          reason=f"too large: {_mb(size)} of text > {_mb(max_bytes)} limit (max_text_bytes)")
    if not doc.text.strip():
        raise _fail(p, "no text to index")
    changes: dict[str, Any] = {}
    if doc.path != str(p):
        changes["path"] = str(p)
    if doc.language is None:
        changes["language"] = detect_language(doc.text)
    if not doc.title:
        changes["title"] = p.stem
    return dataclasses.replace(doc, **changes) if changes else doc
