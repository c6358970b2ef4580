"""What the gateway needs from a provider, and how provider failures are told apart."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from services.llm.chat import ChatRequest, Completion, StreamEvent, Usage
from services.llm.embeddings import Embeddings, EmbeddingsRequest

# retryable: 5xx, 408, 409, connection errors; the same model may be tried again after a backoff.
# rate_limited: 429; tried again after Retry-After when it fits the deadline.
# timeout: the per-request timeout passed.
# credentials: 401/403; the configured key is wrong, so only another provider can help.
# request: any other 4xx; the request itself is wrong, so nothing can help.
# output: the model answered, but not as promised (JSON that breaks the caller's schema); a fallback may do better.
FailureKind = Literal["retryable", "rate_limited", "timeout", "credentials", "request", "output"]

# Longest Retry-After honoured from a provider; a longer wait moves on to the next model.
MAX_RETRY_AFTER_S = 60.0


@dataclass
class ProviderError(Exception):
    """A provider call failed; `message` is safe to show callers (no keys, no hosts)."""

    provider: str
    kind: FailureKind
    message: str
    status: int | None = None
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def counts_against_provider(self) -> bool:
        """Whether the breaker counts it: the provider, not the request, is at fault."""
        return self.kind in ("retryable", "rate_limited", "timeout")


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Where a provider is and how long a call may take."""

    name: str
    api_key: str
    base_url: str
    connect_timeout_s: float = 10.0
    # Open connections to the provider; a stream holds one for its whole length, and a call beyond the
    # limit waits for a free one (within its timeout).
    max_connections: int = 4096


class Provider(Protocol):
    """One upstream API. Implementations raise only `ProviderError` for failed calls."""

    name: str

    async def complete(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> Completion:
        """One completion; `timeout_s` bounds the whole call."""
        ...

    def stream(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> AsyncIterator[StreamEvent]:
        """Deltas as they arrive, then exactly one `Finished`; `timeout_s` bounds each wait for data."""
        ...

    async def embed(self, request: EmbeddingsRequest, upstream_model: str, timeout_s: float) -> Embeddings:
        """Embeddings of the request's inputs; a provider that has none raises a `request` ProviderError."""
        ...

    async def close(self) -> None: ...


def usage_from(raw: Any, prompt_key: str, completion_key: str) -> Usage | None:
    """Token counts from a provider's usage object (OpenAI: prompt_tokens / completion_tokens; Anthropic:
    input_tokens / output_tokens); None when it is missing or malformed."""
    if not isinstance(raw, dict):
        return None
    return usage_of(raw.get(prompt_key), raw.get(completion_key))


def usage_of(prompt: object, completion: object) -> Usage | None:
    """The usage of two reported token counts; None unless both are non-negative integers (`true` is not one:
    it would reach budgets as 1 and callers' usage objects as a boolean)."""
    if type(prompt) is not int or type(completion) is not int or prompt < 0 or completion < 0:
        return None
    return Usage(prompt, completion)


def status_error(provider: str, status: int, detail: str, headers: Mapping[str, str] | None) -> ProviderError:
    """The error for an HTTP error status. A rejected key gets no provider detail: providers echo part of
    the key in it, and the message goes to callers."""
    kind = kind_of_status(status)
    if kind == "credentials":
        message = f"{provider} rejected the gateway's credentials (HTTP {status}); check its key"
    else:
        message = f"{provider} answered HTTP {status}: {detail}"
    return ProviderError(provider, kind, message, status=status, retry_after_s=retry_after(headers))


def kind_of_status(status: int) -> FailureKind:
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "credentials"
    if status in (408, 409) or status >= 500:
        return "retryable"
    return "request"


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped; None if absent."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    try:
        if value is not None:
            return min(max(float(value) / 1000, 0.0), MAX_RETRY_AFTER_S)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            moment = email.utils.parsedate_to_datetime(value)
            seconds = moment.timestamp() - time.time()
        return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError, OverflowError):
        return None
