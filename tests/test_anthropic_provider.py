"""The anthropic provider under faults: the real SDK client against the fake Messages API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from runner.agents.loop import ContextExceeded, ModelError, Stopped
from runner.agents.providers.anthropic import AnthropicModel
from tests.fakeapi import FakeAnthropic, Fault, text, tool_use, turn

MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
TOOLS = [{"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    with FakeAnthropic(min_cache_tokens=0) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-provider")
        yield fake


def model(**kwargs: object) -> AnthropicModel:
    options: dict = {"max_tokens": 4096, "max_retries": 3, **kwargs}
    return AnthropicModel("claude-sonnet-5-5", **options)


def test_tool_use_turn_with_usage_over_json(api: FakeAnthropic) -> None:
    api.script(turn(text("Let me look."), tool_use("Read", {"file_path": "a.md"}, id="toolu_1")))
    result = model().query("system", TOOLS, MESSAGES, None)
    assert result.stop_reason == "tool_use"
    assert result.content[1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Read",
        "input": {"file_path": "a.md"},
    }
    assert result.usage.cache_write_tokens > 0 and result.usage.output_tokens > 0
    assert api.requests[0].stream is False


def test_large_max_tokens_streams_and_gives_the_same_turn(api: FakeAnthropic) -> None:
    api.script(turn(text("Streaming answer " * 20), tool_use("Read", {"file_path": "b.md"}, id="toolu_2")))
    result = model(max_tokens=32_000).query("system", TOOLS, MESSAGES, None)
    assert api.requests[0].stream is True
    assert result.content[0]["text"] == "Streaming answer " * 20
    assert result.content[1]["input"] == {"file_path": "b.md"}
    assert result.stop_reason == "tool_use"


def test_retry_after_is_obeyed_but_capped(api: FakeAnthropic) -> None:
    api.script(Fault.rate_limit(retry_after=3600), turn(text("ok")))
    start = time.monotonic()
    result = model(max_retry_after=0.3).query("system", TOOLS, MESSAGES, None)
    waited = api.requests[1].time - api.requests[0].time
    assert result.content[0]["text"] == "ok"
    assert 0.2 <= waited < 2 and time.monotonic() - start < 5


@pytest.mark.parametrize(
    "fault", [Fault.status(500), Fault.overloaded(), Fault.drop()], ids=["500", "529", "drop"]
)
def test_server_errors_and_dropped_connections_are_retried(api: FakeAnthropic, fault: Fault) -> None:
    api.script(fault, turn(text("recovered")))
    assert model().query("system", TOOLS, MESSAGES, None).content[0]["text"] == "recovered"
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    "fault",
    [Fault.drop_mid_stream(turn(text("partial answer " * 30))), Fault.stream_error("overloaded_error")],
    ids=["dropped-mid-stream", "error-event"],
)
def test_broken_streams_are_retried_by_runner(api: FakeAnthropic, fault: Fault) -> None:
    api.script(fault, turn(text("whole answer")))
    result = model(max_tokens=32_000).query("system", TOOLS, MESSAGES, None)
    assert result.content[0]["text"] == "whole answer"
    assert len(api.requests) == 2


def test_slow_answer_times_out_as_a_model_error(api: FakeAnthropic) -> None:
    api.script(Fault.slow(5, then=turn(text("too late"))))
    with pytest.raises(ModelError):
        model(max_retries=0, request_timeout=0.5).query("system", TOOLS, MESSAGES, None)


def test_auth_failure_is_not_retried_and_says_what_to_check(api: FakeAnthropic) -> None:
    api.script(Fault.status(401))
    with pytest.raises(ModelError, match="ANTHROPIC_API_KEY"):
        model().query("system", TOOLS, MESSAGES, None)
    assert len(api.requests) == 1


def test_prompt_too_long_means_the_context_is_exceeded(api: FakeAnthropic) -> None:
    api.script(Fault.status(400, message="prompt is too long: 250000 tokens > 200000 maximum"))
    with pytest.raises(ContextExceeded):
        model().query("system", TOOLS, MESSAGES, None)


def test_cancel_interrupts_a_streaming_answer(api: FakeAnthropic) -> None:
    import threading

    api.event_delay = 0.05
    api.script(turn(text("word " * 400)))
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(Stopped):
        model(max_tokens=32_000).query("system", TOOLS, MESSAGES, cancelled)


def test_cache_breakpoints_make_the_second_turn_read_the_prefix(api: FakeAnthropic) -> None:
    api.script(turn(tool_use("Read", {"file_path": "a"}, id="t1")), turn(text("done")))
    m = model()
    system = "You are careful. " * 200
    first = m.query(system, TOOLS, MESSAGES, None)
    convo = [
        *MESSAGES,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "file a"}]},
    ]
    second = m.query(system, TOOLS, convo, None)
    assert first.usage.cache_read_tokens == 0 and first.usage.cache_write_tokens > 0
    assert second.usage.cache_read_tokens >= first.usage.cache_write_tokens
