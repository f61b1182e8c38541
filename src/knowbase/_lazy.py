"""Lazy re-exports for package ``__init__`` modules (PEP 562 module ``__getattr__``).

``import knowbase`` stays fast: a name is imported from its module on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package that re-exports ``exports`` lazily.

    Args:
        package: the package's dotted name, for error messages.
        exports: ``{public name: "module.path"}``.
        namespace: the package's ``globals()`` (listed by ``__dir__``).

    The returned ``__getattr__`` raises AttributeError for names not in ``exports``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__
