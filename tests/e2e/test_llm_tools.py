"""Tool calling, structured output and the Anthropic Messages API through the edge, driven by the official
`openai` and `anthropic` SDKs, unmodified, for a model of each protocol (the fake provider speaks both)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest

from tests.conftest import FAILED_KEY
from tests.fakes.providers import DEFAULT_REPLY, FakeProviderThread
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-for-the-tools-test"
# A model of each protocol: the OpenAI one passes tools through, the Anthropic one translates them.
MODELS = ("gpt-4o-mini", "claude-haiku-4-5")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
}
QUESTION = [{"role": "user", "content": "Weather in Paris and Rome?"}]
TWO_CALLS = [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]


class Person(pydantic.BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {**fake.env(), "OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "ak-test", "ADMIN_TOKEN": ADMIN}
    running = RunningSuite.start(tmp_path_factory.mktemp("suite-tools"), env)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def script(fake: FakeProviderThread, suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test scripts the fake afresh (and gets the suite's logs when it fails)."""
    yield
    fake.tool_calls, fake.tool_preamble, fake.chunk_chars = None, "", 4
    fake.json_reply = '{"ok": true}'
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


@pytest.fixture
def sdk(suite: RunningSuite) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{suite.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(suite: RunningSuite) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=suite.base_url, api_key="unused", max_retries=0) as client:
        yield client


def _arguments(calls: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(call.function.name, json.loads(call.function.arguments)) for call in calls]


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_gets_several_calls_in_one_answer(sdk: openai.OpenAI, fake: FakeProviderThread, model: str) -> None:
    fake.tool_calls, fake.tool_preamble = TWO_CALLS, "Let me look."

    completion = sdk.chat.completions.create(model=model, messages=QUESTION, tools=[WEATHER_TOOL])  # type: ignore[arg-type, list-item]

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look."
    assert _arguments(choice.message.tool_calls) == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert all(call.id for call in choice.message.tool_calls or ())
    assert completion.usage is not None and completion.usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_streams_calls_whose_arguments_come_in_many_pieces(
    sdk: openai.OpenAI, fake: FakeProviderThread, model: str
) -> None:
    fake.tool_calls, fake.chunk_chars = TWO_CALLS, 2

    with sdk.chat.completions.stream(model=model, messages=QUESTION, tools=[WEATHER_TOOL]) as stream:  # type: ignore[arg-type, list-item]
        pieces = sum(1 for event in stream if event.type == "tool_calls.function.arguments.delta")
        final = stream.get_final_completion()

    assert pieces >= 8
    assert final.choices[0].finish_reason == "tool_calls"
    assert _arguments(final.choices[0].message.tool_calls) == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_tool_results_round_trip(sdk: openai.OpenAI, model: str, stream: bool) -> None:
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        for i, (_, arguments) in enumerate(TWO_CALLS)
    ]
    messages = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_0", "content": "18 C"},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
    ]

    if stream:
        chunks = sdk.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL], stream=True)  # type: ignore[arg-type, list-item, call-overload]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    else:
        completion = sdk.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type, list-item]
        text = completion.choices[0].message.content or ""

    assert text == "Results: 18 C | 21 C"


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_structured_output_parses_into_the_model(
    sdk: openai.OpenAI, fake: FakeProviderThread, model: str
) -> None:
    fake.json_reply = '{"name": "Ada", "age": 36}'

    completion = sdk.chat.completions.parse(model=model, messages=QUESTION, response_format=Person)  # type: ignore[arg-type]

    assert completion.choices[0].message.parsed == Person(name="Ada", age=36)


