"""A local LLM provider for tests that speaks the real HTTP wire protocols of OpenAI and Anthropic.

One asyncio HTTP/1.1 server (stdlib only) answers the OpenAI Chat Completions API, which GitHub
Models, OpenRouter and Zhipu BigModel speak too, and the Anthropic Messages API, so tests can drive
the official `openai` and `anthropic` SDKs, or a service built on them, against it. A test scripts
what the provider does (reply, tool calls, delays, failures) and asserts what the client sent (`requests`)
and whether it hung up (`disconnects`).

A request that offers tools is answered with tool calls (`tool_calls`, or one call of the forced or first
tool), and one whose last message hands tool results back with "Results: " and their texts, so a test can
follow a whole round trip. Tool definitions and the pairing of calls with results are checked as the real
APIs check them.

    async with running_fake(reply="Hi") as fake:
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k")

    with FakeProviderThread() as fake:  # sync tests, and services run as subprocesses
        subprocess.run(..., env={**os.environ, **fake.env()})
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import itertools
import json
import re
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

DEFAULT_REPLY = "Hello from the fake"
DEFAULT_JSON_REPLY = '{"ok": true}'
DEFAULT_MODELS = ("gpt-4o-mini", "claude-haiku-4-5")

Api = Literal["openai", "anthropic", "other"]

_MAX_HEAD_BYTES = 64 * 1024
# Base64 images make large request bodies; this only guards against a runaway client.
_MAX_BODY_BYTES = 64 * 1024 * 1024
_READ_SIZE = 64 * 1024
_STOP_TIMEOUT_S = 10.0

# What the real APIs put in `error.type` (and OpenAI in `error.code`) for each status.
_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_T = TypeVar("_T")

# Events cut off in the middle of their JSON, as a broken proxy or provider sends them.
_MALFORMED_OPENAI = b'data: {"choices": [{"delta": \n\n'
_MALFORMED_ANTHROPIC = b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": \n\n'

# Both APIs hold tool names to this pattern.
_TOOL_NAME_RULE = "^[a-zA-Z0-9_-]{1,64}$"
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ANTHROPIC_TOOL_CHOICES = ("auto", "any", "tool", "none")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request as the fake received it."""

    method: str
    path: str
    query: str
    # Names lower-cased; a repeated header's values joined with ", ".
    headers: dict[str, str]
    # The parsed JSON body; None when the body was empty or not JSON.
    body: Any
    raw_body: bytes
    # The TCP connection that carried it: requests with the same number reused one connection.
    connection: int

    @property
    def api(self) -> Api:
        """Which provider API the path belongs to (`/models` is told apart by `anthropic-version`)."""
        if self.path.endswith(("/chat/completions", "/embeddings")):
            return "openai"
        if self.path.endswith("/v1/messages"):
            return "anthropic"
        if self.path.endswith("/models"):
            return "anthropic" if "anthropic-version" in self.headers else "openai"
        return "other"

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def has_image(self) -> bool:
        """Whether a message carries an image part: `image_url` for OpenAI, an `image` block for Anthropic."""
        return any(_is_image(part, self.api) for part in _content_parts(self.body))


