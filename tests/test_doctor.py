"""knowbase doctor: each check with fakes (a child that crashes, hangs or fails; a CPU without a
flag; a damaged model file), the CLI, and one real smoke test of the embedded SmolLM2."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from knowbase import doctor
from knowbase.config import Settings
from knowbase.models import cpu, smoke
from knowbase.models.catalog import AssembledParts, CatalogEntry, PackageFile

CRASH = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
ILLEGAL = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
OK_CHILD = [sys.executable, "-c", "import json; print(json.dumps({'prompt_tokens': 6, 'generated_tokens': 2}))"]

CPUINFO_AVX2 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
flags\t\t: fpu sse sse2 pni ssse3 fma sse4_2 avx f16c bmi2 avx2
processor\t: 1
model name\t: ignored second processor
flags\t\t: fpu
"""
SYSTEM_INFO_AVX512 = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                      "AVX512 = 1 | AVX512_VNNI = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
SYSTEM_INFO_AMX = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | "


def _settings(home: Path) -> Settings:
    return Settings.load(home)


def _outcome(**kw: object) -> smoke.ChildOutcome:
    base: dict[str, object] = {"returncode": 0, "stdout": "", "stderr": "", "timed_out": False, "seconds": 0.1}
    base.update(kw)
    return smoke.ChildOutcome(**base)  # type: ignore[arg-type]


# --- the child process ----------------------------------------------------------------------------------
def test_a_child_killed_by_sigsegv_is_reported_not_suffered() -> None:
    outcome = smoke.run_child(CRASH, timeout=30)
    assert outcome.returncode == -signal.SIGSEGV
    assert outcome.signal_number == 11
    assert not outcome.ok
    assert outcome.describe() == ("crashed with SIGSEGV (signal 11): the llama.cpp build uses instructions this "
                                  "machine cannot run; rebuild with scripts/setup.sh")


def test_smoke_check_reports_a_crash_with_the_signal_and_the_fix(knowbase_home: Path, tmp_path: Path) -> None:
    result = doctor.check_smoke(_settings(knowbase_home), model_path=tmp_path / "m.gguf", command=ILLEGAL)
    assert result.status == "fail"
    assert result.summary == ("the model runtime crashed with SIGILL (signal 4): the llama.cpp build uses "
                              "instructions this machine cannot run; rebuild with scripts/setup.sh")
    assert result.fix == doctor.REBUILD
    assert result.detail["signal"] == 4


def test_a_child_that_hangs_is_killed_at_the_timeout() -> None:
    outcome = smoke.run_child([sys.executable, "-c", "import time; time.sleep(60)"], timeout=1)
    assert outcome.timed_out
    assert outcome.seconds < 30
    assert outcome.describe(1) == "did not finish within 1 s (killed)"


def test_a_child_that_fails_reports_its_last_error_line() -> None:
    outcome = smoke.run_child([sys.executable, "-c", "raise RuntimeError('no model here')"], timeout=30)
    assert outcome.returncode == 1
    assert outcome.describe() == "failed with exit status 1: RuntimeError: no model here"


def test_a_child_that_succeeds_passes_its_json(knowbase_home: Path, tmp_path: Path) -> None:
    result = doctor.check_smoke(_settings(knowbase_home), model_path=tmp_path / "m.gguf", command=OK_CHILD)
    assert result.status == "ok"
    assert result.summary.startswith("smollm2-135m read 6 tokens and generated 2 in a child process")


# --- CPU and build --------------------------------------------------------------------------------------
def test_cpuinfo_is_read_from_the_first_processor() -> None:
    model, flags = cpu.parse_cpuinfo(CPUINFO_AVX2)
    assert model == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert "avx2" in flags and "avx512f" not in flags and "fpu" in flags


