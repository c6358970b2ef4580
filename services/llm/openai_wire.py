"""OpenAI's Chat Completions wire format: request bodies in, completion and chunk bodies out.

Bodies are parsed strictly: an unknown field, a wrong type or an unsupported
feature is an INVALID_ARGUMENT naming the field, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from services.common import sse
from services.common.errors import MAX_QUOTED_CHARS, FieldViolation, InvalidArgument, quoted
from services.common.transcoding import json_object
from services.llm.chat import ChatMessage, ChatRequest, Completion, ImagePart, Part, Role, TextPart, Usage

_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_RESPONSE_FORMATS = {"text": False, "json_object": True, "json_schema": True}
_IMAGE_DETAILS = {"auto", "low", "high"}
MAX_STOP_SEQUENCES = 4
MAX_USER_CHARS = 256
_UNSUPPORTED = {
    "tools": "tool calling is not supported by this gateway",
    "tool_choice": "tool calling is not supported by this gateway",
    "functions": "function calling is not supported by this gateway",
    "function_call": "function calling is not supported by this gateway",
    "logprobs": "logprobs are not supported by this gateway",
    "top_logprobs": "logprobs are not supported by this gateway",
    "audio": "audio output is not supported by this gateway",
    "modalities": "only text output is supported by this gateway",
}
_KNOWN = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "response_format",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "parallel_tool_calls",
}


@dataclass(frozen=True, slots=True)
class ParsedBody:
    request: ChatRequest
    stream: bool
    # The stream ends with a usage chunk (`stream_options.include_usage`).
    include_usage: bool


class Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            # An unknown key is the caller's text, quoted short like any echoed value.
            shown = first.field if len(first.field) <= MAX_QUOTED_CHARS else quoted(first.field)
            raise InvalidArgument(f"{shown}: {first.description}", violations=tuple(self.items))


def _number(body: dict[str, Any], key: str, low: float, high: float, problems: Violations) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or not low <= value <= high:
        problems.add(key, f"must be a number from {low:g} to {high:g}")
        return None
    return float(value)


def _integer(body: dict[str, Any], key: str, low: int, problems: Violations) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int or value < low:
        problems.add(key, f"must be an integer of at least {low}")
        return None
    return value


def valid_image_url(url: str) -> bool:
    """An http(s) URL (the provider fetches it) or a base64 `data:image/...` URL."""
    return url.startswith(("https://", "http://")) or (url.startswith("data:image/") and ";base64," in url[:100])


def _image(raw: Any, where: str, problems: Violations) -> ImagePart | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        problems.add(where, 'must be {"url": "<http(s) or data: URL>"}')
        return None
    url: str = raw["url"]
    if not valid_image_url(url):
        problems.add(f"{where}.url", "must be an http(s) URL or a data:image/...;base64, URL")
        return None
    detail = raw.get("detail")
    if detail is not None and (not isinstance(detail, str) or detail not in _IMAGE_DETAILS):
        problems.add(f"{where}.detail", "must be auto, low or high")
        return None
    return ImagePart(url, detail)


def _content(raw: Any, where: str, problems: Violations) -> str | tuple[Part, ...] | None:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        problems.add(where, "must be a string or an array of content parts")
        return None
    parts: list[Part] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            parts.append(TextPart(item["text"]))
        elif kind == "image_url":
            image = _image(item.get("image_url"), f"{at}.image_url", problems)
            if image is not None:
                parts.append(image)
        else:
            problems.add(at, 'must be {"type": "text", "text": ...} or {"type": "image_url", "image_url": {...}}')
    return tuple(parts)


def _messages(raw: Any, problems: Violations) -> tuple[ChatMessage, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add("messages", "must be a non-empty array")
        return ()
    messages = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            problems.add(where, "must be an object")
            continue
        raw_role = item.get("role")
        role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            problems.add(f"{where}.role", "must be system, developer, user or assistant (tools are not supported)")
            continue
        if unknown := sorted(set(item) - {"role", "content", "name"}):
            problems.add(f"{where}.{unknown[0]}", "is not supported")
            continue
        content = _content(item.get("content"), f"{where}.content", problems)
        if content is not None:
            messages.append(ChatMessage(role, content))
    return tuple(messages)


def _stop(raw: Any, problems: Violations) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        problems.add("stop", "must be a string or an array of strings")
        return ()
    if len(values) > MAX_STOP_SEQUENCES:
        problems.add("stop", f"must have at most {MAX_STOP_SEQUENCES} sequences")
        return ()
    return tuple(values)


def _json_mode(raw: Any, problems: Violations) -> bool:
    if raw is None:
        return False
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in _RESPONSE_FORMATS:
        problems.add("response_format", 'must be {"type": "text" | "json_object" | "json_schema", ...}')
        return False
    return _RESPONSE_FORMATS[kind]


def parse_body(data: bytes) -> ParsedBody:
    """Parses and checks an OpenAI chat-completions request body."""
    body = json_object(data)
    problems = Violations()
    for key in sorted(set(body) - _KNOWN):
        problems.add(key, _UNSUPPORTED.get(key, "is not a chat-completions field this gateway accepts"))
    model = body.get("model", "")
    if not isinstance(model, str):
        problems.add("model", "must be a string")
        model = ""
    max_tokens = _integer(body, "max_completion_tokens", 1, problems)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, problems)
    # `True == 1` in Python: a boolean is not a count.
    if body.get("n", 1) != 1 or isinstance(body.get("n"), bool):
        problems.add("n", "only n = 1 is supported")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        problems.add("stream", "must be a boolean")
    options = body.get("stream_options")
    if options is not None and not (isinstance(options, dict) and set(options) <= {"include_usage"}):
        problems.add("stream_options", 'must be {"include_usage": true|false}')
    user = body.get("user")
    if user is not None and not (isinstance(user, str) and len(user) <= MAX_USER_CHARS):
        problems.add("user", f"must be a string of at most {MAX_USER_CHARS} characters")
    seed = body.get("seed")
    if seed is not None and type(seed) is not int:
        problems.add("seed", "must be an integer")
    request = ChatRequest(
        model=model,
        messages=_messages(body.get("messages"), problems),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0, 2, problems),
        top_p=_number(body, "top_p", 0, 1, problems),
        stop=_stop(body.get("stop"), problems),
        json_mode=_json_mode(body.get("response_format"), problems),
        seed=seed if type(seed) is int else None,
        presence_penalty=_number(body, "presence_penalty", -2, 2, problems),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2, problems),
    )
    problems.raise_if_any()
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ParsedBody(request, stream is True, include_usage)


# --- responses ------------------------------------------------------------------------------------


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_body(completion_id: str, created: int, model: str, completion: Completion) -> bytes:
    """An OpenAI `chat.completion` object."""
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": _usage(completion.usage) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
    )


class ChunkWriter:
    """Frames one streamed completion as OpenAI `chat.completion.chunk` SSE events."""

    def __init__(self, completion_id: str, created: int, model: str, *, include_usage: bool) -> None:
        self._head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self._include_usage = include_usage

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.event({**self._head, "choices": choices, **extra})

    def role(self) -> bytes:
        return self._event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])

    def delta(self, text: str) -> bytes:
        return self._event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def finish(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The finish chunk, the usage chunk when asked for, and the `[DONE]` sentinel."""
        frames = [self._event([{"index": 0, "delta": {}, "finish_reason": finish_reason}])]
        if self._include_usage:
            frames.append(self._event([], usage=_usage(usage)))
        frames.append(sse.DONE)
        return b"".join(frames)
