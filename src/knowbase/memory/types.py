"""Memory types: what a conversation remembers and puts back into the prompt.

All share one small protocol, :class:`Memory`:

* ``load(user_text) -> list[Message]`` -- the context to send before the new user message;
* ``save(user_text, assistant_text)`` -- record a finished turn.

Every type stores the full turns in :class:`~knowbase.memory.store.MemoryStore` (so a
session can be shown, continued or switched to another type); they differ in what
``load`` returns:

=========================  ==================================================================
``BufferWindowMemory(k)``  the last ``k`` turns verbatim, newest first within ``max_tokens``
``SummaryMemory``          a running summary the model rewrites after every turn (at most
                           ``max_tokens``)
``SummaryBufferMemory``    the summary plus the newest turns verbatim within ``max_tokens``;
                           older turns are folded into the summary as the budget overflows
``EntityMemory``           notes per named entity (the model extracts them as structured
                           output) for the entities the new message or recent turns
                           mention, plus the last ``k`` turns, within ``context_tokens``
=========================  ==================================================================

Token budgets: every type's ``load`` returns at most :attr:`token_budget` tokens (message
contents counted with the chat model's tokenizer, or :func:`estimate_tokens` when there is
no model), whatever the stored history holds: a session written by another memory type or
with a larger budget is cut to this one when it is loaded. Turns are never split: the
newest turns that fit are kept (a summary-buffer memory folds the others into its summary
first); a summary or notes longer than their share are cut at a character boundary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field

from knowbase.errors import ConfigError, OutputParseError
from knowbase.memory.store import MemoryStore, Turn, check_session_id
from knowbase.models.base import Message
from knowbase.prompts.loader import load_template

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel


class Memory(Protocol):
    """Loads context for a new input and saves finished turns.

    ``load`` returns at most ``token_budget`` tokens of messages.
    """

    session_id: str

    @property
    def token_budget(self) -> int: ...

    def load(self, user_text: str) -> list[Message]: ...

    def save(self, user_text: str, assistant_text: str) -> None: ...


def turn_messages(turns: list[Turn]) -> list[Message]:
    """Turns as alternating user/assistant messages."""
    out: list[Message] = []
    for t in turns:
        out += [Message.user(t.user), Message.assistant(t.assistant)]
    return out


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: UTF-8 bytes / 3, plus one.

    Over-counts English (about 4 bytes a token in BPE vocabularies) and Chinese (3 bytes a
    character, about 0.7 tokens a character in Qwen's vocabulary), so a budget it admits
    fits the real count too.
    """
    return len(text.encode("utf-8")) // 3 + 1


def messages_tokens(messages: list[Message], count: Callable[[str], int]) -> int:
    """Tokens of the messages' contents by ``count``."""
    return sum(count(m.content) for m in messages)


