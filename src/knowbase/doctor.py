"""``knowbase doctor``: can knowbase run on this machine? One check per line, each with a fix.

Checks, in order (:func:`run_checks`):

=============  ==================================================================================
``python``     the interpreter is 3.11 or newer (``requires-python``)
``cpu``        the CPU model and the flags llama.cpp cares about (AVX2, AVX-512, VNNI, AMX), and
               whether the kernel lets this process use AMX tile state (:mod:`knowbase.models.cpu`)
``llama.cpp``  llama-cpp-python's version and build (``llama_print_system_info()``, read in a
               child process); fails when the build uses instruction sets the CPU lacks
``smoke``      SmolLM2-135M loads, reads a prompt and generates two tokens **in a child process**:
               a native crash is reported (``crashed with SIGSEGV ...``), not suffered
``model:*``    each embedded model is installed and matches its checksum (the Qwen GGUF's pinned
               SHA-256, the other files' SHA-256 in their package's RECORD)
``sqlite``     apsw opens a database with FTS5, and the sqlite-vec extension loads
``disk``       free space where the models are assembled (the Qwen GGUF needs 1.1 GB once)
``home``       the user directory and the models folder are writable
=============  ==================================================================================

Example::

    >>> report = run_checks(Settings.load())
    >>> report.ok, [c.name for c in report.failed]
    (True, [])
    >>> report.to_dict()["checks"][0]
    {'name': 'python', 'status': 'ok', 'summary': 'Python 3.11.9 (/usr/bin/python3)', 'fix': None, 'detail': {...}}
"""

from __future__ import annotations

import base64
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from knowbase.errors import KnowbaseError
from knowbase.models import cpu as cpu_mod
from knowbase.models import smoke as smoke_mod

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings
    from knowbase.models.catalog import CatalogEntry

Status = Literal["ok", "warn", "fail"]
SMOKE_MODEL = "smollm2-135m"
MIN_PYTHON = (3, 11)
DISK_MARGIN = 200_000_000
"""Bytes kept free beyond the model files (the KV-prefix cache, logs, knowledge bases)."""
REBUILD = "rebuild llama-cpp-python for this machine with scripts/setup.sh"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: the check (``python``, ``cpu``, ``llama.cpp``, ``smoke``, ``model:NAME``, ...).
        status: ``ok``, ``warn`` (works, but worth knowing) or ``fail`` (something will not work).
        summary: one line for a person.
        fix: what to do about a warning or failure (None when ok).
        detail: JSON-ready facts behind the summary.
    """

    name: str
    status: Status
    summary: str
    fix: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check's result, in the order run."""

    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return not self.failed

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


# --- the checks ------------------------------------------------------------------------------------------
def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> CheckResult:
    """The interpreter is at least :data:`MIN_PYTHON`."""
    text = ".".join(map(str, version))
    detail = {"version": text, "executable": sys.executable}
    if tuple(version[:2]) < MIN_PYTHON:
        return CheckResult("python", "fail", f"Python {text} is too old (knowbase needs 3.11 or newer)",
                           "install Python 3.11+ and rerun scripts/setup.sh with PYTHON=python3.11", detail)
    return CheckResult("python", "ok", f"Python {text} ({sys.executable})", detail=detail)


def check_cpu(info: cpu_mod.CpuInfo) -> CheckResult:
    """The CPU's model and llama.cpp-relevant flags; warns when an x86 CPU lacks AVX2 (the
    portable build's baseline) or advertises AMX that the kernel does not grant."""
    flags = info.notable_flags()
    summary = f"{info.model} ({info.machine}): {' '.join(flags) if flags else 'no SIMD flags reported'}"
    if info.has_amx:
        summary += f"; AMX tile state {'granted' if info.amx_granted else 'NOT granted'} by the kernel"
    detail = info.to_dict()
    if info.x86 and info.flags and "avx2" not in info.flags:
        return CheckResult("cpu", "warn", summary + "; no AVX2",
                           "the default build needs AVX2: build llama-cpp-python with KNOWBASE_LLAMA_CMAKE_ARGS="
                           "'-DGGML_NATIVE=OFF -DGGML_AVX2=OFF' scripts/setup.sh, or use a model by URL", detail)
    if info.has_amx and info.amx_granted is False:
        return CheckResult("cpu", "warn", summary,
                           "never run a llama.cpp build with AMX here (-march=native emits it); "
                           "scripts/setup.sh builds without it", detail)
    return CheckResult("cpu", "ok", summary, detail=detail)


