"""Assemble a document's text block by block while recording section and page spans.

Every loader produces the same shape through :class:`TextBuilder`, so offsets are exact
by construction: a span is recorded from the builder's own running length.
"""

from __future__ import annotations

import re

from knowbase.knowledge.types import Page, Section, Table

__all__ = ["TextBuilder"]

_BLANK_RUN_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")
# Starts only at the first blank of a run: from every position inside a long run not
# followed by a newline the match would rescan the rest of the run (quadratic).
_TRAILING_WS_RE = re.compile(r"(?<![ \t])[ \t]++(?=\n|$)")


def _tidy(text: str, *, keep_blank_lines: bool) -> str:
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_WS_RE.sub("", text)
    text = text.rstrip()
    if not keep_blank_lines and "\n" in text and ("\n\n\n" in text or "\n " in text or "\n\t" in text):
        text = _BLANK_RUN_RE.sub("\n\n", text)
    return text.strip("\n")


class TextBuilder:
    """Collects blocks (paragraphs, lines, headings) into one text.

    Blocks are separated by one blank line, lines by one newline. Headings open a
    section whose path is the stack of enclosing headings; :meth:`begin_section` opens a
    section with an explicit path (CSV rows). Pages (:meth:`begin_page`) are recorded as
    :class:`Page` spans.

    Example:
        >>> b = TextBuilder()
        >>> b.heading(1, "Pods"); b.block("A Pod runs containers.")
        >>> b.heading(2, "Lifecycle"); b.block("Pending, then Running.")
        >>> text, sections, pages = b.build()
        >>> [(s.path, text[s.start:s.end]) for s in sections][1]
        (('Pods', 'Lifecycle'), 'Lifecycle\\n\\nPending, then Running.')
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._len = 0
        self._stack: list[tuple[int, str]] = []
        self._sections: list[Section] = []
        self._open_section: tuple[tuple[str, ...], int] | None = None
        self._pages: list[Page] = []
        self._open_page: tuple[int, int] | None = None  # (number, start or -1)
        self._tables: list[Table] = []
        self._open_table: tuple[int, int] | None = None  # (start, header end) of the table being written
        self._in_row = False

    # --- text ------------------------------------------------------------------------
    def _append(self, text: str, sep: str) -> int:
        """Append ``text`` after ``sep`` (if anything precedes it); returns its start."""
        if not self._in_row:
            self._close_table()
        if self._len:
            self._parts.append(sep)
            self._len += len(sep)
        start = self._len
        self._parts.append(text)
        self._len += len(text)
        if self._open_page is not None and self._open_page[1] < 0:
            self._open_page = (self._open_page[0], start)
        if self._open_section is not None and self._open_section[1] < 0:
            self._open_section = (self._open_section[0], start)
        return start

    def block(self, text: str, *, preformatted: bool = False) -> None:
        """Add a paragraph-level block (separated from the previous one by a blank line).

        Args:
            text: the block text; trailing spaces and surrounding newlines are removed,
                runs of blank lines collapsed unless ``preformatted``.
            preformatted: keep blank lines inside (code blocks).
        """
        text = _tidy(text, keep_blank_lines=preformatted)
        if text.strip():
            self._append(text, "\n\n")

    def line(self, text: str) -> None:
        """Add a line (separated from the previous text by one newline): list items,
        table rows, CSV records."""
        text = _tidy(text, keep_blank_lines=False)
        if text.strip():
            self._append(text, "\n")

    def table_row(self, text: str, *, first: bool, header: bool = False) -> None:
        """Add a table row as a line; ``first`` starts a new table (a block), whose
        ``header`` says the row names the columns. Tables with a header row are recorded
        as :class:`Table` spans (closed by anything else added)."""
        text = _tidy(text, keep_blank_lines=False)
        if not text.strip():
            return
        if first:
            self._close_table()
        self._in_row = True
        try:
            start = self._append(text, "\n\n" if first else "\n")
        finally:
            self._in_row = False
        if first:
            self._open_table = (start, self._len) if header else None

    def _close_table(self) -> None:
        if self._open_table is not None:
            start, header_end = self._open_table
            if self._len > header_end:
                self._tables.append(Table(start=start, header_end=header_end, end=self._len))
            self._open_table = None

    # --- structure -------------------------------------------------------------------
    def _close_section(self) -> None:
        self._close_table()
        if self._open_section is not None:
            path, start = self._open_section
            if 0 <= start < self._len:
                self._sections.append(Section(path=path, start=start, end=self._len))
            self._open_section = None

    def heading(self, level: int, title: str) -> None:
        """Add a heading line and open its section.

        Args:
            level: 1 for a top-level heading, 2 below it, ...
            title: the heading text (already cleaned of markup).
        """
        title = " ".join(title.split())
        if not title:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        self._close_section()
        start = self._append(title, "\n\n")
        self._open_section = (tuple(t for _, t in self._stack), start)

    def begin_section(self, path: tuple[str, ...]) -> None:
        """Open a section with an explicit path for the text that follows (no heading
        line is written)."""
        self._close_section()
        self._stack = []
        self._open_section = (path, -1)

    def end_section(self) -> None:
        """Close the open section: following text belongs to none."""
        self._close_section()
        self._stack = []

    def begin_page(self, number: int) -> None:
        """Start page ``number`` (1-based); the previous page ends here. Text added until
        the next :meth:`begin_page` or :meth:`end_page` belongs to it."""
        self._close_table()
        self.end_page()
        self._open_page = (number, -1)

    def end_page(self) -> None:
        """End the open page, recording its span if it has text."""
        if self._open_page is not None:
            number, start = self._open_page
            if start >= 0:
                self._pages.append(Page(number=number, start=start, end=self._len))
            self._open_page = None

    # --- result ----------------------------------------------------------------------
    @property
    def length(self) -> int:
        """Characters written so far."""
        return self._len

    def build(self) -> tuple[str, tuple[Section, ...], tuple[Page, ...]]:
        """``(text, sections, pages)``; sections and pages in text order (tables:
        :attr:`tables`)."""
        self._close_section()
        self.end_page()
        self._close_table()
        return "".join(self._parts), tuple(self._sections), tuple(self._pages)

    @property
    def tables(self) -> tuple[Table, ...]:
        """Tables with a header row and at least one other row, in text order."""
        return tuple(self._tables)
