"""API keys: `spk_<id>_<secret>`, stored as a SHA-256 hash in the shared store.

The secret is 256 random bits, so a fast hash is enough (there is nothing to
guess); the hash is compared in constant time. Verified keys are cached per
instance for a few seconds, so a revocation takes effect at once on the
instance that revoked it and within the cache lifetime on the others.
"""

from __future__ import annotations

import dataclasses
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

from services.access.users import User, conflicting_fields
from services.common.errors import Aborted, AlreadyExists, FieldViolation, NotFound, quoted
from services.common.store import Check, Delete, Mutation, Set, Store

KEYS = "access-keys"
USERS = "access-users"
PREFIX = "spk_"
_KEY = re.compile(r"spk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
MAX_CACHED = 10_000
MAX_LABEL_CHARS = 200
# Reads of the user and commits of the key, when another request changes the user in between.
CREATE_ATTEMPTS = 3


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


def _user_exists(user_id: str, fields: list[str]) -> AlreadyExists:
    names = ", ".join(f.removeprefix("user.") for f in fields)
    return AlreadyExists(
        f"user {quoted(user_id)} exists with another {names}: leave it out to keep the stored profile, "
        "or send update_user: true to replace that profile",
        reason="USER_EXISTS",
        metadata={"user_id": user_id, "fields": ",".join(fields)},
        violations=tuple(FieldViolation(f, "differs from the stored user's") for f in fields),
    )


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

    async def create(self, user: User, label: str, *, update_user: bool = False) -> tuple[KeyRecord, str]:
        """A new key for `user`. A user that exists (the same id) keeps its stored profile, and the key gets
        it, unless `update_user` replaces that profile with `user`: a field given with another value than
        the stored one is refused as ALREADY_EXISTS naming it, neither written nor dropped silently."""
        for _ in range(CREATE_ATTEMPTS):
            entry = await self._store.get(USERS, user.id)
            stored = None if entry is None else User.from_json(orjson.loads(entry.value))
            if stored is not None and not update_user and (conflicts := conflicting_fields(stored, user)):
                raise _user_exists(user.id, conflicts)
            owner = user if stored is None or update_user else stored
            key_id = secrets.token_hex(8)
            secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
            created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            record = KeyRecord(key_id, label, owner, created, _digest(secret))
            writes: list[Mutation] = [Set(KEYS, key_id, record.to_json())]
            if owner != stored:
                writes.append(Set(USERS, owner.id, orjson.dumps(owner)))
            # Neither a key (64 random bits colliding) nor a user changed since it was read is overwritten:
            # a failed check goes round again.
            user_check = Check(USERS, user.id, None if entry is None else entry.versionstamp)
            if (await self._store.commit([Check(KEYS, key_id, None), user_check], writes)).ok:
                self._cache.pop(key_id, None)
                return record, secret
        raise Aborted(f"user {quoted(user.id)} kept changing while the key was made; retry", reason="USER_CHANGED")

    async def list(self) -> list[KeyRecord]:
        """Every key, oldest first, each with its user's profile as stored now (it may have been updated since)."""
        entries = await self._store.list(KEYS, limit=10_000)
        records = sorted((KeyRecord.from_json(e.value) for e in entries), key=lambda r: (r.created_at, r.id))
        user_ids = sorted({r.user.id for r in records})
        found = zip(user_ids, await self._store.get_many(USERS, user_ids), strict=True)
        users = {user_id: User.from_json(orjson.loads(e.value)) for user_id, e in found if e is not None}
        return [dataclasses.replace(r, user=users.get(r.user.id, r.user)) for r in records]

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