def test_build_features_and_what_the_cpu_lacks() -> None:
    model, flags = cpu.parse_cpuinfo(CPUINFO_AVX2)
    avx2_cpu = cpu.CpuInfo(model=model, machine="x86_64", flags=flags)
    features = cpu.build_features(SYSTEM_INFO_AVX512)
    assert features[:8] == ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "AVX512"]
    assert cpu.missing_features(features, avx2_cpu) == ["AVX512", "AVX512_VNNI"]
    # AMX advertised by the CPU but not granted by the kernel counts as missing
    amx_cpu = cpu.CpuInfo(model="Xeon", machine="x86_64", flags=flags | {"avx512f", "amx_tile", "amx_int8"},
                          amx_supported=True, amx_granted=False)
    assert cpu.missing_features(cpu.build_features(SYSTEM_INFO_AMX), amx_cpu) == ["AMX_INT8"]
    granted = cpu.CpuInfo(model="Xeon", machine="x86_64", flags=amx_cpu.flags, amx_supported=True, amx_granted=True)
    assert cpu.missing_features(cpu.build_features(SYSTEM_INFO_AMX), granted) == []


def test_llama_build_check_fails_on_instructions_the_cpu_lacks() -> None:
    _, flags = cpu.parse_cpuinfo(CPUINFO_AVX2)
    info = cpu.CpuInfo(model="i7", machine="x86_64", flags=flags)
    bad = doctor.check_llama_build(info, _outcome(data={"version": "0.3.36", "system_info": SYSTEM_INFO_AVX512}))
    assert bad.status == "fail"
    assert bad.summary.endswith("this CPU cannot run AVX512, AVX512_VNNI")
    assert bad.detail["missing"] == ["AVX512", "AVX512_VNNI"]
    portable = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 |"
    good = doctor.check_llama_build(info, _outcome(data={"version": "0.3.36", "system_info": portable}))
    assert good.status == "ok"
    assert good.summary == "llama-cpp-python 0.3.36: SSE3 AVX AVX2 F16C FMA BMI2"
    assert doctor.check_llama_build(info, None).status == "fail"
    crashed = doctor.check_llama_build(info, _outcome(returncode=-11))
    assert crashed.status == "fail" and "SIGSEGV" in crashed.summary


def test_cpu_check_warns_about_amx_not_granted_and_missing_avx2() -> None:
    amx = cpu.CpuInfo(model="Xeon", machine="x86_64", flags=frozenset({"avx2", "amx_tile"}), amx_supported=True,
                      amx_granted=False)
    result = doctor.check_cpu(amx)
    assert result.status == "warn" and "AMX tile state NOT granted" in result.summary
    old = doctor.check_cpu(cpu.CpuInfo(model="Core 2", machine="x86_64", flags=frozenset({"sse4_1", "avx"})))
    assert old.status == "warn" and old.summary.endswith("no AVX2")
    fine = doctor.check_cpu(cpu.CpuInfo(model="EPYC", machine="x86_64", flags=frozenset({"avx2", "fma"})))
    assert fine.status == "ok" and fine.summary == "EPYC (x86_64): avx2 fma"


def test_the_real_cpu_is_read() -> None:
    info = cpu.cpu_info()
    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo")
    assert info.model and info.flags
    assert info.has_amx == ("amx_tile" in info.flags)


# --- models, SQLite, disk, home -------------------------------------------------------------------------
def test_python_check() -> None:
    assert doctor.check_python((3, 10, 4)).status == "fail"
    assert doctor.check_python((3, 11, 0)).status == "ok"


def _assembled_entry(size: int, sha256: str) -> CatalogEntry:
    return CatalogEntry(name="tiny", backend="llamacpp", kind="chat", title="t", licence="MIT",
                        source=AssembledParts(("no-such-part-package-kb",), "*.bin", "tiny.gguf", size, sha256))


def test_an_assembled_model_is_checked_against_its_sha256(knowbase_home: Path) -> None:
    import hashlib

    settings = _settings(knowbase_home).with_(extra={"models_dir": str(knowbase_home / "models")})
    data = b"GGUF tiny model"
    entry = _assembled_entry(len(data), hashlib.sha256(data).hexdigest())
    missing = doctor.check_model(entry, settings)
    assert missing.status == "fail" and "1 of 1 part packages missing" in missing.summary
    target = settings.models_dir / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    assert doctor.check_model(entry, settings).status == "ok"
    target.write_bytes(b"GGUF tampered!!")
    damaged = doctor.check_model(entry, settings)
    assert damaged.status == "fail"
    assert "does not match its sha256" in damaged.summary and damaged.fix and str(target) in damaged.fix


