"""A corpus of hostile input files, generated at test time (nothing large is committed).

Each :class:`Case` writes one file and says what loading it must give: the error class
and the limit named in the message, or (``error=None``) a document whose text passes a
check. ``limits`` are the :class:`~knowbase.safety.files.FileLimits` fields the case is
loaded with (empty: the defaults, so the case proves the defaults protect).

Classes covered: expansion bombs (ZIP/DOCX, YAML aliases, PDF page trees, markup
element floods, CSV rows/columns/fields), super-linear parsing (lines built to make
backtracking regular expressions quadratic), encrypted PDFs without a password.

Run ``python tests/hostile_files.py OUTDIR`` to write every case to a folder.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Case", "CASES", "TAIL", "TEXT_PAYLOADS", "build_pdf", "docx_bytes"]


@dataclass(frozen=True)
class Case:
    """One hostile file.

    Attributes:
        name: the case id (also the file stem).
        ext: the file extension (chooses the loader through the registry).
        make: returns the file's bytes.
        error: the expected error class name (``FileLimitError``, ``InputFileError``),
            or None when the file must load.
        limit: the limit name the error message must contain (``zip_max_ratio``...), or
            another expected fragment of the reason (``password``).
        limits: FileLimits overrides for this case.
        check: for a file that loads, a predicate on ``(text, metadata)``.
    """

    name: str
    ext: str
    make: Callable[[], bytes]
    error: str | None
    limit: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    check: Callable[[str, dict[str, Any]], bool] | None = None

    def write(self, folder: Path) -> Path:
        """Write the file into ``folder``; returns its path."""
        path = folder / f"{self.name}{self.ext}"
        path.write_bytes(self.make())
        return path


# --- DOCX -------------------------------------------------------------------------------------
_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b"</Types>")
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="word/document.xml"/></Relationships>')
_DOC_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
_DOC_TAIL = b"</w:body></w:document>"


def _para(text: str) -> bytes:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>".encode()


def docx_bytes(body: bytes | Callable[[Any], None], extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal Word package whose ``word/document.xml`` body is ``body`` (bytes, or a
    function writing to the member's stream, for bodies too large to hold)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        with z.open("word/document.xml", "w") as member:
            member.write(_DOC_HEAD)
            if callable(body):
                body(member)
            else:
                member.write(body)
            member.write(_DOC_TAIL)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def _inflate_bomb(mib: int) -> Callable[[], bytes]:
    """document.xml of ``mib`` MiB of blanks (ratio ~1000: 160 MiB is 160 KB)."""
    block = b" " * (1 << 20)

    def write(member: Any) -> None:
        member.write(_para("start"))
        for _ in range(mib):
            member.write(block)

    return lambda: docx_bytes(write)


def _element_flood() -> bytes:
    """1.2 million elements (400,000 numbered paragraphs): compresses only ~15:1."""
    return docx_bytes(b"".join(_para(str(i)) for i in range(400_000)))


def _tiny_paragraphs() -> bytes:
    """Two million empty paragraphs in about 50 KB (the issue's 196 KB sample: 127 s)."""
    return docx_bytes(b"<w:p/>" * 2_000_000)


def _many_members() -> bytes:
    return docx_bytes(_para("hello"), {f"word/media/m{i}.bin": b"x" for i in range(300)})


def _big_member() -> bytes:
    rng = random.Random(1)
    return docx_bytes(_para("hello"), {"word/media/big.bin": rng.randbytes(3 << 20)})


def _paragraphs(n: int) -> Callable[[], bytes]:
    return lambda: docx_bytes(b"".join(_para(f"line {i}") for i in range(n)))


# --- PDF --------------------------------------------------------------------------------------
def build_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF file from object bodies (object ``i + 1`` is ``objects[i]``), with a correct
    cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref))
    return out.getvalue()


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _page(parent: int, content: int, font: int) -> bytes:
    return (b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 200 200] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (parent, content, font))


def _stream(text: bytes) -> bytes:
    data = b"BT /F1 12 Tf 20 100 Td (" + text + b") Tj ET"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _pdf_repeated_page(n: int) -> Callable[[], bytes]:
    """One page listed ``n`` times in the page tree (20,000: about 120 KB)."""
    kids = b" ".join([b"3 0 R"] * n)
    return lambda: build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                              b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
                              _page(2, 4, 5), _stream(b"same page"), _FONT])


