"""The PostgreSQL knowledge-base schema: one PostgreSQL schema per knowledge base (``kb_NAME``).

Tables (mirroring the SQLite backend, plus the corpus statistics BM25 needs):

* ``meta(key, value)``: ``embedder``, ``dim``, ``created``, ``tokenizer``, ``name``, ``abstain.*``.
* ``corpus``: one row: ``chunks`` (N), ``tokens`` (sum of BM25 token counts, for the average
  chunk length) and ``generation`` (write transactions so far). Every writer locks it first,
  so writes are serialised (and cannot deadlock) and the statistics stay exact.
* ``documents``: ``path`` unique, ``metadata`` jsonb; ``chunks``: text, offsets, ``norm``
  (near-duplicate key), ``length`` (BM25 tokens); ``postings(term, chunk_id, tf)``: knowbase's
  own BM25 tokens (:func:`knowbase.knowledge.bm25.tokenize`: English stemming, jieba), so
  BM25 is computed from the same tokens as the SQLite backend; document frequencies are
  counted from the postings of the query terms at query time (always exact).
* ``vectors(chunk_id, embedding vector(dim))`` with an HNSW index (cosine), created when the
  embedding width is first known.

Migrations are append-only and named, recorded in ``_migrations`` like the SQLite stores'
(:func:`knowbase.storage.migrate` speaks SQLite's ``?`` parameters, so :func:`migrate` here
runs the same loop with PostgreSQL's), each under an advisory lock of the knowledge base.
"""

from __future__ import annotations

import time
from typing import Any

from knowbase.knowledge.bm25 import TOKENIZER_VERSION

_CORE = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE corpus (id int PRIMARY KEY CHECK (id = 1), chunks bigint NOT NULL DEFAULT 0,
                     tokens bigint NOT NULL DEFAULT 0, generation bigint NOT NULL DEFAULT 0);
INSERT INTO corpus VALUES (1, 0, 0, 0);
CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    path text NOT NULL UNIQUE,
    sha256 text NOT NULL,
    size bigint NOT NULL DEFAULT 0,
    mtime double precision,
    title text NOT NULL DEFAULT '',
    language text,
    metadata jsonb NOT NULL DEFAULT '{}',
    kind text NOT NULL DEFAULT 'file',
    added double precision NOT NULL,
    updated double precision NOT NULL
);
CREATE TABLE chunks (
    id bigserial PRIMARY KEY,
    doc_id bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx int NOT NULL,
    text text NOT NULL,
    start int NOT NULL,
    "end" int NOT NULL,
    section jsonb NOT NULL DEFAULT '[]',
    page int,
    tokens int NOT NULL DEFAULT 0,
    norm text NOT NULL,
    length int NOT NULL DEFAULT 0,
    UNIQUE (doc_id, idx)
);
CREATE INDEX chunks_norm ON chunks(norm);
CREATE TABLE postings (
    term text NOT NULL,
    chunk_id bigint NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    tf int NOT NULL,
    PRIMARY KEY (term, chunk_id)
);
CREATE INDEX postings_chunk ON postings(chunk_id);
"""


def _core(cur: Any) -> None:
    cur.execute(_CORE)
    cur.execute("INSERT INTO meta VALUES ('created', %s), ('tokenizer', %s)", (str(time.time()), TOKENIZER_VERSION))


MIGRATIONS: list[tuple[str, Any]] = [("p001_core", _core)]


def vectors_ddl(dim: int) -> str:
    """The vector table for ``dim``-wide embeddings with its HNSW cosine index (pgvector)."""
    return (f"CREATE TABLE vectors (chunk_id bigint PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, "
            f"embedding vector({int(dim)}) NOT NULL); "
            "CREATE INDEX vectors_hnsw ON vectors USING hnsw (embedding vector_cosine_ops)")


def migrate(conn: Any, lock_key: str) -> list[str]:
    """Apply the migrations not yet applied (each in its own transaction, under an advisory lock)."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key,))
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name text PRIMARY KEY, applied double precision NOT NULL)")
    for name, step in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key,))
            if conn.execute("SELECT 1 FROM _migrations WHERE name = %s", (name,)).fetchone():
                continue
            with conn.cursor() as cur:
                step(cur)
            conn.execute("INSERT INTO _migrations VALUES (%s, %s)", (name, time.time()))
            applied.append(name)
    return applied
