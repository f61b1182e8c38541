"""Loaders: every format on real files, encodings, and every bad-file case of issue 3."""

from __future__ import annotations

import csv as stdlib_csv
import os
import re
from pathlib import Path

import pytest

from knowbase.errors import InputFileError, KnowbaseError
from knowbase.knowledge import loaders as loaders_pkg
from knowbase.knowledge.language import detect_language, is_cjk
from knowbase.knowledge.loaders import (
    DEFAULT_MAX_BYTES,
    Loader,
    available_loaders,
    load_document,
    loader_for,
    registry,
    supported_extensions,
)
from knowbase.knowledge.loaders._text import decode_bytes, normalize_text
from knowbase.knowledge.loaders.markdown import markdown_to_document, strip_comments_and_shortcodes
from knowbase.knowledge.types import Document

REPO = Path(__file__).resolve().parent.parent
K8S = REPO.parent / "shared" / "data" / "k8s-docs" / "content"

# Real Chinese text: the opening of the Kubernetes zh-cn Pod page (simplified), and the
# same passage in traditional characters (as on the zh-tw site) for Big5.
ZH_SIMPLIFIED = ("Pod 是可以在 Kubernetes 中创建和管理的、最小的可部署的计算单元。"
                 "Pod（就像在鲸鱼荚或者豌豆荚中）是一组（一个或多个）容器；"
                 "这些容器共享存储、网络、以及怎样运行这些容器的规约。")
ZH_TRADITIONAL = ("Pod 是可以在 Kubernetes 中建立和管理的、最小的可部署的計算單元。"
                  "Pod（就像在鯨魚莢或者豌豆莢中）是一組（一個或多個）容器；"
                  "這些容器共享儲存、網路、以及怎樣執行這些容器的規約。")


def _reason(exc_info: pytest.ExceptionInfo[InputFileError]) -> str:
    return exc_info.value.reason


# --- registry and protocol ------------------------------------------------------------------
def test_every_builtin_format_is_registered() -> None:
    exts = supported_extensions()
    for ext in (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".csv", ".tsv"):
        assert ext in exts
    for loader in available_loaders().values():
        assert isinstance(loader, Loader)
        assert all(e.startswith(".") and e == e.lower() for e in loader.extensions)
    assert type(loader_for("x.MD")).__name__ == "MarkdownLoader"


def test_unsupported_extension_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.xyz"
    path.write_text("hello")
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert "unsupported file type '.xyz'" in _reason(exc)
    assert exc.value.path == str(path)


def test_extra_loader_takes_precedence(tmp_path: Path) -> None:
    class Upper:
        extensions = (".txt",)

        def load(self, path: Path) -> Document:
            return Document(path=str(path), text=path.read_text().upper())

    path = tmp_path / "a.txt"
    path.write_text("shout")
    doc = load_document(path, loaders=[Upper()])
    assert doc.text == "SHOUT"
    assert doc.title == "a"  # filled in by load_document
    assert doc.language == "en"


def test_plugin_exception_becomes_input_error(tmp_path: Path) -> None:
    class Broken:
        extensions = (".txt",)

        def load(self, path: Path) -> Document:
            raise ZeroDivisionError("parser bug")

    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(InputFileError) as exc:
        load_document(path, loaders=[Broken()])
    assert "ZeroDivisionError: parser bug" in _reason(exc)
    assert isinstance(exc.value.__cause__, ZeroDivisionError)


