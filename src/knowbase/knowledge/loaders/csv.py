"""CSV/TSV loader: each row becomes one record line ``header: value; header: value``.

The dialect (delimiter, quoting) is sniffed from the first 4 KB, at most 50 lines
(stdlib :class:`csv.Sniffer`, whose quote-finding regular expression is quadratic in the
sample: 24 KB of ``,"a`` took 14 s), falling back to tab for ``.tsv`` and comma otherwise. The first
non-empty row is the header. Each data row is a section whose path is ``("row N",)``,
N counted as a spreadsheet does (the header is row 1), so a citation names its row.
Empty values are left out of the record.

A bad row (more fields than the header, an unterminated quote, a field over
``csv_max_field_chars`` or the csv module's own limit, :func:`csv.field_size_limit`,
whichever is smaller) is skipped and recorded in ``metadata["warnings"]``; the other rows
still load. Rows with fewer fields than the header are kept (missing values are empty).
A file with more records than ``csv_max_rows`` or a header wider than
``csv_max_columns`` (:class:`~knowbase.safety.files.FileLimits`) is refused.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders._text import read_text
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document
from knowbase.safety.files import FileLimits, limit_error

__all__ = ["CSVLoader", "csv_to_document"]

_MAX_WARNINGS = 100
_SNIFF_LINES = 50
_SNIFF_CHARS = 4096


def _sample(source: str) -> str:
    head = source[:_SNIFF_CHARS]
    cut = -1
    for _ in range(_SNIFF_LINES):
        cut = head.find("\n", cut + 1)
        if cut < 0:
            return head
    return head[:cut]


def _dialect(sample: str, default_delimiter: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        class _Default(csv.excel):
            delimiter = default_delimiter
        return _Default


def csv_to_document(source: str, *, path: str = "", encoding: str = "utf-8", default_title: str = "",
                    default_delimiter: str = ",", limits: FileLimits | None = None) -> Document:
    """Convert CSV text to a :class:`Document` of one record per row.

    Args:
        source: the CSV text.
        path: the document path to record.
        encoding: recorded in ``metadata["encoding"]``.
        default_title: the title (CSV has none of its own).
        default_delimiter: used when the dialect cannot be sniffed.
        limits: ``csv_max_rows``, ``csv_max_columns``, ``csv_max_field_chars``.

    Returns:
        A document whose metadata has ``format`` (``csv``), ``encoding``, ``columns``
        (the header), ``rows`` (records kept), ``delimiter`` and ``warnings`` (skipped
        rows, at most 100 listed plus a count).

    Raises:
        FileLimitError: more records than ``limits.csv_max_rows`` or header fields than
            ``limits.csv_max_columns``.

    Example:
        >>> doc = csv_to_document("name,age\\nAda,36\\n")
        >>> doc.text, doc.sections[0].path
        ('name: Ada; age: 36', ('row 2',))
    """
    source = source.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    limits = limits or FileLimits()
    where = path or "<csv>"
    max_field = min(limits.csv_max_field_chars, csv.field_size_limit())
    dialect = _dialect(_sample(source), default_delimiter)
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
        if any(len(cell) > max_field for cell in row):
            skipped += 1
            if len(warnings) < _MAX_WARNINGS:
                warnings.append(f"row {row_number}: skipped (a field over {max_field:,} characters, "
                                "limit csv_max_field_chars)")
            continue
        if header is None:
            if len(row) > limits.csv_max_columns:
                raise limit_error(where, "csv_max_columns", len(row), limits.csv_max_columns, "CSV header fields")
            header = [" ".join(cell.split()) or f"column {i + 1}" for i, cell in enumerate(row)]
            continue
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header):]):
            skipped += 1
            if len(warnings) < _MAX_WARNINGS:
                warnings.append(f"row {row_number}: skipped ({len(row)} fields, header has {len(header)})")
            continue
        record = "; ".join(f"{name}: {' '.join(value.split())}"
                           for name, value in zip(header, row) if value.strip())
        kept += 1
        if kept > limits.csv_max_rows:
            raise limit_error(where, "csv_max_rows", kept, limits.csv_max_rows, "CSV records (counted so far)")
        builder.begin_section((f"row {row_number}",))
        builder.line(record)
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

    def load(self, path: Path, options: LoadOptions | None = None) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors."""
        options = options or LoadOptions()
        decoded = read_text(path, options.encoding)
        doc = csv_to_document(decoded.text, path=str(path), encoding=decoded.encoding, default_title=path.stem,
                              default_delimiter="\t" if path.suffix.lower() == ".tsv" else ",", limits=options.limits)
        if decoded.warnings:
            doc.metadata["warnings"] = list(decoded.warnings) + list(doc.metadata.get("warnings", []))
        return doc
