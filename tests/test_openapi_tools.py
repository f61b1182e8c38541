"""OpenAPI toolsets: spec -> tools -> calls through the URL guard, against the shop stub on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time

import pytest

from knowbase.agents import FunctionCallingAgent, ReActAgent
from knowbase.errors import SafetyError
from knowbase.models.base import ChatModel, ToolCall
from knowbase.models.fake import FakeChat
from knowbase.safety.specs import SpecLimits
from knowbase.tools.approval import ApprovalQueue, Decision, needs_approval
from knowbase.tools.openapi import ApiAuth, OpenAPIToolset, SpecError, trim_to_budget
from knowbase.tracing.store import TraceStore
from shop_stub import SPEC, TOKEN, ShopHandler
from stub_http import serve


@pytest.fixture()
def shop(monkeypatch: pytest.MonkeyPatch):
    """The stub's base URL (``http://127.0.0.1:PORT/v1``) with the token in SHOP_TOKEN."""
    ShopHandler.reset()
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    with serve(ShopHandler) as base:
        yield base + "/v1"


def toolset(base: str, **kw) -> OpenAPIToolset:
    # 127.0.0.1 is loopback: the guard refuses it unless explicitly allowed, as here.
    kw.setdefault("auth", ApiAuth.bearer_from_env("SHOP_TOKEN"))
    return OpenAPIToolset.from_source(SPEC, base_url=base, allowed_hosts=["127.0.0.1"], allow_private=True, **kw)


def by_name(tools):
    return {t.name: t for t in tools}


def test_spec_gives_read_only_tools_with_resolved_schemas(shop: str) -> None:
    ts = toolset(shop)
    assert ts.name == "Acme Shop API"
    assert [op.name for op in ts.operations] == ["listOrders", "getOrder", "listProducts", "getProduct"]
    tools = by_name(ts.tools())
    order = tools["getOrder"].parameters
    # path-level parameter ($ref) + operation header; the Authorization header is never offered
    assert order["properties"]["orderId"] == {"type": "string", "pattern": "^A[0-9]{4}$",
                                              "description": "The order number, e.g. A1001."}
    assert set(order["properties"]) == {"orderId", "X-Request-Id"}
    assert order["required"] == ["orderId"]
    products = tools["listProducts"].parameters["properties"]
    assert products["category"]["enum"] == ["laptops", "phones", "accessories"]
    assert products["limit"]["maximum"] == 100
    assert "$ref" not in json.dumps([t.parameters for t in tools.values()])
    assert tools["getOrder"].description == "Look up one order. Status, items, total and delivery estimate of an order."
    assert not any(needs_approval(t) for t in tools.values())


def test_body_oneof_and_placement_of_selected_write_operations(shop: str) -> None:
    ts = toolset(shop, operations=["createReturn", "cancelOrder"])
    tools = by_name(ts.tools())
    ret = tools["createReturn"].parameters
    assert ret["required"] == ["orderId", "items", "contact"]
    assert [alt["required"] for alt in ret["properties"]["contact"]["oneOf"]] == [["email"], ["phone"]]
    placement = ts.to_dict()["operations"][1]["placement"]
    assert placement == {"orderId": "path:orderId", "reason": "body:reason", "comment": "body:comment"}
    assert all(needs_approval(t) for t in tools.values())  # non-GET: a person approves by default


def test_call_places_arguments_and_sends_the_secret_only_on_the_wire(shop: str, tmp_path) -> None:
    tools = by_name(toolset(shop).tools())
    store = TraceStore(tmp_path / "logs.db")
    model = ChatModel(FakeChat([
        'Thought: look it up\nAction: getOrder\nAction Input: {"orderId": "A1001", "X-Request-Id": "t-1"}',
        "Final Answer: Order A1001 has shipped; delivery is expected on 2026-12-08.",
    ]), tracer=store)
    result = ReActAgent(model, [tools["getOrder"], tools["listProducts"]]).run("Where is my order A1001?")
    assert result.status == "finished"
    assert result.answer == "Order A1001 has shipped; delivery is expected on 2026-12-08."
    step = result.steps[0]
    assert step.ok and step.observation.startswith("HTTP 200\n")
    assert json.loads(step.observation.split("\n", 1)[1])["estimatedDelivery"] == "2026-12-08"
    seen = ShopHandler.seen[-1]
    assert (seen["method"], seen["path"], seen["headers"]["x-request-id"]) == ("GET", "/v1/orders/A1001", "t-1")
    assert seen["headers"]["authorization"] == f"Bearer {TOKEN}"
    # the token is in no prompt, no observation, no trace row
    store.close()
    assert TOKEN.encode() not in (tmp_path / "logs.db").read_bytes()
    assert all(TOKEN not in m.content for msgs, _ in model.backend.calls for m in msgs)