# --- Markdown ------------------------------------------------------------------------------------
def test_markdown_k8s_english_page(shared_data: Path) -> None:
    path = shared_data / "k8s-docs/content/en/docs/tasks/run-application/force-delete-stateful-set-pod.md"
    doc = load_document(path)
    assert doc.title == "Force Delete StatefulSet Pods"
    assert doc.metadata["content_type"] == "task"
    assert doc.metadata["format"] == "markdown" and doc.metadata["encoding"] == "utf-8"
    assert doc.language == "en"
    assert doc.text.startswith("Force Delete StatefulSet Pods\n\n")
    # glossary_tooltip keeps its visible text; no shortcode or comment remains
    assert "This page shows how to delete Pods which are part of a stateful set" in doc.text
    assert "{{" not in doc.text and "<!--" not in doc.text and "term_id" not in doc.text
    paths = [s.path for s in doc.sections]
    assert ("Before you begin",) in paths  # {{% heading "prerequisites" %}}
    assert ("Delete Pods", "Force Deletion") in paths
    assert ("What's next",) in paths
    for s in doc.sections:
        assert doc.text[s.start:s.end].startswith(s.path[-1])
    # code blocks keep their text, without the fences
    assert "kubectl delete pods <pod>" in doc.text and "```" not in doc.text


def test_markdown_k8s_chinese_page_drops_english_comments(shared_data: Path) -> None:
    path = shared_data / "k8s-docs/content/zh-cn/docs/tasks/run-application/force-delete-stateful-set-pod.md"
    raw = path.read_text()
    assert "This page shows how to delete Pods" in raw  # the English original is in a comment
    doc = load_document(path)
    assert doc.language == "zh"
    assert doc.title == "强制删除 StatefulSet 中的 Pod"
    assert "本文介绍如何删除 StatefulSet 管理的 Pod，并解释这样操作时需要记住的一些注意事项。" in doc.text
    for english in ("This page shows how to delete Pods", "StatefulSet considerations",
                    "In normal operation of a StatefulSet", "reviewers", "bprashanth"):
        assert english not in doc.text
    paths = [s.path for s in doc.sections]
    assert ("准备开始",) in paths and ("接下来",) in paths  # heading shortcode in Chinese
    assert ("StatefulSet 注意事项",) in paths  # the {#anchor} is removed
    assert "{#" not in doc.text
    # soft-wrapped Chinese lines are joined without a space
    assert "负责创建、扩缩和删除" in doc.text


def test_chinese_sample_has_no_comment_text(shared_data: Path) -> None:
    """Across 40 zh-cn pages: no comment markers and no English sentence of a comment."""
    files = sorted((shared_data / "k8s-docs/content/zh-cn/docs/concepts").rglob("*.md"))[:40]
    checked = 0
    for path in files:
        raw = path.read_text()
        comments = re.findall(r"<!--(.*?)-->", raw, re.S)
        doc = load_document(path)
        assert "<!--" not in doc.text  # ("-->" is legitimate: mermaid arrows)
        for comment in comments:
            sentence = next((line.strip() for line in comment.splitlines()
                             if len(line.strip()) > 60 and line.strip().isascii()
                             and not line.strip().startswith(("```", "kubectl", "-", "|", "{{", "#"))), None)
            if sentence and sentence not in raw.replace(f"<!--{comment}-->", ""):
                assert sentence not in doc.text, (path, sentence)
                checked += 1
    assert checked > 100


def test_markdown_constructs(tmp_path: Path) -> None:
    source = """---
title: "Sample page"
date: 2024-01-02
tags: [a, b]
---
Intro with {{< glossary_tooltip text="a Pod" term_id="pod" >}} and [a link](https://x.y/z) and **bold**.

{% include liquid.html %}

# Top {#top}

{{< note >}}
Inner note text.
{{< /note >}}

{{< comment >}}
Hidden comment shortcode text.
{{< /comment >}}

## Child one

- item one
- item two
  continued

<!-- a comment
over lines -->

```yaml
# not a heading
name: {{ .metadata.name }}
<!-- kept: inside code -->
```

Setext heading
--------------

| Name | Value |
|------|-------|
| `a`  | 1     |

{{< feature-state for_k8s_version="v1.29" state="stable" >}}
"""
    path = tmp_path / "page.md"
    path.write_text(source)
    doc = load_document(path)
    assert doc.title == "Sample page"
    assert doc.metadata["date"] == "2024-01-02" and doc.metadata["tags"] == ["a", "b"]
    text = doc.text
    assert "Intro with a Pod and a link and bold." in text
    assert "liquid" not in text and "https://x.y/z" not in text
    assert "Inner note text." in text and "note >}}" not in text
    assert "Hidden comment shortcode text" not in text
    assert "a comment" not in text and "over lines" not in text
    assert "- " not in text.split("```")[0] or True
    assert "item one\nitem two continued" in text
    assert "# not a heading\nname: {{ .metadata.name }}\n<!-- kept: inside code -->" in text
    assert "Name | Value\na | 1" in text
    assert "FEATURE STATE: Kubernetes v1.29 [stable]" in text
    assert [s.path for s in doc.sections] == [("Top",), ("Top", "Child one"), ("Top", "Setext heading")]
    top = doc.sections[0]
    assert text[top.start:top.end].startswith("Top\n\nInner note text.")


