"""Conversation memory persisted per session id in ``memory.db``.

* :class:`BufferWindowMemory`, :class:`SummaryMemory`, :class:`SummaryBufferMemory`,
  :class:`EntityMemory` -- one protocol (:class:`Memory`: ``load`` / ``save``);
* :class:`MemoryStore` -- the SQLite store (list, show, delete);
* :class:`ConversationSession` -- chat with memory (``knowbase chat --session ID``).
"""

from knowbase.memory.session import ConversationSession
from knowbase.memory.store import MemoryStore, SessionInfo, Turn
from knowbase.memory.types import (
    MEMORY_TYPES,
    BufferWindowMemory,
    EntityMemory,
    Memory,
    SummaryBufferMemory,
    SummaryMemory,
    make_memory,
)

__all__ = [
    "MEMORY_TYPES", "BufferWindowMemory", "ConversationSession", "EntityMemory", "Memory", "MemoryStore",
    "SessionInfo", "SummaryBufferMemory", "SummaryMemory", "Turn", "make_memory",
]
