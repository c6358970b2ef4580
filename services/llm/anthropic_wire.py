"""Anthropic's Messages API wire format (`POST /v1/messages`): request bodies in, messages and events out.

A body becomes the gateway's own ChatRequest, so every model the gateway serves answers it, through the same
guard, budget, cache and usage as chat completions: Anthropic models get it back as Anthropic's shape, and
OpenAI-protocol ones as OpenAI's. Parsing is strict: an unknown field or an unsupported feature (extended
thinking, server tools, `top_k`) is an INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from services.common.errors import DomainError, Unavailable, contract_of
from services.common.transcoding import json_object
from services.llm import tools
from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    FinishReason,
    ImagePart,
    JsonSchema,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolMode,
    Usage,
)
from services.llm.openai_wire import MAX_STOP_SEQUENCES, valid_image_url
from services.llm.providers.anthropic import tool_use_block
from services.llm.structured import compile_schema
from services.llm.violations import Violations, refuse

_KNOWN = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "temperature",
    "top_p",
    "stop_sequences",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "output_config",
    "service_tier",
}
_UNSUPPORTED = {
    "thinking": "extended thinking is not supported by this gateway",
    "top_k": "top_k is not supported by this gateway (not every provider has it)",
    "mcp_servers": "MCP servers are not supported by this gateway",
    "container": "containers are not supported by this gateway",
}
_TOOL_MODES: dict[str, ToolMode] = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}
_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Fields a block may carry that change nothing here (prompt-caching hints, citations of a text block).
_IGNORED_BLOCK_FIELDS = frozenset({"cache_control", "citations"})
# The name of the schema of `output_config.format`, which has none of its own.
OUTPUT_SCHEMA_NAME = "output"


@dataclass(frozen=True, slots=True)
class ParsedMessages:
    request: ChatRequest
    stream: bool


def _fields(block: dict[str, Any], allowed: set[str], where: str) -> None:
    if unknown := sorted(set(block) - allowed - _IGNORED_BLOCK_FIELDS):
        refuse(f"{where}.{unknown[0]}", f"is not a field of a {block.get('type')} block")


def _text(block: dict[str, Any], where: str) -> str:
    _fields(block, {"type", "text"}, where)
    if not isinstance(block.get("text"), str):
        refuse(f"{where}.text", "must be a string")
    return str(block["text"])


def _image(block: dict[str, Any], where: str) -> ImagePart:
    _fields(block, {"type", "source"}, where)
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type.startswith("image/") or not isinstance(data, str):
            refuse(f"{where}.source", 'must be {"type": "base64", "media_type": "image/...", "data": ...}')
        return ImagePart(f"data:{media_type};base64,{data}")
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        if not valid_image_url(source["url"]):
            refuse(f"{where}.source.url", "must be an http(s) URL")
        return ImagePart(source["url"])
    refuse(f"{where}.source", 'must be a "base64" or "url" image source')


def _tool_use(block: dict[str, Any], where: str) -> ToolCall:
    _fields(block, {"type", "id", "name", "input"}, where)
    if not tools.valid_id(block.get("id")):
        refuse(f"{where}.id", f"must be a string of 1 to {tools.MAX_TOOL_ID_CHARS} characters")
    if not tools.valid_name(block.get("name")):
        refuse(f"{where}.name", tools.NAME_RULE)
    if not isinstance(block.get("input"), dict) or tools.too_deep(block["input"]):
        refuse(f"{where}.input", f"must be an object of at most {tools.MAX_DEPTH} levels")
    return ToolCall(block["id"], block["name"], tools.arguments_text(block["input"]))


def _tool_result(block: dict[str, Any], where: str) -> ChatMessage:
    _fields(block, {"type", "tool_use_id", "content", "is_error"}, where)
    if not tools.valid_id(block.get("tool_use_id")):
        refuse(f"{where}.tool_use_id", "must name the tool_use this result answers")
    content = block.get("content", "")
    if isinstance(content, list):
        if not all(_is_text(item) for item in content):
            refuse(f"{where}.content", "a tool result must be text")
        content = "".join(_text(item, f"{where}.content[{i}]") for i, item in enumerate(content))
    if not isinstance(content, str):
        refuse(f"{where}.content", "must be a string or an array of text blocks")
    if block.get("is_error") not in (None, True, False):
        refuse(f"{where}.is_error", "must be a boolean")
    if block.get("is_error") is True:
        # OpenAI's tool messages have no error flag: the text says it.
        content = f"Error: {content}"
    return ChatMessage("tool", content, tool_call_id=block["tool_use_id"])


def _empty_text(item: object) -> bool:
    return _is_text(item) and isinstance(item, dict) and item.get("text") == ""


def _is_text(item: object) -> bool:
    return isinstance(item, dict) and item.get("type") == "text"


def _turn(raw: dict[str, Any], where: str) -> list[ChatMessage]:
    """One user or assistant turn as the gateway's messages: a user turn's tool results become tool messages,
    in order, before the rest of it; an assistant's tool_use blocks become its calls."""
    if set(raw) - {"role", "content"}:
        refuse(f"{where}.{sorted(set(raw) - {'role', 'content'})[0]}", "is not a field of a message")
    role = raw.get("role")
    if role not in ("user", "assistant"):
        refuse(f"{where}.role", "must be user or assistant")
    content = raw.get("content")
    # Anthropic refuses a turn with nothing in it; so does the gateway, for every provider.
    if content == "" or (isinstance(content, list) and all(_empty_text(block) for block in content)):
        refuse(f"{where}.content", "must not be empty")
    if isinstance(content, str):
        return [ChatMessage(role, content)]
    if not isinstance(content, list):
        refuse(f"{where}.content", "must be a string or an array of content blocks")
    parts: list[Part] = []
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for index, block in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block, dict):
            parts.append(TextPart(_text(block, at)))
        elif kind == "image" and role == "user" and isinstance(block, dict):
            parts.append(_image(block, at))
        elif kind == "tool_result" and role == "user" and isinstance(block, dict):
            results.append(_tool_result(block, at))
        elif kind == "tool_use" and role == "assistant" and isinstance(block, dict):
            calls.append(_tool_use(block, at))
        else:
            allowed = "text, image or tool_result" if role == "user" else "text or tool_use"
            refuse(at, f"must be a {allowed} block")
    if len(calls) > tools.MAX_TOOL_CALLS:
        refuse(f"{where}.content", f"must have at most {tools.MAX_TOOL_CALLS} tool_use blocks")
    rest = [ChatMessage(role, tuple(parts), tool_calls=tuple(calls))] if parts or calls else []
    return results + rest


