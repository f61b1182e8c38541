"""Text2SQL with scripted models: connection, schema, validation, generation, retries, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat
from knowbase.sql.database import open_database
from knowbase.sql.errors import (
    DatabaseConnectError,
    SQLRefusedError,
    SQLValidationError,
)
from knowbase.sql.generate import Example, extract_sql, first_statement, select_examples
from knowbase.sql.pipeline import STAGES, Text2SQL
from knowbase.sql.schema import (
    Column,
    Schema,
    Table,
    fence_value,
    introspect,
    select_tables,
    words,
)
from knowbase.sql.validate import validate_sql, with_column_hint
from sql_hostile import build_shop_db


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    db = tmp_path / "shop.sqlite"
    build_shop_db(db)
    return db


def fake(*replies: str) -> ChatModel:
    return ChatModel(FakeChat(list(replies)))


# --- connection -------------------------------------------------------------------------
def test_open_database_forms(shop: Path) -> None:
    assert open_database(str(shop)).dialect == "sqlite"
    assert open_database(f"sqlite:///{shop}").path == shop.resolve()
    pg = open_database("postgresql://me:secret@db.example:5432/sales")
    assert pg.dialect == "postgres" and pg.url.startswith("postgresql+psycopg://")
    assert "secret" not in pg.display_url and "***" in pg.display_url
    assert open_database("postgres://me@h/x").url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize("url", ["/no/such/file.sqlite", "sqlite:////no/such.db", "sqlite://", "mysql://u@h/db"])
def test_open_database_errors_name_the_problem(url: str) -> None:
    with pytest.raises(DatabaseConnectError) as info:
        open_database(url)
    assert info.value.reason in {"not found", "in-memory", "unsupported"}


def test_not_a_database_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_text("hello, not sqlite")
    with pytest.raises(DatabaseConnectError) as info:
        _ = Text2SQL(bad, model=fake()).schema
    assert info.value.path == str(bad.resolve())


# --- schema -------------------------------------------------------------------------------
def test_introspect_tables_keys_and_samples(shop: Path) -> None:
    schema = introspect(open_database(shop), sample_values=3)
    assert [t.name for t in schema.tables] == ["customers", "orders", "numbers"]   # creation order
    orders = schema.table("ORDERS")
    assert orders is not None and orders.column("id").primary_key
    assert orders.foreign_keys[0].ref_table == "customers" and orders.foreign_keys[0].columns == ("customer_id",)
    status = orders.column("status")
    assert status.samples[0] == "'paid'"                     # most frequent first
    assert schema.table("customers").column("name").samples == ()   # all distinct: no samples
    assert schema.table("customers").column("city").samples[0] == "'Paris'"


def test_render_is_compact_create_table() -> None:
    table = Table("t", (Column("id", "INTEGER", primary_key=True), Column("kind", "TEXT", samples=("'a'", "'b'")),
                        Column("odd name", "")))
    assert Schema("sqlite", (table,)).render() == (
        "CREATE TABLE t (\n  id INTEGER PRIMARY KEY,\n  kind TEXT, -- values: 'a', 'b'\n  \"odd name\"\n);")
    assert "values" not in Schema("sqlite", (table,)).render(samples=False)


def test_fence_value_neutralises_markup() -> None:
    assert fence_value("a\n```b */ -- c'd") == "'a b c''d'"
    assert fence_value("x" * 100) == "'" + "x" * 40 + "...'"


def test_words_split_identifiers() -> None:
    assert words("TrackId of invoice_lines, Countries") == ["track", "id", "of", "invoice", "line", "country"]


def test_select_tables_keeps_relevant_tables_and_their_joins() -> None:
    tables = [Table(f"filler{i}", (Column("x", "INT"),)) for i in range(10)]
    tables.append(Table("singer", (Column("singer_id", "INT", primary_key=True), Column("name", "TEXT"))))
    from knowbase.sql.schema import ForeignKey

    tables.append(Table("concert", (Column("concert_id", "INT"), Column("singer_id", "INT")),
                        (ForeignKey(("singer_id",), "singer", ("singer_id",)),)))
    schema = Schema("sqlite", tuple(tables))
    picked = select_tables(schema, "How many singers are there?", max_tables=4)
    names = [t.name for t in picked.tables]
    assert "singer" in names and "concert" in names and len(names) <= 4
    assert select_tables(schema, "anything", max_tables=20) is schema


# --- validation ---------------------------------------------------------------------------
def test_validate_adds_limit_and_keeps_one_select(shop: Path) -> None:
    schema = introspect(open_database(shop))
    v = validate_sql("SELECT name FROM customers;", schema=schema, limit=50)
    assert v.sql == "SELECT name FROM customers LIMIT 50" and v.limit_added and v.tables == ("customers",)
    assert validate_sql("SELECT name FROM customers LIMIT 2", schema=schema, limit=50).sql.endswith("LIMIT 2")
    assert validate_sql("SELECT 1 UNION SELECT 2", limit=5).sql == "SELECT 1 UNION SELECT 2 LIMIT 5"
    cte = validate_sql("WITH big AS (SELECT * FROM orders WHERE amount > 5) SELECT count(*) FROM big", schema=schema)
    assert cte.tables == ("orders",) and not cte.limit_added


def test_validate_reports_unknown_names_with_the_known_ones(shop: Path) -> None:
    schema = introspect(open_database(shop))
    with pytest.raises(SQLValidationError) as info:
        validate_sql("SELECT * FROM clients", schema=schema)
    assert "unknown table clients" in info.value.reason and "customers, orders, numbers" in info.value.reason
    with pytest.raises(SQLValidationError) as info:
        validate_sql("SELECT surname FROM customers", schema=schema)
    assert "unknown column surname" in info.value.reason
    with pytest.raises(SQLValidationError) as info:
        validate_sql("SELECT o.city FROM orders AS o", schema=schema)
    assert "column city is not in table orders" in info.value.reason and "customer_id" in info.value.reason
    with pytest.raises(SQLValidationError) as info:
        validate_sql("SELEC name FROM", schema=schema)
    assert info.value.reason.startswith("syntax error")


def test_validate_names_the_table_that_holds_a_column_missing_from_the_query(shop: Path) -> None:
    schema = introspect(open_database(shop))
    with pytest.raises(SQLValidationError) as info:
        validate_sql("SELECT count(*) FROM orders WHERE city = 'Paris'", schema=schema)
    assert info.value.reason == ("column city is not in table orders of the query; city is a column of customers: "
                                 "join that table through its key")
    with pytest.raises(SQLValidationError) as info:
        validate_sql("SELECT o.city FROM orders AS o", schema=schema)
    assert info.value.reason.endswith("city is a column of customers: join that table through its key")
    with pytest.raises(SQLValidationError) as info:  # the right table is joined already: name its alias
        validate_sql("SELECT o.city FROM orders AS o JOIN customers AS C ON C.id = o.customer_id", schema=schema)
    assert info.value.reason.endswith("the query already reads a table that holds it: write C.city")
    # the join, a correlated subquery, a CTE and a derived table all resolve
    assert validate_sql("SELECT count(*) FROM orders JOIN customers ON customers.id = orders.customer_id "
                        "WHERE city = 'Paris'", schema=schema)
    assert validate_sql("SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > 5)",
                        schema=schema)
    assert validate_sql("SELECT name, (SELECT count(*) FROM orders WHERE orders.customer_id = customers.id) AS n "
                        "FROM customers ORDER BY n", schema=schema)
    assert validate_sql("WITH c AS (SELECT city FROM customers) SELECT city FROM c", schema=schema)
    assert validate_sql("SELECT city FROM (SELECT city FROM customers) AS x", schema=schema)


def test_execution_errors_get_the_table_that_holds_the_column(shop: Path) -> None:
    schema = introspect(open_database(shop))
    assert with_column_hint("no such column: T1.city", schema) == (
        "no such column: T1.city; city is a column of customers: join that table through its key")
    assert with_column_hint('column "amount" does not exist', schema).endswith("amount is a column of orders: "
                                                                              "join that table through its key")
    assert with_column_hint("no such column: nowhere", schema) == "no such column: nowhere"
    assert with_column_hint("no such function: X", schema) == "no such function: X"


def test_validate_accepts_sqlite_quirks_and_aliases(shop: Path) -> None:
    schema = introspect(open_database(shop))
    # SQLite reads an unknown double-quoted identifier as a string
    assert validate_sql('SELECT name FROM customers WHERE city = "Paris"', schema=schema)
    assert validate_sql("SELECT city, count(*) AS n FROM customers GROUP BY city ORDER BY n DESC", schema=schema)
    assert validate_sql("SELECT name FROM customers WHERE note = 'a; DROP TABLE x'", schema=schema)


@pytest.mark.parametrize("sql", [
    "SELECT pg_sleep(10)", "SELECT set_config('x', 'y', false)", "SELECT * FROM customers FOR UPDATE",
    "SELECT * FROM information_schema.tables", "SELECT * FROM pg_catalog.pg_user", "SELECT lo_import('/etc/passwd')",
    "SELECT query_to_xml('delete from t', true, true, '')", "SELECT * FROM dblink('x', 'select 1') AS t(a int)",
])
def test_validate_refuses_postgres_specials(sql: str) -> None:
    with pytest.raises(SQLRefusedError):
        validate_sql(sql, dialect="postgres")


# --- reply parsing ------------------------------------------------------------------------
@pytest.mark.parametrize(("reply", "sql"), [
    ("```sql\nSELECT 1\n```\nThis counts.", "SELECT 1"),
    ("Sure! Here it is:\n```\nSELECT a FROM t;\n```", "SELECT a FROM t;"),
    ("The query is SELECT name FROM t", "SELECT name FROM t"),
    ("CREATE TABLE x AS SELECT * FROM t", "CREATE TABLE x AS SELECT * FROM t"),
    ("I cannot help with that.", ""),
    ("WITH t AS (SELECT 1 AS a) SELECT a FROM t", "WITH t AS (SELECT 1 AS a) SELECT a FROM t"),
])
def test_extract_sql(reply: str, sql: str) -> None:
    assert extract_sql(reply) == sql


def test_first_statement_ignores_semicolons_in_strings() -> None:
    assert first_statement("SELECT 'a;b' FROM t; DROP TABLE t") == "SELECT 'a;b' FROM t"
    assert first_statement("SELECT 1") == "SELECT 1"


def test_select_examples_by_similarity() -> None:
    examples = [Example("How many albums are there?", "SELECT count(*) FROM Album"),
                Example("List customers in Paris", "SELECT * FROM Customer WHERE City='Paris'"),
                Example("Average track length", "SELECT avg(Milliseconds) FROM Track")]
    picked = select_examples("Which customers live in Oslo?", examples, k=2)
    assert picked[0].question == "List customers in Paris"
    assert len(picked) == 1   # the others share no word
    assert select_examples("x", [], k=3) == []


# --- the pipeline -------------------------------------------------------------------------
def test_ask_runs_sql_and_answers(shop: Path) -> None:
    model = fake("```sql\nSELECT count(*) FROM customers WHERE city = 'Paris'\n```", "Two customers live in Paris.")
    result = Text2SQL(shop, model=model).ask("How many customers live in Paris?")
    assert result.ok and result.rows == [(2,)] and result.columns == ("COUNT(*)",)
    assert result.sql == "SELECT COUNT(*) FROM customers WHERE city = 'Paris' LIMIT 1000"
    assert result.answer == "Two customers live in Paris." and result.attempts == 1
    assert set(result.timings) == set(STAGES) and all(v >= 0 for v in result.timings.values())
    answer_prompt = model.backend.calls[1][0]
    assert "Answer in English." in answer_prompt[0].content and "| 2" not in answer_prompt[1].content
    assert "```\nCOUNT(*)\n2\n```" in answer_prompt[1].content
    json.dumps(result.to_dict())


def test_ask_feeds_errors_back_and_retries(shop: Path) -> None:
    model = fake("SELECT surname FROM customers", "SELECT nam FROM customer",
                 "```sql\nSELECT name FROM customers WHERE city = 'Oslo'\n```", "Bob.")
    result = Text2SQL(shop, model=model, max_attempts=3).ask("Who lives in Oslo?")
    assert result.ok and result.rows == [("Bob",)] and result.attempts == 3
    second = model.backend.calls[1][0]
    assert second[-2].role == "assistant" and second[-2].content == "SELECT surname FROM customers"
    assert "unknown column surname" in second[-1].content
    assert "unknown table customer" in model.backend.calls[2][0][-1].content


def test_ask_feeds_execution_errors_back(shop: Path) -> None:
    model = fake("SELECT no_such_fn(name) FROM customers", "SELECT 1", "One.")
    result = Text2SQL(shop, model=model).ask("q")
    assert result.ok and result.attempts == 2
    assert "no such function: NO_SUCH_FN" in model.backend.calls[1][0][-1].content
    model = fake("SELECT city FROM (SELECT id FROM customers) AS x", "SELECT 1", "One.")  # passes validation
    assert Text2SQL(shop, model=model, limit=None).ask("q").ok
    assert model.backend.calls[1][0][-1].content.startswith(
        "That query failed: no such column: city; city is a column of customers: join that table through its key")


def test_ask_reports_failure_after_all_attempts(shop: Path) -> None:
    model = fake("SELECT x FROM nowhere", "SELECT x FROM nowhere", "SELECT y FROM nowhere")
    result = Text2SQL(shop, model=model, max_attempts=3).ask("q")
    assert not result.ok and result.attempts == 3 and "unknown table nowhere" in result.error
    assert result.sql == "SELECT y FROM nowhere" and result.answer == ""
    # the repair repeated the failed SQL word for word (greedy decoding does): not run again,
    # and the next attempt samples instead
    temps = [(opts.temperature, opts.seed) for _msgs, opts in model.backend.calls]
    assert temps == [(0.0, None), (0.0, None), (0.7, 2236)]


def test_vote_picks_the_result_most_candidates_agree_on(shop: Path) -> None:
    model = fake("SELECT name FROM customers WHERE city = 'Oslo'",           # greedy: [Bob]
                 "SELECT name FROM customers WHERE city = 'Paris'",          # sample 1: [Ann, Chen; Li]
                 "SELECT name FROM customers WHERE city = 'Paris' ORDER BY name DESC",  # sample 2: same set
                 "Ann and Chen; Li.")
    result = Text2SQL(shop, model=model, candidates=3).ask("Who lives in Paris?")
    assert result.ok and result.votes == 2 and sorted(result.rows) == [("Ann",), ("Chen; Li",)]
    assert result.sql == "SELECT name FROM customers WHERE city = 'Paris' LIMIT 1000"
    first = model.backend.calls[0][0]
    assert [(opts.temperature, opts.seed) for _m, opts in model.backend.calls[:3]] == [
        (0.0, None), (0.7, 1234), (0.7, 1235)]
    assert all(msgs == first for msgs, _o in model.backend.calls[1:3])   # same prompt: its KV cache is reused
    assert result.answer == "Ann and Chen; Li." and result.to_dict()["votes"] == 2


def test_vote_ties_go_to_greedy_and_failing_candidates_do_not_vote(shop: Path) -> None:
    model = fake("SELECT name FROM customers WHERE city = 'Oslo'", "DROP TABLE customers",
                 "SELECT nope FROM customers", "SELECT name FROM customers WHERE city = 'Berlin'")
    result = Text2SQL(shop, model=model, candidates=4, answer=False).ask("Who lives in Oslo?")
    assert result.rows == [("Bob",)] and result.votes == 1 and result.attempts == 1


def test_vote_prefers_a_non_empty_result(shop: Path) -> None:
    model = fake("SELECT name FROM customers WHERE city = 'Rome'", "SELECT name FROM customers WHERE city = 'Rom'",
                 "SELECT name FROM customers WHERE city = 'Berlin'")
    result = Text2SQL(shop, model=model, candidates=3, answer=False).ask("Who lives in Rome?")
    assert result.rows == [("Dora",)] and result.votes == 1   # two empty votes lose to one real result


def test_result_signature_ignores_row_order_and_float_noise() -> None:
    from knowbase.sql.pipeline import result_signature

    assert result_signature([(1, "a"), (2.0000000001, "b")]) == result_signature([(2.0, "b"), (1, "a")])
    assert result_signature([(1,)]) != result_signature([("1",)])
    assert result_signature([(1,), (1,)]) != result_signature([(1,)])       # a multiset, not a set
    assert result_signature([(1,)], truncated=True) != result_signature([(1,)])


def test_chinese_question_gets_a_chinese_answer_instruction(shop: Path) -> None:
    model = fake("SELECT count(*) FROM orders", "共有6个订单。")
    result = Text2SQL(shop, model=model).ask("一共有多少个订单？")
    assert result.answer == "共有6个订单。"
    assert "Answer in Chinese" in model.backend.calls[1][0][0].content
    assert "Question: 一共有多少个订单？" in model.backend.calls[0][0][-1].content


def test_generate_and_run(shop: Path) -> None:
    t2s = Text2SQL(shop, model=fake("DELETE FROM orders", "SELECT id FROM orders WHERE amount > 20"), row_limit=5)
    assert t2s.generate("big orders") == "SELECT id FROM orders WHERE amount > 20 LIMIT 5"
    assert t2s.run("SELECT id FROM orders WHERE amount > 20 ORDER BY id") == (("id",), [(2,), (4,)])
    with pytest.raises(SQLRefusedError):
        t2s.run("DELETE FROM orders")
    with pytest.raises(SQLRefusedError):
        Text2SQL(shop, model=ChatModel(FakeChat(default="DROP TABLE orders")), max_attempts=2).generate("drop it")


def test_examples_and_schema_reach_the_prompt(shop: Path) -> None:
    examples = [{"question": "How many orders are paid?", "sql": "SELECT count(*) FROM orders WHERE status='paid'"},
                ("Largest customer id", "SELECT max(id) FROM customers")]
    t2s = Text2SQL(shop, model=fake(), examples=examples, sample_values=0)
    user = t2s.messages("How many orders are open?")[-1].content
    assert user.startswith("Schema:\nCREATE TABLE customers (")
    assert "Question: How many orders are paid?\n```sql\nSELECT count(*) FROM orders WHERE status='paid'\n```" in user
    assert "Largest customer id" not in user      # no shared word with the question
    assert user.rstrip().endswith("Question: How many orders are open?")
    assert "values:" not in user


def test_bad_examples_are_rejected(shop: Path) -> None:
    with pytest.raises(ValueError, match="example 0"):
        Text2SQL(shop, model=fake(), examples=[{"q": "x"}])


# --- CLI --------------------------------------------------------------------------------------
def test_cli_schema_and_ask(shop: Path) -> None:
    from knowbase.cli.main import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["sql", "schema", str(shop)])
    assert out.exit_code == 0 and "CREATE TABLE orders (" in out.output and "-- values: 'paid'" in out.output
    out = runner.invoke(cli, ["sql", "schema", str(shop), "--prompt", "How many?"])
    assert out.exit_code == 0 and out.output.startswith("[system]\n") and "Question: How many?" in out.output
    out = runner.invoke(cli, ["--no-trace", "sql", "ask", str(shop), "How many orders?", "--json",
                              "--model", "fake:SELECT count(*) AS n FROM orders"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["rows"] == [[6]] and data["columns"] == ["n"] and data["error"] is None
    out = runner.invoke(cli, ["--no-trace", "sql", "ask", str(shop), "How many orders?", "--sql-only",
                              "--model", "fake:SELECT count(*) AS n FROM orders"])
    assert out.exit_code == 0 and out.output.strip() == "SELECT COUNT(*) AS n FROM orders LIMIT 1000"
    out = runner.invoke(cli, ["--no-trace", "sql", "ask", str(shop), "Drop it", "--model", "fake:DROP TABLE orders"])
    assert out.exit_code == 1 and "refused" in out.output and out.output.startswith("Not run. The last SQL")
    out = runner.invoke(cli, ["--no-trace", "sql", "ask", str(shop), "How many?", "--no-answer",
                              "--model", "fake:SELECT count(*) AS n FROM orders"])
    assert out.exit_code == 0 and "n" in out.output and "6" in out.output
