"""Limits on what one input file may cost to read, checked before anything is expanded.

A small file can hold a large amount of work: a ZIP member that inflates a thousand-fold
(a DOCX "zip bomb"), YAML whose aliases expand exponentially ("billion laughs"), a PDF
page tree that lists one page twenty thousand times, a Markdown or HTML file of millions
of tiny elements. Each loader measures the *declared* or *cheaply counted* size of what it
is about to expand and refuses the file with a :class:`FileLimitError` naming the file,
the limit and the value when it is over. Limits come from
:attr:`knowbase.config.Settings.file_limits` (``[file_limits]`` table in ``config.toml``).

The checks here are format-level and need no parser:

* :func:`check_zip` -- a ZIP's central directory: member count, each member's and the
  total uncompressed size, the compression ratio (zipfile then never inflates a member
  beyond its declared size: it stops and fails the CRC);
* :func:`count_zip_elements` -- markup elements in a ZIP's XML members, counted by
  streaming the inflated bytes in blocks (memory bounded) before any XML parser runs;
* :func:`check_yaml` -- a YAML document's event stream (linear in its size): nesting
  depth, alias count and the node count *after* alias expansion;
* :func:`count_markup_elements` -- start tags in HTML/XML text;
* :func:`check_html_depth` -- how deep an HTML5 parser would nest the elements (the
  tree-construction algorithm scans the stack of open elements for many start tags, so
  parsing is quadratic in the depth: 200,000 nested ``<div>`` took minutes).

Sources: the zip-bomb construction and its defences are described by D. Fifield, "A
better zip bomb" (WOOT 2019), https://www.bamsoftware.com/hacks/zipbomb/; the YAML alias
bomb is CVE-2019-11253 (Kubernetes) and the "billion laughs" XML entity attack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from knowbase.errors import FileLimitError

__all__ = [
    "FileLimits", "FileLimitError", "check_zip", "count_zip_elements", "check_yaml",
    "count_markup_elements", "check_html_depth", "limit_error",
]


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Per-file limits (sizes in bytes unless said otherwise).

    Attributes:
        max_text_bytes: largest text file on disk, and largest text extracted from a
            container (PDF, DOCX) in UTF-8 bytes (20 MB is about 5,000 pages of prose).
        max_file_bytes: largest container file (PDF, DOCX) on disk.
        zip_max_members: most members in a ZIP package (a DOCX has 10 to a few hundred).
        zip_max_member_bytes: largest uncompressed size of one member, as declared in the
            central directory.
        zip_max_total_bytes: largest sum of the uncompressed member sizes.
        zip_max_ratio: largest compression ratio (uncompressed / compressed) of a member
            over 1 MiB uncompressed. Word XML compresses 5-30:1; Deflate's maximum is
            about 1032:1.
        max_elements: most markup elements (start tags) in a DOCX's XML parts together
            or in an HTML file; a 1,000-page Word document has about 500,000.
        max_depth: deepest element nesting in an HTML file, estimated before parsing
            (Chromium's parser stops nesting at 512).
        max_paragraphs: most body paragraphs and table rows read from a DOCX (python-docx
            takes about 70 us for each: 100,000 is a few seconds; a 1,000-page document
            has about 30,000).
        yaml_max_nodes: most YAML nodes in front matter *after* alias expansion.
        yaml_max_aliases: most alias uses (``*name``) in front matter.
        yaml_max_depth: deepest nesting of YAML collections in front matter.
        max_metadata_bytes: largest front matter kept as metadata (as JSON); larger front
            matter is ignored with a warning.
        pdf_max_pages: most pages in a PDF (counted by walking the page tree, which must
            be a tree: a page or a /Pages node reached twice is refused).
        pdf_max_tree_depth: deepest nesting of the PDF page tree (real files have 2 to 5
            levels; pypdf stops at 100).
        csv_max_rows: most records in a CSV/TSV file.
        csv_max_columns: most fields in a CSV/TSV header.
        csv_max_field_chars: longest CSV field, in characters (a longer one skips its row).
    """

    max_text_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 200 * 1024 * 1024
    zip_max_members: int = 10_000
    zip_max_member_bytes: int = 128 * 1024 * 1024
    zip_max_total_bytes: int = 512 * 1024 * 1024
    zip_max_ratio: float = 200.0
    max_elements: int = 1_000_000
    max_paragraphs: int = 100_000
    max_depth: int = 512
    yaml_max_nodes: int = 10_000
    yaml_max_aliases: int = 100
    yaml_max_depth: int = 64
    max_metadata_bytes: int = 64 * 1024
    pdf_max_pages: int = 10_000
    pdf_max_tree_depth: int = 64
    csv_max_rows: int = 1_000_000
    csv_max_columns: int = 10_000
    csv_max_field_chars: int = 131_072

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FileLimits:
        """Build from a ``config.toml`` table; unknown keys raise ``ValueError`` and values
        are converted to each field's type (``TypeError``/``ValueError`` when they do not
        convert or are not positive)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown file limit(s): {', '.join(unknown)} (known: {', '.join(known)})")
        out: dict[str, Any] = {}
        for key, raw in values.items():
            value = float(raw) if key == "zip_max_ratio" else int(raw)
            if value <= 0:
                raise ValueError(f"file limit {key} must be positive, got {raw!r}")
            out[key] = value
        return cls(**out)


def limit_error(path: str | os.PathLike[str], limit: str, value: float, maximum: float, what: str, *,
                reason: str | None = None) -> FileLimitError:
    """A :class:`FileLimitError` whose message names the file, what was measured and the
    limit: ``{path}: {what}: {value} > {maximum} (limit {limit})``, or ``{path}: {reason}``
    when ``reason`` is given (it should name the limit too)."""
    reason = reason or f"{what}: {_num(value)} > {_num(maximum)} (limit {limit})"
    return FileLimitError(f"{path}: {reason}", path=str(path), reason=reason, limit=limit, value=value,
                          maximum=maximum)


def _num(n: float) -> str:
    if isinstance(n, float) and not n.is_integer():
        return f"{n:.1f}"
    n = int(n)
    if n >= 10 * 1024 * 1024:
        return f"{n:,} ({n / 1024 / 1024:.0f} MiB)"
    return f"{n:,}"


# --- ZIP ------------------------------------------------------------------------------------
_RATIO_FLOOR = 1024 * 1024  # the ratio is checked only for members inflating beyond this


def check_zip(path: Path, limits: FileLimits) -> list[Any]:
    """Check a ZIP package's central directory against ``limits`` without inflating it.

    Returns:
        the members' :class:`zipfile.ZipInfo` list.

    Raises:
        FileLimitError: too many members, a member or the total too large, or a member
            compressed beyond ``zip_max_ratio``.
        zipfile.BadZipFile: not a ZIP file (the caller turns it into its format's error).
    """
    import zipfile

    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    if len(infos) > limits.zip_max_members:
        raise limit_error(path, "zip_max_members", len(infos), limits.zip_max_members, "ZIP members")
    total = 0
    for info in infos:
        size = info.file_size
        if size > limits.zip_max_member_bytes:
            raise limit_error(path, "zip_max_member_bytes", size, limits.zip_max_member_bytes,
                              f"ZIP member {info.filename!r} inflates to (bytes)")
        if size > _RATIO_FLOOR:
            ratio = size / max(info.compress_size, 1)
            if ratio > limits.zip_max_ratio:
                raise limit_error(path, "zip_max_ratio", ratio, limits.zip_max_ratio,
                                  f"ZIP member {info.filename!r} compression ratio")
        total += size
    if total > limits.zip_max_total_bytes:
        raise limit_error(path, "zip_max_total_bytes", total, limits.zip_max_total_bytes,
                          "ZIP members inflate to (bytes, total)")
    return infos


_BLOCK = 1 << 20


def count_zip_elements(path: Path, names: Iterable[str], limits: FileLimits) -> int:
    """Count markup start tags (``<`` followed by a letter, ``_`` or ``:``) in the ZIP
    members ``names``, streaming 1 MiB blocks; stops as soon as ``max_elements`` is passed.

    Call :func:`check_zip` first: it bounds how much inflating this does.

    Raises:
        FileLimitError: more than ``limits.max_elements`` elements in all members together.
    """
    import zipfile

    total = 0
    with zipfile.ZipFile(path) as archive:
        for name in names:
            prev = b""
            with archive.open(name) as member:
                while block := member.read(_BLOCK):
                    data = prev[-1:] + block
                    total += len(_START_TAG_B.findall(data))
                    prev = block
                    if total > limits.max_elements:
                        raise limit_error(path, "max_elements", total, limits.max_elements,
                                          "XML elements in the package (counted so far)")
    return total


_START_TAG_B = re.compile(rb"<[A-Za-z_:]")
_START_TAG = re.compile(r"<[A-Za-z_:!]")


def count_markup_elements(text: str, path: str | os.PathLike[str], limits: FileLimits) -> int:
    """Count start tags (and comments/doctypes) in HTML/XML text; linear in the text.

    Raises:
        FileLimitError: more than ``limits.max_elements``.
    """
    if text.count("<") <= limits.max_elements:
        return text.count("<")
    n = sum(1 for _ in _START_TAG.finditer(text))
    if n > limits.max_elements:
        raise limit_error(path, "max_elements", n, limits.max_elements, "markup elements")
    return n


# Elements that never stay open under a repeated start tag (void elements, and those an
# HTML5 parser closes implicitly when a sibling starts: p, li, td...).
_NO_NESTING = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen frame basefont bgsound "
    "p li dt dd tr td th option optgroup rb rt rp rtc tbody thead tfoot colgroup caption html head body".split())
_RAW_TEXT = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext")
_TAG_AT = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*+)[^<>]*?(/?)>")


def check_html_depth(text: str, path: str | os.PathLike[str], limits: FileLimits) -> int:
    """Estimate the deepest nesting an HTML5 parser builds from ``text`` and refuse it
    over ``limits.max_depth``; linear in the text.

    The estimate keeps a stack of open elements: a start tag pushes (except void and
    implicitly closed elements, and self-closing tags inside ``<svg>``/``<math>``); an end
    tag pops up to the matching element, or is ignored when none is open (as the parser
    ignores it); raw-text elements (``script``, ``style``...) and comments are skipped.

    Returns:
        the deepest nesting seen.

    Raises:
        FileLimitError: deeper than ``limits.max_depth``.
    """
    stack: list[str] = []
    open_count: dict[str, int] = {}
    foreign = 0  # open <svg>/<math> elements
    deepest = 0
    pos = 0
    lower = None
    while (start := text.find("<", pos)) >= 0:
        if text.startswith("<!--", start):
            end = text.find("-->", start + 4)
            pos = len(text) if end < 0 else end + 3
            continue
        m = _TAG_AT.match(text, start)
        if m is None:
            pos = start + 1
            continue
        pos = m.end()
        closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
        if closing:
            if open_count.get(name):
                while stack:
                    top = stack.pop()
                    open_count[top] -= 1
                    if top in ("svg", "math"):
                        foreign -= 1
                    if top == name:
                        break
            continue
        if name in _RAW_TEXT:
            if lower is None:
                lower = text.lower()
            end = lower.find(f"</{name}", pos)
            pos = len(text) if end < 0 else end
            continue
        if name in _NO_NESTING or (self_closing and foreign):
            continue
        stack.append(name)
        open_count[name] = open_count.get(name, 0) + 1
        foreign += name in ("svg", "math")
        if len(stack) > deepest:
            deepest = len(stack)
            if deepest > limits.max_depth:
                raise limit_error(path, "max_depth", deepest, limits.max_depth, "HTML element nesting depth")
    return deepest


# --- YAML -----------------------------------------------------------------------------------
def check_yaml(text: str, path: str | os.PathLike[str], limits: FileLimits) -> None:
    """Walk a YAML stream's parse events (no composing, no constructing: linear in the
    text) and check nesting depth, alias uses, and the node count after expanding every
    alias, which is what constructing and copying the data would cost.

    The expanded size is computed in one pass: each anchored node's expanded size is
    remembered, an alias adds the size of its anchor's node.

    Raises:
        FileLimitError: over ``yaml_max_depth``, ``yaml_max_aliases`` or ``yaml_max_nodes``.
        yaml.YAMLError: the text is not valid YAML (the caller decides what that means).
    """
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    anchored: dict[str, int] = {}
    # Each open collection: (its anchor or None, expanded node count so far).
    stack: list[tuple[str | None, int]] = []
    total = 0
    aliases = 0

    def add(n: int, new: int) -> None:
        """A node of expanded size ``n`` joins its parent; ``new`` nodes not counted yet."""
        nonlocal total
        total += new
        if stack:
            anchor, count = stack[-1]
            stack[-1] = (anchor, count + n)
        if total > limits.yaml_max_nodes:
            raise limit_error(path, "yaml_max_nodes", total, limits.yaml_max_nodes,
                              "YAML front matter nodes after alias expansion (counted so far)")

    for event in yaml.parse(text, Loader=loader_cls):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.yaml_max_aliases:
                raise limit_error(path, "yaml_max_aliases", aliases, limits.yaml_max_aliases,
                                  "YAML front matter aliases")
            size = anchored.get(event.anchor or "", 1)
            add(size, size)
        elif isinstance(event, yaml.ScalarEvent):
            add(1, 1)
            if event.anchor:
                anchored[event.anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append((event.anchor, 0))
            if len(stack) > limits.yaml_max_depth:
                raise limit_error(path, "yaml_max_depth", len(stack), limits.yaml_max_depth,
                                  "YAML front matter nesting depth")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, count = stack.pop()
            add(count + 1, 1)
            if anchor:
                anchored[anchor] = count + 1
