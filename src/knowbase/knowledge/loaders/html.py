"""HTML loader: the main content, not the navigation (selectolax/lexbor parser).

Boilerplate elements (``nav``, ``header``, ``footer``, ``aside``, ``script``, ``style``,
``noscript``, ``form``, ``template``, ``svg``, ``iframe``, ``button``, ARIA navigation
roles) are removed. The main content is the first of ``main``, ``[role=main]``,
``article`` or ``body``. Headings ``h1``-``h6`` open sections; paragraphs, list items,
table rows and ``pre`` blocks become lines and blocks of the text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders._text import read_text
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document
from knowbase.safety.files import FileLimits, check_html_depth, count_markup_elements

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

__all__ = ["HTMLLoader", "html_to_document"]

_DROP = ("nav", "header", "footer", "aside", "script", "style", "noscript", "form", "template",
         "svg", "iframe", "button", "select", "object", "canvas",
         "[role=navigation]", "[role=banner]", "[role=contentinfo]", "[role=search]",
         "[aria-hidden=true]", "[hidden]")
_MAIN = ("main", "[role=main]", "article", "body")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {"p", "div", "section", "blockquote", "dd", "dt", "figcaption", "caption", "address",
           "details", "summary", "center", "dl", "ul", "ol", "table", "figure", "hr", "body", "main",
           "article", "tbody", "thead", "tfoot"}
_LINES = {"li", "tr"}
_SPACE_RE = re.compile(r"\s+")


def _text(node: LexborNode) -> str:
    return _SPACE_RE.sub(" ", node.text(deep=True, separator=" ")).strip()


class _Walker:
    """Depth-first walk emitting blocks into a :class:`TextBuilder` (iterative: no
    recursion limit on deeply nested pages)."""

    def __init__(self, builder: TextBuilder) -> None:
        self.builder = builder
        self.inline: list[str] = []
        self.inline_text = False  # whether ``inline`` holds more than blanks (kept, not recomputed: linear)
        self.line_mode = False
        self.tables: list[list[bool]] = []  # per open table: [no row written yet, current row has <th>]

    def add(self, text: str) -> None:
        """Append inline text."""
        self.inline.append(text)
        if not self.inline_text and text.strip():
            self.inline_text = True

    def flush(self, row_end: bool = False) -> None:
        text = _SPACE_RE.sub(" ", "".join(self.inline)).strip()
        self.inline = []
        self.inline_text = False
        if text:
            if row_end and self.tables:
                state = self.tables[-1]
                # The first row is the header when it has <th> cells.
                self.builder.table_row(text, first=state[0], header=state[0] and state[1])
                state[0] = False
            elif self.line_mode:
                self.builder.line(text)
            else:
                self.builder.block(text)

    def walk(self, root: LexborNode) -> None:
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            tag = node.tag
            if leaving:
                if tag in _BLOCKS or tag in _LINES:
                    self.flush(row_end=tag == "tr")
                    if tag in _LINES:
                        self.line_mode = False
                    if tag == "table" and self.tables:
                        self.tables.pop()
                continue
            if tag == "-text":
                self.add(node.text(deep=False))
                continue
            if tag in ("-comment", "-doctype"):
                continue
            if tag in _HEADINGS:
                self.flush()
                self.builder.heading(_HEADINGS[tag], _text(node))
                continue
            if tag == "pre":
                self.flush()
                self.builder.block(node.text(deep=True), preformatted=True)
                continue
            if tag == "br":
                self.inline.append("\n")
                continue
            if tag in ("td", "th"):
                if tag == "th" and self.tables:
                    self.tables[-1][1] = True
                if self.inline_text:
                    self.add(" | ")
                self.add(_text(node))
                continue
            if tag == "img":
                alt = node.attributes.get("alt") or ""
                if alt:
                    self.add(f" {alt} ")
                continue
            if tag in _BLOCKS or tag in _LINES:
                self.flush()
                if tag in _LINES:
                    self.line_mode = True
                if tag == "table":
                    self.tables.append([True, False])
                elif tag == "tr" and self.tables:
                    self.tables[-1][1] = False
            stack.append((node, True))
            children = []
            child = node.child
            while child is not None:
                children.append(child)
                child = child.next
            for child in reversed(children):
                stack.append((child, False))
        self.flush()


def html_to_document(source: str, *, path: str = "", encoding: str = "utf-8",
                     default_title: str = "", limits: FileLimits | None = None) -> Document:
    """Convert an HTML page to a :class:`Document` (main content only).

    Args:
        source: the HTML text.
        path: the document path to record.
        encoding: recorded in ``metadata["encoding"]``.
        default_title: used when the page has neither ``<title>`` nor ``<h1>``.
        limits: ``max_elements`` bounds the tags parsed, ``max_depth`` their nesting (both
            checked before parsing: tree construction is quadratic in the depth).

    Raises:
        FileLimitError: more tags than ``limits.max_elements`` or nesting deeper than
            ``limits.max_depth``.
    """
    from selectolax.lexbor import LexborHTMLParser

    limits = limits or FileLimits()
    count_markup_elements(source, path or "<html>", limits)
    check_html_depth(source, path or "<html>", limits)

    tree = LexborHTMLParser(source)
    title_node = tree.css_first("title")
    title = _text(title_node) if title_node is not None else ""
    meta: dict[str, object] = {"format": "html", "encoding": encoding}
    for node in tree.css("meta[name]"):
        name = (node.attributes.get("name") or "").lower()
        content = node.attributes.get("content")
        if name in ("description", "author", "keywords") and content:
            meta[name] = content
    lang_node = tree.css_first("html")
    if lang_node is not None and lang_node.attributes.get("lang"):
        meta["lang"] = lang_node.attributes.get("lang")
    for selector in _DROP:
        for node in tree.css(selector):
            node.decompose()
    root = None
    for selector in _MAIN:
        root = tree.css_first(selector)
        if root is not None:
            break
    builder = TextBuilder()
    if root is not None:
        _Walker(builder).walk(root)
    text, sections, _ = builder.build()
    tables = builder.tables
    if not title:
        h1 = next((s.path[0] for s in sections if s.path), "")
        title = h1 or default_title
    return Document(path=path, text=text, title=title, metadata=meta, sections=sections, tables=tables)


class HTMLLoader:
    """Loads ``.html`` / ``.htm`` files.

    Metadata: ``format`` (``html``), ``encoding``, and the page's ``description``,
    ``author``, ``keywords`` and ``lang`` when present.
    """

    extensions: tuple[str, ...] = (".html", ".htm", ".xhtml")

    def load(self, path: Path, options: LoadOptions | None = None) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors."""
        options = options or LoadOptions()
        decoded = read_text(path, options.encoding)
        doc = html_to_document(decoded.text, path=str(path), encoding=decoded.encoding, default_title=path.stem,
                               limits=options.limits)
        if decoded.warnings:
            doc.metadata["warnings"] = list(decoded.warnings)
        return doc