def test_function_calling_agent_answers_a_catalogue_question(shop: str) -> None:
    tools = toolset(shop).tools()
    model = ChatModel(FakeChat([
        ToolCall("listProducts", {"q": "cable", "maxPrice": "20"}),
        "The USB-C cable 2 m costs 12.50 EUR and 140 are in stock.",
    ]))
    result = FunctionCallingAgent(model, tools).run("Do you sell a USB-C cable under 20 euros?")
    assert result.status == "finished"
    assert ShopHandler.seen[-1]["query"] == {"q": "cable", "maxPrice": "20.0"}  # "20" validated as a number
    assert json.loads(result.steps[0].observation.split("\n", 1)[1])[0]["sku"] == "AC-USBC-2M"


def test_http_errors_are_failed_calls_and_bad_arguments_never_reach_the_server(shop: str) -> None:
    tools = by_name(toolset(shop).tools())
    missing = tools["getOrder"].run({"orderId": "A9999"})
    assert (missing.ok, missing.error_kind) == (False, "error")
    assert missing.output.startswith("Error: HTTP 404 from GET /orders/{orderId}:")
    before = len(ShopHandler.seen)
    bad = tools["listProducts"].run({"category": "boats"})
    assert (bad.ok, bad.error_kind) == (False, "invalid_arguments")
    assert len(ShopHandler.seen) == before
    unauth = by_name(toolset(shop, auth=None).tools())["getOrder"].run({"orderId": "A1001"})
    assert "HTTP 401" in unauth.output


def test_path_values_are_encoded(shop: str) -> None:
    tools = by_name(toolset(shop).tools())
    tools["getProduct"].run({"sku": "../orders/A1001"})
    assert ShopHandler.seen[-1]["path"] == "/v1/products/..%2Forders%2FA1001"


def test_responses_are_trimmed_to_the_token_budget(shop: str) -> None:
    tools = by_name(toolset(shop, max_tokens=150).tools())
    out = tools["listProducts"].run({"category": "accessories"}).output
    body = out.split("\n", 1)[1]
    assert len(body) <= 150 * 4
    items = json.loads(body)
    assert items[-1].startswith("... ") and items[-1].endswith(" more items")
    assert items[0]["sku"] == "AC-USBC-2M"


def test_trim_to_budget_plain_text_and_counter() -> None:
    text = "word " * 1000
    cut = trim_to_budget(text, 50, count_tokens=lambda t: len(t.split()))
    assert len(cut.split(" ... [")[0].split()) <= 50
    assert cut.endswith("more characters cut]")
    assert trim_to_budget("short", 50) == "short"


# --- the guard ------------------------------------------------------------------------------
def test_loopback_server_refused_without_explicit_allowance(shop: str) -> None:
    with pytest.raises(SafetyError) as err:
        OpenAPIToolset.from_source(SPEC, base_url=shop, allowed_hosts=["127.0.0.1"])
    assert err.value.reason == "address"


