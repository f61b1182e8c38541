"""``AutonomousAgent``: pursue a goal over many steps (AutoGPT/BabyAGI style).

The loop, one step at a time (each step is a span, and the state is saved after it):

1. ``plan``: the model splits the goal into a list of tasks (structured output:
   ``{"tasks": [...]}``, constrained by JSON Schema where the backend can).
2. ``task``: the next pending task runs in a sub-agent with the tools (ReAct or
   function calling), given notes retrieved from the vector memory; its result is stored
   in the memory (``memory.add_texts``; a :class:`~knowbase.knowledge.base.KnowledgeBase`).
3. ``check``: when no task is pending (or after every task with ``check_each_task``) the
   model judges whether the goal is met (``{"done", "answer", "new_tasks"}``); new tasks
   are appended and the loop continues.

The run stops at the step budget (plan, tasks and checks each count one), the token
budget (``ChatResult.usage`` summed over every call, sub-agents included) or the
wall-clock limit, and returns the partial result. An optional ``feedback`` callback is
asked between steps: None or "" continues, ``stop``/``quit`` stops, any other text is
kept as a note for later prompts. With a :class:`~knowbase.agents.state.AgentStore` the
whole :class:`~knowbase.agents.state.RunState` is saved after every step, so
:meth:`AutonomousAgent.resume` continues after a crash or Ctrl-C.

Design after BabyAGI (Nakajima 2023: task creation, execution with a vector memory,
prioritisation) and Auto-GPT (goal-driven loop with human feedback between steps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from knowbase.agents._base import Run, ToolsLike, agent_run, as_toolbox, make_budget
from knowbase.agents._prompts import render
from knowbase.agents.parsing import StepParseError, parse_json_object
from knowbase.agents.state import AgentStore, RunState, TaskState
from knowbase.agents.steps import AgentResult, AgentStep, Budget, Meter, Status, StepCallback
from knowbase.errors import KnowbaseError
from knowbase.models.base import ChatModel, Message, Usage
from knowbase.safety.jsonsafe import JSONLimitError, loads
from knowbase.tracing.context import new_id, span

STOP_WORDS = frozenset({"stop", "quit", "q", "exit"})
MAX_RESULT_CHARS = 1500
"""Task results are kept (and remembered) up to this many characters."""

Executor = Callable[[str, Budget], AgentResult]
"""``(task prompt, budget left) -> AgentResult``: runs one task."""
Feedback = Callable[[RunState, AgentStep], "str | None"]
"""``(state, step just finished) -> None/"" (continue), "stop", or a note``."""


class Memory(Protocol):
    """The vector memory: a :class:`~knowbase.knowledge.base.KnowledgeBase` fits."""

    def add_texts(self, texts: list[str], *, metadatas: list[dict[str, Any]] | None = None,
                  source: str = ...) -> list[int]: ...

    def search(self, query: str, *, k: int = 5, mode: str = "hybrid") -> list[Any]: ...


class Plan(BaseModel):
    """The planner's output."""

    tasks: list[str]


class GoalCheck(BaseModel):
    """The goal check's output."""

    done: bool
    answer: str = ""
    new_tasks: list[str] = []


def plan_schema(max_tasks: int) -> dict[str, Any]:
    """JSON Schema of the plan: ``{"tasks": [1..max_tasks strings]}``."""
    return {"type": "object", "properties": {"tasks": {"type": "array", "items": {"type": "string"},
                                                        "minItems": 1, "maxItems": max_tasks}},
            "required": ["tasks"]}


def check_schema(max_tasks: int) -> dict[str, Any]:
    """JSON Schema of the goal check."""
    return {"type": "object", "properties": {
        "done": {"type": "boolean"}, "answer": {"type": "string"},
        "new_tasks": {"type": "array", "items": {"type": "string"}, "maxItems": max_tasks}},
        "required": ["done", "answer", "new_tasks"]}