def check_llama_build(info: cpu_mod.CpuInfo, outcome: smoke_mod.ChildOutcome | None) -> CheckResult:
    """The installed llama.cpp build and the instruction sets it uses that ``info`` lacks.

    ``outcome`` is :func:`knowbase.models.smoke.system_info` (None: llama-cpp-python missing).
    """
    if outcome is None:
        return CheckResult("llama.cpp", "fail", "llama-cpp-python is not installed",
                           "run scripts/setup.sh (or pip install 'knowbase[local]'), or use a model by URL")
    if not outcome.ok or outcome.data is None:
        return CheckResult("llama.cpp", "fail", f"reading the build's system info {outcome.describe()}", REBUILD,
                           outcome.to_dict())
    system_info = str(outcome.data.get("system_info", ""))
    features = cpu_mod.build_features(system_info)
    missing = cpu_mod.missing_features(features, info)
    detail = {"version": outcome.data.get("version"), "system_info": system_info, "features": features,
              "missing": missing, "lib_path": outcome.data.get("lib_path")}
    isa = [f for f in features if f in cpu_mod.BUILD_TO_CPUINFO]
    summary = f"llama-cpp-python {outcome.data.get('version')}: {' '.join(isa) or 'no x86 SIMD'}"
    if missing:
        return CheckResult("llama.cpp", "fail", f"{summary}; this CPU cannot run {', '.join(missing)}", REBUILD,
                           detail)
    return CheckResult("llama.cpp", "ok", summary, detail=detail)


def check_smoke(settings: Settings, *, timeout: float = smoke_mod.DEFAULT_TIMEOUT, model_path: Path | None = None,
                command: Iterable[str] | None = None) -> CheckResult:
    """SmolLM2 loads and generates in a child process (:func:`knowbase.models.smoke.smoke_test`).

    Args:
        settings: where the models are.
        timeout: seconds the child may take.
        model_path: another GGUF to load (default: the embedded SmolLM2-135M).
        command: run this instead of the real child (tests fake crashes with it).
    """
    from knowbase.models.catalog import get_entry

    try:
        path = model_path or get_entry(SMOKE_MODEL).path(settings)
    except KnowbaseError as exc:
        return CheckResult("smoke", "fail", f"the smoke-test model {SMOKE_MODEL} is unavailable: {exc}",
                           "pip install 'knowbase[models]' (scripts/setup.sh does)")
    outcome = smoke_mod.smoke_test(str(path), timeout=timeout, command=list(command) if command is not None else None)
    if outcome.ok and outcome.data is not None:
        d = outcome.data
        return CheckResult("smoke", "ok", f"{SMOKE_MODEL} read {d.get('prompt_tokens')} tokens and generated "
                           f"{d.get('generated_tokens')} in a child process ({outcome.seconds:.1f} s)",
                           detail=outcome.to_dict())
    fix = REBUILD if outcome.signal_number is not None else (
        "rerun with a longer --timeout on a busy machine" if outcome.timed_out else REBUILD)
    return CheckResult("smoke", "fail", f"the model runtime {outcome.describe(timeout)}", fix, outcome.to_dict())


def _record_sha256(record_hash: Any) -> str | None:
    """A RECORD hash (``sha256=<urlsafe base64>``) as lowercase hex, or None."""
    if record_hash is None or record_hash.mode != "sha256":
        return None
    value = record_hash.value + "=" * (-len(record_hash.value) % 4)
    return base64.urlsafe_b64decode(value).hex()


def _sha256(path: Path) -> str:
    from knowbase.models.catalog import sha256_file

    return sha256_file(path)


