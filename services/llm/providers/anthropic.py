"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import orjson
from opentelemetry.trace import Tracer

from services.llm.chat import ChatMessage, ChatRequest, Completion, Delta, Finished, ImagePart, StreamEvent
from services.llm.embeddings import Embeddings, EmbeddingsRequest
from services.llm.providers.base import ProviderError, ProviderSettings, status_error, usage_from, usage_of
from services.llm.providers.fences import FenceStripper, strip_fences
from services.llm.providers.finish import finish_reason
from services.llm.providers.transport import call_timeout, sdk_client_options

Json = dict[str, Any]

# Anthropic's JSON output (`output_config`) needs a schema, which OpenAI's json_object mode does not give:
# JSON mode is asked for in words instead, and the fence Claude still tends to add is stripped from the answer.
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else: no prose, no code fences."

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


def content_blocks(message: ChatMessage) -> list[Json]:
    """A message's content as Anthropic content blocks, leaving out empty text."""
    if isinstance(message.content, str):
        return _text_blocks(message.content)
    blocks: list[Json] = []
    for part in message.content:
        blocks.extend([image_block(part)] if isinstance(part, ImagePart) else _text_blocks(part.text))
    return blocks


def system_prompt(request: ChatRequest) -> str:
    """Every system message's text, in order, a blank line apart; JSON mode adds its instruction."""
    paragraphs = [message.text for message in request.messages if message.role == "system" and message.text]
    if request.json_mode:
        paragraphs.append(JSON_INSTRUCTION)
    return "\n\n".join(paragraphs)


def conversation(request: ChatRequest) -> list[Json]:
    """The user and assistant messages, runs of one role merged, since Anthropic requires them to alternate."""
    turns: list[Json] = []
    # A lone text message keeps its plain string content; merged or multi-part ones become block lists.
    for message in request.messages:
        if message.role == "system":
            continue
        if turns and turns[-1]["role"] == message.role:
            previous = turns[-1]
            if isinstance(previous["content"], str):
                previous["content"] = _text_blocks(previous["content"])
            previous["content"].extend(content_blocks(message))
        elif isinstance(message.content, str):
            turns.append({"role": message.role, "content": message.content})
        else:
            turns.append({"role": message.role, "content": content_blocks(message)})
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
    return payload


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
            blocks = body["content"]
            text = "".join(block["text"] for block in blocks if block.get("type") == "text")
        except (KeyError, TypeError, AttributeError) as error:
            raise ProviderError(self.name, "retryable", f"{self.name} sent a malformed completion") from error
        if request.json_mode:
            text = strip_fences(text)
        usage = usage_from(body.get("usage"), "input_tokens", "output_tokens")
        return Completion(text, finish_reason(body.get("stop_reason")), usage)

    async def stream(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> AsyncIterator[StreamEvent]:
        arguments = _sdk_arguments(self._payload(request, upstream_model))
        fences = FenceStripper() if request.json_mode else None
        reason: str | None = None
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        stopped = False
        try:
            events = await self._client.messages.create(**arguments, stream=True, timeout=self._timeout(timeout_s))
            async with events:
                async for event in events:
                    if event.type == "content_block_delta":
                        if event.delta.type == "text_delta":
                            if not isinstance(event.delta.text, str):
                                raise TypeError("a text delta's text is not a string")
                            text = fences.feed(event.delta.text) if fences else event.delta.text
                            if text:
                                yield Delta(text)
                    elif event.type == "message_start":
                        prompt_tokens = event.message.usage.input_tokens
                    elif event.type == "message_delta":
                        reason = event.delta.stop_reason
                        completion_tokens = event.usage.output_tokens
                        # Newer API versions repeat the (cumulative) input count here.
                        if event.usage.input_tokens is not None:
                            prompt_tokens = event.usage.input_tokens
                    elif event.type == "message_stop":
                        stopped = True
        # The SDK builds events without validating them: a malformed one lacks attributes or has wrong types.
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError, AttributeError, TypeError) as error:
            raise self._error(error) from error
        if not stopped:
            raise ProviderError(self.name, "retryable", f"{self.name} ended the stream without message_stop")
        if fences and (rest := fences.finish()):
            yield Delta(rest)
        yield Finished(finish_reason(reason), usage_of(prompt_tokens, completion_tokens))

    async def embed(self, request: EmbeddingsRequest, upstream_model: str, timeout_s: float) -> Embeddings:
        raise ProviderError(self.name, "request", f"{self.name} serves no embeddings: use an OpenAI-protocol provider")

    async def close(self) -> None:
        await self._client.close()
