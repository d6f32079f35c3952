"""The fake Messages API (tests/fakeapi.py), exercised with the real ``anthropic`` client.

What the SDK (anthropic 2.11.0 over httpx2) does on each fault, as these tests pin down:

- 429 / 500 / 529 (and any 408/409/5xx): retried up to ``max_retries``; ``retry-after`` is obeyed
  exactly (any value, uncapped); without it the backoff is 0.5 s * 2**n * (0.75..1.0).
  Exhausted: ``RateLimitError`` / ``InternalServerError`` / ``OverloadedError``.
- ``x-should-retry: false`` stops retries (the fake sends it with "no scripted answer" and 400s).
- drop (no response): ``APIConnectionError`` (cause ``httpx2.RemoteProtocolError``), retried.
- drop mid-body of a non-streaming answer: same, retried (the SDK reads the body inside its retry loop).
- drop mid-stream: NOT retried and NOT wrapped: iterating the stream raises the raw
  ``httpx2.RemoteProtocolError`` ("incomplete chunked read"), after the events already received.
- ``event: error`` inside a stream: ``anthropic.APIStatusError`` (plain class, ``status_code`` 200,
  ``body["error"]["type"]`` e.g. ``overloaded_error``), not retried.
- an answer slower than the client timeout: ``APITimeoutError`` (cause ``httpx2.ReadTimeout``).
- the SDK sends the API key as ``Authorization: Bearer <key>`` (not ``x-api-key``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import TextBlock, ThinkingBlock, ToolUseBlock

try:
    from fakeapi import FakeAnthropic, Fault, text, thinking, tokens_of, tool_use, turn
except ImportError:  # tests/ became a package
    from tests.fakeapi import FakeAnthropic, Fault, text, thinking, tokens_of, tool_use, turn

KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-sonnet-4-6"
HI = [{"role": "user", "content": "hi"}]
READ_TOOL = {
    "name": "Read",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake
    assert fake.errors == []


def client(api: FakeAnthropic, *, max_retries: int = 2, timeout: float = 5.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api.base_url, api_key=KEY, max_retries=max_retries, timeout=timeout)


def create(c: anthropic.Anthropic, **kw: Any) -> Any:
    kw.setdefault("messages", HI)
    return c.messages.create(model=MODEL, max_tokens=256, **kw)


# ------------------------------------------------------------------------------------------ basics


def test_start_and_close_are_fast() -> None:
    t0 = time.perf_counter()
    fake = FakeAnthropic().start()
    started = time.perf_counter() - t0
    assert fake.base_url.startswith("http://127.0.0.1:")
    t0 = time.perf_counter()
    fake.close()
    assert started < 0.1
    assert time.perf_counter() - t0 < 0.5
    fake.close()  # idempotent


def test_tool_use_turn_non_streaming(api: FakeAnthropic) -> None:
    block = tool_use("Read", {"file_path": "spec.md", "offset": 1})
    api.script(turn(text("Reading the spec."), block))
    raw = client(api).messages.with_raw_response.create(
        model=MODEL, max_tokens=256, messages=HI, tools=[READ_TOOL]
    )
    msg = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert msg.model == MODEL
    assert msg.role == "assistant" and msg.type == "message"
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == "tool_use"
    assert msg.stop_sequence is None
    assert isinstance(msg.content[0], TextBlock) and msg.content[0].text == "Reading the spec."
    use = msg.content[1]
    assert isinstance(use, ToolUseBlock)
    assert use.name == "Read" and use.id == block["id"] and use.id.startswith("toolu_")
    assert use.input == {"file_path": "spec.md", "offset": 1}
    u = msg.usage
    assert u.input_tokens >= 1 and u.output_tokens == tokens_of(msg.model_dump(exclude_none=True)["content"])
    assert u.cache_read_input_tokens == 0 and u.cache_creation_input_tokens == 0
    rec = api.requests[0]
    assert rec.stream is False and rec.status == 200
    assert rec.body["tools"][0]["name"] == "Read"
    assert rec.body["messages"] == HI
    assert rec.usage is not None and rec.usage["input_tokens"] == u.input_tokens
    assert api.remaining == 0


def test_end_turn_default_and_usage_override(api: FakeAnthropic) -> None:
    api.script(turn(text("Done.")), turn(text("x"), stop_reason="max_tokens", usage={"output_tokens": 999}))
    c = client(api)
    first = create(c)
    assert first.stop_reason == "end_turn"
    second = create(c)
    assert second.stop_reason == "max_tokens"
    assert second.usage.output_tokens == 999
    assert second.usage.input_tokens == first.usage.input_tokens  # the rest is still computed


def test_streaming_matches_non_streaming(api: FakeAnthropic) -> None:
    script = turn(
        text("I will read the spec file now."), tool_use("Read", {"file_path": "agent-os/specs/x.md"})
    )
    api.script(script, script)
    c = client(api)
    plain = create(c, tools=[READ_TOOL])
    texts: list[str] = []
    json_parts: list[str] = []
    with c.messages.stream(model=MODEL, max_tokens=256, messages=HI, tools=[READ_TOOL]) as stream:
        for event in stream:
            if event.type == "text":
                texts.append(event.text)
            elif event.type == "input_json":
                json_parts.append(event.partial_json)
        final = stream.get_final_message()
        assert stream.request_id is not None and stream.request_id.startswith("req_")
    assert len(texts) > 1 and "".join(texts) == "I will read the spec file now."
    assert len([p for p in json_parts if p]) > 1
    assert final.model_dump(exclude={"id", "content"}) == plain.model_dump(exclude={"id", "content"})
    assert [b.model_dump(exclude={"parsed_output"}) for b in final.content] == [
        b.model_dump() for b in plain.content
    ]
    assert final.usage == plain.usage
    assert final.stop_reason == "tool_use"
    assert [r.stream for r in api.requests] == [False, True]


def test_raw_stream_event_sequence(api: FakeAnthropic) -> None:
    api.script(turn(text("Hello there, world."), tool_use("Glob", {"pattern": "**/*.md"})))
    events = list(create(client(api), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == 2 == kinds.count("content_block_stop")
    start = events[0]
    assert start.message.stop_reason is None and start.message.content == []
    assert start.message.usage.output_tokens <= 1
    delta = events[-2]
    assert delta.delta.stop_reason == "tool_use"
    assert delta.usage.output_tokens >= 1


def test_thinking_block_streams(api: FakeAnthropic) -> None:
    api.script(turn(thinking("Let me think about this.", signature="sig-1"), text("Answer.")))
    with client(api).messages.stream(model=MODEL, max_tokens=256, messages=HI) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert isinstance(block, ThinkingBlock)
    assert block.thinking == "Let me think about this." and block.signature == "sig-1"


def test_api_key_header_recorded(api: FakeAnthropic) -> None:
    api.script(turn(text("ok")))
    create(client(api))
    headers = api.requests[0].headers
    assert all(k == k.lower() for k in headers)
    # anthropic 2.x sends the key as a bearer token; older SDKs used x-api-key
    assert KEY in (headers.get("x-api-key") or headers.get("authorization", ""))
    assert headers["anthropic-version"]
    assert headers["x-stainless-retry-count"] == "0"


def test_env_variables_point_the_sdk_at_the_fake(api: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in api.env(KEY).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    api.script(turn(text("ok")))
    msg = anthropic.Anthropic(max_retries=0).messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert msg.content[0].text == "ok"
    assert KEY in api.requests[0].headers["authorization"]


def test_reachable_from_another_process(api: FakeAnthropic) -> None:
    api.script(turn(text("hello from the fake")))
    code = (
        "import anthropic; c = anthropic.Anthropic(max_retries=0); "
        f"print(c.messages.create(model={MODEL!r}, max_tokens=10, messages={HI!r}).content[0].text)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")} | api.env(KEY)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello from the fake"
    assert KEY in api.requests[0].headers["authorization"]


def test_respond_with_when_queue_empty(api: FakeAnthropic) -> None:
    api.script(turn(text("scripted")))
    api.respond_with(lambda rec: turn(text(f"{len(rec.body['messages'])} messages")))
    c = client(api)
    assert create(c).content[0].text == "scripted"
    assert create(c).content[0].text == "1 messages"
    assert create(c).content[0].text == "1 messages"
    assert len(api.requests) == 3


def test_no_scripted_answer_fails_loudly_without_retries(api: FakeAnthropic) -> None:
    with pytest.raises(anthropic.InternalServerError, match="fake: no scripted answer"):
        create(client(api, max_retries=2))
    assert len(api.requests) == 1  # x-should-retry: false


def test_invalid_conversation_is_refused_like_the_api(api: FakeAnthropic) -> None:
    api.script(turn(text("never sent")))
    use = tool_use("Read", {"file_path": "a"})
    bad = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "text", "text": "I forgot the tool_result"}]},
    ]
    with pytest.raises(anthropic.BadRequestError, match="tool_result"):
        create(client(api), messages=bad)
    good = [
        *bad[:2],
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "x"}]},
    ]
    assert api.remaining == 1  # a refused request consumes no answer
    assert create(client(api), messages=good).content[0].text == "never sent"


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "user", "content": ""}], "non-empty content"),
        ([{"role": "user", "content": [{"type": "text", "text": ""}]}, *HI], "must be non-empty"),
        ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}], "unexpected"),
        ([{"role": "system", "content": "hi"}], "'user' or 'assistant'"),
    ],
    ids=["empty-content", "empty-text", "stray-tool-result", "bad-role"],
)
def test_malformed_messages_get_400(api: FakeAnthropic, messages: list[Any], match: str) -> None:
    with pytest.raises(anthropic.BadRequestError, match=match):
        create(client(api), messages=messages)
    assert len(api.requests) == 1 and api.requests[0].status == 400


def test_latency_and_abandoned_requests_consume_nothing(api: FakeAnthropic) -> None:
    api.latency = 0.6
    api.script(turn(text("first answer")))
    with pytest.raises(anthropic.APITimeoutError):
        create(client(api, max_retries=0, timeout=0.2))
    api.latency = 0.0
    assert create(client(api)).content[0].text == "first answer"
    assert [r.status for r in api.requests] == [None, 200]


def test_count_tokens_endpoint(api: FakeAnthropic) -> None:
    n = client(api).messages.count_tokens(model=MODEL, messages=HI, system="Be brief.")
    assert n.input_tokens == tokens_of(text("Be brief.")) + tokens_of(text("hi"))
    assert api.requests == []  # only /v1/messages is recorded


def test_wait_for_requests_and_concurrency(api: FakeAnthropic) -> None:
    api.latency = 0.3
    api.respond_with(lambda rec: turn(text("ok")))
    results: list[str] = []

    def one() -> None:
        results.append(create(client(api)).content[0].text)

    threads = [threading.Thread(target=one) for _ in range(8)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    assert api.wait_for_requests(8, timeout=5)
    assert not api.wait_for_requests(9, timeout=0.01)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    assert results == ["ok"] * 8
    assert 0.3 <= elapsed < 1.2  # answered in parallel, not 8 x 0.3 s


# ------------------------------------------------------------------------------------------ faults


def test_429_retry_after_is_obeyed(api: FakeAnthropic) -> None:
    api.script(Fault.status(429, retry_after=0.6), turn(text("ok")))
    msg = create(client(api, max_retries=2))
    assert msg.content[0].text == "ok"
    first, second = api.requests
    assert (first.status, second.status) == (429, 200)
    waited = second.time - first.time
    assert 0.55 <= waited < 0.6 + 1.0
    assert second.headers["x-stainless-retry-count"] == "1"


def test_429_exhausted_raises_rate_limit_error(api: FakeAnthropic) -> None:
    api.script(Fault.rate_limit(retry_after=1))
    with pytest.raises(anthropic.RateLimitError) as info:
        create(client(api, max_retries=0))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.status(500), anthropic.InternalServerError), (Fault.overloaded(), anthropic.OverloadedError)],
    ids=["500", "529"],
)
def test_server_errors_are_retried(api: FakeAnthropic, fault: Fault, error: type[Exception]) -> None:
    api.script(fault, turn(text("ok")))
    assert create(client(api, max_retries=1)).content[0].text == "ok"
    assert [r.status for r in api.requests] == [fault.code, 200]
    assert 0.3 <= api.requests[1].time - api.requests[0].time < 1.5  # SDK backoff: 0.5 s x (0.75..1)
    api.script(fault)
    with pytest.raises(error) as info:
        create(client(api, max_retries=0))
    assert info.value.body["error"]["type"] == {500: "api_error", 529: "overloaded_error"}[fault.code]


def test_drop_is_retried_after_connection_error(api: FakeAnthropic) -> None:
    api.script(Fault.drop(), turn(text("ok")))
    assert create(client(api, max_retries=1)).content[0].text == "ok"
    assert [r.status for r in api.requests] == [None, 200]
    api.script(Fault.drop())
    with pytest.raises(anthropic.APIConnectionError) as info:
        create(client(api, max_retries=0))
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


def test_drop_mid_body_non_streaming_is_retried(api: FakeAnthropic) -> None:
    api.script(Fault.drop_mid_stream(), turn(text("ok")))
    assert create(client(api, max_retries=1)).content[0].text == "ok"
    assert len(api.requests) == 2


def test_drop_mid_stream_raises_raw_transport_error(api: FakeAnthropic) -> None:
    api.script(Fault.drop_mid_stream(turn(text("This is cut off somewhere.")), after_events=4))
    seen: list[str] = []
    with (
        pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"),
        client(api, max_retries=2).messages.stream(model=MODEL, max_tokens=256, messages=HI) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    # message_start, (ping skipped), content_block_start, one text delta -> then the cut
    assert seen[0] == "message_start" and "text" in seen and "message_stop" not in seen
    assert len(api.requests) == 1  # the SDK does not retry a broken stream


def test_error_event_mid_stream(api: FakeAnthropic) -> None:
    api.script(Fault.stream_error("overloaded_error", "Overloaded"))
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client(api).messages.stream(model=MODEL, max_tokens=256, messages=HI) as stream,
    ):
        stream.until_done()
    assert info.value.status_code == 200
    assert info.value.body["error"]["type"] == "overloaded_error"
    assert len(api.requests) == 1


def test_slow_answer_times_out(api: FakeAnthropic) -> None:
    api.script(Fault.slow(5, turn(text("too late"))))
    t0 = time.perf_counter()
    with pytest.raises(anthropic.APITimeoutError) as info:
        create(client(api, max_retries=0, timeout=0.5))
    assert 0.4 <= time.perf_counter() - t0 < 2
    assert isinstance(info.value.__cause__, httpx2.TimeoutException)


def test_slow_then_next_answer_after_timeout_retry(api: FakeAnthropic) -> None:
    # then=None: the answer is taken when the wait ends; an abandoned wait consumes nothing
    api.script(Fault.slow(5), turn(text("second try")))
    assert create(client(api, max_retries=1, timeout=0.5)).content[0].text == "second try"
    api.script(Fault.slow(0.2, turn(text("slow but fine"))))
    t0 = time.perf_counter()
    assert create(client(api)).content[0].text == "slow but fine"
    assert time.perf_counter() - t0 >= 0.2


def test_close_does_not_wait_for_hanging_answers() -> None:
    fake = FakeAnthropic().start()
    fake.script(Fault.slow(30, turn(text("never"))))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            create(client(fake, max_retries=0, timeout=60))
        except BaseException as e:
            errors.append(e)

    th = threading.Thread(target=call)
    th.start()
    assert fake.wait_for_requests(1)
    t0 = time.perf_counter()
    fake.close()
    assert time.perf_counter() - t0 < 1.0
    th.join(5)
    assert not th.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], anthropic.APIConnectionError)


# ------------------------------------------------------------------------------------------ caching

LONG_SYSTEM = "You are the implementer agent. Follow the spec exactly. " * 120  # ~1700 tokens
EPHEMERAL = {"type": "ephemeral"}


def cached_request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The runner's layout: breakpoints on the last tool, the system prompt and the latest turn."""
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "tools": [READ_TOOL | {"cache_control": EPHEMERAL}],
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}],
        "messages": messages,
    }


