"""End to end with the embedded Qwen2.5-Coder-1.5B (llama.cpp): each agent type on small
tasks, with short prompts and small max_tokens (the model reads ~30 tok/s on 2 cores).

Run with ``pytest -m qwen tests/test_agents_qwen.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowbase.agents import FunctionCallingAgent, ReActAgent, RouterAgent
from knowbase.agents.builtin import calculator, make_kb_search

pytestmark = [pytest.mark.slow, pytest.mark.qwen]

K8S = Path(__file__).resolve().parent.parent / "samples" / "k8s" / "en" / "concepts" / "workloads"


@pytest.fixture(scope="module")
def qwen():
    pytest.importorskip("llama_cpp")
    from knowbase.models.registry import get_chat_model

    return get_chat_model("llamacpp:qwen2.5-coder-1.5b", tracing=False)


@pytest.fixture(scope="module")
def k8s_kb(tmp_path_factory):
    """A knowledge base of three Kubernetes workload pages (fake embedder: BM25 does the work)."""
    from knowbase.config import Settings
    from knowbase.knowledge.base import KnowledgeBase

    settings = Settings.load(tmp_path_factory.mktemp("kbhome"))
    kb = KnowledgeBase.create("k8s-agents", embedder="fake", settings=settings)
    kb.ingest([K8S / "controllers" / "job.md", K8S / "controllers" / "cron-jobs.md", K8S / "pods" / "pod-lifecycle.md"])
    yield kb
    kb.close()


def has_number(text: str | None, number: str) -> bool:
    return bool(text) and re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text.replace(",", "")) is not None


def test_react_text_with_grammar_calculates(qwen) -> None:
    result = ReActAgent(qwen, [calculator], max_steps=3, step_max_tokens=64).run("What is 17 * 23?")
    assert result.status == "finished", result.to_dict()
    assert [s.action for s in result.tool_calls] == ["calculator"]
    assert result.tool_calls[0].observation == "391"
    assert has_number(result.answer, "391")
    assert result.retries == 0           # the grammar makes every step parse


def test_router_picks_the_order_tool_and_extracts_the_number(qwen) -> None:
    def product_lookup(name: str) -> str:
        """Look up a product's price and stock.

        Args:
            name: the product name.
        """
        return f"{name}: 49 EUR"

    def order_lookup(order_id: int) -> str:
        """Look up the shipping status of a customer's order by its order number.

        Args:
            order_id: the order number.
        """
        return f"order {order_id}: shipped on Monday" if order_id == 1234 else f"no order {order_id}"

    def policy_search(query: str) -> str:
        """Search the return and refund policies.

        Args:
            query: what to look for.
        """
        return "Returns within 30 days."

    router = RouterAgent(qwen, [product_lookup, order_lookup, policy_search], answer=False, arg_max_tokens=24)
    result = router.run("Where is my order 1234? It has not arrived.")
    assert [s.kind for s in result.steps] == ["choose", "arguments", "tool"], result.to_dict()
    assert result.steps[0].action == "order_lookup"
    assert result.steps[1].action_input == {"order_id": 1234}
    assert result.answer == "order 1234: shipped on Monday"


def test_function_calling_calculates(qwen) -> None:
    # without require_tool Qwen answers from memory (7000702 in our run); the first turn must use a tool
    agent = FunctionCallingAgent(qwen, [calculator], max_steps=3, step_max_tokens=48, require_tool=True)
    result = agent.run("What is 1234 * 5678?")
    assert result.status == "finished", result.to_dict()
    assert result.tool_calls and result.tool_calls[0].action == "calculator"
    assert result.tool_calls[0].observation == "7006652"
    assert has_number(result.answer, "7006652")


def test_react_json_looks_up_the_knowledge_base(qwen, k8s_kb) -> None:
    agent = ReActAgent(qwen, [make_kb_search(k8s_kb, k=2, max_chars=300)], format="json", max_steps=3,
                       step_max_tokens=80)
    result = agent.run("What is the default backoffLimit of a Kubernetes Job?")
    assert result.status == "finished", result.to_dict()
    assert result.tool_calls[0].action == "kb_search"
    assert "set by default to 6" in result.tool_calls[0].observation
    assert has_number(result.answer, "6")


def test_function_calling_combines_a_lookup_and_a_calculation(qwen, k8s_kb) -> None:
    tools = [make_kb_search(k8s_kb, k=2, max_chars=300), calculator]
    result = FunctionCallingAgent(qwen, tools, max_steps=4, step_max_tokens=64).run(
        "First search the knowledge base for the default backoffLimit of a Kubernetes Job. "
        "Then use the calculator to multiply that number by 5.")
    assert result.status == "finished", result.to_dict()
    actions = [s.action for s in result.tool_calls]
    assert actions[0] == "kb_search" and "calculator" in actions, actions
    assert "set by default to 6" in result.tool_calls[0].observation
    assert has_number(result.answer, "30")
