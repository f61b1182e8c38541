"""Issue 12, hostile and unusual files: encodings, encrypted PDFs, table headers, splitter
offsets, front matter, file limits through Settings, and the ingest options (CLI and
Python API). The bombs themselves run in tests/test_hostile_files.py."""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli
from knowbase.config import Settings
from knowbase.errors import ConfigError, FileLimitError, InputFileError
from knowbase.knowledge.loaders import LoadOptions, load_document
from knowbase.knowledge.loaders._text import decode_text, read_text
from knowbase.knowledge.loaders.markdown import markdown_to_document
from knowbase.knowledge.splitter import split_document, split_text
from knowbase.models.fake import fake_count_tokens
from knowbase.safety.files import FileLimits, check_yaml

FRENCH = ("Crème brûlée, café au lait et pâtisserie française : les élèves apprennent à préparer des crêpes, "
          "des éclairs et des madeleines. Où est la forêt ? À côté du château, près de l'église.\n")
GERMAN = "Größere Bäume wachsen über die Straße. Die Brücke führt über den Fluss zum Rathaus.\n"
SPANISH = "El niño comió una manzana por la mañana. ¿Dónde está la estación? ¡Qué día más bonito!\n"
CHINESE = "冰雪节是哈尔滨最著名的节日之一，每年吸引大量游客前来参观。中国的传统文化源远流长。\n"
TRADITIONAL = "台北是台灣的首都，這個城市有很多歷史建築和現代化的設施。我們明天見。\n"


# --- encodings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "encoding"), [
    ("Crème brûlée\n", "latin-1"), (FRENCH, "latin-1"), (FRENCH * 20, "latin-1"), (FRENCH, "cp1252"),
    (GERMAN, "latin-1"), (SPANISH * 10, "cp1252"), ("Le prix : 12 € – « très bon »\n", "cp1252"),
])
def test_western_european_text_is_read_as_cp1252(text: str, encoding: str) -> None:
    decoded = decode_text(text.encode(encoding))
    assert decoded.text == text  # not 'CrĶme br¹lķe' (cp775)
    assert decoded.encoding == "cp1252" and decoded.warnings == ()


@pytest.mark.parametrize(("text", "encoding", "expected"), [
    (CHINESE, "gbk", "gb18030"), (CHINESE * 30, "gbk", "gb18030"),
    (CHINESE + "𠀀𠀁 是扩展汉字。\n", "gb18030", "gb18030"),
    (TRADITIONAL * 10, "big5", "big5"),
    (FRENCH + CHINESE, "utf-16", "utf-16-le"),
    (FRENCH + CHINESE, "utf-16-le", "utf-16-le"), (FRENCH + CHINESE, "utf-16-be", "utf-16-be"),
    ("Łódź jest dużym miastem w Polsce, niedaleko Warszawy. To jest zdanie.\n" * 5, "cp1250", "cp1250"),
    ("Привет, мир! Это простой текст на русском языке.\n" * 5, "cp1251", "cp1251"),
])
def test_other_encodings_still_detected(text: str, encoding: str, expected: str) -> None:
    decoded = decode_text(text.encode(encoding))
    assert decoded.text.removeprefix("\ufeff") == text
    assert decoded.encoding.replace("_", "-").startswith(expected)


def test_unsure_detection_warns_and_names_the_file(tmp_path: Path) -> None:
    """Greek in ISO 8859-7 also reads as other Greek code pages: the document carries a
    warning and the ingest report names the file."""
    path = tmp_path / "greek.txt"
    path.write_bytes(("Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. " * 3).encode("iso8859-7"))
    decoded = read_text(path)
    doc = load_document(path)
    if decoded.warnings:  # the statistics found rivals: the warning must say so
        assert doc.metadata["warnings"][0].startswith(f"encoding uncertain: read as {decoded.encoding}")
    stray = tmp_path / "stray.txt"
    stray.write_bytes(("plain UTF-8 text " * 200).encode() + b"\x92 and more\n")
    doc = load_document(stray)
    assert doc.metadata["encoding"] == "utf-8"
    assert "1 byte(s) not valid UTF-8" in doc.metadata["warnings"][0]


