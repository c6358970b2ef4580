"""OpenAI's Chat Completions API: OpenAI itself, and GitHub Models, OpenRouter and Zhipu BigModel, which speak
the same protocol at other base URLs.

Requests go out as the official `openai` SDK sends them, with the SDK's own headers, but straight on
aiohttp (services/llm/providers/direct.py): the SDK's request path cost more CPU than a whole completion
through the rest of the gateway. Answers are read with orjson, errors mapped as the SDK's would be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import openai
import orjson
from opentelemetry.trace import Tracer

from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    Delta,
    Finished,
    ImagePart,
    StreamEvent,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from services.llm.embeddings import Embeddings, EmbeddingsRequest, read_embeddings
from services.llm.openai_wire import tool_call_payload
from services.llm.providers.base import ProviderError, ProviderSettings, status_error, usage_from
from services.llm.providers.direct import Answer, DirectClient, mapped_errors
from services.llm.providers.finish import finish_reason
from services.llm.providers.sse import sse_data, sse_lines
from services.llm.tools import MAX_TOOL_CALLS

Json = dict[str, Any]


def message_payload(message: ChatMessage) -> Json:
    """One message in OpenAI's wire shape."""
    if message.tool_calls:
        calls = [tool_call_payload(call) for call in message.tool_calls]
        return {"role": message.role, "content": message.text or None, "tool_calls": calls}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
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
    if (schema := request.json_schema) is not None:
        spec: Json = {"name": schema.name, "schema": schema.schema}
        spec.update(
            {
                key: value
                for key, value in (("strict", schema.strict), ("description", schema.description))
                if value is not None
            }
        )
        payload["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif request.json_mode:
        payload["response_format"] = {"type": "json_object"}
    if request.tools:
        payload["tools"] = [_tool_payload(tool) for tool in request.tools]
    if (choice := request.tool_choice) is not None:
        payload["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}} if choice.mode == "function" else choice.mode
        )
    if request.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    return payload


def _tool_payload(tool: Tool) -> Json:
    function: Json = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_calls(raw: object) -> tuple[ToolCall, ...]:
    """A completion message's `tool_calls`; TypeError when they are not the protocol's."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TypeError("tool_calls is not a list")
    calls = []
    for item in raw:
        function = item["function"]
        arguments = function.get("arguments") or ""
        if not all(isinstance(value, str) for value in (item["id"], function["name"], arguments)):
            raise TypeError("a tool call's id, name or arguments is not a string")
        calls.append(ToolCall(item["id"], function["name"], arguments))
    return tuple(calls)


def _tool_call_deltas(raw: object) -> list[ToolCallDelta]:
    """A streamed chunk's `delta.tool_calls` pieces; TypeError when they are not the protocol's."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise TypeError("delta tool_calls is not a list")
    deltas = []
    for item in raw:
        function = item.get("function") or {}
        index, call_id, name = item["index"], item.get("id"), function.get("name")
        arguments = function.get("arguments") or ""
        if type(index) is not int or not 0 <= index < MAX_TOOL_CALLS or not isinstance(arguments, str):
            raise TypeError("a tool call delta's index or arguments is not the protocol's")
        if not all(value is None or isinstance(value, str) for value in (call_id, name)):
            raise TypeError("a tool call delta's id or name is not a string")
        deltas.append(ToolCallDelta(index, arguments, id=call_id, name=name))
    return deltas


def sdk_headers(api_key: str, base_url: str) -> dict[str, str]:
    """The headers the official SDK sends with every request (its version and platform, the key), as an
    `AsyncOpenAI` client of that SDK says them; per-request ones are added by DirectClient."""
    client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
    headers = {key: value for key, value in client.default_headers.items() if isinstance(value, str)}
    # The SDK names the async library it finds running when it sends; it is always asyncio here.
    headers["X-Stainless-Async"] = "async:asyncio"
    return {**headers, **client.auth_headers}


class OpenAICompatibleProvider:
    """One OpenAI-protocol endpoint; no retries of its own, because the gateway retries across models."""

    def __init__(self, settings: ProviderSettings, *, tracer: Tracer | None = None) -> None:
        self.name = settings.name
        self._client = DirectClient(settings, sdk_headers(settings.api_key, settings.base_url), tracer=tracer)

    def _status_error(self, answer: Answer) -> ProviderError:
        """An error status, as the SDK's APIStatusError would have told it: the error object's message, or
        the SDK's own `Error code: <status> - <body>`."""
        text = answer.body.decode("utf-8", "replace").strip()
        try:
            body: object = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = text
        detail = _error_message(body) or f"Error code: {answer.status} - {body}"
        return status_error(self.name, answer.status, detail, answer.headers)

    async def complete(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> Completion:
        payload = orjson.dumps(request_payload(request, upstream_model))
        answer = await self._client.post("/chat/completions", payload, timeout_s)
        if answer.status >= 400:
            raise self._status_error(answer)
        try:
            body = orjson.loads(answer.body)
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            calls = _tool_calls(choice["message"].get("tool_calls"))
            usage = usage_from(body.get("usage"), "prompt_tokens", "completion_tokens")
            return Completion(text, finish_reason(choice.get("finish_reason")), usage, calls)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise ProviderError(self.name, "retryable", f"{self.name} sent a malformed completion") from error

    async def stream(self, request: ChatRequest, upstream_model: str, timeout_s: float) -> AsyncIterator[StreamEvent]:
        payload = request_payload(request, upstream_model)
        payload.update(stream=True, stream_options={"include_usage": True})
        reason: str | None = None
        usage: Usage | None = None
        async with self._client.stream("/chat/completions", orjson.dumps(payload), timeout_s) as response:
            if response.status >= 400:
                with mapped_errors(self.name):
                    body = await response.read()
                raise self._status_error(Answer(response.status, response.headers, body))
            try:
                with mapped_errors(self.name):
                    async for data in sse_data(sse_lines(response.content.iter_any())):
                        chunk = orjson.loads(data)
                        if "error" in chunk:
                            message = _error_message(chunk) or "an error event"
                            raise ProviderError(
                                self.name, "retryable", f"{self.name} sent an error mid-stream: {message}"
                            )
                        if (raw_usage := chunk.get("usage")) is not None:
                            usage = usage_from(raw_usage, "prompt_tokens", "completion_tokens")
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta") or {}
                            text = delta.get("content") or ""
                            if not isinstance(text, str):
                                raise TypeError("delta content is not a string")
                            if text:
                                yield Delta(text)
                            for piece in _tool_call_deltas(delta.get("tool_calls")):
                                yield piece
                            if choice.get("finish_reason"):
                                reason = choice["finish_reason"]
            except (ValueError, TypeError, AttributeError, KeyError) as error:
                raise ProviderError(
                    self.name, "retryable", f"{self.name} sent a malformed response: {error}"
                ) from error
        if reason is None:
            raise ProviderError(self.name, "retryable", f"{self.name} ended the stream without a finish reason")
        yield Finished(finish_reason(reason), usage)

    async def embed(self, request: EmbeddingsRequest, upstream_model: str, timeout_s: float) -> Embeddings:
        payload = orjson.dumps(request.payload(upstream_model))
        answer = await self._client.post("/embeddings", payload, timeout_s)
        if answer.status >= 400:
            raise self._status_error(answer)
        try:
            return read_embeddings(answer.body, len(request.inputs), request.encoding_format)
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise ProviderError(self.name, "retryable", f"{self.name} sent malformed embeddings") from error

    async def close(self) -> None:
        await self._client.close()


def _error_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return cast(str, error["message"])
    return None
