"""Fetch a web page under a URL guard, then have the model extract a typed object from it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from knowbase.chains.base import Chain
from knowbase.errors import FetchError
from knowbase.output.structured import chat_structured
from knowbase.prompts.loader import load_template
from knowbase.prompts.template import PromptTemplate
from knowbase.safety.urls import UrlGuard, fetch

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel


def html_to_text(html: str) -> str:
    """The title and visible body text of an HTML page (scripts, styles and markup removed), whitespace squeezed."""
    try:
        from selectolax.lexbor import LexborHTMLParser as HTMLParser
    except ImportError:  # pragma: no cover - selectolax is a core dependency
        text = re.sub(r"(?is)<(script|style|noscript)[^>]*>.*?</\1>", " ", html)
        text = re.sub(r"(?s)<[^>]+>", " ", text)
    else:
        tree = HTMLParser(html)
        for node in tree.css("script, style, noscript, template"):
            node.decompose()
        title = tree.css_first("title")
        root = tree.body or tree.root
        text = root.text(separator=" ") if root is not None else ""
        if title is not None and title.text(strip=True):
            text = title.text(strip=True) + "\n" + text
    return re.sub(r"[ \t\r\f\v]+", " ", re.sub(r"\s*\n\s*", "\n", text)).strip()


class RequestsChain(Chain):
    """GET a URL (guarded), then extract ``output_type`` from the page with the model.

    Args:
        model: the chat model that reads the page.
        output_type: a pydantic model for the result.
        guard: the :class:`~knowbase.safety.urls.UrlGuard` (host allowlist; private,
            loopback and link-local addresses refused; redirects re-checked).
        url_key, query_key: input keys of the URL and of what to extract (an instruction
            such as ``"give the product's name and price"``).
        output_key: the key of the extracted object (``url`` is output too: the final URL).
        timeout: whole-fetch limit, seconds.  max_bytes: body cut-off, bytes.
        max_chars: page text given to the model, characters (the rest is dropped).
        max_attempts, constrained: see :func:`~knowbase.output.chat_structured`.

    Raises (from ``invoke``):
        SafetyError: the URL or a redirect is refused.
        FetchError: network failure, timeout, or an HTTP status of 400 or more (``status``).
        OutputParseError: the model's reply did not validate after ``max_attempts``.
    """

    def __init__(self, model: ChatModel, output_type: Any, *, guard: UrlGuard, url_key: str = "url",
                 query_key: str = "query", output_key: str = "result", timeout: float = 10.0,
                 max_bytes: int = 2_000_000, max_chars: int = 4_000, max_attempts: int = 2,
                 constrained: bool = True, max_tokens: int = 256, prompt: PromptTemplate | str | None = None,
                 name: str = "RequestsChain") -> None:
        self.model = model
        self.output_type = output_type
        self.guard = guard
        self.url_key, self.query_key, self.output_key = url_key, query_key, output_key
        self.timeout, self.max_bytes, self.max_chars = timeout, max_bytes, max_chars
        self.max_attempts, self.constrained, self.max_tokens = max_attempts, constrained, max_tokens
        self.prompt = load_template("chain_requests") if prompt is None else (
            PromptTemplate(prompt) if isinstance(prompt, str) else prompt)
        self.name = name
        self.input_keys = (url_key, query_key)
        self.output_keys = (output_key, "url")
        self.tracer = getattr(model, "tracer", None)

    def page_text(self, url: str) -> tuple[str, str]:
        """Fetch ``url``; returns ``(final_url, text)`` with HTML reduced to its text."""
        page = fetch(url, guard=self.guard, timeout=self.timeout, max_bytes=self.max_bytes)
        if page.status >= 400:
            raise FetchError(f"{page.url} answered HTTP {page.status}", url=page.url, status=page.status)
        text = page.text
        ctype = page.headers.get("content-type", "")
        if "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            text = html_to_text(text)
        return page.url, text[: self.max_chars]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        final_url, text = self.page_text(str(inputs[self.url_key]))
        prompt = self.prompt.render({"query": inputs[self.query_key], "url": final_url, "page": text})
        done = chat_structured(self.model, prompt, self.output_type, max_attempts=self.max_attempts,
                               constrained=self.constrained, max_tokens=self.max_tokens, temperature=0.0)
        return {self.output_key: done.value, "url": final_url}
