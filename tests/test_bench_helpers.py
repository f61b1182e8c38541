"""The benchmark helpers (benches/_common.py, kb_answers checks) and the question set."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from knowbase.errors import InputFileError, UserError
from knowbase.models.fake import FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benches"))

import _common  # noqa: E402
import kb_answers  # noqa: E402
import kb_quality  # noqa: E402
import kb_speed  # noqa: E402

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


# --- benches/kb_speed.py ---------------------------------------------------------------------------
def test_kb_speed_parse_sizes_and_labels() -> None:
    assert kb_speed.parse_sizes("5k, 100k,1M") == [5000, 100_000, 1_000_000]
    assert kb_speed.parse_sizes("1.5k,750") == [1500, 750]
    for bad in ("abc", "0", "1.5", "-2k"):
        with pytest.raises(UserError):
            kb_speed.parse_sizes(bad)
    assert [kb_speed.size_label(n) for n in (5000, 1_000_000, 1234, 2_500_000)] == ["5k", "1M", "1234", "2500k"]


def test_kb_speed_exact_top_k_merges_blocks() -> None:
    corpus = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    top = kb_speed.exact_top_k(queries, corpus, 3, block=2)       # three blocks: 2 + 2 + 1 rows
    np.testing.assert_allclose(top, [[1.0, 0.8, 0.6], [1.0, 0.8, 0.6]], rtol=1e-6)
    assert kb_speed.exact_top_k(queries, corpus[:2], 3).shape == (2, 2)  # fewer rows than k


def test_kb_speed_recall_vs_exact_is_tie_aware() -> None:
    corpus = np.array([[1, 0], [1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)   # rows 0 and 1 tie
    q = np.array([1, 0], dtype=np.float32)
    kth = float(kb_speed.exact_top_k(q[None], corpus, 2)[0, -1])
    assert kth == 1.0
    assert kb_speed.recall_vs_exact([1, 0], query=q, corpus=corpus, kth_score=kth, k=2) == 1.0
    assert kb_speed.recall_vs_exact([0, 2], query=q, corpus=corpus, kth_score=kth, k=2) == 0.5
    assert kb_speed.recall_vs_exact([0, 0, 3], query=q, corpus=corpus, kth_score=kth, k=2) == 0.5  # duplicate once
    assert kb_speed.recall_vs_exact([], query=q, corpus=corpus, kth_score=kth, k=2) == 0.0


def test_kb_speed_parse_child_result() -> None:
    out = "noise\nKB_SPEED_RESULT {\"chunks\": 1}\nKB_SPEED_RESULT {\"chunks\": 2, \"seconds\": 0.5}\ntrailer\n"
    assert kb_speed.parse_child_result(out) == {"chunks": 2, "seconds": 0.5}
    with pytest.raises(UserError):
        kb_speed.parse_child_result("no result here\n")
    with pytest.raises(UserError):
        kb_speed.parse_child_result("KB_SPEED_RESULT {not json\n")


def test_kb_speed_ndcg_from_quality_json() -> None:
    results = {"bm25s": {"scifact": {"ndcg@10": 0.696}},
               "ST cosine (MiniLM)": {"scifact": {"ndcg@10": 0.645}},
               "knowbase dense": {"scifact": {"ndcg@10": 0.679}},
               "knowbase hybrid": {"scifact": {"ndcg@10": 0.722}},
               "knowbase hybrid (onnx fp32)": {"scifact": {"ndcg@10": 0.7215}},
               "knowbase hybrid (onnx int8)": {"scifact": {"ndcg@10": 0.719}},
               "knowbase dense (onnx int8)": {"cmrc": {"mrr": 0.3}}}
    assert kb_speed.quality_label("onnx:all-minilm-l6-v2") == "onnx int8"
    assert kb_speed.quality_label("onnx:all-minilm-l6-v2@fp32") == "onnx fp32"
    assert kb_speed.quality_label("fake:384") == "fake:384"
    assert kb_speed.ndcg_from_quality(results) == 0.722
    assert kb_speed.ndcg_from_quality(results, variant="onnx int8") == 0.719
    assert kb_speed.ndcg_from_quality(results, variant="onnx fp32") == 0.7215
    assert kb_speed.ndcg_from_quality(results, mode="dense") == 0.679
    assert kb_speed.ndcg_from_quality(results, variant="onnx int8", mode="dense") is None   # no SciFact figure
    assert kb_speed.ndcg_of_peer(results) == 0.645
    assert kb_speed.ndcg_of_peer({"bm25s": {"scifact": {"ndcg@10": 0.7}}}) is None
    ndcg, notes = kb_speed.read_quality([Path("/nonexistent/q.json")], fast_spec="onnx:all-minilm-l6-v2")
    assert ndcg == {} and "cannot read" in notes[0]


def test_kb_speed_table_rows_and_cells() -> None:
    Q = kb_speed.QueryFigures
    queries = [Q("kb-fp32:hybrid", 5012, 12.0, 20.0, None), Q("kb-fp32:dense", 5012, 8.0, 9.0, 0.995),
               Q("lc-faiss", 5012, 30.0, 40.0, 1.0), Q("lc-faiss", 1_000_000, note="skipped")]
    ingest = {"kb-fp32": {"chunks": 2900, "seconds": 100.0, "chunks_per_s": 29.0, "peak_rss_mib": 700.0},
              "lc-faiss": {"chunks": 2945, "seconds": 200.0, "chunks_per_s": 14.7, "peak_rss_mib": 950.0}}
    headers, rows = kb_speed.build_table(ingest, queries, [5000, 1_000_000], ["kb-fp32", "lc-faiss"],
                                         {"kb-fp32": 0.7221, "lc-faiss": 0.645})
    assert headers[5:8] == ["5k p50 ms", "5k p95 ms", "5k R@10"] and headers[-1] == "SciFact nDCG@10"
    assert [r[0] for r in rows] == ["knowbase (fp32) hybrid", "knowbase (fp32) dense", "LangChain + FAISS"]
    assert rows[0][1:8] == [2900, 100.0, 29.0, 700.0, 12.0, 20.0, None] and rows[0][-1] == "0.722"
    assert rows[1][1:5] == [None] * 4 and rows[1][5:8] == [8.0, 9.0, "0.995"]   # dense row: no ingest columns
    assert rows[2][5:11] == [30.0, 40.0, "1.000", None, None, None]             # skipped at 1M: empty cells
    _, ingest_only = kb_speed.build_table(ingest, [], [], ["kb-fp32", "lc-faiss"], {}, modes=False)
    assert [r[0] for r in ingest_only] == ["knowbase (fp32)", "LangChain + FAISS"]
    assert ingest_only[1][1:5] == [2945, 200.0, 14.7, 950.0]
    assert not kb_speed._near(4999, 5000) and kb_speed._near(5012, 5000) and not kb_speed._near(6000, 5000)
