"""Prompt templates with named slots: ``PromptTemplate`` and ``ChatPromptTemplate``.

Slots are ``{name}`` where ``name`` is a Python identifier; ``{{`` and ``}}`` are literal
braces. Nothing else may appear between braces (no ``{a.b}``, ``{a[0]}``, ``{0}``,
``{a!r}`` or format specs), so rendering is plain string substitution and can never
reach an attribute of a value or run code. The template is parsed once, when it is
built; a malformed template, a missing value or an unknown name is a
:class:`~knowbase.errors.TemplateError` that names the slot, not a ``KeyError`` deep in
a chain.

Example::

    >>> t = PromptTemplate("Translate {text} into {language}. Use {{braces}} freely.")
    >>> t.variables
    ('text', 'language')
    >>> t.partial(language="French").format(text="cheese")
    'Translate cheese into French. Use {braces} freely.'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knowbase.errors import TemplateError
from knowbase.models.base import Message

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Segment = tuple[bool, str]
"""``(is_slot, text)``: a literal piece of text or the name of a slot."""


def parse_template(text: str, *, name: str | None = None) -> tuple[Segment, ...]:
    """Split a template into literal and slot segments.

    Raises:
        TemplateError: an unmatched brace or a slot that is not an identifier
            (``position`` holds the character offset).
    """
    segments: list[Segment] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[pos:match.start()])
        pos = match.end()
        token = match.group(0)
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif token in ("{", "}"):
            raise TemplateError(f"unmatched {token!r} at offset {match.start()} in template {name or ''}".rstrip()
                                + " (write {{ or }} for a literal brace)", name=name, position=match.start())
        else:
            slot = match.group(1).strip()
            if not _IDENT.match(slot):
                raise TemplateError(f"bad slot {{{match.group(1)}}} at offset {match.start()}: slots are "
                                    f"{{name}} with a plain identifier (write {{{{ }}}} for literal braces)",
                                    name=name, position=match.start())
            if literal:
                segments.append((False, "".join(literal)))
                literal = []
            segments.append((True, slot))
    literal.append(text[pos:])
    tail = "".join(literal)
    if tail:
        segments.append((False, tail))
    return tuple(segments)


class PromptTemplate:
    """A text template with named ``{slots}``.

    Args:
        template: the text, e.g. ``"Answer {question} briefly."``.
        input_variables: if given, the slots the template must have; a mismatch raises
            TemplateError when the template is built.
        partial_variables: values fixed now (the rest are given when formatting).
        name: a label for errors and traces (the file name for loaded templates).

    Attributes:
        variables: names still to be filled, in order of first appearance.
        slots: every slot name in the template, partials included.

    Raises:
        TemplateError: malformed template, unknown partial name, or ``input_variables``
            that do not match the slots.
    """

    __slots__ = ("template", "name", "_segments", "slots", "_partials", "variables")

    def __init__(self, template: str, *, input_variables: Sequence[str] | None = None,
                 partial_variables: Mapping[str, Any] | None = None, name: str | None = None) -> None:
        if not isinstance(template, str):
            raise TemplateError(f"template must be a string, not {type(template).__name__}", name=name)
        self.template = template
        self.name = name
        self._segments = parse_template(template, name=name)
        self.slots: tuple[str, ...] = tuple(dict.fromkeys(s for is_slot, s in self._segments if is_slot))
        partials = dict(partial_variables or {})
        unknown = sorted(set(partials) - set(self.slots))
        if unknown:
            raise TemplateError(f"unknown slot(s) {', '.join(unknown)} for template {self._label()}; "
                                f"its slots are: {', '.join(self.slots) or '(none)'}", name=name, unknown=unknown)
        self._partials = {k: str(v) for k, v in partials.items()}
        self.variables: tuple[str, ...] = tuple(s for s in self.slots if s not in self._partials)
        if input_variables is not None and set(input_variables) != set(self.variables):
            missing = sorted(set(input_variables) - set(self.variables))
            extra = sorted(set(self.variables) - set(input_variables))
            raise TemplateError(f"template {self._label()} declares {sorted(input_variables)} but has slots "
                                f"{list(self.variables)}" + (f"; not in the text: {missing}" if missing else "")
                                + (f"; undeclared: {extra}" if extra else ""), name=name, missing=missing,
                                unknown=extra)

    def _label(self) -> str:
        return repr(self.name) if self.name else repr(self.template[:40] + ("..." if len(self.template) > 40 else ""))

    def __repr__(self) -> str:
        return f"PromptTemplate({self._label()}, variables={list(self.variables)})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PromptTemplate) and other.template == self.template
                and other._partials == self._partials)

    def __hash__(self) -> int:
        return hash((self.template, tuple(sorted(self._partials.items()))))

    def partial(self, **values: Any) -> PromptTemplate:
        """A copy with some slots fixed; an unknown name raises TemplateError now."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TemplateError(f"unknown slot(s) {', '.join(unknown)} for template {self._label()}; "
                                f"open slots: {', '.join(self.variables) or '(none)'}", name=self.name,
                                unknown=unknown)
        return PromptTemplate(self.template, partial_variables={**self._partials, **values}, name=self.name)

    def format(self, **values: Any) -> str:
        """Fill every open slot; unknown names and missing values raise TemplateError."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TemplateError(f"unknown slot(s) {', '.join(unknown)} for template {self._label()}; "
                                f"open slots: {', '.join(self.variables) or '(none)'}", name=self.name,
                                unknown=unknown)
        return self.render(values)

    def render(self, inputs: Mapping[str, Any]) -> str:
        """Fill the slots from ``inputs``, ignoring keys the template does not use.

        This is what chains call: their input dict usually carries more keys than one
        template needs. Values are inserted with ``str(value)``.

        Raises:
            TemplateError: a slot has no value (``missing`` lists them).
        """
        partials = self._partials
        out: list[str] = []
        for is_slot, text in self._segments:
            if not is_slot:
                out.append(text)
            elif text in partials:
                out.append(partials[text])
            else:
                try:
                    value = inputs[text]
                except KeyError:
                    missing = [v for v in self.variables if v not in inputs]
                    raise TemplateError(f"no value for slot(s) {', '.join(missing)} of template {self._label()}",
                                        name=self.name, missing=missing) from None
                out.append(value if isinstance(value, str) else str(value))
        return "".join(out)

    def to_messages(self, inputs: Mapping[str, Any]) -> list[Message]:
        """The rendered text as one user message."""
        return [Message.user(self.render(inputs))]

    def __add__(self, other: PromptTemplate | str) -> PromptTemplate:
        """Concatenate two templates (partials are kept)."""
        if isinstance(other, str):
            other = PromptTemplate(other)
        if not isinstance(other, PromptTemplate):
            return NotImplemented
        return PromptTemplate(self.template + other.template,
                              partial_variables={**self._partials, **other._partials}, name=self.name)


@dataclass(frozen=True, slots=True)
class MessagesPlaceholder:
    """A slot in a :class:`ChatPromptTemplate` filled with a list of messages (chat history).

    Args:
        variable: the input key holding ``list[Message]`` (or OpenAI-style dicts).
        optional: when True a missing key inserts nothing.
    """

    variable: str
    optional: bool = False


_ROLES = ("system", "user", "assistant")
MessageSpec = tuple[str, "str | PromptTemplate"] | MessagesPlaceholder | Message


class ChatPromptTemplate:
    """A list of message templates: ``(role, template)`` pairs, fixed messages and placeholders.

    Example::

        chat = ChatPromptTemplate([
            ("system", "You answer in {language}."),
            MessagesPlaceholder("history", optional=True),
            ("user", "{question}"),
        ])
        chat.variables                # ('language', 'history', 'question')
        chat.to_messages({"language": "French", "question": "Hi?"})

    Args:
        messages: ``(role, text_or_template)`` with role ``system``/``user``/``assistant``,
            a :class:`Message` used as is, or a :class:`MessagesPlaceholder`.
        name: a label for errors.

    Raises:
        TemplateError: an unknown role or a malformed message template.
    """

    def __init__(self, messages: Iterable[MessageSpec], *, name: str | None = None) -> None:
        self.name = name
        self.parts: list[tuple[str, PromptTemplate] | MessagesPlaceholder | Message] = []
        for item in messages:
            if isinstance(item, (MessagesPlaceholder, Message)):
                self.parts.append(item)
                continue
            try:
                role, text = item
            except (TypeError, ValueError):
                raise TemplateError(f"chat template part must be (role, text), a Message or a MessagesPlaceholder, "
                                    f"not {item!r}", name=name) from None
            role = {"human": "user", "ai": "assistant"}.get(role, role)
            if role not in _ROLES:
                raise TemplateError(f"unknown role {role!r} in chat template (use one of {', '.join(_ROLES)})",
                                    name=name)
            self.parts.append((role, text if isinstance(text, PromptTemplate) else PromptTemplate(text, name=name)))
        names: list[str] = []
        for part in self.parts:
            if isinstance(part, MessagesPlaceholder):
                names.append(part.variable)
            elif isinstance(part, tuple):
                names.extend(part[1].variables)
        self.variables: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.required: tuple[str, ...] = tuple(
            v for v in self.variables
            if not any(isinstance(p, MessagesPlaceholder) and p.variable == v and p.optional for p in self.parts))

    def __repr__(self) -> str:
        return f"ChatPromptTemplate({len(self.parts)} parts, variables={list(self.variables)})"

    @classmethod
    def from_messages(cls, messages: Iterable[MessageSpec], *, name: str | None = None) -> ChatPromptTemplate:
        return cls(messages, name=name)

    def partial(self, **values: Any) -> ChatPromptTemplate:
        """A copy with some slots of the text templates fixed; unknown names raise now."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TemplateError(f"unknown slot(s) {', '.join(unknown)} for chat template; open slots: "
                                f"{', '.join(self.variables)}", name=self.name, unknown=unknown)
        parts: list[MessageSpec] = []
        for part in self.parts:
            if isinstance(part, tuple):
                mine = {k: v for k, v in values.items() if k in part[1].variables}
                parts.append((part[0], part[1].partial(**mine) if mine else part[1]))
            else:
                parts.append(part)
        return ChatPromptTemplate(parts, name=self.name)

    def to_messages(self, inputs: Mapping[str, Any]) -> list[Message]:
        """Render every part; returns the messages in order.

        Raises:
            TemplateError: a slot or a required placeholder has no value.
        """
        from knowbase.models.base import to_messages

        out: list[Message] = []
        for part in self.parts:
            if isinstance(part, Message):
                out.append(part)
            elif isinstance(part, MessagesPlaceholder):
                value = inputs.get(part.variable)
                if value is None:
                    if part.optional:
                        continue
                    raise TemplateError(f"no value for messages placeholder {part.variable!r}", name=self.name,
                                        missing=[part.variable])
                out.extend(to_messages(value))
            else:
                out.append(Message(part[0], part[1].render(inputs)))  # type: ignore[arg-type]
        return out

    def format_messages(self, **values: Any) -> list[Message]:
        """Like :meth:`to_messages` but strict: unknown names raise TemplateError."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TemplateError(f"unknown slot(s) {', '.join(unknown)} for chat template", name=self.name,
                                unknown=unknown)
        return self.to_messages(values)


def as_prompt(prompt: str | PromptTemplate | ChatPromptTemplate | Any) -> Any:
    """A string becomes a :class:`PromptTemplate`; templates pass through."""
    return PromptTemplate(prompt) if isinstance(prompt, str) else prompt
