"""OpenAI's Chat Completions wire format: request bodies in, completion and chunk bodies out.

Bodies are parsed strictly: an unknown field, a wrong type or an unsupported
feature is an INVALID_ARGUMENT naming the field, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from services.common import sse
from services.common.transcoding import json_object
from services.llm import tools
from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    ImagePart,
    JsonSchema,
    Part,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from services.llm.structured import compile_schema
from services.llm.violations import Violations, refuse

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_RESPONSE_FORMATS = {"text": False, "json_object": True, "json_schema": True}
# What each role's message may carry besides `role` and `content`. An assistant message handed back as the
# SDK returned it also has `refusal`, `annotations`, `audio` and `function_call`, empty.
_MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "system": frozenset({"name"}),
    "user": frozenset({"name"}),
    "assistant": frozenset({"name", "tool_calls", "refusal", "annotations", "audio", "function_call"}),
    "tool": frozenset({"tool_call_id"}),
}
_EMPTY_WHEN_HANDED_BACK = ("refusal", "annotations", "audio", "function_call")
_TOOL_MODES = ("auto", "none", "required")
_IMAGE_DETAILS = {"auto", "low", "high"}
MAX_STOP_SEQUENCES = 4
MAX_USER_CHARS = 256
_UNSUPPORTED = {
    "functions": "the legacy function calling is not supported by this gateway: use tools",
    "function_call": "the legacy function calling is not supported by this gateway: use tool_choice",
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
    "tools",
    "tool_choice",
}


@dataclass(frozen=True, slots=True)
class ParsedBody:
    request: ChatRequest
    stream: bool
    # The stream ends with a usage chunk (`stream_options.include_usage`).
    include_usage: bool


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


def _tool_calls(raw: Any, where: str, problems: Violations) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not 0 < len(raw) <= tools.MAX_TOOL_CALLS:
        problems.add(where, f"must be an array of 1 to {tools.MAX_TOOL_CALLS} tool calls")
        return ()
    calls = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        function = item.get("function") if isinstance(item, dict) else None
        if (
            not isinstance(function, dict)
            or item.get("type", "function") != "function"
            or set(item)
            - {
                "id",
                "type",
                "function",
            }
        ):
            problems.add(at, 'must be {"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}')
            continue
        if not tools.valid_id(item.get("id")):
            problems.add(f"{at}.id", f"must be a string of 1 to {tools.MAX_TOOL_ID_CHARS} characters")
            continue
        if not tools.valid_name(function.get("name")):
            problems.add(f"{at}.function.name", tools.NAME_RULE)
            continue
        arguments = function.get("arguments", "")
        try:
            if not isinstance(arguments, str) or set(function) - {"name", "arguments"}:
                raise ValueError
            tools.arguments_object(arguments)
        except ValueError:
            problems.add(f"{at}.function.arguments", "must be the JSON text of an object")
            continue
        calls.append(ToolCall(item["id"], function["name"], arguments))
    return tuple(calls)


def _message(item: dict[str, Any], where: str, problems: Violations) -> ChatMessage | None:
    with problems.collecting():
        raw_role = item.get("role")
        role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            refuse(f"{where}.role", "must be system, developer, user, assistant or tool")
        if unknown := sorted(set(item) - {"role", "content"} - _MESSAGE_FIELDS[role]):
            refuse(f"{where}.{unknown[0]}", f"is not a field of a {role} message")
        if empty := [key for key in _EMPTY_WHEN_HANDED_BACK if item.get(key)]:
            refuse(f"{where}.{empty[0]}", "is not supported: it must be null or empty")
        if role == "tool" and not tools.valid_id(item.get("tool_call_id")):
            refuse(f"{where}.tool_call_id", "must name the tool call this message answers")
        calls = _tool_calls(item.get("tool_calls"), f"{where}.tool_calls", problems)
        raw_content = item.get("content")
        # An assistant message that only calls tools has no content.
        content = "" if raw_content is None and calls else _content(raw_content, f"{where}.content", problems)
        if content is None:
            return None
        if (
            role in ("tool", "assistant")
            and not isinstance(content, str)
            and any(isinstance(p, ImagePart) for p in content)
        ):
            refuse(f"{where}.content", f"a {role} message's content must be text")
        return ChatMessage(role, content, tool_calls=calls, tool_call_id=item.get("tool_call_id") or "")
    return None


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
        message = _message(item, where, problems)
        if message is not None:
            messages.append(message)
    return tuple(messages)


def _tool(raw: Any, where: str, problems: Violations) -> Tool | None:
    with problems.collecting():
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict) or raw.get("type") != "function" or set(raw) != {"type", "function"}:
            refuse(where, 'must be {"type": "function", "function": {"name": ..., "parameters": {...}}}')
        if unknown := sorted(set(function) - {"name", "description", "parameters", "strict"}):
            refuse(f"{where}.function.{unknown[0]}", "is not a field of a function")
        name, description = function.get("name"), function.get("description")
        if not tools.valid_name(name):
            refuse(f"{where}.function.name", tools.NAME_RULE)
        if not tools.valid_description(description):
            refuse(f"{where}.function.description", tools.DESCRIPTION_RULE)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or tools.too_deep(parameters):
            refuse(f"{where}.function.parameters", f"must be a JSON Schema object of at most {tools.MAX_DEPTH} levels")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            refuse(f"{where}.function.strict", "must be a boolean")
        return Tool(str(name), parameters, description, strict)
    return None


def _tools(raw: Any, problems: Violations) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not 0 < len(raw) <= tools.MAX_TOOLS:
        problems.add("tools", f"must be an array of 1 to {tools.MAX_TOOLS} tools")
        return ()
    parsed = [tool for index, item in enumerate(raw) if (tool := _tool(item, f"tools[{index}]", problems))]
    if len({tool.name for tool in parsed}) < len(parsed):
        problems.add("tools", "must not name a function twice")
    return tuple(parsed)


def _tool_choice(raw: Any, offered: tuple[Tool, ...], problems: Violations) -> ToolChoice | None:
    if raw is None:
        return None
    if not offered:
        problems.add("tool_choice", "is only allowed when tools are given")
        return None
    if isinstance(raw, str) and raw in _TOOL_MODES:
        return ToolChoice(raw)  # type: ignore[arg-type]
    function = raw.get("function") if isinstance(raw, dict) and raw.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        problems.add("tool_choice", 'must be "auto", "none", "required" or {"type": "function", "function": {"name"}}')
        return None
    if name not in {tool.name for tool in offered}:
        problems.add("tool_choice.function.name", "must name one of the tools")
        return None
    return ToolChoice("function", name)


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


def _json_schema(raw: Any, problems: Violations) -> JsonSchema | None:
    """The schema of `response_format: {"type": "json_schema", "json_schema": {...}}`; None for other formats
    and for a json_schema format without a schema (any object then)."""
    if not isinstance(raw, dict) or raw.get("type") != "json_schema":
        return None
    where = "response_format.json_schema"
    with problems.collecting():
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or set(spec) - {"name", "schema", "strict", "description"}:
            refuse(where, 'must be {"name": ..., "schema": {...}, "strict": ..., "description": ...}')
        if not tools.valid_name(spec.get("name")):
            refuse(f"{where}.name", tools.NAME_RULE)
        schema, strict, description = spec.get("schema"), spec.get("strict"), spec.get("description")
        if strict is not None and not isinstance(strict, bool):
            refuse(f"{where}.strict", "must be a boolean")
        if description is not None and not isinstance(description, str):
            refuse(f"{where}.description", "must be a string")
        if schema is None:
            return None
        if not isinstance(schema, dict):
            refuse(f"{where}.schema", "must be a JSON Schema object")
        try:
            compile_schema(schema)
        except ValueError as error:
            refuse(f"{where}.schema", str(error))
        return JsonSchema(spec["name"], schema, description, strict)
    return None


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
    max_tokens = problems.integer(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = problems.integer(body, "max_tokens", 1)
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
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        problems.add("parallel_tool_calls", "must be a boolean")
    offered = _tools(body.get("tools"), problems)
    request = ChatRequest(
        model=model,
        messages=_messages(body.get("messages"), problems),
        max_tokens=max_tokens,
        temperature=problems.number(body, "temperature", 0, 2),
        top_p=problems.number(body, "top_p", 0, 1),
        stop=_stop(body.get("stop"), problems),
        json_mode=_json_mode(body.get("response_format"), problems),
        json_schema=_json_schema(body.get("response_format"), problems),
        seed=seed if type(seed) is int else None,
        presence_penalty=problems.number(body, "presence_penalty", -2, 2),
        frequency_penalty=problems.number(body, "frequency_penalty", -2, 2),
        tools=offered,
        tool_choice=_tool_choice(body.get("tool_choice"), offered, problems),
        parallel_tool_calls=parallel if isinstance(parallel, bool) else None,
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


def tool_call_payload(call: ToolCall) -> dict[str, Any]:
    """One call in OpenAI's `tool_calls` shape."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _answer(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text, "refusal": None}
    if completion.tool_calls:
        message["content"] = completion.text or None
        message["tool_calls"] = [tool_call_payload(call) for call in completion.tool_calls]
    return message


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
                    "message": _answer(completion),
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
        self._head: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        # Asked for usage, every chunk has the field, null but in the last one (as OpenAI sends them).
        if include_usage:
            self._head["usage"] = None
        self._include_usage = include_usage

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.event({**self._head, "choices": choices, **extra})

    def start(self, *, calls_first: bool = False) -> bytes:
        """The first chunk: the assistant's role, with null content when the answer opens with a tool call."""
        delta = {"role": "assistant", "content": None if calls_first else ""}
        return self._event([{"index": 0, "delta": delta, "finish_reason": None}])

    def delta(self, text: str) -> bytes:
        return self._event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        call: dict[str, Any] = {"index": delta.index}
        if delta.id is not None:
            call.update(id=delta.id, type="function")
        function: dict[str, str] = {"arguments": delta.arguments}
        if delta.name is not None:
            function["name"] = delta.name
        call["function"] = function
        return self._event([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])

    def finish(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The finish chunk, the usage chunk when asked for, and the `[DONE]` sentinel."""
        frames = [self._event([{"index": 0, "delta": {}, "finish_reason": finish_reason}])]
        if self._include_usage:
            frames.append(self._event([], usage=_usage(usage)))
        frames.append(sse.DONE)
        return b"".join(frames)
