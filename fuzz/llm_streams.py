"""The providers' response readers (`services.llm.providers`): what an upstream LLM API answers, read as in
production (Anthropic's through its official SDK, with a transport that answers every call with the input;
the OpenAI protocol's through the direct client, whose HTTP exchange answers with the input).

The input is a response body: an SSE stream for `stream`, a JSON document for `complete`.

- A stream yields non-empty `Delta` texts and `ToolCallDelta` pieces (a non-negative int index, string
  arguments, an id and a name that are strings when given), then exactly one `Finished` with a known finish
  reason and, if any, a usage of two non-negative integer token counts; otherwise it raises ProviderError. A
  completion is a `Completion` of the same kinds (its calls' fields strings), or a ProviderError. Anything
  else would reach callers as INTERNAL.
- Round trips, for an answer made of the input (`_answer`): text and tool calls in pieces, streamed by the
  suite's own writers (`ChunkWriter` for OpenAI's protocol, `EventWriter` for Anthropic's) and read by the
  provider of that protocol, are the same text, the same calls (ids, names, concatenated arguments), finish
  reason and usage; so is the whole answer, written as a completion (`completion_body`, `message_body`) and
  read back. An `error_event` after the pieces fails the Anthropic stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, get_args
from unittest import mock

import httpx2
from anthropic import AsyncAnthropic

from fuzz.support import event_loop
from services.common.errors import Unavailable
from services.llm.anthropic_wire import EventWriter, error_event, message_body
from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    Delta,
    Finished,
    FinishReason,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from services.llm.openai_wire import ChunkWriter, completion_body
from services.llm.providers import anthropic, openai_compatible
from services.llm.providers.base import ProviderError, ProviderSettings
from services.llm.providers.direct import Answer, DirectClient
from services.llm.tools import arguments_object

_LOOP = event_loop()
_FINISH_REASONS: tuple[FinishReason, ...] = get_args(FinishReason)
_REQUEST = ChatRequest(model="m", messages=(ChatMessage("user", "hi"),))
_JSON_REQUEST = ChatRequest(model="m", messages=(ChatMessage("user", "hi"),), json_mode=True)
# How `_answer` reads the input: NUL-separated pieces; a piece starting with \x01 opens the next tool call
# (`\x01<id>\x01<name>\x01<arguments>`), one starting with \x02 adds arguments to the call that its next
# character picks (`\x02<pick><arguments>`); any other piece is text.
_SEPARATOR, _NEW_CALL, _MORE_ARGUMENTS = "\x00", "\x01", "\x02"


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


def _check_piece(piece: ToolCallDelta) -> None:
    assert type(piece.index) is int and piece.index >= 0, piece
    assert isinstance(piece.arguments, str), piece
    assert all(value is None or isinstance(value, str) for value in (piece.id, piece.name)), piece


async def _stream(
    call: Callable[[ChatRequest, str, float], Any], request: ChatRequest
) -> tuple[list[Delta | ToolCallDelta], Finished] | None:
    """The stream's events before its `Finished`, and that; None for a ProviderError."""
    events: list[Delta | ToolCallDelta] = []
    finished: Finished | None = None
    try:
        async for event in call(request, "model", 5.0):
            assert finished is None, "an event after Finished"
            if isinstance(event, Delta):
                assert isinstance(event.text, str) and event.text, event
                events.append(event)
            elif isinstance(event, ToolCallDelta):
                _check_piece(event)
                events.append(event)
            else:
                assert isinstance(event, Finished), event
                assert event.finish_reason in _FINISH_REASONS
                _check_usage(event.usage)
                finished = event
    except ProviderError:
        return None
    assert finished is not None, "the stream ended without Finished"
    return events, finished


def _check_calls(calls: tuple[ToolCall, ...]) -> None:
    for call in calls:
        assert all(isinstance(value, str) for value in (call.id, call.name, call.arguments)), call


async def _complete(
    call: Callable[[ChatRequest, str, float], Awaitable[Completion]], request: ChatRequest
) -> Completion | None:
    try:
        completion = await call(request, "model", 5.0)
    except ProviderError:
        return None
    assert isinstance(completion.text, str) and completion.finish_reason in _FINISH_REASONS
    _check_usage(completion.usage)
    _check_calls(completion.tool_calls)
    return completion


async def _settled(work: Awaitable[Any]) -> Any:
    result = await work
    # Lets the finalizers of async generators that an error cut short (the SDKs' and the readers') run.
    await asyncio.sleep(0)
    return result


def _run(body: bytes, content_type: str, work: Awaitable[Any]) -> Any:
    _UPSTREAM.body, _UPSTREAM.content_type = body, content_type
    return _LOOP.run_until_complete(_settled(work))


