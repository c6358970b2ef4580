"""The Anthropic Messages API body parser (`services.llm.anthropic_wire.parse_messages_body`) and what reads its
result.

The input is a `POST /v1/messages` body.

- `parse_messages_body` returns a well-typed `ParsedMessages` or raises InvalidArgument naming the fields.
- Both providers' payloads build from any parsed request (the Anthropic one may refuse an image with
  ValueError) and serialise with orjson; the Anthropic one alternates user and assistant turns and, when the
  body answers each call in the turn right after the one that made it, puts every tool_result first in the
  turn right after its tool_use (`fuzz.chat_body` checks all three).
- Round trip: the Anthropic payload, itself a Messages body, parses and is sent on unchanged (when it is one that
  Anthropic takes: no empty turns, each tool_result answering the turn before it).
- The guard returns or raises InvalidArgument; `answer_problem` judges any text as an answer to the request.
"""

from __future__ import annotations

from typing import Any

import orjson

from fuzz.chat_body import (
    answers_each_call_at_once,
    anthropic_payload,
    check_guard_and_answers,
    check_tools,
    openai_payload,
    parsed_or_refused,
)
from services.llm.anthropic_wire import OUTPUT_SCHEMA_NAME, ParsedMessages, parse_messages_body
from services.llm.chat import ChatRequest
from services.llm.openai_wire import MAX_STOP_SEQUENCES


def _check_request(request: ChatRequest) -> None:
    assert isinstance(request.model, str) and request.model
    assert type(request.max_tokens) is int and request.max_tokens >= 1
    for value in (request.temperature, request.top_p):
        assert value is None or (type(value) is float and 0 <= value <= 1), value
    assert len(request.stop) <= MAX_STOP_SEQUENCES and all(isinstance(s, str) and s for s in request.stop)
    assert (request.seed, request.presence_penalty, request.frequency_penalty) == (None, None, None)
    # A body's system prompt is one message, ahead of the conversation.
    assert all(message.role != "system" for message in request.messages[1:]), request.messages
    assert request.parallel_tool_calls in (None, False)
    assert request.json_mode is (request.json_schema is not None)
    assert request.json_schema is None or request.json_schema.name == OUTPUT_SCHEMA_NAME
    assert all(tool.parameters.get("type") == "object" and tool.strict is None for tool in request.tools)
    check_tools(request)


def _check_resent(payload: dict[str, Any]) -> None:
    turns = payload["messages"]
    # Anthropic refuses a turn with empty content ("" or no blocks, as after empty text blocks are left out),
    # and an empty conversation; reading such a payload again drops what is empty.
    if not turns or not all(turn["content"] for turn in turns):
        return
    again = parse_messages_body(orjson.dumps(payload)).request
    assert anthropic_payload(again) == payload, (anthropic_payload(again), payload)


def _parse(data: bytes) -> ParsedMessages | None:
    return parsed_or_refused(parse_messages_body, data)


def TestOneInput(data: bytes) -> None:
    parsed = _parse(data)
    if parsed is None:
        return
    assert isinstance(parsed.stream, bool)
    request = parsed.request
    _check_request(request)
    openai_payload(request)
    payload = anthropic_payload(request)
    # Anthropic refuses a tool_result that does not answer the turn before it; such a body is only passed on.
    if payload is not None and answers_each_call_at_once(request):
        _check_resent(payload)
    check_guard_and_answers(request, data)