def verify_package(package: str, *, hasher: Callable[[Path], str] = _sha256) -> tuple[int, list[str]]:
    """Check every file of installed ``package`` that its RECORD pins against its SHA-256.

    Returns:
        ``(files checked, problems)``: each problem names the file and what is wrong.

    Raises:
        PackageNotFoundError: the package is not installed.
    """
    dist = distribution(package)
    checked, problems = 0, []
    for record in dist.files or ():
        expected = _record_sha256(record.hash)
        if expected is None or record.suffix in (".py", ".pyc"):
            continue
        path = Path(str(dist.locate_file(record)))
        if not path.exists():
            problems.append(f"{path} is missing")
            continue
        checked += 1
        if hasher(path) != expected:
            problems.append(f"{path} does not match its sha256 in {package}'s RECORD")
    return checked, problems


def check_model(entry: CatalogEntry, settings: Settings, *,
                hasher: Callable[[Path], str] = _sha256) -> CheckResult:
    """One embedded model is installed and intact.

    The assembled Qwen GGUF is checked against its pinned SHA-256 (its verification stamp
    when the file has not changed since, else by hashing it); a model shipped inside a
    package is checked against the SHA-256 values in the package's RECORD.
    """
    from knowbase.models.catalog import AssembledParts, PackageFile, PackageFolder

    name = f"model:{entry.name}"
    install = "pip install 'knowbase[models]' (scripts/setup.sh does)"
    source = entry.source
    if isinstance(source, AssembledParts):
        target = source.target(settings)
        detail: dict[str, Any] = {"file": str(target), "sha256": source.sha256, "size": source.size}
        if source.assembled(settings):
            return CheckResult(name, "ok", f"{target} verified (sha256 {source.sha256[:12]}..., stamp)", detail=detail)
        if target.exists():
            actual = hasher(target)
            if actual == source.sha256 and target.stat().st_size == source.size:
                return CheckResult(name, "ok", f"{target} verified (sha256 {source.sha256[:12]}...)", detail=detail)
            return CheckResult(name, "fail", f"{target} does not match its sha256 (got {actual[:12]}...)",
                               f"delete {target}; it is assembled again from its packages on next use",
                               {**detail, "actual": actual})
        missing = [p for p in source.packages if not _installed(p)]
        if missing:
            return CheckResult(name, "fail", f"not installed: {len(missing)} of {len(source.packages)} part "
                               f"packages missing ({missing[0]}...)", install, {**detail, "missing": missing})
        return CheckResult(name, "ok", f"parts installed; assembled and verified into {target} on first use "
                           f"({source.size / 1e9:.1f} GB)", detail=detail)
    if isinstance(source, PackageFile | PackageFolder):
        try:
            checked, problems = verify_package(source.package, hasher=hasher)
        except PackageNotFoundError:
            return CheckResult(name, "fail", f"not installed (package {source.package})", install)
        detail = {"package": source.package, "files_checked": checked, "problems": problems}
        if problems:
            return CheckResult(name, "fail", f"{len(problems)} damaged file(s): {problems[0]}",
                               f"pip install --force-reinstall {source.package}", detail)
        return CheckResult(name, "ok", f"{source.package}: {checked} file(s) match their sha256", detail=detail)
    return CheckResult(name, "ok", f"installed ({source.description})" if entry.installed(settings)
                       else "not installed", None if entry.installed(settings) else install)


def _installed(package: str) -> bool:
    try:
        distribution(package)
    except PackageNotFoundError:
        return False
    return True


