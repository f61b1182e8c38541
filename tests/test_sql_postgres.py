"""PostgreSQL: the statements issued, and a real server when one can be started locally.

The server tests run a throwaway cluster (``initdb`` + ``postgres`` as the ``postgres``
user, listening on a Unix socket only, no TCP) and are skipped when the binaries, the
user or the ``psycopg`` driver are missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knowbase.sql.database import open_database
from knowbase.sql.execute import postgres_preamble, run_dbapi
from pg_server import postgres_with_pgvector


class RecordingCursor:
    def __init__(self, log: list[str], rows: list[tuple[int]]) -> None:
        self.log, self.rows = log, rows
        self.description = [("n",)]

    def execute(self, sql: str) -> None:
        self.log.append(sql)
        if "boom" in sql:
            raise RuntimeError("boom")

    def fetchmany(self, size: int) -> list[tuple[int]]:
        self.fetched = getattr(self, "fetched", 0)
        batch = self.rows[self.fetched:self.fetched + size]
        self.fetched += len(batch)
        self.log.append(f"fetchmany {size}")
        return batch

    def close(self) -> None:
        self.log.append("close")


class RecordingConnection:
    def __init__(self, rows: list[tuple[int]]) -> None:
        self.log: list[str] = []
        self.rows = rows

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self.log, self.rows)

    def rollback(self) -> None:
        self.log.append("ROLLBACK")


def test_preamble_opens_a_read_only_transaction_with_a_timeout() -> None:
    assert postgres_preamble(2.5) == ["SET TRANSACTION READ ONLY", "SET LOCAL statement_timeout = 2500"]
    assert postgres_preamble(0.0001)[1] == "SET LOCAL statement_timeout = 1"


def test_run_dbapi_issues_preamble_then_query_and_always_rolls_back() -> None:
    conn = RecordingConnection([(1,), (2,), (3,)])
    result = run_dbapi(conn, "SELECT n FROM t", preamble=postgres_preamble(1), row_limit=2)
    assert (result.columns, result.rows, result.truncated, result.truncated_by) == (("n",), [(1,), (2,)], True, "rows")
    assert conn.log == ["SET TRANSACTION READ ONLY", "SET LOCAL statement_timeout = 1000", "SELECT n FROM t",
                        "fetchmany 100", "close", "ROLLBACK"]
    failing = RecordingConnection([])
    with pytest.raises(RuntimeError):
        run_dbapi(failing, "SELECT boom", preamble=[], row_limit=1)
    assert failing.log[-1] == "ROLLBACK"


def test_run_dbapi_stops_at_the_byte_budget_in_batches() -> None:
    big = "x" * 1_000_000
    conn = RecordingConnection([(big,)] * 500)
    result = run_dbapi(conn, "SELECT big FROM t", preamble=[], row_limit=1000, max_bytes=5_500_000)
    assert result.truncated_by == "bytes" and len(result.rows) == 5
    assert result.nbytes <= 5_500_000
    assert conn.log.count("fetchmany 100") == 1  # one batch, not the whole result


def test_postgres_engine_is_read_only_by_default() -> None:
    pytest.importorskip("psycopg")
    db = open_database("postgresql://reader@127.0.0.1:1/shop")
    assert db.engine.url.drivername == "postgresql+psycopg"
    assert db.dialect == "postgres"


# --- a real local server (the one PostgreSQL the tests start: tests/pg_server.py) ---------------
@pytest.fixture(scope="module")
def pg_url() -> Iterator[tuple[str, str]]:
    """``(SQLAlchemy URL, libpq DSN)`` of a throwaway server holding a small shop schema."""
    import psycopg

    with postgres_with_pgvector() as url:
        host = url.split("host=", 1)[1].split("&", 1)[0]
        port = url.rsplit("port=", 1)[1]
        dsn = f"host={host} port={port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text)")
            conn.execute("COMMENT ON TABLE customers IS 'People who buy'")
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id),"
                         " amount numeric, status text)")
            conn.execute("INSERT INTO customers VALUES (1, 'Ann', 'Paris'), (2, 'Bob', 'Oslo'), (3, 'Cy', 'Paris')")
            conn.execute("INSERT INTO orders VALUES (1, 1, 10, 'paid'), (2, 1, 5, 'paid'), (3, 2, 7, 'open')")
        yield url, dsn


def _count(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def test_postgres_ask_and_guards(pg_url) -> None:
    from knowbase.models.base import ChatModel
    from knowbase.models.fake import FakeChat
    from knowbase.sql.errors import QueryTimeoutError, SQLRefusedError
    from knowbase.sql.execute import execute
    from knowbase.sql.pipeline import Text2SQL

    url, dsn = pg_url
    model = ChatModel(FakeChat(["```sql\nSELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o "
                                "ON o.customer_id = c.id GROUP BY c.name ORDER BY total DESC\n```", "Ann spent most."]))
    t2s = Text2SQL(url, model=model, timeout=2.0)
    schema_text = t2s.prompt_schema()
    assert "CREATE TABLE customers ( -- People who buy" in schema_text
    assert "FOREIGN KEY (customer_id) REFERENCES customers(id)" in schema_text
    assert "-- values: 'Paris'" in schema_text
    result = t2s.ask("Who spent the most?")
    assert result.error is None
    assert [(name, float(total)) for name, total in result.rows] == [("Ann", 15.0), ("Bob", 7.0)]
    assert result.sql.endswith("LIMIT 1000")
    db = open_database(url)
    before = _count(dsn)
    with pytest.raises(SQLRefusedError):          # the engine alone: a read-only transaction
        execute(db, "DELETE FROM orders", timeout=2.0)
    with pytest.raises(SQLRefusedError):
        execute(db, "CREATE TABLE x (a int)", timeout=2.0)
    with pytest.raises(QueryTimeoutError):        # statement_timeout
        execute(db, "SELECT pg_sleep(5)", timeout=0.3)
    assert _count(dsn) == before == 3
    # rows arrive one by one (psycopg stream) and stop at the byte budget
    big = execute(db, "SELECT repeat('x', 1000000) FROM generate_series(1, 500)", timeout=5.0, max_bytes=5_500_000)
    assert big.truncated_by == "bytes" and len(big.rows) == 5
    # a cancel scope (a tool call that timed out) stops the statement before statement_timeout
    import threading

    from knowbase.safety.deadline import CancelScope, cancel_scope

    scope = CancelScope()
    threading.Timer(0.3, scope.cancel, args=("tool timed out",)).start()
    with cancel_scope(scope=scope), pytest.raises(QueryTimeoutError) as info:
        execute(db, "SELECT pg_sleep(30)", timeout=60.0)
    assert "tool timed out" in str(info.value)
    refused = Text2SQL(url, model=ChatModel(FakeChat(default="SELECT pg_read_file('/etc/passwd')")),
                       max_attempts=2).ask("read a file")
    assert refused.error.startswith("refused") and refused.rows == []


def test_postgres_reserved_and_capitalised_names_are_quoted(pg_url) -> None:
    import psycopg

    from knowbase.sql.execute import execute
    from knowbase.sql.schema import introspect

    url, dsn = pg_url
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA hostile')
        conn.execute('CREATE TABLE hostile."order" ("group" text, "desc" text, "select" int, "Total" int)')
        conn.execute("""INSERT INTO hostile."order" VALUES ('a', 'x', 1, 1), ('a', 'y', 2, 2), ('b', 'x', 3, 3)""")
    db = open_database(url)
    schema = introspect(db, sample_values=3, namespace="hostile")
    text = schema.render()
    assert 'CREATE TABLE "order" (' in text
    assert "\"group\" TEXT, -- values: 'a', 'b'" in text
    assert "\"desc\" TEXT, -- values: 'x', 'y'" in text
    assert '"select" INTEGER' in text and '"Total" INTEGER' in text
    assert schema.warnings == ()
    rows = execute(db, 'SELECT "group", sum("Total") FROM hostile."order" GROUP BY "group" ORDER BY 1', timeout=2.0).rows
    assert rows == [("a", 3), ("b", 3)]
