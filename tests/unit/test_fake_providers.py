"""The fake LLM provider speaks the real wire protocols: the official SDKs are the proof."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest

from tests.fakes.providers import DEFAULT_JSON_REPLY, DEFAULT_REPLY, FakeProvider, FakeProviderThread, running_fake

USER = [{"role": "user", "content": "Describe the weather today"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
# "Hello from the fake" in deltas of the default 4 characters.
DEFAULT_DELTAS = ["Hell", "o fr", "om t", "he f", "ake"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with running_fake() as fake:
        yield fake


@pytest.fixture
async def oai(fake: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
async def claude(fake: FakeProvider) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0) as client:
        yield client


# OpenAI Chat Completions


async def test_openai_completion_is_a_chat_completion(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief"}, *USER]
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=50)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ("assistant", DEFAULT_REPLY, "stop")
    assert completion.usage is not None
    # 6 words across the system and user messages; one completion token per delta.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        6,
        5,
        11,
    )
    [sent] = fake.requests
    assert (sent.method, sent.path, sent.api, sent.stream) == ("POST", "/v1/chat/completions", "openai", False)
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["max_tokens"] == 50
    assert sent.body["messages"] == messages


async def test_openai_stream_sends_role_deltas_finish_and_usage(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.reply, fake.chunk_chars = "Héllo wörld 😀!", 3
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    first, *middle, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert [chunk.choices[0].delta.content for chunk in middle] == ["Hél", "lo ", "wör", "ld ", "😀!"]
    assert [chunk.choices[0].finish_reason for chunk in [first, *middle]] == [None] * 6
    assert finish.choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens) == (4, 5, 9)
    assert fake.requests[0].body["stream"] is True
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}


async def test_openai_stream_without_include_usage_has_no_usage_chunk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == DEFAULT_REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("include_usage", [False, True])
async def test_openai_stream_is_chunked_sse_ending_in_done(fake: FakeProvider, include_usage: bool) -> None:
    body = {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": include_usage}}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.openai_base_url}/chat/completions", json=body)

    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    frames = response.text.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    assert all(frame.startswith("data: {") for frame in frames[:-2])
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in frames[:-2]]
    if include_usage:
        # As OpenAI does: "usage": null on every chunk, then one with no choices and the totals.
        *chunks, last = chunks
        assert all(chunk["usage"] is None for chunk in chunks)
        assert last["choices"] == []
        assert last["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    else:
        assert all("usage" not in chunk for chunk in chunks)
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": "", "refusal": None},
        *({"content": delta} for delta in DEFAULT_DELTAS),
        {},
    ]


async def test_openai_json_mode_replies_with_the_json_reply(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=USER, response_format={"type": "json_object"}
    )
    plain = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert completion.choices[0].message.content == DEFAULT_JSON_REPLY
    assert json.loads(DEFAULT_JSON_REPLY) == {"ok": True}
    assert plain.choices[0].message.content == DEFAULT_REPLY
    assert fake.requests[0].body["response_format"] == {"type": "json_object"}


async def test_openai_image_parts_are_recorded(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
    ]
    await oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    await oai.chat.completions.create(model="gpt-4o", messages=USER)

    assert [sent.has_image for sent in fake.requests] == [True, False]
    assert fake.requests[0].body["messages"][0]["content"][1]["image_url"]["url"].endswith(PNG)


async def test_openai_models_list(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.models = ("gpt-4o", "gpt-4o-mini")
    models = [model async for model in oai.models.list()]

    assert [(model.id, model.object) for model in models] == [("gpt-4o", "model"), ("gpt-4o-mini", "model")]
    assert (fake.requests[0].method, fake.requests[0].path) == ("GET", "/v1/models")


@pytest.mark.parametrize(
    ("status", "error_class", "error_code"),
    [
        (401, openai.AuthenticationError, "invalid_api_key"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
async def test_openai_error_status_raises_the_sdk_exception(
    fake: FakeProvider, oai: openai.AsyncOpenAI, status: int, error_class: type[openai.APIStatusError], error_code: str
) -> None:
    fake.fail_next(1, status, retry_after=7, message="slow down")

    with pytest.raises(error_class) as raised:
        await oai.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert raised.value.status_code == status
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == error_code
    assert raised.value.body == {
        "message": "slow down",
        "type": raised.value.type,
        "param": None,
        "code": error_code,
    }
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert len(fake.requests) == 2


async def test_openai_sdk_retries_honour_retry_after(fake: FakeProvider) -> None:
    fake.fail_next(2, 503, retry_after=0.01)
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=2) as client:
        started = time.monotonic()
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert completion.choices[0].message.content == DEFAULT_REPLY
    # Without Retry-After the SDK would back off at least 0.375 s, then 0.75 s.
    assert time.monotonic() - started < 1.0
    assert [sent.headers["x-stainless-retry-count"] for sent in fake.requests] == ["0", "1", "2"]


async def test_openai_max_tokens_cuts_the_reply_with_finish_reason_length(
    fake: FakeProvider, oai: openai.AsyncOpenAI
) -> None:
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, max_completion_tokens=2)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=2, stream=True)
    chunks = [chunk async for chunk in stream]

    assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == ("Hello fr", "length")
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Hello fr"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_openai_mid_stream_failure_raises_api_connection_error(
    fake: FakeProvider, oai: openai.AsyncOpenAI
) -> None:
    fake.fail_mid_stream(after_deltas=2)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    received: list[str] = []

    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    # The SDK hands over the deltas that arrived, then reports the broken connection.
    assert received == ["", *DEFAULT_DELTAS[:2]]
    assert fake.disconnects == 0
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.content == DEFAULT_REPLY


async def test_openai_client_closing_a_stream_is_a_disconnect(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.gap_s = 0.05
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    await anext(aiter(stream))
    assert fake.disconnects == 0

    await stream.close()

    await asyncio.wait_for(fake.disconnected.wait(), 5)
    assert fake.disconnects == 1


async def test_client_timeout_during_the_delay_is_a_disconnect(fake: FakeProvider) -> None:
    fake.delay_s = 5
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    await asyncio.wait_for(fake.disconnected.wait(), 5)
    assert fake.disconnects == 1


async def test_delay_and_gap_pace_the_stream(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.delay_s, fake.gap_s = 0.2, 0.05
    started = time.monotonic()
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    arrivals = [time.monotonic() - started async for chunk in stream if chunk.choices[0].delta.content]

    assert len(arrivals) == len(DEFAULT_DELTAS)
    # Lower bounds only: the client may read several deltas in one go, but none before it was sent.
    assert arrivals[0] >= 0.2
    assert arrivals[-1] >= 0.2 + 0.05 * (len(DEFAULT_DELTAS) - 1)


@pytest.mark.parametrize("prefix", ["/inference", "/api/v1", "/api/paas/v4"])
async def test_openai_compatible_providers_base_paths(fake: FakeProvider, prefix: str) -> None:
    """GitHub Models, OpenRouter and Zhipu BigModel mount the same API under their own paths."""
    async with openai.AsyncOpenAI(base_url=f"{fake.url}{prefix}", api_key="k", max_retries=0) as client:
        completion = await client.chat.completions.create(model="vendor/model", messages=USER)

    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert fake.requests[0].path == f"{prefix}/chat/completions"


async def test_one_client_reuses_one_connection(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert len([chunk async for chunk in stream]) == len(DEFAULT_DELTAS) + 2
    await oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    await oai.models.list()

    assert len({sent.connection for sent in fake.requests}) == 1
    assert len(fake.requests) == 3


# Anthropic Messages


async def test_anthropic_message_is_a_message(fake: FakeProvider, claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, system="You are terse", messages=USER
    )

    assert (message.type, message.role, message.model) == ("message", "assistant", "claude-haiku-4-5")
    assert message.id.startswith("msg_")
    assert [(block.type, block.text) for block in message.content if block.type == "text"] == [("text", DEFAULT_REPLY)]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    # 3 words of system prompt plus 4 of the user message; one output token per delta.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 5)
    [sent] = fake.requests
    assert (sent.method, sent.path, sent.api) == ("POST", "/v1/messages", "anthropic")
    # anthropic 2.x sends the API key as a bearer token, not in the older `x-api-key` header.
    assert sent.headers["authorization"] == "Bearer k"
    assert "x-api-key" not in sent.headers
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", sent.headers["anthropic-version"])
    assert (sent.body["system"], sent.body["max_tokens"], sent.body["messages"]) == ("You are terse", 64, USER)


async def test_anthropic_stream_helper_builds_the_final_message(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    async with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    assert texts == DEFAULT_DELTAS
    assert final.content[0].type == "text"
    assert final.content[0].text == DEFAULT_REPLY
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 5)
    assert fake.requests[0].stream


async def test_anthropic_raw_stream_events_in_order(claude: anthropic.AsyncAnthropic) -> None:
    stream = await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER, stream=True)
    events = [event async for event in stream]

    # The SDK drops `ping` events; the wire test below shows the fake sends one.
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    deltas = [event.delta for event in events if event.type == "content_block_delta"]
    assert [(delta.type, delta.text) for delta in deltas if delta.type == "text_delta"] == [
        ("text_delta", text) for text in DEFAULT_DELTAS
    ]
    message_delta = events[-2]
    assert message_delta.type == "message_delta"
    assert (message_delta.delta.stop_reason, message_delta.usage.output_tokens) == ("end_turn", 5)


async def test_anthropic_stream_is_sse_with_event_lines_and_a_ping(fake: FakeProvider) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": USER, "stream": True}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.anthropic_base_url}/v1/messages", json=body, headers=headers)

    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    frames = [frame.split("\n") for frame in response.text.split("\n\n") if frame]
    assert all(len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ") for lines in frames)
    names = [lines[0].removeprefix("event: ") for lines in frames]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(json.loads(lines[1].removeprefix("data: "))["type"] == lines[0][7:] for lines in frames)
    assert response.headers["request-id"].startswith("req_")


async def test_anthropic_fenced_json(fake: FakeProvider, claude: anthropic.AsyncAnthropic) -> None:
    fake.anthropic_fenced_json, fake.json_reply = True, '{"labels": ["cat"]}'
    message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER)

    assert message.content[0].type == "text"
    text = message.content[0].text
    assert text == '```json\n{"labels": ["cat"]}\n```'
    assert json.loads(text.removeprefix("```json\n").removesuffix("\n```")) == {"labels": ["cat"]}


async def test_anthropic_output_format_replies_with_the_json_reply(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    message = await claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=USER,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )

    assert message.content[0].type == "text"
    assert message.content[0].text == DEFAULT_JSON_REPLY
    assert fake.requests[0].body["output_config"]["format"]["type"] == "json_schema"


async def test_anthropic_image_blocks_are_recorded(fake: FakeProvider, claude: anthropic.AsyncAnthropic) -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"},
    ]
    message = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER)

    assert message.usage.input_tokens == 3
    assert [sent.has_image for sent in fake.requests] == [True, False]


async def test_anthropic_models_list(fake: FakeProvider, claude: anthropic.AsyncAnthropic) -> None:
    models = [model async for model in claude.models.list()]

    assert [(model.type, model.id) for model in models] == [("model", name) for name in fake.models]
    assert fake.requests[0].api == "anthropic"


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_anthropic_error_status_raises_the_sdk_exception(
    fake: FakeProvider,
    claude: anthropic.AsyncAnthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    fake.fail_next(1, status, retry_after=3)

    with pytest.raises(error_class) as raised:
        await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER)

    assert raised.value.status_code == status
    assert raised.value.response.headers["retry-after"] == "3"
    assert raised.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": raised.value.body["error"]["message"]},  # type: ignore[index]
        "request_id": raised.value.request_id,
    }
    message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER)
    assert message.stop_reason == "end_turn"


async def test_anthropic_max_tokens_cuts_the_reply(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=1, messages=USER)

    assert message.content[0].type == "text"
    assert (message.content[0].text, message.stop_reason, message.usage.output_tokens) == ("Hell", "max_tokens", 1)


async def test_anthropic_mid_stream_failure_breaks_the_stream_after_the_deltas_sent(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fake.fail_mid_stream(after_deltas=2)
    received: list[str] = []
    failure: Exception | None = None

    # Which exception the SDK raises for a cut stream is its own business (it changed between releases);
    # the fake's contract is that the stream fails after the deltas it sent, without a message_stop.
    try:
        async with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=USER) as stream:
            async for event in stream:
                received.append(event.type)
    except Exception as raised:
        failure = raised

    assert failure is not None
    assert "message_stop" not in received
    assert received.count("text") == 2
    assert fake.disconnects == 0


async def test_anthropic_client_closing_a_stream_is_a_disconnect(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fake.gap_s = 0.05
    async with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=USER) as stream:
        async for text in stream.text_stream:
            assert text == DEFAULT_DELTAS[0]
            break

    await asyncio.wait_for(fake.disconnected.wait(), 5)
    assert fake.disconnects == 1


# Tool calls

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]
PARIS, ROME = '{"city": "Paris"}', '{"city": "Rome"}'
TWO_CALLS = [("get_weather", PARIS), ("get_weather", ROME)]


async def test_openai_tool_calls_answer_a_request_offering_tools(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.tool_calls, fake.tool_preamble = TWO_CALLS, "Checking both"
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=OPENAI_TOOLS)

    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("Checking both", "tool_calls")
    assert choice.message.tool_calls is not None
    assert [
        (call.id, call.type, call.function.name, call.function.arguments) for call in choice.message.tool_calls
    ] == [
        ("call_fake1_0", "function", "get_weather", PARIS),
        ("call_fake1_1", "function", "get_weather", ROME),
    ]
    assert completion.usage is not None
    # One output token a piece: 4 of the preamble, 5 and 4 of the calls' arguments.
    assert completion.usage.completion_tokens == 4 + 5 + 4
    assert fake.requests[0].body["tools"] == OPENAI_TOOLS


async def test_openai_tool_call_without_a_preamble_has_null_content(fake: FakeProvider) -> None:
    body = {"model": "m", "messages": USER, "tools": OPENAI_TOOLS}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.openai_base_url}/chat/completions", json=body)

    # The default: one call of the first tool, with `json_reply` for arguments.
    assert response.json()["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_fake1_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"ok": true}'}}
        ],
        "refusal": None,
    }


async def test_openai_streamed_tool_calls_arrive_in_pieces(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.tool_calls, fake.chunk_chars = TWO_CALLS, 6
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        tools=OPENAI_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    first, *middle, finish, usage = chunks
    assert first.choices[0].delta.model_dump(exclude_unset=True) == {
        "role": "assistant",
        "content": None,
        "refusal": None,
    }
    deltas = [chunk.choices[0].delta.model_dump(exclude_unset=True) for chunk in middle]
    # Each call: its id and name with empty arguments, then the arguments in pieces of `chunk_chars`.
    assert deltas == [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_fake1_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        *({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in ['{"city', '": "Pa', 'ris"}']),
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_fake1_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        *({"tool_calls": [{"index": 1, "function": {"arguments": piece}}]} for piece in ['{"city', '": "Ro', 'me"}']),
    ]
    assert finish.choices[0].finish_reason == "tool_calls"
    assert usage.usage is not None
    assert usage.usage.completion_tokens == 6


async def test_openai_stream_helper_puts_the_tool_calls_together(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.tool_calls, fake.tool_preamble, fake.chunk_chars = TWO_CALLS, "Looking it up", 2
    strict = [{**tool, "function": {**tool["function"], "strict": True}} for tool in OPENAI_TOOLS]
    async with oai.chat.completions.stream(model="gpt-4o-mini", messages=USER, tools=strict) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Looking it up"
    assert message.tool_calls is not None
    assert [(call.id, call.function.name, call.function.parsed_arguments) for call in message.tool_calls] == [
        ("call_fake1_0", "get_weather", {"city": "Paris"}),
        ("call_fake1_1", "get_weather", {"city": "Rome"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert kinds.count("content.done") == 1
    assert kinds.count("tool_calls.function.arguments.done") == 2


@pytest.mark.parametrize(
    ("tool_choice", "called"),
    [
        ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
        ("required", "get_weather"),
        ("auto", "get_weather"),
        ("none", None),
    ],
)
async def test_openai_tool_choice_picks_the_tool(
    oai: openai.AsyncOpenAI, tool_choice: object, called: str | None
) -> None:
    completion = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=USER, tools=OPENAI_TOOLS, tool_choice=tool_choice
    )

    message = completion.choices[0].message
    if called is None:
        assert (message.content, message.tool_calls, completion.choices[0].finish_reason) == (
            DEFAULT_REPLY,
            None,
            "stop",
        )
    else:
        assert message.tool_calls is not None
        assert [(call.function.name, call.function.arguments) for call in message.tool_calls] == [
            (called, DEFAULT_JSON_REPLY)
        ]


async def test_openai_parallel_tool_calls_off_makes_one_call(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.tool_calls = TWO_CALLS
    completion = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=USER, tools=OPENAI_TOOLS, parallel_tool_calls=False
    )

    assert completion.choices[0].message.tool_calls is not None
    assert [call.function.arguments for call in completion.choices[0].message.tool_calls] == [PARIS]


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_tool_results_round_trip(fake: FakeProvider, oai: openai.AsyncOpenAI, stream: bool) -> None:
    fake.tool_calls = TWO_CALLS
    first = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=OPENAI_TOOLS)
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump() for call in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "12C and rain"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": [{"type": "text", "text": "25C and sun"}]},
    ]

    if stream:
        chunks = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS, stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in chunks])
    else:
        second = await oai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS)
        assert (second.choices[0].message.tool_calls, second.choices[0].finish_reason) == (None, "stop")
        text = second.choices[0].message.content or ""

    assert text == "Results: 12C and rain | 25C and sun"


_ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": PARIS}}],
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tools": []}, "Invalid 'tools': empty array."),
        ({"tools": [{"function": {"name": "f"}}]}, "Missing required parameter: 'tools[0].type'."),
        ({"tools": [{"type": "function"}]}, "Missing required parameter: 'tools[0].function'."),
        ({"tools": [{"type": "funcion", "function": {"name": "f"}}]}, 'Invalid value: "funcion".'),
        ({"tools": [{"type": "function", "function": {}}]}, "Missing required parameter: 'tools[0].function.name'."),
        (
            {"tools": [OPENAI_TOOLS[0], {"type": "function", "function": {"name": "get time"}}]},
            "Invalid 'tools[1].function.name': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]{1,64}$'.",
        ),
        ({"tools": [{"type": "function", "function": {"name": "f" * 65}}]}, "string does not match pattern"),
        ({"tool_choice": "auto"}, "'tool_choice' is only allowed when 'tools' are specified."),
        (
            {"tools": OPENAI_TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_news"}}},
            "function 'get_news' is not one of the 'tools'.",
        ),
        (
            {"messages": [*USER, {"role": "tool", "tool_call_id": "call_1", "content": "12C"}]},
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
            "'tool_calls'.",
        ),
        (
            {"messages": [*USER, _ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call_2", "content": "12C"}]},
            "Invalid parameter: 'tool_call_id' of 'call_2' not found in 'tool_calls' of previous message.",
        ),
        (
            {"messages": [*USER, _ASSISTANT_CALL, {"role": "tool", "content": "12C"}]},
            "Missing required parameter: 'messages.[2].tool_call_id'.",
        ),
        (
            {"messages": [*USER, _ASSISTANT_CALL, *USER]},
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            "'tool_call_id'. The following tool_call_ids did not have response messages: call_1",
        ),
        ({"messages": [*USER, _ASSISTANT_CALL]}, "did not have response messages: call_1"),
        (
            {
                "messages": [
                    *USER,
                    _ASSISTANT_CALL,
                    {"role": "tool", "tool_call_id": "call_1", "content": "12C"},
                    {"role": "tool", "tool_call_id": "call_1", "content": "12C"},
                    {"role": "assistant", "content": "It is 12C"},
                    {"role": "tool", "tool_call_id": "call_1", "content": "12C"},
                ]
            },
            "must be a response to a preceeding message with 'tool_calls'",
        ),
    ],
)
async def test_openai_refuses_tool_requests_as_the_api_does(
    fake: FakeProvider, oai: openai.AsyncOpenAI, changes: dict[str, object], message: str
) -> None:
    body: dict[str, object] = {"model": "gpt-4o-mini", "messages": USER, **changes}

    with pytest.raises(openai.BadRequestError) as raised:
        await oai.chat.completions.create(**body)

    assert isinstance(raised.value.body, dict)
    assert message in raised.value.body["message"]
    assert raised.value.body["type"] == "invalid_request_error"


async def test_anthropic_tool_use_blocks_answer_a_request_offering_tools(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fake.tool_calls, fake.tool_preamble = TWO_CALLS, "Checking both"
    message = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS
    )

    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "Checking both"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert [(block.id, block.name, block.input) for block in uses] == [
        ("toolu_fake1_0", "get_weather", {"city": "Paris"}),
        ("toolu_fake1_1", "get_weather", {"city": "Rome"}),
    ]
    assert (message.stop_reason, message.usage.output_tokens) == ("tool_use", 4 + 5 + 4)


async def test_anthropic_raw_stream_of_tool_use_blocks(fake: FakeProvider, claude: anthropic.AsyncAnthropic) -> None:
    fake.tool_calls, fake.tool_preamble, fake.chunk_chars = TWO_CALLS, "Hmm", 6
    stream = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS, stream=True
    )
    events = [event.model_dump(exclude_unset=True) async for event in stream]

    def tool_use(index: int, number: int, pieces: list[str]) -> list[dict[str, object]]:
        block = {"type": "tool_use", "id": f"toolu_fake1_{number}", "name": "get_weather", "input": {}}
        return [
            {"type": "content_block_start", "index": index, "content_block": block},
            *(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
                for piece in ["", *pieces]
            ),
            {"type": "content_block_stop", "index": index},
        ]

    assert events[0]["type"] == "message_start"
    # The index counts every block, the text block included.
    assert events[1:-2] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hmm"}},
        {"type": "content_block_stop", "index": 0},
        *tool_use(1, 0, ['{"city', '": "Pa', 'ris"}']),
        *tool_use(2, 1, ['{"city', '": "Ro', 'me"}']),
    ]
    assert events[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 7},
    }


async def test_anthropic_stream_helper_gives_the_tool_input_as_a_dict(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fake.tool_calls, fake.chunk_chars = [("get_weather", '{"city": "Paris", "days": [1, 2, 3]}')], 1
    async with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS
    ) as stream:
        snapshots = [event.snapshot async for event in stream if event.type == "input_json"]
        final = await stream.get_final_message()

    # The empty opening piece, then each one-character piece grows the input the helper parses as it goes.
    assert len(snapshots) == 1 + len('{"city": "Paris", "days": [1, 2, 3]}')
    assert (snapshots[0], snapshots[-1]) == ({}, {"city": "Paris", "days": [1, 2, 3]})
    [block] = final.content
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_fake1_0", "get_weather", {"city": "Paris", "days": [1, 2, 3]})
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("tool_choice", "called"),
    [
        ({"type": "tool", "name": "get_time"}, "get_time"),
        ({"type": "any"}, "get_weather"),
        ({"type": "auto"}, "get_weather"),
        ({"type": "none"}, None),
    ],
)
async def test_anthropic_tool_choice_picks_the_tool(
    claude: anthropic.AsyncAnthropic, tool_choice: dict[str, str], called: str | None
) -> None:
    message = await claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=USER,
        tools=ANTHROPIC_TOOLS,
        tool_choice=tool_choice,
    )

    if called is None:
        assert message.content[0].type == "text"
        assert (message.content[0].text, message.stop_reason) == (DEFAULT_REPLY, "end_turn")
    else:
        assert [
            (block.type, getattr(block, "name", None), getattr(block, "input", None)) for block in message.content
        ] == [("tool_use", called, {"ok": True})]


async def test_anthropic_disable_parallel_tool_use_makes_one_call(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fake.tool_calls = TWO_CALLS
    message = await claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=USER,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )

    assert [getattr(block, "input", None) for block in message.content] == [{"city": "Paris"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_tool_results_round_trip(
    fake: FakeProvider, claude: anthropic.AsyncAnthropic, stream: bool
) -> None:
    fake.tool_calls, fake.tool_preamble = TWO_CALLS, "Checking"
    first = await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS)
    ids = [block.id for block in first.content if block.type == "tool_use"]
    results = [
        {"type": "tool_result", "tool_use_id": ids[0], "content": "12C and rain"},
        {"type": "tool_result", "tool_use_id": ids[1], "content": [{"type": "text", "text": "25C and sun"}]},
        {"type": "text", "text": "Summarise"},
    ]
    messages = [
        *USER,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": results},
    ]

    if stream:
        async with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=messages, tools=ANTHROPIC_TOOLS
        ) as events:
            final = await events.get_final_message()
    else:
        final = await claude.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=messages, tools=ANTHROPIC_TOOLS
        )

    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].type == "text"
    assert (final.content[0].text, final.stop_reason) == ("Results: 12C and rain | 25C and sun", "end_turn")


async def test_anthropic_turns_of_one_role_in_a_row_are_accepted(claude: anthropic.AsyncAnthropic) -> None:
    """The real API joins consecutive turns of one role into one turn instead of refusing them."""
    messages = [*USER, {"role": "user", "content": "and tomorrow?"}]
    message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages)

    assert message.stop_reason == "end_turn"


_TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tools": [{"input_schema": {"type": "object"}}]}, "tools.0.custom.name: Field required"),
        (
            {"tools": [ANTHROPIC_TOOLS[0], {"name": "get time", "input_schema": {"type": "object"}}]},
            "tools.1.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
        ),
        ({"tools": [{"name": "get_time"}]}, "tools.0.custom.input_schema: Field required"),
        ({"tools": [{"name": "get_time", "input_schema": "object"}]}, "tools.0.custom.input_schema: Input should be"),
        (
            {"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "function"}},
            "tool_choice: Input tag 'function' found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'",
        ),
        ({"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "tool"}}, "tool_choice.tool.name: Field required"),
        (
            {"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "tool", "name": "get_news"}},
            "tool 'get_news' is not one of the tools",
        ),
        (
            {
                "tools": ANTHROPIC_TOOLS,
                "messages": [
                    *USER,
                    {"role": "assistant", "content": [_TOOL_USE]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "12C"}]},
                ],
            },
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
        ),
        (
            {
                "tools": ANTHROPIC_TOOLS,
                "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}],
            },
            "messages.0.content.0: unexpected `tool_use_id`",
        ),
        (
            {"tools": ANTHROPIC_TOOLS, "messages": [*USER, {"role": "assistant", "content": [_TOOL_USE]}, *USER]},
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each "
            "`tool_use` block must have a corresponding `tool_result` block in the next message.",
        ),
        (
            {
                "tools": ANTHROPIC_TOOLS,
                "messages": [
                    *USER,
                    {"role": "assistant", "content": [_TOOL_USE, {**_TOOL_USE, "id": "toolu_2"}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "12C"}]},
                ],
            },
            "immediately after: toolu_1.",
        ),
        (
            {"tools": ANTHROPIC_TOOLS, "messages": [*USER, {"role": "assistant", "content": [_TOOL_USE]}]},
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1.",
        ),
    ],
)
async def test_anthropic_refuses_tool_requests_as_the_api_does(
    claude: anthropic.AsyncAnthropic, changes: dict[str, object], message: str
) -> None:
    body: dict[str, object] = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": USER, **changes}

    with pytest.raises(anthropic.BadRequestError) as raised:
        await claude.messages.create(**body)

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert message in raised.value.body["error"]["message"]


async def test_mid_stream_failure_counts_argument_pieces(fake: FakeProvider, oai: openai.AsyncOpenAI) -> None:
    fake.tool_calls, fake.tool_preamble = TWO_CALLS, "Hmm"
    fake.fail_mid_stream(after_deltas=3)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=OPENAI_TOOLS, stream=True)
    received: list[dict[str, object]] = []

    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.model_dump(exclude_unset=True))

    # The role chunk, one piece of text, the first call's head (not a piece) and two pieces of its arguments.
    assert [delta.get("content") for delta in received[:2]] == ["", "Hmm"]
    assert [call["function"] for delta in received[2:] for call in delta["tool_calls"]] == [
        {"name": "get_weather", "arguments": ""},
        {"arguments": '{"ci'},
        {"arguments": 'ty":'},
    ]


async def test_malformed_event_and_gap_between_argument_pieces(fake: FakeProvider) -> None:
    fake.tool_calls, fake.chunk_chars, fake.gap_s = [("get_time", "{}")], 1, 0.05
    fake.malformed_stream(after_deltas=1)
    body = {"model": "m", "max_tokens": 10, "messages": USER, "tools": ANTHROPIC_TOOLS, "stream": True}
    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        response = await client.post(
            f"{fake.anthropic_base_url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
        )
        elapsed = time.monotonic() - started

    frames = [frame for frame in response.text.split("\n\n") if frame]
    deltas = [frame.split("\ndata: ")[1] for frame in frames if frame.startswith("event: content_block_delta")]
    # The empty opening piece, "{", the broken event, "}".
    assert deltas[2] == '{"type": "content_block_delta", "delta": '
    assert [json.loads(data)["delta"] for data in deltas[:2] + deltas[3:]] == [
        {"type": "input_json_delta", "partial_json": piece} for piece in ["", "{", "}"]
    ]
    assert frames[-1].startswith("event: message_stop")
    assert elapsed >= 0.05


async def test_scripted_anthropic_arguments_that_are_no_object_fail_the_test() -> None:
    with pytest.raises(AssertionError, match="the fake provider failed") as raised:
        async with (
            running_fake(tool_calls=[("get_weather", "[1, 2]")]) as fake,
            anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0) as client,
        ):
            with pytest.raises(anthropic.APIConnectionError):
                await client.messages.create(
                    model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS
                )

    assert "must be a JSON object" in str(raised.value.__cause__)


# The HTTP layer


async def test_invalid_requests_get_api_shaped_errors(fake: FakeProvider) -> None:
    anthropic_headers = {"anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=fake.url) as client:
        no_max_tokens = await client.post(
            "/v1/messages", json={"model": "m", "messages": USER}, headers=anthropic_headers
        )
        not_json = await client.post("/v1/chat/completions", content=b"{", headers={"content-type": "application/json"})
        unknown = await client.get("/v1/embeddings")

    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404
    assert set(unknown.json()["error"]) == {"message", "type", "param", "code"}
    assert fake.requests[1].raw_body == b"{"
    assert fake.requests[1].body is None


async def test_chunked_request_bodies_are_read(fake: FakeProvider) -> None:
    async def body() -> AsyncIterator[bytes]:
        payload = json.dumps({"model": "m", "messages": USER}).encode()
        for start in range(0, len(payload), 7):
            yield payload[start : start + 7]

    headers = [("x-tag", "a"), ("x-tag", "b")]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.openai_base_url}/chat/completions", content=body(), headers=headers)

    assert fake.requests[0].headers["transfer-encoding"] == "chunked"
    assert fake.requests[0].headers["x-tag"] == "a, b"
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY


async def test_a_bug_in_the_fake_fails_the_test() -> None:
    with pytest.raises(AssertionError, match="the fake provider failed"):
        async with running_fake() as fake:
            fake.models = None  # type: ignore[assignment]
            async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
                with pytest.raises(openai.APIConnectionError):
                    await client.models.list()


# The threaded variant


def test_thread_variant_serves_sync_clients() -> None:
    with FakeProviderThread(reply="from a thread", gap_s=0.05) as fake:
        with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
            completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        with (
            anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0) as claude,
            claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=USER) as stream,
        ):
            first = next(iter(stream.text_stream))

        assert completion.choices[0].message.content == "from a thread"
        assert first == "from"
        assert fake.wait_for_disconnect(5)
        assert fake.disconnects == 1
    with pytest.raises(RuntimeError, match="not serving"):
        FakeProvider().env()


def test_env_points_the_sdks_in_another_process_at_the_fake() -> None:
    script = textwrap.dedent(
        """
        import anthropic, openai
        messages = [{"role": "user", "content": "hi"}]
        completion = openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=messages)
        message = anthropic.Anthropic().messages.create(model="claude-haiku-4-5", max_tokens=8, messages=messages)
        print(completion.choices[0].message.content, "|", message.content[0].text)
        """
    )
    with FakeProviderThread(reply="across processes") as fake:
        env = {**os.environ, **fake.env(), "OPENAI_API_KEY": "sk-env", "ANTHROPIC_API_KEY": "ak-env"}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "across processes | across processes"
    assert [(sent.api, sent.path) for sent in fake.requests] == [
        ("openai", "/v1/chat/completions"),
        ("anthropic", "/v1/messages"),
    ]
    assert fake.requests[0].headers["authorization"] == "Bearer sk-env"
    assert fake.requests[1].headers["authorization"] == "Bearer ak-env"
