"""Prompts and parsing for SQL generation and for the answer written from rows.

The prompt is the shipped chat template ``sql_generate`` (system rules, then the
compact schema, optional few-shot pairs and the question). The schema comes first
and the question last, so llama.cpp reuses the cached prefix across questions on the
same database. A failed attempt adds the model's reply and a ``sql_repair`` message
with the error, so the model corrects itself in the same conversation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from knowbase.models.base import Message
from knowbase.sql.schema import bm25_scores

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_START = re.compile(r"(?is)\b(SELECT\b|WITH\s+(RECURSIVE\s+)?\w+\s*(\([^)]*\)\s*)?AS\s*\()")
_STATEMENT = re.compile(r"(?is)^\s*(INSERT|UPDATE|DELETE|REPLACE|UPSERT|MERGE|DROP|CREATE|ALTER|TRUNCATE|PRAGMA|"
                        r"ATTACH|DETACH|VACUUM|COPY|GRANT|REVOKE|BEGIN|COMMIT|ROLLBACK|SET|CALL|DO|EXPLAIN|"
                        r"ANALYZE|REINDEX|LOAD|INSTALL)\b")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Example:
    """A few-shot pair the user supplies: a question and the SQL that answers it."""

    question: str
    sql: str


def as_examples(items: Sequence[Any] | None) -> list[Example]:
    """Accept :class:`Example`, ``(question, sql)`` pairs or ``{"question":..., "sql":...}`` dicts.

    Raises:
        ValueError: an item has another shape (names its index).
    """
    out = []
    for i, item in enumerate(items or ()):
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, dict) and "question" in item and ("sql" in item or "query" in item):
            out.append(Example(str(item["question"]), str(item.get("sql") or item.get("query"))))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append(Example(str(item[0]), str(item[1])))
        else:
            raise ValueError(f"example {i}: expected (question, sql) or a dict with question and sql")
    return out


def select_examples(question: str, examples: Sequence[Example], *, k: int = 3, embedder: Any = None) -> list[Example]:
    """The ``k`` examples most similar to ``question``, best first.

    Similarity: cosine of ``embedder`` embeddings when given, else BM25 over the example
    questions (see :func:`knowbase.sql.schema.bm25_scores`). Examples with no shared
    word are dropped in BM25 mode.
    """
    if not examples or k <= 0:
        return []
    if embedder is not None:
        vecs = embedder.embed([e.question for e in examples])
        scores = [float(s) for s in vecs @ embedder.embed_query(question)]
        order = sorted(range(len(examples)), key=lambda i: -scores[i])
    else:
        scores = bm25_scores(question, [e.question for e in examples])
        order = [i for i in sorted(range(len(examples)), key=lambda i: -scores[i]) if scores[i] > 0]
    return [examples[i] for i in order[:k]]


def generation_messages(question: str, schema_text: str, *, dialect: str,
                        examples: Sequence[Example] = ()) -> list[Message]:
    """The chat messages asking for SQL (template ``sql_generate``)."""
    from knowbase.prompts import load_chat_template, load_template

    block = ""
    if examples:
        pairs = "\n\n".join(f"Question: {_one_line(e.question)}\n```sql\n{e.sql.strip()}\n```" for e in examples)
        block = load_template("sql_examples").format(pairs=pairs)
    return load_chat_template("sql_generate").format_messages(
        dialect=_dialect_label(dialect), schema=schema_text, examples=block, question=_one_line(question))


def repair_messages(reply: str, error: str) -> list[Message]:
    """The two messages added after a failed attempt: the model's reply and the error."""
    from knowbase.prompts import load_template

    return [Message.assistant(reply), Message.user(load_template("sql_repair").format(error=_one_line(error)[:500]))]


def answer_messages(question: str, sql: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                    truncated: bool = False, max_rows: int = 20, max_cell: int = 60) -> list[Message]:
    """The chat messages asking for a short answer from the rows (template ``sql_answer``).

    At most ``max_rows`` rows and ``max_cell`` characters per value are shown; rows are
    fenced, one per line, as data. The answer language follows the question (Chinese
    when it holds CJK characters, else English).
    """
    from knowbase.prompts import load_chat_template

    shown = list(rows[:max_rows])
    lines = [" | ".join(_cell(c, max_cell) for c in columns)]
    lines += [" | ".join(_cell(v, max_cell) for v in row) for row in shown]
    language = "Answer in Chinese (简体中文)." if is_chinese(question) else "Answer in English."
    return load_chat_template("sql_answer").format_messages(
        language=language, question=_one_line(question), sql=sql, shown=len(shown), total=len(rows),
        more=" or more" if truncated else "", rows="\n".join(lines))


def is_chinese(text: str) -> bool:
    """True when ``text`` holds CJK ideographs."""
    return bool(_CJK.search(text))


def extract_sql(reply: str) -> str:
    """The SQL in a model reply: the first fenced block that holds a query; else the whole
    reply when it starts with a SQL statement keyword other than SELECT/WITH (so the
    validator refuses ``CREATE TABLE x AS SELECT ...`` whole rather than running its
    SELECT); else the text from the first ``SELECT``/``WITH``. Returns ``""`` when
    there is no SQL.

    >>> extract_sql("Here:\\n```sql\\nSELECT 1;\\n```\\nDone.")
    'SELECT 1;'
    """
    text = reply or ""
    for match in _FENCE.finditer(text):
        body = match.group(2).strip()
        if body and (_START.search(body) or match.group(1).lower() == "sql"):
            return body
    if _STATEMENT.match(text):  # a reply that is a statement is taken whole, never trimmed to a SELECT
        return text.strip()
    start = _START.search(text)
    return text[start.start():].strip() if start else ""


def first_statement(sql: str, *, dialect: str = "sqlite") -> str:
    """The text up to the first ``;`` that ends a statement (not one inside a string).

    Uses sqlglot's tokenizer; on a tokenizer error, cuts at the first ``;``.
    """
    import sqlglot
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except SqlglotError:
        return sql.split(";", 1)[0].strip()
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            return sql[:tok.start].strip()
    return sql.strip()


def _dialect_label(dialect: str) -> str:
    return {"sqlite": "SQLite", "postgres": "PostgreSQL"}.get(dialect, dialect)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _cell(value: Any, limit: int) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    text = "NULL" if value is None else str(value)
    text = re.sub(r"\s+", " ", text.replace("`", "'"))
    return text if len(text) <= limit else text[:limit] + "..."
