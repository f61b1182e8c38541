"""Load prompt templates from text files, safely.

Templates the package ships live in ``knowbase/prompts/templates/*.txt``; users may keep
their own in a folder passed as ``folder=`` (for example ``settings.home / "prompts"``),
which is searched first so a user file overrides a shipped one of the same name.

A name is a relative path of plain parts (``answer``, ``kb_answer.txt``, ``agent/react``):
letters, digits, ``_``, ``-`` and ``.``, no ``..``, no absolute paths, no backslashes.
After resolving symlinks the file must still be inside the folder, so a symlink cannot
lead out of it. Files are read as UTF-8, at most :data:`MAX_TEMPLATE_BYTES`.

A chat template file marks its messages with a line holding only ``[system]``,
``[user]`` or ``[assistant]``::

    [system]
    You answer from the passages only.
    [user]
    {question}
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from knowbase.errors import TemplateError
from knowbase.prompts.template import ChatPromptTemplate, PromptTemplate

PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_TEMPLATE_BYTES = 1_000_000
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_ROLE_LINE = re.compile(r"^\[(system|user|assistant)\]\s*$", re.MULTILINE)


def template_path(name: str, *, folder: str | Path | None = None) -> Path:
    """The file a template name refers to: the user ``folder`` first, then the package.

    Args:
        name: e.g. ``"math"`` or ``"agent/react.txt"`` (``.txt`` is added when missing).
        folder: a user template folder; None searches the package only.

    Raises:
        TemplateError: the name is unsafe (``reason="name"``), points outside its folder
            (``reason="escape"``) or names no file (``reason="missing"``).
    """
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name or name.startswith("/"):
        raise TemplateError(f"bad template name {name!r}: use a relative name like 'answer' or 'agent/react'",
                            name=str(name), reason="name")
    parts = name.split("/")
    if any(p in ("", ".", "..") or not _PART.match(p) for p in parts):
        raise TemplateError(f"bad template name {name!r}: parts may hold letters, digits, _ - . only, and no '..'",
                            name=name, reason="name")
    if not parts[-1].endswith(".txt"):
        parts[-1] += ".txt"
    folders = [Path(folder)] if folder is not None else []
    folders.append(PACKAGE_TEMPLATES)
    for base in folders:
        root = base.resolve()
        candidate = base.joinpath(*parts)
        if not candidate.exists() and not candidate.is_symlink():
            continue
        real = candidate.resolve()
        if not real.is_relative_to(root):
            raise TemplateError(f"template {name!r} resolves outside {base}", name=name, reason="escape",
                                path=str(candidate))
        if not real.is_file():
            raise TemplateError(f"template {name!r} is not a file", name=name, reason="missing", path=str(real))
        return real
    searched = ", ".join(str(f) for f in folders)
    raise TemplateError(f"no template named {name!r} (searched {searched})", name=name, reason="missing")


def read_template_text(name: str, *, folder: str | Path | None = None) -> str:
    """The text of a template file (UTF-8; trailing newline removed)."""
    path = template_path(name, folder=folder)
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"template {name!r} is larger than {MAX_TEMPLATE_BYTES} bytes", name=name,
                                reason="size", path=str(path))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read template {path}: {exc}", name=name, path=str(path),
                            reason="read") from exc
    return text[:-1] if text.endswith("\n") else text


def load_template(name: str, *, folder: str | Path | None = None) -> PromptTemplate:
    """Load a :class:`PromptTemplate` by name (see :func:`template_path`).

    Raises:
        TemplateError: unsafe name, missing file, or a malformed template.
    """
    if folder is None:
        return _package_template(name)
    return PromptTemplate(read_template_text(name, folder=folder), name=name)


@lru_cache(maxsize=128)
def _package_template(name: str) -> PromptTemplate:
    """Shipped templates do not change while the process runs: read each once."""
    return PromptTemplate(read_template_text(name), name=name)


def load_chat_template(name: str, *, folder: str | Path | None = None) -> ChatPromptTemplate:
    """Load a :class:`ChatPromptTemplate` from a file with ``[system]``/``[user]``/``[assistant]`` lines.

    A file without role lines is one user message.
    """
    text = read_template_text(name, folder=folder)
    marks = list(_ROLE_LINE.finditer(text))
    if not marks:
        return ChatPromptTemplate([("user", PromptTemplate(text, name=name))], name=name)
    if text[: marks[0].start()].strip():
        raise TemplateError(f"template {name!r} has text before its first [role] line", name=name, reason="format")
    parts = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end():end].strip("\n")
        parts.append((mark.group(1), PromptTemplate(body, name=name)))
    return ChatPromptTemplate(parts, name=name)
