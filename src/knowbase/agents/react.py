"""``ReActAgent``: the Thought / Action / Action Input / Observation loop.

ReAct: Yao et al. 2023, "ReAct: Synergizing Reasoning and Acting in Language Models"
(ICLR). Each step the model writes a thought and one action; the agent runs the tool and
sends the result back as ``Observation: ...``; the loop ends at ``Final Answer`` or at a
budget (steps, tokens, seconds), which returns the partial transcript instead of raising.

Two step formats (``format=``):

* ``"text"``: the classic lines ``Thought:``/``Action:``/``Action Input:``/``Final Answer:``;
  ``Observation:`` is a stop string so the model cannot invent results.
* ``"json"``: ``{"thought": ..., "action": <tool>|"final_answer", "action_input": ...}``.

With ``constrained=True`` (default) each step is constrained on backends that can: the
JSON format through ``ChatOptions.json_schema`` (llama.cpp compiles it to a grammar; an
OpenAI-compatible server gets ``response_format``), the text format through a GBNF
``ChatOptions.grammar`` (llama.cpp only). Output that still does not parse is sent back
with the parse error and retried, up to ``max_retries`` times per step; retries are
counted in :attr:`AgentResult.retries`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from knowbase.agents._base import Run, ToolsLike, agent_run, as_toolbox, make_budget
from knowbase.agents._prompts import render
from knowbase.agents.grammar import react_json_schema, react_text_grammar
from knowbase.agents.parsing import ReActStep, StepParseError, parse_react_json, parse_react_text
from knowbase.agents.steps import AgentResult, AgentStep, Budget, StepCallback
from knowbase.errors import KnowbaseError
from knowbase.models.base import ChatModel, ChatOptions, Message
from knowbase.tracing.context import Span, span

StepFormat = Literal["text", "json"]


def format_step(step: ReActStep, fmt: StepFormat) -> str:
    """The canonical text of a parsed step, as kept in the transcript."""
    if fmt == "json":
        return json.dumps({"thought": step.thought, "action": step.action, "action_input": step.action_input},
                          ensure_ascii=False)
    lines = [f"Thought: {step.thought}"] if step.thought else []
    if step.is_final:
        lines.append(f"Final Answer: {step.action_input}")
    else:
        arg = step.action_input if isinstance(step.action_input, str) else json.dumps(step.action_input,
                                                                                       ensure_ascii=False)
        lines += [f"Action: {step.action}", f"Action Input: {arg}"]
    return "\n".join(lines)


class ReActAgent:
    """Reason-and-act over a set of tools.

    Args:
        model: the chat model.
        tools: the tools it may call (a :class:`Toolbox`, tools or typed functions).
        format: ``text`` or ``json`` step format.
        constrained: constrain each step's format on backends that support it.
        max_steps: most steps (each step is one model reply that parsed, plus its tool call).
        max_tokens: token budget for the whole run (prompt + completion, every call).
        max_seconds: wall-clock limit for the run.
        budget: a :class:`Budget` instead of the three limits above.
        max_retries: unparseable replies sent back per step before giving up.
        step_max_tokens: most tokens per model reply.
        system: replace the whole system prompt (then describe the tools and the format yourself).
        on_step: called with each :class:`AgentStep` as it finishes (the CLI prints it).
        tracer: a trace store for the run's spans; default the model's.

    Example::

        agent = ReActAgent(get_chat_model("fake"), [calculator])
        result = agent.run("What is 17 * 23?")
        result.answer, result.status, [s.action for s in result.steps]
    """

    def __init__(self, model: ChatModel, tools: ToolsLike, *, format: StepFormat = "text", constrained: bool = True,
                 max_steps: int | None = None, max_tokens: int | None = None, max_seconds: float | None = None,
                 budget: Budget | None = None, max_retries: int = 2, step_max_tokens: int = 192,
                 system: str | None = None, on_step: StepCallback | None = None, tracer: Any = None) -> None:
        if format not in ("text", "json"):
            raise ValueError(f"format must be 'text' or 'json', not {format!r}")
        self.model = model
        self.tools = as_toolbox(tools)
        self.format: StepFormat = format
        self.constrained = constrained
        self.budget = make_budget(budget, max_steps, max_tokens, max_seconds, 8)
        self.max_retries = max_retries
        self.step_max_tokens = step_max_tokens
        self.system = system
        self.on_step = on_step
        self.tracer = tracer

    def system_prompt(self) -> str:
        """The system prompt: instructions, the tools and the step format."""
        if self.system is not None:
            return self.system
        template = "agent_react" if self.format == "text" else "agent_react_json"
        return render(template, tools=self.tools.describe(), names=", ".join(self.tools))

    def step_options(self) -> ChatOptions:
        """Options of every step call (stop strings, limits and the format constraint)."""
        opts = self.model.options(max_tokens=self.step_max_tokens, temperature=0.0)
        if self.format == "text":
            opts = opts.merged(stop=("\nObservation:", "Observation:"))
            if self.constrained:
                opts = opts.merged(grammar=react_text_grammar(self.tools))
        elif self.constrained:
            opts = opts.merged(json_schema=react_json_schema(self.tools))
        return opts

    def parse(self, text: str) -> ReActStep:
        """Parse one reply in this agent's format (raises :class:`StepParseError`)."""
        return parse_react_text(text) if self.format == "text" else parse_react_json(text)

    def run(self, question: str, *, on_step: StepCallback | None = None,
            history: list[Message] | None = None) -> AgentResult:
        """Answer ``question``; never raises for budgets, bad output or tool failures.

        Args:
            question: the question or task.
            on_step: overrides the agent's ``on_step`` for this run.
            history: earlier messages to put between the system prompt and the question.

        Returns:
            an :class:`AgentResult`; ``status`` is ``finished``, a budget status,
            ``parse_error`` or ``error`` (a model call raised; ``message`` says which).
        """
        messages = [Message.system(self.system_prompt()), *(history or []), Message.user(question)]
        options = self.step_options()
        with agent_run("react", self.model, self.budget, on_step or self.on_step, tracer=self.tracer,
                       format=self.format, constrained=self.constrained, question=question[:500]) as run:
            while True:
                stop = run.meter.exceeded()
                if stop:
                    return run.result(None, *stop)
                run.meter.steps += 1
                with span(f"step {run.next_index()}", kind="agent") as sp:
                    step = AgentStep(run.next_index(), "tool")
                    parsed = self._think(run, messages, options, step, sp)
                    if isinstance(parsed, AgentResult):
                        return parsed
                    step.thought, step.action, step.action_input = parsed.thought, parsed.action, parsed.action_input
                    sp.set(action=parsed.action)
                    if parsed.is_final:
                        step.kind = "answer"
                        run.record(step)
                        return run.result(str(parsed.action_input).strip(), "finished", "finished")
                    outcome = self.tools.run(parsed.action, parsed.action_input)
                    step.observation, step.ok = outcome.output, outcome.ok
                    messages += [Message.assistant(format_step(parsed, self.format)),
                                 Message.user(f"Observation: {outcome.output}")]
                    run.record(step)
                    looping = None if outcome.ok else run.meter.note_failure(parsed.action, outcome.arguments)
                    if looping:
                        return run.result(None, *looping)

    def _think(self, run: Run, messages: list[Message], options: ChatOptions, step: AgentStep,
               sp: Span) -> ReActStep | AgentResult:
        """The step's model reply, parsed; unparseable replies are sent back with the error.

        Returns the parsed step, or the :class:`AgentResult` that ends the run (a model
        error, ``max_retries`` exceeded, or a token/time budget hit while retrying).
        Failed attempts are not kept in ``messages``.
        """
        extra: list[Message] = []
        while True:
            stop = run.meter.exceeded() if step.retries else None
            if stop and stop[0] != "max_steps":
                run.record(step)
                return run.result(None, *stop)
            try:
                reply = self.model.chat(messages + extra, options=options)
            except KnowbaseError as exc:
                step.kind, step.observation, step.ok = "error", f"model call failed: {exc}", False
                run.record(step)
                return run.result(None, "error", f"model call failed: {exc}")
            step.usage = step.usage + run.meter.add(reply)
            step.raw = reply.text
            try:
                return self.parse(reply.text)
            except StepParseError as exc:
                step.retries += 1
                run.meter.retries += 1
                sp.set(retries=step.retries)
                if step.retries > self.max_retries:
                    step.kind, step.observation, step.ok = "parse_error", str(exc), False
                    run.record(step)
                    return run.result(None, "parse_error",
                                      f"stopped: {step.retries} replies in a row did not parse ({exc})")
                error = str(exc)
                if reply.finish_reason == "length":
                    error += f" (the reply was cut off at {options.max_tokens} tokens: keep the Thought short)"
                extra = [Message.assistant(reply.text), Message.user(render("agent_parse_error", error=error))]