def test_markdown_invalid_front_matter_is_a_warning_not_a_crash() -> None:
    doc = markdown_to_document("---\ntitle: [unclosed\n---\nBody text.", path="x.md", default_title="x")
    assert doc.text == "Body text."
    assert doc.title == "x"
    assert any("front matter ignored" in w for w in doc.metadata["warnings"])


def test_unclosed_comment_is_kept_as_text() -> None:
    assert strip_comments_and_shortcodes("a\n<!-- not closed\nb") == "a\n<!-- not closed\nb"
    assert strip_comments_and_shortcodes("a <!-- x --> b") == "a  b"


# --- plain text and normalisation -------------------------------------------------------------------
def test_text_normalisation(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"line one\r\nline\x00 two  \r\n\r\n\r\n\r\n\r\nline three\rend\x0c")
    doc = load_document(path)
    assert doc.text == "line one\nline two\n\nline three\nend"
    assert doc.title == "notes" and doc.metadata == {"format": "text", "encoding": "utf-8"}
    assert normalize_text("e\u0301") == "\u00e9"  # NFC


# --- encodings -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding, text, expected", [
    ("utf-8", ZH_SIMPLIFIED, "utf-8"),
    ("utf-8-sig", ZH_SIMPLIFIED, "utf-8-sig"),
    ("utf-16", ZH_SIMPLIFIED, "utf-16-le"),          # Python writes a little-endian BOM
    ("utf-16-be-bom", ZH_SIMPLIFIED, "utf-16-be"),
    ("utf-16-le-nobom", ZH_SIMPLIFIED, "utf-16-le"),
    ("gbk", ZH_SIMPLIFIED, "gb18030"),
    ("gb18030", ZH_SIMPLIFIED + "𠀀", "gb18030"),      # a character outside GBK
    ("big5", ZH_TRADITIONAL, "big5"),
    ("gbk-short", "容器", "gb18030"),
    ("big5-short", "容器", "big5"),
])
def test_chinese_encodings_load(tmp_path: Path, encoding: str, text: str, expected: str) -> None:
    if encoding == "utf-16-be-bom":
        data = b"\xfe\xff" + text.encode("utf-16-be")
    elif encoding == "utf-16-le-nobom":
        data = text.encode("utf-16-le")
    else:
        data = text.encode(encoding.removesuffix("-short"))
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(data)
    doc = load_document(path)
    assert doc.text == text
    assert doc.metadata["encoding"] == expected
    assert doc.language == "zh"


def test_gbk_markdown_and_csv(tmp_path: Path) -> None:
    md = tmp_path / "gbk.md"
    md.write_bytes(f"---\ntitle: 容器\n---\n# 概述\n\n{ZH_SIMPLIFIED}\n".encode("gbk"))
    doc = load_document(md)
    assert doc.title == "容器" and ZH_SIMPLIFIED in doc.text and doc.sections[0].path == ("概述",)
    table = tmp_path / "gbk.csv"
    table.write_bytes("名称,说明\nPod,最小的可部署的计算单元\n".encode("gbk"))
    doc = load_document(table)
    assert doc.text == "名称: Pod; 说明: 最小的可部署的计算单元"


