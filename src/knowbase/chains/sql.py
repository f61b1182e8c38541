"""Text2SQL as a chain step: a question in, a read-only query's rows and answer out."""

from __future__ import annotations

from typing import Any, Protocol

from knowbase.chains.base import Chain


class AsksDatabase(Protocol):
    """What :class:`SQLChain` needs: ``Text2SQL.ask(question) -> SQLAnswer``."""

    def ask(self, question: str) -> Any: ...


class SQLChain(Chain):
    """Answer from a database: wraps :meth:`knowbase.sql.Text2SQL.ask`.

    Args:
        text2sql: a :class:`knowbase.sql.Text2SQL` (validation, read-only execution,
            repair retries and the short answer all happen there).
        input_key: the question's key (default ``question``).
        output_key: the answer text's key (default ``answer``).
        raise_on_error: raise :class:`~knowbase.sql.errors.SQLExecutionError` when no
            query succeeded, instead of returning ``error``.

    Outputs: ``answer``, ``sql`` (the statement that ran), ``columns``, ``rows``,
    ``error`` (None on success).

    Example::

        chain = SQLChain(Text2SQL("chinook.sqlite", model=model))
        chain.invoke("How many tracks are there?")["rows"]     # [(3503,)]
    """

    def __init__(self, text2sql: AsksDatabase, *, input_key: str = "question", output_key: str = "answer",
                 raise_on_error: bool = False, name: str = "SQLChain") -> None:
        self.text2sql = text2sql
        self.input_key, self.output_key = input_key, output_key
        self.raise_on_error = raise_on_error
        self.name = name
        self.input_keys = (input_key,)
        self.output_keys = (output_key, "sql", "columns", "rows", "error")
        model = getattr(text2sql, "_model", None) or getattr(text2sql, "_model_arg", None)
        self.tracer = getattr(model, "tracer", None)

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        result = self.text2sql.ask(str(inputs[self.input_key]))
        if result.error is not None and self.raise_on_error:
            from knowbase.sql.errors import SQLExecutionError

            raise SQLExecutionError(f"no query answered {result.question!r}: {result.error}", sql=result.sql,
                                    question=result.question)
        return {self.output_key: result.answer, "sql": result.sql, "columns": tuple(result.columns),
                "rows": list(result.rows), "error": result.error}
