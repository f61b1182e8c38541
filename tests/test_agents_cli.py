"""``knowbase agent run / resume / list`` with fake models (no model files needed)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from knowbase.agents import AgentStore
from knowbase.agents.state import RunState, TaskState
from knowbase.cli.main import cli, main
from knowbase.config import Settings

# One fixed reply that is a valid plan, a valid JSON ReAct final step and a valid goal check.
UNIVERSAL = json.dumps({"tasks": ["answer it"], "thought": "easy", "action": "final_answer", "action_input": "42",
                        "done": True, "answer": "42", "new_tasks": []})


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_run_react_prints_steps_and_answer() -> None:
    script = 'Thought: compute\nAction: calculator\nAction Input: {"expression": "6*7"}'
    res = invoke("agent", "run", "--model", f"fake:{script}", "--max-steps", "2", "What is 6*7?")
    assert res.exit_code == 1  # the fixed reply never finishes: the step budget holds
    assert "[1] tool: compute\n    -> calculator({'expression': '6*7'})\n    <- 42" in res.output
    assert "[2] tool: compute" in res.output
    assert "[max_steps] stopped: step limit of 2 reached without a final answer" in res.output


def test_run_react_json_output() -> None:
    res = invoke("agent", "run", "--model", "fake:Thought: known\nFinal Answer: 391", "--json", "17*23?")
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert (data["answer"], data["status"], len(data["steps"])) == ("391", "finished", 1)


def test_run_router_none_of_these() -> None:
    res = invoke("agent", "run", "--type", "router", "--tools", "calculator", "--model", "fake:B", "write a poem")
    assert res.exit_code == 0
    assert "Sorry, I can't help with that request. I can help with: Evaluate an arithmetic expression" in res.output


def test_unknown_tool_name_is_a_clear_error() -> None:

    with pytest.raises(SystemExit) as exit_:
        main(["agent", "run", "--tools", "calculator,shell", "--model", "fake:x", "hi"])
    assert exit_.value.code == 1


def test_run_auto_then_list_and_resume() -> None:
    res = invoke("agent", "run", "--type", "auto", "--format", "json", "--memory-embedder", "fake",
                 "--no-feedback", "--model", f"fake:{UNIVERSAL}", "What is the answer?")
    assert res.exit_code == 0, res.output
    assert "[1] plan\n    <- answer it" in res.output
    assert "[2] task" in res.output and "[3] check" in res.output
    run_id = res.output.split("run ")[1].split()[0]
    listed = invoke("agent", "list")
    assert run_id in listed.output and "finished" in listed.output and "What is the answer?" in listed.output
    again = invoke("agent", "resume", run_id[:6], "--no-feedback")
    assert again.exit_code == 0 and again.output.strip().splitlines()[-2] == "42"
    home = Settings.load().home
    assert (home / "agents" / f"{run_id}.db").exists()   # the run's vector memory


def test_resume_a_crashed_run_from_the_cli() -> None:
    settings = Settings.load()
    store = AgentStore.default(settings)
    state = RunState(id="abcdef0123456789", goal="compute 6*7 and add 8", planned=True, step=2,
                     tasks=[TaskState(description="compute 6*7", status="done", result="42"),
                            TaskState(description="add 8", status="pending")],
                     config={"type": "auto", "tools": ["calculator"], "model": "fake", "format": "json",
                             "memory_embedder": "fake"})
    store.save(state)
    store.close()
    res = invoke("agent", "resume", "abcdef", "--model", f"fake:{UNIVERSAL}", "--no-feedback")
    assert res.exit_code == 0, res.output
    assert "run abcdef0123456789: compute 6*7 and add 8 (step 2, running)" in res.output
    assert "[1] task" in res.output and "[2] check" in res.output
    store = AgentStore.default(settings)
    final = store.load("abcdef0123456789")
    assert (final.status, final.answer, final.step) == ("finished", "42", 4)
    assert [t.status for t in final.tasks] == ["done", "done"]


def test_resume_unknown_run() -> None:

    with pytest.raises(SystemExit) as exit_:
        main(["agent", "resume", "0000000000000000"])
    assert exit_.value.code == 1


def test_list_when_empty() -> None:
    assert invoke("agent", "list").output == "no saved agent runs\n"


def test_run_functions_with_a_knowledge_base() -> None:
    from knowbase.knowledge.base import KnowledgeBase

    with KnowledgeBase.create("notes", embedder="fake") as kb:
        kb.add_texts(["The office wifi password rotates every Monday."], source="notes")
    res = invoke("agent", "run", "--type", "functions", "--kb", "notes", "--model", "fake:It rotates on Mondays.",
                 "--json", "When does the wifi password change?")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert (data["answer"], data["status"]) == ("It rotates on Mondays.", "finished")


def test_sql_query_needs_a_database() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["agent", "run", "--tools", "sql_query", "--model", "fake:x", "how many orders?"])
    assert exit_.value.code == 1
