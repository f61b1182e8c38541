"""A throwaway PostgreSQL 16 + pgvector server for tests, from the ``pgserver`` wheel's binaries.

``initdb`` and ``postgres`` run on a Unix socket only (no TCP), with ``fsync=off``; as root
they run as the ``postgres`` user through ``runuser`` (PostgreSQL refuses to run as root;
``pgserver.get_server`` would create a new system user for that instead). Skips when the
wheel, psycopg or pgvector is missing, or the server cannot start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def postgres_with_pgvector() -> Iterator[str]:
    """Start a server; yields its URL ``postgresql://postgres@/postgres?host=SOCKET&port=PORT``."""
    pgserver = pytest.importorskip("pgserver")
    pytest.importorskip("psycopg")
    pytest.importorskip("pgvector")
    bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if not (bindir / "postgres").exists():
        pytest.skip("pgserver ships no postgres binary here")
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server")
        if not shutil.which("runuser"):
            pytest.skip("runuser not found")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="kb_pgvec_"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    proc = None
    try:
        init = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                               "-E", "UTF8"], capture_output=True, text=True, timeout=300)
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr.strip()[:300]}")
        port = 55000 + os.getpid() % 1000
        proc = subprocess.Popen([*as_user, str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p", str(port),
                                 "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=50"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import psycopg

        for _ in range(240):
            try:
                with psycopg.connect(f"host={sock} port={port} user=postgres dbname=postgres", autocommit=True) as c:
                    c.execute("CREATE EXTENSION IF NOT EXISTS vector")
                break
            except psycopg.OperationalError:
                if proc.poll() is not None:
                    pytest.skip("postgres exited at start")
                time.sleep(0.5)
        else:
            pytest.skip("postgres did not accept connections")
        yield f"postgresql://postgres@/postgres?host={sock}&port={port}"
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)
