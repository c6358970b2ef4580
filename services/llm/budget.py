"""Per-user daily token budgets, counted in the shared store so that every instance draws on one budget.

A provider call first reserves its worst case (the prompt, estimated from its
characters, plus the most it may generate) and is refused if that would go
over the budget; when the call ends, however it ends, the reservation is
settled to what the call actually used. Reserving before the call is what
keeps concurrent calls from overspending together.

Each instance leases tokens from the store's counter in chunks (a twentieth
of the budget, at most 100,000) with one atomic increment, and serves
reservations from its lease in memory: the hot path costs a store write only
when a lease runs out. What settled calls give back returns to the lease, and
every flush (a few seconds) returns each lease's unreserved rest to the
store. So the counter is always at least what has been spent and reserved,
never less: no two instances can overspend together. It is more by at most
the instances' unreserved leases, for one flush interval; when a chunk no
longer fits, an instance asks for just what the call needs, so a caller near
the end of the budget is refused only when that does not fit either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from services.common.errors import ResourceExhausted, Unavailable
from services.common.store import Store, StoreError
from services.llm.chat import ChatRequest, ImagePart, Usage
from services.llm.metrics import LlmMetrics
from services.llm.registry import ModelSpec

logger = logging.getLogger(__name__)

SPACE = "llm-budget"
# A day's counter must outlive every call reserved on that day, including one that started just before midnight.
TTL_MS = 2 * 24 * 3600 * 1000
CHARS_PER_TOKEN = 4
# Roughly what a provider charges for one image at its default detail.
IMAGE_TOKENS = 1000
# An instance leases this share of a caller's daily budget at a time, up to MAX_LEASE_TOKENS.
LEASES_PER_BUDGET = 20
MAX_LEASE_TOKENS = 100_000


@dataclass(frozen=True, slots=True)
class Estimate:
    """The most a request may cost: its prompt (estimated) and the most it may generate."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def spent(self, usage: Usage | None, output_chars: int) -> int:
        """What a call that reached the provider used: the provider's count, or else an estimate from the output."""
        if usage is not None:
            return usage.total_tokens
        return self.prompt_tokens + math.ceil(output_chars / CHARS_PER_TOKEN)


