"""The `spark.llm.v1.LlmService` servicer: OpenAI and typed wire formats in, completions out."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import grpc
from google.api import httpbody_pb2
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from services.common import sse
from services.common.errors import DomainError, InvalidArgument
from services.common.identity import current_caller
from services.common.keepalive import with_keepalives
from services.common.transcoding import metadata_value
from services.llm import anthropic_wire, openai_wire
from services.llm.breaker import Breaker
from services.llm.cache import CACHE_HEADER, cache_mode
from services.llm.chat import (
    ChatMessage,
    ChatRequest,
    Completion,
    Delta,
    Finished,
    FinishReason,
    ImagePart,
    Part,
    Served,
    TextPart,
    ToolCallDelta,
    Usage,
)
from services.llm.completions import Completions, Plan
from services.llm.embeddings import embeddings_body, parse_embeddings_body
from services.llm.gateway import MidStreamError
from services.llm.registry import Registry
from services.llm.usage import UsageLedger

Context = grpc.aio.ServicerContext[Any, Any]

JSON = "application/json"
SSE = "text/event-stream"
_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}


class StreamWriter(Protocol):
    """Frames one streamed answer in a wire format's Server-Sent Events."""

    def start(self, *, calls_first: bool = False) -> bytes: ...
    def delta(self, text: str) -> bytes: ...
    def tool_call(self, piece: ToolCallDelta) -> bytes: ...
    def finish(self, reason: FinishReason, usage: Usage | None) -> bytes: ...


