"""The strict OpenAI chat-completions body parser (`services.llm.openai_wire.parse_body`) and what reads its result.

The input is a `POST /v1/chat/completions` body.

- `parse_body` returns a well-typed `ParsedBody` or raises InvalidArgument naming the fields: tools, tool
  choices, assistant tool calls and tool results included, and a json_schema format only with a schema that
  compiles.
- Round trip: the request sent on as the OpenAI provider's payload, parsed again, is the same request (a tool
  result's or a calling assistant's content goes as its text).
- Both providers' payloads build from any parsed request (the Anthropic one may refuse an image URL with
  ValueError) and serialise with orjson. The Anthropic one alternates user and assistant turns and, when the
  request answers each call right after the assistant message that made it, puts every tool_result first in
  the turn right after its tool_use.
- The guard returns or raises InvalidArgument; `answer_problem` judges any text as an answer to the request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from services.common.errors import InvalidArgument
from services.llm import tools
from services.llm.chat import ChatMessage, ChatRequest, ImagePart, TextPart
from services.llm.guard import GuardLimits, guard
from services.llm.openai_wire import MAX_STOP_SEQUENCES, ParsedBody, parse_body, valid_image_url
from services.llm.providers import anthropic, openai_compatible
from services.llm.structured import answer_problem, compile_schema

T = TypeVar("T")

_LIMITS = GuardLimits(max_messages=8, max_message_chars=200, max_tokens=1000, injection="flag")
_TOOL_MODES = ("auto", "none", "required", "function")
# Texts judged as answers per input: the body itself and the first few messages' texts.
_ANSWERS_JUDGED = 3


def _check_number(value: float | None, low: float, high: float) -> None:
    assert value is None or (type(value) is float and low <= value <= high), value


def _check_message(message: ChatMessage) -> None:
    assert message.role in ("system", "user", "assistant", "tool"), message.role
    for part in () if isinstance(message.content, str) else message.content:
        if isinstance(part, TextPart):
            assert isinstance(part.text, str)
        else:
            assert isinstance(part, ImagePart) and part.url.startswith(("https://", "http://", "data:image/"))
            assert part.detail in (None, "auto", "low", "high")
            assert message.role != "tool", "a tool result with an image"
    assert not message.tool_calls or message.role == "assistant", message
    for call in message.tool_calls:
        assert tools.valid_id(call.id) and tools.valid_name(call.name), call
        assert isinstance(tools.arguments_object(call.arguments), dict)
    assert tools.valid_id(message.tool_call_id) if message.role == "tool" else message.tool_call_id == ""


def check_tools(request: ChatRequest) -> None:
    """What any wire format's parser promises of a request's messages, tools and tool choice."""
    for message in request.messages:
        _check_message(message)
    names = [tool.name for tool in request.tools]
    assert len(set(names)) == len(names) <= tools.MAX_TOOLS and all(tools.valid_name(name) for name in names)
    for tool in request.tools:
        assert isinstance(tool.parameters, dict) and not tools.too_deep(tool.parameters), tool
        assert tool.description is None or len(tool.description) <= tools.MAX_DESCRIPTION_CHARS
        assert tool.strict in (None, True, False)
    choice = request.tool_choice
    if choice is not None:
        assert request.tools and choice.mode in _TOOL_MODES, choice
        assert choice.name in names if choice.mode == "function" else choice.name == "", choice
    assert request.parallel_tool_calls in (None, True, False)
    if request.json_schema is not None:
        assert request.json_mode and tools.valid_name(request.json_schema.name), request.json_schema
        assert isinstance(request.json_schema.schema, dict)
        compile_schema(request.json_schema.schema)


def _check_request(request: ChatRequest) -> None:
    assert isinstance(request.model, str) and request.messages
    check_tools(request)
    for message in request.messages:
        for part in () if isinstance(message.content, str) else message.content:
            assert not isinstance(part, ImagePart) or valid_image_url(part.url), part
    assert request.max_tokens is None or (type(request.max_tokens) is int and request.max_tokens >= 1)
    _check_number(request.temperature, 0, 2)
    _check_number(request.top_p, 0, 1)
    _check_number(request.presence_penalty, -2, 2)
    _check_number(request.frequency_penalty, -2, 2)
    assert len(request.stop) <= MAX_STOP_SEQUENCES and all(isinstance(s, str) and s for s in request.stop)
    assert request.seed is None or type(request.seed) is int
    assert isinstance(request.json_mode, bool)


def _blocks(turn: dict[str, Any]) -> list[dict[str, Any]]:
    content = turn["content"]
    return [] if isinstance(content, str) else list(content)


def answers_each_call_at_once(request: ChatRequest) -> bool:
    """Whether every tool message answers a call of the last user or assistant message before it."""
    calls: set[str] = set()
    for message in request.messages:
        if message.role == "tool" and message.tool_call_id not in calls:
            return False
        if message.role in ("user", "assistant"):
            calls = {call.id for call in message.tool_calls}
    return True


def _check_conversation(request: ChatRequest, turns: list[dict[str, Any]]) -> None:
    roles = [turn["role"] for turn in turns]
    assert set(roles) <= {"user", "assistant"}, roles
    assert all(role != after for role, after in itertools.pairwise(roles)), roles
    if not answers_each_call_at_once(request):
        return
    previous: list[dict[str, Any]] = []
    for turn in turns:
        blocks = _blocks(turn)
        answered = [block["tool_use_id"] for block in blocks if block["type"] == "tool_result"]
        if answered:
            assert turn["role"] == "user", turn
            asked = {block["id"] for block in previous if block["type"] == "tool_use"}
            assert set(answered) <= asked, (answered, asked)
            assert all(block["type"] == "tool_result" for block in blocks[: len(answered)]), blocks
        previous = blocks


def anthropic_payload(request: ChatRequest) -> dict[str, Any] | None:
    """The Anthropic payload, checked; None when it refuses the request (only an image URL may make it)."""
    try:
        payload = anthropic.request_payload(request, "claude", 1024)
    except ValueError:
        return None
    orjson.dumps(payload)
    _check_conversation(request, payload["messages"])
    return payload


def openai_payload(request: ChatRequest) -> dict[str, Any] | None:
    """The OpenAI payload, serialised; None when it refuses the request with ValueError."""
    try:
        payload = openai_compatible.request_payload(request, request.model)
    except ValueError:
        return None
    orjson.dumps(payload)
    return payload


def check_guard_and_answers(request: ChatRequest, data: bytes) -> None:
    """The guard returns or raises InvalidArgument; `answer_problem` on texts from the input gives None or
    words, and asks nothing of an answer cut short."""
    with contextlib.suppress(InvalidArgument):
        guard(request, _LIMITS)
    texts = [data.decode("utf-8", "replace"), *(message.text for message in request.messages[:_ANSWERS_JUDGED])]
    for text in texts:
        for reason in ("stop", "tool_calls"):
            problem = answer_problem(request, text, reason)
            assert problem is None or (isinstance(problem, str) and problem), problem
        assert answer_problem(request, text, "length") is None
    if request.json_mode and request.json_schema is None:
        assert answer_problem(request, "{}", "stop") is None


def _as_sent(message: ChatMessage) -> ChatMessage:
    # OpenAI's tool messages and calling assistant messages carry text only.
    if message.role == "tool" or message.tool_calls:
        return dataclasses.replace(message, content=message.text)
    return message


def parsed_or_refused(parse: Callable[[bytes], T], data: bytes) -> T | None:
    """What a strict body parser made of the input, or None when it refused it as it must: an InvalidArgument
    that names the fields at fault or says the body is not a JSON object."""
    try:
        return parse(data)
    except InvalidArgument as error:
        assert error.reason in ("", "MALFORMED_BODY"), error.reason
        assert error.reason or error.violations
        return None


def _parse(data: bytes) -> ParsedBody | None:
    return parsed_or_refused(parse_body, data)


def TestOneInput(data: bytes) -> None:
    parsed = _parse(data)
    if parsed is None:
        return
    assert isinstance(parsed.stream, bool) and isinstance(parsed.include_usage, bool)
    request = parsed.request
    _check_request(request)
    anthropic_payload(request)
    resent = openai_payload(request)
    if resent is not None:
        again = parse_body(orjson.dumps(resent)).request
        expected = dataclasses.replace(request, messages=tuple(_as_sent(message) for message in request.messages))
        assert again == expected, (again, expected)
    check_guard_and_answers(request, data)
