"""OpenAI request bodies parsed strictly, and completion and chunk bodies in OpenAI's exact shape."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from services.common.errors import InvalidArgument
from services.llm.chat import ChatMessage, Completion, ImagePart, TextPart, Usage
from services.llm.openai_wire import ChunkWriter, completion_body, parse_body

# What @github/spark 0.46.15's spark.llm(prompt, "gpt-4o-mini", true) posts to /_spark/llm.
SPARK_RUNTIME_BODY = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "List three colours as JSON"},
    ],
    "temperature": 1.0,
    "top_p": 1.0,
    "max_tokens": 1000,
    "model": "openai/gpt-4o-mini",
    "response_format": {"type": "json_object"},
}


def _parse(body: Any) -> Any:
    return parse_body(json.dumps(body).encode())


def test_the_spark_runtime_body_parses() -> None:
    parsed = _parse(SPARK_RUNTIME_BODY)
    request = parsed.request
    assert (request.model, request.max_tokens, request.temperature, request.json_mode) == (
        "openai/gpt-4o-mini",
        1000,
        1.0,
        True,
    )
    assert request.messages[0] == ChatMessage("system", "You are a helpful assistant.")
    assert not parsed.stream
    assert not _parse({**SPARK_RUNTIME_BODY, "response_format": {"type": "text"}}).request.json_mode


def test_content_parts_images_stream_flags_and_developer_role() -> None:
    parsed = _parse(
        {
            "model": "gpt-4o",
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 50,
            "stop": "END",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                        },
                    ],
                },
            ],
        }
    )
    assert parsed.stream and parsed.include_usage
    request = parsed.request
    assert request.max_tokens == 50 and request.stop == ("END",)
    assert request.messages[0].role == "system"
    assert request.messages[1].content == (
        TextPart("What is this?"),
        ImagePart("data:image/png;base64,iVBORw0KGgo=", "low"),
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "tools": []}, "tools"),
        ({"messages": [{"role": "user", "content": "x"}], "temprature": 1}, "temprature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": True}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "n": True}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ({"messages": [{"role": "user", "content": "x"}], "model": 4}, "model"),
        ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}, "response_format"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
    ],
)
def test_malformed_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _parse(body)
    assert field in [v.field for v in caught.value.violations]


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(InvalidArgument, match="JSON"):
        parse_body(raw)


def test_completion_body_is_openais_shape() -> None:
    body = orjson.loads(completion_body("chatcmpl-1", 1700000000, "gpt-4o", Completion("Hi", "stop", Usage(3, 1))))
    assert body == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def test_chunks_end_with_finish_usage_and_done() -> None:
    writer = ChunkWriter("chatcmpl-2", 1, "m", include_usage=True)
    frames = (writer.start() + writer.delta("Hel") + writer.finish("length", Usage(2, 5))).decode()
    events = [e.removeprefix("data: ") for e in frames.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hel"}
    assert chunks[2]["choices"][0]["finish_reason"] == "length"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 7
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-2" for c in chunks)
    without_usage = ChunkWriter("c", 1, "m", include_usage=False).finish("stop", Usage(1, 1)).decode()
    assert "usage" not in without_usage


def test_an_unknown_key_is_echoed_as_a_short_prefix() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_body(json.dumps({"messages": [{"role": "user", "content": "hi"}], "k" * 200_000: 1}).encode())
    assert (
        caught.value.message
        == f"{'k' * 64!r}\u2026 (200000 characters): is not a chat-completions field this gateway accepts"
    )
