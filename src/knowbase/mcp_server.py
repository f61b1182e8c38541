"""knowbase as a Model Context Protocol server: other assistants search and ask its knowledge
bases (answers with citations) and query registered databases (Text2SQL), through the official
``mcp`` SDK (``MCPServer``). A thin front end: every tool calls the Python API and returns text.

Tools:

* ``list_knowledge_bases()`` -- names, documents and chunks of the exposed knowledge bases;
* ``kb_search(knowledge_base, query, k=5)`` -- numbered passages with their sources;
* ``kb_ask(knowledge_base, question)`` -- a cited answer (or the abstention), then the sources;
* ``sql_ask(question)`` -- only with a database: the SQL (validated read-only) and the rows.

``knowbase mcp serve`` runs it over stdio (default) or streamable HTTP (``--http``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from knowbase.errors import KnowbaseError


def build_server(settings: Any = None, *, knowledge_bases: Sequence[str] | None = None, database: str | None = None,
                 model: str | None = None) -> Any:
    """An ``mcp.server.mcpserver.MCPServer`` exposing knowbase.

    Args:
        settings: the :class:`~knowbase.config.Settings` (user directory, models).
        knowledge_bases: names that may be used; default every knowledge base in the user directory.
        database: a SQLite path or SQLAlchemy URL for ``sql_ask``; None leaves the tool out.
        model: the chat model for ``kb_ask`` and ``sql_ask``; default the configured one.

    Raises:
        ModelUnavailableError: the ``mcp`` package is not installed (``pip install 'knowbase[mcp]'``).
    """
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.types import ToolAnnotations
    except ImportError as exc:
        from knowbase.errors import ModelUnavailableError

        raise ModelUnavailableError("the MCP server needs the mcp package: pip install 'knowbase[mcp]'",
                                    package="mcp") from exc
    from knowbase.config import Settings
    from knowbase.knowledge.base import KnowledgeBase

    cfg = settings or Settings.load()
    allowed = list(knowledge_bases) if knowledge_bases else None
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    server: Any = MCPServer("knowbase", instructions="Search and ask the organisation's knowledge bases "
                            "(answers cite their sources)" + (" and query its database" if database else "") + ".")

    def open_kb(name: str) -> Any:
        if allowed is not None and name not in allowed:
            raise ToolError(f"knowledge base {name!r} is not exposed; use one of: {', '.join(allowed)}")
        try:
            return KnowledgeBase.open(name, settings=cfg)
        except KnowbaseError as exc:  # the client sees the message (other exceptions are hidden)
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=read_only)
    def list_knowledge_bases() -> str:
        """The knowledge bases you can search and ask, with their documents and chunks."""
        rows = [i for i in KnowledgeBase.list(cfg) if allowed is None or i.name in allowed]
        return "\n".join(f"{i.name}: {i.documents} documents, {i.chunks} chunks" for i in rows) or "(none)"

    @server.tool(annotations=read_only)
    def kb_search(knowledge_base: str, query: str, k: int = 5) -> str:
        """Search a knowledge base; returns numbered passages with their sources."""
        from knowbase.agents.builtin import format_passages

        kb = open_kb(knowledge_base)
        try:
            return format_passages(kb.search(query, k=max(1, min(k, 20))), query=query)
        finally:
            kb.close()

    @server.tool(annotations=read_only)
    def kb_ask(knowledge_base: str, question: str) -> str:
        """Answer a question from a knowledge base, citing passages as [n]; lists the sources."""
        kb = open_kb(knowledge_base)
        try:
            answer = kb.ask(question, model=model)
        except KnowbaseError as exc:
            raise ToolError(str(exc)) from exc
        finally:
            kb.close()
        sources = "\n".join(c.label() for c in answer.citations)
        return answer.text + (f"\n\nSources:\n{sources}" if sources else "")

    if database:
        @server.tool(annotations=read_only)
        def sql_ask(question: str) -> str:
            """Answer a question from the database with one read-only SQL query; returns the SQL and rows."""
            from knowbase.agents.builtin import format_rows
            from knowbase.sql import Text2SQL

            answer = Text2SQL(database, model=model, settings=cfg, answer=False, row_limit=200).ask(question)
            if answer.error:
                raise ToolError(f"no SQL answer: {answer.error}")
            return f"SQL: {answer.sql}\n" + format_rows(answer.columns, answer.rows, truncated=answer.truncated)

    return server
