"""Fine-tuning jobs on an OpenAI-compatible API: upload, create, status, events, cancel.

Endpoints (OpenAI's fine-tuning API, which other providers copy):

=========================================  ===============================================
``POST /files`` (multipart, purpose        upload a training or validation file
``fine-tune``)
``POST /fine_tuning/jobs``                 create a job (``model``, ``training_file``,
                                           ``validation_file``, ``suffix``, ``hyperparameters``)
``GET /fine_tuning/jobs/{id}``             the job (status, fine_tuned_model, trained_tokens...)
``GET /fine_tuning/jobs/{id}/events``      its events (newest first)
``POST /fine_tuning/jobs/{id}/cancel``     cancel it
``GET /fine_tuning/jobs``                  recent jobs
=========================================  ===============================================

Continuing from a fine-tuned model is creating a job whose ``model`` is that model's name
(``ft:gpt-4o-mini:org::abc123``). The key comes from the settings (``KNOWBASE_API_KEY`` or
``OPENAI_API_KEY``), is sent as a bearer token and never printed. GET requests are retried on
429, 5xx and connection errors; POSTs are not (a retried upload or job creation could run twice).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx

from knowbase.errors import (
    AuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
    RateLimitError,
    UserError,
)

__all__ = ["FineTuningClient"]

_BODY_LIMIT = 2000


class FineTuningClient:
    """A client of the fine-tuning endpoints of an OpenAI-compatible API.

    Args:
        base_url: e.g. ``https://api.openai.com/v1``.
        api_key: bearer token, or None.
        timeout: seconds per request (uploads of large files need more).
        max_retries: retries of GET requests on 429, 5xx and connection errors.
        transport: an httpx transport (tests).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 300.0, max_retries: int = 3,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), headers=headers, transport=transport)

    def __repr__(self) -> str:  # never show the key
        return f"FineTuningClient({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FineTuningClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @classmethod
    def from_model_string(cls, spec: str, *, api_key: str | None, timeout: float = 300.0) -> tuple[FineTuningClient, str]:
        """``openai:MODEL@URL`` -> (a client for URL, MODEL); the URL defaults to OpenAI's.

        Raises:
            UserError: not an ``openai:`` model string.
        """
        from knowbase.config import ModelSpec

        parsed = ModelSpec.parse(spec)
        if parsed.backend != "openai" or not parsed.name:
            raise UserError(f"fine-tuning needs an OpenAI-compatible model string (openai:MODEL@URL), got {spec!r}",
                            field="model")
        return cls(parsed.base_url or "https://api.openai.com/v1", api_key=api_key, timeout=timeout), parsed.name

    # --- HTTP -------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}/{path.lstrip('/')}"
        attempts = self.max_retries + 1 if method == "GET" else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TimeoutException as exc:
                if not last:
                    time.sleep(0.5 * 2 ** attempt + random.random() * 0.5)
                    continue
                raise ModelTimeoutError(f"no answer from {url}", url=url, timeout=self._client.timeout.read) from exc
            except httpx.TransportError as exc:
                if not last:
                    time.sleep(0.5 * 2 ** attempt + random.random() * 0.5)
                    continue
                raise ModelConnectionError(f"cannot reach {url}: {type(exc).__name__}: {exc}", url=url) from exc
            if response.status_code < 400:
                try:
                    data = response.json()
                except ValueError as exc:
                    raise ModelResponseError(f"{url} answered with malformed JSON", body=response.text[:_BODY_LIMIT],
                                             url=url) from exc
                if not isinstance(data, dict):
                    raise ModelResponseError(f"{url} answered with JSON that is not an object",
                                             body=response.text[:_BODY_LIMIT], url=url)
                return data
            status = response.status_code
            if (status == 429 or status >= 500) and not last:
                time.sleep(min(30.0, 0.5 * 2 ** attempt))
                continue
            body = response.text[:_BODY_LIMIT]
            try:
                err = response.json().get("error")
                detail = str(err.get("message") if isinstance(err, dict) else err or "")
            except (ValueError, AttributeError):
                detail = body.strip().splitlines()[0][:200] if body.strip() else ""
            msg = f"HTTP {status} from {url}" + (f": {detail}" if detail else "")
            if status in (401, 403):
                raise AuthenticationError(msg + " (is the API key set?)", status=status, body=body, url=url,
                                          retry_after=None)
            if status == 429:
                raise RateLimitError(msg, status=status, body=body, url=url, retry_after=None)
            raise ModelHTTPError(msg, status=status, body=body, url=url, retry_after=None)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- API --------------------------------------------------------------------------
    def upload(self, path: str | Path, *, purpose: str = "fine-tune") -> dict[str, Any]:
        """Upload a file; returns the file object (``id``, ``bytes``, ``filename``...).

        Raises:
            UserError: the file cannot be read.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {p}: {exc.strerror or exc}", path=str(p)) from exc
        return self._request("POST", "files", data={"purpose": purpose},
                             files={"file": (p.name, data, "application/jsonl")})

    def create_job(self, model: str, training_file: str, *, validation_file: str | None = None,
                   suffix: str | None = None, epochs: int | None = None, seed: int | None = None) -> dict[str, Any]:
        """Create a fine-tuning job of ``model`` (a base model, or a fine-tuned one to continue)."""
        body: dict[str, Any] = {"model": model, "training_file": training_file}
        if validation_file:
            body["validation_file"] = validation_file
        if suffix:
            body["suffix"] = suffix
        if epochs is not None:
            body["hyperparameters"] = {"n_epochs": epochs}
        if seed is not None:
            body["seed"] = seed
        return self._request("POST", "fine_tuning/jobs", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        """The job object (``status``: validating_files, queued, running, succeeded, failed, cancelled)."""
        return self._request("GET", f"fine_tuning/jobs/{_safe_id(job_id)}")

    def events(self, job_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The job's events, newest first (``created_at``, ``level``, ``message``)."""
        data = self._request("GET", f"fine_tuning/jobs/{_safe_id(job_id)}/events", params={"limit": limit})
        return list(data.get("data") or [])

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel the job; returns it."""
        return self._request("POST", f"fine_tuning/jobs/{_safe_id(job_id)}/cancel")

    def jobs(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """Recent jobs, newest first."""
        return list(self._request("GET", "fine_tuning/jobs", params={"limit": limit}).get("data") or [])


def _safe_id(job_id: str) -> str:
    """A job id as one path segment (letters, digits, ``-``, ``_``, ``:``, ``.``)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,200}", job_id):
        raise UserError(f"invalid job id {job_id!r}", field="job_id")
    return job_id
