"""The Anthropic provider drives the official SDK against a local server speaking the Messages API."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anthropic
import httpx2
import pytest

from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Delta,
    Finished,
    ImagePart,
    StreamEvent,
    TextPart,
    Tool,
    ToolChoice,
    Usage,
)
from services.llm.providers.anthropic import AnthropicProvider
from services.llm.providers.base import ProviderError, ProviderSettings
from tests.fakes.providers import DEFAULT_JSON_REPLY, DEFAULT_REPLY, FakeProvider, running_fake

# The SDK warns (failing the test) for deprecated ids, claude-sonnet-4-5 among them in anthropic 2.12.
MODEL = "claude-haiku-4-5"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
HELLO = ChatRequest(model="", messages=(ChatMessage("system", "Be brief"), ChatMessage("user", "Say hello")))
JSON_REQUEST = ChatRequest(model="", messages=(ChatMessage("user", "Give me JSON"),), json_mode=True)
WEATHER = Tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}})
# JSON next to the caller's own tools (here, ones it may not call) is asked for in words.
JSON_NEXT_TO_TOOLS = dataclasses.replace(JSON_REQUEST, tools=(WEATHER,), tool_choice=ToolChoice("none"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with running_fake() as fake:
        yield fake


def provider_for(fake: FakeProvider) -> AnthropicProvider:
    return AnthropicProvider(ProviderSettings("anthropic", "sk-ant-test", fake.anthropic_base_url), 512)


@pytest.fixture
async def claude(fake: FakeProvider) -> AsyncIterator[AnthropicProvider]:
    provider = provider_for(fake)
    try:
        yield provider
    finally:
        await provider.close()


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


async def test_a_completion(fake: FakeProvider, claude: AnthropicProvider) -> None:
    completion = await claude.complete(HELLO, MODEL, 10)

    assert (completion.text, completion.finish_reason) == (DEFAULT_REPLY, "stop")
    # Four words of prompt (system and user); one output token per 4-character delta of the fake.
    assert completion.usage == Usage(4, 5)
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token; 0.x sent it as x-api-key.
    assert "Bearer sk-ant-test" in (sent.headers.get("authorization"), f"Bearer {sent.headers.get('x-api-key')}")
    assert sent.body["system"] == "Be brief"
    assert sent.body["max_tokens"] == 512
    assert sent.body["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_a_completion_cut_short_finishes_with_length(claude: AnthropicProvider) -> None:
    request = ChatRequest(model="", messages=HELLO.messages, max_tokens=2)

    completion = await claude.complete(request, MODEL, 10)

    assert (completion.text, completion.finish_reason) == (DEFAULT_REPLY[:8], "length")


async def test_sampling_options_reach_the_api(fake: FakeProvider, claude: AnthropicProvider) -> None:
    request = ChatRequest(model="", messages=HELLO.messages, temperature=0.3, stop=("END",), seed=1)

    await claude.complete(request, MODEL, 10)

    body = fake.requests[-1].body
    assert (body["temperature"], body["stop_sequences"], "seed" in body) == (0.3, ["END"], False)


async def test_a_stream(fake: FakeProvider, claude: AnthropicProvider) -> None:
    events = await collect(claude.stream(HELLO, MODEL, 10))

    *deltas, finished = events
    assert all(isinstance(event, Delta) for event in deltas)
    assert "".join(event.text for event in deltas if isinstance(event, Delta)) == DEFAULT_REPLY
    assert len(deltas) > 1
    assert finished == Finished("stop", Usage(4, 5))
    assert fake.requests[-1].stream


async def test_json_mode_next_to_tools_is_bare_json() -> None:
    async with running_fake(anthropic_fenced_json=True) as fake:
        claude = provider_for(fake)
        try:
            completion = await claude.complete(JSON_NEXT_TO_TOOLS, MODEL, 10)
        finally:
            await claude.close()

    assert completion.text == DEFAULT_JSON_REPLY
    assert json.loads(completion.text) == {"ok": True}
    assert "JSON" in fake.requests[-1].body["system"]


async def test_json_mode_stream_next_to_tools_is_bare_json() -> None:
    async with running_fake(anthropic_fenced_json=True, chunk_chars=3) as fake:
        claude = provider_for(fake)
        try:
            events = await collect(claude.stream(JSON_NEXT_TO_TOOLS, MODEL, 10))
        finally:
            await claude.close()

    text = "".join(event.text for event in events if isinstance(event, Delta))
    assert text == DEFAULT_JSON_REPLY
    assert isinstance(events[-1], Finished)


async def test_an_image_data_url_is_sent_as_a_base64_block(fake: FakeProvider, claude: AnthropicProvider) -> None:
    parts = (TextPart("What is this?"), ImagePart(f"data:image/png;base64,{PNG}"))
    request = ChatRequest(model="", messages=(ChatMessage("user", parts),))

    await claude.complete(request, MODEL, 10)

    sent = fake.requests[-1]
    assert sent.has_image
    image = sent.body["messages"][0]["content"][1]
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}


async def test_an_unusable_image_url_is_a_request_error(fake: FakeProvider, claude: AnthropicProvider) -> None:
    request = ChatRequest(model="", messages=(ChatMessage("user", (ImagePart("ftp://example.com/cat.png"),)),))

    with pytest.raises(ProviderError) as raised:
        await claude.complete(request, MODEL, 10)

    assert raised.value.kind == "request"
    assert not fake.requests


async def test_rate_limits_carry_retry_after(fake: FakeProvider, claude: AnthropicProvider) -> None:
    fake.fail_next(1, 429, retry_after=7)

    with pytest.raises(ProviderError) as raised:
        await claude.complete(HELLO, MODEL, 10)

    error = raised.value
    assert (error.kind, error.status, error.retry_after_s, error.provider) == ("rate_limited", 429, 7.0, "anthropic")
    assert "Too Many Requests" in error.message
    # One request: the SDK's own retries are off.
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "kind"), [(500, "retryable"), (529, "retryable"), (401, "credentials"), (400, "request")]
)
async def test_error_statuses(fake: FakeProvider, claude: AnthropicProvider, status: int, kind: str) -> None:
    fake.fail_next(1, status)

    with pytest.raises(ProviderError) as raised:
        await claude.complete(HELLO, MODEL, 10)

    assert (raised.value.kind, raised.value.status) == (kind, status)
    assert len(fake.requests) == 1


async def test_error_statuses_fail_a_stream_before_any_delta(fake: FakeProvider, claude: AnthropicProvider) -> None:
    fake.fail_next(1, 529)
    events: list[StreamEvent] = []

    with pytest.raises(ProviderError) as raised:
        async for event in claude.stream(HELLO, MODEL, 10):
            events.append(event)

    assert (raised.value.kind, raised.value.status, events) == ("retryable", 529, [])


async def test_a_stream_dropped_midway_fails_after_its_deltas(fake: FakeProvider, claude: AnthropicProvider) -> None:
    fake.fail_mid_stream(1, after_deltas=1)
    events: list[StreamEvent] = []

    with pytest.raises(ProviderError) as raised:
        async for event in claude.stream(HELLO, MODEL, 10):
            events.append(event)

    assert events == [Delta(DEFAULT_REPLY[:4])]
    assert raised.value.kind == "retryable"


async def test_a_slow_answer_times_out() -> None:
    async with running_fake(delay_s=2) as fake:
        claude = provider_for(fake)
        try:
            with pytest.raises(ProviderError) as raised:
                await claude.complete(HELLO, MODEL, 0.2)
        finally:
            await claude.close()

    assert raised.value.kind == "timeout"


async def test_a_stalled_stream_times_out() -> None:
    async with running_fake(gap_s=2) as fake:
        claude = provider_for(fake)
        events: list[StreamEvent] = []
        try:
            with pytest.raises(ProviderError) as raised:
                async for event in claude.stream(HELLO, MODEL, 0.2):
                    events.append(event)
        finally:
            await claude.close()

    assert raised.value.kind == "timeout"
    assert events == [Delta(DEFAULT_REPLY[:4])]


# Stream failures the fake cannot script, served through the SDK by an httpx2 mock transport.


def sse(*events: Mapping[str, Any]) -> bytes:
    return b"".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    },
}
DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}


async def stream_of(body: bytes) -> tuple[list[StreamEvent], ProviderError]:
    """The events a provider yields for a 200 SSE response with this body, and the error it ends with."""
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    claude = AnthropicProvider(ProviderSettings("anthropic", "k", "http://anthropic.test"))
    await claude.close()
    claude._client = anthropic.AsyncAnthropic(
        api_key="k",
        base_url="http://anthropic.test",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    events: list[StreamEvent] = []
    try:
        with pytest.raises(ProviderError) as raised:
            async for event in claude.stream(HELLO, MODEL, 10):
                events.append(event)
    finally:
        await claude.close()
    return events, raised.value


async def test_an_error_event_fails_the_stream_as_retryable() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    events, raised = await stream_of(sse(START, DELTA, error))

    assert events == [Delta("Hi")]
    assert (raised.kind, raised.status) == ("retryable", None)
    assert "Overloaded" in raised.message


async def test_malformed_event_data_fails_the_stream_as_retryable() -> None:
    events, raised = await stream_of(sse(START, DELTA) + b"event: content_block_delta\ndata: {not json\n\n")

    assert events == [Delta("Hi")]
    assert raised.kind == "retryable"
    assert "malformed" in raised.message


async def test_a_stream_that_ends_without_message_stop_is_retryable() -> None:
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}

    events, raised = await stream_of(sse(START, DELTA, delta))

    assert events == [Delta("Hi")]
    assert raised.kind == "retryable"
