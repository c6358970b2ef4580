"""The `spark.vision.v1.VisionService` servicer: resolve the prompt, call the model, clean the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import httpbody_pb2
from spark.llm.v1 import llm_pb2, llm_pb2_grpc
from spark.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from spark.vision.v1 import vision_pb2, vision_pb2_grpc

from services.access.internal import InternalToken
from services.common import sse
from services.common.cleanup import DEFAULT_RULE, CleanupRule, StreamCleaner, apply
from services.common.errors import DomainError, NotFound, Unavailable, quoted
from services.common.identity import current_caller
from services.common.keepalive import with_keepalives
from services.common.relay import relayed
from services.common.transcoding import set_http_status
from services.vision.config import VisionConfig
from services.vision.fetch import fetch_image
from services.vision.images import ImageTooLarge
from services.vision.request import VisionRequest, parse_request

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

SSE = "text/event-stream"


class CleanupRules:
    """The prompts service's `regex_cleanup` rule, re-read at most every `ttl_s`; the last known rule
    (or the default) serves while the prompts service is unreachable."""

    def __init__(self, prompts: prompts_pb2_grpc.PromptsServiceStub, ttl_s: float, internal: InternalToken) -> None:
        self._prompts = prompts
        # The rule is the suite's own to read (an admin method), whoever the call it serves is from.
        self._metadata = internal.as_suite()
        self._ttl_s = ttl_s
        self._rule = DEFAULT_RULE
        self._read_at = float("-inf")

    async def get(self) -> CleanupRule:
        if time.monotonic() - self._read_at < self._ttl_s:
            return self._rule
        try:
            reply = await self._prompts.GetCleanupRule(
                prompts_pb2.GetCleanupRuleRequest(), timeout=2.0, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            logger.warning("cleanup rule unavailable (%s); using the last known one", error.code().name)
            return self._rule
        self._rule = CleanupRule(reply.pattern, reply.flags, reply.source)
        self._read_at = time.monotonic()
        return self._rule


@dataclass(frozen=True, slots=True)
class Prepared:
    llm_request: llm_pb2.GenerateContentRequest
    prompt_id: int
    started: float
    # The caller's identity, for llm and prompts (services/access/internal.py): usage is counted against it.
    metadata: tuple[tuple[str, str], ...]


def _usage(usage: llm_pb2.Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


class VisionServicer(vision_pb2_grpc.VisionServiceServicer):
    def __init__(
        self,
        prompts: prompts_pb2_grpc.PromptsServiceStub,
        llm: llm_pb2_grpc.LlmServiceStub,
        rules: CleanupRules,
        config: VisionConfig,
        internal: InternalToken,
    ) -> None:
        self._prompts = prompts
        self._llm = llm
        self._rules = rules
        self._config = config
        self._internal = internal

    async def _prompt(self, request: VisionRequest, metadata: tuple[tuple[str, str], ...]) -> tuple[str, int]:
        """Explicit text first, then `prompt_id`, then the default of (namespace, lang); rendered with variables."""
        render = prompts_pb2.RenderPromptRequest(variables=request.variables)
        if request.prompt is not None:
            render.text, lookup = request.prompt, "prompt text"
        elif request.prompt_id is not None:
            render.id, lookup = request.prompt_id, f"prompt_id {request.prompt_id}"
        else:
            render.default_for.namespace, render.default_for.lang = request.namespace, request.lang
            lookup = f"the default prompt of namespace {quoted(request.namespace)} and lang {quoted(request.lang)}"
        try:
            reply = await self._prompts.RenderPrompt(render, timeout=5.0, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            failure = relayed(error, "prompts")
            if isinstance(failure, NotFound):
                raise NotFound(f"no prompt found for {lookup}: {failure.message}", reason="PROMPT_NOT_FOUND") from None
            raise failure from None
        return reply.text, reply.prompt_id

    async def _prepare(self, body: httpbody_pb2.HttpBody, context: Context) -> Prepared:
        started = time.perf_counter()
        try:
            request = parse_request(body.content_type, body.data, max_image_bytes=self._config.max_image_bytes)
            image = request.image
            if image is None and self._config.fetch_images and request.image_url is not None:
                image = await fetch_image(
                    request.image_url, max_bytes=self._config.max_image_bytes, timeout_s=self._config.fetch_timeout_s
                )
        except ImageTooLarge as error:
            await set_http_status(context, error.http_status)
            raise
        metadata = self._internal.on_behalf_of(current_caller())
        text, prompt_id = await self._prompt(request, metadata)
        image_url = image.data_url() if image is not None else request.image_url or ""
        parts = [llm_pb2.ContentPart(text=text), llm_pb2.ContentPart(image_url=image_url)]
        llm_request = llm_pb2.GenerateContentRequest(
            model=request.model,
            provider=request.provider,
            messages=[llm_pb2.Message(role="user", parts=parts)],
            max_tokens=request.max_tokens,
        )
        if request.temperature is not None:
            llm_request.temperature = request.temperature
        return Prepared(llm_request, prompt_id, started, metadata)

    async def Analyze(self, request: vision_pb2.AnalyzeRequest, context: Context) -> vision_pb2.AnalyzeResponse:
        prepared = await self._prepare(request.body, context)
        try:
            reply = await self._llm.GenerateContent(
                prepared.llm_request, timeout=self._config.timeout_s, metadata=prepared.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise relayed(error, "llm") from None
        rule = await self._rules.get()
        return vision_pb2.AnalyzeResponse(
            text=apply(rule, reply.text),
            model=reply.model,
            provider=reply.provider,
            prompt_id=prepared.prompt_id,
            usage=vision_pb2.Usage(**_usage(reply.usage)),
            latency_ms=round((time.perf_counter() - prepared.started) * 1000, 3),
        )

    async def _deltas(self, prepared: Prepared) -> AsyncIterator[llm_pb2.StreamGenerateContentResponse]:
        """The llm service's stream; leaving early (a client that hung up) cancels the call, and so the
        provider's."""
        call = self._llm.StreamGenerateContent(
            llm_pb2.StreamGenerateContentRequest(request=prepared.llm_request), metadata=prepared.metadata
        )
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise relayed(error, "llm") from None
        finally:
            call.cancel()

    async def StreamAnalyze(
        self, request: vision_pb2.StreamAnalyzeRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        prepared = await self._prepare(request.body, context)
        cleaner = StreamCleaner(await self._rules.get())
        started = finished = False
        try:
            async for message in with_keepalives(self._deltas(prepared), self._config.keepalive_s):
                if message is None:
                    frame = sse.KEEPALIVE
                elif message.WhichOneof("event") == "delta":
                    text = cleaner.feed(message.delta)
                    if not text:
                        continue
                    frame = sse.event({"delta": text})
                else:
                    done = message.done
                    tail = cleaner.finish()
                    final = {
                        "usage": _usage(done.usage),
                        "model": done.model,
                        "provider": done.provider,
                        "prompt_id": prepared.prompt_id,
                        "finish_reason": done.finish_reason,
                        "latency_ms": round((time.perf_counter() - prepared.started) * 1000, 3),
                    }
                    frame = (sse.event({"delta": tail}) if tail else b"") + sse.event(final) + sse.DONE
                    finished = True
                started = True
                yield httpbody_pb2.HttpBody(content_type=SSE, data=frame)
            if not finished:
                raise Unavailable("the model's stream ended without its final message", reason="STREAM_INCOMPLETE")
        except DomainError as error:
            if not started:
                raise
            yield httpbody_pb2.HttpBody(content_type=SSE, data=sse.error_event(error))