def test_explicit_encoding_is_never_overridden(tmp_path: Path) -> None:
    path = tmp_path / "menu.txt"
    path.write_bytes("Crème brûlée\n".encode())  # UTF-8, read as Latin-1 on purpose
    doc = load_document(path, options=LoadOptions(encoding="latin-1"))
    assert doc.text == "CrÃ¨me brÃ»lÃ©e" and doc.metadata["encoding"] == "iso8859-1"
    gbk = tmp_path / "zh.md"
    gbk.write_bytes(("# 标题\n\n" + CHINESE).encode("gbk"))
    assert "冰雪节" in load_document(gbk, options=LoadOptions(encoding="gbk")).text
    with pytest.raises(InputFileError) as exc:
        load_document(gbk, options=LoadOptions(encoding="utf-8"))
    assert str(gbk) in str(exc.value) and "not utf-8" in exc.value.reason
    with pytest.raises(ConfigError):
        LoadOptions(encoding="no-such-codec")


# --- encrypted PDFs ------------------------------------------------------------------------------
def _encrypted_pdf(path: Path, *, user: str, algorithm: str, text: str = "The secret plan is in Paris.") -> Path:
    fpdf = pytest.importorskip("fpdf")
    from pypdf import PdfReader, PdfWriter

    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, text)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(pdf.output()))))
    writer.encrypt(user_password=user, owner_password="owner-pw", algorithm=algorithm)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
def test_encrypted_pdf_opens_with_empty_or_given_password(tmp_path: Path, algorithm: str) -> None:
    open_pdf = _encrypted_pdf(tmp_path / "open.pdf", user="", algorithm=algorithm)
    assert "secret plan is in Paris" in load_document(open_pdf).text  # owner password only
    locked = _encrypted_pdf(tmp_path / "locked.pdf", user="s3cret", algorithm=algorithm)
    with pytest.raises(InputFileError) as exc:
        load_document(locked)
    assert "password" in exc.value.reason and str(locked) in str(exc.value)
    with pytest.raises(InputFileError) as exc:
        load_document(locked, options=LoadOptions(pdf_password="wrong"))
    assert exc.value.reason.startswith("encrypted PDF: wrong password")
    assert "Paris" in load_document(locked, options=LoadOptions(pdf_password="s3cret")).text
    by_path = LoadOptions(pdf_password="wrong", pdf_passwords={str(locked): "s3cret"})
    assert "Paris" in load_document(locked, options=by_path).text
    by_name = LoadOptions(pdf_passwords={"locked.pdf": "s3cret"})
    assert "Paris" in load_document(locked, options=by_name).text


