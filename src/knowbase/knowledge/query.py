"""The check every search and question passes before any index or model sees it.

A query must hold at least one letter or digit (Unicode categories L* and N*, any script).
An empty, whitespace-only or punctuation-only query would embed the empty string and
return arbitrary chunks with full confidence, so it is refused up front: no embedding
call, no index lookup, no model call.
"""

from __future__ import annotations

import unicodedata

from knowbase.errors import EmptyQueryError

__all__ = ["check_query"]


def check_query(query: str, *, field: str = "query") -> str:
    """Return ``query`` unchanged when it can be searched for, else raise.

    Args:
        query: a search query or question.
        field: its name in the error (``query``, ``question``).

    Raises:
        EmptyQueryError: ``query`` is not a string, or has no letter or digit (``""``,
            ``"   "``, ``"?!"``, ``"……"``); it is both a :class:`~knowbase.errors.UserError`
            (the CLI exits 2) and a :class:`ValueError`.

    Example::

        >>> check_query("冰雪节")
        '冰雪节'
    """
    if not isinstance(query, str):
        raise EmptyQueryError(f"the {field} must be text, not {type(query).__name__}", field=field)
    if not any(unicodedata.category(ch)[0] in "LN" for ch in query):
        shown = "empty" if not query.strip() else f"{query[:40]!r}, which has no letter or digit"
        raise EmptyQueryError(f"the {field} is {shown}: give words to search for", field=field)
    return query
