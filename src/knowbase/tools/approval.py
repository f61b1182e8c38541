"""A person in the loop: tool calls that wait for approval before they run.

:func:`require_approval` wraps any :class:`~knowbase.agents.tools.Tool`: when the agent calls
it, the call is validated, then handed to an *approver* as a :class:`PendingCall` (the tool,
the exact arguments, what it will do) and runs only if the approver says yes. The approver
may also edit the arguments (they are validated again). A refusal, or no answer within
``timeout`` seconds, comes back to the agent as a ``refused`` observation and is recorded in
the run's steps and trace; the run carries on.

Two kinds of approver:

* a function ``(PendingCall) -> Decision | bool | None`` called in the tool's thread (the
  CLI asks y/n/edit on the terminal);
* an :class:`ApprovalQueue`, for front ends that answer later from another thread (a server
  lists :meth:`ApprovalQueue.pending` and calls :meth:`ApprovalQueue.approve` / ``deny``).

Example::

    queue = ApprovalQueue(timeout=300)
    cancel = require_approval(cancel_order_tool, queue)
    # in the request thread the agent blocks inside cancel.run(...); elsewhere:
    call = queue.pending()[0]; call.to_dict()      # {'id': ..., 'tool': 'cancelOrder', 'arguments': {...}}
    queue.approve(call.id)                         # or queue.deny(call.id, "not today")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from knowbase.errors import SafetyError
from knowbase.tracing.context import new_id, span

DEFAULT_APPROVAL_TIMEOUT = 300.0
"""Seconds a call waits for a person before it counts as refused."""


class ApprovalDenied(SafetyError):
    """A person (or the timeout) refused a tool call (``tool``, ``reason``)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """An approver's answer.

    Attributes:
        approved: run the call.
        arguments: replacement arguments (an edit), or None to run the call as asked.
        reason: why it was refused (shown to the model and recorded).
    """

    approved: bool
    arguments: dict[str, Any] | None = None
    reason: str = ""


