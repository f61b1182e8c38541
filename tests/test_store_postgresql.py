"""The PostgreSQL backend against a real PostgreSQL 16 + pgvector (started from the pgserver
wheel, see tests/pg_server.py): the chunk-store conformance suite, BM25 agreement with the
SQLite backend, and a knowledge base created, searched, asked, checked and dropped by URL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import postgres_with_pgvector
from store_conformance import ChunkStoreTests

_names = itertools.count()


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_with_pgvector() as url:
        yield url


class TestPostgreSQLStore(ChunkStoreTests):
    @pytest.fixture
    def url(self, pg: str) -> str:
        return f"{pg}#conf{next(_names)}"
