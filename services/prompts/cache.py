"""An in-process read cache that no instance can serve stale after a write is acknowledged.

Every change to the registry rewrites one generation key in the same commit
as the change itself (see repository). Before answering from memory, a read
fetches that key's versionstamp, one point read, and drops everything if it
moved: another instance's acknowledged write is seen by the next read here.
Entries also expire after their kind's TTL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ReadCache:
    """Values by key, each with an expiry, all valid for one store generation."""

    def __init__(
        self,
        generation: Callable[[], Awaitable[str]],
        registry: CollectorRegistry,
        *,
        enabled: bool = True,
        max_entries: int = 10_000,
    ) -> None:
        self._generation = generation
        self._enabled = enabled
        self._max_entries = max_entries
        self._seen_generation: str | None = None
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lookups = Counter(
            "prompts_cache_lookups", "Prompt cache lookups by kind and result.", ("kind", "result"), registry=registry
        )

    async def get_or_load(self, kind: str, key: Hashable, ttl_s: float, load: Callable[[], Awaitable[T]]) -> T:
        if not self._enabled or ttl_s <= 0:
            return await load()
        generation = await self._generation()
        if generation != self._seen_generation:
            if self._entries:
                logger.debug("cache dropped: the registry changed", extra={"generation": generation})
            self._entries.clear()
            self._seen_generation = generation
        now = time.monotonic()
        cached = self._entries.get((kind, key))
        if cached is not None and cached[0] > now:
            self._lookups.labels(kind, "hit").inc()
            logger.debug("cache hit", extra={"kind": kind})
            value: T = cached[1]
            return value
        self._lookups.labels(kind, "miss").inc()
        logger.debug("cache miss", extra={"kind": kind})
        value = await load()
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        # Stored under the generation read before loading: a write racing the load moves the
        # generation, so the next read drops this entry rather than serve it.
        self._entries[(kind, key)] = (now + ttl_s, value)
        return value
