"""Store backends by URL scheme, found through the ``knowbase.stores`` entry-point group.

The built-in ``sqlite`` backend is registered in ``pyproject.toml`` like any plugin (and
known here too, so a source checkout without installed metadata still works). A plugin
registers ``NAME = "module:Factory"``; ``Factory()`` must satisfy
:class:`~knowbase.knowledge.stores.base.StoreBackend`, and URLs ``NAME://...`` reach it.

Where a knowledge base lives (:func:`locate`):

* ``docs`` (a name): SQLite at ``settings.kb_dir / "docs.db"``, as always;
* ``./x.db``, ``/srv/kb/docs.db`` (a path): that SQLite file;
* ``sqlite:////srv/kb/docs.db``, ``postgresql://me@db/kb#docs`` (a URL, the name after ``#``);
* ``docs`` with ``store="postgresql://me@db/kb"``: the URL plus ``#docs``; ``store = "..."``
  in ``config.toml`` makes that the default for bare names (``stores = [...]`` lists more
  servers for ``knowbase kb list``).
"""

from __future__ import annotations

import importlib
import os
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from knowbase.errors import UserError
from knowbase.knowledge.stores.base import StoreBackend, StoreLocation

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings

STORE_GROUP = "knowbase.stores"
_BUILTIN = {"sqlite": "knowbase.knowledge.stores.sqlite:SQLiteBackend"}
_ALIASES = {"postgres": "postgresql", "postgresql+psycopg": "postgresql"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@lru_cache(maxsize=1)
def store_backends() -> dict[str, str]:
    """``{scheme: "module:attr"}`` of every registered store backend, built-ins included."""
    from importlib.metadata import entry_points

    found = dict(_BUILTIN)
    for ep in entry_points(group=STORE_GROUP):
        found[ep.name] = ep.value
    return found


def get_backend(scheme: str) -> StoreBackend:
    """The backend for a URL scheme.

    Raises:
        UserError: no backend is registered for it (lists the known ones).
    """
    scheme = _ALIASES.get(scheme.lower(), scheme.lower())
    table = store_backends()
    if scheme not in table:
        raise UserError(f"no store backend for {scheme}://; known: {', '.join(sorted(table))} "
                        f"(a backend is a '{STORE_GROUP}' entry point)", field="store")
    module, _, attr = table[scheme].partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    backend = obj() if callable(obj) else obj
    if not isinstance(backend, StoreBackend):
        raise UserError(f"store backend {scheme!r} ({table[scheme]}) does not implement StoreBackend", field="store")
    return backend


def check_name(name: str) -> str:
    """A valid knowledge base name, or UserError (letters, digits, ``-``, ``_``, ``.``)."""
    if not _NAME.match(name):
        raise UserError(f"invalid knowledge base name {name!r}: use letters, digits, '-', '_' or '.'", field="name")
    return name


def locate(name_or_url: str | os.PathLike[str], settings: Settings, *,
           store: str | None = None) -> tuple[StoreBackend, StoreLocation]:
    """The backend and location of a knowledge base (see the module docstring).

    Args:
        name_or_url: a name, a ``.db`` path, or a URL (``scheme://...#NAME``).
        settings: for the default SQLite folder.
        store: a store URL to put the named knowledge base in (``postgresql://me@db/kb``);
            default the ``store`` setting of ``config.toml``, else SQLite in ``settings.kb_dir``.

    Raises:
        UserError: a bad name, a URL without a name, or an unknown scheme.
    """
    text = os.fspath(name_or_url)
    is_path = os.sep in text or text.endswith(".db") or bool(os.altsep and os.altsep in text)
    if store and is_path and "://" not in text:
        raise UserError(f"give a knowledge base name with --store, not the path {text!r}", field="name")
    store = store or settings.extra.get("store") or None
    if "://" in text:
        scheme = text.split("://", 1)[0]
        name = text.split("#", 1)[1] if "#" in text else ""
        if not name and scheme.lower() == "sqlite":
            name = os.path.splitext(os.path.basename(text.split("#", 1)[0]))[0]
        if not name:
            raise UserError(f"store URL {text!r} names no knowledge base: add #NAME", field="store")
        backend = get_backend(scheme)
        return backend, backend.locate(name, text, settings)
    if store and not is_path:
        if not isinstance(store, str):
            raise UserError(f"the store setting must be a URL, not {store!r}", field="store")
        backend = get_backend(store.split("://", 1)[0] if "://" in store else store)
        return backend, backend.locate(check_name(text), store if "://" in store else f"{store}://", settings)
    backend = get_backend("sqlite")
    if is_path:
        return backend, backend.locate(os.path.splitext(os.path.basename(text))[0],
                                       f"sqlite:///{os.path.expanduser(text)}", settings)
    return backend, backend.locate(check_name(text), "sqlite://", settings)
