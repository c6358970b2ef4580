"""The Anthropic Messages API at /v1/messages: bodies in, messages and events out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.common.errors import InvalidArgument, Unavailable
from services.llm.anthropic_wire import EventWriter, error_event, message_body, parse_messages_body
from services.llm.chat import (
    ChatMessage,
    Completion,
    ImagePart,
    JsonSchema,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from services.llm.providers import anthropic

PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
USER = {"role": "user", "content": "Weather in Paris?"}
CALLED = {
    "role": "assistant",
    "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
}
ANSWERED = {
    "role": "user",
    "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C"}]},
        {"type": "text", "text": "And tomorrow?"},
    ],
}


def _parse(**body: Any) -> Any:
    return parse_messages_body(orjson.dumps({"model": "claude-haiku-4-5", "max_tokens": 100, **body}))


def _violations(**body: Any) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        _parse(**body)
    return [violation.field for violation in caught.value.violations]


def test_a_conversation_with_system_images_and_a_tool_round_trip() -> None:
    parsed = _parse(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                ],
            },
            CALLED,
            ANSWERED,
        ],
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        temperature=0.5,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
    )

    request = parsed.request
    assert not parsed.stream
    assert request.messages == (
        ChatMessage("system", "Be brief."),
        ChatMessage(
            "user",
            (
                TextPart("What is this?"),
                ImagePart(f"data:image/png;base64,{PNG}"),
                ImagePart("https://example.com/cat.png"),
            ),
        ),
        ChatMessage(
            "assistant", (TextPart("Let me look."),), (ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),)
        ),
        ChatMessage("tool", "18 C", tool_call_id="toolu_1"),
        ChatMessage("user", (TextPart("And tomorrow?"),)),
    )
    assert request.tools == (Tool("get_weather", WEATHER["input_schema"], "The weather in a city"),)
    assert (request.tool_choice, request.parallel_tool_calls) == (ToolChoice("required"), False)
    assert (request.max_tokens, request.temperature, request.stop) == (100, 0.5, ("END",))


def test_the_same_conversation_goes_back_to_anthropic_as_it_came() -> None:
    request = _parse(messages=[USER, CALLED, ANSWERED], tools=[WEATHER]).request

    payload = anthropic.request_payload(request, "claude-haiku-4-5", 100)

    assert payload["messages"][1:] == [
        CALLED,
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


def test_an_error_result_says_so_in_words() -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "no such city", "is_error": True}
    request = _parse(messages=[USER, CALLED, {"role": "user", "content": [result]}]).request

    assert request.messages[-1] == ChatMessage("tool", "Error: no such city", tool_call_id="toolu_1")


def test_structured_output_is_a_schema() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    request = _parse(messages=[USER], output_config={"format": {"type": "json_schema", "schema": schema}}).request

    assert request.json_mode and request.json_schema == JsonSchema("output", schema)


def test_stream_is_read() -> None:
    assert _parse(messages=[USER], stream=True).stream


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"messages": [USER], "top_k": 5}, "top_k"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "assistant", "content": [{"type": "image", "source": {}}]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x"}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages[0].content[0].text"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "url", "url": "file:///etc/passwd"}}],
                    }
                ]
            },
            "messages[0].content[0].source.url",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": ""}]}]},
            "messages[0].content[0].tool_use_id",
        ),
        ({"messages": [USER], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"messages": [USER], "tools": [{"name": "f", "input_schema": {"type": "array"}}]}, "tools[0].input_schema"),
        ({"messages": [USER], "tools": [WEATHER, WEATHER]}, "tools"),
        ({"messages": [USER], "tool_choice": {"type": "auto"}}, "tool_choice"),
        ({"messages": [USER], "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "x"}}, "tool_choice.name"),
        (
            {"messages": [USER], "output_config": {"format": {"type": "json_schema", "schema": {"type": 5}}}},
            "output_config.format.schema",
        ),
        ({"messages": [USER], "stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"messages": [USER], "temperature": 1.5}, "temperature"),
        ({"messages": [USER], "metadata": {"email": "a@b"}}, "metadata"),
        ({"messages": [USER], "max_tokens": None}, "max_tokens"),
        ({"messages": [USER], "model": ""}, "model"),
    ],
)
def test_malformed_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    assert field in _violations(**body)


def test_max_tokens_is_required() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_messages_body(orjson.dumps({"model": "m", "messages": [USER]}))

    assert [violation.field for violation in caught.value.violations] == ["max_tokens"]


def test_a_message_body_with_text_and_calls() -> None:
    completion = Completion(
        "Let me look.", "tool_calls", Usage(10, 7), (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
    )

    body = orjson.loads(message_body("msg_1", "gpt-4o", completion))

    assert body == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7},
    }


def test_a_call_whose_arguments_are_not_an_object_is_an_explicit_error() -> None:
    completion = Completion("", "tool_calls", None, (ToolCall("call_1", "f", "[1, 2]"),))

    with pytest.raises(Unavailable) as caught:
        message_body("msg_1", "gpt-4o", completion)

    assert caught.value.reason == "MODEL_OUTPUT_INVALID"


def _events(frames: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in frames.decode().split("\n\n"):
        if frame:
            name, data = frame.split("\n")
            events.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return events


def test_streamed_text_and_calls_are_blocks_opened_and_closed_in_turn() -> None:
    writer = EventWriter("msg_1", "gpt-4o")

    frames = (
        writer.start()
        + writer.delta("Let me ")
        + writer.delta("look.")
        + writer.tool_call(ToolCallDelta(0, "", id="call_1", name="get_weather"))
        + writer.tool_call(ToolCallDelta(0, '{"city":'))
        + writer.tool_call(ToolCallDelta(0, '"Paris"}'))
        + writer.tool_call(ToolCallDelta(1, '{"city":"Rome"}', id="call_2", name="get_weather"))
        + writer.finish("tool_calls", Usage(10, 7))
    )

    events = _events(frames)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(payload["type"] == name for name, payload in events)
    assert events[5][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
    }
    assert events[7][1]["delta"] == {"type": "input_json_delta", "partial_json": '"Paris"}'}
    assert events[10][1]["index"] == 2
    assert events[12][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 10, "output_tokens": 7},
    }


def test_a_failure_mid_stream_is_an_anthropic_error_event() -> None:
    [(name, payload)] = _events(error_event(Unavailable("openai broke off")))

    assert (name, payload) == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "openai broke off"}},
    )


@pytest.mark.parametrize(
    "turn",
    [
        {"role": "user", "content": ""},
        {"role": "user", "content": []},
        {"role": "assistant", "content": [{"type": "text", "text": ""}]},
    ],
)
def test_an_empty_turn_is_refused(turn: dict[str, Any]) -> None:
    assert _violations(messages=[USER, turn]) == ["messages[1].content"]


def test_lax_tool_fields_are_refused() -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x", "is_error": "yes"}
    assert "messages[2].content[0].is_error" in _violations(
        messages=[USER, CALLED, {"role": "user", "content": [result]}]
    )
    assert "tool_choice.name" in _violations(
        messages=[USER], tools=[WEATHER], tool_choice={"type": "auto", "name": "x"}
    )
