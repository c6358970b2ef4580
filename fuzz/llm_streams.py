"""The providers' response readers (`services.llm.providers`): what an upstream LLM API answers, read as in
production (Anthropic's through its official SDK, with a transport that answers every call with the input;
the OpenAI protocol's through the direct client, whose HTTP exchange answers with the input).

The input is a response body: an SSE stream for `stream`, a JSON document for `complete`.

- A stream yields non-empty `Delta` texts, then exactly one `Finished` with a known finish reason and, if
  any, a usage of two non-negative integer token counts; otherwise it raises ProviderError. A completion
  is a `Completion` of the same kinds, or a ProviderError. Anything else would reach callers as INTERNAL.
- Round trip: text streamed by the suite's own OpenAI-protocol writer (`ChunkWriter`), read by the OpenAI
  provider, is the same text with the same finish reason and usage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest import mock

import httpx2
from anthropic import AsyncAnthropic

from fuzz.support import event_loop
from services.llm.chat import ChatMessage, ChatRequest, Completion, Delta, Finished, Usage
from services.llm.openai_wire import ChunkWriter
from services.llm.providers import anthropic, openai_compatible
from services.llm.providers.base import ProviderError, ProviderSettings
from services.llm.providers.direct import Answer, DirectClient

_LOOP = event_loop()
_FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls")
_REQUEST = ChatRequest(model="m", messages=(ChatMessage("user", "hi"),))
_JSON_REQUEST = ChatRequest(model="m", messages=(ChatMessage("user", "hi"),), json_mode=True)


class _Upstream:
    """Answers every request with `body` under `content_type`, as a provider would."""

    def __init__(self) -> None:
        self.body = b""
        self.content_type = "text/event-stream"

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": self.content_type}, content=self.body)


_UPSTREAM = _Upstream()


def _client_options(settings: ProviderSettings, tracer: Any) -> dict[str, Any]:
    return {
        "api_key": settings.api_key,
        "base_url": settings.base_url,
        "max_retries": 0,
        "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(_UPSTREAM)),
    }


class _Content:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def iter_any(self) -> AsyncIterator[bytes]:
        yield self._body


class _Response:
    """The part of aiohttp's response the OpenAI provider reads."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.status = 200
        self.headers = {"content-type": content_type}
        self.content = _Content(body)
        self._body = body

    async def read(self) -> bytes:
        return self._body


class _DirectUpstream(DirectClient):
    """The direct client with every exchange answered by `_UPSTREAM`."""

    async def post(self, path: str, body: bytes, timeout_s: float) -> Answer:
        return Answer(200, {"content-type": _UPSTREAM.content_type}, _UPSTREAM.body)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: bytes, timeout_s: float) -> AsyncIterator[Any]:
        yield _Response(_UPSTREAM.body, _UPSTREAM.content_type)


def _providers() -> tuple[openai_compatible.OpenAICompatibleProvider, anthropic.AnthropicProvider]:
    settings = ProviderSettings("upstream", "sk-test", "http://upstream.test/v1")
    with (
        mock.patch.object(openai_compatible, "DirectClient", _DirectUpstream),
        mock.patch.object(anthropic, "sdk_client_options", _client_options),
    ):
        providers = openai_compatible.OpenAICompatibleProvider(settings), anthropic.AnthropicProvider(settings)
    assert isinstance(providers[0]._client, _DirectUpstream) and isinstance(providers[1]._client, AsyncAnthropic)
    return providers


_OPENAI, _ANTHROPIC = _providers()


def _check_usage(usage: Usage | None) -> None:
    if usage is not None:
        for count in (usage.prompt_tokens, usage.completion_tokens):
            assert type(count) is int and count >= 0, usage


async def _stream(
    call: Callable[[ChatRequest, str, float], Any], request: ChatRequest
) -> tuple[list[str], Finished] | None:
    texts: list[str] = []
    finished: Finished | None = None
    try:
        async for event in call(request, "model", 5.0):
            assert finished is None, "an event after Finished"
            if isinstance(event, Delta):
                assert isinstance(event.text, str) and event.text, event
                texts.append(event.text)
            else:
                assert isinstance(event, Finished), event
                assert event.finish_reason in _FINISH_REASONS
                _check_usage(event.usage)
                finished = event
    except ProviderError:
        return None
    assert finished is not None, "the stream ended without Finished"
    return texts, finished


async def _complete(call: Callable[[ChatRequest, str, float], Awaitable[Completion]], request: ChatRequest) -> None:
    try:
        completion = await call(request, "model", 5.0)
    except ProviderError:
        return
    assert isinstance(completion.text, str) and completion.finish_reason in _FINISH_REASONS
    _check_usage(completion.usage)


async def _settled(work: Awaitable[Any]) -> Any:
    result = await work
    # Lets the finalizers of async generators that an error cut short (the SDKs' and the readers') run.
    await asyncio.sleep(0)
    return result


def _run(body: bytes, content_type: str, work: Awaitable[Any]) -> Any:
    _UPSTREAM.body, _UPSTREAM.content_type = body, content_type
    return _LOOP.run_until_complete(_settled(work))


def _check_round_trip(text: str) -> None:
    writer = ChunkWriter("chatcmpl-1", 1, "model", include_usage=True)
    deltas = text.split("\x00")
    body = writer.start() + b"".join(writer.delta(delta) for delta in deltas) + writer.finish("length", Usage(3, 4))
    result = _run(body, "text/event-stream", _stream(_OPENAI.stream, _REQUEST))
    assert result is not None, body
    texts, finished = result
    assert "".join(texts) == "".join(deltas), (texts, deltas)
    assert finished == Finished("length", Usage(3, 4))


def TestOneInput(data: bytes) -> None:
    _run(data, "text/event-stream", _stream(_OPENAI.stream, _REQUEST))
    for request in (_REQUEST, _JSON_REQUEST):
        _run(data, "text/event-stream", _stream(_ANTHROPIC.stream, request))
    _run(data, "application/json", _complete(_OPENAI.complete, _REQUEST))
    _run(data, "application/json", _complete(_ANTHROPIC.complete, _JSON_REQUEST))
    _check_round_trip(data.decode("utf-8", "replace"))
