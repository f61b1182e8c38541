"""DOCX loader (python-docx): paragraphs, headings as sections, tables as rows of cells.

Body paragraphs and tables are read in document order. Paragraph styles ``Title`` and
``Heading 1``-``Heading 9`` (also their localised ids ``heading1``...) become headings;
each table row becomes one line ``cell | cell | cell`` (merged cells counted once).
"""

from __future__ import annotations

import re
from pathlib import Path

from knowbase.errors import InputFileError
from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.types import Document

__all__ = ["DocxLoader"]

_HEADING_RE = re.compile(r"^heading\s*(\d)$", re.I)


def _fail(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _heading_level(paragraph) -> int:
    """1-9 for a heading paragraph, 0 for body text (``Title`` counts as level 1)."""
    style = paragraph.style
    for name in (getattr(style, "name", None), getattr(style, "style_id", None)):
        if not name:
            continue
        if name.lower() == "title":
            return 1
        m = _HEADING_RE.match(name.strip())
        if m:
            return int(m.group(1))
    return 0


class DocxLoader:
    """Loads ``.docx`` files.

    Metadata: ``format`` (``docx``), ``tables`` (count), and ``author``/``subject`` from
    the core properties when set.
    """

    extensions: tuple[str, ...] = (".docx",)
    binary = True

    def load(self, path: Path) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors.

        Raises:
            InputFileError: ``corrupt DOCX: ...`` when the file is not a Word package.
        """
        import zipfile

        import docx
        from docx.opc.exceptions import PackageNotFoundError
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        try:
            document = docx.Document(str(path))
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise _fail(path, f"corrupt DOCX: {exc or type(exc).__name__}") from exc
        builder = TextBuilder()
        title = ""
        tables = 0
        last_was_row = False
        body = document.element.body
        for child in body.iterchildren():
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(child, document)
                text = paragraph.text.strip()
                if not text:
                    continue
                level = _heading_level(paragraph)
                if level:
                    title = title or text
                    builder.heading(level, text)
                else:
                    builder.block(text)
                last_was_row = False
            elif tag == "tbl":
                tables += 1
                table = Table(child, document)
                for row in table.rows:
                    row_cells = row.cells
                    tcs = [cell._tc for cell in row_cells]  # keeps the elements alive for `is`
                    cells = [" ".join(cell.text.split()) for k, cell in enumerate(row_cells)
                             if k == 0 or tcs[k] is not tcs[k - 1]]  # a merged cell repeats per column
                    line = " | ".join(cells).strip(" |")
                    if not line:
                        continue
                    (builder.line if last_was_row else builder.block)(line)
                    last_was_row = True
        text, sections, _ = builder.build()
        meta: dict[str, object] = {"format": "docx", "tables": tables}
        props = document.core_properties
        if props.author:
            meta["author"] = props.author
        if props.subject:
            meta["subject"] = props.subject
        return Document(path=str(path), text=text, title=(props.title or "").strip() or title or path.stem,
                        metadata=meta, sections=sections)