@pytest.mark.parametrize("model", MODELS)
def test_an_answer_that_breaks_the_schema_is_an_explicit_error(
    sdk: openai.OpenAI, fake: FakeProviderThread, model: str
) -> None:
    fake.json_reply = '{"name": "Ada", "age": "old"}'

    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.parse(model=model, messages=QUESTION, response_format=Person)  # type: ignore[arg-type]

    assert raised.value.status_code == 503
    assert "does not match the schema at age" in raised.value.message


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_creates_and_streams_a_message(claude: anthropic.Anthropic, model: str) -> None:
    message = claude.messages.create(model=model, max_tokens=100, system="Be brief.", messages=QUESTION)  # type: ignore[arg-type]

    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    with claude.messages.stream(model=model, max_tokens=100, messages=QUESTION) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_REPLY
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_gets_tool_use_blocks(claude: anthropic.Anthropic, fake: FakeProviderThread, model: str) -> None:
    fake.tool_calls, fake.tool_preamble, fake.chunk_chars = TWO_CALLS, "Let me look.", 3

    message = claude.messages.create(model=model, max_tokens=100, messages=QUESTION, tools=[ANTHROPIC_WEATHER])  # type: ignore[arg-type, list-item]
    with claude.messages.stream(model=model, max_tokens=100, messages=QUESTION, tools=[ANTHROPIC_WEATHER]) as stream:  # type: ignore[arg-type, list-item]
        streamed = stream.get_final_message()

    for answer in (message, streamed):
        assert answer.stop_reason == "tool_use"
        assert answer.content[0].type == "text" and answer.content[0].text == "Let me look."
        uses = [(block.name, block.input) for block in answer.content if block.type == "tool_use"]
        assert uses == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_tool_results_round_trip(claude: anthropic.Anthropic, model: str) -> None:
    messages = [
        *QUESTION,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": [{"type": "text", "text": "21 C"}]},
            ],
        },
    ]

    message = claude.messages.create(model=model, max_tokens=100, messages=messages, tools=[ANTHROPIC_WEATHER])  # type: ignore[arg-type, list-item]

    assert message.content[0].text == "Results: 18 C | 21 C"  # type: ignore[union-attr]


def test_anthropic_sdk_errors_have_anthropics_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=QUESTION, extra_body={"top_k": 5})  # type: ignore[arg-type]

    assert raised.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": raised.value.body["error"]["message"]},  # type: ignore[index]
    }
    assert "top_k" in raised.value.message


def _requests(suite: RunningSuite, model: str) -> int:
    response = httpx.get(f"{suite.base_url}/v1/usage", headers={"x-admin-token": ADMIN}, timeout=10)
    assert response.status_code == 200, response.text
    return sum(int(r["requests"]) for r in response.json()["records"] if r["model"] == model)


def test_messages_share_the_cache_and_usage_of_chat_completions(suite: RunningSuite, fake: FakeProviderThread) -> None:
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 100,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Cache me"}],
    }
    before, sent = _requests(suite, "gpt-4o-mini"), len(fake.requests)

    first = httpx.post(f"{suite.base_url}/v1/messages", json=body, timeout=30)
    second = httpx.post(f"{suite.base_url}/v1/messages", json=body, timeout=30)

    assert first.status_code == second.status_code == 200, first.text
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.json()["content"] == first.json()["content"]
    assert len(fake.requests) == sent + 1
    # Usage is flushed to the store every few seconds.
    deadline = time.monotonic() + 15
    while _requests(suite, "gpt-4o-mini") < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _requests(suite, "gpt-4o-mini") == before + 2


@pytest.mark.parametrize("model", MODELS)
def test_a_tool_call_answer_is_cached_whole(sdk: openai.OpenAI, fake: FakeProviderThread, model: str) -> None:
    fake.tool_calls = TWO_CALLS
    question = [{"role": "user", "content": f"Cacheable weather question for {model}"}]
    sent = len(fake.requests)

    answers = [
        sdk.chat.completions.with_raw_response.create(
            model=model,
            messages=question,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            temperature=0,
        )
        for _ in range(2)
    ]

    assert [raw.headers["x-cache"] for raw in answers] == ["miss", "hit"]
    first, second = (raw.parse().choices[0] for raw in answers)
    assert second.finish_reason == first.finish_reason == "tool_calls"
    assert _arguments(second.message.tool_calls) == _arguments(first.message.tool_calls)
    assert [call.id for call in second.message.tool_calls or ()] == [call.id for call in first.message.tool_calls or ()]
    assert len(fake.requests) == sent + 1
