"""The gateway's own view of a chat completion: requests, results and stream events.

Every wire format (OpenAI JSON bodies, the typed gRPC messages) is parsed into
these, and every provider translates them into its SDK's calls, so the
gateway's logic (routing, retries, caching, usage) sees one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]
# "function": the one tool `ToolChoice.name` names.
ToolMode = Literal["auto", "none", "required", "function"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image as OpenAI's `image_url` part carries it: an http(s) URL or a `data:` URL."""

    url: str
    detail: str | None = None


Part: TypeAlias = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for: OpenAI's `tool_calls[]` entry, Anthropic's `tool_use` block."""

    id: str
    name: str
    # The arguments as JSON text of an object, as OpenAI carries them (Anthropic's `input`, serialised).
    arguments: str


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call."""

    name: str
    # The JSON Schema of its arguments: an object schema.
    parameters: dict[str, Any]
    description: str | None = None
    # OpenAI's `strict` (arguments held to the schema by the provider); None when the caller did not say.
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolMode
    # The tool's name when `mode` is "function".
    name: str = ""


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """OpenAI's `response_format: {"type": "json_schema", "json_schema": {...}}`."""

    name: str
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    # A plain string, or parts in order (text and images). A tool message's content is its result.
    content: str | tuple[Part, ...]
    # An assistant message's calls.
    tool_calls: tuple[ToolCall, ...] = ()
    # A tool message: the call it answers.
    tool_call_id: str = ""

    @property
    def text(self) -> str:
        """The message's text, parts joined; images contribute nothing."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated completion request; `model` is the name the caller asked for ("" for the default)."""

    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    # The answer must be a JSON object (and, with `json_schema`, valid against it).
    json_mode: bool = False
    json_schema: JsonSchema | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Restricts routing to one provider (internal callers only).
    provider: str = ""

    @property
    def has_images(self) -> bool:
        return any(
            isinstance(part, ImagePart)
            for message in self.messages
            if not isinstance(message.content, str)
            for part in message.content
        )


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """What a provider answered to one call."""

    text: str
    finish_reason: FinishReason
    usage: Usage | None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Delta:
    """The next piece of streamed text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """The next piece of a streamed tool call, as OpenAI streams them: the call's first piece has its `id` and
    `name`, every later one only more `arguments` text. `index` counts the answer's calls from 0."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


class ToolCalls:
    """Tool calls put back together from their streamed pieces."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, ["", "", ""])
        if delta.id:
            call[0] = delta.id
        if delta.name:
            call[1] += delta.name
        call[2] += delta.arguments

    @property
    def chars(self) -> int:
        return sum(len(name) + len(arguments) for _, name, arguments in self._calls.values())

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(*self._calls[index]) for index in sorted(self._calls))


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a stream: why it stopped and, when the provider reported it, the usage."""

    finish_reason: FinishReason
    usage: Usage | None = None


StreamEvent: TypeAlias = Delta | ToolCallDelta | Finished


@dataclass(frozen=True, slots=True)
class Served:
    """Which registry model and provider answered, for responses, metrics and usage."""

    model: str
    provider: str
    upstream_model: str
    cached: bool = False
    # Model names tried before this one answered, in order.
    skipped: tuple[str, ...] = field(default=())