def with_marker_on_last_block(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [dict(m, content=[dict(b) for b in m["content"]]) for m in messages]
    out[-1]["content"][-1]["cache_control"] = EPHEMERAL
    return out


def test_prompt_caching_arithmetic(api: FakeAnthropic) -> None:
    use = tool_use("Read", {"file_path": "agent-os/specs/demo/spec.md"})
    api.script(turn(text("Let me read the spec."), use), turn(text("Done.")))
    c = client(api)
    history: list[dict[str, Any]] = [{"role": "user", "content": [text("Implement task 1.1 of spec demo.")]}]

    req1 = cached_request(with_marker_on_last_block(history))
    first = c.messages.create(**req1)
    history.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    history.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "# Spec\n..."}],
        }
    )
    req2 = cached_request(with_marker_on_last_block(history))  # the marker moved to the new turn
    second = c.messages.create(**req2)

    total1 = c.messages.count_tokens(**{k: v for k, v in req1.items() if k != "max_tokens"}).input_tokens
    total2 = c.messages.count_tokens(**{k: v for k, v in req2.items() if k != "max_tokens"}).input_tokens
    u1, u2 = first.usage, second.usage
    # first request: nothing cached yet, the whole prefix up to the last breakpoint is written
    assert u1.cache_read_input_tokens == 0
    assert u1.cache_creation_input_tokens == total1 and u1.input_tokens == 0
    assert u1.cache_creation is not None and u1.cache_creation.ephemeral_5m_input_tokens == total1
    # second request: request 1's prefix is read (found by looking back from the moved breakpoint)
    assert u2.cache_read_input_tokens == total1 > 0
    assert u2.cache_creation_input_tokens == total2 - total1 > 0
    assert u2.input_tokens + u2.cache_creation_input_tokens + u2.cache_read_input_tokens == total2
    assert api.requests[1].usage is not None
    assert api.requests[1].usage["cache_read_input_tokens"] == total1

    # a third request with the same prompt reads everything; streaming reports the same numbers
    api.script(turn(text("Again.")))
    with c.messages.stream(**req2) as stream:
        u3 = stream.get_final_message().usage
    assert (u3.cache_read_input_tokens, u3.cache_creation_input_tokens, u3.input_tokens) == (total2, 0, 0)


