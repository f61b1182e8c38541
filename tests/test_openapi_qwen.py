"""OpenAPI tools end to end with the embedded Qwen2.5-Coder-1.5B: the shop spec, the stub on
127.0.0.1, the plugin router choosing the shop, then the order lookup.

Run with ``KNOWBASE_N_THREADS=1 pytest -m qwen tests/test_openapi_qwen.py``.
"""

from __future__ import annotations

import pytest

from knowbase.agents import Plugin, PluginRouter
from knowbase.agents.tools import tool
from knowbase.tools.openapi import ApiAuth, OpenAPIToolset
from shop_stub import SPEC, TOKEN, ShopHandler
from stub_http import serve

pytestmark = [pytest.mark.slow, pytest.mark.qwen]


def test_qwen_answers_an_order_question_through_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    from knowbase.models.registry import get_chat_model

    @tool
    def next_meeting(person: str) -> str:
        """The next meeting with a person."""
        return f"Tuesday 10:00 with {person}"

    ShopHandler.reset()
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    with serve(ShopHandler) as base:
        shop = OpenAPIToolset.from_source(SPEC, base_url=base + "/v1", allowed_hosts=["127.0.0.1"], allow_private=True,
                                          operations=["getOrder", "listProducts"],
                                          auth=ApiAuth.bearer_from_env("SHOP_TOKEN"))
        plugins = [Plugin("Calendar", "Meetings and appointments of the user.", (next_meeting,)),
                   Plugin.from_toolset(shop)]
        model = get_chat_model("llamacpp:qwen2.5-coder-1.5b", tracing=False)
        result = PluginRouter(model, plugins).run("What is the status of my order A1001?")
    assert result.status == "finished", result.to_dict()
    assert result.steps[0].action == "Acme Shop API"
    assert [s.action for s in result.tool_calls] == ["getOrder"]
    assert ShopHandler.seen[-1]["path"] == "/v1/orders/A1001"
    assert "shipped" in (result.answer or "").lower()
