"""Golden tests of tool calls through the llm servicer.

For each client wire format (OpenAI Chat Completions, Anthropic Messages) x provider (an OpenAI-protocol
model, an Anthropic model) x streamed or not, the exact bytes the servicer answers, with its own ids and
timestamps normalised, are compared with a file in tests/golden/llm/. Golden files are written only with
UPDATE_GOLDEN=1; a missing one fails. Each golden file is also read back through the official SDK of its wire
format (openai's `parse` and stream helper, anthropic's message accumulator), so a golden file that an SDK
reads differently from what the scenario means fails too.

The service runs as test_llm_service.py runs it: a real grpc.aio server from `build_server`, real providers,
and the fake provider speaking the real OpenAI and Anthropic protocols.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anthropic
import grpc
import httpx2
import openai
import pytest
from google.api import httpbody_pb2
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from services.common.store import SqliteStore
from services.llm.config import read_config
from services.llm.server import build_server
from tests.fakes.providers import FakeProvider, running_fake

Wire = Literal["openai", "anthropic"]
Provider = Literal["openai", "anthropic"]

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "llm"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

MODELS: dict[Provider, str] = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
MAX_TOKENS = 512

# What the servicer makes up anew for every answer; everything else in an answer is deterministic.
_VOLATILE = (
    (re.compile(rb'"id":"chatcmpl-[0-9a-f]{32}"'), b'"id":"chatcmpl-ID"'),
    (re.compile(rb'"id":"msg_[0-9a-f]{32}"'), b'"id":"msg_ID"'),
    (re.compile(rb'"created":[0-9]+'), b'"created":0'),
)

# Strict, so that the openai SDK parses the arguments itself (`parsed_arguments`).
_WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
_TIME_SCHEMA = {
    "type": "object",
    "properties": {"timezone": {"type": "string"}},
    "required": ["timezone"],
    "additionalProperties": False,
}
_TOOLS = (
    ("get_weather", "The current weather in a city", _WEATHER_SCHEMA),
    ("get_time", "The local time in an IANA time zone", _TIME_SCHEMA),
)
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": name, "description": about, "parameters": schema, "strict": True}}
    for name, about, schema in _TOOLS
]
ANTHROPIC_TOOLS = [{"name": name, "description": about, "input_schema": schema} for name, about, schema in _TOOLS]

QUESTION = "What is the weather in Paris, and what time is it there?"
WEATHER = {"city": "Paris", "unit": "celsius"}
TIME = {"timezone": "Europe/Paris"}
# Long enough to arrive in many pieces, and with escapes and a character beyond ASCII split across them.
LONG_ARGUMENTS = {"city": 'Saint-Rémy-de-Provence, "Bouches-du-Rhône"\n(France)', "unit": "fahrenheit"}
# The results handed back in the round trip, and the fake's answer to them.
RESULTS = ("18°C, sunny", "14:05 CEST")
RESULTS_REPLY = "Results: 18°C, sunny | 14:05 CEST"


@dataclass(frozen=True)
class Scenario:
    name: str
    # What the fake model does: its calls (name, arguments), its preamble, the size of its streamed pieces.
    fake_calls: tuple[tuple[str, dict[str, Any]], ...]
    preamble: str
    chunk_chars: int
    # The request hands back the results of a previous answer's two calls.
    round_trip: bool
    # What the answer must mean: its text and its calls (name, arguments); with calls, it stops for tools.
    text: str
    calls: tuple[tuple[str, dict[str, Any]], ...]


SCENARIOS = (
    Scenario(
        name="several_calls",
        fake_calls=(("get_weather", WEATHER), ("get_time", TIME)),
        preamble="Let me look both up.",
        chunk_chars=6,
        round_trip=False,
        text="Let me look both up.",
        calls=(("get_weather", WEATHER), ("get_time", TIME)),
    ),
    Scenario(
        name="tool_results",
        fake_calls=(),
        preamble="",
        chunk_chars=6,
        round_trip=True,
        text=RESULTS_REPLY,
        calls=(),
    ),
    Scenario(
        name="arguments_in_pieces",
        fake_calls=(("get_weather", LONG_ARGUMENTS),),
        preamble="",
        chunk_chars=2,
        round_trip=False,
        text="",
        calls=(("get_weather", LONG_ARGUMENTS),),
    ),
)


def _arguments_text(arguments: dict[str, Any]) -> str:
    """Arguments as a model writes them: JSON with spaces, characters beyond ASCII as they are."""
    return json.dumps(arguments, ensure_ascii=False)


def _openai_messages(scenario: Scenario) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    if scenario.round_trip:
        calls = [
            {"id": f"call_prior_{n}", "type": "function", "function": {"name": name, "arguments": _arguments_text(a)}}
            for n, (name, a) in enumerate((("get_weather", WEATHER), ("get_time", TIME)))
        ]
        messages.append({"role": "assistant", "content": "Let me look both up.", "tool_calls": calls})
        messages += [
            {"role": "tool", "tool_call_id": f"call_prior_{n}", "content": result} for n, result in enumerate(RESULTS)
        ]
    return messages


def _anthropic_messages(scenario: Scenario) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    if scenario.round_trip:
        uses = [
            {"type": "tool_use", "id": f"toolu_prior_{n}", "name": name, "input": arguments}
            for n, (name, arguments) in enumerate((("get_weather", WEATHER), ("get_time", TIME)))
        ]
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "Let me look both up."}, *uses]})
        results = [
            {"type": "tool_result", "tool_use_id": f"toolu_prior_{n}", "content": result}
            for n, result in enumerate(RESULTS)
        ]
        messages.append({"role": "user", "content": results})
    return messages


def _request_body(wire: Wire, provider: Provider, scenario: Scenario, stream: bool) -> dict[str, Any]:
    model = MODELS[provider]
    if wire == "openai":
        body: dict[str, Any] = {"model": model, "messages": _openai_messages(scenario), "tools": OPENAI_TOOLS}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body
    body = {"model": model, "max_tokens": MAX_TOKENS, "messages": _anthropic_messages(scenario)}
    body["tools"] = ANTHROPIC_TOOLS
    if stream:
        body["stream"] = True
    return body


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with running_fake() as provider:
        yield provider


@pytest.fixture
async def llm(fake: FakeProvider, tmp_path: Path) -> AsyncIterator[llm_pb2_grpc.LlmServiceStub]:
    config = read_config(
        {
            "SPARK_LLM_PORT": "0",
            "SPARK_LLM_METRICS_PORT": "0",
            "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_API_KEY": "ak-test",
            "SPARK_LLM_USAGE_FLUSH_S": "60",
            # No keepalive comment may slip into a golden stream.
            "SPARK_LLM_KEEPALIVE_S": "600",
            # One attempt: a golden answer comes from the model asked, never from a fallback.
            "SPARK_LLM_MAX_ATTEMPTS": "1",
            **fake.env(),
        }
    )
    store = SqliteStore(tmp_path / "spark.db")
    running = await build_server(config, store)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield llm_pb2_grpc.LlmServiceStub(channel)
    finally:
        await channel.close()
        await running.stop()
        await store.close()


async def _answer(stub: llm_pb2_grpc.LlmServiceStub, wire: Wire, stream: bool, body: dict[str, Any]) -> bytes:
    """The servicer's answer: the body, or every frame of the stream, end to end."""
    http = httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(body).encode())
    frames: list[httpbody_pb2.HttpBody]
    if wire == "openai" and stream:
        frames = [frame async for frame in stub.StreamChatCompletion(llm_pb2.StreamChatCompletionRequest(body=http))]
    elif wire == "openai":
        frames = [await stub.CreateChatCompletion(llm_pb2.CreateChatCompletionRequest(body=http))]
    elif stream:
        frames = [frame async for frame in stub.StreamMessage(llm_pb2.StreamMessageRequest(body=http))]
    else:
        frames = [await stub.CreateMessage(llm_pb2.CreateMessageRequest(body=http))]
    expected_type = "text/event-stream" if stream else "application/json"
    assert {frame.content_type for frame in frames} == {expected_type}
    return b"".join(frame.data for frame in frames)


