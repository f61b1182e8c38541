"""The kb, ask and demo commands, end to end with the fake embedder and fake chat model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli, main


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "pods.md").write_text("# Pods\n\nA Pod is the smallest deployable unit in Kubernetes.\n\n"
                               "## Restart policy\n\nThe restartPolicy field applies to all containers in the Pod.\n",
                               encoding="utf-8")
    (d / "config.md").write_text("# ConfigMaps\n\nConfigMaps store configuration data as key-value pairs.\n",
                                 encoding="utf-8")
    (d / "zh.md").write_text("# 存储卷\n\n持久卷是集群中的一块存储，由管理员配置。\n", encoding="utf-8")
    return d


@pytest.fixture
def built(docs: Path) -> Path:
    assert run("kb", "create", "demo", "--embedder", "fake")[0] == 0
    code, out, _ = run("kb", "ingest", "demo", str(docs))
    assert code == 0, out
    return docs


def test_create_ingest_list_stats_docs(docs: Path) -> None:
    code, out, _ = run("kb", "create", "demo", "--embedder", "fake")
    assert code == 0 and "created demo (fake:hash-64)" in out
    code, out, _ = run("kb", "ingest", "demo", str(docs), "--json")
    report = json.loads(out)
    assert code == 0 and len(report["added"]) == 3 and report["failed"] == []
    code, out, _ = run("kb", "ingest", "demo", str(docs))
    assert code == 0 and out.startswith("0 added, 0 updated, 3 unchanged, 0 removed, 0 not followed, 0 failed")
    code, out, _ = run("kb", "list")
    assert code == 0 and out.split()[:2] == ["demo", "3"]
    stats = json.loads(run("kb", "stats", "demo", "--json")[1])
    assert stats["documents"] == 3 and stats["embedder"] == "fake:hash-64" and stats["vectors"] == stats["chunks"]
    rows = json.loads(run("kb", "docs", "demo", "--json")[1])
    assert sorted(Path(r["path"]).name for r in rows) == ["config.md", "pods.md", "zh.md"]
    assert {r["language"] for r in rows} == {"en", "zh"}


def test_reingest_reports_vectors_kept_for_unchanged_chunks(built: Path) -> None:
    docs = built
    sections = [f"## Part {i}\n\n" + " ".join(f"Sentence {j} of part {i} talks about nodes." for j in range(60))
                for i in range(3)]
    (docs / "long.md").write_text("# Long\n\n" + "\n\n".join(sections), encoding="utf-8")
    code, out, _ = run("kb", "ingest", "demo", str(docs))
    assert code == 0 and out.startswith("1 added, 0 updated, 3 unchanged") and "kept their vectors" not in out
    (docs / "long.md").write_text("# Long\n\n" + "\n\n".join(sections[:2] + ["## Part 2\n\nRewritten."]),
                                  encoding="utf-8")
    code, out, _ = run("kb", "ingest", "demo", str(docs))
    assert code == 0 and out.startswith("0 added, 1 updated, 3 unchanged, 0 removed, 0 not followed, 0 failed; ")
    assert re.search(r"chunks \((\d+) with unchanged text kept their vectors\)", out), out


def test_search_modes_and_json(built: Path) -> None:
    code, out, _ = run("kb", "search", "demo", "restartPolicy containers", "--mode", "bm25", "-k", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["path"].endswith("pods.md") and hits[0]["section"][0] == "Pods"
    assert hits[0]["bm25_rank"] == 1 and hits[0]["rank"] == 1
    code, out, _ = run("kb", "search", "demo", "key-value configuration")
    assert code == 0 and out.lstrip().startswith("1.") and "config.md" in out.splitlines()[0]
    code, out, _ = run("kb", "search", "demo", "Pod", "--filter", "path=*config*", "--json")
    assert all(h["path"].endswith("config.md") for h in json.loads(out))


def test_ask_json_and_stream(built: Path) -> None:
    code, out, _ = run("ask", "demo", "What is the restartPolicy of a Pod?", "--model",
                       "fake:It applies to all containers [1] [9].", "--json")
    data = json.loads(out)
    assert code == 0 and data["answer"] == "It applies to all containers [1]."
    assert data["invalid_citations"] == [9] and data["citations"][0]["path"].endswith("pods.md")
    code, out, err = run("ask", "demo", "What is the restartPolicy of a Pod?", "--model", "fake:All containers [1].")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "sources:" and "pods.md § Pods" in lines[1]
    assert "All containers [1]." in out and "cited:" in out
    assert "first source" in lines[-1] and "first answer token" in lines[-1]


def test_ask_reports_removed_citations_and_abstains(built: Path) -> None:
    code, out, err = run("ask", "demo", "What is the restartPolicy?", "--model", "fake:Yes [7].")
    assert code == 0 and "removed citations of passages not given: [7]" in err
    code, out, _ = run("ask", "demo", "Who painted the Mona Lisa?", "--model", "fake:Leonardo [1].")
    assert "nearest sources:" in out and "does not contain the answer" in out and "Leonardo" not in out


def test_ask_extractive(built: Path) -> None:
    code, out, _ = run("ask", "demo", "What do ConfigMaps store?", "--extractive", "--json")
    data = json.loads(out)
    assert data["extractive"] and data["answer"].startswith("ConfigMaps store configuration data")
    assert data["citations"][0]["path"].endswith("config.md")


def test_ask_interactive_loop(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import knowbase.cli.ask as ask_mod

    monkeypatch.setattr(ask_mod.sys.stdin, "isatty", lambda: True, raising=False)
    code, out, _ = run("ask", "demo", "--extractive", input="What do ConfigMaps store?\n\n")
    assert code == 0 and out.count("answer:") == 1 and "ConfigMaps store configuration data" in out


def test_remove_check_drop(built: Path) -> None:
    code, out, _ = run("kb", "remove", "demo", str(built / "zh.md"))
    assert code == 0 and out.startswith("removed ")
    code, out, _ = run("kb", "check", "demo")
    assert code == 0 and out.strip().endswith("ok")
    code, _, _ = run("kb", "drop", "demo", "--yes")
    assert code == 0
    assert run("kb", "list")[1].startswith("no knowledge bases yet")


def test_check_exits_1_on_damage(built: Path, knowbase_home: Path) -> None:
    from knowbase.knowledge.store import KBStore

    store = KBStore(knowbase_home / "kb" / "demo.db")
    store.conn.execute("DELETE FROM vec_chunks WHERE chunk_id = (SELECT min(id) FROM chunks)")
    store.close()
    code, out, err = run("kb", "check", "demo")
    assert code == 1 and "without a vector" in err


def test_errors_are_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["kb", "stats", "missing"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: no knowledge base 'missing'") and "Traceback" not in err


def test_ingest_exits_1_when_a_file_fails(built: Path, tmp_path: Path, knowbase_home: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "ok.txt").write_text("Nodes run Pods.", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "knowbase", "kb", "ingest", "demo", str(bad)], capture_output=True,
                          text=True, env={**os.environ, "KNOWBASE_HOME": str(knowbase_home)}, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout.startswith("1 added, 0 updated, 0 unchanged, 0 removed, 0 not followed, 1 failed")
    assert "empty.txt" in proc.stderr


def test_demo_reports_missing_sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import knowbase.cli.demo as demo_mod

    monkeypatch.setattr(demo_mod, "find_sample", lambda: None)
    with pytest.raises(Exception) as info:
        run("demo", "--model", "fake", "--embedder", "fake")
    assert "samples/k8s" in str(info.value)


def test_demo_runs_offline_with_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import knowbase.cli.demo as demo_mod

    sample = tmp_path / "k8s"
    (sample / "en").mkdir(parents=True)
    (sample / "zh-cn").mkdir()
    (sample / "en" / "pods.md").write_text("# Pods\n\nWhen a node runs out of resources, Pods are evicted by QoS "
                                           "class: BestEffort first, then Burstable, then Guaranteed.\n")
    (sample / "zh-cn" / "pods.md").write_text("# Pod\n\nPod 是 Kubernetes 中最小的可部署的计算单元。静态 Pod 由特定节点上的 kubelet 守护进程直接管理。\n")
    monkeypatch.setattr(demo_mod, "find_sample", lambda: sample)
    code, out, _ = run("demo", "--model", "fake:See [1].", "--embedder", "fake")
    assert code == 0
    assert "ingest: 2 added" in out
    assert out.count("question:") == 2 and out.count("See [1].") >= 2
    assert "first answer token" in out
    code, out, _ = run("demo", "--model", "fake:See [1].", "--embedder", "fake")
    assert "ingest: 0 added, 0 updated, 2 unchanged" in out
    # another copy of the sample (a second clone): its pages replace the first copy's, no duplicates
    import shutil

    moved = tmp_path / "clone2" / "k8s"
    shutil.copytree(sample, moved)
    monkeypatch.setattr(demo_mod, "find_sample", lambda: moved)
    code, out, _ = run("demo", "--model", "fake:See [1].", "--embedder", "fake")
    assert code == 0 and "removed 2 pages ingested from another copy of the sample" in out
    assert "ingest: 2 added" in out
    docs = json.loads(run("kb", "docs", "k8s-sample", "--json")[1])
    assert len(docs) == 2 and all(d["path"].startswith(str(moved)) for d in docs)


def test_ask_rejects_an_unknown_model_before_retrieval(tmp_path) -> None:
    from click.testing import CliRunner

    from knowbase.cli.main import cli

    result = CliRunner().invoke(cli, ["ask", "no-such-kb", "hi", "--model", "foobar"])
    assert result.exit_code != 0
    assert "unknown chat backend 'foobar'" in str(result.exception)


def test_ask_hides_the_models_not_found_marker() -> None:
    from knowbase.cli.ask import print_stream
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel, Embedder
    from knowbase.models.fake import FakeChat, FakeEmbedder

    kb = KnowledgeBase.create("nf", embedder=Embedder(FakeEmbedder(64)))
    kb.add_texts(["ConfigMaps store non-confidential configuration data as key-value pairs."])
    lines: list[str] = []
    with kb:
        answer = print_stream(kb, "What do ConfigMaps store?", model=ChatModel(FakeChat(["NOT FOUND"])), k=2,
                              extractive=False, echo=lambda text="", **kw: lines.append(str(text)))
    assert answer.abstained
    assert not any("NOT FOUND" in line for line in lines)
    assert any("does not contain" in line for line in lines)


def test_abstain_thresholds_are_per_knowledge_base_and_persist(built: Path) -> None:
    code, out, _ = run("kb", "abstain", "demo", "--json")
    assert code == 0 and json.loads(out) == {"min_coverage": 0.35, "min_cosine": 0.55, "max_unknown": 0.2,
                                             "unknown_min_chunks": 100}
    code, out, _ = run("kb", "abstain", "demo", "--min-coverage", "0.2", "--max-unknown", "off")
    assert code == 0 and "min_coverage         0.2" in out and "max_unknown          off" in out
    from knowbase.knowledge.base import KnowledgeBase

    with KnowledgeBase.open("demo") as base:                      # stored in the file: a new process sees it
        assert base.policy.min_coverage == 0.2 and base.policy.max_unknown is None
        assert base.policy.min_cosine == 0.55
    assert run("kb", "create", "other", "--embedder", "fake")[0] == 0
    assert json.loads(run("kb", "abstain", "other", "--json")[1])["min_coverage"] == 0.35   # others keep theirs
    code, out, err = run("kb", "abstain", "demo", "--min-coverage", "1.5")
    assert code != 0 and "min_coverage must be between 0 and 1" in err
    code, out, err = run("kb", "abstain", "demo", "--unknown-min-chunks", "many")
    assert code != 0 and "unknown_min_chunks" in err
    code, out, _ = run("kb", "abstain", "demo", "--reset", "--json")
    assert code == 0 and json.loads(out)["min_coverage"] == 0.35 and json.loads(out)["max_unknown"] == 0.2

