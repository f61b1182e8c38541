"""Security tests: safe arithmetic and the URL guard / guarded fetch (127.0.0.1 only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from knowbase.errors import FetchError, SafetyError
from knowbase.safety.math import safe_eval
from knowbase.safety.urls import UrlGuard, fetch
from stub_http import serve


# --- safe_eval --------------------------------------------------------------------------
@pytest.mark.parametrize("expression, expected", [
    ("2 * (3 + 4) ** 2", 98),
    ("-3 + 10 // 3", 0),
    ("7 % 3", 1),
    ("1 / 4", 0.25),
    ("2^10", 1024),
    ("2^10 - 24", 1000),
    ("sqrt(16) + abs(-2)", 6.0),
    ("max(1, 5, 3) - min(4, 2)", 3),
    ("round(2.567, 2)", 2.57),
    ("log(100, 10)", 2.0),
    ("factorial(5)", 120),
    ("floor(2.7) + ceil(2.1)", 5),
])
def test_safe_eval_computes(expression: str, expected: float) -> None:
    assert safe_eval(expression) == pytest.approx(expected)


def test_safe_eval_constants() -> None:
    assert safe_eval("pi") == pytest.approx(3.141592653589793)
    assert safe_eval("log(e)") == pytest.approx(1.0)
    assert isinstance(safe_eval("2 + 3"), int)


@pytest.mark.parametrize("expression, reason", [
    ("__import__('os').system('echo hi')", "attribute"),
    ("__import__('os')", "name"),
    ("().__class__.__bases__[0].__subclasses__()", "attribute"),
    ("open('/etc/passwd').read()", "attribute"),
    ("open('/etc/passwd')", "name"),
    ("eval('1+1')", "name"),
    ("exec('x=1')", "name"),
    ("os", "name"),
    ("x + 1", "name"),
    ("'abc' * 3", "literal"),
    ("True + 1", "literal"),
    ("1j * 2", "literal"),
    ("[1, 2][0]", "node"),
    ("(lambda: 1)()", "call"),
    ("[x for x in range(10)]", "node"),
    ("sqrt(x=4)", "call"),
    ("max(*[1, 2])", "call"),
    ("1 if 1 else 2", "node"),
    ("1 < 2", "node"),
    ("1 << 10000", "node"),
    ("math.sqrt(4)", "attribute"),
    ("a := 1", "syntax"),
    ("import os", "syntax"),
    ("9**9**9", "power"),
    ("9**9**9**9", "power"),
    ("2 ** 100000", "power"),
    ("10 ** 4000", "size"),
    ("(2 ** 5000) * (2 ** 5000)", "size"),
    ("999999999 ** 9999", "size"),
    ("factorial(100000)", "size"),
    ("factorial(10 ** 6)", "size"),
    ("factorial(2.5)", "domain"),
    ("exp(1000)", "overflow"),
    ("1e308 * 10", "overflow"),
    ("1 / 0", "zero-division"),
    ("0 ** -1", "zero-division"),
    ("sqrt(-1)", "domain"),
    ("(-8) ** (1/3)", "domain"),
    ("", "syntax"),
    ("2 +", "syntax"),
])
def test_safe_eval_refuses(expression: str, reason: str) -> None:
    with pytest.raises(SafetyError) as info:
        safe_eval(expression)
    assert info.value.reason == reason, str(info.value)


def test_safe_eval_length_and_nesting_bounded() -> None:
    with pytest.raises(SafetyError) as info:
        safe_eval("1+" * 300 + "1")
    assert info.value.reason == "length"
    assert safe_eval("1+" * 300 + "1", max_length=1000) == 301
    with pytest.raises(SafetyError):
        safe_eval("(" * 400 + "1" + ")" * 400, max_length=1000)


def test_safe_eval_power_limit_is_configurable() -> None:
    assert safe_eval("2 ** 20", max_power=20) == 1048576
    with pytest.raises(SafetyError) as info:
        safe_eval("2 ** 21", max_power=20)
    assert info.value.reason == "power"


def test_safe_eval_huge_inputs_finish_quickly() -> None:
    """Bounded in time: each refusal happens before any big computation (no timing assert:
    a hang would stall the suite, which is the failure this guards against)."""
    for expression in ("9**9**9", "factorial(factorial(20))", "99999**9999*99999**9999", "10**10**10"):
        with pytest.raises(SafetyError):
            safe_eval(expression)


# --- UrlGuard: pure checks (IP literals need no DNS; names use a mocked resolver) ----------
def _resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise SafetyError(f"cannot resolve {host}", reason="resolve")
        return table[host]
    return resolve


PUBLIC = _resolver({"docs.example.com": ["93.184.215.14"], "api.example.com": ["93.184.215.15"],
                    "example.com": ["93.184.215.14"], "rebind.example.com": ["93.184.215.14", "127.0.0.1"],
                    "internal.example.com": ["10.0.0.5"], "meta.example.com": ["169.254.169.254"],
                    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
                    "mapped.example.com": ["::ffff:127.0.0.1"]})


@pytest.mark.parametrize("url", [
    "https://docs.example.com/page",
    "http://docs.example.com:8080/x?q=1",
    "https://api.example.com/v1",
    "https://v6.example.com/",
])
def test_guard_accepts(url: str) -> None:
    UrlGuard(["docs.example.com", "*.example.com"], resolver=PUBLIC).check(url)


@pytest.mark.parametrize("url, reason", [
    ("ftp://docs.example.com/file", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://docs.example.com/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("https://user:pw@docs.example.com/", "credentials"),
    ("http://evil.com\\@docs.example.com/", "credentials"),
    ("https://evil.com/", "host"),
    ("https://docs.example.com.evil.com/", "host"),
    ("https://example.com/", "host"),                      # *.example.com is subdomains only
    ("http://127.0.0.1/", "host"),
    ("http://rebind.example.com/", "address"),              # one bad record is enough
    ("http://internal.example.com/", "address"),
    ("http://meta.example.com/latest/meta-data/", "address"),
    ("http://mapped.example.com/", "address"),
    ("http://nxdomain.example.com/", "resolve"),
    ("not a url", "scheme"),
])
def test_guard_refuses(url: str, reason: str) -> None:
    guard = UrlGuard(["docs.example.com", "*.example.com"], resolver=PUBLIC)
    with pytest.raises(SafetyError) as info:
        guard.check(url)
    assert info.value.reason == reason, str(info.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.1.2.3:8080/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/",
    "http://224.0.0.1/", "http://240.0.0.1/", "http://100.64.0.1/", "http://[::1]/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]/",
])
def test_guard_refuses_non_public_ip_literals(url: str) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("IP literals must not be resolved")

    with pytest.raises(SafetyError) as info:
        UrlGuard(["*"], resolver=no_dns).check(url)
    assert info.value.reason == "address", str(info.value)
    UrlGuard(["*"], allow_private=True, resolver=no_dns).check(url)  # allowed when asked


def test_guard_odd_ipv4_spellings_caught_by_real_resolver() -> None:
    # getaddrinfo turns these numeric spellings into 127.0.0.1 without any DNS query
    for url in ("http://2130706433/", "http://0x7f000001/", "http://127.1/"):
        with pytest.raises(SafetyError) as info:
            UrlGuard(["*"]).check(url)
        assert info.value.reason == "address", url


def test_guard_host_matching_is_case_and_dot_insensitive() -> None:
    guard = UrlGuard(["Docs.Example.COM"], resolver=PUBLIC)
    guard.check("https://DOCS.example.com./x")
    assert guard.host_allowed("docs.example.com")
    assert not guard.host_allowed("xdocs.example.com")
    assert not UrlGuard([], resolver=PUBLIC).host_allowed("docs.example.com")


# --- fetch against a local server ----------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = self.path
        if path == "/hello":
            self._send(200, f"hello from {self.headers['Host']}".encode(), "text/plain; charset=utf-8")
        elif path == "/latin1":
            self._send(200, "café".encode("latin-1"), "text/plain; charset=latin-1")
        elif path == "/big":
            self._send(200, b"x" * 50_000, "text/plain")
        elif path == "/missing":
            self._send(404, b"no such page", "text/plain")
        elif path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path.startswith("/loop"):
            n = int(path[5:] or 0)
            self.send_response(301)
            self.send_header("Location", f"/loop{n + 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(20):
                try:
                    self.wfile.write(b"xxxxx")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
        else:
            self._send(404, b"?", "text/plain")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(_Handler) as base:
        yield base


LOCAL = UrlGuard(["127.0.0.1"], allow_private=True)


def test_fetch_ok(server: str) -> None:
    result = fetch(server + "/hello", guard=LOCAL)
    assert result.status == 200
    assert result.text == f"hello from {server[7:]}"
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert result.truncated is False and result.redirects == ()


def test_fetch_decodes_declared_charset(server: str) -> None:
    assert fetch(server + "/latin1", guard=LOCAL).text == "café"


def test_fetch_refuses_loopback_without_allow_private(server: str) -> None:
    with pytest.raises(SafetyError) as info:
        fetch(server + "/hello", guard=UrlGuard(["127.0.0.1"]))
    assert info.value.reason == "address"


def test_fetch_pins_checked_address_and_keeps_host_header(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    seen: list[str] = []

    def resolver(host: str, p: int) -> list[str]:
        seen.append(host)
        return ["127.0.0.1"]

    guard = UrlGuard(["svc.test"], allow_private=True, resolver=resolver)
    result = fetch(f"http://svc.test:{port}/hello", guard=guard)
    assert result.text == f"hello from svc.test:{port}"   # no real DNS lookup of svc.test happened
    assert seen == ["svc.test"]


def test_fetch_cuts_body_at_max_bytes(server: str) -> None:
    result = fetch(server + "/big", guard=LOCAL, max_bytes=1000)
    assert result.truncated is True
    assert result.text == "x" * 1000
    assert len(fetch(server + "/big", guard=LOCAL).text) == 50_000


def test_fetch_returns_http_errors(server: str) -> None:
    result = fetch(server + "/missing", guard=LOCAL)
    assert (result.status, result.text) == (404, "no such page")


def test_fetch_follows_allowed_redirect(server: str) -> None:
    result = fetch(server + "/redirect?to=/hello", guard=LOCAL)
    assert result.status == 200 and result.text.startswith("hello from")
    assert result.url == server + "/hello"
    assert result.redirects == (server + "/redirect?to=/hello",)


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost/",
    "http://evil.example/",
    "file:///etc/passwd",
])
def test_fetch_checks_every_redirect(server: str, target: str) -> None:
    with pytest.raises(SafetyError) as info:
        fetch(server + "/redirect?to=" + target, guard=LOCAL)
    assert info.value.reason in {"host", "scheme"}


def test_fetch_redirect_to_metadata_refused_even_if_host_allowed(server: str) -> None:
    guard = UrlGuard(["127.0.0.1", "169.254.169.254"], allow_private=False)
    with pytest.raises(SafetyError) as info:
        fetch(server + "/hello", guard=guard)          # the first hop is loopback
    assert info.value.reason == "address"


def test_fetch_limits_redirects(server: str) -> None:
    with pytest.raises(SafetyError) as info:
        fetch(server + "/loop0", guard=LOCAL, max_redirects=3)
    assert info.value.reason == "redirects"


def test_fetch_bounds_total_time(server: str) -> None:
    with pytest.raises(FetchError) as info:
        fetch(server + "/slow", guard=LOCAL, timeout=0.5)
    assert info.value.reason == "timeout"


def test_fetch_connection_refused_is_fetch_error() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                       # nothing listens there now
    with pytest.raises(FetchError) as info:
        fetch(f"http://127.0.0.1:{port}/", guard=LOCAL, timeout=2)
    assert info.value.url == f"http://127.0.0.1:{port}/"
