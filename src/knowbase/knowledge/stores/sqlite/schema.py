"""The SQLite knowledge-base schema: append-only named migrations, applied by :func:`knowbase.storage.migrate`.

Tables:

* ``meta(key, value)``: ``embedder`` (model string), ``dim``, ``created`` (Unix s), ``tokenizer``,
  ``generation`` (write transactions so far), ``name``, ``abstain.*``.
* ``documents``: one row per source (``path`` unique), with ``sha256``, ``size`` (bytes),
  ``mtime`` (Unix s), ``title``, ``language``, ``metadata`` (JSON), ``kind`` (file | memory).
* ``chunks``: ``doc_id``, ``idx``, ``text``, ``start``/``end`` (character offsets),
  ``section`` (JSON list), ``page``, ``tokens`` (embedder tokens), ``norm`` (hash of the
  normalised text, for collapsing near-duplicates).
* ``chunks_fts``: contentless-delete FTS5 table over BM25 tokens (:mod:`knowbase.knowledge.bm25`),
  ``rowid`` = chunk id. Ranked by SQLite's ``bm25()``: Robertson/Sparck Jones BM25 with
  k1=1.2, b=0.75 and IDF ``log((N - n + 0.5) / (n + 0.5))`` floored at 1e-6
  (https://www.sqlite.org/fts5.html#the_bm25_function).
* ``vec_chunks(chunk_id INTEGER PRIMARY KEY, embedding BLOB)``: float32 embeddings,
  L2-normalised (a plain rowid table since ``m002_plain_vectors``: point reads of a
  few hundred vectors take about a millisecond, where sqlite-vec's ``vec0`` scanned its
  whole table for them; sqlite-vec's ``vec_distance_cosine`` still serves exact search).
  Created once the embedding width is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from knowbase.knowledge.bm25 import TOKENIZER_VERSION

PAGE_SIZE = 8192  # bytes, for new files (SQLite's default is 4096)
#: Tables every knowledge-base file holds (with ``m001_core`` in ``_migrations``).
KB_TABLES = ("meta", "documents", "chunks")

_CORE = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,      -- bytes
        mtime REAL,                           -- Unix seconds
        title TEXT NOT NULL DEFAULT '',
        language TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',  -- JSON object
        kind TEXT NOT NULL DEFAULT 'file',    -- file | memory
        added REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        doc_id INTEGER NOT NULL REFERENCES documents(id),
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        section TEXT NOT NULL DEFAULT '[]',   -- JSON list of headings
        page INTEGER,
        tokens INTEGER NOT NULL DEFAULT 0,    -- embedder tokens
        norm TEXT NOT NULL,                   -- sha1 of the normalised text
        UNIQUE (doc_id, idx)
    );
    CREATE INDEX chunks_norm ON chunks(norm);
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        tokens, content='', contentless_delete=1,
        tokenize="unicode61 remove_diacritics 0 tokenchars '_'"
    );
    CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
"""


def _core(conn: Any) -> None:
    """m001: the tables, and the creation time and tokenizer version in ``meta``."""
    conn.execute(_CORE)
    conn.execute("INSERT INTO meta VALUES ('created', ?), ('tokenizer', ?)", (str(time.time()), TOKENIZER_VERSION))


def _plain_vectors(conn: Any) -> None:
    """m002: a sqlite-vec ``vec0`` ``vec_chunks`` becomes a plain rowid table (same rows)."""
    rows = list(conn.execute("SELECT sql FROM sqlite_master WHERE name = 'vec_chunks'"))
    if not rows or "vec0" not in (rows[0][0] or "").lower():
        return
    conn.execute("CREATE TABLE vec_chunks_plain (chunk_id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)")
    conn.execute("INSERT INTO vec_chunks_plain SELECT chunk_id, embedding FROM vec_chunks")
    conn.execute("DROP TABLE vec_chunks")
    conn.execute("ALTER TABLE vec_chunks_plain RENAME TO vec_chunks")


MIGRATIONS: list[tuple[str, str | Callable[[Any], None]]] = [
    ("m001_core", _core),
    ("m002_plain_vectors", _plain_vectors),
]
