"""``FunctionCallingAgent``: the model calls tools through the backend's native tool calling.

Each turn offers the tools as ``ChatOptions.tools`` (:class:`~knowbase.models.base.ToolSpec`;
the OpenAI-compatible backend sends them as ``tools``, the llama.cpp backend constrains the
call format by grammar) and reads ``ChatResult.tool_calls``. Every call runs through the
:class:`~knowbase.agents.tools.Toolbox` (unknown names refused, arguments validated) and its
observation goes back as a ``tool`` message with the call's id. A reply with no tool call
is the final answer.

Models that write a call as text instead (Qwen/Hermes ``<tool_call>{...}</tool_call>``)
are understood too, and an empty reply is sent back once as a parse error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from knowbase.agents._base import Run, ToolsLike, agent_run, as_toolbox, make_budget
from knowbase.agents._prompts import render
from knowbase.agents.parsing import parse_text_tool_calls
from knowbase.agents.steps import AgentResult, AgentStep, Budget, StepCallback
from knowbase.errors import KnowbaseError
from knowbase.models.base import ChatModel, ChatOptions, ChatResult, Message, ToolCall, Usage
from knowbase.safety.jsonsafe import JSONLimitError, loads
from knowbase.tracing.context import span

_ANSWER_JSON = re.compile(r'^\s*\{\s*"answer"\s*:\s*"((?:[^"\\]|\\.)*)', re.DOTALL)


def clean_answer(text: str) -> str:
    """The answer text, unwrapped from a ``{"answer": "..."}`` object a backend left as is.

    Grammar-constrained tool replies (llama.cpp) come back raw when ``max_tokens`` cuts
    them short; the answer inside is still the best answer there is.
    """
    stripped = text.strip()
    m = _ANSWER_JSON.match(stripped)
    if not m:
        return stripped
    try:
        value = loads(stripped)
        if isinstance(value, dict) and isinstance(value.get("answer"), str):
            return value["answer"].strip()
    except (json.JSONDecodeError, JSONLimitError):
        pass
    try:
        return json.loads(f'"{m[1]}"').strip()
    except json.JSONDecodeError:
        return m[1].strip()


class FunctionCallingAgent:
    """Native tool calling in a loop until the model answers in plain text.

    Args:
        model: the chat model (its backend should support ``ChatOptions.tools``).
        tools: the tools it may call.
        max_steps: most model turns.
        max_tokens: token budget for the whole run.
        max_seconds: wall-clock limit.
        budget: a :class:`Budget` instead of the three limits.
        max_retries: empty replies sent back per turn before giving up.
        step_max_tokens: most tokens per model reply.
        require_tool: the first turn must call a tool (``tool_choice="required"``); later
            turns may answer. Small models otherwise often answer from memory (and wrongly).
        system: replace the system prompt.
        on_step: called with each :class:`AgentStep` as it finishes.
        tracer: a trace store for the run's spans; default the model's.
    """

    def __init__(self, model: ChatModel, tools: ToolsLike, *, max_steps: int | None = None,
                 max_tokens: int | None = None, max_seconds: float | None = None, budget: Budget | None = None,
                 max_retries: int = 1, step_max_tokens: int = 192, require_tool: bool = False,
                 system: str | None = None, on_step: StepCallback | None = None, tracer: Any = None) -> None:
        self.model = model
        self.tools = as_toolbox(tools)
        self.budget = make_budget(budget, max_steps, max_tokens, max_seconds, 6)
        self.max_retries = max_retries
        self.step_max_tokens = step_max_tokens
        self.require_tool = require_tool
        self.system = system
        self.on_step = on_step
        self.tracer = tracer

    def run(self, question: str, *, on_step: StepCallback | None = None,
            history: list[Message] | None = None) -> AgentResult:
        """Answer ``question``; never raises for budgets, bad output or tool failures.

        Returns:
            an :class:`AgentResult`: one ``tool`` step per tool call, then an ``answer`` step.
        """
        system = self.system if self.system is not None else render("agent_functions")
        messages = [Message.system(system), *(history or []), Message.user(question)]
        options = self.model.options(max_tokens=self.step_max_tokens, temperature=0.0, tools=self.tools.specs(),
                                     tool_choice="auto")
        with agent_run("functions", self.model, self.budget, on_step or self.on_step, tracer=self.tracer,
                       question=question[:500]) as run:
            turn = 0
            while True:
                stop = run.meter.exceeded()
                if stop:
                    return run.result(None, *stop)
                run.meter.steps += 1
                turn += 1
                with span(f"turn {turn}", kind="agent") as sp:
                    first = turn == 1 and self.require_tool
                    got = self._reply(run, messages, options.merged(tool_choice="required") if first else options)
                    if isinstance(got, AgentResult):
                        return got
                    reply, calls, retries = got
                    usage = reply.usage
                    sp.set(tool_calls=[c.name for c in calls], retries=retries)
                    if not calls:
                        answer = clean_answer(reply.text)
                        run.record(AgentStep(run.next_index(), "answer", action="final_answer", action_input=answer,
                                             raw=reply.text, usage=usage, retries=retries))
                        return run.result(answer, "finished", "finished")
                    calls = [c if c.id else ToolCall(c.name, c.arguments, f"call_{turn}_{i}")
                             for i, c in enumerate(calls)]
                    native = bool(reply.tool_calls)
                    messages.append(Message.assistant(reply.text if native else "", calls))
                    for i, call in enumerate(calls):
                        outcome = self.tools.run(call.name, call.arguments)
                        messages.append(Message.tool(outcome.output, tool_call_id=call.id, name=call.name))
                        first = i == 0
                        run.record(AgentStep(
                            run.next_index(), "tool", thought=reply.text.strip() if native else "", action=call.name,
                            action_input=call.arguments, observation=outcome.output, raw=reply.text, ok=outcome.ok,
                            usage=usage if first else Usage(), retries=retries if first else 0))
                        looping = None if outcome.ok else run.meter.note_failure(call.name, call.arguments)
                        if looping:
                            return run.result(None, *looping)

    def _reply(self, run: Run, messages: list[Message],
               options: ChatOptions) -> tuple[ChatResult, list[ToolCall], int] | AgentResult:
        """One turn's reply and its tool calls (native, or written as text); an empty reply
        is sent back up to ``max_retries`` times. An :class:`AgentResult` ends the run."""
        retries = 0
        extra: list[Message] = []
        while True:
            try:
                reply = self.model.chat(messages + extra, options=options)
            except KnowbaseError as exc:
                run.record(AgentStep(run.next_index(), "error", observation=f"model call failed: {exc}", ok=False,
                                     retries=retries))
                return run.result(None, "error", f"model call failed: {exc}")
            run.meter.add(reply)
            calls = list(reply.tool_calls) or parse_text_tool_calls(reply.text)
            if calls or reply.text.strip():
                return reply, calls, retries
            retries += 1
            run.meter.retries += 1
            if retries > self.max_retries:
                run.record(AgentStep(run.next_index(), "parse_error", raw=reply.text, usage=reply.usage,
                                     retries=retries, ok=False, observation="empty reply"))
                return run.result(None, "parse_error", "stopped: the model gave empty replies")
            extra = [Message.assistant(reply.text), Message.user(
                render("agent_parse_error", error="the reply was empty: call a tool or write the answer"))]