class FakeProvider:
    """What the fake provider answers, scripted per test, and what it saw.

    Settings may be changed at any time; each request reads them when it arrives.
    """

    def __init__(
        self,
        *,
        reply: str = DEFAULT_REPLY,
        json_reply: str = DEFAULT_JSON_REPLY,
        anthropic_fenced_json: bool = False,
        chunk_chars: int = 4,
        delay_s: float = 0.0,
        gap_s: float = 0.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        tool_calls: list[tuple[str, str]] | None = None,
        tool_preamble: str = "",
    ) -> None:
        # The reply text; a stream sends it in deltas of `chunk_chars` characters.
        self.reply = reply
        # The reply when the request asks for JSON (OpenAI `response_format`, Anthropic `output_config.format`),
        # and the arguments of the one tool call made when `tool_calls` is not set.
        self.json_reply = json_reply
        # Anthropic replies become `json_reply` inside a ```json fence, as Claude tends to answer "reply in JSON".
        self.anthropic_fenced_json = anthropic_fenced_json
        self.chunk_chars = chunk_chars
        # Seconds before the first byte of a completion, and between two deltas of a stream.
        self.delay_s = delay_s
        self.gap_s = gap_s
        self.models = models
        # The calls, in order, that answer a request offering tools: (tool name, arguments as JSON text).
        # Unset or empty: one call of the tool the request forces, else of its first tool, with `json_reply`.
        # A stream sends the arguments in pieces of `chunk_chars` characters.
        self.tool_calls = tool_calls
        # What the model says before its tool calls.
        self.tool_preamble = tool_preamble

        self.requests: list[RecordedRequest] = []
        # Clients that hung up before their response was complete, and an event set on the first
        # (await it on the serving loop; from another thread use FakeProviderThread.wait_for_disconnect).
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        # Exceptions inside the fake itself; leaving `serving()` with any of them fails the test.
        self.errors: list[BaseException] = []
        self.url = ""

        self._failures: deque[_Failure] = deque()
        self._stream_breaks: deque[int] = deque()
        self._malformed: deque[int] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._disconnected_any_thread = threading.Event()

    @property
    def openai_base_url(self) -> str:
        """The `base_url` for `openai` clients (the SDK appends `/chat/completions`)."""
        return f"{self._require_url()}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The `base_url` for `anthropic` clients (the SDK appends `/v1/messages`)."""
        return self._require_url()

    def env(self) -> dict[str, str]:
        """The variables that point the official SDKs, in any process, at this fake."""
        return {"OPENAI_BASE_URL": self.openai_base_url, "ANTHROPIC_BASE_URL": self.anthropic_base_url}

    def fail_next(
        self,
        n: int,
        status: int,
        retry_after: float | None = None,
        message: str | None = None,
        *,
        api: Api | None = None,
    ) -> None:
        """The next `n` requests (to `api` only, if given) get HTTP `status` with the API's error body
        (and `Retry-After`, if given)."""
        failure = _Failure(status, retry_after, message or _phrase(status), api)
        with self._lock:
            self._failures.extend([failure] * n)

    def fail_mid_stream(self, n: int = 1, after_deltas: int = 1) -> None:
        """The next `n` streams send `after_deltas` deltas, then the connection drops without a final event."""
        with self._lock:
            self._stream_breaks.extend([after_deltas] * n)

    def malformed_stream(self, n: int = 1, after_deltas: int = 1) -> None:
        """The next `n` streams send `after_deltas` deltas, then an event whose data is not JSON, then go on."""
        with self._lock:
            self._malformed.extend([after_deltas] * n)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Self]:
        """Listens on 127.0.0.1 and a free port on the running loop until the block ends."""
        server = _Server(self)
        self.url = f"http://127.0.0.1:{await server.start()}"
        try:
            yield self
        finally:
            await server.stop()
        self._raise_errors()

    def _require_url(self) -> str:
        if not self.url:
            raise RuntimeError("the fake provider is not serving yet")
        return self.url

    def _raise_errors(self) -> None:
        if self.errors:
            raise AssertionError(f"the fake provider failed: {self.errors[0]!r}") from self.errors[0]

    def _take(self, queue: deque[_T]) -> _T | None:
        with self._lock:
            return queue.popleft() if queue else None

    def _take_failure(self, api: Api) -> _Failure | None:
        with self._lock:
            if self._failures and self._failures[0].api in (None, api):
                return self._failures.popleft()
            return None

    def _record_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnected.set()
        self._disconnected_any_thread.set()

    async def _respond(self, connection: _Connection, request: RecordedRequest) -> None:
        self.requests.append(request)
        api = request.api
        is_models = request.path.endswith("/models")
        if api == "other" or request.method != ("GET" if is_models else "POST"):
            await self._send_error(connection, api, _Failure(404, None, f"Unknown URL {request.method} {request.path}"))
            return
        if failure := self._take_failure(api):
            await self._send_error(connection, api, failure)
            return
        if is_models:
            await self._send_models(connection, api)
            return
        if request.path.endswith("/embeddings"):
            await self._openai_embeddings(connection, request)
            return
        if problem := _invalid(request):
            await self._send_error(connection, api, _Failure(400, None, problem))
            return
        reply = self._plan(request)
        await asyncio.sleep(self.delay_s)
        if api == "openai":
            send = self._openai_stream if request.stream else self._openai_completion
        else:
            send = self._anthropic_stream if request.stream else self._anthropic_message
        await send(connection, request, reply)

    def _plan(self, request: RecordedRequest) -> _Reply:
        body = request.body
        size = max(1, self.chunk_chars)
        calls = [
            _ToolCall(name, arguments, _pieces(arguments, size), _tool_input(arguments, request.api))
            for name, arguments in self._calls_for(request)
        ]
        # A tool-call answer is never cut short by max_tokens: a test that wants a cut reply asks for text.
        deltas = _pieces(self.tool_preamble if calls else self._reply_text(request), size)
        limit = next((v for k in ("max_completion_tokens", "max_tokens") if type(v := body.get(k)) is int), None)
        truncated = not calls and limit is not None and 0 <= limit < len(deltas)
        return _Reply(
            id=next(self._ids),
            model=body["model"],
            deltas=deltas[:limit] if truncated else deltas,
            truncated=truncated,
            input_tokens=sum(len(_part_text(part).split()) for part in _content_parts(body)),
            break_after=self._take(self._stream_breaks) if request.stream else None,
            malformed_after=self._take(self._malformed) if request.stream else None,
            tool_calls=tuple(calls),
        )

    def _calls_for(self, request: RecordedRequest) -> list[tuple[str, str]]:
        """The tool calls that answer the request: none unless it offers tools and is not handing results back."""
        body, api = request.body, request.api
        tools = _offered_tools(body, api)
        if not tools or _tool_results(body, api) is not None:
            return []
        calls = list(self.tool_calls or [(_forced_tool(body, api) or tools[0], self.json_reply)])
        # As the real models do when parallel calls are turned off: one call at most.
        return calls[:1] if _one_call_only(body, api) else calls

    def _reply_text(self, request: RecordedRequest) -> str:
        body = request.body
        if (results := _tool_results(body, request.api)) is not None:
            return "Results: " + " | ".join(results)
        if request.api == "anthropic":
            if self.anthropic_fenced_json:
                return f"```json\n{self.json_reply}\n```"
            output_config = body.get("output_config")
            wants_json = isinstance(output_config, dict) and isinstance(output_config.get("format"), dict)
        else:
            response_format = body.get("response_format")
            wants_json = isinstance(response_format, dict) and response_format.get("type") in (
                "json_object",
                "json_schema",
            )
        return self.json_reply if wants_json else self.reply

    async def _send_frames(
        self, connection: _Connection, reply: _Reply, frames: list[_Frame], malformed: bytes
    ) -> bool:
        """Sends the frames, their pieces `gap_s` apart and counted by the scripted failures; False when the
        script dropped the connection instead of finishing."""
        pieces = 0
        for data, is_piece in frames:
            if is_piece:
                if pieces == reply.break_after:
                    break
                if pieces == reply.malformed_after:
                    await connection.send_chunk(malformed)
                if pieces:
                    await asyncio.sleep(self.gap_s)
                pieces += 1
            await connection.send_chunk(data)
        if reply.break_after is None:
            return True
        connection.abort()
        return False

    async def _openai_completion(self, connection: _Connection, request: RecordedRequest, reply: _Reply) -> None:
        payload = {
            "id": f"chatcmpl-fake{reply.id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": _openai_message(reply),
                    "logprobs": None,
                    "finish_reason": _openai_finish(reply),
                }
            ],
            "usage": _openai_usage(reply),
            "system_fingerprint": "fp_fake",
        }
        await connection.send_response(200, _headers("openai", reply.id), _dumps(payload))

    async def _openai_embeddings(self, connection: _Connection, request: RecordedRequest) -> None:
        """OpenAI's embeddings: a deterministic vector per input (`dimensions` long, 8 by default), as floats or
        as base64 of little-endian float32, and a token count of the words."""
        body = request.body
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(inputs, list):
            await self._send_error(connection, "openai", _Failure(400, None, "input: Field required"))
            return
        size = body.get("dimensions") or 8
        data = []
        for index, text in enumerate(inputs):
            vector = [((len(str(text)) + index + i) % 7) / 7 for i in range(size)]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(text).split()) for text in inputs)
        payload = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await connection.send_response(200, _headers("openai", next(self._ids)), _dumps(payload))

    async def _openai_stream(self, connection: _Connection, request: RecordedRequest, reply: _Reply) -> None:
        options = request.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        common = {
            "id": f"chatcmpl-fake{reply.id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
            # With include_usage every chunk carries "usage": null except the last one.
            frame = {**common, "choices": choices, **({"usage": usage} if include_usage else {})}
            return b"data: " + _dumps(frame) + b"\n\n"

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        def tool_call(delta: dict[str, Any]) -> bytes:
            return chunk([choice({"tool_calls": [delta]})])

        # As in a complete message, `content` is null when the model only calls tools.
        content = None if reply.tool_calls and not reply.deltas else ""
        frames = [(chunk([choice({"content": text})]), True) for text in reply.deltas]
        for index, call in enumerate(reply.tool_calls):
            head = {"index": index, "id": _call_id(reply, index, "openai"), "type": "function"}
            frames.append((tool_call({**head, "function": {"name": call.name, "arguments": ""}}), False))
            frames += [(tool_call({"index": index, "function": {"arguments": piece}}), True) for piece in call.pieces]

        await connection.start_stream(_headers("openai", reply.id, sse=True))
        await connection.send_chunk(chunk([choice({"role": "assistant", "content": content, "refusal": None})]))
        if not await self._send_frames(connection, reply, frames, _MALFORMED_OPENAI):
            return
        await connection.send_chunk(chunk([choice({}, _openai_finish(reply))]))
        if include_usage:
            await connection.send_chunk(chunk([], _openai_usage(reply)))
        await connection.send_chunk(b"data: [DONE]\n\n")
        await connection.end_stream()

    async def _anthropic_message(self, connection: _Connection, request: RecordedRequest, reply: _Reply) -> None:
        payload = {
            "id": f"msg_fake{reply.id}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [
                *([{"type": "text", "text": "".join(reply.deltas)}] if _has_text_block(reply) else []),
                *(
                    {
                        "type": "tool_use",
                        "id": _call_id(reply, number, "anthropic"),
                        "name": call.name,
                        "input": call.input,
                    }
                    for number, call in enumerate(reply.tool_calls)
                ),
            ],
            "stop_reason": _anthropic_stop(reply),
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }
        await connection.send_response(200, _headers("anthropic", reply.id), _dumps(payload))

    async def _anthropic_stream(self, connection: _Connection, request: RecordedRequest, reply: _Reply) -> None:
        def event(payload: dict[str, Any]) -> bytes:
            return f"event: {payload['type']}\ndata: ".encode() + _dumps(payload) + b"\n\n"

        message: dict[str, Any] = {
            "id": f"msg_fake{reply.id}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The real API reports a provisional output count here and the total in message_delta.
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
        }

        def block_start(index: int, block: dict[str, Any]) -> bytes:
            return event({"type": "content_block_start", "index": index, "content_block": block})

        def block_delta(index: int, delta: dict[str, Any]) -> bytes:
            return event({"type": "content_block_delta", "index": index, "delta": delta})

        def block_stop(index: int) -> bytes:
            return event({"type": "content_block_stop", "index": index})

        # Each block: its content_block_start, then its deltas. The index counts every block, text included.
        blocks: list[tuple[bytes, list[_Frame]]] = []
        if _has_text_block(reply):
            text_deltas = [(block_delta(0, {"type": "text_delta", "text": text}), True) for text in reply.deltas]
            blocks.append((block_start(0, {"type": "text", "text": ""}), text_deltas))
        for number, call in enumerate(reply.tool_calls):
            index = len(blocks)
            tool_use = {"type": "tool_use", "id": _call_id(reply, number, "anthropic"), "name": call.name, "input": {}}
            # The real API opens every tool_use block with an empty piece of JSON.
            json_deltas = [
                (block_delta(index, {"type": "input_json_delta", "partial_json": piece}), is_piece)
                for piece, is_piece in [("", False), *((piece, True) for piece in call.pieces)]
            ]
            blocks.append((block_start(index, tool_use), json_deltas))
        (first_start, frames), *others = blocks
        for index, (start, deltas) in enumerate(others, 1):
            frames = [*frames, (block_stop(index - 1), False), (start, False), *deltas]

        await connection.start_stream(_headers("anthropic", reply.id, sse=True))
        await connection.send_chunk(event({"type": "message_start", "message": message}))
        await connection.send_chunk(first_start)
        await connection.send_chunk(event({"type": "ping"}))
        if not await self._send_frames(connection, reply, frames, _MALFORMED_ANTHROPIC):
            return
        await connection.send_chunk(block_stop(len(blocks) - 1))
        stop = {"stop_reason": _anthropic_stop(reply), "stop_sequence": None}
        await connection.send_chunk(
            event({"type": "message_delta", "delta": stop, "usage": {"output_tokens": reply.output_tokens}})
        )
        await connection.send_chunk(event({"type": "message_stop"}))
        await connection.end_stream()

    async def _send_models(self, connection: _Connection, api: Api) -> None:
        number = next(self._ids)
        if api == "anthropic":
            data: list[dict[str, Any]] = [
                {
                    "type": "model",
                    "id": model,
                    "display_name": model,
                    "created_at": "2025-01-01T00:00:00Z",
                    "lifecycle": "active",
                }
                for model in self.models
            ]
            ids = [model["id"] for model in data]
            payload: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            }
        else:
            data = [
                {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for model in self.models
            ]
            payload = {"object": "list", "data": data}
        await connection.send_response(200, _headers(api, number), _dumps(payload))

    async def _send_error(self, connection: _Connection, api: Api, failure: _Failure) -> None:
        number = next(self._ids)
        headers = _headers(api, number)
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        payload: dict[str, Any]
        if api == "anthropic":
            error = {"type": _ANTHROPIC_ERRORS.get(failure.status, "api_error"), "message": failure.message}
            payload = {"type": "error", "error": error, "request_id": f"req_fake{number}"}
        else:
            default = ("server_error", None) if failure.status >= 500 else ("invalid_request_error", None)
            error_type, code = _OPENAI_ERRORS.get(failure.status, default)
            payload = {"error": {"message": failure.message, "type": error_type, "param": None, "code": code}}
        await connection.send_response(failure.status, headers, _dumps(payload))


class FakeProviderThread(FakeProvider):
    """The same fake on an event loop of its own in a background thread, for sync tests and for
    services run as subprocesses (point them at it with `env()`)."""

    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop_requested: asyncio.Event | None = None

    def start(self) -> Self:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="fake-llm-provider", daemon=True)
        self._thread.start()
        if not ready.wait(_STOP_TIMEOUT_S) or not self.url:
            self._raise_errors()
            raise RuntimeError("the fake provider did not start")
        return self

    def stop(self) -> None:
        self._shut_down()
        self._raise_errors()

    def wait_for_disconnect(self, timeout_s: float) -> bool:
        """Blocks until a client has hung up mid-response (True) or `timeout_s` passes (False)."""
        return self._disconnected_any_thread.wait(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._shut_down()
        if exc is None:
            self._raise_errors()

    def _shut_down(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop_requested is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self._loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(_STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError("the fake provider thread did not stop")
        self._thread = None

    def _main(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve_until_stopped(ready))
        except BaseException as error:  # reported by start() and stop() in the test's thread
            self.errors.append(error)
        finally:
            ready.set()

    async def _serve_until_stopped(self, ready: threading.Event) -> None:
        server = _Server(self)
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self.url = f"http://127.0.0.1:{await server.start()}"
        ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await server.stop()


@contextlib.asynccontextmanager
async def running_fake(
    *,
    reply: str = DEFAULT_REPLY,
    json_reply: str = DEFAULT_JSON_REPLY,
    anthropic_fenced_json: bool = False,
    chunk_chars: int = 4,
    delay_s: float = 0.0,
    gap_s: float = 0.0,
    models: tuple[str, ...] = DEFAULT_MODELS,
    tool_calls: list[tuple[str, str]] | None = None,
    tool_preamble: str = "",
) -> AsyncIterator[FakeProvider]:
    """A `FakeProvider` serving on the running loop for the duration of the block."""
    fake = FakeProvider(
        reply=reply,
        json_reply=json_reply,
        anthropic_fenced_json=anthropic_fenced_json,
        chunk_chars=chunk_chars,
        delay_s=delay_s,
        gap_s=gap_s,
        models=models,
        tool_calls=tool_calls,
        tool_preamble=tool_preamble,
    )
    async with fake.serving():
        yield fake


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: float | None
    message: str
    # Only requests to this API fail; None: any request.
    api: Api | None = None


@dataclass(frozen=True, slots=True)
class _Reply:
    id: int
    model: str
    deltas: list[str]
    # Cut short by the request's max_tokens: finish_reason "length" / stop_reason "max_tokens".
    truncated: bool
    input_tokens: int
    # Deltas to send before dropping the connection; None for a complete response.
    break_after: int | None
    # Deltas to send before an event that is not JSON; None for none.
    malformed_after: int | None
    # The calls made after the text in `deltas` (then the model's preamble); empty for a text answer.
    tool_calls: tuple[_ToolCall, ...] = ()

    @property
    def output_tokens(self) -> int:
        """One token a piece: each delta of text and each piece of tool arguments."""
        return len(self.deltas) + sum(len(call.pieces) for call in self.tool_calls)


@dataclass(frozen=True, slots=True)
class _ToolCall:
    name: str
    # JSON text, as OpenAI sends it; a stream sends it in `pieces`.
    arguments: str
    pieces: list[str]
    # The parsed arguments, as Anthropic sends them; None for OpenAI, where they need not even be JSON.
    input: dict[str, Any] | None


# One event of a stream, and whether it is a piece (a delta of text or of tool arguments): only pieces are
# paced by `gap_s`, counted by the scripted failures, and billed as output tokens.
_Frame = tuple[bytes, bool]


def _invalid(request: RecordedRequest) -> str | None:
    """What the real API would reject the body for, in its words; None when it is acceptable."""
    body = request.body
    if not isinstance(body, dict):
        return "The request body is not a valid JSON object."
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: Field required"
    if request.api == "anthropic":
        if type(body.get("max_tokens")) is not int:
            return "max_tokens: Field required"
        return _invalid_anthropic_tools(body) or _invalid_anthropic_turns(body["messages"])
    return _invalid_openai_tools(body) or _invalid_openai_turns(body["messages"])


def _invalid_openai_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is None:
        return _invalid_openai_tool_choice(body)
    if not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array."
    if not tools:
        return "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead."
    problems = (_invalid_openai_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools))
    return next(filter(None, problems), None) or _invalid_openai_tool_choice(body)


def _invalid_openai_tool(tool: Any, where: str) -> str | None:
    if not isinstance(tool, dict) or "type" not in tool:
        return f"Missing required parameter: '{where}.type'."
    if tool["type"] != "function":
        return f"Invalid value: {json.dumps(tool['type'])}. Supported values are: 'function'."
    function = tool.get("function")
    if not isinstance(function, dict):
        return f"Missing required parameter: '{where}.function'."
    name = function.get("name")
    if not isinstance(name, str):
        return f"Missing required parameter: '{where}.function.name'."
    if not _TOOL_NAME.fullmatch(name):
        return (
            f"Invalid '{where}.function.name': string does not match pattern. "
            f"Expected a string that matches the pattern '{_TOOL_NAME_RULE}'."
        )
    return None


def _invalid_openai_tool_choice(body: dict[str, Any]) -> str | None:
    if body.get("tool_choice") is None:
        return None
    if not body.get("tools"):
        return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
    forced = _forced_tool(body, "openai")
    if forced is not None and forced not in _tool_names(body, "openai"):
        return f"Invalid value for 'tool_choice': function '{forced}' is not one of the 'tools'."
    return None


def _invalid_openai_turns(messages: list[Any]) -> str | None:
    """Every `tool` message answers a call of the assistant message before it, and every call is answered."""
    calls: list[Any] | None = None  # the ids of the assistant message that tool messages may answer now
    unanswered: list[Any] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                return f"Missing required parameter: 'messages.[{index}].tool_call_id'."
            if calls is None:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'."
                )
            if call_id not in calls:
                return (
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message."
                )
            unanswered = [pending for pending in unanswered if pending != call_id]
            continue
        if unanswered:
            break
        tool_calls = message.get("tool_calls") if role == "assistant" else None
        calls = [call.get("id") for call in tool_calls if isinstance(call, dict)] if tool_calls else None
        unanswered = list(calls or [])
    if unanswered:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: "
            f"{', '.join(map(str, unanswered))}"
        )
    return None


