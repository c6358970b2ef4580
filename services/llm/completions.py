"""One completion from request to answer: guard, cache, budget, gateway, usage.

The servicer converts wire formats; this module owns what happens in
between, the same for HTTP and typed gRPC callers, unary and streamed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.llm.budget import CHARS_PER_TOKEN, Estimate, TokenBudget, estimate
from services.llm.cache import CachedAnswer, CacheMode, ResponseCache
from services.llm.chat import (
    ChatRequest,
    Completion,
    Delta,
    Finished,
    Served,
    StreamEvent,
    ToolCallDelta,
    ToolCalls,
    Usage,
)
from services.llm.embeddings import Embeddings, EmbeddingsRequest
from services.llm.gateway import Gateway
from services.llm.guard import GuardLimits, guard, injection_refusal
from services.llm.metrics import LlmMetrics
from services.llm.usage import UsageLedger

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Plan:
    """A guarded request and what the cache knows about it, decided before any output."""

    request: ChatRequest
    injections: tuple[str, ...]
    # None when the request is not cacheable.
    cache_key: str | None
    cached: CachedAnswer | None
    # What a provider call may cost at most, reserved from the caller's budget (a cached answer costs nothing).
    estimate: Estimate


class Completions:
    def __init__(
        self,
        gateway: Gateway,
        limits: GuardLimits,
        cache: ResponseCache,
        ledger: UsageLedger,
        metrics: LlmMetrics,
        *,
        budget: TokenBudget,
    ) -> None:
        self._gateway = gateway
        self._budget = budget
        self._limits = limits
        self._cache = cache
        self._ledger = ledger
        self._metrics = metrics

    async def plan(self, request: ChatRequest, mode: CacheMode) -> Plan:
        """Guards the request (raising on refusal), resolves its candidates, estimates its cost and looks it up
        in the cache."""
        guarded = guard(request, self._limits)
        if guarded.injections and self._limits.injection == "refuse":
            self._metrics.injection(guarded.injections, "refused")
            raise injection_refusal(guarded.injections)
        if guarded.injections:
            self._metrics.injection(guarded.injections, "flagged")
            logger.warning("prompt-injection patterns in a request", extra={"patterns": list(guarded.injections)})
        # Resolving now turns an unknown model or a missing key into an error before the cache is asked.
        candidates = self._gateway.candidates(guarded.request)
        primary = candidates[0]
        key: str | None = None
        cached: CachedAnswer | None = None
        if self._cache.applies(guarded.request, mode):
            key = self._cache.key(guarded.request, primary.name)
            cached = await self._cache.get(key)
            self._metrics.cache(cached is not None)
        return Plan(guarded.request, guarded.injections, key, cached, estimate(guarded.request, candidates))

    async def complete(self, plan: Plan, caller: str, timeout_s: float) -> tuple[Completion, Served]:
        if plan.cached is not None:
            self._ledger.record(caller, plan.cached.served, None)
            return plan.cached.completion, plan.cached.served
        reservation = await self._budget.reserve(caller, plan.estimate.total)
        spent = 0
        try:
            completion, served = await self._gateway.complete(plan.request, timeout_s)
            spent = plan.estimate.spent(completion.usage, _chars(completion))
        finally:
            await self._budget.reconcile(reservation, spent)
        self._ledger.record(caller, served, completion.usage)
        if plan.cache_key is not None and completion.finish_reason != "content_filter":
            await self._cache.put(plan.cache_key, completion, served)
        return completion, served

    async def embed(self, request: EmbeddingsRequest, caller: str, timeout_s: float) -> tuple[Embeddings, Served]:
        """Embeddings, with the caller's budget and usage as for a completion: a reservation of the inputs'
        estimated tokens, reconciled to the provider's count."""
        reservation = await self._budget.reserve(caller, request.chars // CHARS_PER_TOKEN + len(request.inputs))
        spent = 0
        try:
            embeddings, served = await self._gateway.embed(request, timeout_s)
            spent = embeddings.prompt_tokens
        finally:
            await self._budget.reconcile(reservation, spent)
        self._ledger.record(caller, served, Usage(embeddings.prompt_tokens, 0))
        return embeddings, served

    async def stream(self, plan: Plan, caller: str, timeout_s: float) -> AsyncIterator[Served | StreamEvent]:
        """`Served`, then deltas, then `Finished`; see `Gateway.stream` for failures.

        However the stream ends (finished, failed, or closed by a caller who left), the reservation is
        reconciled: to the provider's count, to an estimate of the prompt and the text sent when a stream
        that had started gives none, or to nothing when no provider answered."""
        if plan.cached is not None:
            self._ledger.record(caller, plan.cached.served, None)
            yield plan.cached.served
            for replay in replayed(plan.cached.completion):
                yield replay
            return
        reservation = await self._budget.reserve(caller, plan.estimate.total)
        served: Served | None = None
        text: list[str] = []
        calls = ToolCalls()
        usage: Usage | None = None
        try:
            async for event in self._gateway.stream(plan.request, timeout_s):
                if isinstance(event, Served):
                    served = event
                elif isinstance(event, Delta):
                    text.append(event.text)
                elif isinstance(event, ToolCallDelta):
                    calls.add(event)
                elif served is not None:
                    usage = event.usage
                    self._ledger.record(caller, served, event.usage)
                    if plan.cache_key is not None and event.finish_reason != "content_filter":
                        completion = Completion("".join(text), event.finish_reason, event.usage, calls.calls())
                        await self._cache.put(plan.cache_key, completion, served)
                yield event
        finally:
            chars = sum(map(len, text)) + calls.chars
            spent = 0 if served is None else plan.estimate.spent(usage, chars)
            await self._budget.reconcile(reservation, spent)


def _chars(completion: Completion) -> int:
    """The characters a completion generated: its text and its calls."""
    return len(completion.text) + sum(len(call.name) + len(call.arguments) for call in completion.tool_calls)


def replayed(completion: Completion) -> list[StreamEvent]:
    """A whole completion as the events of a stream: its text, each call in one piece, the finish."""
    events: list[StreamEvent] = [Delta(completion.text)] if completion.text or not completion.tool_calls else []
    events += [
        ToolCallDelta(index, call.arguments, id=call.id, name=call.name)
        for index, call in enumerate(completion.tool_calls)
    ]
    events.append(Finished(completion.finish_reason, completion.usage))
    return events
