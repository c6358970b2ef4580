"""The gateway's own view of a chat completion: requests, results and stream events.

Every wire format (OpenAI JSON bodies, the typed gRPC messages) is parsed into
these, and every provider translates them into its SDK's calls, so the
gateway's logic (routing, retries, caching, usage) sees one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


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
class ChatMessage:
    role: Role
    # A plain string, or parts in order (text and images).
    content: str | tuple[Part, ...]

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
    json_mode: bool = False
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
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


@dataclass(frozen=True, slots=True)
class Delta:
    """The next piece of streamed text."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a stream: why it stopped and, when the provider reported it, the usage."""

    finish_reason: FinishReason
    usage: Usage | None = None


StreamEvent: TypeAlias = Delta | Finished


@dataclass(frozen=True, slots=True)
class Served:
    """Which registry model and provider answered, for responses, metrics and usage."""

    model: str
    provider: str
    upstream_model: str
    cached: bool = False
    # Model names tried before this one answered, in order.
    skipped: tuple[str, ...] = field(default=())
