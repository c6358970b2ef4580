"""The prompt registry on the shared store.

Every change writes all of its keys (the prompt, the name index, the default
pointer, the history and the cache generation) in one store commit guarded by
versionstamp checks, so no reader ever sees two defaults for one (namespace,
lang) or an index entry for a deleted prompt, whatever dies between steps. A
commit that loses a race is re-read and retried.

Spaces and keys:
    prompts:by_id       {id:010d}                    -> prompt JSON
    prompts:by_name     ["namespace","name",version] -> id
    prompts:default     ["namespace","lang"]         -> id
    prompts:revisions   {id:010d}:{revision:010d}    -> revision JSON
    prompts:meta        ids | revisions              -> counters
    prompts:meta        generation                   -> touched by every change (cache invalidation)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from services.common.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound, quoted
from services.common.store import Check, Delete, Entry, Mutation, Set, Store
from services.prompts.model import Changes, Draft, ListQuery, Prompt, Revision, now_iso, sort_key, validate_prompt

logger = logging.getLogger(__name__)

BY_ID = "prompts:by_id"
BY_NAME = "prompts:by_name"
DEFAULTS = "prompts:default"
REVISIONS = "prompts:revisions"
META = "prompts:meta"
GENERATION = "generation"
_SCAN_BATCH = 1000
_ATTEMPTS = 32


def id_key(prompt_id: int) -> str:
    return f"{prompt_id:010d}"


def name_key(namespace: str, name: str, version: int) -> str:
    return orjson.dumps([namespace, name, version]).decode()


def default_key(namespace: str, lang: str) -> str:
    return orjson.dumps([namespace, lang]).decode()


def _encode(prompt: Prompt) -> bytes:
    return orjson.dumps(prompt.to_json())


def _decode(entry: Entry) -> Prompt:
    return Prompt.from_json(orjson.loads(entry.value))


@dataclass(frozen=True, slots=True)
class _Loaded:
    prompt: Prompt
    versionstamp: str


class _Change:
    """The checks and mutations of one commit, with the history it records."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.mutations: list[Mutation] = []
        self.revisions: list[tuple[int, str, Prompt | None, Prompt | None]] = []

    def expect(self, space: str, key: str, versionstamp: str | None) -> None:
        self.checks.append(Check(space, key, versionstamp))

    def put_prompt(self, prompt: Prompt) -> None:
        self.mutations.append(Set(BY_ID, id_key(prompt.id), _encode(prompt)))

    def record(self, prompt_id: int, action: str, before: Prompt | None, after: Prompt | None) -> None:
        self.revisions.append((prompt_id, action, before, after))