def estimate(request: ChatRequest, candidates: Sequence[ModelSpec]) -> Estimate:
    """The request's worst case over the models it may be routed to."""
    chars = images = 0
    for message in request.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
            continue
        for part in message.content:
            if isinstance(part, ImagePart):
                images += 1
            else:
                chars += len(part.text)
    prompt = math.ceil(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS
    return Estimate(prompt, max(_max_output(request, spec) for spec in candidates))


def _max_output(request: ChatRequest, spec: ModelSpec) -> int:
    # As the gateway sends it: the caller's max_tokens, else the model's default, capped by the model. With
    # neither, the provider's own default applies, which may be anything up to the model's cap.
    asked = request.max_tokens if request.max_tokens is not None else spec.default_max_tokens
    return spec.max_tokens if asked is None else min(asked, spec.max_tokens)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens held for one call until it is reconciled."""

    # The counter holding them; None when budgets are off and nothing was reserved.
    key: str | None
    tokens: int


def counter_key(day: dt.date, caller: str) -> str:
    """The store key (in SPACE) of one caller's tokens on one UTC day."""
    return orjson.dumps([day.isoformat(), caller]).decode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TokenBudget:
    def __init__(
        self,
        store: Store,
        daily_tokens: int,
        metrics: LlmMetrics,
        *,
        now: Callable[[], dt.datetime] = _now,
    ) -> None:
        """`daily_tokens` per caller per UTC day; 0 turns budgets off."""
        self._store = store
        self._daily_tokens = daily_tokens
        self._lease_tokens = min(daily_tokens // LEASES_PER_BUDGET, MAX_LEASE_TOKENS)
        self._metrics = metrics
        self._now = now
        # Per counter key: tokens leased from the store that no call has reserved (only keys that have some).
        self._leased: dict[str, int] = {}
        self._leasing: dict[str, asyncio.Lock] = {}

    async def reserve(self, caller: str, tokens: int) -> Reservation:
        """Holds `tokens` of the caller's budget for today.

        Raises ResourceExhausted when they do not fit, and Unavailable when the store cannot be asked:
        a budget that cannot be checked is not enforced by letting the call through.
        """
        if self._daily_tokens == 0:
            return Reservation(None, tokens)
        now = self._now()
        key = counter_key(now.date(), caller)
        if self._take(key, tokens):
            return Reservation(key, tokens)
        # One lease at a time per counter: calls that arrive meanwhile are served from it instead of each
        # leasing a chunk of their own.
        async with self._leasing.setdefault(key, asyncio.Lock()):
            if self._take(key, tokens):
                return Reservation(key, tokens)
            held = self._leased.pop(key, 0)
            try:
                granted = await self._lease(key, tokens - held, caller, now)
            except BaseException:
                self._give(key, held)
                raise
            self._give(key, held + granted - tokens)
        return Reservation(key, tokens)

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Settles a reservation to what the call used (0 when it got no answer); never raises for the store.

        What was not used goes back to the lease; more than was reserved (a provider's count over the
        estimate) is added to the store's counter at once."""
        if reservation.key is None:
            return
        delta = actual_tokens - reservation.tokens
        if delta < 0:
            self._give(reservation.key, -delta)
        elif delta > 0:
            # Shielded: this runs in `finally` blocks of calls that may be being cancelled.
            await asyncio.shield(self._add(reservation.key, delta, "token budget not reconciled; the overrun is lost"))

    async def flush(self) -> None:
        """Returns every lease's unreserved tokens to the store; those the store does not take stay leased."""
        leased, self._leased = self._leased, {}
        # Locks of counters nobody is leasing now go too: there is one counter per caller and day.
        self._leasing = {key: lock for key, lock in self._leasing.items() if lock.locked()}
        for key, tokens in leased.items():
            try:
                await self._store.increment(SPACE, key, -tokens, ttl_ms=TTL_MS)
            except StoreError:
                logger.warning("unused token budget not returned; will retry", exc_info=True)
                self._give(key, tokens)

    def _take(self, key: str, tokens: int) -> bool:
        held = self._leased.get(key, 0)
        if held < tokens:
            return False
        if held == tokens:
            self._leased.pop(key, None)
        else:
            self._leased[key] = held - tokens
        return True

    def _give(self, key: str, tokens: int) -> None:
        if tokens > 0:
            self._leased[key] = self._leased.get(key, 0) + tokens

    async def _lease(self, key: str, need: int, caller: str, now: dt.datetime) -> int:
        """Leases at least `need` tokens from the store: a whole chunk if it fits, else exactly `need`."""
        for chunk in sorted({max(need, self._lease_tokens), need}, reverse=True):
            used = await self._increment(key, chunk, caller)
            if used <= self._daily_tokens:
                return chunk
            await asyncio.shield(self._add(key, -chunk, "over-budget lease not returned"))
        self._metrics.budget_refusal("exhausted")
        logger.info("daily token budget refused a call", extra={"caller": caller, "tokens": need})
        raise self._refusal(caller, used - need, need, now)

    async def _increment(self, key: str, tokens: int, caller: str) -> int:
        try:
            return await self._store.increment(SPACE, key, tokens, ttl_ms=TTL_MS)
        except StoreError:
            logger.warning("token budget unavailable; refusing the call", exc_info=True, extra={"caller": caller})
            self._metrics.budget_refusal("store_unavailable")
            raise Unavailable(
                "the daily token budget cannot be checked right now (data store unavailable); retry shortly",
                reason="TOKEN_BUDGET_UNAVAILABLE",
                retry_after_s=1.0,
            ) from None

    async def _add(self, key: str, delta: int, failure: str) -> None:
        try:
            await self._store.increment(SPACE, key, delta, ttl_ms=TTL_MS)
        except StoreError:
            logger.warning(failure, exc_info=True, extra={"delta": delta})

    def _refusal(self, caller: str, used_before: int, tokens: int, now: dt.datetime) -> ResourceExhausted:
        budget = self._daily_tokens
        reset = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        left = max(0, budget - used_before)
        if left == 0:
            message = f"daily token budget of {budget} tokens for user '{caller}' is used up; it resets at 00:00 UTC"
        else:
            message = (
                f"daily token budget of {budget} tokens for user '{caller}' has {left} tokens left, and this request "
                f"may use up to {tokens} (its prompt and max_tokens); lower max_tokens, or retry after the budget "
                "resets at 00:00 UTC"
            )
        return ResourceExhausted(
            message,
            reason="DAILY_TOKEN_BUDGET_EXCEEDED",
            metadata={
                "budget": str(budget),
                "remaining": str(left),
                "estimate": str(tokens),
                "resets_at": reset.isoformat().replace("+00:00", "Z"),
            },
            retry_after_s=max(1.0, (reset - now).total_seconds()),
        )
