"""Spark KV collections on the shared store: one store space per collection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.errors import Aborted, FailedPrecondition
from services.common.store import Check, Delete, Entry, Set, Store

_SPACE_PREFIX = "kv:"
_SCAN_BATCH = 1000
# A delete re-reads and retries while concurrent writers keep changing the key.
_DELETE_ATTEMPTS = 16


def space_of(collection: str) -> str:
    """The store space of a collection; the default collection is the empty name."""
    return _SPACE_PREFIX + collection


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

    async def get(self, collection: str, key: str) -> Entry | None:
        return await self._store.get(space_of(collection), key)

    async def set(
        self,
        collection: str,
        key: str,
        value: bytes,
        *,
        expected_versionstamp: str | None = None,
        only_if_absent: bool = False,
        ttl_ms: int | None = None,
    ) -> WriteResult:
        """Writes one value; with a condition, writes nothing if the condition fails."""
        space = space_of(collection)
        checks: list[Check] = []
        if only_if_absent:
            checks.append(Check(space, key, None))
        if expected_versionstamp is not None:
            checks.append(Check(space, key, expected_versionstamp))
        result = await self._store.commit(checks, [Set(space, key, value, ttl_ms)])
        if result.ok:
            return WriteResult(True, result.versionstamp)
        current = await self._store.get(space, key)
        return WriteResult(False, current.versionstamp if current else None)

    async def delete(self, collection: str, key: str, *, expected_versionstamp: str | None = None) -> bool:
        """Deletes one key; returns whether it existed. With a versionstamp, deletes only on a match."""
        space = space_of(collection)
        if expected_versionstamp is not None:
            result = await self._store.commit([Check(space, key, expected_versionstamp)], [Delete(space, key)])
            if not result.ok:
                raise Aborted(
                    "versionstamp does not match the current entry",
                    reason="VERSIONSTAMP_MISMATCH",
                    metadata={"key": key},
                )
            return True
        for _ in range(_DELETE_ATTEMPTS):
            current = await self._store.get(space, key)
            if current is None:
                return False
            result = await self._store.commit([Check(space, key, current.versionstamp)], [Delete(space, key)])
            if result.ok:
                return True
        await self._store.commit([], [Delete(space, key)])
        return True

    async def page(self, collection: str, prefix: str, start_after: str | None, size: int) -> tuple[list[Entry], bool]:
        """One page of entries in key order, and whether more follow."""
        entries = await self._store.list(space_of(collection), prefix=prefix, start_after=start_after, limit=size + 1)
        return entries[:size], len(entries) > size

    async def all_entries(self, collection: str) -> Sequence[Entry]:
        """Every entry of a collection, refusing collections larger than one answer may carry."""
        space = space_of(collection)
        entries: list[Entry] = []
        total_bytes = 0
        start_after: str | None = None
        while True:
            batch = await self._store.list(space, start_after=start_after, limit=_SCAN_BATCH)
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
