"""The strict OpenAI chat-completions body parser (`services.llm.openai_wire.parse_body`) and what reads its result.

The input is a `POST /v1/chat/completions` body.

- `parse_body` returns a well-typed `ParsedBody` or raises InvalidArgument naming the fields.
- Round trip: the request sent on as the OpenAI provider's payload, parsed again, is the same request.
- The guard and the Anthropic payload builder take any parsed request: the guard returns or raises
  InvalidArgument; the builder returns or raises ValueError (an image URL Anthropic cannot take).
"""

from __future__ import annotations

import contextlib

import orjson

from services.common.errors import InvalidArgument
from services.llm.chat import ChatRequest, ImagePart, TextPart
from services.llm.guard import GuardLimits, guard
from services.llm.openai_wire import MAX_STOP_SEQUENCES, ParsedBody, parse_body, valid_image_url
from services.llm.providers import anthropic, openai_compatible

_LIMITS = GuardLimits(max_messages=8, max_message_chars=200, max_tokens=1000, injection="flag")


def _check_number(value: float | None, low: float, high: float) -> None:
    assert value is None or (type(value) is float and low <= value <= high), value


def _check_request(request: ChatRequest) -> None:
    assert isinstance(request.model, str)
    assert request.messages
    for message in request.messages:
        assert message.role in ("system", "user", "assistant")
        if not isinstance(message.content, str):
            for part in message.content:
                if isinstance(part, TextPart):
                    assert isinstance(part.text, str)
                else:
                    assert isinstance(part, ImagePart) and valid_image_url(part.url)
                    assert part.detail in (None, "auto", "low", "high")
    assert request.max_tokens is None or (type(request.max_tokens) is int and request.max_tokens >= 1)
    _check_number(request.temperature, 0, 2)
    _check_number(request.top_p, 0, 1)
    _check_number(request.presence_penalty, -2, 2)
    _check_number(request.frequency_penalty, -2, 2)
    assert len(request.stop) <= MAX_STOP_SEQUENCES and all(isinstance(s, str) and s for s in request.stop)
    assert request.seed is None or type(request.seed) is int
    assert isinstance(request.json_mode, bool)


def _parse(data: bytes) -> ParsedBody | None:
    try:
        return parse_body(data)
    except InvalidArgument as error:
        assert error.reason in ("", "MALFORMED_BODY"), error.reason
        assert error.reason or error.violations
        return None


def TestOneInput(data: bytes) -> None:
    parsed = _parse(data)
    if parsed is None:
        return
    assert isinstance(parsed.stream, bool) and isinstance(parsed.include_usage, bool)
    request = parsed.request
    _check_request(request)
    resent = openai_compatible.request_payload(request, request.model)
    again = parse_body(orjson.dumps(resent)).request
    assert again == request, (again, request)
    with contextlib.suppress(InvalidArgument):
        guard(request, _LIMITS)
    with contextlib.suppress(ValueError):
        anthropic.request_payload(request, "claude", 1024)
