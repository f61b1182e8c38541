"""Text2SQL: a question in plain language -> one safe SELECT -> rows -> a short answer.

Stages (timed separately, seconds): ``schema`` (introspection, table selection,
rendering), ``generation`` (model calls for SQL), ``validation`` (sqlglot checks),
``execution`` (read-only run) and ``answer`` (the model's sentence). A validation or
execution error goes back to the model with the reason, up to ``max_attempts`` times.

Example::

    t2s = Text2SQL("chinook.sqlite", model="llamacpp:qwen2.5-coder-1.5b")
    result = t2s.ask("How many tracks are there?")
    result.sql        # 'SELECT COUNT(*) FROM Track LIMIT 1000'
    result.rows       # [(3503,)]
    result.answer     # 'There are 3,503 tracks.'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from knowbase.errors import KnowbaseError
from knowbase.sql.database import open_database
from knowbase.sql.errors import QueryTimeoutError, SQLExecutionError, SQLRefusedError, SQLValidationError
from knowbase.sql.execute import MAX_RESULT_BYTES, execute
from knowbase.sql.generate import (
    Example,
    answer_messages,
    as_examples,
    extract_sql,
    generation_messages,
    repair_messages,
    select_examples,
)
from knowbase.sql.schema import Schema, introspect, select_tables
from knowbase.sql.validate import ValidatedSQL, validate_sql, with_column_hint

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings
    from knowbase.models.base import ChatModel, Embedder

STAGES = ("schema", "generation", "validation", "execution", "answer")
_RETRYABLE = (SQLValidationError, SQLRefusedError, SQLExecutionError, QueryTimeoutError)


@dataclass(frozen=True, slots=True)
class SQLAnswer:
    """The outcome of :meth:`Text2SQL.ask`.

    Attributes:
        question: the question asked.
        sql: the statement that ran (or, on failure, the last one tried; None if none).
        columns: result column names.
        rows: at most ``row_limit`` rows.
        answer: the model's short answer ("" when there are no rows to answer from
            because every attempt failed, or answering is off).
        attempts: model calls made for SQL (1 when the first one worked).
        error: why the last attempt failed, or None on success.
        timings: seconds per stage (:data:`STAGES`).
        truncated: the query had more rows than ``row_limit``.
        trace_id: the trace the model calls were recorded under.
        votes: candidates whose result matched the chosen one (1 without voting).
        truncated_by: ``"rows"`` or ``"bytes"``: which limit cut the result (None when whole).
    """

    question: str
    sql: str | None
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    answer: str
    attempts: int
    error: str | None
    timings: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    trace_id: str | None = None
    votes: int = 1
    truncated_by: str | None = None

    @property
    def ok(self) -> bool:
        """The SQL ran."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (bytes become ``<n bytes>``)."""
        return {"question": self.question, "sql": self.sql, "columns": list(self.columns),
                "rows": [[_jsonable(v) for v in r] for r in self.rows], "answer": self.answer,
                "attempts": self.attempts, "error": self.error, "truncated": self.truncated,
                "timings": {k: round(v, 4) for k, v in self.timings.items()}, "trace_id": self.trace_id,
                "votes": self.votes, "truncated_by": self.truncated_by}


