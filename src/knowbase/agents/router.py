"""``RouterAgent``: the model picks ONE tool by answering a multiple-choice question.

The classic customer-service router: "A) product_lookup, B) order_lookup, C)
policy_search, D) none of these". Small models answer a letter far more reliably than
they write a tool call, and on llama.cpp the reply is constrained to the letters by a
GBNF grammar. The steps:

1. ``choose``: the letter, parsed robustly (:func:`~knowbase.agents.parsing.parse_choice`).
   "None of these" gets a polite fallback answer and no tool runs.
2. ``arguments``: the chosen tool's arguments, as structured output following the tool's
   JSON Schema (``ChatOptions.json_schema``), validated before the tool runs; invalid
   output is sent back with the error and retried. Skipped for tools without arguments.
3. ``tool``: the call.
4. ``answer`` (when ``answer=True``): the model phrases the result for the request;
   otherwise the tool's output is the answer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from knowbase.agents._base import Run, ToolsLike, agent_run, as_toolbox
from knowbase.agents._prompts import render
from knowbase.agents.parsing import StepParseError, choice_letters, parse_choice, parse_json_object
from knowbase.agents.steps import AgentResult, AgentStep, Budget, StepCallback
from knowbase.agents.tools import Tool
from knowbase.errors import KnowbaseError
from knowbase.models.base import ChatModel, ChatOptions, ChatResult, Message
from knowbase.tracing.context import span

NONE_OPTION = "none of these"


def choice_grammar(n: int) -> str:
    """GBNF accepting exactly one of the first ``n`` letters."""
    return "root ::= " + " | ".join(f'"{c}"' for c in choice_letters(n))


class RouterAgent:
    """Route a request to one tool by multiple choice, then run it.

    Args:
        model: the chat model.
        tools: the tools to choose from (at most 25; the last letter is "none of these").
        answer: let the model phrase the final answer from the tool's output (one more
            call); False returns the tool's output as the answer.
        constrained: constrain the letter (GBNF) and the arguments (JSON Schema) on
            backends that support it.
        fallback: the answer when no tool fits; default from ``agent_router_fallback.txt``.
        max_retries: unparseable replies sent back, per step.
        max_tokens: token budget for the whole run; None for no limit.
        max_seconds: wall-clock limit.
        on_step: called with each :class:`AgentStep` as it finishes.
        tracer: a trace store for the run's spans; default the model's.
    """

    def __init__(self, model: ChatModel, tools: ToolsLike, *, answer: bool = True, constrained: bool = True,
                 fallback: str | None = None, max_retries: int = 1, max_tokens: int | None = None,
                 max_seconds: float | None = None, arg_max_tokens: int = 96, answer_max_tokens: int = 96,
                 on_step: StepCallback | None = None, tracer: Any = None) -> None:
        self.model = model
        self.tools = as_toolbox(tools)
        if not 1 <= len(self.tools) <= 25:
            raise ValueError(f"a router needs 1 to 25 tools, not {len(self.tools)}")
        self.answer = answer
        self.constrained = constrained
        self.fallback = fallback
        self.max_retries = max_retries
        self.budget = Budget(max_steps=None, max_tokens=max_tokens, max_seconds=max_seconds)
        self.arg_max_tokens = arg_max_tokens
        self.answer_max_tokens = answer_max_tokens
        self.on_step = on_step
        self.tracer = tracer

    @property
    def option_names(self) -> list[str]:
        """Tool names in letter order, then ``none of these``."""
        return [*self.tools, NONE_OPTION]

    def question(self, request: str) -> str:
        """The multiple-choice prompt for ``request``."""
        letters = choice_letters(len(self.option_names))
        lines = [f"{letters[i]}) {t.name}: {t.description}" for i, t in enumerate(self.tools.values())]
        lines.append(f"{letters[-1]}) {NONE_OPTION}")
        return render("agent_router", request=request, options="\n".join(lines))

    def fallback_answer(self) -> str:
        """The polite answer when no tool fits the request."""
        if self.fallback is not None:
            return self.fallback
        caps = "; ".join(t.description.rstrip(".") for t in self.tools.values())
        return render("agent_router_fallback", capabilities=caps)

    def _call(self, run: Run, step: AgentStep, messages: list[Message], options: ChatOptions) -> ChatResult:
        reply = self.model.chat(messages, options=options)
        step.usage = step.usage + run.meter.add(reply)
        step.raw = reply.text
        return reply

    def run(self, request: str, *, on_step: StepCallback | None = None) -> AgentResult:
        """Route ``request`` and answer it; never raises for bad output, budgets or tool failures.

        Returns:
            an :class:`AgentResult` with ``status``: ``finished``; ``no_tool`` ("none of
            these", the fallback in ``answer``); ``parse_error`` (the letter or the arguments
            never parsed; the fallback in ``answer``); ``error`` (a tool or model call failed);
            or a budget status.
        """
        with agent_run("router", self.model, self.budget, on_step or self.on_step, tracer=self.tracer,
                       request=request[:500]) as run:
            try:
                return self._route(run, request)
            except KnowbaseError as exc:
                run.record(AgentStep(run.next_index(), "error", observation=f"model call failed: {exc}", ok=False))
                return run.result(None, "error", f"model call failed: {exc}")

    def _route(self, run: Run, request: str) -> AgentResult:
        names = self.option_names
        n = len(names)
        # 1. choose
        with span("choose", kind="agent") as sp:
            step = AgentStep(run.next_index(), "choose")
            opts = self.model.options(max_tokens=8, temperature=0.0)
            if self.constrained:
                opts = opts.merged(grammar=choice_grammar(n))
            messages = [Message.user(self.question(request))]
            picked: int | None = None
            while True:
                reply = self._call(run, step, messages, opts)
                picked = parse_choice(reply.text, n, names=names)
                if picked is not None or step.retries >= self.max_retries or run.meter.exceeded():
                    break
                step.retries += 1
                run.meter.retries += 1
                letters = choice_letters(n)
                messages = [*messages, Message.assistant(reply.text), Message.user(
                    render("agent_parse_error", error=f"reply with one letter from {', '.join(letters)}"))]
            step.thought = reply.text.strip()
            step.action = None if picked is None else names[picked]
            sp.set(choice=step.action, retries=step.retries)
            run.record(step)
        if picked is None:
            return run.result(self.fallback_answer(), "parse_error",
                              f"could not tell which option the model chose from {reply.text.strip()[:80]!r}")
        if picked == n - 1:
            return run.result(self.fallback_answer(), "no_tool", "no tool fits the request")
        tool = self.tools[names[picked]]
        # 2. arguments
        arguments: dict[str, Any] = {}
        if tool.parameters.get("properties"):
            stop = run.meter.exceeded()
            if stop:
                return run.result(None, *stop)
            arguments_or_none = self._arguments(run, tool, request)
            if arguments_or_none is None:
                return run.result(self.fallback_answer(), "parse_error",
                                  f"could not get valid arguments for {tool.name} from the model")
            arguments = arguments_or_none
        # 3. tool
        outcome = self.tools.run(tool.name, arguments)
        run.record(AgentStep(run.next_index(), "tool", action=tool.name, action_input=arguments,
                             observation=outcome.output, ok=outcome.ok))
        if not outcome.ok:
            return run.result(None, "error", f"tool {tool.name} failed: {outcome.output}")
        if not self.answer:
            return run.result(outcome.output, "finished", "finished")
        # 4. answer
        stop = run.meter.exceeded()
        if stop:
            return run.result(None, *stop)
        with span("answer", kind="agent"):
            step = AgentStep(run.next_index(), "answer", action="final_answer")
            prompt = render("agent_router_answer", request=request, tool=tool.name, observation=outcome.output)
            reply = self._call(run, step, [Message.user(prompt)],
                               self.model.options(max_tokens=self.answer_max_tokens, temperature=0.0))
            step.action_input = reply.text.strip()
            run.record(step)
        return run.result(reply.text.strip(), "finished", "finished")

    def _arguments(self, run: Run, tool: Tool, request: str) -> dict[str, Any] | None:
        with span("arguments", kind="agent", tool=tool.name) as sp:
            step = AgentStep(run.next_index(), "arguments", action=tool.name)
            opts = self.model.options(max_tokens=self.arg_max_tokens, temperature=0.0)
            if self.constrained:
                opts = opts.merged(json_schema=tool.parameters)
            prompt = render("agent_router_arguments", request=request, tool=f"{tool.name}: {tool.description}",
                            schema=json.dumps(tool.parameters, ensure_ascii=False))
            messages = [Message.user(prompt)]
            result: dict[str, Any] | None = None
            while True:
                reply = self._call(run, step, messages, opts)
                try:
                    validated = tool.validate(parse_json_object(reply.text))
                    result = validated.model_dump()
                    break
                except StepParseError as exc:
                    error = str(exc)
                except ValidationError as exc:
                    error = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
                if step.retries >= self.max_retries or run.meter.exceeded():
                    step.observation, step.ok = error, False
                    break
                step.retries += 1
                run.meter.retries += 1
                messages = [*messages, Message.assistant(reply.text),
                            Message.user(render("agent_parse_error", error=error))]
            step.action_input = result
            sp.set(retries=step.retries, ok=result is not None)
            run.record(step)
        return result