def _answer(data: bytes) -> tuple[list[Delta | ToolCallDelta], Finished]:
    """An answer made of the input, in pieces as a provider streams it (see `_SEPARATOR`): each call's first
    piece has its id and name, later ones only arguments."""
    text = data.decode("utf-8", "replace")
    pieces: list[Delta | ToolCallDelta] = []
    calls = 0
    for piece in text.split(_SEPARATOR):
        if piece.startswith(_NEW_CALL):
            call_id, name, arguments = [*piece[1:].split(_NEW_CALL, 2), "", ""][:3]
            pieces.append(ToolCallDelta(calls, arguments, id=call_id, name=name))
            calls += 1
        elif piece.startswith(_MORE_ARGUMENTS) and calls:
            pick = ord(piece[1:2] or "\x00") % calls
            pieces.append(ToolCallDelta(pick, piece[2:]))
        else:
            pieces.append(Delta(piece))
    reason = _FINISH_REASONS[len(data) % len(_FINISH_REASONS)]
    return pieces, Finished(reason, Usage(len(text), len(pieces)))


def _assembled(pieces: list[Delta | ToolCallDelta]) -> tuple[str, tuple[ToolCall, ...]]:
    """The text and the calls that pieces make, each call's id and name from its first piece."""
    texts: list[str] = []
    calls: dict[int, ToolCall] = {}
    for piece in pieces:
        if isinstance(piece, Delta):
            texts.append(piece.text)
        elif piece.index in calls:
            assert piece.id is None and piece.name is None, piece
            known = calls[piece.index]
            calls[piece.index] = ToolCall(known.id, known.name, known.arguments + piece.arguments)
        else:
            assert piece.id is not None and piece.name is not None, piece
            calls[piece.index] = ToolCall(piece.id, piece.name, piece.arguments)
    assert sorted(calls) == list(range(len(calls))), sorted(calls)
    return "".join(texts), tuple(calls[index] for index in sorted(calls))


def _check_stream_round_trip(
    stream: Callable[[ChatRequest, str, float], Any], body: bytes, pieces: list[Delta | ToolCallDelta], end: Finished
) -> None:
    result = _run(body, "text/event-stream", _stream(stream, _REQUEST))
    assert result is not None, body
    read, finished = result
    assert _assembled(read) == _assembled(pieces), (read, pieces)
    assert finished == end, (finished, end)


def _objects(calls: tuple[ToolCall, ...]) -> bool:
    """Whether every call's arguments are the JSON text of an object."""
    try:
        for call in calls:
            arguments_object(call.arguments)
    except ValueError:
        return False
    return True


def _check_round_trips(data: bytes) -> None:
    pieces, end = _answer(data)
    chunks = ChunkWriter("chatcmpl-1", 1, "model", include_usage=True)
    frames = [chunks.delta(p.text) if isinstance(p, Delta) else chunks.tool_call(p) for p in pieces]
    body = chunks.start() + b"".join(frames) + chunks.finish(end.finish_reason, end.usage)
    _check_stream_round_trip(_OPENAI.stream, body, pieces, end)

    events = EventWriter("msg_1", "model")
    frames = [events.delta(p.text) if isinstance(p, Delta) else events.tool_call(p) for p in pieces]
    body = events.start() + b"".join(frames)
    _check_stream_round_trip(_ANTHROPIC.stream, body + events.finish(end.finish_reason, end.usage), pieces, end)
    failed = body + error_event(Unavailable(data.decode("utf-8", "replace")))
    assert _run(failed, "text/event-stream", _stream(_ANTHROPIC.stream, _REQUEST)) is None, failed

    text, calls = _assembled(pieces)
    completion = Completion(text, end.finish_reason, end.usage, calls)
    body = completion_body("chatcmpl-1", 1, "model", completion)
    assert _run(body, "application/json", _complete(_OPENAI.complete, _REQUEST)) == completion, body
    try:
        body = message_body("msg_1", "model", completion)
    except Unavailable:
        # Anthropic's tool_use input is an object: a call with other arguments is the model's fault.
        assert not _objects(calls), calls
        return
    read = _run(body, "application/json", _complete(_ANTHROPIC.complete, _REQUEST))
    assert read is not None, body
    assert (read.text, read.finish_reason, read.usage) == (text, end.finish_reason, end.usage), (read, completion)
    assert [(call.id, call.name) for call in read.tool_calls] == [(call.id, call.name) for call in calls], read
    for got, sent in zip(read.tool_calls, calls, strict=True):
        assert arguments_object(got.arguments) == arguments_object(sent.arguments), (got, sent)


def TestOneInput(data: bytes) -> None:
    for request in (_REQUEST, _JSON_REQUEST):
        _run(data, "text/event-stream", _stream(_OPENAI.stream, request))
        _run(data, "text/event-stream", _stream(_ANTHROPIC.stream, request))
        _run(data, "application/json", _complete(_OPENAI.complete, request))
        _run(data, "application/json", _complete(_ANTHROPIC.complete, request))
    _check_round_trips(data)