def _clip(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class AutonomousAgent:
    """Plan, execute with tools, remember, check; repeat within budgets.

    Args:
        model: the chat model (planner, goal checker and sub-agents).
        tools: the tools the sub-agents may call.
        memory: the vector memory (``add_texts``/``search``); None keeps no memory
            beyond the task list (the last results are shown instead of retrieved ones).
        store: where the state is saved after every step; None does not save.
        executor: ``react``, ``functions``, or a callable ``(task prompt, budget) -> AgentResult``.
        max_steps: step budget (plan, tasks and checks each count one).
        max_tokens: token budget over every call, sub-agents included.
        max_seconds: wall-clock limit (summed over resumed sessions).
        budget: a :class:`Budget` instead of the three limits.
        max_tasks: most tasks per plan or per check; at most ``3 * max_tasks`` in total.
        task_max_steps: step budget of each sub-agent run.
        check_each_task: check the goal after every task, not only when none is pending.
        memory_k: notes retrieved from memory per task.
        max_retries: unparseable plan/check replies sent back before the fallback.
        feedback: the human-feedback callback (see module docs).
        on_step: called with each step of this agent; ``on_substep`` with the sub-agents'.
        tracer: a trace store for the spans; default the model's.
        config: saved with the state (the CLI puts what it needs to rebuild the agent).
        react_format: step format of the ReAct sub-agent (``text`` or ``json``).
    """

    def __init__(self, model: ChatModel, tools: ToolsLike, *, memory: Memory | None = None,
                 store: AgentStore | None = None, executor: Literal["react", "functions"] | Executor = "react",
                 max_steps: int | None = None, max_tokens: int | None = None, max_seconds: float | None = None,
                 budget: Budget | None = None, max_tasks: int = 4, task_max_steps: int = 4,
                 check_each_task: bool = False, memory_k: int = 3, max_retries: int = 1,
                 plan_max_tokens: int = 160, feedback: Feedback | None = None, on_step: StepCallback | None = None,
                 on_substep: StepCallback | None = None, tracer: Any = None, config: dict[str, Any] | None = None,
                 react_format: Literal["text", "json"] = "text") -> None:
        self.model = model
        self.tools = as_toolbox(tools)
        self.memory = memory
        self.store = store
        self.executor = executor
        self.budget = make_budget(budget, max_steps, max_tokens, max_seconds, 12)
        self.max_tasks = max_tasks
        self.task_max_steps = task_max_steps
        self.check_each_task = check_each_task
        self.memory_k = memory_k
        self.max_retries = max_retries
        self.plan_max_tokens = plan_max_tokens
        self.feedback = feedback
        self.on_step = on_step
        self.on_substep = on_substep
        self.tracer = tracer
        self.config = dict(config or {})
        self.react_format = react_format

    # --- entry points ----------------------------------------------------------------------
    def run(self, goal: str, *, run_id: str | None = None) -> AgentResult:
        """Start a new run toward ``goal``; returns when it finishes or a budget holds.

        ``result.run_id`` names the saved state (when a store is set). Never raises for
        budgets, bad output or tool failures; KeyboardInterrupt propagates, with the state
        of the last finished step already saved.
        """
        state = RunState(id=run_id or new_id(), goal=goal, config=self.config)
        self._save(state)
        return self._drive(state)

    def resume(self, run_id: str) -> AgentResult:
        """Continue a saved run (a unique id prefix is enough).

        A finished run is not run again: its saved answer is returned. A run stopped by a
        budget continues when this agent's budget is larger.

        Raises:
            RunNotFound: no such run. KnowbaseError: no store is set.
        """
        if self.store is None:
            raise KnowbaseError("resume needs an AgentStore")
        state = self.store.load(run_id)
        if state.status == "finished":
            return AgentResult(state.answer, "finished", state.message or "finished", [],
                               Usage(state.prompt_tokens, state.completion_tokens), 0, None, state.elapsed_s, state.id)
        state.status = "running"
        return self._drive(state)

    # --- the loop --------------------------------------------------------------------------
    def _save(self, state: RunState) -> None:
        if self.store is not None:
            self.store.save(state)

    def _drive(self, state: RunState) -> AgentResult:
        meter = Meter(self.budget, used=Usage(state.prompt_tokens, state.completion_tokens),
                      elapsed=state.elapsed_s, steps=state.step)
        with agent_run("auto", self.model, self.budget, self.on_step, tracer=self.tracer, meter=meter,
                       goal=state.goal[:500], run_id=state.id) as run:
            while True:
                stop = meter.exceeded()
                if stop:
                    return self._finish(run, state, None, *stop)
                meter.steps += 1
                final: tuple[str | None, Status, str] | None = None
                if not state.planned:
                    step = self._plan(run, state)
                elif state.check_due or state.pending() is None:
                    step, final = self._check(run, state)
                else:
                    step, looping = self._task(run, state, state.pending())  # type: ignore[arg-type]
                    if looping is not None:
                        final = (self._last_result(state), *looping)
                state.step = meter.steps
                state.log.append(" ".join(step.summary().split())[:200])
                self._sync(state, meter)
                self._save(state)
                run.record(step)
                if final is not None:
                    return self._finish(run, state, *final)
                if self.feedback is not None:
                    note = (self.feedback(state, step) or "").strip()
                    if note.lower() in STOP_WORDS:
                        return self._finish(run, state, self._last_result(state), "stopped", "stopped by the user")
                    if note:
                        state.notes.append(note)
                        self._remember(state, f"Note from the user: {note}", {"kind": "feedback"})
                        self._save(state)

    def _sync(self, state: RunState, meter: Meter) -> None:
        state.prompt_tokens, state.completion_tokens = meter.usage.prompt_tokens, meter.usage.completion_tokens
        state.elapsed_s = meter.elapsed

    def _finish(self, run: Run, state: RunState, answer: str | None, status: Status, message: str) -> AgentResult:
        state.status, state.answer, state.message = status, answer, message
        self._sync(state, run.meter)
        self._save(state)
        result = run.result(answer, status, message)
        result.run_id = state.id
        return result

    @staticmethod
    def _last_result(state: RunState) -> str | None:
        done = [t.result for t in state.tasks if t.status == "done" and t.result]
        return done[-1] if done else None

    def _notes(self, state: RunState) -> str:
        return "Notes from the user: " + " / ".join(state.notes) if state.notes else ""

    # --- steps -----------------------------------------------------------------------------
    def _structured(self, run: Run, step: AgentStep, prompt: str, schema: dict[str, Any],
                    parse: Callable[[str], Any]) -> Any:
        """One structured-output call with retries; returns the parsed value or None."""
        messages = [Message.user(prompt)]
        options = self.model.options(max_tokens=self.plan_max_tokens, temperature=0.0, json_schema=schema)
        while True:
            reply = self.model.chat(messages, options=options)
            step.usage = step.usage + run.meter.add(reply)
            step.raw = reply.text
            try:
                return parse(reply.text)
            except (StepParseError, ValidationError) as exc:
                error = str(exc) if isinstance(exc, StepParseError) else "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
            if step.retries >= self.max_retries or run.meter.exceeded():
                step.ok, step.observation = False, f"did not parse: {error}"
                return None
            step.retries += 1
            run.meter.retries += 1
            messages = [*messages, Message.assistant(reply.text),
                        Message.user(render("agent_parse_error", error=error))]

    def _plan(self, run: Run, state: RunState) -> AgentStep:
        with span("plan", kind="agent") as sp:
            step = AgentStep(run.next_index(), "plan")
            prompt = render("agent_plan", goal=state.goal, notes=self._notes(state), tools=", ".join(self.tools),
                            max_tasks=self.max_tasks)

            def parse(text: str) -> list[str]:
                stripped = text.strip()
                if stripped.startswith("["):
                    try:
                        return Plan(tasks=loads(stripped)).tasks
                    except (json.JSONDecodeError, ValidationError, JSONLimitError):
                        pass
                return Plan.model_validate(parse_json_object(text)).tasks

            try:
                tasks = self._structured(run, step, prompt, plan_schema(self.max_tasks), parse)
            except KnowbaseError as exc:
                tasks, step.ok, step.observation = None, False, f"model call failed: {exc}"
            clean = [" ".join(str(t).split()) for t in (tasks or []) if str(t).strip()][: self.max_tasks]
            if not clean:
                clean = [state.goal]  # fall back to doing the goal as one task
                step.observation = (step.observation + "; " if step.observation else "") + "planning failed; " \
                    "the goal becomes the only task"
            else:
                step.observation = "; ".join(clean)
            state.tasks.extend(TaskState(description=t) for t in clean)
            state.planned = True
            step.action_input = clean
            sp.set(tasks=clean, retries=step.retries)
        return step

    def _task(self, run: Run, state: RunState, task: TaskState) -> tuple[AgentStep, tuple[Status, str] | None]:
        """Run one task in a sub-agent. Returns the step, and ``(status, message)`` when a
        failing tool call has now been repeated ``max_repeated_failures`` times over the
        whole run (the sub-agents' calls counted together), which ends the run."""
        number = state.tasks.index(task) + 1
        with span(f"task {number}", kind="agent", task=task.description[:300]) as sp:
            step = AgentStep(run.next_index(), "task", action=self.executor if isinstance(self.executor, str)
                             else getattr(self.executor, "__name__", "executor"), action_input=task.description)
            prompt = render("agent_task", task=task.description, goal=state.goal,
                            notes=self._context(state, task.description))
            left = run.meter.budget
            used = run.meter.usage.total_tokens
            sub_budget = Budget(
                max_steps=self.task_max_steps,
                max_tokens=None if left.max_tokens is None else max(1, left.max_tokens - used),
                max_seconds=None if left.max_seconds is None else max(0.1, left.max_seconds - run.meter.elapsed),
                max_repeated_failures=left.max_repeated_failures)
            try:
                result = self._execute(prompt, sub_budget)
            except KnowbaseError as exc:
                result = AgentResult(None, "error", f"task failed: {exc}")
            run.meter.usage = run.meter.usage + result.usage
            run.meter.retries += result.retries
            step.usage, step.retries = result.usage, result.retries
            task.steps = len(result.steps)
            if result.ok and result.answer:
                task.status, task.result = "done", _clip(result.answer)
            else:
                task.status, task.result = "failed", _clip(result.answer or result.message)
                step.ok = False
            step.observation = task.result
            self._remember(state, f"Task: {task.description}\nResult: {task.result}",
                           {"kind": "task", "task": number, "status": task.status})
            state.check_due = self.check_each_task
            sp.set(status=task.status, sub_status=result.status, sub_steps=len(result.steps))
        looping = None
        for sub in result.steps:
            if sub.kind == "tool" and not sub.ok:
                looping = run.meter.note_failure(sub.action, sub.action_input) or looping
        return step, looping

    def _execute(self, prompt: str, budget: Budget) -> AgentResult:
        if callable(self.executor):
            return self.executor(prompt, budget)
        if self.executor == "functions":
            from knowbase.agents.functions import FunctionCallingAgent

            return FunctionCallingAgent(self.model, self.tools, budget=budget, on_step=self.on_substep,
                                        tracer=self.tracer).run(prompt)
        from knowbase.agents.react import ReActAgent

        return ReActAgent(self.model, self.tools, budget=budget, on_step=self.on_substep, tracer=self.tracer,
                          format=self.react_format).run(prompt)

    def _check(self, run: Run, state: RunState) -> tuple[AgentStep, tuple[str | None, Status, str] | None]:
        with span("check", kind="agent") as sp:
            step = AgentStep(run.next_index(), "check")
            state.check_due = False
            done = [t for t in state.tasks if t.status != "pending"]
            results = "\n".join(f"- {t.description}: {t.result}" for t in done) or "(nothing yet)"
            pending = "; ".join(t.description for t in state.tasks if t.status == "pending") or "none"
            prompt = render("agent_check", goal=state.goal, results=results, pending=pending, notes=self._notes(state))
            try:
                check = self._structured(run, step, prompt, check_schema(self.max_tasks),
                                         lambda text: GoalCheck.model_validate(parse_json_object(text)))
            except KnowbaseError as exc:
                step.ok, step.observation = False, f"model call failed: {exc}"
                return step, (self._last_result(state), "error", f"goal check failed: {exc}")
            if check is None:
                return step, (self._last_result(state), "parse_error",
                              "stopped: the goal check did not parse; the answer is the last task's result")
            sp.set(done=check.done, new_tasks=check.new_tasks)
            step.action_input = check.model_dump()
            if check.done:
                answer = check.answer.strip() or self._last_result(state) or ""
                step.observation = f"goal met: {answer}"
                return step, (answer, "finished", "finished")
            known = {t.description.lower() for t in state.tasks}
            room = max(0, 3 * self.max_tasks - len(state.tasks))
            new: list[str] = []
            for text in check.new_tasks:
                clean = " ".join(str(text).split())
                if clean and clean.lower() not in known and len(new) < min(room, self.max_tasks):
                    new.append(clean)
                    known.add(clean.lower())
            state.tasks.extend(TaskState(description=t) for t in new)
            step.observation = "goal not met; new tasks: " + ("; ".join(new) or "none")
            if state.pending() is None:
                return step, (check.answer.strip() or self._last_result(state), "stopped",
                              "stopped: the goal is not met and there are no tasks left to try")
        return step, None

    # --- memory ----------------------------------------------------------------------------
    def _context(self, state: RunState, query: str) -> str:
        """Notes for a task: retrieved from memory, or the last results without a memory."""
        lines: list[str] = []
        if self.memory is not None:
            try:
                hits = self.memory.search(query, k=self.memory_k)
            except KnowbaseError:
                hits = []
            for hit in hits:
                chunk = getattr(hit, "chunk", hit)
                text = " ".join(str(getattr(chunk, "text", chunk)).split())
                if text:
                    lines.append(f"- {text[:400]}")
        else:
            lines = [f"- Task: {t.description} Result: {t.result[:400]}" for t in state.tasks
                     if t.status == "done"][-self.memory_k:]
        notes = self._notes(state)
        out = ("Notes from earlier tasks:\n" + "\n".join(lines)) if lines else ""
        return "\n".join(p for p in (out, notes) if p)

    def _remember(self, state: RunState, text: str, meta: dict[str, Any]) -> None:
        if self.memory is None:
            return
        try:
            self.memory.add_texts([text], metadatas=[{"run_id": state.id, **meta}], source=f"agent:{state.id}")
        except KnowbaseError as exc:  # memory trouble must not end the run
            state.log.append(f"memory write failed: {exc}"[:200])
