"""Near-duplicate keys of chunk texts, the same in every store (``norm`` columns)."""

from __future__ import annotations

import hashlib
import re

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    """Text for near-duplicate detection: lowercase, punctuation dropped, spaces collapsed."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def norm_hash(text: str) -> str:
    """sha1 hex of :func:`normalise` (chunks with equal hashes are near-duplicates)."""
    return hashlib.sha1(normalise(text).encode()).hexdigest()
