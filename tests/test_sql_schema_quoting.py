"""Schemas with reserved words as names: quoted for the model and in the sample queries;
failed introspection queries reported, not skipped silently."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat
from knowbase.sql.database import open_database
from knowbase.sql.pipeline import Text2SQL
from knowbase.sql.schema import introspect, needs_quotes, quote_ident


@pytest.fixture
def reserved(tmp_path: Path) -> Path:
    path = tmp_path / "reserved.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE "order" (id INTEGER PRIMARY KEY, "group" TEXT, "desc" TEXT, "select" INTEGER, "My Note" TEXT);
        CREATE TABLE "group" (id INTEGER PRIMARY KEY, "order" INTEGER REFERENCES "order"(id), name TEXT);
        INSERT INTO "order" VALUES (1, 'north', 'big', 1, 'n'), (2, 'north', 'small', 2, 'n'), (3, 'south', 'big', 3, 'm');
        INSERT INTO "group" VALUES (1, 1, 'g'), (2, 1, 'g');
        CREATE TABLE raw (a TEXT);
        INSERT INTO raw VALUES ('not json'), ('not json');
        CREATE VIEW broken AS SELECT json_extract(a, '$') AS j FROM raw;
    """)
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(("name", "dialect", "quoted"), [
    ("order", "sqlite", '"order"'), ("group", "sqlite", '"group"'), ("desc", "sqlite", '"desc"'),
    ("select", "sqlite", '"select"'), ("user", "sqlite", '"user"'), ("Track", "sqlite", "Track"),
    ("UnitPrice", "sqlite", "UnitPrice"), ("My Note", "sqlite", '"My Note"'), ('a"b', "sqlite", '"a""b"'),
    ("1st", "sqlite", '"1st"'), ("order", "postgres", '"order"'), ("user", "postgres", '"user"'),
    ("Total", "postgres", '"Total"'), ("total", "postgres", "total"), ("name", "postgres", "name"),
])
def test_identifiers_are_quoted_as_the_dialect_needs(name: str, dialect: str, quoted: str) -> None:
    assert quote_ident(name, dialect) == quoted
    assert needs_quotes(name, dialect) == (quoted != name)


def test_reserved_names_are_quoted_for_the_model_and_sampled(reserved: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="knowbase.sql.schema"):
        schema = introspect(open_database(reserved), sample_values=3)
    text = schema.render()
    assert 'CREATE TABLE "order" (' in text and 'CREATE TABLE "group" (' in text
    assert "  \"group\" TEXT, -- values: 'north'" in text      # the sample query on "group" ran
    assert "  \"desc\" TEXT, -- values: 'big'" in text
    assert '  "select" INTEGER,' in text and "\"My Note\" TEXT -- values: 'n'" in text
    assert 'FOREIGN KEY ("order") REFERENCES "order"(id)' in text
    # the failed sample query is reported, not skipped silently
    assert len(schema.warnings) == 1
    assert schema.warnings[0].startswith("sample values of broken.j not read: malformed JSON")
    assert any("broken.j" in r.getMessage() for r in caplog.records)


def test_text2sql_runs_queries_on_reserved_names(reserved: Path) -> None:
    sql = 'SELECT "group", count(*) AS n FROM "order" GROUP BY "group" ORDER BY "group"'
    t2s = Text2SQL(reserved, model=ChatModel(FakeChat([f"```sql\n{sql}\n```", "North has two."])))
    result = t2s.ask("How many orders per group?")
    assert result.error is None, result.error
    assert result.rows == [("north", 2), ("south", 1)]
    assert t2s.schema.warnings == t2s.schema_for("orders per group").warnings