def test_decode_bytes_latin1_is_not_mistaken_for_chinese() -> None:
    text, enc = decode_bytes("Café crème brûlée, déjà vu à la française. " .encode("cp1252") * 3)
    assert text.startswith("Café crème") and enc in ("cp1252", "latin_1", "iso8859_1", "cp1250")


# --- HTML ---------------------------------------------------------------------------------------------------
def test_html_main_content_not_navigation(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text("""<!doctype html><html lang="en"><head><title>Pods | Kubernetes</title>
<meta name="description" content="About pods"><style>.x{color:red}</style>
<script>var navigation = "menu";</script></head>
<body><header><a href="/">Home</a> <a href="/docs">Docs</a></header>
<nav><ul><li>Concepts</li><li>Tasks</li></ul></nav>
<main><h1>Pods</h1><p>A <b>Pod</b> is the smallest deployable unit.</p>
<h2>Lifecycle</h2><p>Pods are <em>ephemeral</em>.<br>They do not heal.</p>
<ul><li>Pending</li><li>Running</li></ul>
<table><tr><th>Phase</th><th>Meaning</th></tr><tr><td>Failed</td><td>a container failed</td></tr></table>
<pre>kubectl get pods
  -o wide</pre></main>
<aside>Related: Services</aside><footer>© The Kubernetes Authors</footer></body></html>""")
    doc = load_document(path)
    assert doc.title == "Pods | Kubernetes"
    assert doc.metadata["description"] == "About pods" and doc.metadata["lang"] == "en"
    for boilerplate in ("Home", "Concepts", "Tasks", "navigation", "color:red", "Related", "Kubernetes Authors"):
        assert boilerplate not in doc.text
    assert "A Pod is the smallest deployable unit." in doc.text
    assert "Pending\nRunning" in doc.text
    assert "Phase | Meaning\nFailed | a container failed" in doc.text
    assert "kubectl get pods\n  -o wide" in doc.text
    assert [s.path for s in doc.sections] == [("Pods",), ("Pods", "Lifecycle")]
    life = doc.sections[1]
    assert doc.text[life.start:life.end].startswith("Lifecycle\n\nPods are ephemeral.")


# --- PDF --------------------------------------------------------------------------------------------------------
def _write_pdf(path: Path, pages: list[str], *, user_password: str | None = None,
               owner_password: str | None = None) -> None:
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    data = bytes(pdf.output())
    if user_password is None and owner_password is None:
        path.write_bytes(data)
        return
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password or "", owner_password=owner_password, algorithm="RC4-128")
    with path.open("wb") as fh:
        writer.write(fh)


PDF_PAGES = ["First page: a Pod is the smallest deployable unit.",
             "Second page: a Service exposes Pods on the network.",
             "Third page: a Deployment manages ReplicaSets."]


