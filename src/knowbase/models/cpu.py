"""What this CPU can run, and which instruction sets a llama.cpp build uses.

Two sources:

* ``/proc/cpuinfo`` (Linux): the ``flags`` line of the first processor, the model name.
* The kernel's extended-state permissions (Linux x86-64, ``arch_prctl``): AMX tile data
  (XSTATE component 18, ``XTILEDATA``) is usable only when the kernel supports it
  (``ARCH_GET_XCOMP_SUPP``) and grants it to the process (``ARCH_REQ_XCOMP_PERM``; see the
  kernel's ``Documentation/arch/x86/xstate.rst``). A CPU that advertises ``amx_tile`` in a
  process that was not granted tile state faults on ``ldtilecfg``: the crash of
  ggml-org/llama.cpp#20824, which a ``-march=native`` llama.cpp build hits on such machines.

:func:`build_features` parses ``llama_print_system_info()`` (``"CPU : SSE3 = 1 | AVX2 = 1 |
..."``) and :func:`missing_features` names the instruction sets a build uses that the CPU
does not report. Nothing here loads native code: the caller passes the system-info string
(knowbase's doctor obtains it in a child process).
"""

from __future__ import annotations

import ctypes
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCH_GET_XCOMP_SUPP = 0x1021
ARCH_GET_XCOMP_PERM = 0x1022
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
SYS_ARCH_PRCTL = 158
"""``arch_prctl`` syscall number on x86-64 Linux."""

# llama.cpp system-info name -> /proc/cpuinfo flag (ggml-cpu.cpp's ggml_backend_cpu_get_features)
BUILD_TO_CPUINFO: dict[str, str] = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX_VNNI": "avx_vnni", "AVX2": "avx2", "F16C": "f16c",
    "FMA": "fma", "BMI2": "bmi2", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8",
}
INTERESTING = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
               "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
"""The flags that matter for llama.cpp's CPU kernels, in the order they are reported."""


@dataclass(frozen=True, slots=True)
class CpuInfo:
    """The CPU as the process sees it.

    Attributes:
        model: the model name (``/proc/cpuinfo``), or ``platform.processor()``.
        machine: ``platform.machine()`` (``x86_64``, ``aarch64``...).
        flags: every flag of the first processor's ``flags`` line (empty when unknown).
        amx_supported: the kernel supports AMX tile state (None: not x86-64 Linux / unknown).
        amx_granted: the process holds or was granted AMX tile state (None: unknown).
    """

    model: str
    machine: str
    flags: frozenset[str] = field(default_factory=frozenset)
    amx_supported: bool | None = None
    amx_granted: bool | None = None

    @property
    def x86(self) -> bool:
        return self.machine.lower() in ("x86_64", "amd64", "i686", "i386")

    @property
    def has_amx(self) -> bool:
        return "amx_tile" in self.flags

    def notable_flags(self) -> list[str]:
        """The flags of :data:`INTERESTING` this CPU has, in that order."""
        return [f for f in INTERESTING if f in self.flags]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "machine": self.machine, "flags": self.notable_flags(),
                "amx_supported": self.amx_supported, "amx_granted": self.amx_granted}


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` from the text of ``/proc/cpuinfo`` (first processor only)."""
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model, flags


def _arch_prctl(code: int) -> int | None:
    """``arch_prctl(code, &bits)`` -> bits, or None when the call fails or is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        bits = ctypes.c_uint64(0)
        if libc.syscall(SYS_ARCH_PRCTL, code, ctypes.byref(bits)) != 0:
            return None
        return int(bits.value)
    except (OSError, AttributeError):
        return None


def amx_state(*, request: bool = True) -> tuple[bool | None, bool | None]:
    """``(kernel supports AMX tile data, the process may use it)`` on x86-64 Linux, else (None, None).

    With ``request``, permission is asked for (``ARCH_REQ_XCOMP_PERM``) as llama.cpp's AMX
    code does before its first tile instruction; a kernel or hypervisor that refuses it is
    what makes an AMX build crash.
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, None
    supp = _arch_prctl(ARCH_GET_XCOMP_SUPP)
    if supp is None:
        return None, None
    supported = bool(supp >> XFEATURE_XTILEDATA & 1)
    if not supported:
        return False, False
    if request:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)
        except (OSError, AttributeError):
            pass
    perm = _arch_prctl(ARCH_GET_XCOMP_PERM)
    return supported, None if perm is None else bool(perm >> XFEATURE_XTILEDATA & 1)


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU of this machine (flags empty when ``/proc/cpuinfo`` is unreadable)."""
    try:
        model, flags = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
    except OSError:
        model, flags = "", frozenset()
    supported, granted = amx_state() if "amx_tile" in flags else (amx_state(request=False)[0], None)
    return CpuInfo(model=model or platform.processor() or "unknown", machine=platform.machine(), flags=flags,
                   amx_supported=supported, amx_granted=granted)


_FEATURE = re.compile(r"([A-Z][A-Z0-9_]*)\s*=\s*1\b")


def build_features(system_info: str) -> list[str]:
    """The features a llama.cpp build reports as on, in order.

    Example::

        >>> build_features("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | OPENMP = 1 |")
        ['SSE3', 'AVX', 'AVX2', 'OPENMP']
    """
    seen: list[str] = []
    for name in _FEATURE.findall(system_info):
        if name not in seen:
            seen.append(name)
    return seen


def missing_features(features: Iterable[str], cpu: CpuInfo) -> list[str]:
    """The instruction sets among ``features`` (llama.cpp names) that ``cpu`` cannot run.

    Empty when the CPU's flags are unknown (not Linux) or the machine is not x86. AMX counts
    as missing when the CPU has it but the kernel does not let this process use it.
    """
    if not cpu.flags or not cpu.x86:
        return []
    missing = []
    for name in features:
        flag = BUILD_TO_CPUINFO.get(name)
        if flag is None:
            continue
        if flag not in cpu.flags or (name.startswith("AMX") and cpu.amx_granted is False):
            missing.append(name)
    return missing