def test_a_packaged_model_is_checked_against_its_record(knowbase_home: Path) -> None:
    settings = _settings(knowbase_home)
    absent = CatalogEntry(name="x", backend="llamacpp", kind="chat", title="x", licence="MIT",
                          source=PackageFile("no-such-package-kb", "*.gguf"))
    assert doctor.check_model(absent, settings).status == "fail"
    # a small real package: its files match RECORD; a hasher that disagrees marks every file damaged
    checked, problems = doctor.verify_package("docstring_parser")
    assert checked > 0 and problems == []
    entry = CatalogEntry(name="dp", backend="x", kind="chat", title="x", licence="MIT",
                         source=PackageFile("docstring_parser", "*"))
    assert doctor.check_model(entry, settings).status == "ok"
    lying = doctor.check_model(entry, settings, hasher=lambda _p: "0" * 64)
    assert lying.status == "fail" and "does not match its sha256" in lying.summary


def test_sqlite_check_finds_fts5_and_sqlite_vec() -> None:
    result = doctor.check_sqlite()
    assert result.status == "ok", result.summary
    assert "FTS5" in result.summary and result.detail["sqlite_vec"].startswith("v")


def test_disk_check_compares_free_space_with_what_the_models_need(knowbase_home: Path) -> None:
    settings = _settings(knowbase_home).with_(extra={"models_dir": str(knowbase_home / "fresh-models")})
    full = doctor.check_disk(settings, free_bytes=lambda _p: 100_000_000)
    assert full.status == "fail"
    assert full.detail["needed_bytes"] == doctor.DISK_MARGIN + 1_117_320_768  # the Qwen GGUF is not built there
    assert doctor.check_disk(settings, free_bytes=lambda _p: 10**12).status == "ok"


def test_home_check_reports_an_unwritable_directory(knowbase_home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = doctor.check_home(Settings.load(blocker / "home"))
    assert bad.status == "fail" and str(blocker / "home") in bad.summary
    good = doctor.check_home(_settings(knowbase_home))
    assert good.status == "ok" and knowbase_home.is_dir()


# --- the report and the CLI ------------------------------------------------------------------------------
def test_report_fails_when_one_check_fails() -> None:
    ok = doctor.CheckResult("a", "ok", "fine")
    warn = doctor.CheckResult("b", "warn", "hmm", "do x")
    bad = doctor.CheckResult("c", "fail", "broken", "do y")
    assert doctor.DoctorReport((ok, warn)).ok
    report = doctor.DoctorReport((ok, bad))
    assert not report.ok and report.failed == [bad]
    assert report.to_dict()["checks"][1] == {"name": "c", "status": "fail", "summary": "broken", "fix": "do y",
                                             "detail": {}}


def test_cli_prints_one_line_per_check_and_exits_1(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from knowbase.cli.main import main

    report = doctor.DoctorReport((doctor.CheckResult("smoke", "fail", "the model runtime crashed\x1b]52;c;x\x07",
                                                     "rebuild"),))
    monkeypatch.setattr(doctor, "run_smoke", lambda settings, timeout: report)
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--smoke"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "FAIL  smoke  the model runtime crashed\\u001b]52;c;x\\u0007"
    assert out[1].strip() == "fix: rebuild"
    with pytest.raises(SystemExit):
        main(["doctor", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out)["checks"][0]["status"] == "fail"


# --- the real runtime -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_smoke_test_runs_smollm2_in_a_child(knowbase_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWBASE_N_THREADS", "1")
    result = doctor.check_smoke(_settings(knowbase_home))
    assert result.status == "ok", result.summary
    data = result.detail["data"]
    assert data["generated_tokens"] == smoke.SMOKE_TOKENS and data["prompt_tokens"] >= 4
    info = doctor.check_llama_build(cpu.cpu_info(), smoke.system_info())
    assert info.status == "ok", info.summary
    assert "AVX2" in info.detail["features"]