def _pdf_cycle() -> bytes:
    """A /Pages node that lists itself among its kids."""
    return build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                      b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>",
                      _page(2, 4, 5), _stream(b"cycle"), _FONT])


def _pdf_many_pages(n: int) -> Callable[[], bytes]:
    """``n`` distinct (empty) page objects sharing one content stream."""
    def make() -> bytes:
        kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(n))
        objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
                   b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
                   _stream(b"page"), _FONT]
        objects += [_page(2, 3, 4) for _ in range(n)]
        return build_pdf(objects)
    return make


def _pdf_deep_tree(depth: int = 5_000) -> bytes:
    """A chain of ``depth`` nested /Pages nodes above one page (recursion bait)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for i in range(depth):
        parent = b" /Parent %d 0 R" % (1 + i) if i else b""
        objects.append(b"<< /Type /Pages /Kids [%d 0 R] /Count 1%s >>" % (3 + i, parent))
    objects += [_page(depth + 1, depth + 3, depth + 4), _stream(b"deep"), _FONT]
    return build_pdf(objects)


def _pdf_encrypted() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- text formats -----------------------------------------------------------------------------
def _front_matter(yaml_text: str, body: str = "# Title\n\nBody text.\n") -> bytes:
    return f"---\n{yaml_text}---\n{body}".encode()


def _billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _deep_yaml(depth: int) -> str:
    return "".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "b: 1\n"


#: Payloads of one line each, built to make a backtracking regular expression quadratic
#: or worse (the first is the issue's 60 KB ``*a *a ...`` line, ten times longer). Every
#: text loader must read them in linear time.
TEXT_PAYLOADS: dict[str, str] = {
    "emphasis": "*a " * 200_000,
    "strong": "**a " * 150_000,
    "underscore": "_a " * 200_000,
    "strike": "~~a " * 150_000,
    "code_spans": "``a `a " * 80_000,
    "links": "[a](b " * 100_000,
    "images": "![a" * 150_000,
    "brackets": "[a" * 250_000,
    "shortcodes": "{{< a " * 100_000,
    "liquid": "{% a " * 100_000,
    "escaped_shortcodes": "{{</* a " * 70_000,
    "comment_shortcodes": "{{< comment >}} " * 40_000,
    "html_comments": "<!--a-->" * 70_000,
    "anchors": "{#a " * 150_000,
    "heading_blanks": "# a" + " " * 500_000 + "b",
    "trailing_blanks": "a" + " " * 500_000 + "b\nc \n",
    "dots": "." * 500_000 + "x",
    "fences": "`" * 300_000,
    "attrs": "{{< x " + "a" * 500_000 + " >}}",
    "quotes": ',"a' * 150_000,  # csv.Sniffer's quote regex is quadratic in its sample
}


#: Appended to every payload file, so that the file has text whatever the payload becomes.
TAIL = "\n\nTail paragraph.\n"


def _payload(name: str) -> Callable[[], bytes]:
    return lambda: (TEXT_PAYLOADS[name] + TAIL).encode()


def _html_flood() -> bytes:
    return b"<html><body>" + b"<p>" * 1_100_000 + b"</body></html>"


def _csv_rows(n: int) -> bytes:
    return b"id,name\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(n))


def _csv_wide() -> bytes:
    return (",".join(f"c{i}" for i in range(20_000)) + "\n" + ",".join("1" for _ in range(20_000)) + "\n").encode()


def _csv_long_field() -> bytes:
    return b"id,note\n1,short\n2," + b"x" * 200_000 + b"\n3,also short\n"


CASES: list[Case] = [
    # ZIP / DOCX expansion
    Case("docx_inflate_bomb", ".docx", _inflate_bomb(160), "FileLimitError", "zip_max_member_bytes"),
    Case("docx_ratio", ".docx", _inflate_bomb(64), "FileLimitError", "zip_max_ratio"),
    Case("docx_element_flood", ".docx", _element_flood, "FileLimitError", "max_elements"),
    Case("docx_two_million_paragraphs", ".docx", _tiny_paragraphs, "FileLimitError", "zip_max_ratio"),
    Case("docx_two_million_paragraphs_no_ratio", ".docx", _tiny_paragraphs, "FileLimitError", "max_elements",
         limits={"zip_max_ratio": 1e9}),
    Case("docx_paragraph_limit", ".docx", _paragraphs(1_500), "FileLimitError", "max_paragraphs",
         limits={"max_paragraphs": 1_000}),
    Case("docx_member_count", ".docx", _many_members, "FileLimitError", "zip_max_members",
         limits={"zip_max_members": 100}),
    Case("docx_member_size", ".docx", _big_member, "FileLimitError", "zip_max_member_bytes",
         limits={"zip_max_member_bytes": 1 << 20}),
    Case("docx_total_size", ".docx", _big_member, "FileLimitError", "zip_max_total_bytes",
         limits={"zip_max_total_bytes": 2 << 20}),
    # YAML front matter
    Case("yaml_billion_laughs", ".md", lambda: _front_matter(_billion_laughs()), "FileLimitError", "yaml_max_nodes"),
    Case("yaml_alias_count", ".md", lambda: _front_matter("a: &a x\nb: [" + ", ".join(["*a"] * 500) + "]\n"),
         "FileLimitError", "yaml_max_aliases"),
    Case("yaml_depth", ".md", lambda: _front_matter(_deep_yaml(200)), "FileLimitError", "yaml_max_depth"),
    Case("yaml_big_metadata", ".md", lambda: _front_matter("title: Big\nnotes: " + "word " * 40_000 + "\n"), None,
         "max_metadata_bytes",
         check=lambda text, meta: "notes" not in meta and "max_metadata_bytes" in " ".join(meta.get("warnings", []))),
    # PDF page trees
    Case("pdf_repeated_page", ".pdf", _pdf_repeated_page(20_000), "FileLimitError", "pdf_max_pages"),
    Case("pdf_repeated_page_under_limit", ".pdf", _pdf_repeated_page(2_000), "InputFileError", "twice"),
    Case("pdf_page_cycle", ".pdf", _pdf_cycle, "InputFileError", "twice"),
    Case("pdf_page_count", ".pdf", _pdf_many_pages(12_000), "FileLimitError", "pdf_max_pages"),
    Case("pdf_deep_tree", ".pdf", _pdf_deep_tree, "FileLimitError", "pdf_max_tree_depth"),
    Case("pdf_encrypted_no_password", ".pdf", _pdf_encrypted, "InputFileError", "password"),
    # markup and tables
    Case("html_element_flood", ".html", _html_flood, "FileLimitError", "max_elements"),
    Case("html_deep_divs", ".html", lambda: b"<html><body>" + b"<div>" * 200_000 + b"deep" + b"</div>" * 200_000,
         "FileLimitError", "max_depth"),
    Case("html_wide_row", ".html", lambda: b"<html><body><table><tr>" + b"<td>a" * 300_000 + b"</table>", None,
         check=lambda text, meta: text.startswith("a | a | a")),
    Case("html_misnested", ".html", lambda: b"<html><body>" + b"<b>x</p>" * 100_000, "FileLimitError", "max_depth"),
    Case("csv_row_limit", ".csv", lambda: _csv_rows(1_500), "FileLimitError", "csv_max_rows",
         limits={"csv_max_rows": 1_000}),
    Case("csv_wide_header", ".csv", _csv_wide, "FileLimitError", "csv_max_columns"),
    Case("csv_long_field", ".csv", _csv_long_field, None, "csv_max_field_chars",
         check=lambda text, meta: "row 3" in " ".join(meta.get("warnings", [])) and "also short" in text
         and "xxxx" not in text),
    Case("text_size", ".txt", lambda: b"word " * 300_000, "FileLimitError", "max_text_bytes",
         limits={"max_text_bytes": 1 << 20}),
    # super-linear parsing: Markdown, the loader with the most patterns, must read each
    *[Case(f"md_{name}", ".md", _payload(name), None, "",
           check=lambda text, meta: "Tail paragraph." in text) for name in TEXT_PAYLOADS],
]


if __name__ == "__main__":  # pragma: no cover
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")
    target.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        print(case.write(target))