def newest_within(turns: list[Turn], budget: int, count: Callable[[str], int]) -> list[Turn]:
    """The newest ``turns`` (oldest first) whose user and assistant texts together cost at
    most ``budget`` tokens; stops at the first turn that does not fit (turns are never split)."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        cost = count(turn.user) + count(turn.assistant)
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


def clip_to_tokens(text: str, budget: int, count: Callable[[str], int]) -> str:
    """``text`` cut at a character boundary so that it costs at most ``budget`` tokens
    (``""`` when not even one character fits); binary search, about log2(len) counts."""
    if count(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip()


def _context_message(template: str, key: str, text: str, budget: int, count: Callable[[str], int]) -> list[Message]:
    """The system message of ``template`` around ``text``, cut so the whole message fits ``budget``."""
    if not text or budget <= 0:
        return []
    frame = load_template(template).render({key: ""})
    body = clip_to_tokens(text, budget - count(frame), count) if count(frame) < budget else ""
    return [Message.system(load_template(template).render({key: body}))] if body else []


def turn_lines(turns: list[Turn]) -> str:
    """Turns as ``User: ...`` / ``Assistant: ...`` lines, for summarising."""
    return "\n".join(f"User: {t.user}\nAssistant: {t.assistant}" for t in turns)


class _Stored:
    memory_type = "buffer"
    model: ChatModel | None = None

    def __init__(self, store: MemoryStore | None, session_id: str) -> None:
        self.store = store if store is not None else MemoryStore(None)
        self.session_id = check_session_id(session_id)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``: the chat model's tokenizer, else :func:`estimate_tokens`."""
        return self.model.count_tokens(text) if self.model is not None else estimate_tokens(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(session_id={self.session_id!r})"

    def turns(self) -> list[Turn]:
        """Every stored turn of this session, oldest first."""
        return self.store.turns(self.session_id)

    def clear(self) -> None:
        """Forget the session (turns, summary and notes)."""
        self.store.delete(self.session_id)


class BufferWindowMemory(_Stored):
    """The last ``k`` turns, verbatim, newest first within ``max_tokens``.

    Args:
        k: turns kept in the prompt at most (each turn is a user and an assistant message).
        max_tokens: token budget of the turns loaded (older turns that do not fit are left out).
        model: the chat model whose tokenizer counts tokens (default: :func:`estimate_tokens`).
        store: where turns persist (default: in memory, this process only).
        session_id: the conversation.
    """

    memory_type = "buffer"

    def __init__(self, k: int = 5, *, max_tokens: int = 1000, model: ChatModel | None = None,
                 store: MemoryStore | None = None, session_id: str = "default") -> None:
        super().__init__(store, session_id)
        self.k = k
        self.max_tokens = max_tokens
        self.model = model

    @property
    def token_budget(self) -> int:
        return self.max_tokens

    def load(self, user_text: str) -> list[Message]:
        turns = self.store.turns(self.session_id, last=self.k)
        return turn_messages(newest_within(turns, self.max_tokens, self.count_tokens))

    def save(self, user_text: str, assistant_text: str) -> None:
        self.store.add_turn(self.session_id, user_text, assistant_text, memory_type=self.memory_type)


def _summarise(model: ChatModel, summary: str, new_lines: str, max_tokens: int) -> str:
    prompt = load_template("memory_summary").render({"summary": summary or "(empty)", "new_lines": new_lines})
    return model.chat(prompt, max_tokens=max_tokens, temperature=0.0).text.strip()


class SummaryMemory(_Stored):
    """A running summary, rewritten by the model after every turn.

    Args:
        model: the chat model that writes the summary.
        max_tokens: longest summary the model may write, in tokens.
        store, session_id: as for :class:`BufferWindowMemory`.
    """

    memory_type = "summary"
    model: ChatModel

    def __init__(self, model: ChatModel, *, max_tokens: int = 256, store: MemoryStore | None = None,
                 session_id: str = "default") -> None:
        super().__init__(store, session_id)
        self.model = model
        self.max_tokens = max_tokens

    @property
    def summary(self) -> str:
        return self.store.summary(self.session_id)[0]

    @property
    def token_budget(self) -> int:
        return self.max_tokens

    def load(self, user_text: str) -> list[Message]:
        return _context_message("memory_summary_context", "summary", self.summary, self.max_tokens,
                                self.count_tokens)

    def save(self, user_text: str, assistant_text: str) -> None:
        summary, folded = self.store.summary(self.session_id)
        new = _summarise(self.model, summary, turn_lines([Turn(0, user_text, assistant_text)]), self.max_tokens)
        self.store.add_turn(self.session_id, user_text, assistant_text, memory_type=self.memory_type,
                            summary=new, folded=folded + 1)


class SummaryBufferMemory(_Stored):
    """The newest turns verbatim within ``max_tokens``; older ones folded into a summary.

    After each turn, while the unfolded turns together exceed ``max_tokens`` (counted with
    ``model.count_tokens``), the oldest of them are folded into the summary by one model
    call. Turns are never split.

    Args:
        model: the chat model (writes the summary, counts tokens).
        max_tokens: budget for the verbatim turns, in tokens.
        summary_tokens: longest summary the model may write, in tokens.
        store, session_id: as for :class:`BufferWindowMemory`.
    """

    memory_type = "summary_buffer"
    model: ChatModel

    def __init__(self, model: ChatModel, max_tokens: int = 1000, *, summary_tokens: int = 256,
                 store: MemoryStore | None = None, session_id: str = "default") -> None:
        super().__init__(store, session_id)
        self.model = model
        self.max_tokens = max_tokens
        self.summary_tokens = summary_tokens

    def _cost(self, turn: Turn) -> int:
        return self.model.count_tokens(turn.user) + self.model.count_tokens(turn.assistant)

    @property
    def token_budget(self) -> int:
        return self.max_tokens + self.summary_tokens

    def _fold(self, summary: str, turns: list[Turn]) -> str:
        """``summary`` updated with ``turns``, in batches of at most ``max_tokens`` of turn text
        per model call (a longer single turn is cut), so no call outgrows the budget."""
        batch: list[Turn] = []
        used = 0

        def flush(current: str) -> str:
            return _summarise(self.model, current, turn_lines(batch), self.summary_tokens) if batch else current

        for turn in turns:
            half = max(1, self.max_tokens // 2)
            user = clip_to_tokens(turn.user, half, self.count_tokens)
            assistant = clip_to_tokens(turn.assistant, half, self.count_tokens)
            cost = self.count_tokens(user) + self.count_tokens(assistant)
            if batch and used + cost > self.max_tokens:
                summary = flush(summary)
                batch, used = [], 0
            batch.append(Turn(turn.n, user, assistant))
            used += cost
        return flush(summary)

    def load(self, user_text: str) -> list[Message]:
        """The summary and the unfolded turns; turns beyond ``max_tokens`` (a history stored
        by another memory type, or with a larger budget) are folded into the summary first,
        by one model call, and the fold is saved."""
        summary, folded = self.store.summary(self.session_id)
        pending = self.store.turns(self.session_id, after=folded)
        kept = newest_within(pending, self.max_tokens, self.count_tokens)
        overflow = pending[:len(pending) - len(kept)]
        if overflow:
            summary = self._fold(summary, overflow)
            folded = overflow[-1].n
            self.store.set_summary(self.session_id, summary, folded)
        return (_context_message("memory_summary_context", "summary", summary, self.summary_tokens,
                                 self.count_tokens) + turn_messages(kept))

    def save(self, user_text: str, assistant_text: str) -> None:
        summary, folded = self.store.summary(self.session_id)
        pending = [*self.store.turns(self.session_id, after=folded), Turn(-1, user_text, assistant_text)]
        total = sum(self._cost(t) for t in pending)
        to_fold: list[Turn] = []
        while pending and total > self.max_tokens:
            oldest = pending.pop(0)
            total -= self._cost(oldest)
            to_fold.append(oldest)
        if not to_fold:
            self.store.add_turn(self.session_id, user_text, assistant_text, memory_type=self.memory_type)
            return
        new_summary = self._fold(summary, to_fold)
        self.store.add_turn(self.session_id, user_text, assistant_text, memory_type=self.memory_type,
                            summary=new_summary, folded=folded + len(to_fold))


class EntityFacts(BaseModel):
    """One named entity and what a turn says about it."""

    name: str = Field(description="the entity's name as written")
    facts: list[str] = Field(default_factory=list, description="short facts stated about it")


class ExtractedEntities(BaseModel):
    """The structured output the model fills for each turn."""

    entities: list[EntityFacts] = Field(default_factory=list)


class EntityMemory(_Stored):
    """Per-entity notes extracted by the model, put back when an entity comes up again.

    After each turn the model lists the named entities in it and the facts stated about
    them (structured output into :class:`ExtractedEntities`); new facts are appended to
    each entity's notes (duplicates ignored, at most ``max_facts`` kept, newest last).
    ``load`` returns a system message with the notes of every entity named in the new
    message or in the last ``k`` turns, followed by those turns verbatim.

    If extraction fails (the model's reply does not validate), the turn is still saved
    and the notes are left as they were.

    Args:
        model: the chat model that extracts entities.
        k: recent turns kept verbatim and scanned for entity names.
        max_facts: facts kept per entity.
        max_tokens: longest extraction reply the model may write, in tokens.
        context_tokens: token budget of what ``load`` returns: the newest of the ``k`` turns
            that fit in half of it, then the notes in the rest, cut to fit.
        store, session_id: as for :class:`BufferWindowMemory`.
    """

    memory_type = "entity"
    model: ChatModel

    def __init__(self, model: ChatModel, *, k: int = 3, max_facts: int = 20, max_tokens: int = 256,
                 context_tokens: int = 1000, store: MemoryStore | None = None, session_id: str = "default") -> None:
        super().__init__(store, session_id)
        self.model = model
        self.k = k
        self.max_facts = max_facts
        self.max_tokens = max_tokens
        self.context_tokens = context_tokens
        self.last_error: OutputParseError | None = None

    @property
    def token_budget(self) -> int:
        return self.context_tokens

    @property
    def entities(self) -> dict[str, list[str]]:
        return self.store.entities(self.session_id)

    def extract(self, user_text: str, assistant_text: str) -> ExtractedEntities:
        """Ask the model for the entities of one turn."""
        from knowbase.output.structured import structured

        prompt = load_template("memory_entities").render({"turn": turn_lines([Turn(0, user_text, assistant_text)])})
        return structured(self.model, prompt, ExtractedEntities, max_attempts=2, max_tokens=self.max_tokens,
                          temperature=0.0)

    def load(self, user_text: str) -> list[Message]:
        recent = self.store.turns(self.session_id, last=self.k)
        haystack = " ".join([user_text, *(t.user + " " + t.assistant for t in recent)]).lower()
        notes = [f"- {name}: " + "; ".join(facts) for name, facts in self.entities.items()
                 if facts and re.search(r"(?<!\w)" + re.escape(name.lower()) + r"(?!\w)", haystack)]
        turns = newest_within(recent, self.context_tokens // 2, self.count_tokens)
        room = self.context_tokens - messages_tokens(turn_messages(turns), self.count_tokens)
        head = _context_message("memory_entities_context", "notes", "\n".join(notes), room, self.count_tokens)
        return head + turn_messages(turns)

    def save(self, user_text: str, assistant_text: str) -> None:
        updates: dict[str, list[str]] = {}
        try:
            found = self.extract(user_text, assistant_text)
            self.last_error = None
        except OutputParseError as exc:
            self.last_error = exc
            found = ExtractedEntities()
        known = self.entities
        by_key = {name.lower(): name for name in known}
        for entity in found.entities:
            name = entity.name.strip()
            if not name:
                continue
            canonical = by_key.get(name.lower(), name)
            facts = updates.get(canonical) or list(known.get(canonical, []))
            seen = {f.lower() for f in facts}
            for fact in entity.facts:
                fact = fact.strip()
                if fact and fact.lower() not in seen:
                    facts.append(fact)
                    seen.add(fact.lower())
            updates[canonical] = facts[-self.max_facts:]
            by_key[name.lower()] = canonical
        self.store.add_turn(self.session_id, user_text, assistant_text, memory_type=self.memory_type,
                            entities=updates)


MEMORY_TYPES = ("buffer", "summary", "summary_buffer", "entity")


def make_memory(memory_type: str, *, model: ChatModel | None, store: MemoryStore | None, session_id: str,
                **params: Any) -> Memory:
    """Build a memory by name: ``buffer``, ``summary``, ``summary_buffer`` (or
    ``summary-buffer``) or ``entity``; ``params`` go to its constructor (``k=``, ``max_tokens=``).

    Raises:
        ConfigError: unknown memory type, or one that needs a model and got none.
    """
    kind = memory_type.strip().lower().replace("-", "_")
    if kind in ("buffer", "window", "buffer_window"):
        return BufferWindowMemory(model=model, store=store, session_id=session_id, **params)
    if kind not in MEMORY_TYPES:
        raise ConfigError(f"unknown memory type {memory_type!r}; use one of {', '.join(MEMORY_TYPES)}",
                          memory_type=memory_type)
    if model is None:
        raise ConfigError(f"memory type {kind!r} needs a chat model", memory_type=memory_type)
    cls = {"summary": SummaryMemory, "summary_buffer": SummaryBufferMemory, "entity": EntityMemory}[kind]
    return cls(model, store=store, session_id=session_id, **params)
