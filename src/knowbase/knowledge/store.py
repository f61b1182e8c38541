"""The former home of the SQLite store, kept so older imports keep working.

The store is now a backend behind the :class:`~knowbase.knowledge.stores.base.ChunkStore`
protocol: :mod:`knowbase.knowledge.stores.sqlite` (schema, documents, search, index cache,
check). ``KBStore`` is :class:`~knowbase.knowledge.stores.sqlite.SQLiteStore`.
"""

from knowbase.knowledge.bm25 import TOKENIZER_VERSION
from knowbase.knowledge.stores.sqlite import MIGRATIONS, SQLiteStore, norm_hash, normalise
from knowbase.knowledge.stores.sqlite.schema import PAGE_SIZE
from knowbase.knowledge.types import CheckReport, DocumentRow

KBStore = SQLiteStore

__all__ = ["MIGRATIONS", "PAGE_SIZE", "TOKENIZER_VERSION", "CheckReport", "DocumentRow", "KBStore", "norm_hash",
           "normalise"]
