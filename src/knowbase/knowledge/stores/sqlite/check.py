"""Statistics and integrity of the SQLite store: row counts, bytes on disk, and ``check``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.knowledge.types import CheckReport


class CheckMixin:
    """``counts`` and ``check`` of a SQLite store."""

    conn: Any
    path: Path
    _apsw: Any



    if TYPE_CHECKING:  # defined by the other parts of the store
        @property
        def index_path(self) -> Path: ...
        def _has_vectors(self) -> bool: ...

    def counts(self) -> dict[str, int]:
        """Row counts: documents, chunks, fts_rows, vectors, and the bytes on disk (file, WAL
        and search index)."""
        def one(sql: str) -> int:
            return int(next(iter(self.conn.execute(sql)))[0])

        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), self.index_path) if p.exists())
        return {
            "documents": one("SELECT count(*) FROM documents"),
            "chunks": one("SELECT count(*) FROM chunks"),
            "fts_rows": one("SELECT count(*) FROM chunks_fts"),
            "vectors": one("SELECT count(*) FROM vec_chunks") if self._has_vectors() else 0,
            "bytes": size,
        }

    def check(self) -> CheckReport:
        """Integrity check: SQLite's own, then every chunk has its vector and FTS row,
        no orphans (FTS rows, vectors or chunks without their parent), no duplicate
        documents or chunk positions."""
        problems: list[str] = []
        def rows(sql: str) -> list[Any]:
            return list(self.conn.execute(sql))

        quick = rows("PRAGMA quick_check")
        if quick != [("ok",)]:
            problems.extend(f"sqlite: {r[0]}" for r in quick[:10])
        try:
            self.conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 0)")
        except self._apsw.Error as exc:
            problems.append(f"fts5 index damaged: {exc}")
        chunk_ids = {r[0] for r in rows("SELECT id FROM chunks")}
        fts_ids = {r[0] for r in rows("SELECT rowid FROM chunks_fts")}
        vec_ids = {r[0] for r in rows("SELECT chunk_id FROM vec_chunks")} if self._has_vectors() else set()
        for label, missing in (("without an FTS row", chunk_ids - fts_ids), ("without a vector", chunk_ids - vec_ids)):
            if missing:
                problems.append(f"{len(missing)} chunks {label} (e.g. chunk {min(missing)})")
        for label, extra in (("FTS rows", fts_ids - chunk_ids), ("vectors", vec_ids - chunk_ids)):
            if extra:
                problems.append(f"{len(extra)} orphan {label} (e.g. chunk {min(extra)})")
        orphans = rows("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)")[0][0]
        if orphans:
            problems.append(f"{orphans} chunks whose document is gone")
        dups = rows("SELECT path, count(*) FROM documents GROUP BY path HAVING count(*) > 1")
        problems.extend(f"duplicate document {p} ({n} rows)" for p, n in dups)
        dup_chunks = rows("SELECT doc_id, idx FROM chunks GROUP BY doc_id, idx HAVING count(*) > 1")
        problems.extend(f"duplicate chunk {i} of document {d}" for d, i in dup_chunks)
        gaps = rows("SELECT doc_id FROM chunks GROUP BY doc_id HAVING max(idx) + 1 != count(*)")
        problems.extend(f"document {d} has missing chunk positions" for (d,) in gaps)
        return CheckReport(len(rows("SELECT id FROM documents")), len(chunk_ids), len(fts_ids), len(vec_ids),
                           tuple(problems))