def test_ingest_takes_pdf_passwords_and_cli_flag(tmp_path: Path) -> None:
    folder = tmp_path / "pdfs"
    folder.mkdir()
    _encrypted_pdf(folder / "a.pdf", user="s3cret", algorithm="AES-256", text="Alpha document about Paris.")
    runner = CliRunner()
    assert runner.invoke(cli, ["kb", "create", "p", "--embedder", "fake"]).exit_code == 0
    result = runner.invoke(cli, ["kb", "ingest", "p", str(folder), "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and "password" in report["failed"][0]["reason"]
    result = runner.invoke(cli, ["kb", "ingest", "p", str(folder), "--json", "--pdf-password", "s3cret"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["added"]) == 1


# --- tables ------------------------------------------------------------------------------------
def _table_md(rows: int) -> str:
    return ("# Inventory\n\nStock levels per warehouse.\n\n| Item | Warehouse | Count |\n|---|---|---:|\n"
            + "".join(f"| part-{i:03d} | north-{i % 4} | {i * 7} |\n" for i in range(rows)) + "\nEnd of the list.\n")


@pytest.mark.parametrize("count", [len, fake_count_tokens])
def test_every_chunk_with_table_rows_repeats_the_header(count) -> None:
    doc = markdown_to_document(_table_md(40), path="inv.md")
    [table] = doc.tables
    header = doc.text[table.start:table.header_end]
    assert header == "Item | Warehouse | Count"
    size = 400 if count is len else 60
    chunks = split_document(doc, count_tokens=count, chunk_size=size, chunk_overlap=size // 10, max_tokens=size)
    with_rows = [c for c in chunks if re.search(r"part-\d{3}", c.text)]
    assert len(with_rows) >= 4
    for c in with_rows:
        assert header in c.text  # was in 1 of 5 chunks
        assert c.text[c.repeated:] == doc.text[c.start:c.end]  # the offsets give the rows
        assert c.tokens == count(c.text) <= size
        if c.repeated:
            assert c.text[:c.repeated] == header + "\n" and c.start >= table.header_end
    rows = {m for c in chunks for m in re.findall(r"part-\d{3}", c.text[c.repeated:])}
    assert len(rows) == 40  # every row kept


def test_html_and_docx_tables_repeat_their_header(tmp_path: Path) -> None:
    html = tmp_path / "t.html"
    html.write_text("<html><body><h1>Parts</h1><table><tr><th>Item</th><th>Count</th></tr>"
                    + "".join(f"<tr><td>part-{i:03d}</td><td>{i}</td></tr>" for i in range(60))
                    + "</table></body></html>", encoding="utf-8")
    docx = pytest.importorskip("docx")
    d = docx.Document()
    d.add_heading("Parts", 1)
    t = d.add_table(rows=61, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "Item", "Count"
    for i in range(60):
        t.cell(i + 1, 0).text, t.cell(i + 1, 1).text = f"part-{i:03d}", str(i)
    d.save(str(tmp_path / "t.docx"))
    for path in (html, tmp_path / "t.docx"):
        doc = load_document(path)
        assert [doc.text[t.start:t.header_end] for t in doc.tables] == ["Item | Count"]
        chunks = split_document(doc, count_tokens=len, chunk_size=200, chunk_overlap=20, max_tokens=200)
        assert len(chunks) >= 4
        assert all(c.text.startswith("Item | Count\n") or c.start <= doc.tables[0].start for c in chunks)


# --- splitter offsets ----------------------------------------------------------------------------
_WORDS = ["a", "bb", "ccc.", "dd,", "e\n", "\n\n", "ffff", "g!", "hh;", "中文", "。", " ", "x" * 30, "| r |"]


@pytest.mark.parametrize("seed_block", range(4))
def test_chunk_starts_strictly_increase_and_none_contains_another(seed_block: int) -> None:
    """Property test over 2,000 random texts, sizes and overlaps, counting characters and
    fake tokens (the case of the issue: character counting with overlap gave two chunks
    starting at one offset)."""
    for seed in range(seed_block * 500, seed_block * 500 + 500):
        rng = random.Random(seed)
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 200)))
        size = rng.randint(2, 60)
        overlap = rng.randint(0, size - 1)
        for count in (len, fake_count_tokens):
            chunks = split_text(text, count_tokens=count, chunk_size=size, chunk_overlap=overlap, max_tokens=size)
            for c in chunks:
                assert text[c.start:c.end] == c.text and c.tokens <= size, (seed, count)
            for a, b in zip(chunks, chunks[1:]):
                assert b.start > a.start and b.end > a.end, (seed, count.__name__, size, overlap)
            covered = bytearray(len(text))
            for c in chunks:
                covered[c.start:c.end] = b"\x01" * (c.end - c.start)
            assert all(covered[k] or text[k].isspace() for k in range(len(text))), seed


# --- front matter ----------------------------------------------------------------------------------
def test_front_matter_aliases_within_limits_still_load() -> None:
    doc = markdown_to_document("---\ntitle: T\nbase: &b {owner: ops, tier: 1}\nprod: *b\n---\n# T\n\nBody.\n")
    assert doc.metadata["prod"] == {"owner": "ops", "tier": 1}


def test_yaml_check_counts_nodes_after_alias_expansion() -> None:
    small = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    check_yaml(small, "f.md", FileLimits(yaml_max_nodes=20))  # 14 nodes expanded
    with pytest.raises(FileLimitError) as exc:
        check_yaml(small, "f.md", FileLimits(yaml_max_nodes=12))
    assert exc.value.limit == "yaml_max_nodes" and "f.md" in str(exc.value)


# --- limits through Settings ---------------------------------------------------------------------
def test_file_limits_come_from_config_toml(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[file_limits]\npdf_max_pages = 50\nzip_max_ratio = 50.5\n")
    limits = Settings.load(home).file_limits
    assert (limits.pdf_max_pages, limits.zip_max_ratio, limits.max_paragraphs) == (50, 50.5, 100_000)
    (home / "config.toml").write_text("[file_limits]\npdf_max_page = 50\n")
    with pytest.raises(ConfigError, match="unknown file limit"):
        Settings.load(home)


def test_ingest_applies_settings_limits_and_carries_on(tmp_path: Path) -> None:
    from knowbase.knowledge.base import KnowledgeBase

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.csv").write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(50)))
    (folder / "ok.md").write_text("# Fine\n\nA small document.\n")
    settings = Settings.load().with_(file_limits=FileLimits(csv_max_rows=10))
    with KnowledgeBase.create("lim", embedder="fake", settings=settings) as kb:
        report = kb.ingest(folder)
    assert [Path(p).name for p in report.added] == ["ok.md"]
    [(path, reason)] = report.failed
    assert Path(path).name == "big.csv" and "csv_max_rows" in reason


def test_cli_ingest_encoding_and_links(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "menu.txt").write_bytes("Crème brûlée\n".encode("latin-1"))
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "\x1b]52;c;aGk=\x07x.txt").symlink_to("/etc/hostname")  # a terminal escape in the name
    runner = CliRunner()
    assert runner.invoke(cli, ["kb", "create", "c", "--embedder", "fake"]).exit_code == 0
    result = runner.invoke(cli, ["kb", "ingest", "c", str(folder)])
    assert result.exit_code == 0, result.output
    assert "not followed: " in result.stderr and "passwd.txt: symlink leaves the folder" in result.stderr
    assert "\x1b" not in result.stderr and "\\u001b]52;c;aGk=\\u0007x.txt" in result.stderr
    result = runner.invoke(cli, ["kb", "search", "c", "brûlée", "--json"])
    assert "Crème brûlée" in result.stdout
    result = runner.invoke(cli, ["kb", "ingest", "c", str(folder), "--encoding", "bogus"])
    assert result.exit_code == 2 and "unknown encoding" in result.output
    result = runner.invoke(cli, ["kb", "ingest", "c", str(folder), "--follow-links", "--json"])
    report = json.loads(result.stdout)
    assert sorted(Path(p).name[-6:] for p in report["added"]) == ["\x07x.txt", "wd.txt"]
    assert report["ignored"] == []


def test_binary_junk_behind_a_byte_order_mark_is_refused(tmp_path: Path) -> None:
    """Found by a new user: FF FE and binary bytes were read as UTF-16 and indexed as mojibake."""
    from knowbase.errors import InputFileError
    from knowbase.knowledge.loaders._text import decode_text

    junk = b"\xff\xfe" + bytes([1, 0, 2, 0, 0x1B, 0, 7, 0, 65, 0, 0, 0, 5, 0, 66, 0, 1, 0, 2, 0]) * 50
    with pytest.raises(InputFileError, match="binary content"):
        decode_text(junk, path=tmp_path / "notutf.md")
    assert decode_text("\ufeff第一行\n第二行".encode("utf-16-le"), path="ok.txt").text.endswith("第二行")
