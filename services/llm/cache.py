"""The exact-match response cache, in the shared store so every instance sees the same entries.

Only deterministic requests are cached (temperature 0, or the caller opts in
with `x-spark-cache: on`); the key is a hash of the whole normalised request,
so any difference in messages or parameters is a different entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

import orjson

from services.common.store import Set, Store, StoreError
from services.llm.chat import ChatRequest, Completion, Served, ToolCall, Usage
from services.llm.providers.finish import finish_reason

logger = logging.getLogger(__name__)

SPACE = "llm-cache"
CACHE_HEADER = "x-spark-cache"
# What the caller's `x-spark-cache` header asks for: "on" caches even a sampled request, "off" never caches.
CacheMode = Literal["auto", "on", "off"]


def cache_mode(header: str | None) -> CacheMode:
    value = (header or "").strip().lower()
    return "on" if value == "on" else "off" if value in ("off", "no-store") else "auto"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    completion: Completion
    served: Served


class ResponseCache:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self._store = store
        self._ttl_ms = int(ttl_s * 1000)

    def applies(self, request: ChatRequest, mode: CacheMode) -> bool:
        if self._ttl_ms <= 0 or mode == "off":
            return False
        return mode == "on" or request.temperature == 0

    @staticmethod
    def key(request: ChatRequest, canonical_model: str) -> str:
        normalised = dataclasses.asdict(dataclasses.replace(request, model=canonical_model))
        return hashlib.sha256(orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def get(self, key: str) -> CachedAnswer | None:
        """The cached answer, or None; a store failure reads as a miss (the cache must not fail requests)."""
        try:
            entry = await self._store.get(SPACE, key)
        except StoreError:
            logger.warning("response cache unavailable; serving without it", exc_info=True)
            return None
        if entry is None:
            return None
        raw = orjson.loads(entry.value)
        usage = Usage(*raw["usage"]) if raw["usage"] else None
        calls = tuple(ToolCall(*call) for call in raw.get("tool_calls") or ())
        completion = Completion(raw["text"], finish_reason(raw["finish_reason"]), usage, calls)
        return CachedAnswer(completion, Served(raw["model"], raw["provider"], raw["upstream"], cached=True))

    async def put(self, key: str, completion: Completion, served: Served) -> None:
        usage = completion.usage
        value = {
            "text": completion.text,
            "finish_reason": completion.finish_reason,
            "usage": [usage.prompt_tokens, usage.completion_tokens] if usage else None,
            "tool_calls": [[call.id, call.name, call.arguments] for call in completion.tool_calls],
            "model": served.model,
            "provider": served.provider,
            "upstream": served.upstream_model,
        }
        try:
            await self._store.commit([], [Set(SPACE, key, orjson.dumps(value), ttl_ms=self._ttl_ms)])
        except StoreError:
            logger.warning("response cache unavailable; answer not cached", exc_info=True)
