"""Token and cost accounting: per (day, caller, provider, model), summed across instances in the shared store.

Recording is in memory and flushed to the store every few seconds, so the
hot path costs no store round trip; a crash loses at most one flush interval
of counts (the Prometheus counters are per process anyway).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from services.common.errors import InvalidArgument, quoted
from services.common.store import Store, StoreError
from services.common.store.base import decode_counter
from services.llm.chat import Served, Usage
from services.llm.metrics import LlmMetrics
from services.llm.registry import Registry

logger = logging.getLogger(__name__)

SPACE = "llm-usage"
COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "cost_nano_usd")
RETENTION_MS = 400 * 24 * 3600 * 1000
MAX_RANGE_DAYS = 366

Bucket = tuple[str, str, str, str]  # day, caller, provider, model


@dataclass(frozen=True, slots=True)
class UsageRecord:
    day: str
    caller: str
    provider: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    # False for a model the registry does not list (no price: cost_usd counts nothing for it).
    priced: bool = True


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def parse_day(text: str, default: dt.date, field: str) -> dt.date:
    if not text:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{field}: {quoted(text)} is not a YYYY-MM-DD day", reason="INVALID_DAY") from None


def _key(bucket: Bucket, counter: str) -> str:
    return orjson.dumps([*bucket, counter]).decode()


class UsageLedger:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        metrics: LlmMetrics,
        *,
        today: Callable[[], dt.date] = _today,
    ) -> None:
        self._store = store
        self._registry = registry
        self._metrics = metrics
        self._today = today
        self._pending: dict[Bucket, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._flush_lock = asyncio.Lock()

    def record(self, caller: str, served: Served, usage: Usage | None) -> None:
        usage = usage or Usage(0, 0)
        model = self._registry.models.get(served.model)
        cost = model.price.cost(usage.prompt_tokens, usage.completion_tokens) if model and model.price else 0.0
        self._metrics.usage(served.provider, served.model, caller, usage, cost)
        counts = self._pending[(self._today().isoformat(), caller, served.provider, served.model)]
        counts[0] += 1
        counts[1] += usage.prompt_tokens
        counts[2] += usage.completion_tokens
        counts[3] += round(cost * 1_000_000_000)

    async def flush(self) -> None:
        """Adds the pending counts to the store; on a store failure they stay pending for the next flush."""
        async with self._flush_lock:
            pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0, 0])
            for bucket, counts in pending.items():
                for index, (counter, delta) in enumerate(zip(COUNTERS, counts, strict=True)):
                    if not delta:
                        continue
                    try:
                        await self._store.increment(SPACE, _key(bucket, counter), delta, ttl_ms=RETENTION_MS)
                    except StoreError:
                        logger.warning("usage flush failed; will retry", exc_info=True)
                        self._pending[bucket][index] += delta
                    counts[index] = 0

    async def query(self, start_day: str, end_day: str, caller: str) -> list[UsageRecord]:
        start = parse_day(start_day, self._today(), "start_day")
        end = parse_day(end_day, start, "end_day")
        if end < start or (end - start).days >= MAX_RANGE_DAYS:
            raise InvalidArgument(
                f"end_day must be on or after start_day and at most {MAX_RANGE_DAYS} days later",
                reason="INVALID_RANGE",
            )
        await self.flush()
        totals: dict[Bucket, dict[str, int]] = defaultdict(dict)
        day = start
        while day <= end:
            # Keys are JSON arrays: the open array up to the last given element is their prefix.
            prefix = orjson.dumps([day.isoformat(), caller] if caller else [day.isoformat()]).decode()[:-1] + ","
            start_after: str | None = None
            while True:
                entries = await self._store.list(SPACE, prefix=prefix, start_after=start_after, limit=1000)
                for entry in entries:
                    d, who, provider, model, counter = orjson.loads(entry.key)
                    totals[(d, who, provider, model)][counter] = decode_counter(entry.value)
                if len(entries) < 1000:
                    break
                start_after = entries[-1].key
            day += dt.timedelta(days=1)
        return [
            UsageRecord(
                *bucket,
                requests=counts.get("requests", 0),
                prompt_tokens=counts.get("prompt_tokens", 0),
                completion_tokens=counts.get("completion_tokens", 0),
                cost_usd=counts.get("cost_nano_usd", 0) / 1_000_000_000,
                priced=bucket[3] in self._registry.models,
            )
            for bucket, counts in sorted(totals.items())
        ]