def test_redirect_to_another_origin_drops_the_credential(shop: str) -> None:
    other = shop.replace("127.0.0.1", "localhost")
    ts = OpenAPIToolset.from_source(SPEC, base_url=shop, allowed_hosts=["127.0.0.1", "localhost"],
                                    allow_private=True, auth=ApiAuth.bearer_from_env("SHOP_TOKEN"))
    op = next(o for o in ts.operations if o.name == "getProduct")
    from knowbase.safety.urls import request

    request("GET", f"{shop}/redirect?to={other}/products/AC-USBC-2M", guard=ts.guard,
            secret_headers=ts.auth.headers())
    first, second = ShopHandler.seen[-2:]
    assert first["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in second["headers"] and second["path"] == "/v1/products/AC-USBC-2M"
    assert op.method == "GET"
    with pytest.raises(SafetyError) as err:
        request("GET", f"{shop}/redirect?to=http://169.254.169.254/latest/meta-data/", guard=ts.guard)
    assert err.value.reason == "host"


# --- hostile specs ----------------------------------------------------------------------------
def _spec(**extra) -> dict:
    doc = {"openapi": "3.0.3", "info": {"title": "t"}, "servers": [{"url": "https://api.example.com"}],
           "paths": {"/x": {"get": {"operationId": "getX", "parameters": [
               {"name": "q", "in": "query", "schema": {"$ref": "#/components/schemas/Q"}}]}}},
           "components": {"schemas": {"Q": {"type": "string"}}}}
    for key, value in extra.items():
        doc[key] = value
    return doc


@pytest.mark.parametrize("doc, reason, words", [
    (_spec(components={"schemas": {"Q": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Q"}}}}}),
     "recursive_ref", "recursive $ref '#/components/schemas/Q'"),
    (_spec(components={"schemas": {"Q": {"type": "string", "enum": [f"v{i}" for i in range(5000)]}}}),
     "enum", "an enum has 5000 values, over the limit of 200"),
    (_spec(components={"schemas": {"Q": {"$ref": "https://evil.example.com/schema.json"}}}),
     "ref", "only local references"),
    (_spec(components={"schemas": {"Q": {"$ref": "#/components/schemas/Nope"}}}), "ref", "points at nothing"),
    (_spec(openapi=None, swagger="2.0"), "version", "not an OpenAPI 3.x spec (found swagger 2.0)"),
    (_spec(servers=[]), "server", "the spec names no server"),
])
def test_hostile_specs_are_refused_clearly(doc: dict, reason: str, words: str) -> None:
    if doc.get("openapi") is None:
        doc.pop("openapi")
    with pytest.raises(SpecError) as err:
        OpenAPIToolset.from_source(doc)
    assert err.value.reason == reason
    assert words in str(err.value)


def test_metadata_server_is_refused() -> None:
    doc = _spec(servers=[{"url": "http://169.254.169.254/latest"}])
    with pytest.raises(SafetyError) as err:
        OpenAPIToolset.from_source(doc, allowed_hosts=["*"])
    assert err.value.reason == "address"
    assert "169.254.169.254" in str(err.value) and "link-local" in str(err.value)
    with pytest.raises(SafetyError):  # the default allow-list (the server's host) still refuses it
        OpenAPIToolset.from_source(doc)


def test_expansion_depth_and_size_limits() -> None:
    deep: dict = {"type": "string"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(SpecError) as err:
        OpenAPIToolset.from_source(_spec(components={"schemas": {"Q": deep}}))
    assert err.value.reason == "depth"
    # shared (non-recursive) references that fan out: 2^12 leaves
    schemas = {f"L{i}": {"type": "object", "properties": {"a": {"$ref": f"#/components/schemas/L{i + 1}"},
                                                           "b": {"$ref": f"#/components/schemas/L{i + 1}"}}}
               for i in range(12)}
    schemas["L12"] = {"type": "string"}
    schemas["Q"] = {"$ref": "#/components/schemas/L0"}
    with pytest.raises(SpecError) as err:
        OpenAPIToolset.from_source(_spec(components={"schemas": schemas}), limits=SpecLimits(max_nodes=2000))
    assert err.value.reason == "size"


def test_yaml_alias_bomb_and_size_refused_before_parsing(tmp_path) -> None:
    lines = ["openapi: 3.0.3", 'a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines))
    with pytest.raises(SafetyError) as err:
        OpenAPIToolset.from_source(bomb)
    assert err.value.reason == "aliases"
    big = tmp_path / "big.json"
    big.write_text("{" + " " * 3_000_000 + "}")
    with pytest.raises(SafetyError) as err:
        OpenAPIToolset.from_source(big)
    assert err.value.reason == "size"


def test_unknown_operation_lists_the_spec() -> None:
    with pytest.raises(SpecError) as err:
        OpenAPIToolset.from_source(SPEC, operations=["getOrdr"])
    assert "no operation named 'getOrdr'" in str(err.value) and "getOrder" in str(err.value)


def test_spec_servers_variables_give_the_default_url() -> None:
    ts = OpenAPIToolset.from_source(SPEC)
    assert ts.base_url == "https://eu.shop.example.com/v1"
    assert ts.guard.allowed_hosts == ("eu.shop.example.com",)


# --- a person in the loop -------------------------------------------------------------------------
def test_write_call_waits_for_approval_and_a_refusal_is_recorded(shop: str) -> None:
    asked = []

    def approver(call):
        asked.append(call.to_dict())
        return Decision(False, None, "not today")

    tools = toolset(shop, operations=["getOrder", "cancelOrder"], approver=approver).tools()
    model = ChatModel(FakeChat([
        ToolCall("cancelOrder", {"orderId": "A1002", "reason": "changed_mind"}),
        "I could not cancel order A1002: the cancellation was not approved.",
    ]))
    result = FunctionCallingAgent(model, tools).run("Cancel my order A1002, I changed my mind")
    assert result.status == "finished"
    step = result.steps[0]
    assert (step.ok, step.action) == (False, "cancelOrder")
    assert step.observation.startswith("Error: refused: a person must approve cancelOrder")
    assert "not today" in step.observation
    assert asked[0]["arguments"] == {"orderId": "A1002", "reason": "changed_mind", "comment": None}
    assert asked[0]["action"] == f'POST {shop}/orders/A1002/cancel body {{"reason": "changed_mind"}}'
    assert TOKEN not in json.dumps(asked)
    assert not [s for s in ShopHandler.seen if s["method"] == "POST"]  # nothing reached the server


def test_approved_call_runs_with_edited_arguments(shop: str) -> None:
    approver = lambda call: Decision(True, {**call.arguments, "reason": "other", "comment": "edited"})  # noqa: E731
    cancel = by_name(toolset(shop, operations=["cancelOrder"], approver=approver).tools())["cancelOrder"]
    result = cancel.run({"orderId": "A1002", "reason": "changed_mind"})
    assert result.ok, result.output
    assert result.output == 'HTTP 200\n{"id": "A1002", "status": "cancelled"}'
    assert ShopHandler.seen[-1]["body"] == {"reason": "other", "comment": "edited"}


def test_no_answer_in_time_is_a_refusal(shop: str) -> None:
    def slow(call):
        time.sleep(5)
        return True

    cancel = by_name(toolset(shop, operations=["cancelOrder"], approver=slow, approval_timeout=0.3)
                     .tools())["cancelOrder"]
    result = cancel.run({"orderId": "A1002", "reason": "other"})
    assert (result.ok, result.error_kind) == (False, "refused")
    assert "no answer within 0.3 s" in result.output
    assert not [s for s in ShopHandler.seen if s["method"] == "POST"]


def test_approval_queue_lets_another_thread_decide(shop: str) -> None:
    queue = ApprovalQueue(timeout=10)
    cancel = by_name(toolset(shop, operations=["cancelOrder"], approver=queue).tools())["cancelOrder"]
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", cancel.run({"orderId": "A1002", "reason": "other"})))
    worker.start()
    for _ in range(200):
        if queue.pending():
            break
        time.sleep(0.01)
    call = queue.pending()[0]
    assert call.to_dict()["tool"] == "cancelOrder" and call.decision is None
    queue.approve(call.id)
    worker.join(5)
    assert box["r"].ok and ShopHandler.seen[-1]["method"] == "POST"
    assert queue.pending() == []


def test_no_approver_means_never_run(shop: str) -> None:
    cancel = by_name(toolset(shop, operations=["cancelOrder"]).tools())["cancelOrder"]
    result = cancel.run({"orderId": "A1002", "reason": "other"})
    assert result.error_kind == "refused" and "no one is there to approve it" in result.output


# --- the router over plugins ----------------------------------------------------------------------
def _calendar():
    from knowbase.agents.plugins import Plugin
    from knowbase.agents.tools import tool

    @tool
    def next_meeting(person: str) -> str:
        """The next meeting with a person."""
        return f"Tuesday 10:00 with {person}"

    return Plugin("Calendar", "Meetings and appointments of the user.", (next_meeting,))


def test_plugin_router_picks_the_shop_then_its_operation(shop: str) -> None:
    from knowbase.agents import Plugin, PluginRouter

    plugins = [_calendar(), Plugin.from_toolset(toolset(shop))]
    model = ChatModel(FakeChat([
        "B",                                   # plugin: Acme Shop API
        "B",                                   # operation: getOrder (listOrders, getOrder, ...)
        '{"orderId": "A1001"}',                # its arguments
        "Order A1001 has shipped and should arrive on 8 December.",
    ]))
    router = PluginRouter(model, plugins)
    prompt = router.question("Where is order A1001?")
    assert "A) Calendar: Meetings and appointments of the user." in prompt
    assert "B) Acme Shop API: Order lookup and product catalogue of the Acme online shop." in prompt
    assert prompt.endswith("C) none of these\n\nReply with the letter of one option only.")
    result = router.run("Where is order A1001?")
    assert result.status == "finished", result.message
    assert [s.kind for s in result.steps] == ["choose", "choose", "arguments", "tool", "answer"]
    assert [s.index for s in result.steps] == [1, 2, 3, 4, 5]
    assert result.steps[0].action == "Acme Shop API" and result.steps[3].action == "getOrder"
    assert ShopHandler.seen[-1]["path"] == "/v1/orders/A1001"
    assert result.answer == "Order A1001 has shipped and should arrive on 8 December."
    assert result.usage.total_tokens == sum(s.usage.total_tokens for s in result.steps)


def test_plugin_router_none_fits_runs_nothing(shop: str) -> None:
    from knowbase.agents import Plugin, PluginRouter

    router = PluginRouter(ChatModel(FakeChat(["C"])), [_calendar(), Plugin.from_toolset(toolset(shop))])
    route = router.route("What is the capital of Peru?")
    assert (route.plugin, route.index) == (None, 2)
    result = PluginRouter(ChatModel(FakeChat(["C"])), [_calendar(), Plugin.from_toolset(toolset(shop))]).run("Peru?")
    assert result.status == "no_tool"
    assert result.answer.startswith("Sorry, I can't help with that request. I can help with: Meetings and appointments")
    assert ShopHandler.seen == []


def test_cli_agent_run_builds_spec_tools_through_the_api(shop: str) -> None:
    from click.testing import CliRunner

    from knowbase.cli.main import cli

    args = ["agent", "run", "Where is A1001?", "--openapi", str(SPEC), "--base-url", shop,
            "--allow-host", "127.0.0.1", "--allow-private", "--bearer-env", "SHOP_TOKEN",
            "--operations", "getOrder,cancelOrder", "--model", "fake:Final Answer: shipped", "--json"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["answer"] == "shipped"
    bad = CliRunner().invoke(cli, [*args[:3], "--openapi", str(SPEC), "--operations", "nope",
                                   "--model", "fake:x"])
    assert bad.exit_code != 0 and "no operation named 'nope'" in str(bad.exception)


@pytest.mark.parametrize("mutate", [
    lambda d: d["paths"]["/x"]["get"].__setitem__("parameters", {"q": 1}),
    lambda d: d["paths"]["/x"].__setitem__("parameters", 7),
    lambda d: d["paths"]["/x"]["get"].__setitem__("requestBody", ["not", "an", "object"]),
    lambda d: d["paths"]["/x"]["get"].__setitem__("requestBody", {"content": ["application/json"]}),
    lambda d: d["paths"]["/x"]["get"]["parameters"][0].__setitem__("schema", "string"),
    lambda d: d["paths"].__setitem__("/y", "nonsense"),
    lambda d: d["components"]["schemas"].__setitem__("Q", {"type": "string", "enum": "abc"}),
    lambda d: d.__setitem__("info", "x"),
])
def test_malformed_specs_never_crash(mutate) -> None:
    from knowbase.errors import KnowbaseError

    doc = _spec()
    mutate(doc)
    try:
        tools = OpenAPIToolset.from_source(doc).tools()
    except KnowbaseError as exc:  # a clear refusal is fine; a TypeError is not
        assert str(exc)
    else:
        assert [t.name for t in tools] == ["getX"]


def test_tools_list_shows_a_specs_escapes_as_text(tmp_path) -> None:
    """Titles and descriptions come from someone else's spec: printed, their terminal escapes
    (an OSC 52 clipboard write, colours) are made visible, never sent to the terminal."""
    from click.testing import CliRunner

    from knowbase.cli.main import cli

    spec = tmp_path / "esc.yaml"
    spec.write_text('openapi: 3.0.0\ninfo: {title: "Shop\\e]52;c;aGk=\\a", version: "1"}\n'
                    'servers: [{url: "https://api.example.com"}]\npaths:\n  /orders/{id}:\n    get:\n'
                    '      operationId: getOrder\n      description: "Get \\e[31mred\\e[0m order"\n'
                    '      parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n'
                    '      responses: {"200": {description: ok}}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["tools", "list", "--openapi", str(spec)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "Shop\\u001b]52;c;aGk=\\u0007 at https://api.example.com: 1 tool(s)" in result.output
    assert "  getOrder(id: path)  GET /orders/{id}" in result.output