def check_sqlite() -> CheckResult:
    """apsw imports, an in-memory database creates an FTS5 table, and sqlite-vec loads."""
    fix = "pip install --force-reinstall apsw sqlite-vec"
    try:
        import apsw
        import sqlite_vec
    except ImportError as exc:
        return CheckResult("sqlite", "fail", f"cannot import {exc.name}", fix)
    try:
        conn = apsw.Connection(":memory:")
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        vec = conn.execute("SELECT vec_version()").fetchall()[0][0]
        conn.close()
    except apsw.Error as exc:
        return CheckResult("sqlite", "fail", f"SQLite {apsw.sqlite_lib_version()}: {exc}", fix)
    return CheckResult("sqlite", "ok", f"SQLite {apsw.sqlite_lib_version()} with FTS5, sqlite-vec {vec}",
                       detail={"sqlite": apsw.sqlite_lib_version(), "sqlite_vec": vec})


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(settings: Settings, *, free_bytes: Callable[[Path], int] | None = None) -> CheckResult:
    """Free space where models are assembled: the Qwen GGUF (if not built yet) plus :data:`DISK_MARGIN`."""
    from knowbase.models.catalog import CATALOG, AssembledParts

    folder = settings.models_dir
    needed = DISK_MARGIN + sum(e.source.size for e in CATALOG
                               if isinstance(e.source, AssembledParts) and not e.source.target(settings).exists())
    where = _existing(folder)
    free = free_bytes(where) if free_bytes else shutil.disk_usage(where).free
    detail = {"folder": str(folder), "free_bytes": free, "needed_bytes": needed}
    summary = f"{free / 1e9:.1f} GB free at {where} (needs {needed / 1e9:.1f} GB)"
    if free < needed:
        return CheckResult("disk", "fail", summary,
                           "free some space, or point KNOWBASE_MODELS_DIR at a disk with room", detail)
    return CheckResult("disk", "ok", summary, detail=detail)


def check_home(settings: Settings) -> CheckResult:
    """The user directory and the models folder exist (created if missing) and accept a file."""
    problems = []
    for folder in dict.fromkeys((settings.home, settings.models_dir)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True) as fh:
                fh.write(b"ok")
        except OSError as exc:
            problems.append(f"{folder}: {exc.strerror or exc}")
    detail = {"home": str(settings.home), "models_dir": str(settings.models_dir)}
    if problems:
        return CheckResult("home", "fail", "not writable: " + "; ".join(problems),
                           "fix the permissions, or set KNOWBASE_HOME / KNOWBASE_MODELS_DIR to a writable folder",
                           detail)
    return CheckResult("home", "ok", f"{settings.home} writable (models in {settings.models_dir})", detail=detail)


# --- running them ---------------------------------------------------------------------------------------
def _llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def run_checks(settings: Settings, *, smoke_timeout: float = smoke_mod.DEFAULT_TIMEOUT,
               hash_models: bool = True) -> DoctorReport:
    """Run every check (see the module docstring). Never raises for a failed check.

    Args:
        settings: the user directory and models folder to check.
        smoke_timeout: seconds the model smoke test may take.
        hash_models: hash the package-shipped model files (about 200 MB read); False checks
            presence only.
    """
    from knowbase.models.catalog import CATALOG

    info = cpu_mod.cpu_info()
    checks = [check_python(), check_cpu(info)]
    installed = _llama_cpp_installed()
    build = check_llama_build(info, smoke_mod.system_info() if installed else None)
    checks.append(build)
    if not installed:
        checks.append(CheckResult("smoke", "fail", "skipped: llama-cpp-python is not installed", build.fix))
    else:
        checks.append(check_smoke(settings, timeout=smoke_timeout))
    checks += [check_model(entry, settings) if hash_models else _presence(entry, settings) for entry in CATALOG]
    checks += [check_sqlite(), check_disk(settings), check_home(settings)]
    return DoctorReport(tuple(checks))


def _presence(entry: CatalogEntry, settings: Settings) -> CheckResult:
    installed = entry.installed(settings)
    return CheckResult(f"model:{entry.name}", "ok" if installed else "fail",
                       f"installed ({entry.source.description})" if installed else "not installed",
                       None if installed else "pip install 'knowbase[models]' (scripts/setup.sh does)")


def run_smoke(settings: Settings, *, timeout: float = smoke_mod.DEFAULT_TIMEOUT) -> DoctorReport:
    """Only the model smoke test (``knowbase doctor --smoke``; scripts/setup.sh runs it)."""
    return DoctorReport((check_smoke(settings, timeout=timeout),))

