"""DOCX loader (python-docx): paragraphs, headings as sections, tables as rows of cells.

Body paragraphs and tables are read in document order. Paragraph styles ``Title`` and
``Heading 1``-``Heading 9`` (also their localised ids ``heading1``...) become headings;
each table row becomes one line ``cell | cell | cell`` (merged cells counted once).

Before python-docx opens the package, the ZIP's central directory is checked (member
count, sizes, compression ratio) and the markup elements of its XML parts are counted by
streaming (:mod:`knowbase.safety.files`); while reading, at most ``max_paragraphs``
paragraphs and table rows are taken. Over any limit the file is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

from knowbase.errors import InputFileError
from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document
from knowbase.safety.files import check_zip, count_zip_elements, limit_error

__all__ = ["DocxLoader"]

_HEADING_RE = re.compile(r"^heading\s*(\d)$", re.I)


def _fail(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _level_of(style) -> int:
    """1-9 for a heading style, 0 otherwise (``Title`` counts as level 1)."""
    for name in (getattr(style, "name", None), getattr(style, "style_id", None)):
        if not name:
            continue
        if name.lower() == "title":
            return 1
        m = _HEADING_RE.match(name.strip())
        if m:
            return int(m.group(1))
    return 0


class _HeadingLevels:
    """Heading level by paragraph style id, each style looked up once (python-docx's
    ``Paragraph.style`` scans every style of the document per call: 2 ms a paragraph,
    minutes for a document of many short paragraphs)."""

    def __init__(self, document) -> None:
        self.document = document
        self.cache: dict[str | None, int] = {}

    def __call__(self, element) -> int:
        style_id = element.style  # the w:pStyle value, None for the default style
        if style_id not in self.cache:
            from docx.enum.style import WD_STYLE_TYPE

            styles = self.document.styles
            try:
                style = (styles.default(WD_STYLE_TYPE.PARAGRAPH) if style_id is None
                         else styles.get_by_id(style_id, WD_STYLE_TYPE.PARAGRAPH))
            except (KeyError, ValueError):
                style = None
            self.cache[style_id] = _level_of(style) if style is not None else 0
        return self.cache[style_id]


class DocxLoader:
    """Loads ``.docx`` files.

    Metadata: ``format`` (``docx``), ``tables`` (count), and ``author``/``subject`` from
    the core properties when set.
    """

    extensions: tuple[str, ...] = (".docx",)
    binary = True

    def load(self, path: Path, options: LoadOptions | None = None) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors.

        Raises:
            InputFileError: ``corrupt DOCX: ...`` when the file is not a Word package.
            FileLimitError: over a ZIP limit, ``max_elements`` or ``max_paragraphs``.
        """
        import zipfile

        import docx
        from docx.opc.exceptions import PackageNotFoundError
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        limits = (options or LoadOptions()).limits
        try:
            infos = check_zip(path, limits)
            count_zip_elements(path, [i.filename for i in infos if i.filename.lower().endswith((".xml", ".rels"))],
                               limits)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
            raise _fail(path, f"corrupt DOCX: {exc or type(exc).__name__}") from exc
        try:
            document = docx.Document(str(path))
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise _fail(path, f"corrupt DOCX: {exc or type(exc).__name__}") from exc
        builder = TextBuilder()
        title = ""
        tables = 0
        last_was_row = False
        body = document.element.body
        heading_level = _HeadingLevels(document)
        blocks = 0
        for child in body.iterchildren():
            blocks += 1
            if blocks > limits.max_paragraphs:
                raise limit_error(path, "max_paragraphs", blocks, limits.max_paragraphs,
                                  "DOCX paragraphs and tables (counted so far)")
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(child, document)
                text = paragraph.text.strip()
                if not text:
                    continue
                level = heading_level(child)
                if level:
                    title = title or text
                    builder.heading(level, text)
                else:
                    builder.block(text)
                last_was_row = False
            elif tag == "tbl":
                tables += 1
                table = Table(child, document)
                first_row = True
                for row in table.rows:
                    blocks += 1
                    if blocks > limits.max_paragraphs:
                        raise limit_error(path, "max_paragraphs", blocks, limits.max_paragraphs,
                                          "DOCX paragraphs and table rows (counted so far)")
                    row_cells = row.cells
                    tcs = [cell._tc for cell in row_cells]  # keeps the elements alive for `is`
                    cells = [" ".join(cell.text.split()) for k, cell in enumerate(row_cells)
                             if k == 0 or tcs[k] is not tcs[k - 1]]  # a merged cell repeats per column
                    line = " | ".join(cells).strip(" |")
                    if not line:
                        continue
                    # Word tables have no header markup that is reliably set: the first
                    # row is taken as the header (as Word's "Header Row" option does).
                    builder.table_row(line, first=first_row or not last_was_row, header=first_row)
                    first_row = False
                    last_was_row = True
        text, sections, _ = builder.build()
        meta: dict[str, object] = {"format": "docx", "tables": tables}
        props = document.core_properties
        if props.author:
            meta["author"] = props.author
        if props.subject:
            meta["subject"] = props.subject
        return Document(path=str(path), text=text, title=(props.title or "").strip() or title or path.stem,
                        metadata=meta, sections=sections, tables=builder.tables)
