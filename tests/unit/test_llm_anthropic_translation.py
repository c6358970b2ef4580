"""A gateway request becomes a Messages API body: system prompt, alternating turns, images, sampling."""

from __future__ import annotations

from typing import Any

import pytest

from services.llm.chat import ChatMessage, ChatRequest, ImagePart, TextPart, Tool
from services.llm.providers.anthropic import ANSWER_TOOL, JSON_INSTRUCTION, image_block, request_payload

MODEL = "claude-haiku-4-5"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def chat(*messages: ChatMessage, **options: Any) -> ChatRequest:
    return ChatRequest(model="", messages=messages, **options)


def user(content: str | tuple[TextPart | ImagePart, ...]) -> ChatMessage:
    return ChatMessage("user", content)


def test_a_plain_request() -> None:
    payload = request_payload(chat(user("Hi")), MODEL, 4096)

    assert payload == {"model": MODEL, "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}]}


def test_system_messages_anywhere_become_the_system_prompt() -> None:
    request = chat(
        ChatMessage("system", "Be brief."),
        user("Hi"),
        ChatMessage("system", (TextPart("Answer "), TextPart("in French."))),
        ChatMessage("assistant", "Salut"),
    )

    payload = request_payload(request, MODEL, 4096)

    assert payload["system"] == "Be brief.\n\nAnswer in French."
    assert [turn["role"] for turn in payload["messages"]] == ["user", "assistant"]


def test_runs_of_one_role_merge_into_one_turn() -> None:
    request = chat(
        user("First"),
        ChatMessage("system", "Be brief."),
        user((TextPart("Second"),)),
        ChatMessage("assistant", "A"),
        ChatMessage("assistant", "B"),
        user("Third"),
    )

    messages = request_payload(request, MODEL, 4096)["messages"]

    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "First"}, {"type": "text", "text": "Second"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "user", "content": "Third"},
    ]


def test_empty_text_is_left_out_of_merged_turns() -> None:
    messages = request_payload(chat(user(""), user("Hi"), user((TextPart(""),))), MODEL, 4096)["messages"]

    assert messages == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_a_data_url_becomes_a_base64_image_block_after_the_text() -> None:
    request = chat(user((TextPart("What is this?"), ImagePart(f"data:image/png;base64,{PNG}", detail="low"))))

    content = request_payload(request, MODEL, 4096)["messages"][0]["content"]

    assert content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]


def test_an_http_url_becomes_a_url_image_block() -> None:
    assert image_block(ImagePart("https://example.com/cat.jpg")) == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


@pytest.mark.parametrize(
    "url",
    ["data:image/png,%89PNG", "data:;base64,AAAA", "data:image/png;base64", "ftp://example.com/cat.png", "cat.png"],
)
def test_other_image_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="image"):
        image_block(ImagePart(url))


def test_max_tokens_is_the_requests_or_the_default() -> None:
    assert request_payload(chat(user("Hi")), MODEL, 1024)["max_tokens"] == 1024
    assert request_payload(chat(user("Hi"), max_tokens=50), MODEL, 1024)["max_tokens"] == 50


def test_sampling_options_and_stop_sequences() -> None:
    request = chat(user("Hi"), temperature=0.2, stop=("END", "\n\n"), seed=7, presence_penalty=0.5)

    payload = request_payload(request, MODEL, 4096)

    assert payload["temperature"] == 0.2
    assert payload["stop_sequences"] == ["END", "\n\n"]
    # Anthropic has no seed or penalties.
    assert not {"seed", "presence_penalty", "frequency_penalty", "stop"} & payload.keys()


def test_top_p_is_sent_only_without_a_temperature() -> None:
    assert request_payload(chat(user("Hi"), top_p=0.9), MODEL, 4096)["top_p"] == 0.9
    payload = request_payload(chat(user("Hi"), temperature=0.2, top_p=0.9), MODEL, 4096)
    assert (payload["temperature"], "top_p" in payload) == (0.2, False)


def test_json_mode_is_a_forced_answer_tool_and_in_words_next_to_the_callers_tools() -> None:
    alone = request_payload(chat(ChatMessage("system", "Be brief."), user("Hi"), json_mode=True), MODEL, 4096)
    weather = Tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    with_tools = request_payload(chat(user("Hi"), json_mode=True, tools=(weather,)), MODEL, 4096)

    assert alone["system"] == "Be brief."
    assert alone["tools"] == [
        {"name": ANSWER_TOOL, "description": alone["tools"][0]["description"], "input_schema": {"type": "object"}}
    ]
    assert alone["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL}
    assert with_tools["system"] == JSON_INSTRUCTION
    assert with_tools["tools"] == [{"name": "get_weather", "input_schema": weather.parameters}]
    assert "tool_choice" not in with_tools
