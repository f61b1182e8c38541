"""Saved state of autonomous runs: ``$KNOWBASE_HOME/agents.db`` (stdlib sqlite3).

One row per run holds the whole :class:`RunState` as JSON, replaced in one transaction
after every step, so a crash or Ctrl-C leaves the state of the last finished step and
``knowbase agent resume ID`` continues from there. Schema changes are append-only named
migrations (:data:`MIGRATIONS`, applied by :func:`knowbase.tracing.store.connect`).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from knowbase.errors import StoreError, UserError
from knowbase.storage import SQLiteFile

MIGRATIONS: list[tuple[str, str]] = [
    ("a001_runs", """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            goal TEXT NOT NULL,
            status TEXT NOT NULL,        -- running | finished | max_steps | token_budget | ...
            step INTEGER NOT NULL,       -- steps done so far
            created REAL NOT NULL,       -- Unix seconds
            updated REAL NOT NULL,
            state TEXT NOT NULL          -- RunState as JSON
        );
        CREATE INDEX runs_updated ON runs(updated);
    """),
]


class RunNotFound(UserError):
    """No saved run has this id (``run_id``), or a prefix matches several (``matches``)."""


class TaskState(BaseModel):
    """One planned task: ``status`` is ``pending``, ``done`` or ``failed``; ``result`` its outcome."""

    description: str
    status: Literal["pending", "done", "failed"] = "pending"
    result: str = ""
    steps: int = 0


class RunState(BaseModel):
    """Everything needed to continue an autonomous run.

    Attributes:
        id: the run id (16 hex characters).
        goal: the goal as given.
        status: ``running`` while it may continue, else the final status.
        tasks: the task list, in order.
        planned: the first plan was made.
        check_due: the next step checks the goal (after a task, with ``check_each_task``).
        step: steps done (plan, tasks and goal checks each count one).
        prompt_tokens, completion_tokens: tokens spent, all calls included.
        elapsed_s: wall-clock seconds spent over every session.
        answer: the final answer, once there is one.
        message: why the run stopped.
        notes: human feedback given between steps.
        config: how to rebuild the agent on resume (agent type, tools, model, kb...).
        log: one short line per step, for ``knowbase agent list``/``resume``.
        created, updated: Unix seconds.
    """

    id: str
    goal: str
    status: str = "running"
    tasks: list[TaskState] = Field(default_factory=list)
    planned: bool = False
    check_due: bool = False
    step: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    answer: str | None = None
    message: str = ""
    notes: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    log: list[str] = Field(default_factory=list)
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)

    def pending(self) -> TaskState | None:
        """The next task to do, or None."""
        return next((t for t in self.tasks if t.status == "pending"), None)


class AgentStore(SQLiteFile):
    """Reads and writes :class:`RunState` rows in an SQLite file.

    Args:
        path: the file, usually ``settings.home / "agents.db"`` (created if missing).
    """

    MIGRATIONS = MIGRATIONS
    KIND = "agent store"

    @classmethod
    def default(cls, settings: Any = None) -> AgentStore:
        """The store in the user directory: ``settings.home / "agents.db"``."""
        from knowbase.config import Settings

        return cls((settings or Settings.load()).home / "agents.db")

    def save(self, state: RunState) -> None:
        """Insert or replace the run, in one transaction; sets ``state.updated``."""
        state.updated = time.time()
        row = (state.id, state.goal, state.status, state.step, state.created, state.updated, state.model_dump_json())
        try:
            with self.lock:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self.conn.execute("INSERT OR REPLACE INTO runs (id, goal, status, step, created, updated, state) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?)", row)
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot save run {state.id} in {self.path}: {exc}", path=str(self.path)) from exc

    def load(self, run_id: str) -> RunState:
        """The run with this id (a unique prefix is enough).

        Raises:
            RunNotFound: no run, or several, match.
            StoreError: the saved state is damaged.
        """
        key = (run_id or "").strip()
        rows = self.conn.execute("SELECT id, state FROM runs WHERE id LIKE ? LIMIT 3",
                                 (key.replace("%", "").replace("_", "") + "%",)).fetchall() if key else []
        exact = [r for r in rows if r[0] == key]
        if exact:
            rows = exact
        if len(rows) != 1:
            raise RunNotFound(f"no saved agent run {key!r}" if not rows else f"run id {key!r} is ambiguous",
                              run_id=key, matches=[r[0] for r in rows])
        try:
            return RunState.model_validate_json(rows[0][1])
        except ValidationError as exc:
            raise StoreError(f"saved state of run {rows[0][0]} is damaged: {exc}", path=str(self.path)) from exc

    def list(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs, newest first: ``id``, ``goal``, ``status``, ``step``, ``created``, ``updated``."""
        if not self.path.exists():
            return []
        cur = self.conn.execute("SELECT id, goal, status, step, created, updated FROM runs "
                                "ORDER BY updated DESC LIMIT ?", (limit,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
