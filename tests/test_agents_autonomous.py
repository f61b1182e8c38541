"""The autonomous agent against scripted fake models: plan, tasks with memory, goal check,
budgets, human feedback, saved state and resume after a crash."""

from __future__ import annotations

import json
import sqlite3

import pytest

from knowbase.agents import AgentStore, AutonomousAgent
from knowbase.agents.builtin import calculator
from knowbase.agents.state import RunNotFound
from knowbase.agents.steps import AgentResult, Budget
from knowbase.models.base import ChatModel, Usage
from knowbase.models.fake import FakeChat
from knowbase.tracing.store import TraceStore


def plan(*tasks: str) -> str:
    return json.dumps({"tasks": list(tasks)})


def check(done: bool, answer: str = "", new_tasks: tuple[str, ...] = ()) -> str:
    return json.dumps({"done": done, "answer": answer, "new_tasks": list(new_tasks)})


def act(expr: str) -> str:
    return f'Thought: compute\nAction: calculator\nAction Input: {{"expression": "{expr}"}}'


class ListMemory:
    """A minimal vector-memory stand-in: keeps texts, searches by shared words."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.metadatas: list[dict] = []

    def add_texts(self, texts, *, metadatas=None, source="memory"):
        self.texts.extend(texts)
        self.metadatas.extend(metadatas or [{} for _ in texts])
        return list(range(len(self.texts) - len(texts), len(self.texts)))

    def search(self, query, *, k=5, mode="hybrid"):
        words = set(query.lower().split())
        ranked = sorted(self.texts, key=lambda t: -len(words & set(t.lower().split())))
        return ranked[:k]


GOAL = "Compute 6*7, then add 8 to it."
HAPPY = [plan("compute 6*7", "add 8 to the result"), act("6*7"), "Final Answer: 42", act("42+8"),
         "Final Answer: 50", check(True, "50")]


def test_plan_execute_remember_check_step_by_step(tmp_path) -> None:
    fake = FakeChat(list(HAPPY))
    memory = ListMemory()
    store = AgentStore(tmp_path / "agents.db")
    seen, sub = [], []
    agent = AutonomousAgent(ChatModel(fake), [calculator], memory=memory, store=store, on_step=seen.append,
                            on_substep=sub.append)
    result = agent.run(GOAL)
    assert (result.status, result.answer) == ("finished", "50")
    assert [s.kind for s in result.steps] == ["plan", "task", "task", "check"]
    assert result.steps[0].action_input == ["compute 6*7", "add 8 to the result"]
    assert [s.observation for s in result.steps[1:3]] == ["42", "50"]
    assert [s.kind for s in sub] == ["tool", "answer", "tool", "answer"]
    assert seen == result.steps
    # each result went to memory and was retrieved for the next task
    assert memory.texts == ["Task: compute 6*7\nResult: 42", "Task: add 8 to the result\nResult: 50"]
    assert memory.metadatas[0] == {"run_id": result.run_id, "kind": "task", "task": 1, "status": "done"}
    second_task_prompt = fake.calls[3][0][-1].content
    assert second_task_prompt.startswith("Task: add 8 to the result\n(This task is one part of the goal: " + GOAL)
    assert "Notes from earlier tasks:\n- Task: compute 6*7\nResult: 42" in second_task_prompt.replace(" Result", "\nResult")
    # structured output for the plan and the check
    assert fake.calls[0][1].json_schema["properties"]["tasks"]["maxItems"] == 4
    assert fake.calls[5][1].json_schema["required"] == ["done", "answer", "new_tasks"]
    assert "- compute 6*7: 42\n- add 8 to the result: 50" in fake.calls[5][0][0].content
    # usage counts sub-agent calls too
    assert result.usage.total_tokens == sum(s.usage.total_tokens for s in result.steps)
    assert result.steps[1].usage.total_tokens > 0
    saved = store.load(result.run_id)
    assert saved.status == "finished" and saved.answer == "50" and saved.step == 4
    assert [t.status for t in saved.tasks] == ["done", "done"]
    assert (saved.prompt_tokens, saved.completion_tokens) == (result.usage.prompt_tokens, result.usage.completion_tokens)


def test_state_is_saved_after_every_step(tmp_path) -> None:
    store = AgentStore(tmp_path / "agents.db")
    snapshots = []

    def feedback(state, step):
        row = sqlite3.connect(tmp_path / "agents.db").execute("SELECT step, state FROM runs").fetchone()
        snapshots.append((row[0], len(json.loads(row[1])["log"])))
        return None

    AutonomousAgent(ChatModel(FakeChat(list(HAPPY))), [calculator], store=store, feedback=feedback).run(GOAL)
    assert snapshots == [(1, 1), (2, 2), (3, 3)]   # the check step ends the run before feedback


def test_resume_after_a_crash_continues_where_it_stopped(tmp_path) -> None:
    store = AgentStore(tmp_path / "agents.db")
    replies = iter([plan("compute 6*7", "add 8 to the result"), act("6*7"), "Final Answer: 42"])

    def crashing(messages, options):
        try:
            return next(replies)
        except StopIteration:
            raise KeyboardInterrupt from None     # Ctrl-C in the middle of task 2

    agent = AutonomousAgent(ChatModel(FakeChat(crashing)), [calculator], store=store, memory=ListMemory())
    with pytest.raises(KeyboardInterrupt):
        agent.run(GOAL, run_id="run0000000000001")
    saved = store.load("run0000")
    assert saved.status == "running" and saved.step == 2
    assert [(t.description, t.status, t.result) for t in saved.tasks] == [
        ("compute 6*7", "done", "42"), ("add 8 to the result", "pending", "")]

    fake = FakeChat([act("42+8"), "Final Answer: 50", check(True, "50")])
    result = AutonomousAgent(ChatModel(fake), [calculator], store=store).resume("run0000")
    assert (result.status, result.answer, result.run_id) == ("finished", "50", "run0000000000001")
    assert [s.kind for s in result.steps] == ["task", "check"]       # task 1 was not done again
    assert result.steps[0].index == 1 and len(fake.calls) == 3
    final = store.load("run0000000000001")
    assert final.step == 4 and final.status == "finished"
    assert final.prompt_tokens > saved.prompt_tokens                  # usage carried over
    again = AutonomousAgent(ChatModel(FakeChat([])), [calculator], store=store).resume("run0000000000001")
    assert (again.status, again.answer) == ("finished", "50")        # finished runs are not re-run
    with pytest.raises(RunNotFound):
        store.load("nope")


def test_a_model_that_never_finishes_is_stopped_by_the_step_budget(tmp_path) -> None:
    def endless(messages, options):
        prompt = messages[-1].content
        if options.json_schema and "tasks" in options.json_schema["properties"]:
            return plan("look around")
        if options.json_schema:
            n = prompt.count("\n- ")
            return check(False, "", (f"look around again {n}",))
        return "Final Answer: nothing yet"

    store = AgentStore(tmp_path / "agents.db")
    result = AutonomousAgent(ChatModel(FakeChat(endless)), [calculator], store=store, max_steps=7).run("find it")
    assert result.status == "max_steps" and result.answer is None
    assert result.message == "stopped: step limit of 7 reached without a final answer"
    assert [s.kind for s in result.steps] == ["plan", "task", "check", "task", "check", "task", "check"]
    assert store.load(result.run_id).status == "max_steps"
    # a larger budget lets the same run continue
    more = AutonomousAgent(ChatModel(FakeChat(endless)), [calculator], store=store, max_steps=9).resume(result.run_id)
    assert more.status == "max_steps" and len(more.steps) == 2 and store.load(result.run_id).step == 9


def test_token_and_time_budgets_hold(tmp_path) -> None:
    def endless(messages, options):
        if options.json_schema and "tasks" in options.json_schema["properties"]:
            return plan("a", "b", "c", "d")
        return act("1+1")                                           # sub-agents loop forever

    result = AutonomousAgent(ChatModel(FakeChat(endless)), [calculator], max_steps=100, max_tokens=1500,
                             task_max_steps=50).run("loop")
    assert result.status == "token_budget" and result.usage.total_tokens >= 1500
    assert result.message.startswith("stopped: token budget of 1500 used up")
    assert [s.kind for s in result.steps][:2] == ["plan", "task"]
    assert result.steps[1].ok is False                              # the task itself hit the budget
    timed = AutonomousAgent(ChatModel(FakeChat(endless)), [calculator], max_seconds=0.0).run("loop")
    assert timed.status == "time_limit" and timed.steps == []


def test_human_feedback_between_steps(tmp_path) -> None:
    fake = FakeChat(list(HAPPY))
    answers = iter(["Round to whole numbers.", None, "stop"])
    result = AutonomousAgent(ChatModel(fake), [calculator], feedback=lambda state, step: next(answers)).run(GOAL)
    assert result.status == "stopped" and result.message == "stopped by the user"
    assert result.answer == "50"                                    # the last task's result
    assert [s.kind for s in result.steps] == ["plan", "task", "task"]
    assert "Notes from the user: Round to whole numbers." in fake.calls[1][0][-1].content


def test_unparseable_plan_falls_back_to_the_goal_and_failed_check_keeps_partial(tmp_path) -> None:
    fake = FakeChat(["I will do it step by step!", "still prose", "Final Answer: 50", "not json", "no"])
    result = AutonomousAgent(ChatModel(fake), [calculator]).run(GOAL)
    plan_step = result.steps[0]
    assert plan_step.retries == 1 and plan_step.ok is False
    assert plan_step.action_input == [GOAL]
    assert result.status == "parse_error" and result.answer == "50"
    assert result.retries == 2


def test_custom_executor_and_tracing(tmp_path) -> None:
    store = TraceStore(tmp_path / "logs.db")
    calls = []

    def executor(prompt: str, budget: Budget) -> AgentResult:
        calls.append((prompt.splitlines()[0], budget.max_steps))
        return AgentResult("done: " + prompt.splitlines()[0], "finished", "finished", usage=Usage(5, 5))

    fake = FakeChat([plan("t1", "t2"), check(True, "all done")])
    result = AutonomousAgent(ChatModel(fake, tracer=store), [calculator], executor=executor, task_max_steps=3).run("g")
    assert calls == [("Task: t1", 3), ("Task: t2", 3)]
    assert result.answer == "all done"
    names = [s["name"] for s in store.spans(result.trace_id)]
    assert sorted(names) == ["agent:auto", "check", "plan", "task 1", "task 2"]


def test_memory_in_a_real_knowledge_base(tmp_path) -> None:
    from knowbase.knowledge.base import KnowledgeBase

    kb = KnowledgeBase.create("agent-memory", embedder="fake")
    try:
        result = AutonomousAgent(ChatModel(FakeChat(list(HAPPY))), [calculator], memory=kb).run(GOAL)
        assert result.answer == "50"
        hits = kb.search("compute 6*7 result", k=2, mode="bm25")
        assert any("Task: compute 6*7\nResult: 42" in h.chunk.text for h in hits)
    finally:
        kb.close()
