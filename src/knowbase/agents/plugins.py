"""``PluginRouter``: one conversational entry point over many plugins.

Each plugin is a set of tools with a one-line description (an OpenAPI spec's ``info``, an
MCP server, a registered toolset). A request is routed by the multiple-choice question of
:class:`~knowbase.agents.router.RouterAgent`, one level up: "A) Acme Shop: order lookup and
product catalogue; B) Calendar: ...; E) none of these" (the letter constrained by a GBNF
grammar on llama.cpp). The chosen plugin's tools then go to a sub-agent (by default a
:class:`RouterAgent` over that plugin's operations: choose the operation, write its
arguments, call, phrase the answer); "none of these" gives a polite fallback naming what
the plugins can do, and runs nothing.

Routing alone (:meth:`PluginRouter.route`) is what ``benches/plugins.py`` measures: accuracy
over labelled requests and the "none fits" rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from knowbase.agents._base import Run, agent_run
from knowbase.agents._prompts import render
from knowbase.agents.parsing import choice_letters, parse_choice
from knowbase.agents.router import NONE_OPTION, choice_grammar
from knowbase.agents.steps import AgentResult, AgentStep, Budget, StepCallback
from knowbase.agents.tools import Tool
from knowbase.errors import KnowbaseError
from knowbase.models.base import ChatModel, Message
from knowbase.tracing.context import span


@dataclass(frozen=True)
class Plugin:
    """A named group of tools the router can pick.

    Attributes:
        name: a short name (``Acme Shop API``); shown to the model with the description.
        description: what it does, in a sentence (the router decides from this).
        tools: its tools.
    """

    name: str
    description: str
    tools: tuple[Tool, ...]

    @classmethod
    def from_toolset(cls, toolset: Any, *, name: str | None = None, description: str | None = None) -> Plugin:
        """A plugin from an :class:`~knowbase.tools.openapi.OpenAPIToolset` (its ``name``,
        ``description`` and ``tools()``), or anything with those."""
        return cls(name or toolset.name, description or toolset.description, tuple(toolset.tools()))


SubAgent = Callable[[ChatModel, Sequence[Tool], Budget], Any]
"""``(model, tools, budget) -> agent`` with ``run(request) -> AgentResult``."""


def _default_agent(model: ChatModel, tools: Sequence[Tool], budget: Budget) -> Any:
    from knowbase.agents.router import RouterAgent

    return RouterAgent(model, tools, max_tokens=budget.max_tokens, max_seconds=budget.max_seconds)


@dataclass(frozen=True)
class Route:
    """The routing decision for one request.

    Attributes:
        plugin: the chosen plugin's name, or None for "none of these" (or an unclear reply).
        index: the chosen option (0-based; ``len(plugins)`` is "none"), or None when unclear.
        raw: the model's reply.
        step: the ``choose`` step (usage, retries).
    """

    plugin: str | None
    index: int | None
    raw: str
    step: AgentStep


class PluginRouter:
    """Route each request to one plugin by multiple choice, then let a sub-agent use its tools.

    Args:
        model: the chat model.
        plugins: 1 to 25 plugins (the last letter is "none of these").
        agent: builds the sub-agent from ``(model, tools, budget)``; default a
            :class:`~knowbase.agents.router.RouterAgent` over the plugin's tools.
        constrained: constrain the letter by grammar where the backend can.
        fallback: the answer when no plugin fits; default names what the plugins do.
        max_retries: unclear replies sent back before giving up.
        max_tokens, max_seconds: budget of the whole run (the sub-agent gets what is left).
        template: the prompt template of the question (``{request}``, ``{options}``); default
            ``agent_plugin_router.txt``, which tells the model when to choose "none of these".
        on_step: called with each step (the router's and the sub-agent's).
        tracer: a trace store; default the model's.
    """

    def __init__(self, model: ChatModel, plugins: Sequence[Plugin], *, agent: SubAgent | None = None,
                 constrained: bool = True, fallback: str | None = None, max_retries: int = 1,
                 max_tokens: int | None = None, max_seconds: float | None = None, template: str = "agent_plugin_router",
                 on_step: StepCallback | None = None, tracer: Any = None) -> None:
        if not 1 <= len(plugins) <= 25:
            raise ValueError(f"a plugin router needs 1 to 25 plugins, not {len(plugins)}")
        names = [p.name for p in plugins]
        if len(set(names)) != len(names):
            raise ValueError(f"plugin names must differ: {names}")
        self.model = model
        self.plugins = list(plugins)
        self.agent = agent or _default_agent
        self.constrained = constrained
        self.fallback = fallback
        self.max_retries = max_retries
        self.template = template
        self.budget = Budget(max_steps=None, max_tokens=max_tokens, max_seconds=max_seconds)
        self.on_step = on_step
        self.tracer = tracer

    @property
    def option_names(self) -> list[str]:
        """Plugin names in letter order, then ``none of these``."""
        return [*(p.name for p in self.plugins), NONE_OPTION]

    def question(self, request: str) -> str:
        """The multiple-choice prompt (:attr:`template`) with one line per plugin."""
        letters = choice_letters(len(self.option_names))
        lines = [f"{letters[i]}) {p.name}: {p.description}" for i, p in enumerate(self.plugins)]
        lines.append(f"{letters[-1]}) {NONE_OPTION}")
        return render(self.template, request=request, options="\n".join(lines))

    def fallback_answer(self) -> str:
        """The polite answer when no plugin fits."""
        if self.fallback is not None:
            return self.fallback
        caps = "; ".join(p.description.rstrip(".") for p in self.plugins)
        return render("agent_router_fallback", capabilities=caps)

    def route(self, request: str) -> Route:
        """Only the routing decision (one model call, plus retries on unclear replies).

        Raises:
            KnowbaseError: the model call failed.
        """
        with agent_run("plugin_router", self.model, self.budget, None, tracer=self.tracer,
                       request=request[:500]) as run:
            return self._choose(run, request)

    def _choose(self, run: Run, request: str) -> Route:
        names = self.option_names
        n = len(names)
        with span("choose", kind="agent") as sp:
            step = AgentStep(run.next_index(), "choose")
            opts = self.model.options(max_tokens=8, temperature=0.0)
            if self.constrained:
                opts = opts.merged(grammar=choice_grammar(n))
            messages = [Message.user(self.question(request))]
            while True:
                reply = self.model.chat(messages, options=opts)
                step.usage = step.usage + run.meter.add(reply)
                step.raw = reply.text
                picked = parse_choice(reply.text, n, names=names)
                if picked is not None or step.retries >= self.max_retries or run.meter.exceeded():
                    break
                step.retries += 1
                run.meter.retries += 1
                messages = [*messages, Message.assistant(reply.text), Message.user(
                    render("agent_parse_error", error=f"reply with one letter from {', '.join(choice_letters(n))}"))]
            step.thought = reply.text.strip()
            step.action = None if picked is None else names[picked]
            sp.set(choice=step.action, retries=step.retries)
        plugin = None if picked is None or picked == n - 1 else names[picked]
        return Route(plugin, picked, reply.text, step)

    def run(self, request: str, *, on_step: StepCallback | None = None) -> AgentResult:
        """Route ``request`` and answer it through the chosen plugin; never raises for bad
        output, budgets or tool failures.

        Returns:
            an :class:`AgentResult`: the ``choose`` step then the sub-agent's steps; status
            ``no_tool`` (fallback answer) when no plugin fits, ``parse_error`` when the
            choice stayed unclear, else the sub-agent's status.
        """
        callback = on_step or self.on_step
        with agent_run("plugin_router", self.model, self.budget, callback, tracer=self.tracer,
                       request=request[:500]) as run:
            try:
                route = self._choose(run, request)
            except KnowbaseError as exc:
                run.record(AgentStep(run.next_index(), "error", observation=f"model call failed: {exc}", ok=False))
                return run.result(None, "error", f"model call failed: {exc}")
            run.record(route.step)
            if route.index is None:
                return run.result(self.fallback_answer(), "parse_error",
                                  f"could not tell which plugin the model chose from {route.raw.strip()[:80]!r}")
            if route.plugin is None:
                return run.result(self.fallback_answer(), "no_tool", "no plugin fits the request")
            plugin = self.plugins[route.index]
            left = Budget(max_steps=None,
                          max_tokens=None if self.budget.max_tokens is None
                          else max(1, self.budget.max_tokens - run.meter.usage.total_tokens),
                          max_seconds=None if self.budget.max_seconds is None
                          else max(0.1, self.budget.max_seconds - run.meter.elapsed))
            sub = self.agent(self.model, plugin.tools, left).run(request)
            for step in sub.steps:
                step.index = run.next_index()
                run.record(step)
            run.meter.usage = run.meter.usage + sub.usage
            run.meter.retries += sub.retries
            return run.result(sub.answer, sub.status, f"{plugin.name}: {sub.message}")
