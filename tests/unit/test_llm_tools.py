"""Tool calling and structured output in OpenAI's wire format, and how both reach Anthropic."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.common.errors import InvalidArgument
from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    JsonSchema,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from services.llm.openai_wire import ChunkWriter, completion_body, parse_body
from services.llm.providers import anthropic, openai_compatible
from services.llm.structured import MAX_SCHEMA_DEPTH, answer_problem

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER = {"role": "user", "content": "Weather in Paris?"}
CALLED = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    ],
}
ANSWERED = {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
}


def _parse(body: dict[str, Any]) -> ChatRequest:
    return parse_body(orjson.dumps(body)).request


def _violations(body: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        _parse(body)
    return [violation.field for violation in caught.value.violations]


def test_tools_choices_and_a_tool_round_trip_are_read() -> None:
    request = _parse(
        {
            "messages": [USER, CALLED, ANSWERED],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        }
    )

    assert request.tools == (Tool("get_weather", WEATHER["function"]["parameters"], "The weather in a city"),)  # type: ignore[index]
    assert request.tool_choice == ToolChoice("function", "get_weather")
    assert request.parallel_tool_calls is False
    assert request.messages[1] == ChatMessage("assistant", "", (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),))
    assert request.messages[2] == ChatMessage("tool", "18 C, sunny", tool_call_id="call_1")


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes(choice: str) -> None:
    assert _parse({"messages": [USER], "tools": [WEATHER], "tool_choice": choice}).tool_choice == ToolChoice(choice)  # type: ignore[arg-type]


def test_an_assistant_message_handed_back_as_the_sdk_returned_it_is_taken() -> None:
    handed_back = {**CALLED, "refusal": None, "annotations": [], "audio": None, "function_call": None}

    request = _parse({"messages": [USER, handed_back, ANSWERED], "tools": [WEATHER]})

    assert request.messages[1].tool_calls[0].name == "get_weather"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [USER], "tools": []}, "tools"),
        ({"messages": [USER], "tools": [WEATHER, WEATHER]}, "tools"),
        ({"messages": [USER], "tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
        ({"messages": [USER], "tools": [{"type": "code_interpreter"}]}, "tools[0]"),
        (
            {"messages": [USER], "tools": [{**WEATHER, "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        (
            {"messages": [USER], "tools": [{**WEATHER, "function": {"name": "f", "extra": 1}}]},
            "tools[0].function.extra",
        ),
        ({"messages": [USER], "tool_choice": "auto"}, "tool_choice"),
        ({"messages": [USER], "tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
        (
            {"messages": [USER], "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice.function.name",
        ),
        ({"messages": [USER], "tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]}, "messages[0].tool_call_id"),
        ({"messages": [{**CALLED, "refusal": "no"}]}, "messages[0].refusal"),
        (
            {
                "messages": [
                    {
                        **CALLED,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [{**CALLED, "tool_calls": [{"id": "", "type": "function", "function": {"name": "f"}}]}]},
            "messages[0].tool_calls[0].id",
        ),
        ({"messages": [{**CALLED, "tool_calls": []}]}, "messages[0].tool_calls"),
        ({"messages": [USER], "functions": []}, "functions"),
        (
            {"messages": [USER], "response_format": {"type": "json_schema", "json_schema": {"schema": PERSON}}},
            "response_format.json_schema.name",
        ),
        (
            {
                "messages": [USER],
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": 5}}},
            },
            "response_format.json_schema.schema",
        ),
        (
            {
                "messages": [USER],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "p", "schema": {"$ref": "https://example.com/s.json"}},
                },
            },
            "response_format.json_schema.schema",
        ),
    ],
)
def test_malformed_tool_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    assert field in _violations(body)


def test_a_schema_nested_too_deep_is_refused_before_it_is_compiled() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(MAX_SCHEMA_DEPTH + 1):
        schema = {"type": "object", "properties": {"a": schema}}
    body = {
        "messages": [USER],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    }

    assert _violations(body) == ["response_format.json_schema.schema"]


def test_json_schema_is_read_and_checks_answers() -> None:
    request = _parse(
        {
            "messages": [USER],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": PERSON, "strict": True},
            },
        }
    )

    assert request.json_mode and request.json_schema == JsonSchema("person", PERSON, None, True)
    assert answer_problem(request, '{"name": "Ada", "age": 36}', "stop") is None
    assert answer_problem(request, '{"name": "Ada", "age": "old"}', "stop") == (
        'the model\'s answer does not match the schema at age: "old" is not of type "integer"'
    )
    assert answer_problem(request, "Ada, 36", "stop") == "the model's answer is not JSON"
    # Cut short by max_tokens: the finish reason says so, and the text goes on as it is.
    assert answer_problem(request, '{"name": "A', "length") is None


def test_json_object_answers_must_be_objects() -> None:
    request = _parse({"messages": [USER], "response_format": {"type": "json_object"}})

    assert answer_problem(request, '{"a": 1}', "stop") is None
    assert answer_problem(request, "[1, 2]", "stop") == "the model's answer is not a JSON object"
    assert answer_problem(_parse({"messages": [USER]}), "not json", "stop") is None


def test_openai_protocol_payloads_carry_tools_as_the_caller_sent_them() -> None:
    body = {
        "messages": [USER, CALLED, ANSWERED],
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": True,
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
    }

    payload = openai_compatible.request_payload(_parse(body), "gpt-4o")

    assert payload["messages"][1:] == [CALLED, ANSWERED]
    assert payload["tools"] == [WEATHER]
    assert (payload["tool_choice"], payload["parallel_tool_calls"]) == ("required", True)
    assert payload["response_format"] == body["response_format"]


def test_anthropic_payloads_translate_tools_calls_and_results() -> None:
    second = {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}
    called_twice = {**CALLED, "content": "Let me look.", "tool_calls": [*CALLED["tool_calls"], second]}  # type: ignore[list-item]
    body = {
        "messages": [USER, called_twice, ANSWERED, {"role": "tool", "tool_call_id": "call_2", "content": "21 C"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }

    payload = anthropic.request_payload(_parse(body), "claude", 1024)

    assert payload["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
            "description": "The weather in a city",
        }
    ]
    assert payload["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert payload["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "21 C"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_anthropic_tool_choices(choice: Any, expected: dict[str, Any]) -> None:
    payload = anthropic.request_payload(_parse({"messages": [USER], "tools": [WEATHER], "tool_choice": choice}), "c", 9)

    assert payload["tool_choice"] == expected


def test_a_json_schema_is_anthropics_forced_tool() -> None:
    request = _parse(
        {
            "messages": [USER],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
        }
    )

    payload = anthropic.request_payload(request, "claude", 1024)

    assert payload["tools"][0]["name"] == "person" and payload["tools"][0]["input_schema"] == PERSON
    assert payload["tool_choice"] == {"type": "tool", "name": "person"}
    assert "system" not in payload


def test_anthropic_answers_through_the_forced_tool_are_text() -> None:
    request = _parse({"messages": [USER], "response_format": {"type": "json_object"}})
    answer = anthropic.answer_tool(request)
    body = {
        "content": [{"type": "tool_use", "id": "toolu_1", "name": anthropic.ANSWER_TOOL, "input": {"ok": True}}],
        "stop_reason": "tool_use",
    }

    assert anthropic.answer_of(body, answer) == ('{"ok":true}', ())
    assert anthropic.answered_reason("tool_use", answer) == "stop"
    assert anthropic.answered_reason("tool_use", None) == "tool_calls"


def test_a_completion_with_calls_has_null_content_and_its_calls() -> None:
    completion = Completion("", "tool_calls", Usage(3, 4), (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),))

    body = orjson.loads(completion_body("chatcmpl-1", 1, "gpt-4o", completion))

    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == CALLED["tool_calls"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_streamed_calls_are_openai_tool_call_chunks() -> None:
    writer = ChunkWriter("chatcmpl-1", 1, "gpt-4o", include_usage=False)

    first = orjson.loads(writer.tool_call(ToolCallDelta(0, "", id="call_1", name="get_weather"))[6:])
    piece = orjson.loads(writer.tool_call(ToolCallDelta(0, '{"ci'))[6:])

    assert first["choices"][0]["delta"] == {
        "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"arguments": "", "name": "get_weather"}}
        ]
    }
    assert piece["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}
