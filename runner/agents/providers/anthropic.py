"""The `anthropic` provider: a Model over the Messages API, through the official SDK.

- Retries: the SDK retries 408/409/429/5xx/529 and connection errors with backoff and obeys
  `retry-after`; runner caps that wait (the SDK would sleep for an hour if told to). A stream that
  breaks mid-way, or an `error` event inside a stream, is not retried by the SDK: runner retries
  the whole request itself.
- Timeouts: a connect timeout and a total deadline per request.
- Streaming: requests that may produce many tokens are streamed (the SDK refuses non-streaming
  requests that could take over ten minutes); streaming also lets a cancel take effect between
  events.
- Prompt caching: breakpoints on the tools, the system prompt and the latest turn, so a long job
  pays full price for its prefix once and reads it from the cache afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import anthropic
import httpx2

from runner.agents.loop import ContextExceeded, ModelError, ModelTurn, Stopped, TurnUsage

EPHEMERAL = {"type": "ephemeral"}
DEFAULT_MAX_TOKENS = 16_384
STREAM_ABOVE_TOKENS = 8_192
_RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}


class _Client(anthropic.Anthropic):
    """The SDK client with `retry-after` capped."""

    max_retry_after: float = 60.0

    def _calculate_retry_timeout(
        self, remaining_retries: int, options: Any, response_headers: Any = None
    ) -> float:
        wait = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        return min(wait, self.max_retry_after)


_clients: dict[tuple[Any, ...], _Client] = {}
_clients_lock = threading.Lock()


def shared_client(
    max_retries: int, max_retry_after: float, request_timeout: float, connect_timeout: float
) -> _Client:
    """One SDK client per setting for the whole process: jobs share its connection pool and TLS setup.

    API key, auth token and base URL come from the environment, as the SDK reads them.
    """
    env = tuple(
        os.environ.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")
    )
    key = (max_retries, max_retry_after, request_timeout, connect_timeout, env)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _Client(
                max_retries=max_retries, timeout=httpx2.Timeout(request_timeout, connect=connect_timeout)
            )
            client.max_retry_after = max_retry_after
            _clients[key] = client
        return client


class AnthropicModel:
    def __init__(
        self,
        model: str,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        max_retries: int = 4,
        max_retry_after: float = 60.0,
        request_timeout: float = 600.0,
        connect_timeout: float = 10.0,
        stream_retries: int = 3,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.request_timeout = request_timeout
        self.stream_retries = stream_retries
        self.client = shared_client(max_retries, max_retry_after, request_timeout, connect_timeout)

    def query(
        self, system: str, tools: list[dict[str, Any]], messages: list[dict[str, Any]], cancelled: Any
    ) -> ModelTurn:
        params = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": EPHEMERAL}],
            "tools": _cached_tools(tools),
            "messages": _cached_messages(messages),
        }
        attempt = 0
        while True:
            try:
                if self.max_tokens > STREAM_ABOVE_TOKENS:
                    return self._stream(params, cancelled)
                return _turn(self.client.messages.create(**params))
            except httpx2.TransportError as e:
                # A stream cut mid-way surfaces unwrapped, and the SDK does not retry it.
                problem = f"the connection broke mid-answer ({type(e).__name__})"
            except anthropic.APIConnectionError as e:
                # The SDK has already retried this one as often as allowed.
                raise ModelError(f"could not reach the Messages API: {e}") from None
            except anthropic.APIStatusError as e:
                if e.status_code == 400 and "too long" in str(e.message).lower():
                    raise ContextExceeded("the conversation outgrew the model's context window") from None
                if e.status_code != 200 or _error_type(e) not in _RETRYABLE_STREAM_ERRORS:
                    raise ModelError(_describe(e)) from None
                problem = f"the stream reported {_error_type(e)}"
            except anthropic.APIError as e:
                raise ModelError(f"the Messages API failed: {e}") from None
            attempt += 1
            if attempt > self.stream_retries:
                raise ModelError(f"{problem}, {attempt} times")
            if cancelled is not None and cancelled.wait(min(2.0**attempt * 0.5, 8.0)):
                raise Stopped("cancelled")

    def _stream(self, params: dict[str, Any], cancelled: Any) -> ModelTurn:
        deadline = time.monotonic() + self.request_timeout
        with self.client.messages.stream(**params) as stream:
            for _ in stream:
                if cancelled is not None and cancelled.is_set():
                    raise Stopped("cancelled")
                if time.monotonic() > deadline:
                    raise ModelError(f"the answer took longer than {self.request_timeout:g} s")
            return _turn(stream.get_final_message())


def _turn(message: Any) -> ModelTurn:
    data = message.model_dump(mode="json", exclude_none=True)
    usage = data.get("usage", {})
    return ModelTurn(
        content=data.get("content", []),
        stop_reason=data.get("stop_reason") or "end_turn",
        usage=TurnUsage(
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
            cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
            cache_write_tokens=usage.get("cache_creation_input_tokens") or 0,
        ),
    )


def _cached_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not tools:
        return tools
    return [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]


def _cached_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with one cache breakpoint, on the last block of the latest message.

    The stored conversation is left untouched, so older turns carry no stale breakpoints (the
    API allows four in all); the API finds the previous turn's cache entry by looking back.
    """
    if not messages:
        return messages
    last = messages[-1]
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not content:
        return messages
    marked = [*content[:-1], {**content[-1], "cache_control": EPHEMERAL}]
    return [*messages[:-1], {**last, "content": marked}]


def _error_type(e: anthropic.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error", body)
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def _describe(e: anthropic.APIStatusError) -> str:
    if e.status_code == 401:
        return "the API key was refused (401): check ANTHROPIC_API_KEY"
    if e.status_code == 403:
        return "the API key may not use this model (403)"
    if e.status_code == 404:
        return f"the model or endpoint was not found (404): {e.message}"
    return f"the Messages API answered {e.status_code}: {e.message}"
