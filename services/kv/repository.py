"""Spark KV collections on the shared store: one store space per app and collection.

The app `default` keeps the layout of suites from before apps had names: space `kv:<collection>` in the
store itself, so an upgraded suite serves what it stored as the default app's. Any other app `A` has the
spaces `app:{A}:kv:<collection>` in the store tagged `A` (on Redis, keys under a Cluster hash tag of A's own).
Those spaces never equal a default-app one, whatever the collection is called: none starts with `kv:`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.app import DEFAULT_APP
from services.common.errors import Aborted, FailedPrecondition
from services.common.store import Check, Delete, Entry, Set, Store

_SCAN_BATCH = 1000
# A delete re-reads and retries while concurrent writers keep changing the key.
_DELETE_ATTEMPTS = 16


def space_of(collection: str, app: str = DEFAULT_APP) -> str:
    """The store space of an app's collection; the default collection is the empty name."""
    if app == DEFAULT_APP:
        return "kv:" + collection
    return f"app:{{{app}}}:kv:{collection}"


@dataclass(frozen=True, slots=True)
class ListLimits:
    """How much one unpaged listing may return."""

    max_entries: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a conditional write."""

    written: bool
    versionstamp: str | None


class KvRepository:
    """Reads and writes Spark KV entries; knows nothing about gRPC or HTTP."""

    def __init__(self, store: Store, limits: ListLimits) -> None:
        self._store = store
        self._limits = limits

    def _at(self, app: str, collection: str) -> tuple[Store, str]:
        """The store and space of an app's collection (`app` a valid app name)."""
        store = self._store if app == DEFAULT_APP else self._store.tagged(app)
        return store, space_of(collection, app)

    async def get(self, app: str, collection: str, key: str) -> Entry | None:
        store, space = self._at(app, collection)
        return await store.get(space, key)

    async def set(
        self,
        app: str,
        collection: str,
        key: str,
        value: bytes,
        *,
        expected_versionstamp: str | None = None,
        only_if_absent: bool = False,
        ttl_ms: int | None = None,
    ) -> WriteResult:
        """Writes one value; with a condition, writes nothing if the condition fails."""
        store, space = self._at(app, collection)
        checks: list[Check] = []
        if only_if_absent:
            checks.append(Check(space, key, None))
        if expected_versionstamp is not None:
            checks.append(Check(space, key, expected_versionstamp))
        result = await store.commit(checks, [Set(space, key, value, ttl_ms)])
        if result.ok:
            return WriteResult(True, result.versionstamp)
        current = await store.get(space, key)
        return WriteResult(False, current.versionstamp if current else None)

    async def delete(self, app: str, collection: str, key: str, *, expected_versionstamp: str | None = None) -> bool:
        """Deletes one key; returns whether it existed. With a versionstamp, deletes only on a match."""
        store, space = self._at(app, collection)
        if expected_versionstamp is not None:
            result = await store.commit([Check(space, key, expected_versionstamp)], [Delete(space, key)])
            if not result.ok:
                raise Aborted(
                    "versionstamp does not match the current entry",
                    reason="VERSIONSTAMP_MISMATCH",
                    metadata={"key": key},
                )
            return True
        for _ in range(_DELETE_ATTEMPTS):
            current = await store.get(space, key)
            if current is None:
                return False
            result = await store.commit([Check(space, key, current.versionstamp)], [Delete(space, key)])
            if result.ok:
                return True
        await store.commit([], [Delete(space, key)])
        return True

    async def page(
        self, app: str, collection: str, prefix: str, start_after: str | None, size: int
    ) -> tuple[list[Entry], bool]:
        """One page of entries in key order, and whether more follow."""
        store, space = self._at(app, collection)
        entries = await store.list(space, prefix=prefix, start_after=start_after, limit=size + 1)
        return entries[:size], len(entries) > size

    async def all_entries(self, app: str, collection: str) -> Sequence[Entry]:
        """Every entry of a collection, refusing collections larger than one answer may carry."""
        store, space = self._at(app, collection)
        entries: list[Entry] = []
        total_bytes = 0
        start_after: str | None = None
        while True:
            batch = await store.list(space, start_after=start_after, limit=_SCAN_BATCH)
            for entry in batch:
                total_bytes += len(entry.value) + len(entry.key)
                entries.append(entry)
                if len(entries) > self._limits.max_entries or total_bytes > self._limits.max_bytes:
                    raise FailedPrecondition(
                        f"collection holds more than {self._limits.max_entries} entries or "
                        f"{self._limits.max_bytes} bytes; page through it with ListEntries",
                        reason="COLLECTION_TOO_LARGE",
                        metadata={
                            "max_entries": str(self._limits.max_entries),
                            "max_bytes": str(self._limits.max_bytes),
                        },
                    )
            if len(batch) < _SCAN_BATCH:
                return entries
            start_after = batch[-1].key
