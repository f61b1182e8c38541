"""Expand the paths a user gives (files, folders, globs) into the files to ingest.

:func:`iter_sources` never raises for a bad path: a missing file, an unreadable folder,
a symlink loop or a glob that matches nothing is *yielded* as an
:class:`~knowbase.errors.InputFileError` (with ``path`` and ``reason``), so the caller
reports it and carries on with the rest.

Example:
    >>> for item in iter_sources(["docs", "notes/**/*.md"]):   # doctest: +SKIP
    ...     if isinstance(item, InputFileError):
    ...         print("skipped", item.path, item.reason)
    ...     else:
    ...         ingest(item)
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from knowbase.errors import InputFileError, SkippedFileError

__all__ = ["iter_sources", "is_glob"]

_GLOB_CHARS = frozenset("*?[")


def is_glob(path: str) -> bool:
    """True when ``path`` contains glob characters (``*``, ``?``, ``[``)."""
    return any(c in _GLOB_CHARS for c in path)


def _error(path: str | Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "not found"
    return exc.strerror or str(exc)


def _matches(rel: str, name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:]):
            return True
    return False


class _Walker:
    """State of one :func:`iter_sources` call: files already yielded (by device and
    inode, so a file reached through two symlinks comes once)."""

    def __init__(self, extensions: frozenset[str], include: Sequence[str], exclude: Sequence[str],
                 recursive: bool, follow_links: bool = False) -> None:
        self.extensions = extensions
        self.include = include
        self.exclude = exclude
        self.recursive = recursive
        self.follow_links = follow_links
        self.seen_files: set[tuple[int, int]] = set()
        self.seen_dirs: set[tuple[int, int]] = set()

    def _new_file(self, st: os.stat_result) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self.seen_files:
            return False
        self.seen_files.add(key)
        return True

    def _leaves(self, root: Path, path: Path) -> SkippedFileError | None:
        """A :class:`SkippedFileError` when ``path`` is a symbolic link whose target is
        outside ``root`` (both resolved) and links are not followed; else None."""
        if self.follow_links or not path.is_symlink():
            return None
        target = os.path.realpath(path)
        base = os.path.realpath(root)
        if target == base or target.startswith(base.rstrip(os.sep) + os.sep):
            return None
        reason = f"symlink leaves the folder being ingested (to {target}); not followed (--follow-links follows it)"
        return SkippedFileError(f"{path}: {reason}", path=str(path), reason=reason, target=target)

    def _wanted(self, root: Path, path: Path) -> bool:
        if path.suffix.lower() not in self.extensions:
            return False
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        if self.include and not _matches(rel, path.name, self.include):
            return False
        return not (self.exclude and _matches(rel, path.name, self.exclude))

    def explicit(self, path: Path) -> Iterator[Path | InputFileError]:
        """A path given by the user: a file (any extension) or a folder."""
        try:
            st = path.stat()
        except OSError as exc:
            if exc.errno == errno.ENOENT and path.is_symlink():
                yield _error(path, "broken symlink")
            else:
                yield _error(path, _os_reason(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            yield from self.folder(path, path, [])
        elif stat.S_ISREG(st.st_mode):
            if self.exclude and _matches(path.as_posix(), path.name, self.exclude):
                return
            if self._new_file(st):
                yield path
        else:
            yield _error(path, "not a regular file")

    def folder(self, root: Path, folder: Path, ancestors: list[tuple[int, int]]) -> Iterator[Path | InputFileError]:
        """Files under ``folder`` with a supported extension; hidden entries skipped;
        a symlink back to an ancestor folder is reported as a loop, not followed."""
        try:
            st = folder.stat()
        except OSError as exc:
            yield _error(folder, _os_reason(exc))
            return
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            yield _error(folder, "symlink loop (links back to a parent folder)")
            return
        if key in self.seen_dirs:
            return  # reached again through another link: already listed
        self.seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield _error(folder, _os_reason(exc))
            return
        chain = ancestors + [key]
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                outside = self._leaves(root, path)
                if outside is not None:
                    if (self.recursive and entry.is_dir()) or path.suffix.lower() in self.extensions:
                        yield outside
                    continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError as exc:
                yield _error(path, _os_reason(exc))
                continue
            if is_dir:
                if self.recursive:
                    yield from self.folder(root, path, chain)
                continue
            if not is_file:
                if entry.is_symlink():
                    try:
                        path.stat()
                    except OSError as exc:
                        if path.suffix.lower() in self.extensions or exc.errno == errno.ELOOP:
                            reason = _os_reason(exc)
                            yield _error(path, "broken symlink" if reason == "not found" else reason)
                continue
            if not self._wanted(root, path):
                continue
            try:
                file_st = path.stat()
            except OSError as exc:
                yield _error(path, _os_reason(exc))
                continue
            if self._new_file(file_st):
                yield path

    def pattern(self, pattern: str) -> Iterator[Path | InputFileError]:
        """Files matching a glob (``**`` recurses); folders it matches are walked."""
        matches = sorted(glob.glob(pattern, recursive=True))
        found = False
        parts = Path(pattern).parts
        fixed = next((i for i, part in enumerate(parts) if is_glob(part)), len(parts))
        base = Path(*parts[:fixed]) if fixed else Path(".")
        for match in matches:
            path = Path(match)
            outside = self._leaves(base, path)
            if outside is not None:
                found = True
                yield outside
                continue
            try:
                st = path.stat()
            except OSError as exc:
                found = True
                yield _error(path, _os_reason(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                found = True
                yield from self.folder(path, path, [])
            elif stat.S_ISREG(st.st_mode) and self._wanted(base, path):
                found = True
                if self._new_file(st):
                    yield path
        if not found:
            yield _error(pattern, "no supported files match this pattern")


def iter_sources(paths: Sequence[str | os.PathLike[str]], *, recursive: bool = True,
                 include: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
                 follow_links: bool = False) -> Iterator[Path | InputFileError]:
    """Yield the files to ingest from files, folders and glob patterns, in a stable order.

    * A file given explicitly is yielded whatever its extension (the loader reports an
      unsupported type).
    * A folder is walked (recursively unless ``recursive=False``), in name order,
      yielding files with a supported extension; entries whose name starts with ``.``
      are skipped. A symbolic link whose target lies inside the folder is followed (a
      link back to an enclosing folder is yielded as an error, ``symlink loop``, instead
      of being walked forever); one leading outside it (``/etc/passwd``, a credentials
      file named ``x.txt``) is yielded as a :class:`~knowbase.errors.SkippedFileError`
      unless ``follow_links``. A file or folder named explicitly is always read.
    * A pattern with ``*``, ``?`` or ``[`` (``docs/**/*.md``) is expanded with
      :func:`glob.glob` (``**`` recursive; hidden names not matched).
    * A file reached twice (two arguments, two links) is yielded once.

    Args:
        paths: files, folders and glob patterns.
        recursive: walk sub-folders.
        include: glob patterns (``*.md``, ``concepts/*``); when given, only files under
            folders/globs whose path relative to the folder, or whose name, matches one
            are yielded.
        exclude: glob patterns of files to leave out (checked like ``include``; also
            applied to explicit files).
        follow_links: also follow symbolic links leading outside the folder or the
            fixed part of the glob being walked.

    Yields:
        :class:`~pathlib.Path` for each file, or :class:`InputFileError` (``path``,
        ``reason``: ``not found``, ``broken symlink``, ``symlink loop``, ``permission
        denied``, ``not a regular file``, ``no supported files match this pattern``), or
        :class:`~knowbase.errors.SkippedFileError` (a subclass: ``symlink leaves the
        folder being ingested``), which is not a failure.
    """
    from knowbase.knowledge.loaders import supported_extensions

    walker = _Walker(supported_extensions(), tuple(include or ()), tuple(exclude or ()), recursive, follow_links)
    for raw in paths:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if is_glob(text) and not path.exists():
            yield from walker.pattern(str(path))
        else:
            yield from walker.explicit(path)
