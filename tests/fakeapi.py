"""A small fake Anthropic Messages API on 127.0.0.1, for tests and benchmarks.

The real ``anthropic`` client talks to it through ``base_url`` (or ``ANTHROPIC_BASE_URL``)::

    with FakeAnthropic() as api:
        api.script(turn(tool_use("Read", {"file_path": "spec.md"})), turn(text("done")))
        client = anthropic.Anthropic(base_url=api.base_url, api_key="sk-ant-test-1")
        ...
        assert api.requests[1].body["messages"][-1]["content"][0]["type"] == "tool_result"

It speaks what the SDK (2.x) expects: ``POST /v1/messages`` answers a JSON ``Message`` or, when the
body says ``"stream": true``, a chunked ``text/event-stream`` of ``message_start``, ``ping``,
``content_block_start`` / ``content_block_delta`` / ``content_block_stop``, ``message_delta``,
``message_stop``. Errors use the API's JSON error shape and status codes; every response carries a
``request-id`` header. ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": n}``.

Answers come from a queue (``script``), then from a callback (``respond_with``); with neither, the
fake answers 500 "fake: no scripted answer" with ``x-should-retry: false`` so tests fail loudly and
fast. Faults (``Fault``) inject error statuses, slow answers, dropped connections and broken streams.

Usage is simulated: tokens are ``len(json) // 4`` (min 1) per content block, and prompt caching
follows the real API closely enough for a benchmark to measure the cache-read share (see
``FakeAnthropic._usage``). Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import select
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FakeAnthropic",
    "Fault",
    "Recorded",
    "Turn",
    "text",
    "thinking",
    "tokens_of",
    "tool_use",
    "turn",
]

_ids = itertools.count(1)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: error ``type`` the real API uses for each status code
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STATUS_OF_ERROR = {v: k for k, v in ERROR_TYPES.items()}


def _new_id(prefix: str) -> str:
    """An id shaped like the API's (``msg_01...``, ``toolu_01...``, ``req_01...``), unique per process."""
    n = next(_ids)
    digits = ""
    for _ in range(22):
        n, r = divmod(n, 62)
        digits = _ALPHABET[r] + digits
    return f"{prefix}_01{digits}"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def tokens_of(obj: Any) -> int:
    """The fake's token estimate for a JSON value: ``len(json) // 4``, at least 1."""
    return max(1, len(_dumps(obj)) // 4)


# --------------------------------------------------------------------------------------------- builders


def text(s: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": s}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    """A tool_use content block; the id (``toolu_01...``) is generated now unless given."""
    return {"type": "tool_use", "id": id or _new_id("toolu"), "name": name, "input": input}


def thinking(s: str, signature: str = "fake-signature") -> dict[str, Any]:
    """A thinking content block (streamed as ``thinking_delta`` + ``signature_delta``)."""
    return {"type": "thinking", "thinking": s, "signature": signature}


@dataclass
class Turn:
    """One assistant answer: its content blocks, stop reason and (optional) usage overrides."""

    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    usage: dict[str, Any] | None = None  # keys given here override the computed usage
    stop_sequence: str | None = None


def turn(
    *blocks: dict[str, Any], stop_reason: str | None = None, usage: dict[str, Any] | None = None
) -> Turn:
    """An assistant turn. ``stop_reason`` defaults to ``tool_use`` if a block is a tool_use, else
    ``end_turn``. ``usage`` keys override the computed ones (the rest is still computed)."""
    if stop_reason is None:
        stop_reason = "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn"
    return Turn(content=[dict(b) for b in blocks], stop_reason=stop_reason, usage=usage)


@dataclass
class Fault:
    """An injected failure; build one with the class methods."""

    kind: str  # "status" | "slow" | "drop" | "drop_mid_stream" | "stream_error"
    code: int = 0
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    then: Turn | Fault | None = None
    after_events: int = 4

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        error_type: str | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """An error response: status ``code``, the API's JSON error body, ``retry-after`` if given.
        ``error_type`` defaults to the API's type for the code (429 rate_limit_error, 500 api_error,
        529 overloaded_error ...). ``headers`` are added (e.g. ``{"x-should-retry": "false"}``)."""
        etype = error_type or ERROR_TYPES.get(code, "api_error" if code >= 500 else "invalid_request_error")
        return cls(
            kind="status",
            code=code,
            error_type=etype,
            message=message or f"fake: injected {code} {etype}",
            retry_after=retry_after,
            headers=dict(headers or {}),
        )

    @classmethod
    def rate_limit(cls, retry_after: float | None = None) -> Fault:
        """429 rate_limit_error, with ``retry-after`` when given."""
        return cls.status(429, retry_after=retry_after)

    @classmethod
    def overloaded(cls, *, retry_after: float | None = None) -> Fault:
        """529 overloaded_error."""
        return cls.status(529, retry_after=retry_after, message="Overloaded")

    @classmethod
    def slow(cls, seconds: float, then: Turn | Fault | None = None) -> Fault:
        """Wait ``seconds`` before answering with ``then``; with ``then=None`` the answer is taken from
        the queue / ``respond_with`` when the wait ends. If the client hangs up (its timeout) or the
        fake closes during the wait, the request is abandoned and consumes nothing more."""
        return cls(kind="slow", seconds=seconds, then=then)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls(kind="drop")

    @classmethod
    def drop_mid_stream(cls, turn: Turn | None = None, *, after_events: int = 4) -> Fault:
        """Start answering (``turn``, default a short text turn), then close the connection.
        Streaming: ``after_events`` SSE events are sent, the chunked body is never terminated.
        Non-streaming: the headers and half of the JSON body are sent."""
        return cls(kind="drop_mid_stream", then=turn, after_events=after_events)

    @classmethod
    def stream_error(
        cls,
        error_type: str = "overloaded_error",
        message: str = "Overloaded",
        *,
        turn: Turn | None = None,
        after_events: int = 4,
    ) -> Fault:
        """Streaming: ``after_events`` SSE events of ``turn``, then an ``event: error`` (as the real API
        does when it overloads mid-stream) and a clean end of the body. Non-streaming: the error status
        for ``error_type``."""
        return cls(
            kind="stream_error", error_type=error_type, message=message, then=turn, after_events=after_events
        )


Answer = Turn | Fault


@dataclass
class Recorded:
    """One ``POST /v1/messages`` as the fake received it."""

    index: int  # 0-based position in FakeAnthropic.requests
    path: str
    body: Any  # the parsed JSON body (None if it was not JSON)
    headers: dict[str, str]  # lower-case names
    time: float  # time.monotonic() when the request was received
    stream: bool
    status: int | None = None  # HTTP status sent; None while pending, dropped or abandoned
    usage: dict[str, Any] | None = None  # usage reported in the answer, when there was one
    answer: Answer | None = None  # what was answered (after resolving slow faults)


# --------------------------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True
    api: FakeAnthropic

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # handler errors are recorded in FakeAnthropic.errors


class _Abandon(Exception):
    """The client hung up or the fake is closing: stop handling this request, write nothing more."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    api: FakeAnthropic
    _request_id: str = ""

    # ---- plumbing

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.api = self.server.api
        self.api._track(self.connection, threading.current_thread(), add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.api._track(self.connection, threading.current_thread(), add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _pause(self, seconds: float) -> None:
        """Wait, but give up (raise _Abandon) as soon as the client hangs up or the fake closes."""
        api = self.api
        deadline = time.monotonic() + seconds
        watch: list[Any] = [self.connection, api._wake_r]
        while True:
            if api._closing.is_set():
                raise _Abandon
            remaining = max(0.0, deadline - time.monotonic())
            try:
                ready, _, _ = select.select(watch, [], [], remaining)
            except (OSError, ValueError) as e:
                raise _Abandon from e
            if not ready and remaining <= 0:
                return  # (a last look at the client was taken even when the deadline had passed)
            if api._wake_r in ready:
                raise _Abandon
            if self.connection in ready:
                try:
                    peek = self.connection.recv(1, socket.MSG_PEEK)
                except OSError as e:
                    raise _Abandon from e
                if not peek:
                    raise _Abandon  # the client closed its side (e.g. its timeout fired)
                watch = [api._wake_r]  # the client sent more bytes; only watch for close from now on

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = _dumps(obj).encode()
        head = {"content-type": "application/json", "content-length": str(len(data))}
        head["request-id"] = self._request_id
        head.update(headers or {})
        self._send_head(status, head)
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": self._request_id,
        }
        self._send_json(status, body, headers)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # ---- request handling

    def do_GET(self) -> None:
        self._request_id = _new_id("req")
        self._send_error(404, "not_found_error", f"fake: no such endpoint GET {self.path}")

    def do_POST(self) -> None:
        self._request_id = _new_id("req")
        try:
            self._post()
        except _Abandon:
            self.close_connection = True
        except (BrokenPipeError, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: make it loud
            self.api._fake_error(e)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_error(
                    500, "api_error", f"fake: internal error: {e!r}", {"x-should-retry": "false"}
                )

    def _post(self) -> None:
        api = self.api
        path = urlsplit(self.path).path.rstrip("/")
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}

        if path == "/v1/messages/count_tokens":
            problem = api._validate(body, headers, count_only=True)
            if problem:
                self._send_error(problem[0], ERROR_TYPES[problem[0]], problem[1])
                return
            self._send_json(200, {"input_tokens": api._usage(body, [], write=False)["total_input"]})
            return
        if path != "/v1/messages":
            self._send_error(404, "not_found_error", f"fake: no such endpoint POST {self.path}")
            return

        stream = isinstance(body, dict) and body.get("stream") is True
        rec = api._record(path, body, headers, stream)
        problem = api._validate(body, headers)
        if problem:
            rec.status = problem[0]
            self._send_error(problem[0], ERROR_TYPES[problem[0]], problem[1], {"x-should-retry": "false"})
            return

        # An answer is taken from the queue when it is about to be sent, so a request abandoned during
        # the latency or a slow fault (client timeout, close()) consumes nothing.
        if api.latency > 0:
            self._pause(api.latency)
        answer = api._next_answer(rec)
        while isinstance(answer, Fault) and answer.kind == "slow":
            self._pause(answer.seconds)
            answer = answer.then if answer.then is not None else api._next_answer(rec)
        rec.answer = answer
        self._answer(rec, answer)

    def _answer(self, rec: Recorded, answer: Answer | str) -> None:
        if isinstance(answer, str):  # no answer available: the message says why
            rec.status = 500
            self._send_error(500, "api_error", answer, {"x-should-retry": "false"})
            return
        if isinstance(answer, Turn):
            message = self._message(rec, answer)
            rec.status = 200
            if rec.stream:
                self._stream(message, _stream_events(message))
            else:
                self._send_json(200, message)
            return
        kind = answer.kind
        if kind == "status":
            rec.status = answer.code
            extra = dict(answer.headers)
            if answer.retry_after is not None:
                ra = answer.retry_after
                extra["retry-after"] = str(int(ra)) if float(ra).is_integer() else repr(float(ra))
            self._send_error(answer.code, answer.error_type, answer.message, extra)
        elif kind == "drop":
            self.close_connection = True
            _hard_close(self.connection)
        elif kind == "drop_mid_stream":
            message = self._message(rec, answer.then or turn(text("This answer will be cut off mid-way.")))
            self.close_connection = True
            if rec.stream:
                self._stream(message, _stream_events(message)[: max(0, answer.after_events)], end=False)
            else:
                data = _dumps(message).encode()
                head = {"content-type": "application/json", "content-length": str(len(data))}
                head["request-id"] = self._request_id
                self._send_head(200, head)
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
            _hard_close(self.connection)
        elif kind == "stream_error":
            if not rec.stream:
                code = _STATUS_OF_ERROR.get(answer.error_type, 500)
                rec.status = code
                self._send_error(code, answer.error_type, answer.message)
                return
            message = self._message(rec, answer.then or turn(text("This answer will fail mid-way.")))
            rec.status = 200
            events = _stream_events(message)[: max(0, answer.after_events)]
            error = {
                "type": "error",
                "error": {"type": answer.error_type, "message": answer.message},
                "request_id": self._request_id,
            }
            events.append(("error", error))
            self._stream(message, events)
        else:  # pragma: no cover - Fault kinds are fixed
            raise ValueError(f"unknown fault kind {kind!r}")

    def _message(self, rec: Recorded, t: Turn) -> dict[str, Any]:
        body = rec.body if isinstance(rec.body, dict) else {}
        usage = self.api._usage(body, t.content, write=True)
        usage.pop("total_input")
        if t.usage:
            usage.update(t.usage)
        rec.usage = usage
        return {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": [dict(b) for b in t.content],
            "stop_reason": t.stop_reason,
            "stop_sequence": t.stop_sequence,
            "usage": usage,
        }

    def _stream(self, message: dict[str, Any], events: list[tuple[str, Any]], end: bool = True) -> None:
        head = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
            "request-id": self._request_id,
        }
        self._send_head(200, head)
        delay = self.api.event_delay
        for i, (name, data) in enumerate(events):
            if delay > 0 and i:
                self._pause(delay)
            self._chunk(f"event: {name}\ndata: {_dumps(data)}\n\n".encode())
        if end:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


def _hard_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _split(s: str, parts: int) -> list[str]:
    """``s`` cut into up to ``parts`` non-empty pieces of about equal length."""
    if not s:
        return []
    size = max(1, -(-len(s) // parts))
    return [s[i : i + size] for i in range(0, len(s), size)]


def _stream_events(message: dict[str, Any]) -> list[tuple[str, Any]]:
    """The SSE events (name, data) the real API sends for ``message``."""
    usage = dict(message["usage"])
    start_usage = dict(usage)
    start_usage["output_tokens"] = min(usage.get("output_tokens", 1), 1)
    start = dict(message, content=[], stop_reason=None, stop_sequence=None, usage=start_usage)
    events: list[tuple[str, Any]] = [("message_start", {"type": "message_start", "message": start})]
    events.append(("ping", {"type": "ping"}))
    for i, block in enumerate(message["content"]):
        btype = block.get("type")
        deltas: list[dict[str, Any]] = []
        if btype == "text":
            first = {k: v for k, v in block.items() if k != "citations"}
            first["text"] = ""
            deltas = [{"type": "text_delta", "text": piece} for piece in _split(block["text"], 3)]
        elif btype in ("tool_use", "server_tool_use"):
            first = dict(block, input={})
            pieces = _split(_dumps(block.get("input", {})), 4) if block.get("input") else []
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
        elif btype == "thinking":
            first = dict(block, thinking="", signature="")
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _split(block.get("thinking", ""), 3)]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        else:
            first = dict(block)
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": i, "content_block": first})
        )
        for d in deltas:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    delta_usage = {
        k: usage[k]
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
        if k in usage
    }
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": delta_usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


# --------------------------------------------------------------------------------------------- the fake


class FakeAnthropic:
    """A fake Messages API listening on ``127.0.0.1:<free port>``. Thread-safe.

    Use as a context manager or call ``start()`` / ``close()``. Answers are consumed in the order
    requests reach the point of answering (after ``latency``). Settings may be changed at any time:
    ``latency`` (seconds before every answer), ``event_delay`` (seconds between SSE events),
    ``min_cache_tokens`` (smallest cacheable prefix), ``cache_ttl`` (seconds, for ``"ttl": "5m"``),
    ``cache_lookback`` (block boundaries checked before each breakpoint), ``strict`` (validate
    requests like the API: 400 invalid_request_error for missing fields, tool_use without a matching
    tool_result, more than 4 cache breakpoints, empty text blocks), ``clock`` (for cache expiry).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        min_cache_tokens: int = 1024,
        strict: bool = True,
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.event_delay = 0.0
        self.min_cache_tokens = min_cache_tokens
        self.cache_ttl = 300.0
        self.cache_lookback = 20
        self.strict = strict
        self.clock: Callable[[], float] = time.monotonic
        self.requests: list[Recorded] = []
        self.errors: list[BaseException] = []  # exceptions raised inside the fake (bugs), for asserts
        self._port = port
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[Answer] = deque()
        self._responder: Callable[[Recorded], Answer] | None = None
        self._cache: dict[str, float] = {}  # prefix hash -> expiry (clock time)
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None  # a socketpair: close() writes to wake every select()
        self._wake_w: socket.socket | None = None
        self.base_url = ""

    # ---- lifecycle

    def start(self) -> FakeAnthropic:
        if self._server is not None:
            return self
        if self._closing.is_set():
            raise RuntimeError("a closed FakeAnthropic cannot be restarted")
        self._wake_r, self._wake_w = socket.socketpair()
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.api = self
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_port}"
        self._thread = threading.Thread(target=self._serve, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([server.socket, self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                return
            server._handle_request_noblock()

    def close(self, timeout: float = 2.0) -> None:
        """Stop listening, cut every open connection (pending slow answers are abandoned) and wait up
        to ``timeout`` seconds for the handler threads. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout)
        if self._server is not None:
            self._server.server_close()
        with self._lock:
            conns = dict(self._conns)
        for sock in conns:
            _hard_close(sock)
        deadline = time.monotonic() + timeout
        for thread in conns.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._cond.notify_all()
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _track(self, sock: socket.socket, thread: threading.Thread, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns[sock] = thread
            else:
                self._conns.pop(sock, None)
        if add and self._closing.is_set():
            _hard_close(sock)

    # ---- scripting

    def script(self, *turns: Turn | Fault) -> None:
        """Append answers to the queue; each request consumes the next one when it is answered."""
        for t in turns:
            if not isinstance(t, (Turn, Fault)):
                raise TypeError(f"script() takes Turn or Fault, not {type(t).__name__}")
        with self._lock:
            self._queue.extend(turns)

    def respond_with(self, fn: Callable[[Recorded], Turn | Fault] | None) -> None:
        """Answer with ``fn(request)`` whenever the queue is empty (``None`` removes it)."""
        with self._lock:
            self._responder = fn

    @property
    def remaining(self) -> int:
        """Scripted answers not consumed yet."""
        with self._lock:
            return len(self._queue)

    def wait_for_requests(self, n: int, timeout: float = 10) -> bool:
        """Block until at least ``n`` requests were received; False on timeout (or close)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: len(self.requests) >= n or self._closing.is_set(), timeout
            ) and (len(self.requests) >= n)

    def env(self, api_key: str = "sk-ant-test-fake-key") -> dict[str, str]:
        """Environment variables that point the SDK (or a ``runner`` subprocess) at this fake."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": api_key}

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # ---- internals used by the handler

    def _record(self, path: str, body: Any, headers: dict[str, str], stream: bool) -> Recorded:
        with self._cond:
            rec = Recorded(len(self.requests), path, body, headers, time.monotonic(), stream)
            self.requests.append(rec)
            self._cond.notify_all()
            return rec

    def _fake_error(self, e: BaseException) -> None:
        with self._lock:
            self.errors.append(e)

    def _next_answer(self, rec: Recorded) -> Answer | str:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            fn = self._responder
        if fn is None:
            hint = "script() more answers or use respond_with()"
            return f"fake: no scripted answer (request #{rec.index}; {hint})"
        try:
            answer = fn(rec)
        except Exception as e:
            self._fake_error(e)
            return f"fake: respond_with raised {e!r}"
        if not isinstance(answer, (Turn, Fault)):
            return f"fake: respond_with returned {type(answer).__name__}, not Turn or Fault"
        return answer

    def _validate(
        self, body: Any, headers: dict[str, str], count_only: bool = False
    ) -> tuple[int, str] | None:
        """(status, message) for a request the real API would refuse, else None."""
        if not (headers.get("x-api-key") or headers.get("authorization")):
            return 401, "x-api-key header is required"
        if not isinstance(body, dict):
            return 400, "fake: request body is not a JSON object"
        if not self.strict:
            return None
        if not isinstance(body.get("model"), str) or not body["model"]:
            return 400, "model: Field required"
        if not count_only:
            mt = body.get("max_tokens")
            if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
                return 400, "max_tokens: Field required (a positive integer)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "messages: at least one message is required"
        for t_i, tool in enumerate(body.get("tools") or []):
            if not isinstance(tool, dict) or not tool.get("name"):
                return 400, f"tools.{t_i}.name: Field required"
        breakpoints = sum(1 for _, _, cc in _prompt_blocks(body, auto=False) if cc is not None)
        if breakpoints > 4:
            return 400, f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        pending: list[str] = []  # tool_use ids of the previous assistant message
        for m_i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
                return 400, f"messages.{m_i}.role: Input should be 'user' or 'assistant'"
            content = msg.get("content")
            if isinstance(content, str):
                blocks: list[Any] = [{"type": "text", "text": content}]
            elif isinstance(content, list):
                blocks = content
            else:
                return 400, f"messages.{m_i}.content: Input should be a valid list or string"
            prefill = m_i == len(messages) - 1 and msg["role"] == "assistant"
            if not prefill and (not blocks or content == ""):
                return 400, (
                    f"messages.{m_i}: all messages must have non-empty content except for the optional "
                    "final assistant message"
                )
            for b_i, b in enumerate(blocks):
                if not isinstance(b, dict) or "type" not in b:
                    return 400, f"messages.{m_i}.content.{b_i}: block needs a type"
                if b["type"] == "text" and not b.get("text") and not prefill:
                    return 400, f"messages.{m_i}.content.{b_i}.text: text content blocks must be non-empty"
            results = [b.get("tool_use_id") for b in blocks if b["type"] == "tool_result"]
            if pending and (msg["role"] != "user" or sorted(set(pending) - set(results))):
                missing = [p for p in pending if p not in results]
                return 400, (
                    f"messages.{m_i}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
            stray = [r for r in results if r not in pending]
            if stray:
                return 400, (
                    f"messages.{m_i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{stray[0]}. Each `tool_result` block must have a corresponding `tool_use` block in "
                    "the previous message."
                )
            pending = (
                [b.get("id") for b in blocks if b["type"] == "tool_use"] if msg["role"] == "assistant" else []
            )
        return None

    def _usage(self, body: dict[str, Any], content: list[dict[str, Any]], *, write: bool) -> dict[str, Any]:
        """Token usage for ``body`` answered with ``content``, simulating prompt caching.

        The prompt is the sequence of blocks tools -> system -> messages; a block with
        ``cache_control`` is a breakpoint (a top-level ``cache_control`` marks the last message block).
        Read: the longest prefix cached earlier (and not expired) that ends at a breakpoint or at one
        of the ``cache_lookback`` block boundaries before one, as the real API checks.
        Write: every breakpoint prefix of >= ``min_cache_tokens`` tokens is (re)written;
        cache_creation = tokens up to the last such breakpoint minus the read part. input_tokens is
        the rest, so input + cache_creation + cache_read = all prompt tokens.
        """
        blocks = _prompt_blocks(body, auto=True)
        h = hashlib.sha256(_dumps(body.get("model", "")).encode()).digest()
        hashes: list[str] = []
        cum: list[int] = []
        total = 0
        for key, tokens, _ in blocks:
            h = hashlib.sha256(h + key.encode()).digest()
            hashes.append(h.hex())
            total += tokens
            cum.append(total)
        breakpoints = [(i, cc) for i, (_, _, cc) in enumerate(blocks) if cc is not None]
        read = 0
        creation = {"5m": 0, "1h": 0}
        with self._lock:
            now = self.clock()
            for k in [k for k, exp in self._cache.items() if exp <= now]:
                del self._cache[k]
            hit: int | None = None
            for p, _ in breakpoints:
                for j in range(p, max(-1, p - self.cache_lookback - 1), -1):
                    if hashes[j] in self._cache:
                        if hit is None or j > hit:
                            hit = j
                        break
            if hit is not None:
                read = cum[hit]
            covered = read
            for p, cc in breakpoints:
                if cum[p] < self.min_cache_tokens:
                    continue
                ttl = "1h" if cc.get("ttl") == "1h" else "5m"
                if cum[p] > covered:
                    creation[ttl] += cum[p] - covered
                    covered = cum[p]
                if write:
                    expiry = now + (3600.0 if ttl == "1h" else self.cache_ttl)
                    self._cache[hashes[p]] = max(expiry, self._cache.get(hashes[p], 0.0))
            if write and hit is not None:  # a read refreshes the entry's lifetime
                self._cache[hashes[hit]] = max(self._cache[hashes[hit]], now + self.cache_ttl)
        created = creation["5m"] + creation["1h"]
        return {
            "input_tokens": total - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": creation["5m"],
                "ephemeral_1h_input_tokens": creation["1h"],
            },
            "output_tokens": tokens_of(content) if content else 1,
            "service_tier": "standard",
            "total_input": total,
        }


def _without_cc(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _prompt_blocks(body: dict[str, Any], *, auto: bool) -> list[tuple[str, int, dict[str, Any] | None]]:
    """The prompt as (hash key, tokens, cache_control or None) per block: tools, system, messages."""
    out: list[tuple[str, int, dict[str, Any] | None]] = []

    def add(kind: str, block: Any) -> None:
        cc = block.get("cache_control") if isinstance(block, dict) else None
        bare = _without_cc(block)
        out.append((_dumps([kind, bare]), tokens_of(bare), cc if isinstance(cc, dict) else None))

    for tool in body.get("tools") or []:
        add("tool", tool)
    system = body.get("system")
    if isinstance(system, str) and system:
        add("system", {"type": "text", "text": system})
    elif isinstance(system, list):
        for block in system:
            add("system", block)
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role"))
        content = msg.get("content")
        if isinstance(content, str):
            add(role, {"type": "text", "text": content})
        elif isinstance(content, list):
            for block in content:
                add(role, block)
    top = body.get("cache_control")
    if auto and isinstance(top, dict) and out and out[-1][2] is None:
        key, tokens, _ = out[-1]
        out[-1] = (key, tokens, top)
    return out
