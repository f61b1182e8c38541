"""A URL guard against server-side request forgery (SSRF), and a guarded ``fetch``.

:class:`UrlGuard` refuses any URL that is not ``http``/``https``, carries credentials,
names a host outside the caller's allowlist, or whose host resolves to a private,
loopback, link-local (``169.254.169.254``, the cloud metadata endpoint), multicast,
reserved or unspecified address -- unless ``allow_private`` is set. Every address a name
resolves to is checked (one bad record is enough to refuse), IPv4-mapped and 6to4 IPv6
addresses are unwrapped, and odd IPv4 spellings (``2130706433``, ``0x7f.1``) are caught
because the resolver turns them into the address they mean.

:func:`fetch` connects to the address the guard checked (pinned: the name is not
resolved a second time, so DNS rebinding between check and connect does not work; the
``Host`` header and TLS server name stay the original host), follows redirects by hand
with every hop checked again, ignores proxy environment variables, streams the body and
cuts it at ``max_bytes``, and bounds the whole fetch by ``timeout`` seconds.

The checks follow the OWASP SSRF Prevention Cheat Sheet ("Application layer" case 2:
allowlist of domains, block private ranges, validate every redirect, disable proxies).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from knowbase.errors import FetchError, SafetyError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> list of IP address strings``; :func:`resolve_host` by default."""