@dataclass
class PendingCall:
    """One tool call waiting for a person.

    Attributes:
        id: a unique id (16 hex characters).
        tool: the tool's name.
        arguments: the validated arguments the model asked for (argument names as the model sees them).
        action: what the call will do, for a person (``POST https://shop.example.com/orders/42/cancel``),
            or the tool's description.
        created: Unix seconds.
    """

    tool: str
    arguments: dict[str, Any]
    action: str = ""
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    decision: Decision | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def approve(self, arguments: dict[str, Any] | None = None) -> None:
        """Let the call run (with ``arguments`` instead, when given)."""
        self.decide(Decision(True, arguments))

    def deny(self, reason: str = "declined by a person") -> None:
        """Refuse the call."""
        self.decide(Decision(False, None, reason))

    def decide(self, decision: Decision) -> None:
        """Record the decision (the first one wins) and wake the waiting run."""
        if self.decision is None:
            self.decision = decision
        self._done.set()

    def wait(self, timeout: float | None) -> Decision:
        """The decision, waiting at most ``timeout`` seconds; no answer in time is a refusal."""
        if not self._done.wait(timeout):
            self.decide(Decision(False, None, f"no answer within {timeout:g} s"))
        assert self.decision is not None
        return self.decision

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (what a server shows for approval)."""
        d = self.decision
        return {"id": self.id, "tool": self.tool, "arguments": self.arguments, "action": self.action,
                "created": self.created,
                "decision": None if d is None else {"approved": d.approved, "arguments": d.arguments,
                                                    "reason": d.reason}}


Approver = Callable[[PendingCall], "Decision | bool | None"]
"""``(pending call) -> Decision`` (or True/False; None refuses)."""


class ApprovalQueue:
    """Pending calls that another thread approves or refuses (a server's approval API).

    Use the queue itself as the approver: calling it with a :class:`PendingCall` parks the
    call and blocks the agent until a decision or ``timeout`` seconds.

    Args:
        timeout: seconds a call waits; no answer in time is a refusal.
        on_pending: called with each new pending call (to notify someone).
    """

    def __init__(self, *, timeout: float = DEFAULT_APPROVAL_TIMEOUT,
                 on_pending: Callable[[PendingCall], None] | None = None) -> None:
        self.timeout = timeout
        self.on_pending = on_pending
        self._calls: dict[str, PendingCall] = {}
        self._lock = threading.Lock()

    def __call__(self, call: PendingCall) -> Decision:
        with self._lock:
            self._calls[call.id] = call
        try:
            if self.on_pending is not None:
                self.on_pending(call)
            return call.wait(self.timeout)
        finally:
            with self._lock:
                self._calls.pop(call.id, None)

    def pending(self) -> list[PendingCall]:
        """Calls waiting now, oldest first."""
        with self._lock:
            return sorted(self._calls.values(), key=lambda c: c.created)

    def get(self, call_id: str) -> PendingCall:
        """The waiting call with this id.

        Raises:
            KeyError: no call with this id is waiting (decided or timed out already).
        """
        with self._lock:
            return self._calls[call_id]

    def approve(self, call_id: str, arguments: dict[str, Any] | None = None) -> None:
        """Approve a waiting call (optionally with edited arguments)."""
        self.get(call_id).approve(arguments)

    def deny(self, call_id: str, reason: str = "declined by a person") -> None:
        """Refuse a waiting call."""
        self.get(call_id).deny(reason)


def _as_decision(answer: Decision | bool | None) -> Decision:
    if isinstance(answer, Decision):
        return answer
    return Decision(True) if answer is True else Decision(False, None, "declined by a person")


def _ask(approver: Approver, call: PendingCall, timeout: float) -> Decision:
    """Run a function approver in its own thread; no answer within ``timeout`` s refuses."""

    def target() -> None:
        try:
            call.decide(_as_decision(approver(call)))
        except Exception as exc:  # an approver that fails refuses
            call.decide(Decision(False, None, f"the approver failed: {type(exc).__name__}: {exc}"))

    threading.Thread(target=target, name=f"approval-{call.tool}", daemon=True).start()
    return call.wait(timeout)


def needs_approval(tool: Any) -> bool:
    """True when ``tool`` was wrapped by :func:`require_approval`."""
    return bool(getattr(tool.fn, "requires_approval", False))


def require_approval(tool: Any, approver: Approver | None, *, timeout: float = DEFAULT_APPROVAL_TIMEOUT,
                     action: Callable[[dict[str, Any]], str] | None = None) -> Any:
    """The same tool, asking ``approver`` before every call.

    Args:
        tool: a :class:`~knowbase.agents.tools.Tool`.
        approver: a function or an :class:`ApprovalQueue`; None refuses every call (a tool
            marked for approval never runs unattended).
        timeout: seconds to wait for a function approver's answer (no answer is a refusal);
            a queue uses its own timeout. The tool's own time limit is extended by this much.
        action: ``arguments -> text`` describing what the call will do, for the person.

    Returns:
        a new Tool with the same name, description and schema.

    The refusal reaches the model as ``Error: refused: ...`` (``ToolResult.error_kind ==
    "refused"``); the decision is recorded in an ``approval`` span.
    """
    from knowbase.agents.tools import Tool

    inner = tool.fn

    def approved_call(**kwargs: Any) -> Any:
        shown = tool.args_model.model_validate(kwargs).model_dump(by_alias=True)
        call = PendingCall(tool.name, shown, action(shown) if action else tool.description)
        with span("approval", kind="tool", tool=tool.name, call_id=call.id) as sp:
            if approver is None:
                decision = Decision(False, None, "no one is there to approve it")
            elif isinstance(approver, ApprovalQueue):
                decision = approver(call)
            else:
                decision = _ask(approver, call, timeout)
            call.decide(decision)
            sp.set(approved=decision.approved, edited=decision.arguments is not None, reason=decision.reason)
        if not decision.approved:
            raise ApprovalDenied(f"a person must approve {tool.name} and it was not approved "
                                 f"({decision.reason or 'declined'}); do not retry the same call",
                                 tool=tool.name, reason="approval")
        if decision.arguments is not None:
            validated = tool.validate(decision.arguments)
            kwargs = {k: getattr(validated, k) for k in type(validated).model_fields}
        return inner(**kwargs)

    approved_call.requires_approval = True  # type: ignore[attr-defined]
    approved_call.__doc__ = inner.__doc__
    limit = None if tool.timeout is None else tool.timeout + timeout
    return Tool(tool.name, tool.description, approved_call, tool.args_model, limit, tool.max_chars,
                _schema=tool.parameters)
