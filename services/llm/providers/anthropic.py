"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import orjson
from opentelemetry.trace import Tracer

from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    Delta,
    Finished,
    FinishReason,
    ImagePart,
    StreamEvent,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from services.llm.embeddings import Embeddings, EmbeddingsRequest
from services.llm.providers.base import ProviderError, ProviderSettings, status_error, usage_from, usage_of
from services.llm.providers.fences import FenceStripper, strip_fences
from services.llm.providers.finish import finish_reason
from services.llm.providers.transport import call_timeout, sdk_client_options
from services.llm.structured import OPEN_OBJECT
from services.llm.tools import arguments_object, arguments_text

Json = dict[str, Any]

# JSON mode without tools is a forced tool whose input schema is the caller's schema (an open object for
# json_object): Claude's answer is then that tool's input, always JSON of the schema's shape. Next to the
# caller's own tools (which a forced tool would shut out) JSON is asked for in words instead, and the fence
# Claude still tends to add is stripped from the answer.
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else: no prose, no code fences."
ANSWER_TOOL = "json_answer"
_ANSWER_DESCRIPTION = "Give your whole answer by calling this tool: its input is the answer."
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none", "function": "tool"}

# anthropic 2.x has no keywords for these; the API still reads them from the body (some newer models refuse them).
_BODY_ONLY = ("temperature", "top_p")


def image_block(part: ImagePart) -> Json:
    """An image content block: base64 from a `data:` URL, or the URL itself for http(s).

    Raises ValueError, in words safe for callers, for any other URL.
    """
    url = part.url
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        media_type, *parameters = header[len("data:") :].split(";")
        if not comma or "base64" not in parameters or not media_type:
            raise ValueError("an image data URL must be data:<media type>;base64,<data>")
        # The base64 text goes on as it is: decoding it would only copy the image for nothing.
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError("an image URL must be an http(s) URL or a base64 data URL")


def _text_blocks(text: str) -> list[Json]:
    # The API rejects empty text blocks.
    return [{"type": "text", "text": text}] if text else []


def tool_use_block(call: ToolCall) -> Json:
    """A call as a `tool_use` block; ValueError when its arguments are not a JSON object."""
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_object(call.arguments)}


def content_blocks(message: ChatMessage) -> list[Json]:
    """A message's content as Anthropic content blocks, leaving out empty text: a tool message is a
    `tool_result` block, an assistant's calls `tool_use` blocks after its text."""
    if message.role == "tool":
        result: Json = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.text:
            result["content"] = message.text
        return [result]
    if isinstance(message.content, str):
        blocks = _text_blocks(message.content)
    else:
        blocks = []
        for part in message.content:
            blocks.extend([image_block(part)] if isinstance(part, ImagePart) else _text_blocks(part.text))
    return blocks + [tool_use_block(call) for call in message.tool_calls]


def answer_tool(request: ChatRequest) -> Json | None:
    """The forced tool that carries a JSON-mode answer, or None when JSON is asked for in words (next to the
    caller's tools, or for a schema whose top level is not an object, which a tool's input must be)."""
    if not request.json_mode or request.tools:
        return None
    schema = request.json_schema.schema if request.json_schema is not None else OPEN_OBJECT
    if schema.get("type") != "object":
        return None
    name = request.json_schema.name if request.json_schema is not None else ANSWER_TOOL
    description = (request.json_schema.description if request.json_schema else None) or _ANSWER_DESCRIPTION
    return {"name": name, "description": description, "input_schema": schema}


def system_prompt(request: ChatRequest) -> str:
    """Every system message's text, in order, a blank line apart; JSON asked for in words adds its instruction."""
    paragraphs = [message.text for message in request.messages if message.role == "system" and message.text]
    if request.json_mode and answer_tool(request) is None:
        paragraphs.append(JSON_INSTRUCTION)
    return "\n\n".join(paragraphs)


def tool_payload(tool: Tool) -> Json:
    payload: Json = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description is not None:
        payload["description"] = tool.description
    return payload


def _tools(request: ChatRequest) -> tuple[list[Json], Json | None]:
    """The `tools` and `tool_choice` of a request (its forced answer tool in JSON mode)."""
    if (forced := answer_tool(request)) is not None:
        return [forced], {"type": "tool", "name": forced["name"]}
    tools = [tool_payload(tool) for tool in request.tools]
    choice: Json | None = None
    if request.tool_choice is not None:
        choice = {"type": _TOOL_CHOICES[request.tool_choice.mode]}
        if request.tool_choice.mode == "function":
            choice["name"] = request.tool_choice.name
    if request.parallel_tool_calls is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return tools, choice


