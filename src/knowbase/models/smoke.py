"""Run the llama.cpp runtime in a child process, so that a native crash is reported, not suffered.

A llama.cpp build that uses instructions the machine cannot run (AVX-512 on an AVX2-only
CPU, AMX on a kernel that does not grant tile state) kills its process with SIGILL or
SIGSEGV at the first matrix product; in-process, that takes the CLI, the server or pytest
with it, with no Python traceback. Here the risky part runs as ``python -m
knowbase.models.smoke`` and the parent turns the child's end (exit status, signal,
timeout) into a :class:`ChildOutcome` with one readable sentence.

Child modes (``python -m knowbase.models.smoke ...``; one JSON object on stdout):

* ``--system-info``: ``{"version": ..., "system_info": ...}`` of the installed llama-cpp-python.
* ``--model PATH``: load the GGUF, evaluate a short prompt, generate a couple of tokens:
  ``{"prompt_tokens": n, "generated_tokens": n, "text": ..., "load_s": s, "run_s": s}``.

``LLAMA_CPP_LIB_PATH`` in the environment makes llama-cpp-python load another build of the
library (a folder with ``libllama.so`` and ``libggml*.so``), which ``benches/models.py`` uses.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SMOKE_PROMPT = "The capital of France is"
SMOKE_TOKENS = 2
DEFAULT_TIMEOUT = 180.0
"""Seconds a smoke test may take (SmolLM2 loads and answers in about a second when idle; a
busy shared machine can be many times slower)."""
_STDERR_TAIL = 2000  # characters of the child's stderr kept for the report

CRASH_HINT = "the llama.cpp build uses instructions this machine cannot run; rebuild with scripts/setup.sh"
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGILL, signal.SIGBUS}


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """How a child process ended.

    Attributes:
        returncode: the exit status; negative ``-N`` when killed by signal N (POSIX).
        stdout: its standard output (text).
        stderr: the last :data:`_STDERR_TAIL` characters of its standard error.
        timed_out: it was killed after ``timeout`` seconds.
        seconds: wall-clock time it ran, seconds.
        data: the JSON object of its last stdout line, when there is one.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    data: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.data is not None

    @property
    def signal_number(self) -> int | None:
        """The signal that killed it, or None."""
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    def describe(self, timeout: float | None = None) -> str:
        """One sentence for a person: what happened and, for a crash, why and what to do.

        Example: ``crashed with SIGSEGV (signal 11): the llama.cpp build uses instructions
        this machine cannot run; rebuild with scripts/setup.sh``.
        """
        if self.timed_out:
            return f"did not finish within {timeout or self.seconds:.0f} s (killed)"
        sig = self.signal_number
        if sig is not None:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            if sig in _CRASH_SIGNALS:
                return f"crashed with {name} (signal {sig}): {CRASH_HINT}"
            if sig == signal.SIGKILL:
                return f"was killed with {name} (signal {sig}): out of memory, or killed from outside"
            return f"was killed with {name} (signal {sig})"
        if self.returncode != 0:
            lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
            last = lines[-1].strip() if lines else "no error output"
            return f"failed with exit status {self.returncode}: {last}"
        if self.data is None:
            return "ended without reporting a result"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"returncode": self.returncode, "signal": self.signal_number, "timed_out": self.timed_out,
                "seconds": round(self.seconds, 3), "data": self.data, "stderr": self.stderr}


def run_child(argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
              env: Mapping[str, str] | None = None) -> ChildOutcome:
    """Run ``argv`` as a child process with a time limit and report how it ended.

    The child gets its own process group, so a timeout kills whatever it started too.
    Its last stdout line is parsed as JSON into :attr:`ChildOutcome.data` when it is one.

    Args:
        argv: the command.
        timeout: seconds before it is killed (SIGKILL to its process group).
        env: its environment (default: this process's).

    Never raises for the child's failure; ``OSError`` only when it cannot be started.
    """
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", env=dict(env) if env is not None else None, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    seconds = time.monotonic() - start
    data: dict[str, Any] | None = None
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if lines and not timed_out:
        try:
            parsed = json.loads(lines[-1])
        except ValueError:
            parsed = None
        data = parsed if isinstance(parsed, dict) else None
    return ChildOutcome(returncode=proc.returncode, stdout=out, stderr=err[-_STDERR_TAIL:], timed_out=timed_out,
                        seconds=seconds, data=data)


def child_command(*args: str) -> list[str]:
    """``[python, -m, knowbase.models.smoke, *args]`` with this interpreter."""
    return [sys.executable, "-X", "faulthandler", "-m", "knowbase.models.smoke", *args]


def smoke_test(model_path: str, *, timeout: float = DEFAULT_TIMEOUT, n_threads: int | None = None,
               env: Mapping[str, str] | None = None, command: Sequence[str] | None = None) -> ChildOutcome:
    """Load the GGUF at ``model_path`` in a child process, evaluate a short prompt and
    generate :data:`SMOKE_TOKENS` tokens.

    Args:
        model_path: a GGUF file (the doctor uses the 135M SmolLM2: about 100 MB).
        timeout: seconds before the child is killed.
        n_threads: llama.cpp threads in the child (default ``$KNOWBASE_N_THREADS``, else 1).
        env: the child's environment (default: this process's).
        command: run this instead of the real child (tests use it to fake a crash).
    """
    threads = n_threads or int(os.environ.get("KNOWBASE_N_THREADS") or 1)
    argv = list(command) if command is not None else child_command("--model", model_path, "--threads", str(threads))
    return run_child(argv, timeout=timeout, env=env)


def system_info(*, timeout: float = 60.0, env: Mapping[str, str] | None = None,
                command: Sequence[str] | None = None) -> ChildOutcome:
    """llama-cpp-python's version and ``llama_print_system_info()``, read in a child process
    (loading a library built for another CPU can itself crash)."""
    return run_child(list(command) if command is not None else child_command("--system-info"), timeout=timeout,
                     env=env)


# --- the child ---------------------------------------------------------------------------------------
def _child_system_info() -> dict[str, Any]:
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    info = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return {"version": llama_cpp.__version__, "system_info": info.strip(),
            "lib_path": os.environ.get("LLAMA_CPP_LIB_PATH")}


def _child_model(path: str, threads: int) -> dict[str, Any]:
    from pathlib import Path

    from knowbase.models.llamacpp import load_gguf

    start = time.monotonic()
    model = load_gguf(Path(path), n_ctx=256, n_threads=threads)
    loaded = time.monotonic()
    llama = model.llama
    tokens = llama.tokenize(SMOKE_PROMPT.encode("utf-8"), add_bos=True, special=False)
    llama.eval(tokens)
    generated: list[int] = []
    for _ in range(SMOKE_TOKENS):
        token = llama.sample(temp=0.0)
        generated.append(int(token))
        llama.eval([token])
    return {"prompt_tokens": len(tokens), "generated_tokens": len(generated),
            "text": llama.detokenize(generated).decode("utf-8", "replace"),
            "load_s": round(loaded - start, 3), "run_s": round(time.monotonic() - loaded, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    """The child's entry point (see the module docstring); prints one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m knowbase.models.smoke")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--system-info", action="store_true")
    mode.add_argument("--model", metavar="GGUF")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    result = _child_system_info() if args.system_info else _child_model(args.model, max(1, args.threads))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - runs in the child
    sys.exit(main())