class LlmServicer(llm_pb2_grpc.LlmServiceServicer):
    def __init__(
        self,
        completions: Completions,
        registry: Registry,
        configured: Mapping[str, object],
        breakers: Mapping[str, Breaker],
        ledger: UsageLedger,
        *,
        timeout_s: float,
        keepalive_s: float,
    ) -> None:
        self._completions = completions
        self._registry = registry
        self._configured = configured
        self._breakers = breakers
        self._ledger = ledger
        self._timeout_s = timeout_s
        self._keepalive_s = keepalive_s
        self._loaded_at = int(time.time())

    def _timeout(self, context: Context) -> float:
        remaining = context.time_remaining()
        return self._timeout_s if remaining is None else min(self._timeout_s, remaining)

    async def _plan(self, request: ChatRequest, context: Context) -> Plan:
        return await self._completions.plan(request, cache_mode(metadata_value(context, CACHE_HEADER)))

    async def _send_headers(self, context: Context, plan: Plan, served: Served | None) -> None:
        """Response headers, only when there is something to say: sending them is a gRPC operation of its own,
        about a fifth of the CPU of a whole completion, so plain requests go without."""
        headers = []
        if plan.cache_key is not None:
            headers.append(("x-cache", "hit" if plan.cached is not None else "miss"))
        if served is not None and served.skipped:
            headers += [("x-spark-model", served.model), ("x-spark-provider", served.provider)]
        if plan.injections:
            headers.append(("x-spark-prompt-injection", ",".join(plan.injections)))
        if headers:
            await context.send_initial_metadata(headers)

    # --- OpenAI wire format ---------------------------------------------------------------------

    async def CreateChatCompletion(
        self, request: llm_pb2.CreateChatCompletionRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        parsed = openai_wire.parse_body(request.body.data)
        if parsed.stream:
            raise InvalidArgument(
                '"stream": true needs the streaming method (StreamChatCompletion)', reason="STREAM_NOT_EXPECTED"
            )
        plan = await self._plan(parsed.request, context)
        completion, served = await self._completions.complete(plan, current_caller(), self._timeout(context))
        await self._send_headers(context, plan, served)
        body = openai_wire.completion_body(_completion_id(), int(time.time()), served.model, completion)
        return httpbody_pb2.HttpBody(content_type=JSON, data=body)

    async def StreamChatCompletion(
        self, request: llm_pb2.StreamChatCompletionRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        parsed = openai_wire.parse_body(request.body.data)
        completion_id, created = _completion_id(), int(time.time())

        def writer(served: Served) -> StreamWriter:
            return openai_wire.ChunkWriter(completion_id, created, served.model, include_usage=parsed.include_usage)

        async for frame in self._sse(parsed.request, context, writer, sse.error_event):
            yield frame

    async def CreateMessage(self, request: llm_pb2.CreateMessageRequest, context: Context) -> httpbody_pb2.HttpBody:
        parsed = anthropic_wire.parse_messages_body(request.body.data)
        if parsed.stream:
            raise InvalidArgument(
                '"stream": true needs the streaming method (StreamMessage)', reason="STREAM_NOT_EXPECTED"
            )
        plan = await self._plan(parsed.request, context)
        completion, served = await self._completions.complete(plan, current_caller(), self._timeout(context))
        await self._send_headers(context, plan, served)
        body = anthropic_wire.message_body(anthropic_wire.message_id(), served.model, completion)
        return httpbody_pb2.HttpBody(content_type=JSON, data=body)

    async def StreamMessage(
        self, request: llm_pb2.StreamMessageRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        parsed = anthropic_wire.parse_messages_body(request.body.data)
        message = anthropic_wire.message_id()

        def writer(served: Served) -> StreamWriter:
            return anthropic_wire.EventWriter(message, served.model)

        async for frame in self._sse(parsed.request, context, writer, anthropic_wire.error_event):
            yield frame

    async def _sse(
        self,
        request: ChatRequest,
        context: Context,
        writer_for: Callable[[Served], StreamWriter],
        error_event: Callable[[DomainError], bytes],
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """A completion as Server-Sent Events in the writer's format: keepalive comments while the model is
        silent, and a failure after the stream began as the format's error event."""
        plan = await self._plan(request, context)
        events = self._completions.stream(plan, current_caller(), self._timeout(context))
        writer: StreamWriter | None = None
        started = opened = False
        try:
            async for event in with_keepalives(events, self._keepalive_s):
                if not started and (event is None or isinstance(event, Served)):
                    await self._send_headers(context, plan, event)
                    started = True
                if isinstance(event, Served):
                    writer = writer_for(event)
                    continue
                if event is None:
                    frame = sse.KEEPALIVE
                elif writer is None:
                    continue
                else:
                    frame = b""
                    # The opening frame rides with the first one: one gRPC write fewer before the first token.
                    if not opened:
                        frame, opened = writer.start(calls_first=isinstance(event, ToolCallDelta)), True
                    if isinstance(event, Delta):
                        frame += writer.delta(event.text)
                    elif isinstance(event, ToolCallDelta):
                        frame += writer.tool_call(event)
                    else:
                        frame += writer.finish(event.finish_reason, event.usage)
                yield httpbody_pb2.HttpBody(content_type=SSE, data=frame)
        except (DomainError, MidStreamError) as error:
            cause = error.cause if isinstance(error, MidStreamError) else error
            if not started:
                raise cause from None
            yield httpbody_pb2.HttpBody(content_type=SSE, data=error_event(cause))

    async def CreateEmbeddings(
        self, request: llm_pb2.CreateEmbeddingsRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        parsed = parse_embeddings_body(request.body.data)
        embeddings, _ = await self._completions.embed(parsed, current_caller(), self._timeout(context))
        return httpbody_pb2.HttpBody(content_type=JSON, data=embeddings_body(parsed.model, embeddings))

    # --- typed gRPC -----------------------------------------------------------------------------

    async def GenerateContent(
        self, request: llm_pb2.GenerateContentRequest, context: Context
    ) -> llm_pb2.GenerateContentResponse:
        plan = await self._plan(_chat_request(request), context)
        completion, served = await self._completions.complete(plan, current_caller(), self._timeout(context))
        await self._send_headers(context, plan, served)
        return _typed_response(completion, served)

    async def StreamGenerateContent(
        self, request: llm_pb2.StreamGenerateContentRequest, context: Context
    ) -> AsyncIterator[llm_pb2.StreamGenerateContentResponse]:
        inner = request.request
        plan = await self._plan(_chat_request(inner), context)
        served: Served | None = None
        events = self._completions.stream(plan, current_caller(), self._timeout(context))
        try:
            async for event in events:
                if isinstance(event, Served):
                    served = event
                    await self._send_headers(context, plan, served)
                elif isinstance(event, Delta):
                    yield llm_pb2.StreamGenerateContentResponse(delta=event.text)
                elif isinstance(event, Finished) and served is not None:
                    done = _typed_response(Completion("", event.finish_reason, event.usage), served)
                    yield llm_pb2.StreamGenerateContentResponse(done=done)
        except MidStreamError as error:
            raise error.cause from None

    # --- catalogue and accounting ---------------------------------------------------------------

    async def ListModels(self, request: llm_pb2.ListModelsRequest, context: Context) -> llm_pb2.ListModelsResponse:
        configured = self._configured.keys()
        models = [
            llm_pb2.Model(
                id=name,
                object="model",
                created=self._loaded_at,
                owned_by=self._registry.serving_provider(name, configured),
            )
            for name in self._registry.available(configured)
        ]
        return llm_pb2.ListModelsResponse(object="list", data=models)

    async def GetUsage(self, request: llm_pb2.GetUsageRequest, context: Context) -> llm_pb2.GetUsageResponse:
        records = await self._ledger.query(request.start_day, request.end_day, request.caller)
        return llm_pb2.GetUsageResponse(
            records=[
                llm_pb2.UsageRecord(
                    day=r.day,
                    caller=r.caller,
                    provider=r.provider,
                    model=r.model,
                    requests=r.requests,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    cost_usd=r.cost_usd,
                    priced=r.priced,
                )
                for r in records
            ],
            total_cost_usd=math.fsum(r.cost_usd for r in records),
        )

    async def ListProviders(
        self, request: llm_pb2.ListProvidersRequest, context: Context
    ) -> llm_pb2.ListProvidersResponse:
        statuses = []
        for name, spec in sorted(self._registry.providers.items()):
            breaker = self._breakers.get(name)
            statuses.append(
                llm_pb2.ProviderStatus(
                    name=name,
                    configured=name in self._configured,
                    key_variable=spec.key_variable,
                    breaker=breaker.state.value if breaker else "closed",
                    consecutive_failures=breaker.consecutive_failures if breaker else 0,
                )
            )
        return llm_pb2.ListProvidersResponse(providers=statuses)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _typed_response(completion: Completion, served: Served) -> llm_pb2.GenerateContentResponse:
    response = llm_pb2.GenerateContentResponse(
        text=completion.text, model=served.model, provider=served.provider, finish_reason=completion.finish_reason
    )
    if (usage := completion.usage) is not None:
        response.usage.prompt_tokens = usage.prompt_tokens
        response.usage.completion_tokens = usage.completion_tokens
        response.usage.total_tokens = usage.total_tokens
    return response


def _chat_request(request: llm_pb2.GenerateContentRequest) -> ChatRequest:
    """The typed request as the gateway's own; invalid roles and empty parts are INVALID_ARGUMENT."""
    messages = []
    for index, message in enumerate(request.messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise InvalidArgument(f"messages[{index}].role must be system, user or assistant", reason="INVALID_ROLE")
        parts: list[Part] = []
        for part in message.parts:
            kind = part.WhichOneof("kind")
            if kind == "text":
                parts.append(TextPart(part.text))
            elif kind == "image_url" and openai_wire.valid_image_url(part.image_url):
                parts.append(ImagePart(part.image_url))
            else:
                raise InvalidArgument(
                    f"messages[{index}]: a part must be text or an http(s) or data:image/...;base64, image_url",
                    reason="INVALID_PART",
                )
        messages.append(ChatMessage(role, tuple(parts)))  # type: ignore[arg-type]
    if not messages:
        raise InvalidArgument("messages must not be empty", reason="NO_MESSAGES")
    return ChatRequest(
        model=request.model,
        provider=request.provider,
        messages=tuple(messages),
        max_tokens=request.max_tokens or None,
        temperature=request.temperature if request.HasField("temperature") else None,
        json_mode=request.json_mode,
    )
