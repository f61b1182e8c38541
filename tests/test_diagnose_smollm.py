"""knowbase diagnose --explain end to end with the real SmolLM2-135M (in-process llama.cpp):
the CLI, documentation retrieved from a knowledge base, names masked on request, logs.db clean."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parent.parent / "benches" / "data" / "diagnose" / "02-oomkilled-describe.yaml"


def test_smollm2_explains_a_finding_through_the_cli(tmp_path: Path, knowbase_home: Path) -> None:
    from click.testing import CliRunner
    from tests.conftest import SAMPLE

    from knowbase import KnowledgeBase
    from knowbase.cli.main import cli

    kb = KnowledgeBase.create("docs", embedder="fake")
    kb.ingest([str(SAMPLE / "en/tasks/configure-pod-container/assign-memory-resource.md"),
               str(SAMPLE / "en/concepts/workloads/pods/pod-lifecycle.md")])
    kb.close()
    sc = yaml.safe_load(SCENARIO.read_text("utf-8"))
    describe = tmp_path / "describe.txt"
    describe.write_text(sc["files"]["describe.txt"], "utf-8")
    result = CliRunner().invoke(cli, ["diagnose", str(describe), "--explain", "--model", "llamacpp:smollm2-135m",
                                      "--kb", "docs", "--anonymize", "--output", "json", "--max-chars", "200"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["anonymized"] is True
    (finding,) = doc["findings"]
    assert (finding["kind"], finding["name"], finding["reason"]) == ("Deployment", "report-worker", "OOMKilled")
    x = finding["explanation"]
    assert x["model"] == "llamacpp:smollm2-135m" and (x["error"] or x["solution"])
    assert len(re.sub(r"\s*\[\d+\]", "", x["solution"])) <= 201
    assert all(c["path"].endswith(".md") for c in x["citations"])
    with sqlite3.connect(knowbase_home / "logs.db") as con:
        prompts = [r[0] for r in con.execute("SELECT messages FROM calls WHERE kind = 'chat'")]
    assert len(prompts) == 1 and "OOMKilled" in prompts[0]
    for original in ("report-worker", "analytics", "worker-3", "192.168.10.23", "10.244.3.17"):
        assert not re.search(r"(?<![A-Za-z0-9.-])" + re.escape(original) + r"(?![A-Za-z0-9-])", prompts[0]), original