def result_signature(rows: Sequence[Sequence[Any]], truncated: bool = False) -> tuple[Any, ...]:
    """An order-insensitive key of a result set, for voting: the sorted rows, floats
    rounded to 6 significant digits, values compared by their ``repr`` (so ``1`` and
    ``'1'`` differ, and ``None`` sorts with the rest); ``truncated`` results are distinct."""
    def norm(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else repr(v)
    return (truncated, *sorted(tuple(norm(v) for v in row) for row in rows))


def _normal(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").lower()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


class Text2SQL:
    """Ask a SQLite or PostgreSQL database questions in English or Chinese, read-only.

    Args:
        db_url: a SQLite file path or a SQLAlchemy URL (``sqlite:///x.db``,
            ``postgresql://user@host/db``).
        model: a model string or a :class:`~knowbase.models.base.ChatModel`; default the
            configured chat model (the embedded Qwen2.5-Coder-1.5B).
        settings: default :meth:`Settings.load`.
        row_limit: most rows returned per query.
        timeout: time limit per query, seconds.
        max_bytes: most bytes of result values per query
            (:data:`~knowbase.sql.execute.MAX_RESULT_BYTES` by default); a result cut by
            it has ``truncated_by == "bytes"``.
        sample_values: distinct sample values shown per text column (0: none).
        examples: few-shot pairs: ``(question, sql)`` tuples, dicts or :class:`Example`.
        max_attempts: model calls for SQL per question (the first try plus repairs).
        limit: LIMIT added to queries that have none (None: add nothing; rows are still
            capped at ``row_limit``). Default: ``row_limit``.
        max_tables: schemas with more tables are cut to the relevant ones by retrieval.
        k_examples: few-shot pairs put in the prompt (the most similar to the question).
        embedder: an :class:`~knowbase.models.base.Embedder` for table and example
            selection; default BM25 keyword overlap.
        answer: write a short answer from the rows (a second model call).
        max_tokens: most tokens the model may write for SQL.
        namespace: PostgreSQL schema to use (default ``public``).
        tables: only these tables are shown to the model and may be queried (default all).
        candidates: SQL candidates per question. 1 (the default): the greedy reply only.
            N > 1: execution-guided self-consistency (Wang et al. 2023, "Self-Consistency
            Improves Chain of Thought Reasoning in Language Models", ICLR; for SQL, voting on
            execution results as in Dong et al. 2023, "C3: Zero-shot Text-to-SQL with
            ChatGPT"): after the greedy SQL runs, N-1 more
            are sampled at ``sample_temperature`` from the same prompt (its KV cache is
            reused, so each costs only its own tokens); every candidate that validates and
            runs casts one vote for its result set (order-insensitive multiset of rows), and
            the SQL of the result with most votes wins (non-empty results before empty ones,
            ties to the earliest, so the greedy SQL wins any tie it is part of).
        sample_temperature: temperature of the extra candidates, and of a repair attempt
            whose reply repeats SQL that already failed.
        seed: base sampling seed (candidate ``i`` uses ``seed + i``), for repeatable runs.

    Raises:
        DatabaseConnectError: the database cannot be opened (when first used).
        ValueError: an example has the wrong shape.
    """

    def __init__(self, db_url: str | Path, *, model: str | ChatModel | None = None,
                 settings: Settings | None = None, row_limit: int = 1000, timeout: float = 10.0,
                 sample_values: int = 3, examples: Sequence[Any] | None = None, max_attempts: int = 3,
                 limit: int | None | Literal["row_limit"] = "row_limit", max_tables: int = 12, k_examples: int = 3,
                 embedder: Embedder | None = None, answer: bool = True, max_tokens: int = 256,
                 namespace: str | None = None, tables: Sequence[str] | None = None, candidates: int = 1,
                 sample_temperature: float = 0.7, seed: int = 1234, max_bytes: int = MAX_RESULT_BYTES) -> None:
        self.db = open_database(db_url)
        self._model_arg = model
        self._model: ChatModel | None = None
        self.settings = settings
        self.row_limit = row_limit
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.sample_values = sample_values
        self.examples: list[Example] = as_examples(examples)
        self.max_attempts = max(1, max_attempts)
        if isinstance(limit, str) and limit != "row_limit":
            raise ValueError(f"limit is an int, None or 'row_limit', not {limit!r}")
        self.limit: int | None = row_limit if isinstance(limit, str) else limit
        self.max_tables = max_tables
        self.k_examples = k_examples
        self.embedder = embedder
        self.answer = answer
        self.max_tokens = max_tokens
        self.namespace = namespace
        self.tables = list(tables) if tables else None
        self._schema: Schema | None = None
        self.candidates = max(1, candidates)
        self.sample_temperature = sample_temperature
        self.seed = seed

    def __repr__(self) -> str:
        return f"Text2SQL({self.db.display_url!r})"

    # --- parts ------------------------------------------------------------------------
    @property
    def model(self) -> ChatModel:
        """The chat model (built on first use)."""
        if self._model is None:
            from knowbase.models.base import ChatModel

            if isinstance(self._model_arg, ChatModel):
                self._model = self._model_arg
            else:
                from knowbase.models.registry import get_chat_model

                self._model = get_chat_model(self._model_arg, settings=self.settings)
        return self._model

    @property
    def schema(self) -> Schema:
        """The introspected schema (read once, with sample values; ``tables`` only, if given)."""
        if self._schema is None:
            schema = introspect(self.db, sample_values=self.sample_values, namespace=self.namespace)
            self._schema = schema.subset(self.tables) if self.tables else schema
        return self._schema

    def schema_for(self, question: str | None = None) -> Schema:
        """The tables shown to the model for ``question`` (all of them when few)."""
        if question is None:
            return self.schema
        return select_tables(self.schema, question, max_tables=self.max_tables, embedder=self.embedder)

    def prompt_schema(self, question: str | None = None) -> str:
        """The schema text exactly as the model sees it for ``question``."""
        return self.schema_for(question).render(samples=self.sample_values > 0)

    def messages(self, question: str) -> list[Any]:
        """The full first prompt for ``question`` (list of Message)."""
        chosen = select_examples(question, self.examples, k=self.k_examples, embedder=self.embedder)
        return generation_messages(question, self.prompt_schema(question), dialect=self.db.dialect, examples=chosen)

    def validate(self, sql: str) -> ValidatedSQL:
        """Validate ``sql`` against this database's schema (raises as :func:`validate_sql`)."""
        return validate_sql(sql, dialect=self.db.dialect, schema=self.schema, limit=self.limit)

    # --- public calls -----------------------------------------------------------------
    def run(self, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Validate and run ``sql`` read-only; returns ``(columns, rows)``.

        Raises:
            SQLRefusedError, SQLValidationError: the statement is refused or invalid.
            SQLExecutionError, QueryTimeoutError: the database failed or the time ran out.
        """
        result = execute(self.db, self.validate(sql).sql, row_limit=self.row_limit, timeout=self.timeout,
                         max_bytes=self.max_bytes)
        return result.columns, result.rows

    def generate(self, question: str) -> str:
        """SQL for ``question`` that passes validation (not executed).

        Raises:
            SQLRefusedError, SQLValidationError: no valid statement after ``max_attempts``.
        """
        timings = dict.fromkeys(STAGES, 0.0)
        messages = self.messages(question)
        last: KnowbaseError | None = None
        for _ in range(self.max_attempts):
            reply, candidate = self._generate_once(messages, timings)
            try:
                return self._validate_timed(candidate, timings).sql
            except (SQLValidationError, SQLRefusedError) as exc:
                last = exc
                messages = [*messages, *repair_messages(reply, exc.reason)]
        assert last is not None
        raise last

    def ask(self, question: str) -> SQLAnswer:
        """Answer ``question``: SQL, rows and a short answer (see :class:`SQLAnswer`).

        Validation and execution errors are fed back to the model and retried; when
        every attempt fails the result has ``error`` set instead of raising.

        Raises:
            DatabaseConnectError: the database cannot be opened.
            KnowbaseError: the model failed (unreachable, missing file...).
        """
        from knowbase.tracing.context import span

        timings = dict.fromkeys(STAGES, 0.0)
        with span("sql.ask", kind="sql", store=self.model.tracer, db=self.db.display_url) as sp:
            t0 = time.perf_counter()
            messages = self.messages(question)
            timings["schema"] += time.perf_counter() - t0
            first_messages = messages
            sql: str | None = None
            error: str | None = None
            result = None
            attempts = 0
            failed: set[str] = set()
            temperature, seed = 0.0, None
            for attempts in range(1, self.max_attempts + 1):
                reply, candidate = self._generate_once(messages, timings, temperature=temperature, seed=seed)
                if candidate and _normal(candidate) in failed:
                    # greedy decoding repeats itself after an error: sample the next attempt instead
                    temperature, seed = self.sample_temperature, self.seed + 1000 + attempts
                    continue
                sql = candidate or None
                try:
                    validated = self._validate_timed(candidate, timings)
                    sql = validated.sql
                    t0 = time.perf_counter()
                    try:
                        result = execute(self.db, validated.sql, row_limit=self.row_limit, timeout=self.timeout,
                                         max_bytes=self.max_bytes)
                    finally:
                        timings["execution"] += time.perf_counter() - t0
                    error = None
                    break
                except _RETRYABLE as exc:
                    error = str(exc)
                    failed.add(_normal(candidate))
                    reason = with_column_hint(exc.detail.get("reason") or str(exc), self.schema)
                    messages = [*messages, *repair_messages(reply, reason)]
            votes = 1
            if result is not None and self.candidates > 1:
                sql, result, votes = self._vote(first_messages, sql or "", result, timings)
            answer = ""
            if result is not None and self.answer:
                t0 = time.perf_counter()
                msgs = answer_messages(question, sql or "", result.columns, result.rows, truncated=result.truncated)
                answer = self.model.chat(msgs, temperature=0.0, max_tokens=160).text.strip()
                timings["answer"] += time.perf_counter() - t0
            sp.set(sql=sql, attempts=attempts, error=error, votes=votes)
            return SQLAnswer(question, sql, result.columns if result else (), result.rows if result else [], answer,
                             attempts, error, timings, bool(result and result.truncated), sp.trace_id, votes,
                             result.truncated_by if result else None)

    # --- internals --------------------------------------------------------------------
    def _generate_once(self, messages: list[Any], timings: dict[str, float], *, temperature: float = 0.0,
                       seed: int | None = None) -> tuple[str, str]:
        t0 = time.perf_counter()
        try:
            reply = self.model.chat(messages, temperature=temperature, max_tokens=self.max_tokens, seed=seed).text
        finally:
            timings["generation"] += time.perf_counter() - t0
        return reply, extract_sql(reply)

    def _vote(self, messages: list[Any], sql: str, result: Any, timings: dict[str, float]) -> tuple[str, Any, int]:
        """Execution-guided self-consistency (see ``candidates``): returns (sql, result, votes)."""
        runs = [(sql, result)]
        for i in range(self.candidates - 1):
            _reply, candidate = self._generate_once(messages, timings, temperature=self.sample_temperature,
                                                    seed=self.seed + i)
            if not candidate:
                continue
            try:
                validated = self._validate_timed(candidate, timings)
                t0 = time.perf_counter()
                try:
                    runs.append((validated.sql, execute(self.db, validated.sql, row_limit=self.row_limit,
                                                        timeout=self.timeout, max_bytes=self.max_bytes)))
                finally:
                    timings["execution"] += time.perf_counter() - t0
            except _RETRYABLE:
                continue  # an invalid or failing candidate casts no vote
        groups: dict[Any, list[int]] = {}
        for i, (_sql, res) in enumerate(runs):
            groups.setdefault(result_signature(res.rows, res.truncated), []).append(i)
        best = min(groups.values(), key=lambda idx: (not runs[idx[0]][1].rows, -len(idx), idx[0]))
        return runs[best[0]][0], runs[best[0]][1], len(best)

    def _validate_timed(self, candidate: str, timings: dict[str, float]) -> ValidatedSQL:
        t0 = time.perf_counter()
        try:
            if not candidate:
                raise SQLValidationError("no SQL query found in the reply", sql="", reason=(
                    "no SQL query found in your reply; reply with one SELECT statement in a ```sql block"))
            return self.validate(candidate)
        finally:
            timings["validation"] += time.perf_counter() - t0
