"""Routing one request to a provider: candidates from the registry, breakers, retries, fallbacks, deadlines.

A request is tried on its model, then on each fallback. On one candidate,
retryable failures (5xx, 429, timeouts, dropped connections) are retried
with full-jitter exponential backoff, or after the provider's Retry-After,
while the deadline allows; a provider whose breaker is open is skipped at
once. Errors about the request itself end the search: no other model would
accept it either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from services.common.errors import DeadlineExceeded, DomainError, InvalidArgument, ResourceExhausted, Unavailable
from services.llm.breaker import Breaker, Permit
from services.llm.chat import ChatRequest, Completion, Delta, Finished, Served, StreamEvent
from services.llm.embeddings import Embeddings, EmbeddingsRequest
from services.llm.metrics import LlmMetrics
from services.llm.providers.base import Provider, ProviderError
from services.llm.registry import ModelSpec, Registry
from services.llm.structured import answer_problem

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    # Calls per candidate model, the first one included.
    max_attempts: int = 3
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))


class MidStreamError(Exception):
    """A stream failed after its first event: the caller has already seen output, so no fallback can hide it."""

    def __init__(self, cause: DomainError) -> None:
        super().__init__(cause.message)
        self.cause = cause


class Gateway:
    def __init__(
        self,
        registry: Registry,
        providers: Mapping[str, Provider],
        breakers: Mapping[str, Breaker],
        policy: RetryPolicy,
        metrics: LlmMetrics,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._registry = registry
        self._providers = providers
        self._breakers = breakers
        self._policy = policy
        self._metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 -- backoff jitter, not cryptography
        self._sleep = sleep

    def candidates(self, request: ChatRequest) -> list[ModelSpec]:
        return self._registry.candidates(
            request.model, request.provider, self._providers.keys(), images=request.has_images
        )

    async def complete(self, request: ChatRequest, timeout_s: float) -> tuple[Completion, Served]:
        deadline = time.monotonic() + timeout_s

        async def call(provider: Provider, spec: ModelSpec, remaining_s: float) -> Completion:
            completion = await provider.complete(_for_model(request, spec), spec.upstream, remaining_s)
            if not completion.tool_calls and (
                problem := answer_problem(request, completion.text, completion.finish_reason)
            ):
                raise ProviderError(spec.provider, "output", f"{spec.name}: {problem}")
            return completion

        return await self._first_success(self.candidates(request), deadline, call)

    async def embed(self, request: EmbeddingsRequest, timeout_s: float) -> tuple[Embeddings, Served]:
        """The request's embeddings from the provider its model names (breaker, retries and deadline as for a
        completion; no fallbacks, since vectors of two models do not mix)."""
        deadline = time.monotonic() + timeout_s
        candidates = self._registry.embedding_candidates(request.model, self._providers.keys())

        async def call(provider: Provider, spec: ModelSpec, remaining_s: float) -> Embeddings:
            return await provider.embed(request, spec.upstream, remaining_s)

        return await self._first_success(candidates, deadline, call)

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[Served | StreamEvent]:
        """Yields `Served` once a candidate produced its first event, then that candidate's events.

        `timeout_s` bounds the wait for the first event (retries and fallbacks included) and then each wait
        for the next one. A failure after the first event raises `MidStreamError`.
        """
        deadline = time.monotonic() + timeout_s
        opened: list[AsyncIterator[StreamEvent]] = []

        async def call(provider: Provider, spec: ModelSpec, remaining_s: float) -> StreamEvent:
            events = aiter(provider.stream(_for_model(request, spec), spec.upstream, timeout_s))
            opened.append(events)
            try:
                return await asyncio.wait_for(anext(events), remaining_s)
            except StopAsyncIteration:
                raise ProviderError(spec.provider, "retryable", f"{spec.provider} sent an empty stream") from None
            except TimeoutError:
                raise ProviderError(spec.provider, "timeout", f"{spec.provider} did not answer in time") from None

        try:
            first, served = await self._first_success(self.candidates(request), deadline, call)
            events = opened[-1]
            yield served
            # A JSON answer is checked when it is whole; its text so far, to check.
            text: list[str] | None = [] if request.json_mode else None
            try:
                event: StreamEvent | None = first
                while event is not None:
                    if text is not None and isinstance(event, Delta):
                        text.append(event.text)
                    elif (
                        text is not None
                        and isinstance(event, Finished)
                        and (problem := answer_problem(request, "".join(text), event.finish_reason))
                    ):
                        error = Unavailable(f"{served.model}: {problem}", reason="MODEL_OUTPUT_INVALID")
                        raise MidStreamError(error)
                    yield event
                    event = await anext(events, None)
            except ProviderError as error:
                self._metrics.upstream_failure(served.provider, served.model, error.kind)
                self._breakers[served.provider].record(Permit(trial=False), not error.counts_against_provider)
                raise MidStreamError(Unavailable(error.message, reason="PROVIDER_FAILED_MID_STREAM")) from error
        finally:
            for events in opened:
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()

    async def _first_success(
        self, candidates: list[ModelSpec], deadline: float, call: Callable[[Provider, ModelSpec, float], Awaitable[T]]
    ) -> tuple[T, Served]:
        skipped: list[str] = []
        last: ProviderError | None = None
        open_breakers: list[Breaker] = []
        for spec in candidates:
            breaker = self._breakers[spec.provider]
            failure = "breaker_open"
            for attempt in range(self._policy.max_attempts):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _deadline_error(last)
                permit = breaker.allow()
                if permit is None:
                    open_breakers.append(breaker)
                    self._metrics.upstream_failure(spec.provider, spec.name, "breaker_open")
                    break
                started = time.perf_counter()
                try:
                    result = await call(self._providers[spec.provider], spec, remaining)
                except ProviderError as error:
                    breaker.record(permit, not error.counts_against_provider)
                    self._metrics.upstream_failure(spec.provider, spec.name, error.kind)
                    last, failure = error, error.kind
                except BaseException:
                    breaker.record(permit, None)
                    raise
                else:
                    breaker.record(permit, True)
                    self._metrics.upstream_success(spec.provider, spec.name, time.perf_counter() - started)
                    return result, Served(spec.name, spec.provider, spec.upstream, skipped=tuple(skipped))
                if last.kind == "request":
                    raise InvalidArgument(last.message, reason="PROVIDER_REJECTED_REQUEST")
                if last.kind in ("credentials", "output"):
                    break
                delay = last.retry_after_s
                if delay is None:
                    delay = self._policy.backoff_s(attempt, self._rng)
                if attempt + 1 >= self._policy.max_attempts or delay >= deadline - time.monotonic():
                    break
                await self._sleep(delay)
            skipped.append(spec.name)
            logger.warning("model %s failed: %s", spec.name, failure, extra={"provider": spec.provider})
        raise _final_error(last, open_breakers)


def _for_model(request: ChatRequest, spec: ModelSpec) -> ChatRequest:
    """The request as one candidate gets it: max_tokens defaulted and capped by the model."""
    max_tokens = request.max_tokens if request.max_tokens is not None else spec.default_max_tokens
    if max_tokens is not None:
        max_tokens = min(max_tokens, spec.max_tokens)
    if max_tokens == request.max_tokens:
        return request
    return dataclasses.replace(request, max_tokens=max_tokens)


def _deadline_error(last: ProviderError | None) -> DeadlineExceeded:
    detail = f" (last error: {last.message})" if last is not None else ""
    return DeadlineExceeded(f"no provider answered within the request timeout{detail}", reason="LLM_TIMEOUT")


def _final_error(last: ProviderError | None, open_breakers: list[Breaker]) -> DomainError:
    if last is None:
        retry = min((b.retry_after_s() for b in open_breakers), default=0.0)
        return Unavailable(
            "every provider that serves this model is failing (circuit breaker open); retry shortly",
            reason="CIRCUIT_OPEN",
            retry_after_s=max(retry, 1.0),
        )
    if last.kind == "rate_limited":
        return ResourceExhausted(last.message, reason="PROVIDER_RATE_LIMITED", retry_after_s=last.retry_after_s)
    if last.kind == "timeout":
        return _deadline_error(last)
    if last.kind == "output":
        return Unavailable(last.message, reason="MODEL_OUTPUT_INVALID")
    return Unavailable(last.message, reason="PROVIDER_UNAVAILABLE")
