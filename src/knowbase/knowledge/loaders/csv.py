"""CSV/TSV loader: each row becomes one record line ``header: value; header: value``.

The dialect (delimiter, quoting) is sniffed from the first 64 KB (stdlib
:class:`csv.Sniffer`), falling back to tab for ``.tsv`` and comma otherwise. The first
non-empty row is the header. Each data row is a section whose path is ``("row N",)``,
N counted as a spreadsheet does (the header is row 1), so a citation names its row.
Empty values are left out of the record.

A bad row (more fields than the header, an unterminated quote, a field over the csv
module's size limit) is skipped and recorded in ``metadata["warnings"]``; the other rows
still load. Rows with fewer fields than the header are kept (missing values are empty).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders._text import read_text
from knowbase.knowledge.types import Document

__all__ = ["CSVLoader", "csv_to_document"]

_MAX_WARNINGS = 100


def _dialect(sample: str, default_delimiter: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        class _Default(csv.excel):
            delimiter = default_delimiter
        return _Default


def csv_to_document(source: str, *, path: str = "", encoding: str = "utf-8", default_title: str = "",
                    default_delimiter: str = ",") -> Document:
    """Convert CSV text to a :class:`Document` of one record per row.

    Args:
        source: the CSV text.
        path: the document path to record.
        encoding: recorded in ``metadata["encoding"]``.
        default_title: the title (CSV has none of its own).
        default_delimiter: used when the dialect cannot be sniffed.

    Returns:
        A document whose metadata has ``format`` (``csv``), ``encoding``, ``columns``
        (the header), ``rows`` (records kept), ``delimiter`` and ``warnings`` (skipped
        rows, at most 100 listed plus a count).

    Example:
        >>> doc = csv_to_document("name,age\\nAda,36\\n")
        >>> doc.text, doc.sections[0].path
        ('name: Ada; age: 36', ('row 2',))
    """
    source = source.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    dialect = _dialect(source[:65536], default_delimiter)
    reader = csv.reader(io.StringIO(source, newline=""), dialect)
    builder = TextBuilder()
    header: list[str] | None = None
    warnings: list[str] = []
    skipped = 0
    kept = 0
    row_number = 0
    while True:
        row_number += 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            skipped += 1
            if len(warnings) < _MAX_WARNINGS:
                warnings.append(f"row {row_number}: skipped ({exc})")
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [" ".join(cell.split()) or f"column {i + 1}" for i, cell in enumerate(row)]
            continue
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header):]):
            skipped += 1
            if len(warnings) < _MAX_WARNINGS:
                warnings.append(f"row {row_number}: skipped ({len(row)} fields, header has {len(header)})")
            continue
        record = "; ".join(f"{name}: {' '.join(value.split())}"
                           for name, value in zip(header, row) if value.strip())
        builder.begin_section((f"row {row_number}",))
        builder.line(record)
        kept += 1
    if skipped > len(warnings):
        warnings.append(f"{skipped - len(warnings)} more bad rows skipped")
    text, sections, _ = builder.build()
    meta: dict[str, object] = {"format": "csv", "encoding": encoding, "columns": header or [],
                               "rows": kept, "delimiter": getattr(dialect, "delimiter", default_delimiter)}
    if warnings:
        meta["warnings"] = warnings
    return Document(path=path, text=text, title=default_title, metadata=meta, sections=sections)


class CSVLoader:
    """Loads ``.csv`` and ``.tsv`` files (see the module docstring)."""

    extensions: tuple[str, ...] = (".csv", ".tsv")

    def load(self, path: Path) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors."""
        raw, encoding = read_text(path)
        return csv_to_document(raw, path=str(path), encoding=encoding, default_title=path.stem,
                               default_delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
