"""OpenAI's Chat Completions API through the official `openai` SDK: OpenAI itself, and GitHub Models,
OpenRouter and Zhipu BigModel, which speak the same protocol at other base URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
import openai
import orjson
from opentelemetry.trace import Tracer

from services.llm.chat import ChatMessage, ChatRequest, Completion, Delta, Finished, ImagePart, StreamEvent, Usage
from services.llm.providers.base import ProviderError, ProviderSettings, status_error, usage_from
from services.llm.providers.finish import finish_reason
from services.llm.providers.sse import sse_data, sse_lines
from services.llm.providers.transport import call_timeout, sdk_client_options

Json = dict[str, Any]


def message_payload(message: ChatMessage) -> Json:
    """One message in OpenAI's wire shape."""
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    parts: list[Json] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            image: Json = {"url": part.url}
            if part.detail is not None:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": parts}


def request_payload(request: ChatRequest, upstream_model: str) -> Json:
    """The create() arguments for a request, leaving out what the caller did not set."""
    payload: Json = {"model": upstream_model, "messages": [message_payload(m) for m in request.messages]}
    optional = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.json_mode:
        payload["response_format"] = {"type": "json_object"}
    return payload


class OpenAICompatibleProvider:
    """One OpenAI-protocol endpoint; the SDK's own retries are off because the gateway retries across models."""

    def __init__(self, settings: ProviderSettings, *, tracer: Tracer | None = None) -> None:
        self.name = settings.name
        self._connect_timeout_s = settings.connect_timeout_s
        self._client = openai.AsyncOpenAI(**sdk_client_options(settings, tracer))

    def _timeout(self, timeout_s: float) -> httpx2.Timeout:
        return call_timeout(timeout_s, self._connect_timeout_s)

    def _error(self, error: Exception) -> ProviderError:
        if isinstance(error, openai.APITimeoutError):
            return ProviderError(self.name, "timeout", f"{self.name} did not answer in time")
        if isinstance(error, openai.APIStatusError):
            detail = _error_message(error.body) or error.message
            return status_error(self.name, error.status_code, detail, error.response.headers)
        if isinstance(error, openai.APIConnectionError):
            return ProviderError(self.name, "retryable", f"could not reach {self.name}")
        # An error event inside a stream, or a body that is not the protocol's JSON.
        return ProviderError(self.name, "retryable", f"{self.name} sent a malformed response: {error}")

    async def complete(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> Completion:
        payload = request_payload(request, upstream_model)
        try:
            # The SDK's plain `post` sends the body as built: create() would re-validate it against the
            # SDK's types and build pydantic models of the answer, which costs more CPU than the whole
            # gateway. Bytes go out as they are (orjson both ways); errors still come back as the SDK's.
            response = await self._client.post(
                "/chat/completions",
                content=orjson.dumps(payload),
                cast_to=httpx2.Response,
                options={"timeout": self._timeout(timeout_s)},
            )
            body = orjson.loads(response.content)
        except (openai.OpenAIError, orjson.JSONDecodeError) as error:
            raise self._error(error) from error
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            usage = usage_from(body.get("usage"), "prompt_tokens", "completion_tokens")
            return Completion(text, finish_reason(choice.get("finish_reason")), usage)
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise ProviderError(self.name, "retryable", f"{self.name} sent a malformed completion") from error

    async def stream(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> AsyncIterator[StreamEvent]:
        payload = request_payload(request, upstream_model)
        payload.update(stream=True, stream_options={"include_usage": True})
        reason: str | None = None
        usage: Usage | None = None
        try:
            # The SDK sends the request and turns an error status into its exception; the events are read
            # here with orjson instead of becoming one pydantic model per token.
            # With `cast_to=httpx2.Response` the SDK hands back the response unread, whatever `stream_cls` says.
            response = cast(
                httpx2.Response,
                await self._client.post(
                    "/chat/completions",
                    content=orjson.dumps(payload),
                    cast_to=httpx2.Response,
                    stream=True,
                    stream_cls=openai.AsyncStream[httpx2.Response],
                    options={"timeout": self._timeout(timeout_s)},
                ),
            )
            try:
                async for data in sse_data(sse_lines(response.aiter_bytes())):
                    chunk = orjson.loads(data)
                    if "error" in chunk:
                        message = _error_message(chunk) or "an error event"
                        raise ProviderError(self.name, "retryable", f"{self.name} sent an error mid-stream: {message}")
                    if (raw_usage := chunk.get("usage")) is not None:
                        usage = usage_from(raw_usage, "prompt_tokens", "completion_tokens")
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content") or ""
                        if not isinstance(text, str):
                            raise TypeError("delta content is not a string")
                        if text:
                            yield Delta(text)
                        if choice.get("finish_reason"):
                            reason = choice["finish_reason"]
            finally:
                await response.aclose()
        except (openai.OpenAIError, httpx2.HTTPError, ValueError, TypeError, AttributeError) as error:
            raise self._error(error) from error
        if reason is None:
            raise ProviderError(self.name, "retryable", f"{self.name} ended the stream without a finish reason")
        yield Finished(finish_reason(reason), usage)

    async def close(self) -> None:
        await self._client.close()


def _error_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return cast(str, error["message"])
    return None