def _messages(raw: Any, problems: Violations) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        problems.add("messages", "must be a non-empty array")
        return []
    messages: list[ChatMessage] = []
    for index, item in enumerate(raw):
        with problems.collecting():
            if not isinstance(item, dict):
                refuse(f"messages[{index}]", "must be an object")
            messages += _turn(item, f"messages[{index}]")
    return messages


def _system(raw: Any, problems: Violations) -> list[ChatMessage]:
    with problems.collecting():
        if raw is None:
            return []
        if isinstance(raw, str):
            return [ChatMessage("system", raw)] if raw else []
        if not isinstance(raw, list) or not all(_is_text(item) for item in raw):
            refuse("system", "must be a string or an array of text blocks")
        text = "\n\n".join(_text(item, f"system[{index}]") for index, item in enumerate(raw))
        return [ChatMessage("system", text)] if text else []
    return []


def _tool(raw: Any, where: str) -> Tool:
    if not isinstance(raw, dict):
        refuse(where, "must be an object")
    if raw.get("type", "custom") != "custom":
        refuse(f"{where}.type", "server tools are not supported by this gateway: only custom tools")
    _fields(raw, {"type", "name", "description", "input_schema"}, where)
    if not tools.valid_name(raw.get("name")):
        refuse(f"{where}.name", tools.NAME_RULE)
    description = raw.get("description")
    if not tools.valid_description(description):
        refuse(f"{where}.description", tools.DESCRIPTION_RULE)
    schema = raw.get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object" or tools.too_deep(schema):
        refuse(
            f"{where}.input_schema", f'must be a JSON Schema of "type": "object" of at most {tools.MAX_DEPTH} levels'
        )
    return Tool(raw["name"], schema, description)


