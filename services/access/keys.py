"""API keys: `spk_<id>_<secret>`, stored as a SHA-256 hash in the shared store.

The secret is 256 random bits, so a fast hash is enough (there is nothing to
guess); the hash is compared in constant time. Verified keys are cached per
instance for a few seconds, so a revocation takes effect at once on the
instance that revoked it and within the cache lifetime on the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from services.access.users import User
from services.common.errors import NotFound
from services.common.store import Check, Delete, Set, Store

KEYS = "access-keys"
USERS = "access-users"
PREFIX = "spk_"
_KEY = re.compile(r"spk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
MAX_CACHED = 10_000
MAX_LABEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    label: str
    user: User
    created_at: str
    sha256: str

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # dataclasses serialise natively, the user nested

    @classmethod
    def from_json(cls, raw: bytes) -> KeyRecord:
        data = orjson.loads(raw)
        return cls(data["id"], data["label"], User.from_json(data["user"]), data["created_at"], data["sha256"])


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    def __init__(self, store: Store, *, cache_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cache_s = cache_s
        self._clock = clock
        # key id -> (record or None for "no such key", when the entry expires)
        self._cache: OrderedDict[str, tuple[KeyRecord | None, float]] = OrderedDict()

    async def create(self, user: User, label: str) -> tuple[KeyRecord, str]:
        key_id = secrets.token_hex(8)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        record = KeyRecord(key_id, label, user, created, _digest(secret))
        result = await self._store.commit(
            [Check(KEYS, key_id, None)],
            [Set(KEYS, key_id, record.to_json()), Set(USERS, user.id, orjson.dumps(user))],
        )
        if not result.ok:  # 64 random bits collided: astronomically unlikely, and still never overwrites
            raise RuntimeError("API key id collision")
        self._cache.pop(key_id, None)
        return record, secret

    async def list(self) -> list[KeyRecord]:
        entries = await self._store.list(KEYS, limit=10_000)
        return sorted((KeyRecord.from_json(e.value) for e in entries), key=lambda r: (r.created_at, r.id))

    async def revoke(self, key_id: str) -> None:
        if await self._store.get(KEYS, key_id) is None:
            raise NotFound(f"API key {key_id!r} not found", reason="API_KEY_NOT_FOUND", metadata={"id": key_id})
        await self._store.commit([], [Delete(KEYS, key_id)])
        self._cache.pop(key_id, None)

    async def verify(self, token: str) -> User | None:
        """The key's user, or None for a malformed, unknown or revoked key."""
        match = _KEY.fullmatch(token)
        if match is None:
            return None
        record = await self._record(match.group(1))
        if record is None or not hmac.compare_digest(record.sha256, _digest(token)):
            return None
        return record.user

    async def user(self, user_id: str) -> User | None:
        entry = await self._store.get(USERS, user_id)
        return None if entry is None else User.from_json(orjson.loads(entry.value))

    async def _record(self, key_id: str) -> KeyRecord | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        entry = await self._store.get(KEYS, key_id)
        record = None if entry is None else KeyRecord.from_json(entry.value)
        self._cache[key_id] = (record, now + self._cache_s)
        self._cache.move_to_end(key_id)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return record