def _normalised(answer: bytes) -> bytes:
    for pattern, replacement in _VOLATILE:
        answer = pattern.sub(replacement, answer)
    return answer


def _compare_with_golden(path: Path, produced: bytes) -> bytes:
    """The golden bytes, after checking `produced` against them (or writing them, with UPDATE_GOLDEN=1)."""
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(produced)
    if not path.exists():
        pytest.fail(f"{path} is missing: write it with UPDATE_GOLDEN=1, then check it by hand against the protocol")
    golden = path.read_bytes()
    # As text, for a readable diff; both are UTF-8, so equal texts are equal bytes.
    assert produced.decode() == golden.decode(), f"the answer differs from {path.name}"
    return golden


def _sdk_transport(golden: bytes, content_type: str) -> httpx2.AsyncClient:
    """An HTTP client for an SDK that answers every request with the golden bytes."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=golden)

    return httpx2.AsyncClient(transport=httpx2.MockTransport(answer))


def _call_id(provider: Provider, number: int) -> str:
    """The id the fake gives the answer's `number`th call (the first answer of a fresh fake)."""
    return f"{'toolu' if provider == 'anthropic' else 'call'}_fake1_{number}"


async def _openai_sdk_reads(golden: bytes, scenario: Scenario, stream: bool) -> tuple[str, list[Any], str]:
    """The text, calls (id, name, parsed arguments) and finish reason the openai SDK reads in the golden bytes."""
    content_type = "text/event-stream" if stream else "application/json"
    async with openai.AsyncOpenAI(
        api_key="k",
        base_url="http://golden.invalid/v1",
        max_retries=0,
        http_client=_sdk_transport(golden, content_type),
    ) as client:
        messages: Any = _openai_messages(scenario)
        tools: Any = OPENAI_TOOLS
        if stream:
            async with client.chat.completions.stream(model="m", messages=messages, tools=tools) as events:
                kinds = [event.type async for event in events]
                completion = await events.get_final_completion()
            assert kinds.count("tool_calls.function.arguments.done") == len(scenario.calls)
        else:
            completion = await client.chat.completions.parse(model="m", messages=messages, tools=tools)
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    (choice,) = completion.choices
    calls = [
        (call.id, call.type, call.function.name, call.function.parsed_arguments)
        for call in choice.message.tool_calls or []
    ]
    # An answer that only calls tools has null content unstreamed, and reads as "" from a stream whose role
    # chunk carries `"content": ""`: both are no text.
    return choice.message.content or "", calls, str(choice.finish_reason)


