"""A conversation that remembers: a chat model, a memory type and a session id.

Example::

    session = ConversationSession("planning", memory_type="summary_buffer", model="fake")
    session.chat("My name is Ada.").text
    # later, even in another process:
    ConversationSession("planning", memory_type="summary_buffer").chat("What is my name?")
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from knowbase.memory.store import MemoryStore, Turn
from knowbase.memory.types import Memory, make_memory
from knowbase.models.base import ChatResult, Message
from knowbase.tracing.context import span

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings
    from knowbase.models.base import ChatModel


class ConversationSession:
    """Chat with memory persisted in ``settings.home / "memory.db"``.

    Args:
        session_id: the conversation id (1-200 printable characters).
        memory_type: ``buffer`` (default), ``summary``, ``summary_buffer`` or ``entity``.
        model: a :class:`ChatModel`, a model string, or None for the configured model.
        settings: default :meth:`Settings.load`.
        system: a system prompt put first in every call.
        store: a :class:`MemoryStore` (default the one in the user directory).
        **memory_params: passed to the memory (``k=``, ``max_tokens=``...).

    Attributes:
        memory: the :class:`~knowbase.memory.types.Memory` in use.
        last_result: the :class:`ChatResult` of the latest call (set after a stream ends).

    Raises:
        ConfigError: unknown memory type.  UserError: bad session id.
    """

    def __init__(self, session_id: str, *, memory_type: str = "buffer", model: ChatModel | str | None = None,
                 settings: Settings | None = None, system: str | None = None, store: MemoryStore | None = None,
                 **memory_params: Any) -> None:
        from knowbase.config import Settings

        self.settings = settings or Settings.load()
        if model is None or isinstance(model, str):
            from knowbase.models.registry import get_chat_model

            model = get_chat_model(model, settings=self.settings)
        self.model: ChatModel = model
        self.store = store or MemoryStore(self.settings.home / "memory.db")
        self.session_id = session_id
        self.system = system
        self.memory: Memory = make_memory(memory_type, model=model, store=self.store, session_id=session_id,
                                          **memory_params)
        self.memory_type = getattr(self.memory, "memory_type", memory_type)
        self.store.ensure_session(session_id, self.memory_type)
        self.last_result: ChatResult | None = None

    def __repr__(self) -> str:
        return f"ConversationSession({self.session_id!r}, memory_type={self.memory_type!r}, model={self.model.spec!r})"

    def messages(self, user_text: str) -> list[Message]:
        """What would be sent for ``user_text``: system prompt, memory context, the message."""
        head = [Message.system(self.system)] if self.system else []
        return [*head, *self.memory.load(user_text), Message.user(user_text)]

    def chat(self, user_text: str, **options: Any) -> ChatResult:
        """Send ``user_text`` with the remembered context; the turn is saved afterwards.

        Args:
            **options: chat options (``max_tokens=``, ``temperature=``...).
        """
        with span("conversation", kind="chat", store=self.model.tracer, session_id=self.session_id,
                  memory_type=self.memory_type):
            result = self.model.chat(self.messages(user_text), **options)
            self.memory.save(user_text, result.text)
        self.last_result = result
        return result

    def stream(self, user_text: str, **options: Any) -> Iterator[str]:
        """Like :meth:`chat`, yielding text deltas; the turn is saved when the stream ends
        (an abandoned stream saves nothing) and :attr:`last_result` is set."""
        with span("conversation", kind="chat", store=self.model.tracer, session_id=self.session_id,
                  memory_type=self.memory_type):
            stream = self.model.stream(self.messages(user_text), **options)
            yield from stream
            result = stream.finish()
            self.memory.save(user_text, result.text)
        self.last_result = result

    def history(self) -> list[Turn]:
        """Every turn of this session, oldest first."""
        return self.store.turns(self.session_id)

    def delete(self) -> bool:
        """Forget this session; returns False when nothing was stored."""
        return self.store.delete(self.session_id)