def _invalid_anthropic_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is None:
        return _invalid_anthropic_tool_choice(body)
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    problems = (_invalid_anthropic_tool(tool, index) for index, tool in enumerate(tools))
    return next(filter(None, problems), None) or _invalid_anthropic_tool_choice(body)


def _invalid_anthropic_tool(tool: Any, index: int) -> str | None:
    where = f"tools.{index}.custom"
    if not isinstance(tool, dict):
        return f"tools.{index}: Input should be a valid dictionary or object to extract fields from"
    name = tool.get("name")
    if not isinstance(name, str):
        return f"{where}.name: Field required"
    if not _TOOL_NAME.fullmatch(name):
        return f"{where}.name: String should match pattern '{_TOOL_NAME_RULE}'"
    if "input_schema" not in tool:
        return f"{where}.input_schema: Field required"
    if not isinstance(tool["input_schema"], dict):
        return f"{where}.input_schema: Input should be a valid dictionary or object to extract fields from"
    return None


def _invalid_anthropic_tool_choice(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _ANTHROPIC_TOOL_CHOICES:
        expected = ", ".join(f"'{tag}'" for tag in _ANTHROPIC_TOOL_CHOICES)
        return f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: {expected}"
    if kind != "tool":
        return None
    name = choice.get("name")
    if not isinstance(name, str):
        return "tool_choice.tool.name: Field required"
    if name not in _tool_names(body, "anthropic"):
        return f"tool_choice.tool.name: tool '{name}' is not one of the tools"
    return None


def _invalid_anthropic_turns(messages: list[Any]) -> str | None:
    """Every `tool_result` answers a `tool_use` of the assistant message just before, and every tool_use is
    answered in the user message just after.

    Turns need not alternate: the real API joins consecutive turns of one role into one.
    """
    uses: list[Any] = []  # the tool_use ids of the message before
    uses_at = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        blocks = list(enumerate(_as_parts(message.get("content"))))
        if message.get("role") == "user":
            answered = []
            for number, block in blocks:
                if not _is_tool_result(block):
                    continue
                use_id = block.get("tool_use_id")
                where = f"messages.{index}.content.{number}"
                if not isinstance(use_id, str):
                    return f"{where}.tool_result.tool_use_id: Field required"
                if use_id not in uses:
                    return (
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. Each "
                        "`tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )
                answered.append(use_id)
            if unanswered := [use for use in uses if use not in answered]:
                return _unanswered_tool_use(uses_at, unanswered)
            uses = []
        else:
            if uses:
                return _unanswered_tool_use(uses_at, uses)
            uses = [
                block.get("id") for _, block in blocks if isinstance(block, dict) and block.get("type") == "tool_use"
            ]
            uses_at = index
    return _unanswered_tool_use(uses_at, uses) if uses else None


def _unanswered_tool_use(index: int, uses: list[Any]) -> str:
    return (
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(map(str, uses))}. Each `tool_use` block must have a corresponding `tool_result` block "
        "in the next message."
    )


def _tool_names(body: dict[str, Any], api: Api) -> list[str]:
    """The names of the request's tools (which `_invalid` has checked)."""
    tools = body.get("tools") or []
    return [tool["name"] if api == "anthropic" else tool["function"]["name"] for tool in tools]


def _offered_tools(body: dict[str, Any], api: Api) -> list[str]:
    """The names of the tools the model may call: none when the request's tool choice is none."""
    choice = body.get("tool_choice")
    refused = isinstance(choice, dict) and choice.get("type") == "none" if api == "anthropic" else choice == "none"
    return [] if refused else _tool_names(body, api)


def _forced_tool(body: dict[str, Any], api: Api) -> str | None:
    """The tool the request makes the model call, if it names one."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    if api == "anthropic":
        return choice.get("name") if choice.get("type") == "tool" else None
    function = choice.get("function")
    return function.get("name") if choice.get("type") == "function" and isinstance(function, dict) else None


def _one_call_only(body: dict[str, Any], api: Api) -> bool:
    if api == "anthropic":
        choice = body.get("tool_choice")
        return isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True
    return body.get("parallel_tool_calls") is False


def _tool_results(body: dict[str, Any], api: Api) -> list[str] | None:
    """The texts of the tool results that the last message hands back, in order; None when it hands back none.

    OpenAI's results are the `tool` messages that end the conversation, Anthropic's the `tool_result` blocks of
    its last user message.
    """
    messages = body["messages"]
    if api == "anthropic":
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        results = [_text(block.get("content")) for block in _as_parts(last.get("content")) if _is_tool_result(block)]
    else:
        trailing = itertools.takewhile(lambda message: _role(message) == "tool", reversed(messages))
        results = [_text(message.get("content")) for message in trailing][::-1]
    return results or None


def _is_tool_result(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "tool_result"


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _text(content: Any) -> str:
    """The text of message content: a string, or the text parts of a list of parts."""
    return "".join(_part_text(part) for part in _as_parts(content))


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _tool_input(arguments: str, api: Api) -> dict[str, Any] | None:
    """Anthropic's `input`: the scripted arguments as an object; None for OpenAI."""
    if api != "anthropic":
        return None
    parsed = json.loads(arguments)
    if not isinstance(parsed, dict):
        raise ValueError(f"Anthropic tool input must be a JSON object, not {arguments!r}")
    return parsed


def _call_id(reply: _Reply, number: int, api: Api) -> str:
    return f"{'toolu' if api == 'anthropic' else 'call'}_fake{reply.id}_{number}"


def _openai_message(reply: _Reply) -> dict[str, Any]:
    text = "".join(reply.deltas)
    if not reply.tool_calls:
        return {"role": "assistant", "content": text, "refusal": None}
    calls = [
        {
            "id": _call_id(reply, number, "openai"),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for number, call in enumerate(reply.tool_calls)
    ]
    return {"role": "assistant", "content": text or None, "tool_calls": calls, "refusal": None}


def _openai_finish(reply: _Reply) -> str:
    if reply.tool_calls:
        return "tool_calls"
    return "length" if reply.truncated else "stop"


def _anthropic_stop(reply: _Reply) -> str:
    if reply.tool_calls:
        return "tool_use"
    return "max_tokens" if reply.truncated else "end_turn"


def _has_text_block(reply: _Reply) -> bool:
    """Whether an Anthropic reply starts with a text block: always, unless the model only calls tools."""
    return bool(reply.deltas) or not reply.tool_calls


def _content_parts(body: Any) -> Iterator[Any]:
    """Every piece of prompt content: Anthropic's top-level `system`, then each message's content."""
    if not isinstance(body, dict):
        return
    yield from _as_parts(body.get("system"))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            yield from _as_parts(message.get("content"))


def _as_parts(content: Any) -> list[Any]:
    return content if isinstance(content, list) else [content]


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return str(part["text"])
    return ""


def _is_image(part: Any, api: Api) -> bool:
    if not isinstance(part, dict):
        return False
    if api == "anthropic":
        return part.get("type") == "image" and isinstance(part.get("source"), dict)
    return part.get("type") == "image_url" and isinstance(part.get("image_url"), dict)


def _openai_usage(reply: _Reply) -> dict[str, int]:
    completion = reply.output_tokens
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.input_tokens + completion,
    }


def _headers(api: Api, number: int, *, sse: bool = False) -> dict[str, str]:
    request_id = "request-id" if api == "anthropic" else "x-request-id"
    content_type = "text/event-stream; charset=utf-8" if sse else "application/json"
    return {"Content-Type": content_type, request_id: f"req_fake{number}"}


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


class _BadRequest(Exception):
    """The bytes received are not an HTTP/1.1 request this server understands."""


class _Connection:
    """One client's TCP connection: buffered HTTP/1.1 request parsing and response writing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        self.number = number
        self.keep_alive = True
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()

    async def read_request(self) -> RecordedRequest | None:
        """The next request; None when the client closed the connection between requests."""
        head = await self._read_until(b"\r\n\r\n", _MAX_HEAD_BYTES, at_start=True)
        if head is None:
            return None
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*request_line.split(" "), "", "", ""][:3]
        if not method or not version.startswith("HTTP/1."):
            raise _BadRequest(f"not an HTTP/1.x request line: {request_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise _BadRequest(f"malformed header line: {line!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        tokens = headers.get("connection", "").lower()
        self.keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        if headers.get("expect", "").lower() == "100-continue":
            await self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw_body = await self._read_body(headers)
        url = urlsplit(target)
        return RecordedRequest(method, url.path, url.query, headers, _parse_json(raw_body), raw_body, self.number)

    async def wait_until_peer_closes(self) -> None:
        """Returns once the client hangs up; anything it sends meanwhile is kept for the next request."""
        with contextlib.suppress(ConnectionError):
            while await self._fill():
                pass

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def send_response(self, status: int, headers: dict[str, str], body: bytes) -> None:
        await self.send(self._head(status, {**headers, "Content-Length": str(len(body))}) + body)

    async def start_stream(self, headers: dict[str, str]) -> None:
        await self.send(self._head(200, {**headers, "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"}))

    async def send_chunk(self, data: bytes) -> None:
        await self.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_stream(self) -> None:
        await self.send(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drops the connection at once, with no terminating chunk."""
        self.keep_alive = False
        self._writer.transport.abort()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"Date: {email.utils.formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if not self.keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _fill(self) -> bool:
        data = await self._reader.read(_READ_SIZE)
        self._buffer += data
        return bool(data)

    async def _read_until(self, separator: bytes, limit: int, *, at_start: bool = False) -> bytes | None:
        while (end := self._buffer.find(separator)) < 0:
            if len(self._buffer) > limit:
                raise _BadRequest("header section too large")
            if not await self._fill():
                if at_start and not self._buffer:
                    return None
                raise _BadRequest("connection closed in the middle of a request")
        data = bytes(self._buffer[:end])
        del self._buffer[: end + len(separator)]
        return data

    async def _read_line(self) -> bytes:
        line = await self._read_until(b"\r\n", _MAX_HEAD_BYTES)
        assert line is not None
        return line

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise _BadRequest("connection closed in the middle of a body")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked_body()
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > _MAX_BODY_BYTES:
            raise _BadRequest(f"bad Content-Length: {length!r}")
        return await self._read_exactly(int(length))

    async def _read_chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            size_field = (await self._read_line()).split(b";")[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise _BadRequest(f"bad chunk size: {size_field!r}") from None
            if size == 0:
                while await self._read_line():  # trailer fields, up to the empty line
                    pass
                return bytes(body)
            body += await self._read_exactly(size)
            if await self._read_exactly(2) != b"\r\n" or len(body) > _MAX_BODY_BYTES:
                raise _BadRequest("bad chunk framing or body too large")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class _Server:
    """Accepts connections and runs each request's response against the client hanging up."""

    def __init__(self, provider: FakeProvider) -> None:
        self._provider = provider
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = _Connection(reader, writer, next(self._numbers))
        try:
            # stop() cancels connections; ending normally spares Python 3.11's stream callback,
            # which calls exception() on the finished task and logs an error for a cancelled one.
            with contextlib.suppress(asyncio.CancelledError):
                await self._serve(connection)
        except Exception as error:  # a bug in the fake: fail the test rather than hide it in a log
            self._provider.errors.append(error)
        finally:
            self._tasks.discard(task)
            # stop() may cancel this task again while it closes; the connection is closed either way.
            with contextlib.suppress(asyncio.CancelledError):
                await connection.close()

    async def _serve(self, connection: _Connection) -> None:
        while connection.keep_alive:
            try:
                request = await connection.read_request()
            except _BadRequest as error:
                connection.keep_alive = False
                await connection.send_response(400, {"Content-Type": "text/plain"}, str(error).encode())
                return
            except ConnectionError:
                return
            if request is None:
                return
            await self._answer(connection, request)

    async def _answer(self, connection: _Connection, request: RecordedRequest) -> None:
        responding = asyncio.create_task(self._provider._respond(connection, request))
        watching = asyncio.create_task(connection.wait_until_peer_closes())
        try:
            await asyncio.wait({responding, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            responding.cancel()
            await asyncio.wait({responding, watching})
        if responding.cancelled() or isinstance(responding.exception(), ConnectionError):
            connection.keep_alive = False
            self._provider._record_disconnect()
            return
        responding.result()