async def _anthropic_sdk_reads(golden: bytes, scenario: Scenario, stream: bool) -> tuple[str, list[Any], str]:
    """The text, calls (id, name, input) and stop reason the anthropic SDK reads in the golden bytes."""
    content_type = "text/event-stream" if stream else "application/json"
    async with anthropic.AsyncAnthropic(
        api_key="k", base_url="http://golden.invalid", max_retries=0, http_client=_sdk_transport(golden, content_type)
    ) as client:
        messages: Any = _anthropic_messages(scenario)
        tools: Any = ANTHROPIC_TOOLS
        if stream:
            async with client.messages.stream(
                model="m", max_tokens=MAX_TOKENS, messages=messages, tools=tools
            ) as events:
                async for _ in events:
                    pass
                message = await events.get_final_message()
        else:
            message = await client.messages.create(model="m", max_tokens=MAX_TOKENS, messages=messages, tools=tools)
    # A stream's message_start has no counts yet: the SDK takes both from message_delta.
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    text = "".join(block.text for block in message.content if block.type == "text")
    calls = [(block.id, "tool_use", block.name, block.input) for block in message.content if block.type == "tool_use"]
    # Text blocks come before the calls, and none is empty (the API never sends an empty text block).
    assert [block.type for block in message.content] == ["text"] * bool(scenario.text) + ["tool_use"] * len(calls)
    return text, calls, str(message.stop_reason)


@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"], ids=["openai_model", "anthropic_model"])
@pytest.mark.parametrize("wire", ["openai", "anthropic"], ids=["openai_wire", "anthropic_wire"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
async def test_tool_calls_match_the_golden_answer(
    llm: llm_pb2_grpc.LlmServiceStub,
    fake: FakeProvider,
    scenario: Scenario,
    wire: Wire,
    provider: Provider,
    stream: bool,
) -> None:
    fake.tool_calls = [(name, _arguments_text(arguments)) for name, arguments in scenario.fake_calls]
    fake.tool_preamble, fake.chunk_chars = scenario.preamble, scenario.chunk_chars

    answer = await _answer(llm, wire, stream, _request_body(wire, provider, scenario, stream))

    sent = fake.requests[-1]
    assert (sent.api, sent.stream, len(fake.requests)) == (provider, stream, 1)
    suffix = "sse" if stream else "json"
    path = GOLDEN_DIR / f"{scenario.name}.{wire}_wire.{provider}_model.{'stream' if stream else 'once'}.{suffix}"
    golden = _compare_with_golden(path, _normalised(answer))

    if wire == "openai":
        text, calls, reason = await _openai_sdk_reads(golden, scenario, stream)
        stops_for_tools, stops = "tool_calls", "stop"
        kind = "function"
    else:
        text, calls, reason = await _anthropic_sdk_reads(golden, scenario, stream)
        stops_for_tools, stops = "tool_use", "end_turn"
        kind = "tool_use"
    expected_calls = [
        (_call_id(provider, number), kind, name, arguments) for number, (name, arguments) in enumerate(scenario.calls)
    ]
    assert (text, calls, reason) == (scenario.text, expected_calls, stops_for_tools if scenario.calls else stops)
    if stream:
        ending = b"data: [DONE]\n\n" if wire == "openai" else b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        assert golden.endswith(ending)
