"""What a caller may tell a loader about one file: limits, encoding, PDF passwords."""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from knowbase.errors import ConfigError
from knowbase.safety.files import FileLimits

__all__ = ["LoadOptions"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Options passed to every loader that accepts them (``load(path, options)``).

    Attributes:
        limits: the per-file limits (:class:`~knowbase.safety.files.FileLimits`).
        encoding: the text encoding of text files (``cp1252``, ``gb18030``...); when set,
            detection is skipped and never overrides it. None detects.
        pdf_password: user password tried for every encrypted PDF (after the empty one).
        pdf_passwords: ``{path: password}`` for particular PDFs; a key matches the file's
            absolute path, the path as given, or its file name. It wins over
            ``pdf_password``.

    Raises:
        ConfigError: ``encoding`` names no codec Python knows.
    """

    limits: FileLimits = field(default_factory=FileLimits)
    encoding: str | None = None
    pdf_password: str | None = None
    pdf_passwords: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.encoding:
            try:
                codecs.lookup(self.encoding)
            except LookupError as exc:
                raise ConfigError(f"unknown encoding {self.encoding!r}", encoding=self.encoding) from exc
        object.__setattr__(self, "pdf_passwords", MappingProxyType(dict(self.pdf_passwords)))

    def passwords_for(self, path: str | os.PathLike[str]) -> list[str]:
        """Passwords to try for the PDF at ``path``, in order: always the empty one
        first (owner-password-only files), then its own, then the general one."""
        p = Path(path)
        out = [""]
        for key in (str(p), str(p.absolute()), os.path.abspath(os.path.expanduser(str(p))), p.name):
            if key in self.pdf_passwords:
                out.append(self.pdf_passwords[key])
                break
        else:
            for key, value in self.pdf_passwords.items():
                if os.path.abspath(os.path.expanduser(key)) == str(p.absolute()):
                    out.append(value)
                    break
        if self.pdf_password is not None:
            out.append(self.pdf_password)
        return list(dict.fromkeys(out))