class PromptRepository:
    """Reads and writes prompts; knows nothing about gRPC, HTTP or caching."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # --- reads -----------------------------------------------------------------------------------

    async def _load(self, prompt_id: int) -> _Loaded | None:
        entry = await self._store.get(BY_ID, id_key(prompt_id))
        return None if entry is None else _Loaded(_decode(entry), entry.versionstamp)

    async def _load_existing(self, prompt_id: int) -> _Loaded:
        loaded = await self._load(prompt_id)
        if loaded is None:
            raise NotFound(f"prompt {prompt_id} not found", reason="PROMPT_NOT_FOUND", metadata={"id": str(prompt_id)})
        return loaded

    async def get(self, prompt_id: int) -> Prompt:
        return (await self._load_existing(prompt_id)).prompt

    async def get_default(self, namespace: str, lang: str) -> Prompt:
        pointer = await self._store.get(DEFAULTS, default_key(namespace, lang))
        loaded = None if pointer is None else await self._load(int(pointer.value))
        if loaded is None:
            raise NotFound(
                f"no default prompt for namespace {quoted(namespace)} and lang {quoted(lang)}",
                reason="NO_DEFAULT_PROMPT",
                metadata={"namespace": namespace, "lang": lang},
            )
        return loaded.prompt

    async def _scan(self, space: str, prefix: str = "") -> list[Entry]:
        """Every entry of a space (under a key prefix), a page at a time."""
        entries: list[Entry] = []
        start_after: str | None = None
        while True:
            batch = await self._store.list(space, prefix=prefix, start_after=start_after, limit=_SCAN_BATCH)
            entries += batch
            if len(batch) < _SCAN_BATCH:
                return entries
            start_after = batch[-1].key

    async def all_prompts(self) -> list[Prompt]:
        """Every prompt, by id."""
        return [_decode(entry) for entry in await self._scan(BY_ID)]

    async def query(self, query: ListQuery) -> list[Prompt]:
        """Every prompt matching the filters, in listing order."""
        return sorted((p for p in await self.all_prompts() if query.matches(p)), key=sort_key)

    async def revisions(self, prompt_id: int) -> list[Revision]:
        entries = await self._scan(REVISIONS, id_key(prompt_id) + ":")
        return [Revision.from_json(orjson.loads(entry.value)) for entry in entries]

    async def generation(self) -> str:
        """Changes whenever any prompt does: the versionstamp of the last change."""
        entry = await self._store.get(META, GENERATION)
        return "" if entry is None else entry.versionstamp

    # --- writes ----------------------------------------------------------------------------------

    async def _commit(self, change: _Change, actor: str) -> bool:
        at = now_iso()
        for prompt_id, action, before, after in change.revisions:
            number = await self._store.increment(META, "revisions", 1)
            revision = Revision(number, prompt_id, action, actor, at, before, after)
            change.mutations.append(
                Set(REVISIONS, f"{id_key(prompt_id)}:{number:010d}", orjson.dumps(revision.to_json()))
            )
        change.mutations.append(Set(META, GENERATION, at.encode()))
        result = await self._store.commit(change.checks, change.mutations)
        return result.ok

    async def _clear_old_default(self, change: _Change, namespace: str, lang: str, new_id: int) -> None:
        """Adds to `change` whatever moves the (namespace, lang) default away from its current holder."""
        pointer = await self._store.get(DEFAULTS, default_key(namespace, lang))
        change.expect(DEFAULTS, default_key(namespace, lang), pointer.versionstamp if pointer else None)
        if pointer is None or int(pointer.value) == new_id:
            return
        old = await self._load(int(pointer.value))
        if old is None:
            return
        change.expect(BY_ID, id_key(old.prompt.id), old.versionstamp)
        cleared = dataclasses.replace(old.prompt, is_default=False, updated_at=now_iso())
        change.put_prompt(cleared)
        change.record(old.prompt.id, "clear_default", old.prompt, cleared)

    async def create(self, draft: Draft, *, make_default: bool, actor: str) -> Prompt:
        validate_prompt(draft)
        if make_default and not draft.is_active:
            raise FailedPrecondition("only an active prompt can be the default", reason="INACTIVE_DEFAULT")
        prompt_id = await self._store.increment(META, "ids", 1)
        for _ in range(_ATTEMPTS):
            at = now_iso()
            prompt = Prompt(
                id=prompt_id,
                namespace=draft.namespace,
                name=draft.name,
                version=draft.version,
                lang=draft.lang,
                text=draft.text,
                tags=draft.tags,
                priority=draft.priority,
                is_active=draft.is_active,
                is_default=make_default,
                created_at=at,
                updated_at=at,
            )
            change = _Change()
            change.expect(BY_NAME, name_key(draft.namespace, draft.name, draft.version), None)
            change.mutations.append(
                Set(BY_NAME, name_key(draft.namespace, draft.name, draft.version), str(prompt_id).encode())
            )
            if make_default:
                await self._clear_old_default(change, draft.namespace, draft.lang, prompt_id)
                change.mutations.append(
                    Set(DEFAULTS, default_key(draft.namespace, draft.lang), str(prompt_id).encode())
                )
            change.put_prompt(prompt)
            change.record(prompt_id, "create", None, prompt)
            if await self._commit(change, actor):
                return prompt
            await self._raise_if_name_taken(draft.namespace, draft.name, draft.version, prompt_id)
        raise Aborted("the registry kept changing; try again", reason="CONTENDED")

    async def _raise_if_name_taken(self, namespace: str, name: str, version: int, own_id: int) -> None:
        holder = await self._store.get(BY_NAME, name_key(namespace, name, version))
        if holder is not None and int(holder.value) != own_id:
            raise AlreadyExists(
                f"a prompt {quoted(name)} version {version} already exists in namespace {quoted(namespace)}",
                reason="PROMPT_EXISTS",
                metadata={"id": holder.value.decode(), "namespace": namespace, "name": name, "version": str(version)},
            )

    async def update(self, prompt_id: int, changes: Changes, *, actor: str) -> Prompt:
        for _ in range(_ATTEMPTS):
            loaded = await self._load_existing(prompt_id)
            before = loaded.prompt
            after = changes.apply(before, now_iso())
            validate_prompt(after)
            change = _Change()
            change.expect(BY_ID, id_key(prompt_id), loaded.versionstamp)
            old_name = name_key(before.namespace, before.name, before.version)
            new_name = name_key(after.namespace, after.name, after.version)
            if new_name != old_name:
                change.expect(BY_NAME, new_name, None)
                change.mutations += [Delete(BY_NAME, old_name), Set(BY_NAME, new_name, str(prompt_id).encode())]
            moved = (after.namespace, after.lang) != (before.namespace, before.lang)
            if before.is_default and (not after.is_active or moved):
                # A deactivated or moved default stops being the default of its old (namespace, lang).
                pointer_key = default_key(before.namespace, before.lang)
                pointer = await self._store.get(DEFAULTS, pointer_key)
                change.expect(DEFAULTS, pointer_key, pointer.versionstamp if pointer else None)
                if pointer is not None and int(pointer.value) == prompt_id:
                    change.mutations.append(Delete(DEFAULTS, pointer_key))
                after = dataclasses.replace(after, is_default=False)
            change.put_prompt(after)
            change.record(prompt_id, "update", before, after)
            if await self._commit(change, actor):
                return after
            if new_name != old_name:
                await self._raise_if_name_taken(after.namespace, after.name, after.version, prompt_id)
        raise Aborted("the prompt kept changing; try again", reason="CONTENDED")

    async def delete(self, prompt_id: int, *, actor: str) -> Prompt:
        for _ in range(_ATTEMPTS):
            loaded = await self._load_existing(prompt_id)
            prompt = loaded.prompt
            change = _Change()
            change.expect(BY_ID, id_key(prompt_id), loaded.versionstamp)
            change.mutations += [
                Delete(BY_ID, id_key(prompt_id)),
                Delete(BY_NAME, name_key(prompt.namespace, prompt.name, prompt.version)),
            ]
            pointer_key = default_key(prompt.namespace, prompt.lang)
            pointer = await self._store.get(DEFAULTS, pointer_key)
            change.expect(DEFAULTS, pointer_key, pointer.versionstamp if pointer else None)
            if pointer is not None and int(pointer.value) == prompt_id:
                change.mutations.append(Delete(DEFAULTS, pointer_key))
            change.record(prompt_id, "delete", prompt, None)
            if await self._commit(change, actor):
                return prompt
        raise Aborted("the prompt kept changing; try again", reason="CONTENDED")

    async def set_default(self, prompt_id: int, *, actor: str) -> Prompt:
        for _ in range(_ATTEMPTS):
            loaded = await self._load_existing(prompt_id)
            before = loaded.prompt
            if not before.is_active:
                raise FailedPrecondition(
                    f"prompt {prompt_id} is inactive; only an active prompt can be the default",
                    reason="INACTIVE_DEFAULT",
                    metadata={"id": str(prompt_id)},
                )
            change = _Change()
            change.expect(BY_ID, id_key(prompt_id), loaded.versionstamp)
            await self._clear_old_default(change, before.namespace, before.lang, prompt_id)
            after = dataclasses.replace(before, is_default=True, updated_at=now_iso())
            change.mutations.append(Set(DEFAULTS, default_key(before.namespace, before.lang), str(prompt_id).encode()))
            change.put_prompt(after)
            change.record(prompt_id, "set_default", before, after)
            if await self._commit(change, actor):
                return after
        raise Aborted("the defaults kept changing; try again", reason="CONTENDED")

    async def replace_all(self, prompts: Sequence[Prompt], *, actor: str) -> int:
        """Replaces the whole registry with `prompts` (already validated) in one commit."""
        for _ in range(_ATTEMPTS):
            current = await self._scan(BY_ID)
            existing = {p.id: p for p in (_decode(e) for e in current)}
            change = _Change()
            for entry in current:
                change.expect(BY_ID, entry.key, entry.versionstamp)
            names = await self._scan(BY_NAME)
            defaults = await self._scan(DEFAULTS)
            for entry in (*names, *defaults):
                change.expect(entry.space, entry.key, entry.versionstamp)
                change.mutations.append(Delete(entry.space, entry.key))
            incoming = {p.id for p in prompts}
            for prompt_id, prompt in existing.items():
                if prompt_id not in incoming:
                    change.mutations.append(Delete(BY_ID, id_key(prompt_id)))
                    change.record(prompt_id, "delete", prompt, None)
            for prompt in prompts:
                change.put_prompt(prompt)
                change.mutations.append(
                    Set(BY_NAME, name_key(prompt.namespace, prompt.name, prompt.version), str(prompt.id).encode())
                )
                if prompt.is_default:
                    change.mutations.append(
                        Set(DEFAULTS, default_key(prompt.namespace, prompt.lang), str(prompt.id).encode())
                    )
                change.record(prompt.id, "restore", existing.get(prompt.id), prompt)
            counter = await self._store.get(META, "ids")
            highest = max([int(counter.value) if counter else 0, *incoming])
            change.expect(META, "ids", counter.versionstamp if counter else None)
            change.mutations.append(Set(META, "ids", str(highest).encode()))
            if await self._commit(change, actor):
                return len(prompts)
        raise Aborted("the registry kept changing during the restore; try again", reason="CONTENDED")