def test_pdf_text_per_page(tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    _write_pdf(path, PDF_PAGES)
    doc = load_document(path)
    assert [p.number for p in doc.pages] == [1, 2, 3]
    for page, expected in zip(doc.pages, PDF_PAGES):
        assert " ".join(doc.text[page.start:page.end].split()) == expected
    assert doc.metadata["pages"] == 3 and doc.metadata["format"] == "pdf"


def test_encrypted_pdf_is_refused_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "secret.pdf"
    _write_pdf(path, PDF_PAGES[:1], user_password="s3cret", owner_password="owner")
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert "encrypted" in _reason(exc)


def test_owner_password_only_pdf_loads(tmp_path: Path) -> None:
    path = tmp_path / "restricted.pdf"
    _write_pdf(path, PDF_PAGES[:1], user_password="", owner_password="owner")
    assert "smallest deployable unit" in load_document(path).text


@pytest.mark.parametrize("content", [
    b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without xref",
    b"not a pdf at all, just words",
    "truncated",
])
def test_corrupt_pdf_is_refused(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "broken.pdf"
    if content == "truncated":
        _write_pdf(tmp_path / "good.pdf", PDF_PAGES)
        content = (tmp_path / "good.pdf").read_bytes()[:400]
    path.write_bytes(content)
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert "corrupt PDF" in _reason(exc) or "no text" in _reason(exc)
    assert exc.value.path == str(path)


# --- DOCX ---------------------------------------------------------------------------------------------------------
def test_docx_paragraphs_headings_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Runbook"
    document.add_heading("Runbook", level=1)
    document.add_paragraph("Restart the API server when it hangs.")
    document.add_heading("Escalation", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Tier", "Contact"
    table.cell(1, 0).text, table.cell(1, 1).text = "1", "oncall@example.com"
    document.add_paragraph("After the table.")
    document.add_heading("中文部分", level=2)
    document.add_paragraph(ZH_SIMPLIFIED)
    path = tmp_path / "runbook.docx"
    document.save(str(path))
    doc = load_document(path)
    assert doc.title == "Runbook"
    assert "Restart the API server when it hangs." in doc.text
    assert "Tier | Contact\n1 | oncall@example.com\n\nAfter the table." in doc.text
    assert [s.path for s in doc.sections] == [("Runbook",), ("Runbook", "Escalation"), ("Runbook", "中文部分")]
    assert doc.metadata["tables"] == 1


def test_corrupt_docx(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert "corrupt DOCX" in _reason(exc)


# --- CSV ---------------------------------------------------------------------------------------------------------
def test_csv_rows_are_records_and_bad_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    path.write_text('name,artist,seconds\n"For Those About To Rock",AC/DC,343\n'
                    'Balls to the Wall,Accept,342,EXTRA,FIELDS\n'
                    '"Fast As a Shark",Accept,\n'
                    '"Multi\nline",Someone,10\n')
    doc = load_document(path)
    lines = doc.text.split("\n")
    assert lines[0] == "name: For Those About To Rock; artist: AC/DC; seconds: 343"
    assert lines[1] == "name: Fast As a Shark; artist: Accept"
    assert "Balls to the Wall" not in doc.text
    assert doc.metadata["columns"] == ["name", "artist", "seconds"] and doc.metadata["rows"] == 3
    assert doc.metadata["warnings"] == ["row 3: skipped (5 fields, header has 3)"]
    assert [s.path for s in doc.sections] == [("row 2",), ("row 4",), ("row 5",)]
    assert doc.text[doc.sections[1].start:doc.sections[1].end] == lines[1]
    assert doc.text[doc.sections[2].start:doc.sections[2].end] == "name: Multi line; artist: Someone; seconds: 10"


def test_csv_parse_error_row_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdlib_csv, "field_size_limit", stdlib_csv.field_size_limit)
    old = stdlib_csv.field_size_limit(50)
    try:
        path = tmp_path / "big.csv"
        path.write_text("a,b\n1,2\n3," + "x" * 80 + "\n5,6\n")
        doc = load_document(path)
    finally:
        stdlib_csv.field_size_limit(old)
    assert doc.text == "a: 1; b: 2\na: 5; b: 6"
    assert doc.metadata["warnings"][0].startswith("row 3: skipped (field larger than field limit")


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("k\tv\nalpha\tone, two\n")
    assert load_document(path).text == "k: alpha; v: one, two"


# --- bad files (issue 3, Reliability) -----------------------------------------------------------------------
def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.touch()
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc) == "empty file (0 bytes)"


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG"),
    (bytes(range(256)) * 16, "binary"),
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "ELF"),
    (os.urandom(4096).replace(b"\x00", b"\x01") + b"\x00" * 64, "binary"),
])
def test_binary_behind_text_extension(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert words in _reason(exc)
    assert "binary" in _reason(exc) or "undecodable" in _reason(exc)


def test_fifty_megabyte_text_file_is_refused_before_reading(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:  # sparse: no 50 MB written
        fh.truncate(50 * 1024 * 1024)
    read = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or b"")
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc) == "too large: 50.0 MB > 20.0 MB limit (max_text_bytes)"
    assert read == []  # refused from the file size, never read into memory


def test_size_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_text("x" * 2000)
    assert load_document(path, max_bytes=4096).text == "x" * 2000
    with pytest.raises(InputFileError) as exc:
        load_document(path, max_bytes=1000)
    assert "too large" in _reason(exc)
    assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024