def conversation(request: ChatRequest) -> list[Json]:
    """The user and assistant messages, runs of one role merged, since Anthropic requires them to alternate."""
    turns: list[Json] = []
    # A lone text message keeps its plain string content; merged or multi-part ones become block lists.
    # Tool results go back in a user turn.
    for message in request.messages:
        if message.role == "system":
            continue
        role = "user" if message.role == "tool" else message.role
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]
            if isinstance(previous["content"], str):
                previous["content"] = _text_blocks(previous["content"])
            previous["content"].extend(content_blocks(message))
        elif isinstance(message.content, str) and message.role != "tool" and not message.tool_calls:
            turns.append({"role": role, "content": message.content})
        else:
            turns.append({"role": role, "content": content_blocks(message)})
    return turns


def request_payload(request: ChatRequest, upstream_model: str, default_max_tokens: int) -> Json:
    """The Messages API request body, leaving out what the caller did not set.

    Seed and the penalties have no Anthropic equivalent and are dropped. Raises ValueError for an image
    URL that Anthropic cannot take.
    """
    payload: Json = {
        "model": upstream_model,
        "max_tokens": request.max_tokens if request.max_tokens is not None else default_max_tokens,
        "messages": conversation(request),
    }
    if system := system_prompt(request):
        payload["system"] = system
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    # Current models reject temperature and top_p together; OpenAI callers often send both, top_p mostly as 1.
    elif request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop_sequences"] = list(request.stop)
    tools, choice = _tools(request)
    if tools:
        payload["tools"] = tools
    if choice is not None:
        payload["tool_choice"] = choice
    return payload


def answer_of(body: Json, answer: Json | None) -> tuple[str, tuple[ToolCall, ...]]:
    """A Messages API answer's text and calls; with a forced answer tool, the text is that tool's input.
    KeyError, TypeError or AttributeError when the body is not the protocol's."""
    texts, calls = [], []
    for block in body["content"]:
        kind = block.get("type")
        if kind == "text" and answer is None:
            if not isinstance(block["text"], str):
                raise TypeError("a text block's text is not a string")
            texts.append(block["text"])
        elif kind == "tool_use" and answer is not None and block["name"] == answer["name"]:
            texts.append(arguments_text(block["input"]))
        elif kind == "tool_use":
            if not isinstance(block["id"], str) or not isinstance(block["name"], str):
                raise TypeError("a tool_use block's id or name is not a string")
            calls.append(ToolCall(block["id"], block["name"], arguments_text(block["input"])))
    return "".join(texts), tuple(calls)


def answered_reason(raw: object, answer: Json | None) -> FinishReason:
    """The finish reason; an answer given through the forced tool stops like text."""
    reason = finish_reason(raw)
    return "stop" if answer is not None and reason == "tool_calls" else reason


def _sdk_arguments(payload: Json) -> Json:
    """The create() keyword arguments for a request body."""
    arguments = {key: value for key, value in payload.items() if key not in _BODY_ONLY}
    if extra := {key: payload[key] for key in _BODY_ONLY if key in payload}:
        arguments["extra_body"] = extra
    return arguments