def _tools(raw: Any, problems: Violations) -> tuple[Tool, ...]:
    with problems.collecting():
        if raw is None:
            return ()
        if not isinstance(raw, list) or len(raw) > tools.MAX_TOOLS:
            refuse("tools", f"must be an array of at most {tools.MAX_TOOLS} tools")
        parsed = tuple(_tool(item, f"tools[{index}]") for index, item in enumerate(raw))
        if len({tool.name for tool in parsed}) < len(parsed):
            refuse("tools", "must not name a tool twice")
        return parsed
    return ()


def _tool_choice(raw: Any, offered: tuple[Tool, ...], problems: Violations) -> tuple[ToolChoice | None, bool | None]:
    """The choice, and False for `disable_parallel_tool_use: true` (else None)."""
    with problems.collecting():
        if raw is None:
            return None, None
        mode = _TOOL_MODES.get(str(raw.get("type"))) if isinstance(raw, dict) else None
        if mode is None or not isinstance(raw, dict):
            refuse("tool_choice", 'must be {"type": "auto" | "any" | "tool" | "none", ...}')
        _fields(
            raw,
            {"type", "name", "disable_parallel_tool_use"}
            if mode == "function"
            else {"type", "disable_parallel_tool_use"},
            "tool_choice",
        )
        if not offered:
            refuse("tool_choice", "is only allowed when tools are given")
        name = raw.get("name", "")
        if mode == "function" and (not isinstance(name, str) or name not in {tool.name for tool in offered}):
            refuse("tool_choice.name", "must name one of the tools")
        disable = raw.get("disable_parallel_tool_use")
        if disable is not None and not isinstance(disable, bool):
            refuse("tool_choice.disable_parallel_tool_use", "must be a boolean")
        return ToolChoice(mode, name if mode == "function" else ""), (False if disable else None)
    return None, None


def _output_schema(raw: Any, problems: Violations) -> JsonSchema | None:
    """Anthropic's structured output, `output_config: {"format": {"type": "json_schema", "schema": {...}}}`."""
    with problems.collecting():
        if raw is None:
            return None
        output_format = raw.get("format") if isinstance(raw, dict) and set(raw) <= {"format"} else None
        if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
            refuse("output_config", 'must be {"format": {"type": "json_schema", "schema": {...}}}')
        schema = output_format.get("schema")
        if not isinstance(schema, dict) or set(output_format) - {"type", "schema"}:
            refuse("output_config.format.schema", "must be a JSON Schema object")
        try:
            compile_schema(schema)
        except ValueError as error:
            refuse("output_config.format.schema", str(error))
        return JsonSchema(OUTPUT_SCHEMA_NAME, schema)
    return None


def _stop(raw: Any, problems: Violations) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw) or len(raw) > MAX_STOP_SEQUENCES:
        problems.add("stop_sequences", f"must be an array of at most {MAX_STOP_SEQUENCES} non-empty strings")
        return ()
    return tuple(raw)


