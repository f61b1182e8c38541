"""The benchmark helpers (benches/_common.py, kb_answers checks) and the question set."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from knowbase.errors import InputFileError
from knowbase.models.fake import FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benches"))

import _common  # noqa: E402
import kb_answers  # noqa: E402
import kb_quality  # noqa: E402

SAMPLE = REPO / "samples" / "k8s"


def test_read_qrels_header_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes(b"query-id\tcorpus-id\tscore\r\n0\t31715818\t1\r\n2\t13734012\t1\r\n2\t99\t2\r\n")
    assert _common.read_qrels(path) == {"0": {"31715818": 1}, "2": {"13734012": 1, "99": 2}}


def test_read_qrels_bad_row_names_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\n", encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        _common.read_qrels(path)
    assert info.value.row == 2 and info.value.path == str(path)


def test_load_beir_keeps_judged_queries_and_limit(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T1", "text": "alpha"}\n{"_id": "d2", "title": "", "text": "beta"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "one"}\n{"_id": "q2", "text": "two"}\n{"_id": "q3", "text": "three"}\n', encoding="utf-8")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td2\t1\nq1\td1\t1\n", encoding="utf-8")
    data = _common.load_beir(tmp_path, split="test")
    assert list(data.queries) == ["q1", "q3"]          # file order of queries.jsonl, judged only
    assert data.doc_text("d1") == "T1\n\nalpha" and data.doc_text("d2") == "beta"
    limited = _common.load_beir(tmp_path, split="test", limit=1)
    assert list(limited.queries) == ["q1"] and list(limited.qrels) == ["q1"]


def test_caching_backend_serves_identical_texts_from_disk(tmp_path: Path) -> None:
    inner = FakeEmbedder(16)
    first = _common.CachingBackend(inner, _common.EmbeddingCache("fake:hash-16", folder=tmp_path))
    a = first.encode(["alpha beta", "gamma"])
    assert inner.encoded == 2 and first.cache.misses == 2
    second = _common.CachingBackend(inner, _common.EmbeddingCache("fake:hash-16", folder=tmp_path))
    b = second.encode(["gamma", "alpha beta", "new text"])
    assert inner.encoded == 3                              # only "new text" went to the model
    assert second.cache.hits == 2 and second.cache.misses == 1
    np.testing.assert_array_equal(b[0], a[1])
    np.testing.assert_array_equal(b[1], a[0])
    np.testing.assert_array_equal(b[2], inner.encode(["new text"])[0])
    assert (second.backend_name, second.model_name, second.dim) == ("fake", "hash-16", 16)


def test_percentile_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert _common.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert _common.percentile([10.0], 95) == 10.0
    text = _common.print_table("T", ["system", "score"], [["a", 0.12345], ["b", None]], notes=["n1"])
    assert "| a      | 0.123 |" in text and "| b      |     - |" in text and "- n1" in text
    assert capsys.readouterr().out.strip() == text


def test_rrf_of_peer_runs() -> None:
    fused = kb_quality.rrf({"q": ["a", "b", "c"]}, {"q": ["c", "a"]}, k=60)
    # a: 1/61 + 1/62; c: 1/63 + 1/61; b: 1/62
    assert fused["q"] == ["a", "c", "b"]


def test_key_term_share_whole_words_and_alternatives() -> None:
    assert kb_answers.key_term_share(["10"], "By default, 10 old ReplicaSets are kept.") == 1.0
    assert kb_answers.key_term_share(["10"], "It keeps 100 of them.") == 0.0     # no partial number match
    assert kb_answers.key_term_share([["1 MiB", "1MiB"]], "limited to 1MiB") == 1.0
    assert kb_answers.key_term_share(["前台", "后台"], "分为前台级联删除。") == 0.5
    assert kb_answers.key_term_share(["Allow", "Forbid"], "allow and forbid") == 1.0  # case-insensitive
    assert kb_answers.key_term_share(["1"], "The field replicas [1] sets the count [2, 3].") == 0.0  # markers are not numbers
    assert kb_answers.key_term_share(["1"], "默认值是 1 [1]。") == 1.0
    assert kb_answers.on_page("/x/samples/k8s/en/concepts/a.md", ["en/concepts/a.md"])
    assert kb_answers.on_page("/x/samples/k8s/zh-cn/concepts/a.md", ["en/concepts/a.md"])   # same page, other language
    assert not kb_answers.on_page("/x/samples/k8s/en/concepts/b.md", ["en/concepts/a.md"])
    assert not kb_answers.on_page("/x/samples/k8s/en/tasks/concepts/a.md", ["en/concepts/a.md"])


def _without_comments(text: str) -> str:
    return re.sub(r"<!--.*?-->", " ", text, flags=re.S)


def test_question_set_is_complete_and_grounded_in_the_sample() -> None:
    rows = [json.loads(line) for line in (REPO / "benches" / "data" / "kb_questions.jsonl").read_text("utf-8").splitlines()]
    groups = [kb_answers.group_of(r) for r in rows]
    assert (groups.count("en"), groups.count("zh"), groups.count("none")) == (30, 30, 20)
    assert len({r["id"] for r in rows}) == 80
    for r in rows:
        if not r["answerable"]:
            assert r["pages"] == [] and r["kind"] in ("out-of-scope", "near-miss")
            continue
        prefix = "en/" if r["lang"] == "en" else "zh-cn/"
        assert r["pages"] and all(p.startswith(prefix) and (SAMPLE / p).is_file() for p in r["pages"]), r["id"]
        page = _without_comments((SAMPLE / r["pages"][0]).read_text("utf-8"))
        # every key term of the reference answer is stated on the page (Chinese pages: outside comments)
        assert kb_answers.key_term_share(r["key_terms"], page) == 1.0, r["id"]
        assert kb_answers.key_term_share(r["key_terms"], r["answer"]) == 1.0, r["id"]


def test_sample_pages_are_unchanged_copies(shared_data: Path) -> None:
    notice = (SAMPLE / "NOTICE.md").read_text("utf-8")
    listed = re.findall(r"^\| `([^`]+)` \|", notice, flags=re.M)
    assert len(listed) == 58
    for rel in listed:
        for lang in ("en", "zh-cn"):
            original = shared_data / "k8s-docs" / "content" / lang / "docs" / rel
            assert (SAMPLE / lang / rel).read_bytes() == original.read_bytes(), f"{lang}/{rel}"
    assert len(list(SAMPLE.rglob("*.md"))) == 2 * 58 + 1   # the pages and NOTICE.md
    assert (SAMPLE / "LICENSE").read_bytes() == (shared_data / "k8s-docs" / "LICENSE").read_bytes()