class AnthropicProvider:
    """Anthropic's API; the SDK's own retries are off because the gateway retries across models."""

    def __init__(
        self, settings: ProviderSettings, default_max_tokens: int = 4096, *, tracer: Tracer | None = None
    ) -> None:
        self.name = settings.name
        self._connect_timeout_s = settings.connect_timeout_s
        self._default_max_tokens = default_max_tokens
        self._client = anthropic.AsyncAnthropic(**sdk_client_options(settings, tracer))

    def _timeout(self, timeout_s: float) -> httpx2.Timeout:
        return call_timeout(timeout_s, self._connect_timeout_s)

    def _payload(self, request: ChatRequest, upstream_model: str) -> Json:
        try:
            return request_payload(request, upstream_model, self._default_max_tokens)
        except ValueError as error:
            raise ProviderError(self.name, "request", f"{self.name} cannot take this request: {error}") from error

    def _error(self, error: Exception) -> ProviderError:
        # A connection cut while a stream is read arrives as httpx2's own error or, from anthropic 2.17 on,
        # wrapped in APIConnectionError: both are retryable, whichever release is installed.
        if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
            return ProviderError(self.name, "timeout", f"{self.name} did not answer in time")
        if isinstance(error, anthropic.APIStatusError) and error.status_code >= 400:
            detail = error.api_message or error.message
            return status_error(self.name, error.status_code, detail, error.response.headers)
        if isinstance(error, anthropic.APIConnectionError):
            return ProviderError(self.name, "retryable", f"could not reach {self.name}")
        if isinstance(error, httpx2.HTTPError):
            return ProviderError(self.name, "retryable", f"{self.name} broke off its response")
        if isinstance(error, anthropic.APIStatusError):
            # An `error` event inside a 200 stream, such as overloaded_error; the SDK raises it with status 200.
            return ProviderError(
                self.name, "retryable", f"{self.name} sent an error mid-stream: {error.api_message or error.type}"
            )
        # A body or event that is not the protocol's JSON.
        return ProviderError(self.name, "retryable", f"{self.name} sent a malformed response: {error}")

    async def complete(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> Completion:
        answer = answer_tool(request)
        try:
            # The SDK's plain `post` sends the body as built, skipping create()'s re-validation and the
            # pydantic models of the answer (bytes go out as they are); errors still come back as the SDK's.
            response = await self._client.post(
                "/v1/messages",
                content=orjson.dumps(self._payload(request, upstream_model)),
                cast_to=httpx2.Response,
                options={"timeout": self._timeout(timeout_s)},
            )
            body = orjson.loads(response.content)
        except (anthropic.AnthropicError, httpx2.HTTPError, orjson.JSONDecodeError) as error:
            raise self._error(error) from error
        try:
            text, calls = answer_of(body, answer)
        except (KeyError, TypeError, AttributeError, orjson.JSONEncodeError) as error:
            raise ProviderError(self.name, "retryable", f"{self.name} sent a malformed completion") from error
        if request.json_mode and answer is None:
            text = strip_fences(text)
        usage = usage_from(body.get("usage"), "input_tokens", "output_tokens")
        return Completion(text, answered_reason(body.get("stop_reason"), answer), usage, calls)

    async def stream(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> AsyncIterator[StreamEvent]:
        arguments = _sdk_arguments(self._payload(request, upstream_model))
        reader = StreamReader(request)
        try:
            events = await self._client.messages.create(**arguments, stream=True, timeout=self._timeout(timeout_s))
            async with events:
                async for event in events:
                    for translated in reader.read(event):
                        yield translated
        # The SDK builds events without validating them: a malformed one lacks attributes or has wrong types.
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError, AttributeError, TypeError) as error:
            raise self._error(error) from error
        if not reader.stopped:
            raise ProviderError(self.name, "retryable", f"{self.name} ended the stream without message_stop")
        for translated in reader.finish():
            yield translated

    async def embed(self, request: EmbeddingsRequest, upstream_model: str, timeout_s: float) -> Embeddings:
        raise ProviderError(self.name, "request", f"{self.name} serves no embeddings: use an OpenAI-protocol provider")

    async def close(self) -> None:
        await self._client.close()


class StreamReader:
    """A Messages API stream's events (as the SDK builds them) in the gateway's terms: text deltas, tool call
    pieces (`input_json_delta` of a `tool_use` block), and the usage and stop reason for the end. TypeError or
    AttributeError for an event that is not the protocol's."""

    def __init__(self, request: ChatRequest) -> None:
        self._answer = answer_tool(request)
        self._fences = FenceStripper() if request.json_mode and self._answer is None else None
        # Content block index -> the call's index among the answer's calls (None: the forced answer tool).
        self._calls: dict[int, int | None] = {}
        self._reason: str | None = None
        self._prompt_tokens: int | None = None
        self._completion_tokens: int | None = None
        self.stopped = False

    def read(self, event: Any) -> list[StreamEvent]:
        if event.type == "content_block_delta":
            return self._delta(event.index, event.delta)
        if event.type == "content_block_start" and event.content_block.type == "tool_use":
            return self._tool_use(event.index, event.content_block)
        if event.type == "message_start":
            self._prompt_tokens = event.message.usage.input_tokens
        elif event.type == "message_delta":
            self._reason = event.delta.stop_reason
            self._completion_tokens = event.usage.output_tokens
            # Newer API versions repeat the (cumulative) input count here.
            if event.usage.input_tokens is not None:
                self._prompt_tokens = event.usage.input_tokens
        elif event.type == "message_stop":
            self.stopped = True
        return []

    def _delta(self, index: int, delta: Any) -> list[StreamEvent]:
        if delta.type == "text_delta" and self._answer is None:
            if not isinstance(delta.text, str):
                raise TypeError("a text delta's text is not a string")
            text = self._fences.feed(delta.text) if self._fences else delta.text
            return [Delta(text)] if text else []
        if delta.type == "input_json_delta" and index in self._calls:
            piece = delta.partial_json
            if not isinstance(piece, str):
                raise TypeError("an input_json_delta's partial_json is not a string")
            call = self._calls[index]
            if not piece:
                return []
            return [Delta(piece) if call is None else ToolCallDelta(call, piece)]
        return []

    def _tool_use(self, index: int, block: Any) -> list[StreamEvent]:
        if not isinstance(block.id, str) or not isinstance(block.name, str):
            raise TypeError("a tool_use block's id or name is not a string")
        if self._answer is not None and block.name == self._answer["name"]:
            self._calls[index] = None
            return []
        call = sum(1 for known in self._calls.values() if known is not None)
        self._calls[index] = call
        return [ToolCallDelta(call, id=block.id, name=block.name)]

    def finish(self) -> list[StreamEvent]:
        """What is left to say once the stream stopped: the end of a fenced answer, then `Finished`."""
        rest = self._fences.finish() if self._fences else ""
        end = Finished(
            answered_reason(self._reason, self._answer), usage_of(self._prompt_tokens, self._completion_tokens)
        )
        return [Delta(rest), end] if rest else [end]
