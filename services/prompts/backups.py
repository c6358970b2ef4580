"""Exports in the seed plan's format, their validation on restore, and stored backups with retention."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from services.common.errors import FieldViolation, InvalidArgument, NotFound, quoted
from services.common.store import Check, Set, Store
from services.prompts.model import Prompt, now_iso, shown

FORMAT_VERSION = 1
BACKUPS = "prompts:backups"
BACKUP_INDEX = "prompts:backup_index"
DAY_MS = 24 * 3600 * 1000
CLAIMS = "prompts:backup_claims"
# A claim outlives any run of the job it guards.
_CLAIM_TTL_MS = 6 * 3600 * 1000


def export_document(prompts: Sequence[Prompt]) -> bytes:
    """`{"exported_at", "count", "prompts"}` as in the seed plan, plus the format version for restores."""
    return orjson.dumps(
        {
            "exported_at": now_iso(),
            "count": len(prompts),
            "format_version": FORMAT_VERSION,
            "prompts": [prompt.to_json() for prompt in sorted(prompts, key=lambda p: p.id)],
        }
    )


def _malformed(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        f"the export is malformed: {field} {description}",
        reason="MALFORMED_EXPORT",
        violations=(FieldViolation(field, description),),
    )


def parse_export(data: bytes, *, max_prompts: int) -> list[Prompt]:
    """Validates a whole export before anything is written, each prompt by the rules of the API's own
    create and update; raises InvalidArgument naming the first problem (the prompt's index and field)."""
    try:
        document: Any = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise _malformed("body", f"is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise _malformed("body", "must be a JSON object")
    version = document.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise InvalidArgument(
            f"the export has format_version {shown(version)}; this service restores version {FORMAT_VERSION}",
            reason="WRONG_EXPORT_VERSION",
            violations=(FieldViolation("format_version", f"must be {FORMAT_VERSION}"),),
        )
    unknown = sorted(set(document) - {"exported_at", "count", "prompts", "format_version"})
    if unknown:
        raise _malformed(quoted(unknown[0]), "is not a field of an export")
    items = document.pop("prompts", None)
    if not isinstance(items, list):
        raise _malformed("prompts", "must be a list")
    if len(items) > max_prompts:
        raise InvalidArgument(
            f"the export holds {len(items)} prompts, over the restore limit of {max_prompts}",
            reason="RESTORE_TOO_LARGE",
            metadata={"count": str(len(items)), "limit": str(max_prompts)},
            violations=(FieldViolation("prompts", f"must hold at most {max_prompts} prompts"),),
        )
    if document.get("count") != len(items):
        raise _malformed("count", f"says {shown(document.get('count'))} but the export holds {len(items)} prompts")
    consistency = _Consistency()
    prompts = []
    for index, item in enumerate(items):
        where = f"prompts[{index}]"
        if not isinstance(item, dict):
            raise _malformed(where, "must be an object")
        prompt = Prompt.from_json(item, where=where)
        consistency.check(prompt, where)
        prompts.append(prompt)
        # The prompts share their strings with the decoded JSON; dropping each object as it is read keeps
        # one copy of the export in memory, not two.
        items[index] = None
    return prompts


class _Consistency:
    """What no two prompts of one registry may share: an id, a (namespace, name, version), a default."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.names: set[tuple[str, str, int]] = set()
        self.defaults: set[tuple[str, str]] = set()

    def check(self, prompt: Prompt, where: str) -> None:
        if prompt.id in self.ids:
            raise _malformed(f"{where}.id", f"repeats id {prompt.id}")
        self.ids.add(prompt.id)
        name = (prompt.namespace, prompt.name, prompt.version)
        if name in self.names:
            raise _malformed(
                where,
                f"repeats namespace {quoted(prompt.namespace)}, name {quoted(prompt.name)}"
                f" and version {prompt.version}",
            )
        self.names.add(name)
        if prompt.is_default:
            if not prompt.is_active:
                raise _malformed(f"{where}.is_default", "is set on an inactive prompt")
            pair = (prompt.namespace, prompt.lang)
            if pair in self.defaults:
                raise _malformed(
                    f"{where}.is_default",
                    f"is a second default for namespace {quoted(prompt.namespace)} and lang {quoted(prompt.lang)}",
                )
            self.defaults.add(pair)


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A stored backup, without its content."""

    id: str
    created_at: str
    count: int
    size_bytes: int
    trigger: str


class BackupStore:
    """Backups kept in the shared store; each expires after the retention period."""

    def __init__(self, store: Store, *, retention_days: int) -> None:
        self._store = store
        self._ttl_ms = retention_days * DAY_MS
        self._last_created = ""
        self._sequence = 0

    def _new_id(self, created: str) -> str:
        """Sortable by time: a sequence orders this instance's backups within one millisecond,
        and random hex keeps two instances' backups in the same millisecond apart."""
        self._sequence = self._sequence + 1 if created == self._last_created else 0
        self._last_created = created
        return f"{created}-{self._sequence:04x}{secrets.token_hex(1)}"

    async def save(self, document: bytes, count: int, trigger: str) -> BackupInfo:
        created = now_iso()
        backup_id = self._new_id(created)
        info = BackupInfo(backup_id, created, count, len(document), trigger)
        await self._store.commit(
            [],
            [
                Set(BACKUPS, backup_id, document, self._ttl_ms),
                Set(BACKUP_INDEX, backup_id, orjson.dumps(info), self._ttl_ms),
            ],
        )
        return info

    async def claim(self, slot: str) -> bool:
        """True for exactly one of the instances that ask for the same scheduled slot."""
        result = await self._store.commit([Check(CLAIMS, slot, None)], [Set(CLAIMS, slot, b"", _CLAIM_TTL_MS)])
        return result.ok

    async def list(self) -> list[BackupInfo]:
        entries = await self._store.list(BACKUP_INDEX, limit=10_000)
        infos = [BackupInfo(**orjson.loads(entry.value)) for entry in entries]
        return sorted(infos, key=lambda info: info.id, reverse=True)

    async def load(self, backup_id: str) -> bytes:
        entry = await self._store.get(BACKUPS, backup_id)
        if entry is None:
            raise NotFound(f"backup {backup_id!r} not found", reason="BACKUP_NOT_FOUND", metadata={"id": backup_id})
        return entry.value