def test_uncached_tail_is_input_tokens(api: FakeAnthropic) -> None:
    api.respond_with(lambda rec: turn(text("ok")))
    c = client(api)
    msgs = [{"role": "user", "content": [text("The part after the last breakpoint is not cached. " * 20)]}]
    req = cached_request(msgs)  # breakpoints on tools + system only
    first = c.messages.create(**req)
    tail = tokens_of(msgs[0]["content"][0])
    assert first.usage.input_tokens == tail
    second = c.messages.create(**req)
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens > 1024
    assert second.usage.cache_creation_input_tokens == 0 and second.usage.input_tokens == tail


def test_short_prefix_is_not_cached_and_entries_expire(api: FakeAnthropic) -> None:
    api.respond_with(lambda rec: turn(text("ok")))
    c = client(api)
    short = with_marker_on_last_block([{"role": "user", "content": [text("short prompt")]}])
    for _ in range(2):
        u = create(c, messages=short).usage
        assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (0, 0)

    now = [1000.0]
    api.clock = lambda: now[0]
    req = cached_request([{"role": "user", "content": [text("go")]}])
    assert c.messages.create(**req).usage.cache_creation_input_tokens > 0
    now[0] += 299
    assert c.messages.create(**req).usage.cache_read_input_tokens > 0  # and refreshed to +300 s
    now[0] += 299
    assert c.messages.create(**req).usage.cache_read_input_tokens > 0
    now[0] += 301
    u = c.messages.create(**req).usage
    assert u.cache_read_input_tokens == 0 and u.cache_creation_input_tokens > 0


def test_top_level_cache_control_marks_the_last_block(api: FakeAnthropic) -> None:
    api.respond_with(lambda rec: turn(text("ok")))
    c = client(api)
    msgs = [{"role": "user", "content": [text("automatic caching " * 400)]}]
    first = create(c, messages=msgs, cache_control=EPHEMERAL)
    assert first.usage.cache_creation_input_tokens > 1024 and first.usage.input_tokens == 0
    msgs2 = [
        *msgs,
        {"role": "assistant", "content": [text("ok")]},
        {"role": "user", "content": [text("more")]},
    ]
    second = create(c, messages=msgs2, cache_control=EPHEMERAL)
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_more_than_four_breakpoints_is_refused(api: FakeAnthropic) -> None:
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        create(client(api), messages=[{"role": "user", "content": blocks}])