_REDIRECTS = {301, 302, 303, 307, 308}


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), via :func:`socket.getaddrinfo`.

    Raises:
        SafetyError: the name does not resolve (``reason="resolve"``).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise SafetyError(f"cannot resolve host {host!r}: {exc}", reason="resolve", host=host) from exc
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is.

    IPv4-mapped (``::ffff:a.b.c.d``) and 6to4 (``2002::/16``) IPv6 addresses are judged by
    the IPv4 address inside them.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return address_problem(inner)
    for attr, label in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                        ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                        ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(address, attr):
            return label
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL the guard accepted, with the addresses it was checked against.

    Attributes:
        url: the URL (normalised by httpx).
        host: the host name (lower case, IDNA-encoded, no brackets).
        port: the port (default 80/443 by scheme).
        addresses: the checked IP addresses; :func:`fetch` connects to the first.
    """

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]


class UrlGuard:
    """Decides which URLs may be fetched.

    Args:
        allowed_hosts: host names allowed: exact (``docs.python.org``), any subdomain of a
            suffix (``*.python.org`` matches ``docs.python.org`` but not ``python.org``),
            an IP literal (``127.0.0.1``), or ``*`` for any host. Empty allows nothing.
        allow_private: also allow private, loopback, link-local... addresses (for tests
            and intranets you trust).
        resolver: ``(host, port) -> [ip, ...]``; default :func:`resolve_host`.

    Example::

        guard = UrlGuard(["*.wikipedia.org"])
        guard.check("https://en.wikipedia.org/wiki/SQLite")    # ok
        guard.check("http://169.254.169.254/latest/meta-data")  # SafetyError
    """

    def __init__(self, allowed_hosts: Sequence[str], *, allow_private: bool = False,
                 resolver: Resolver | None = None) -> None:
        if isinstance(allowed_hosts, str):
            allowed_hosts = [allowed_hosts]
        self.allowed_hosts = tuple(h.strip().lower().rstrip(".").strip("[]") for h in allowed_hosts if h.strip())
        self.allow_private = allow_private
        self.resolver = resolver or resolve_host

    def __repr__(self) -> str:
        return f"UrlGuard({list(self.allowed_hosts)!r}, allow_private={self.allow_private})"

    def host_allowed(self, host: str) -> bool:
        """True when ``host`` (lower case, no brackets) matches the allowlist."""
        for pattern in self.allowed_hosts:
            if pattern == "*" or pattern == host:
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        return False

    def check(self, url: str | httpx.URL) -> None:
        """Refuse ``url`` with :class:`SafetyError` unless it may be fetched.

        ``reason`` is one of ``url``, ``scheme``, ``credentials``, ``host``, ``resolve``,
        ``address``.
        """
        self.vet(url)

    def vet(self, url: str | httpx.URL) -> CheckedUrl:
        """Like :meth:`check`, and return the URL with the addresses that were checked."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url).strip())
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise SafetyError(f"invalid URL {str(url)[:200]!r}: {exc}", reason="url", url=str(url)) from exc
        text = str(parsed)
        if parsed.scheme not in ("http", "https"):
            raise SafetyError(f"scheme {parsed.scheme!r} is not allowed (http or https only)", reason="scheme", url=text)
        if parsed.userinfo:
            raise SafetyError("credentials in the URL are not allowed", reason="credentials", url=text)
        host = parsed.host.lower().rstrip(".").strip("[]")
        if not host:
            raise SafetyError(f"URL has no host: {text!r}", reason="url", url=text)
        if not self.host_allowed(host):
            raise SafetyError(f"host {host!r} is not on the allowlist", reason="host", url=text, host=host)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            addresses = self.resolver(host, port)
        if not addresses:
            raise SafetyError(f"host {host!r} resolves to no address", reason="resolve", url=text, host=host)
        if not self.allow_private:
            for raw in addresses:
                try:
                    problem = address_problem(ipaddress.ip_address(raw))
                except ValueError:
                    problem = "unparseable"
                if problem:
                    raise SafetyError(f"host {host!r} resolves to a {problem} address ({raw})", reason="address",
                                      url=text, host=host, address=raw)
        return CheckedUrl(parsed, host, port, tuple(addresses))


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What :func:`fetch` returns.

    Attributes:
        url: the final URL, after redirects.
        status: the HTTP status code of the final response (4xx/5xx are returned, not raised).
        headers: the final response headers (lower-case names).
        text: the body decoded (charset from ``Content-Type``, else UTF-8; bad bytes replaced).
        truncated: the body was cut at ``max_bytes``.
        redirects: the URLs redirected through, in order.
    """

    url: str
    status: int
    headers: dict[str, str]
    text: str
    truncated: bool = False
    redirects: tuple[str, ...] = field(default=())


def fetch(url: str, *, guard: UrlGuard, timeout: float = 10.0, max_bytes: int = 2_000_000,
          max_redirects: int = 5, headers: dict[str, str] | None = None,
          transport: httpx.BaseTransport | None = None) -> FetchResult:
    """GET ``url`` under ``guard``.

    Args:
        url: an http(s) URL.
        guard: decides which URLs (including every redirect target) may be fetched.
        timeout: limit for the whole fetch, redirects and body included, in seconds.
        max_bytes: the body is cut after this many bytes (``truncated=True``).
        max_redirects: most redirects followed.
        headers: extra request headers.
        transport: an httpx transport (for tests); default a fresh connection pool.

    Returns:
        A :class:`FetchResult`.

    Raises:
        SafetyError: the URL or a redirect target is refused, or there are more than
            ``max_redirects`` redirects (``reason="redirects"``).
        FetchError: connection failure, timeout (``reason="timeout"``), or a bad response.
    """
    return request("GET", url, guard=guard, timeout=timeout, max_bytes=max_bytes, max_redirects=max_redirects,
                   headers=headers, transport=transport)


def _same_origin(a: CheckedUrl, b: CheckedUrl) -> bool:
    return (a.url.scheme, a.host, a.port) == (b.url.scheme, b.host, b.port)


def request(method: str, url: str, *, guard: UrlGuard, body: bytes | None = None, timeout: float = 10.0,
            max_bytes: int = 2_000_000, max_redirects: int = 5, headers: dict[str, str] | None = None,
            secret_headers: dict[str, str] | None = None,
            transport: httpx.BaseTransport | None = None) -> FetchResult:
    """Send one HTTP request under ``guard`` (what :func:`fetch` does, for any method).

    Redirects are followed by hand, each target checked again: 303 (and 301/302 after a
    non-GET request, as browsers do) continue as a GET without the body; 307/308 repeat
    the method and body. ``secret_headers`` (credentials such as ``Authorization``) are sent
    only to the origin (scheme, host, port) of ``url``, never to a redirect target elsewhere.

    Args:
        method: ``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``, ``HEAD`` or ``OPTIONS``.
        url: an http(s) URL.
        guard: decides which URLs may be reached.
        body: the request body (bytes), or None.
        timeout: limit for the whole exchange, in seconds.
        max_bytes: the response body is cut after this many bytes.
        max_redirects: most redirects followed.
        headers: extra request headers, sent on every hop.
        secret_headers: credential headers, sent to the original origin only.
        transport: an httpx transport (for tests).

    Raises:
        SafetyError, FetchError: as :func:`fetch`; SafetyError also for an unknown method.
    """
    verb = method.upper()
    if verb not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        raise SafetyError(f"HTTP method {method!r} is not allowed", reason="method", url=url)
    deadline = time.monotonic() + timeout
    hops: list[str] = []
    origin = current = guard.vet(url)
    with httpx.Client(trust_env=False, follow_redirects=False, transport=transport,
                      timeout=httpx.Timeout(timeout)) as client:
        while True:
            secret = (secret_headers or {}) if _same_origin(origin, current) else {}
            sent = {**(headers or {}), **secret}
            status, resp_headers, data, truncated, location = _send(client, verb, current, sent, body, deadline,
                                                                    max_bytes, timeout)
            if status in _REDIRECTS and location:
                if len(hops) >= max_redirects:
                    raise SafetyError(f"more than {max_redirects} redirects from {url}", reason="redirects", url=url)
                hops.append(str(current.url))
                try:
                    target = current.url.join(location)
                except (httpx.InvalidURL, ValueError) as exc:
                    raise FetchError(f"bad redirect location {location!r}", url=str(current.url)) from exc
                current = guard.vet(target)
                if status == 303 or (status in (301, 302) and verb not in ("GET", "HEAD")):
                    verb, body = "GET", None
                continue
            charset = _charset(resp_headers.get("content-type", ""))
            try:
                text = data.decode(charset, errors="replace")
            except LookupError:
                text = data.decode("utf-8", errors="replace")
            return FetchResult(str(current.url), status, resp_headers, text, truncated, tuple(hops))


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"\' ')
    return "utf-8"


def _send(client: httpx.Client, method: str, checked: CheckedUrl, headers: dict[str, str] | None,
          body: bytes | None, deadline: float, max_bytes: int,
          timeout: float) -> tuple[int, dict[str, str], bytes, bool, str | None]:
    """One pinned request: connect to the checked address, keep the original Host and SNI."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(f"fetch of {checked.url} took longer than {timeout} s", url=str(checked.url), reason="timeout")
    address = checked.addresses[0]
    pinned = checked.url.copy_with(host=address)
    req_headers = {"Host": checked.url.netloc.decode("ascii"), **(headers or {})}
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(remaining).as_dict()}
    if checked.url.scheme == "https":
        extensions["sni_hostname"] = checked.host
    url_text = str(checked.url)
    try:
        request = client.build_request(method, pinned, headers=req_headers, content=body, extensions=extensions)
        response = client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size, truncated = 0, False
            for chunk in response.iter_bytes():
                if time.monotonic() > deadline:
                    raise FetchError(f"fetch of {url_text} took longer than {timeout} s", url=url_text,
                                     reason="timeout")
                if size + len(chunk) > max_bytes:
                    chunks.append(chunk[: max_bytes - size])
                    size, truncated = max_bytes, True
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        raise FetchError(f"fetch of {url_text} timed out after {timeout} s", url=url_text, reason="timeout") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"fetch of {url_text} failed: {type(exc).__name__}: {exc}", url=url_text,
                         reason="http") from exc
    resp_headers = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, resp_headers, b"".join(chunks), truncated, resp_headers.get("location")
