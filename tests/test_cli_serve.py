"""``knowbase keys`` and ``knowbase serve`` (the bind rule), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_keys_create_list_revoke(knowbase_home: Path) -> None:
    code, out, err = run("keys", "create", "--kb", "handbook", "--scope", "ingest", "--rate", "10")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("kb_") and "only time it is shown" in err
    assert secret.encode() not in (knowbase_home / "server.db").read_bytes()
    code, out, _ = run("keys", "list", "--json")
    [row] = json.loads(out)
    assert (row["scope"], row["kbs"], row["rate_per_minute"], row["revoked"]) == ("ingest", ["handbook"], 10, None)
    assert "key" not in row and secret not in out
    assert run("keys", "revoke", row["id"])[0] == 0
    assert json.loads(run("keys", "list", "--json")[1])[0]["revoked"] is not None
    code, _, err = run("keys", "revoke", row["id"])
    assert code == 1 and "no active key" in err


def test_serve_refuses_a_network_interface_without_keys(knowbase_home: Path) -> None:
    pytest.importorskip("fastapi")
    from knowbase.errors import ConfigError

    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert isinstance(result.exception, ConfigError) and "--insecure-no-auth" in str(result.exception)


def test_serve_refuses_an_unknown_knowledge_base(knowbase_home: Path) -> None:
    pytest.importorskip("fastapi")
    from knowbase.errors import KnowledgeBaseNotFoundError

    result = CliRunner().invoke(cli, ["serve", "--kb", "nope", "--port", "0"])
    assert isinstance(result.exception, KnowledgeBaseNotFoundError) and "'nope'" in str(result.exception)
