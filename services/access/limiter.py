"""Fixed-window request counters in the shared store, exact across instances.

Each window of each bucket is one store counter, incremented atomically, so
the sum admitted by every access instance never passes the limit. To keep
the hot path off the store, an instance takes a small *lease* of requests at
once (one increment of n) and admits from it locally; for small limits the
lease is 1 and every request is one increment. A lease an instance does not
use before the window ends is lost, which can only admit fewer requests,
never more (at most `MAX_LEASE` per instance and window).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.common.store import Store
from services.common.store.base import decode_counter

SPACE = "access-limits"
# One store increment per this many requests at most (the lease share bounds it for small limits).
MAX_LEASE = 100
# A lease is at most this share of the limit, so instances cannot starve each other.
LEASE_SHARE = 100
# Counters outlive their window a little, for clocks that disagree slightly.
EXPIRY_SLACK_MS = 5_000
PURGE_EVERY_S = 5.0


def lease_size(limit: int) -> int:
    return max(1, min(MAX_LEASE, limit // LEASE_SHARE))


def _window(bucket: str, window_s: int, now: float) -> tuple[str, float]:
    """The store key of the bucket's window that holds `now`, and when that window ends."""
    window = int(now // window_s)
    return f"{bucket}|{window_s}|{window}", (window + 1) * window_s


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    # An estimate across instances: leases other instances hold count as used.
    remaining: int
    reset_s: float


@dataclass(slots=True)
class _Lease:
    ends_at: float
    left: int = 0
    # The store counter as this instance last saw it.
    counted: int = 0
    # The window's limit was reached: nothing more will be granted in it.
    exhausted: bool = False
    # One refill at a time: requests that arrive during a refill take from it instead of leasing more
    # (which would leave the extra leases unused, and admit fewer than the limit).
    refill: asyncio.Lock = field(default_factory=asyncio.Lock)


class Limiter:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._next_purge = 0.0

    async def hit(self, bucket: str, limit: int, window_s: int, cost: int = 1) -> Decision:
        """Counts `cost` requests against `bucket` and says whether they are admitted."""
        now = self._clock()
        key, ends_at = _window(bucket, window_s, now)
        if now >= self._next_purge:
            self._purge(now)
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease(ends_at)
        if lease.left < cost and not lease.exhausted:
            async with lease.refill:
                if lease.left < cost and not lease.exhausted:
                    await self._refill(lease, key, limit, window_s, cost)
        allowed = lease.left >= cost
        if allowed:
            lease.left -= cost
        remaining = max(0, limit - lease.counted + lease.left)
        return Decision(allowed, limit, remaining, ends_at - now)

    async def _refill(self, lease: _Lease, key: str, limit: int, window_s: int, cost: int) -> None:
        take = max(cost, lease_size(limit))
        total = await self._store.increment(SPACE, key, take, ttl_ms=window_s * 1000 + EXPIRY_SLACK_MS)
        granted = max(0, min(take, limit - (total - take)))
        lease.left += granted
        lease.counted = max(lease.counted, total)
        lease.exhausted = granted < take

    async def reached(self, bucket: str, limit: int, window_s: int) -> float | None:
        """Seconds until the current window ends when `bucket` has reached `limit` in it (counted by every
        instance, read from the store), else None. Counts nothing."""
        now = self._clock()
        key, ends_at = _window(bucket, window_s, now)
        entry = await self._store.get(SPACE, key)
        return ends_at - now if entry is not None and decode_counter(entry.value) >= limit else None

    def _purge(self, now: float) -> None:
        self._leases = {key: lease for key, lease in self._leases.items() if lease.ends_at > now}
        self._next_purge = now + PURGE_EVERY_S