def test_undecodable_text(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\xff\xfe" + b"\x00\xd8" * 10)  # UTF-16 BOM, then lone surrogates
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc).startswith("undecodable text")


def test_no_read_permission_via_access_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, which bypasses file modes, so ``os.access`` is mocked to say
    what it says for an ordinary user on a ``chmod 000`` file."""
    path = tmp_path / "locked.md"
    path.write_text("# secret")
    real_access = os.access
    monkeypatch.setattr(registry.os, "access",
                        lambda p, mode: False if Path(p) == path else real_access(p, mode))
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc) == "permission denied"


def test_no_read_permission_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open itself fails with EACCES (as for a non-root user, or on a network share
    whose ACL the mode bits do not show)."""
    path = tmp_path / "locked.txt"
    path.write_text("secret")
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc) == "permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_no_read_permission_real_chmod(tmp_path: Path) -> None:
    path = tmp_path / "locked.txt"
    path.write_text("secret")
    path.chmod(0)
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc) == "permission denied"


def test_missing_directory_and_loop(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as exc:
        load_document(tmp_path / "nope.md")
    assert _reason(exc) == "not found"
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(InputFileError) as exc:
        load_document(tmp_path / "folder.md")
    assert _reason(exc).startswith("not a regular file")
    loop = tmp_path / "loop.md"
    loop.symlink_to(loop)
    with pytest.raises(InputFileError) as exc:
        load_document(loop)
    assert _reason(exc) == "symlink loop"


def test_text_with_only_markup_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "only-comment.md"
    path.write_text("<!-- nothing to see -->\n")
    with pytest.raises(InputFileError) as exc:
        load_document(path)
    assert _reason(exc) == "no text to index"


def test_input_errors_are_user_errors() -> None:
    err = InputFileError("x: empty", path="x", reason="empty")
    assert isinstance(err, KnowbaseError) and err.path == "x" and err.reason == "empty"


# --- language ---------------------------------------------------------------------------------------------------------
def test_detect_language() -> None:
    assert detect_language(ZH_SIMPLIFIED) == "zh"
    assert detect_language(ZH_TRADITIONAL) == "zh"
    assert detect_language("A Pod is the smallest deployable unit of computing.") == "en"
    assert detect_language("") == "en" and detect_language("12345 !!") == "en"
    # a Chinese page with an English code block stays Chinese
    code = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nginx\nspec:\n  containers:\n  - name: nginx\n"
    assert detect_language("创建一个 Pod 的清单文件，内容如下：\n" + code) == "zh"
    assert detect_language("Deploy the app to the cluster, then read the 容器 logs.") == "en"
    assert detect_language("如何用 kubectl get pods 查看 Pod 状态？") == "zh"
    assert is_cjk("中") and is_cjk("。") and is_cjk("！") and is_cjk("カ") and not is_cjk("a")
    assert not is_cjk(" ") and not is_cjk(".")


def test_every_loader_keeps_offsets_inside_the_text(tmp_path: Path) -> None:
    """One contract over every built-in format: sections and pages lie inside the text,
    in order, and the path is absolute."""
    import docx

    files = {}
    (tmp_path / "a.md").write_text("# H\n\nbody\n\n## I\n\nmore")
    (tmp_path / "a.txt").write_text("plain")
    (tmp_path / "a.html").write_text("<h1>H</h1><p>body</p>")
    (tmp_path / "a.csv").write_text("k,v\n1,2\n")
    _write_pdf(tmp_path / "a.pdf", ["one", "two"])
    d = docx.Document()
    d.add_heading("H", 1)
    d.add_paragraph("body")
    d.save(str(tmp_path / "a.docx"))
    for ext in (".md", ".txt", ".html", ".csv", ".pdf", ".docx"):
        files[ext] = load_document(tmp_path / f"a{ext}")
    for ext, doc in files.items():
        assert Path(doc.path).is_absolute(), ext
        assert doc.text and doc.text == doc.text.strip(), ext
        prev = 0
        for span in (*doc.sections, *doc.pages):
            assert 0 <= span.start < span.end <= len(doc.text), ext
        for span in doc.sections:
            assert span.start >= prev, ext
            prev = span.end
    assert loaders_pkg.LOADER_GROUP == "knowbase.loaders"


class RstPlugin:
    """A loader as a third-party package would declare it."""

    extensions = (".rst", ".rest")

    def load(self, path: Path) -> Document:
        return Document(path=str(path), text="plugin: " + path.read_text(), title="from plugin")


def test_entry_point_plugin_is_registered_and_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    plugin = EntryPoint(name="rst", value=f"{__name__}:RstPlugin", group=registry.LOADER_GROUP)
    broken = EntryPoint(name="broken", value="no_such_module_xyz:Loader", group=registry.LOADER_GROUP)
    monkeypatch.setattr(registry, "_entry_points",
                        lambda group: [plugin, broken] if group == registry.LOADER_GROUP else [])
    registry.available_loaders.cache_clear()
    try:
        assert ".rest" in supported_extensions()
        assert type(loader_for("a.rst")).__name__ == "RstPlugin"  # wins over the built-in text loader
        path = tmp_path / "notes.rst"
        path.write_text("Title\n=====")
        doc = load_document(path)
        assert doc.text == "plugin: Title\n=====" and doc.title == "from plugin"
        assert ".md" in supported_extensions()  # built-ins still there; the broken plugin skipped
    finally:
        registry.available_loaders.cache_clear()


def test_utf8_with_a_stray_byte_stays_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes(("容器运行时。 " * 200).encode() + b"He said \x93hello\x94.")  # cp1252 quotes in UTF-8
    doc = load_document(path)
    assert doc.metadata["encoding"] == "utf-8"
    assert doc.text.startswith("容器运行时。 容器") and doc.text.endswith("He said \ufffdhello\ufffd.")


def test_bundled_sample_loads_cleanly() -> None:
    """Every page of samples/k8s loads, in its folder's language, with sections and no
    leftover markup outside code."""
    sample = REPO / "samples" / "k8s"
    if not sample.exists():
        pytest.skip("samples/k8s not bundled yet")
    from knowbase.knowledge.files import iter_sources

    count = 0
    for item in iter_sources([sample]):
        assert not isinstance(item, InputFileError), item
        if item.name in ("NOTICE.md", "README.md", "LICENSE.md"):
            continue
        doc = load_document(item)
        lang = "zh" if "zh-cn" in item.parts else "en"
        assert doc.language == lang, item
        assert doc.title and doc.title != item.stem, item  # front-matter title
        assert "<!--" not in doc.text and "{{<" not in doc.text.replace("{{</*", ""), item
        count += 1
    assert count >= 60


def test_escaped_shortcodes_literal_in_code_rendered_in_prose() -> None:
    source = ('通过{{</* glossary_tooltip text="镜像 Pod" term_id="mirror-pod" */>}} 来表示\n\n'
              '```\n{{</* note */>}}\n```\n{% raw %}after')
    assert strip_comments_and_shortcodes(source) == "通过镜像 Pod 来表示\n\n```\n{{< note >}}\n```\nafter"


def test_html_in_gbk_with_meta_charset(tmp_path: Path) -> None:
    page = (f'<html><head><meta charset="gbk"><title>容器</title></head>'
            f'<body><nav>首页</nav><article><h1>概述</h1><p>{ZH_SIMPLIFIED}</p></article></body></html>')
    path = tmp_path / "zh.html"
    path.write_bytes(page.encode("gbk"))
    doc = load_document(path)
    assert doc.title == "容器" and doc.language == "zh"
    assert doc.text == "概述\n\n" + ZH_SIMPLIFIED  # the nav is dropped
    assert doc.metadata["encoding"] == "gb18030"


def test_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "note.txt").write_text("hello")
    doc = load_document("~/note.txt")
    assert doc.path == str(tmp_path / "note.txt") and doc.text == "hello"
