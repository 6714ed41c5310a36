"""Async client for an OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

# Longest server-requested back-off we honour before retrying.
_MAX_RETRY_AFTER_S = 10.0


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~0.1 s; do it once per process, not once per client.
    return httpx.create_ssl_context()


class LLMError(RuntimeError):
    """The request failed for good (non-retryable error, or retries exhausted)."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


class LLMClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_s),
            verify=_ssl_context(),
        )
        self._max_retries = max_retries
        self._backoff_s = backoff_s

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(
        self,
        prompt: str,
        *,
        model: str,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": model, "messages": messages}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature

        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._post(body)
            except _Retryable as exc:
                if attempt == attempts:
                    raise LLMError(f"{exc} (gave up after {attempts} attempts)") from None
                delay = self._backoff_s * 2 ** (attempt - 1)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, _MAX_RETRY_AFTER_S))
                log.warning(
                    "LLM attempt %d/%d failed: %s; retrying in %.2fs", attempt, attempts, exc, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, body: dict[str, Any]) -> Completion:
        try:
            response = await self._client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise _Retryable("LLM request timed out") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"LLM transport error: {exc!r}") from None

        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(
                f"LLM returned HTTP {status}: {_error_message(response)}",
                _retry_after(response),
            )
        if status >= 400:
            raise LLMError(f"LLM returned HTTP {status}: {_error_message(response)}")
        return _parse_completion(response, str(body["model"]))


def _parse_completion(response: httpx.Response, requested_model: str) -> Completion:
    try:
        payload = response.json()
        content = payload["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError("message content is not a string")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"malformed LLM response: {exc!r}") from None
    usage = payload.get("usage") or {}
    return Completion(
        content=content,
        model=str(payload.get("model") or requested_model),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
    )


def _error_message(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return str(message)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