def parse_messages_body(data: bytes) -> ParsedMessages:
    """Parses and checks a Messages API request body."""
    body = json_object(data)
    problems = Violations()
    for key in sorted(set(body) - _KNOWN):
        problems.add(key, _UNSUPPORTED.get(key, "is not a Messages API field this gateway accepts"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        problems.add("model", "must be a model name")
        model = ""
    max_tokens = problems.integer(body, "max_tokens", 1)
    if body.get("max_tokens") is None:
        problems.add("max_tokens", "is required")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        problems.add("stream", "must be a boolean")
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and set(metadata) <= {"user_id"}):
        problems.add("metadata", 'must be {"user_id": ...}')
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        problems.add("service_tier", "must be auto or standard_only")
    offered = _tools(body.get("tools"), problems)
    choice, parallel = _tool_choice(body.get("tool_choice"), offered, problems)
    schema = _output_schema(body.get("output_config"), problems)
    request = ChatRequest(
        model=model,
        messages=tuple(_system(body.get("system"), problems) + _messages(body.get("messages"), problems)),
        max_tokens=max_tokens,
        temperature=problems.number(body, "temperature", 0, 1),
        top_p=problems.number(body, "top_p", 0, 1),
        stop=_stop(body.get("stop_sequences"), problems),
        json_mode=schema is not None,
        json_schema=schema,
        tools=offered,
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )
    problems.raise_if_any()
    return ParsedMessages(request, stream is True)


# --- responses ------------------------------------------------------------------------------------


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def stop_reason(reason: FinishReason) -> str:
    return _STOP_REASONS[reason]


def message_body(message: str, model: str, completion: Completion) -> bytes:
    """An Anthropic `message` object."""
    content: list[dict[str, Any]] = [{"type": "text", "text": completion.text}] if completion.text else []
    try:
        content += [tool_use_block(call) for call in completion.tool_calls]
    except ValueError:
        raise Unavailable(
            f"{model} called a tool with arguments that are not a JSON object", reason="MODEL_OUTPUT_INVALID"
        ) from None
    return orjson.dumps(
        {
            "id": message,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason(completion.finish_reason),
            "stop_sequence": None,
            "usage": _usage(completion.usage),
        }
    )


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """One named event, as Anthropic frames them: `event: <type>` and the JSON with the same `type`."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


def error_event(error: DomainError) -> bytes:
    """A failure after the stream began, as Anthropic's `error` event."""
    contract = contract_of(error)
    return event("error", {"error": {"type": contract.anthropic_type, "message": error.message}})


class EventWriter:
    """Frames one streamed answer as the Messages API's events, opening and closing a content block for the
    text and for each tool call as the answer moves from one to the next."""

    def __init__(self, message: str, model: str) -> None:
        self._message = message
        self._model = model
        self._blocks = 0
        # The open block: ("text", -1) or ("tool", call index); None when none is open.
        self._open: tuple[str, int] | None = None
        # Call index -> its block index.
        self._call_blocks: dict[int, int] = {}

    def start(self, *, calls_first: bool = False) -> bytes:
        message: dict[str, Any] = {
            "id": self._message,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(None),
        }
        return event("message_start", {"message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return event("content_block_stop", {"index": self._blocks - 1})

    def _begin(self, opened: tuple[str, int], block: dict[str, Any]) -> bytes:
        frames = self._close() + event("content_block_start", {"index": self._blocks, "content_block": block})
        self._open = opened
        self._blocks += 1
        return frames

    def delta(self, text: str) -> bytes:
        frames = b"" if self._open == ("text", -1) else self._begin(("text", -1), {"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        return frames + event("content_block_delta", {"index": self._blocks - 1, "delta": delta})

    def tool_call(self, piece: ToolCallDelta) -> bytes:
        frames = b""
        if piece.index not in self._call_blocks:
            block = {"type": "tool_use", "id": piece.id or "", "name": piece.name or "", "input": {}}
            frames = self._begin(("tool", piece.index), block)
            self._call_blocks[piece.index] = self._blocks - 1
        if not piece.arguments:
            return frames
        delta = {"type": "input_json_delta", "partial_json": piece.arguments}
        return frames + event("content_block_delta", {"index": self._call_blocks[piece.index], "delta": delta})

    def finish(self, reason: FinishReason, usage: Usage | None) -> bytes:
        delta = {"stop_reason": stop_reason(reason), "stop_sequence": None}
        counts = _usage(usage)
        return self._close() + event("message_delta", {"delta": delta, "usage": counts}) + event("message_stop", {})
