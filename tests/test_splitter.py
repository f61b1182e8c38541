"""split_document: exact offsets, token limits, structure, overlap, Chinese, pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from knowbase.errors import ConfigError
from knowbase.knowledge.files import iter_sources
from knowbase.knowledge.loaders import load_document
from knowbase.knowledge.splitter import split_document, split_text
from knowbase.knowledge.types import Document, Page, Section
from knowbase.models.fake import fake_count_tokens

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "k8s"


class Counter:
    """Wraps a token counter and counts its calls."""

    def __init__(self, fn: Callable[[str], int] = fake_count_tokens) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        return self.fn(text)


def _sample_docs(shared_data: Path) -> list[Document]:
    """The bundled sample when present, else the shared Kubernetes concepts (en + zh-cn)."""
    roots = [SAMPLE] if SAMPLE.exists() else [shared_data / "k8s-docs/content/en/docs/concepts/workloads",
                                              shared_data / "k8s-docs/content/zh-cn/docs/concepts/workloads",
                                              shared_data / "k8s-docs/content/en/docs/tasks/configure-pod-container",
                                              shared_data / "k8s-docs/content/zh-cn/docs/tasks/configure-pod-container"]
    docs = [load_document(p) for p in iter_sources(roots) if isinstance(p, Path)]
    assert len(docs) > 50
    return docs


def _check_chunks(doc: Document, chunks, count: Callable[[str], int], max_tokens: int) -> None:
    text = doc.text
    covered = bytearray(len(text))
    section_paths = {s.path for s in doc.sections} | {()}
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert text[chunk.start:chunk.end] == chunk.text[chunk.repeated:], (doc.path, i)
        if chunk.repeated:  # a table's header row, repeated before rows that lack it
            table = next(t for t in doc.tables if t.header_end <= chunk.start < t.end)
            assert chunk.text[:chunk.repeated] == text[table.start:table.header_end] + "\n"
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.tokens == count(chunk.text) <= max_tokens, (doc.path, i, chunk.tokens)
        assert chunk.section in section_paths
        assert chunk.path == doc.path
        if i:
            assert chunk.start > chunks[i - 1].start and chunk.end > chunks[i - 1].end
        covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
    lost = [k for k, ch in enumerate(text) if not covered[k] and not ch.isspace()]
    assert not lost, (doc.path, text[lost[0]:lost[0] + 40])


def test_offsets_and_limits_over_the_sample(shared_data: Path) -> None:
    """doc.text[start:end] == chunk.text for every chunk of every sample page; nothing
    but whitespace is left out; no chunk exceeds max_tokens."""
    docs = _sample_docs(shared_data)
    total = 0
    for doc in docs:
        chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=120, chunk_overlap=20,
                                max_tokens=150)
        _check_chunks(doc, chunks, fake_count_tokens, 150)
        total += len(chunks)
    assert total > len(docs) * 3


def test_section_of_each_chunk(shared_data: Path) -> None:
    path = shared_data / "k8s-docs/content/en/docs/tasks/run-application/force-delete-stateful-set-pod.md"
    doc = load_document(path)
    chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=80, chunk_overlap=10)
    by_section = {c.section for c in chunks}
    assert ("Delete Pods", "Force Deletion") in by_section
    for chunk in chunks:
        if chunk.section:
            # the chunk starts inside a section with that path, or is merged into one from
            # a preceding untitled intro
            owners = [s.path for s in doc.sections if s.start <= chunk.start < s.end]
            assert chunk.section in owners or not owners


def test_count_tokens_is_called_sparingly(shared_data: Path) -> None:
    doc = load_document(shared_data / "k8s-docs/content/en/docs/concepts/workloads/pods/pod-lifecycle.md")
    counter = Counter()
    chunks = split_document(doc, count_tokens=counter, chunk_size=200, chunk_overlap=30)
    assert len(chunks) > 10
    assert counter.calls <= len(chunks) + 4  # one per chunk, two for calibration, rare re-splits


@pytest.mark.parametrize("name, fn", [
    ("words", fake_count_tokens),
    ("chars", len),                                            # much denser than estimated
    ("chars+special", lambda t: len(t) + 2),                   # constant offset per call
    ("digits-heavy", lambda t: fake_count_tokens(t) + 4 * sum(c.isdigit() for c in t)),
    ("halved", lambda t: max(1, fake_count_tokens(t) // 2)),   # sparser than estimated
])
def test_max_tokens_with_various_counters(shared_data: Path, name: str, fn: Callable[[str], int]) -> None:
    doc = load_document(shared_data / "k8s-docs/content/zh-cn/docs/concepts/workloads/pods/pod-lifecycle.md")
    chunks = split_document(doc, count_tokens=fn, chunk_size=100, chunk_overlap=15, max_tokens=128)
    _check_chunks(doc, chunks, fn, 128)
    assert len(chunks) > 5


def test_chinese_without_spaces_splits_on_sentence_ends() -> None:
    sentences = ["Pod是可以在集群中创建和管理的最小的可部署的计算单元。", "它是一组容器！",
                 "这些容器共享存储和网络资源吗？", "容器总是被同时调度；", "并在共享的上下文中运行。"]
    text = "".join(sentences * 12)
    assert " " not in text
    chunks = split_text(text, count_tokens=len, chunk_size=60, chunk_overlap=0, max_tokens=80)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.tokens <= 80
        assert chunk.text[-1] in "。！？；"
    assert "".join(c.text for c in chunks) == text  # no overlap: a partition


def test_chinese_without_any_separator_falls_back_to_characters() -> None:
    text = "容器运行时负责运行容器的软件" * 40
    chunks = split_text(text, count_tokens=len, chunk_size=50, chunk_overlap=0, max_tokens=50)
    assert all(0 < c.tokens <= 50 for c in chunks)
    assert "".join(c.text for c in chunks) == text
    assert max(c.tokens for c in chunks) >= 40  # filled, not one character each


def test_overlap_between_consecutive_chunks() -> None:
    text = " ".join(f"Sentence number {i} talks about Pods and Services." for i in range(60))
    chunks = split_text(text, count_tokens=fake_count_tokens, chunk_size=50, chunk_overlap=20)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # they share text
        shared = text[b.start:a.end]
        assert 0 < fake_count_tokens(shared) <= 20
        assert shared.startswith("Sentence")  # overlap made of whole sentences
    chunks = split_text(text, count_tokens=fake_count_tokens, chunk_size=50, chunk_overlap=0)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_small_sections_merge_only_under_the_same_parent() -> None:
    parts = [("A",), ("A", "a1"), ("A", "a2"), ("B",), ("B", "b1")]
    text, sections = "", []
    for path in parts:
        start = len(text) + (2 if text else 0)
        text += ("\n\n" if text else "") + f"{path[-1]}\n\nShort text about {path[-1]}."
        sections.append(Section(path=path, start=start, end=len(text)))
    doc = Document(path="/x.md", text=text, sections=tuple(sections))
    chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=100, chunk_overlap=0)
    assert [c.section for c in chunks] == [("A",), ("B",)]
    assert chunks[0].text.startswith("A\n\n") and chunks[0].text.endswith("about a2.")
    assert chunks[1].text.startswith("B\n\n") and chunks[1].text.endswith("about b1.")


def test_large_section_starts_its_own_chunk_and_paragraphs_are_preferred() -> None:
    para = "Pods run containers. " * 10
    text = f"Intro\n\n{para.strip()}\n\n{para.strip()}\n\n{para.strip()}"
    doc = Document(path="/y.md", text=text, sections=(Section(("Intro",), 0, len(text)),))
    chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=70, chunk_overlap=0)
    # each paragraph is 40 tokens: two never fit with the heading, so cuts fall on paragraphs
    assert [c.text for c in chunks][1:] == [para.strip(), para.strip()]


def test_chunks_never_span_pages() -> None:
    pages_text = ["Page one text. " * 30, "Page two text. " * 5, "Page three text. " * 30]
    text, pages = "", []
    for number, body in enumerate(pages_text, 1):
        start = len(text) + (2 if text else 0)
        text += ("\n\n" if text else "") + body.strip()
        pages.append(Page(number=number, start=start, end=len(text)))
    doc = Document(path="/z.pdf", text=text, pages=tuple(pages))
    chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=60, chunk_overlap=10)
    for chunk in chunks:
        page = pages[chunk.page - 1]
        assert page.start <= chunk.start and chunk.end <= page.end
    assert {c.page for c in chunks} == {1, 2, 3}
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)


def test_pdf_end_to_end_pages(tmp_path: Path) -> None:
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=11)
    for n in range(1, 4):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Page {n}. " + "Kubernetes schedules Pods onto Nodes. " * 40)
    path = tmp_path / "book.pdf"
    path.write_bytes(bytes(pdf.output()))
    doc = load_document(path)
    chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=100, chunk_overlap=10)
    assert {c.page for c in chunks} == {1, 2, 3}
    for chunk in chunks:
        assert f"Page {chunk.page}." in doc.text[doc.pages[chunk.page - 1].start:doc.pages[chunk.page - 1].end]
        assert doc.text[chunk.start:chunk.end] == chunk.text


def test_csv_rows_as_chunks(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("name,kind\n" + "".join(f"item{i},Pod\n" for i in range(50)))
    doc = load_document(path)
    chunks = split_document(doc, count_tokens=fake_count_tokens, chunk_size=40, chunk_overlap=0)
    assert chunks[0].section == ("row 2",)
    assert all(re.fullmatch(r"row \d+", c.section[0]) for c in chunks)
    assert all(c.text.startswith("name: item") for c in chunks)  # rows are never cut


def test_bad_parameters() -> None:
    doc = Document(path="/a", text="text")
    with pytest.raises(ConfigError):
        split_document(doc, count_tokens=len, chunk_size=50, chunk_overlap=50)
    with pytest.raises(ConfigError):
        split_document(doc, count_tokens=len, chunk_size=0)
    # chunk_size above max_tokens is clamped, not an error
    chunks = split_document(Document(path="/a", text="word " * 500), count_tokens=len, chunk_size=1000,
                            chunk_overlap=10, max_tokens=64)
    assert chunks and all(c.tokens <= 64 for c in chunks)
    assert split_document(Document(path="/a", text=" \n "), count_tokens=len) == []


def test_giant_word_and_long_line() -> None:
    text = "x" * 5000 + "\n" + "short words " * 10
    chunks = split_text(text, count_tokens=lambda t: (len(t) + 3) // 4, chunk_size=100, chunk_overlap=0,
                        max_tokens=120)
    assert all(c.tokens <= 120 for c in chunks)
    assert "".join(c.text for c in chunks[:-1]) == "x" * 5000


@pytest.mark.slow
def test_max_tokens_with_minilm_tokenizer(shared_data: Path) -> None:
    """The real MiniLM word-piece counter, on English and Chinese pages: no chunk over
    its limit (254 = 256 positions minus [CLS] and [SEP])."""
    from knowbase.models.registry import get_embedder

    try:
        embedder = get_embedder("sentence-transformers:all-minilm-l6-v2", tracing=False)
        count = embedder.count_tokens
        count("probe")
    except Exception as exc:
        pytest.skip(f"MiniLM not available: {exc}")
    limit = embedder.max_seq_length - 2
    for rel in ("en/docs/concepts/workloads/pods/pod-lifecycle.md",
                "zh-cn/docs/concepts/workloads/pods/pod-lifecycle.md",
                "en/docs/concepts/services-networking/service.md"):
        doc = load_document(shared_data / "k8s-docs/content" / rel)
        counter = Counter(count)
        chunks = split_document(doc, count_tokens=counter, chunk_size=200, chunk_overlap=30, max_tokens=limit)
        _check_chunks(doc, chunks, count, limit)
        assert counter.calls <= len(chunks) * 1.2 + 4
        sizes = sorted(c.tokens for c in chunks)
        assert sizes[len(sizes) // 2] > 60  # chunks are filled, not fragments


def test_chunks_end_at_paragraph_boundaries_when_half_full() -> None:
    sentence = "Paragraph {} sentence {} explains how the kubelet starts and stops the containers of a Pod."
    paragraphs = [" ".join(sentence.format(p, s) for s in range(3)) for p in range(8)]
    assert all(50 < fake_count_tokens(p) <= 90 for p in paragraphs)  # two never fit in 100
    text = "\n\n".join(paragraphs)
    chunks = split_text(text, count_tokens=fake_count_tokens, chunk_size=100, chunk_overlap=0)
    assert [c.text for c in chunks] == paragraphs  # not filled to 100 by cutting paragraphs
    chunks = split_text(text, count_tokens=fake_count_tokens, chunk_size=100, chunk_overlap=30)
    for chunk in chunks:
        assert chunk.text.split("\n\n")[-1] in paragraphs  # ends with a whole paragraph


def test_cut_prefers_a_paragraph_end_over_a_fuller_chunk() -> None:
    sentence = "Sentence {} explains how the kubelet starts and stops the containers of a Pod."
    first = " ".join(sentence.format(i) for i in range(4))          # 64 tokens
    second = " ".join(sentence.format(i) for i in range(4, 13))     # 144 tokens: split by sentences
    text = first + "\n\n" + second
    chunks = split_text(text, count_tokens=fake_count_tokens, chunk_size=100, chunk_overlap=0)
    # greedy packing would append two sentences of the second paragraph to the first
    assert chunks[0].text == first
    assert chunks[1].text.startswith("Sentence 4 ") and chunks[-1].text.endswith(sentence.format(12))
