"""Two speed aids for the llama.cpp backend: a disk cache of a prompt prefix's KV state, and
prompt-lookup decoding.

**Prefix state on disk** (:class:`PrefixStateCache`). llama-cpp-python already reuses the KV
cache of the previous prompt's common prefix inside one process. A new process has to read
the fixed system prompt again (about 80 tokens of the knowledge-base prompt: 2-3 s on 2 cores
with Qwen2.5-Coder-1.5B at about 30 tokens/s). This cache saves the llama.cpp state right
after that prefix (``llama_state_get_data``: the KV cells of those tokens, about 28 KB a
token for the 1.5B model) to ``<models dir>/kv-cache/<key>.npz`` and restores it in a cold
process. The key hashes the model's identity (its SHA-256 when the catalogue knows it, else
path, size and mtime), ``n_ctx``, the llama-cpp-python version and the prefix tokens, so a
changed model, prompt or library never restores a stale state. Files are written to a
temporary name and renamed (atomic on POSIX): a crash leaves the old file or none.

**Prompt-lookup decoding** (:func:`prompt_lookup_draft`; Saxena 2023,
https://github.com/apoorvumang/prompt-lookup-decoding). A RAG answer copies much of its text
from the passages, so the tokens that followed the last n-gram where it occurs in the prompt
are a cheap draft; the model checks ``num_pred_tokens`` drafted tokens in one batch and
keeps the agreeing ones, so greedy output is unchanged. llama-cpp-python's
``LlamaPromptLookupDecoding`` needs logits for every position it verifies
(``logits_all``), which would also compute full-vocabulary logits for every prompt token
(151,936 of them per token for Qwen: seconds on a 700-token prompt). The draft here
switches them on only once the prompt has been read (its first call comes after the
prompt's last token was sampled).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
"""Version of the ``.npz`` layout (part of the key)."""
MAX_FILES = 32
"""Most state files kept in a cache folder; the least recently used go first (1-4 MB each)."""


def model_identity(path: Path, sha256: str | None = None) -> str:
    """A string that changes whenever the model file does: its SHA-256 when known, else
    the resolved path, size and mtime (hashing 1 GB on every start would cost seconds)."""
    if sha256:
        return f"sha256:{sha256}"
    st = path.stat()
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


class PrefixStateCache:
    """llama.cpp states after a prompt prefix, one ``.npz`` file per (model, prefix).

    Args:
        folder: where the files live (created on first save).
        identity: :func:`model_identity` of the model.
    """

    def __init__(self, folder: Path, identity: str) -> None:
        self.folder = Path(folder)
        self.identity = identity

    def key(self, llama: Any, prefix: list[int]) -> str:
        """Hex key for ``prefix`` (token ids) on this model, context size and library version."""
        import llama_cpp

        h = hashlib.sha256(f"{FORMAT}|{self.identity}|{llama.n_ctx()}|{llama_cpp.__version__}|".encode())
        h.update(np.asarray(prefix, dtype=np.int32).tobytes())
        return h.hexdigest()[:32]

    def file(self, llama: Any, prefix: list[int]) -> Path:
        return self.folder / f"{self.key(llama, prefix)}.npz"

    def restore(self, llama: Any, prefix: list[int]) -> bool:
        """Put ``llama`` in the state it has after reading ``prefix``; evaluates and saves it
        when no file holds it yet. Returns True when the state came from disk.

        Never raises for a bad or unreadable cache file: it is rebuilt (and the prefix is
        evaluated) instead; an unwritable folder only means nothing is saved.
        """
        path = self.file(llama, prefix)
        if path.exists() and self._load(llama, prefix, path):
            return True
        llama.reset()
        llama.eval(prefix)
        self._save(llama, prefix, path)
        return False

    def _load(self, llama: Any, prefix: list[int], path: Path) -> bool:
        from llama_cpp.llama import LlamaState

        try:
            with np.load(path, allow_pickle=False) as data:
                ids = data["input_ids"]
                state = data["state"].tobytes()
                seed = int(data["seed"])
        except (OSError, ValueError, KeyError):
            return False
        n = len(prefix)
        if len(ids) != n or list(ids) != list(prefix):
            return False
        input_ids = np.zeros(llama.n_ctx(), dtype=np.intc)
        input_ids[:n] = ids
        try:
            llama.load_state(LlamaState(input_ids=input_ids, scores=np.zeros((n, llama.n_vocab()), dtype=np.single),
                                        n_tokens=n, llama_state=state, llama_state_size=len(state), seed=seed))
        except (RuntimeError, ValueError):
            llama.reset()
            return False
        try:
            os.utime(path)  # recently used: kept by _prune
        except OSError:
            pass
        return True

    def _save(self, llama: Any, prefix: list[int], path: Path) -> None:
        tmp: str | None = None
        try:
            state = llama.save_state()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, input_ids=np.asarray(prefix, dtype=np.intc),
                         state=np.frombuffer(state.llama_state, dtype=np.uint8), seed=np.int64(state.seed))
            os.replace(tmp, path)
            self._prune()
        except (OSError, RuntimeError, ValueError):
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.npz"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in files[MAX_FILES:]:
            old.unlink(missing_ok=True)


def prompt_lookup_draft(llama_holder: list[Any], *, num_pred_tokens: int, max_ngram_size: int = 2) -> Any:
    """A prompt-lookup draft model that turns on per-position logits only while generating.

    Args:
        llama_holder: a one-item list that will hold the ``Llama`` (the draft is built
            before the model it drafts for).
        num_pred_tokens: tokens drafted per step (the batch the model verifies).
        max_ngram_size: longest n-gram looked up in the prompt.

    Returns an object for ``Llama(draft_model=...)``; the caller sets
    ``llama._logits_all = False`` before each prompt (see the module docstring).
    """
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    class _Draft(LlamaPromptLookupDecoding):
        def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
            if llama_holder:
                llama_holder[0]._logits_all = True
            return super().__call__(input_ids, **kwargs)

    return _Draft(max_ngram_size=max_ngram_size, num_pred_tokens=num_pred_tokens)
