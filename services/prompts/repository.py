"""The prompt registry on the shared store.

Every change writes all of its keys (the prompt, the name index, the default
pointer, the history and the cache generation) in one store commit guarded by
versionstamp checks, so no reader ever sees two defaults for one (namespace,
lang) or an index entry for a deleted prompt, whatever dies between steps. A
commit that loses a race is re-read and retried.

A restore replaces the whole registry: more than one commit can carry (a
commit is one Redis script or one SQLite transaction, built in memory). So the
prompts live in a *dataset*, three spaces that a pointer names. A restore
writes a new dataset and its history in batches that nothing reads yet, then
moves the pointer in one small commit: the registry changes all at once or
not at all. Every other write checks the pointer in its commit, so a write
that raced a restore is retried on the new dataset rather than lost on the
old one, and a read that finds nothing re-reads the pointer before saying so.
Old datasets are deleted after the move.

Spaces and keys (`<d>` is empty for the first dataset, `/name` for a restored one):
    prompts:by_id<d>     {id:010d}                    -> prompt JSON
    prompts:by_name<d>   ["namespace","name",version] -> id
    prompts:default<d>   ["namespace","lang"]         -> id
    prompts:revisions    {id:010d}:{revision:010d}    -> revision JSON (a restore's carry its dataset's name)
    prompts:datasets     name                         -> {"state", "at"}: a dataset's life, see below
    prompts:meta         dataset                      -> the live dataset's name (absent: the first)
    prompts:meta         ids | revisions              -> counters
    prompts:meta         generation                   -> touched by every change (cache invalidation)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import orjson

from services.common.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    quoted,
)
from services.common.store import Check, Delete, Entry, Mutation, Set, Store
from services.prompts.model import (
    INT32_MAX,
    Changes,
    Draft,
    ListQuery,
    Prompt,
    Revision,
    now_iso,
    sort_key,
    validate_prompt,
)

logger = logging.getLogger(__name__)

BY_ID = "prompts:by_id"
BY_NAME = "prompts:by_name"
DEFAULTS = "prompts:default"
REVISIONS = "prompts:revisions"
DATASETS = "prompts:datasets"
META = "prompts:meta"
DATASET = "dataset"
GENERATION = "generation"
_SCAN_BATCH = 1000
_ATTEMPTS = 32
T = TypeVar("T")
# A restore writes its dataset in commits of about this much prompt JSON (its history adds up to twice
# as much): small enough for one Redis script to take a few milliseconds, large enough to be few.
_BATCH_BYTES = 256 * 1024
# A dataset's life: "staging" while a restore writes it, then "live"; "retired" when the next restore
# replaces it and "cleared" once its entries are deleted. A restore that fails marks its dataset
# "abandoned", and the record goes with the entries. A restore's revisions show once its dataset was live.
_TOOK_EFFECT = frozenset({"live", "retired", "cleared"})
# A dataset still "staging" after this long belongs to a restore that died; its deadline is far shorter.
_STALE_STAGING = timedelta(hours=1)


def id_key(prompt_id: int) -> str:
    return f"{prompt_id:010d}"


def name_key(namespace: str, name: str, version: int) -> str:
    return orjson.dumps([namespace, name, version]).decode()


def default_key(namespace: str, lang: str) -> str:
    return orjson.dumps([namespace, lang]).decode()


def _encode(prompt: Prompt) -> bytes:
    return orjson.dumps(prompt.to_json())


class StoredPromptInvalid(RuntimeError):
    """A stored prompt breaks the rules (written by a version that did not check them): an internal error,
    not the caller's."""


def _decode(entry: Entry) -> Prompt:
    try:
        return Prompt.from_json(orjson.loads(entry.value))
    except InvalidArgument as error:
        raise StoredPromptInvalid(f"stored prompt {entry.space}/{entry.key}: {error.message}") from None


def _record(state: str) -> bytes:
    return orjson.dumps({"state": state, "at": now_iso()})


@dataclass(frozen=True, slots=True)
class _Dataset:
    """The spaces of one dataset, and the pointer's versionstamp when it was read (None: never moved)."""

    name: str
    pointer: str | None

    def space(self, base: str) -> str:
        return f"{base}/{self.name}" if self.name else base

    @property
    def by_id(self) -> str:
        return self.space(BY_ID)

    @property
    def by_name(self) -> str:
        return self.space(BY_NAME)

    @property
    def defaults(self) -> str:
        return self.space(DEFAULTS)


@dataclass(frozen=True, slots=True)
class _Loaded:
    prompt: Prompt
    versionstamp: str
    dataset: _Dataset


class _Change:
    """The checks and mutations of one commit, with the history it records; valid only while `dataset` is live."""

    def __init__(self, dataset: _Dataset) -> None:
        self.dataset = dataset
        self.checks: list[Check] = [Check(META, DATASET, dataset.pointer)]
        self.mutations: list[Mutation] = []
        self.revisions: list[tuple[int, str, Prompt | None, Prompt | None]] = []

    def expect(self, space: str, key: str, versionstamp: str | None) -> None:
        self.checks.append(Check(space, key, versionstamp))

    def put_prompt(self, prompt: Prompt) -> None:
        self.mutations.append(Set(self.dataset.by_id, id_key(prompt.id), _encode(prompt)))

    def record(self, prompt_id: int, action: str, before: Prompt | None, after: Prompt | None) -> None:
        self.revisions.append((prompt_id, action, before, after))


class _Staging:
    """A restore while it writes its dataset: where, for whom, until when, and the history written so far."""

    def __init__(self, old: _Dataset, actor: str, deadline: float | None) -> None:
        self.old = old
        self.at = now_iso()
        self.dataset = _Dataset(f"{self.at}-{secrets.token_hex(4)}", None)
        self.actor = actor
        self.deadline = deadline
        self.history: list[str] = []

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded(
                "the restore could not finish in its time limit; nothing was changed", reason="RESTORE_TIMEOUT"
            )


def _batches(prompts: Sequence[Prompt]) -> Iterator[Sequence[Prompt]]:
    start, size = 0, 0
    for index, prompt in enumerate(prompts):
        size += len(prompt.text) + 256
        if size >= _BATCH_BYTES:
            yield prompts[start : index + 1]
            start, size = index + 1, 0
    if start < len(prompts):
        yield prompts[start:]


class PromptRepository:
    """Reads and writes prompts; knows nothing about gRPC, HTTP or caching."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._clearing: asyncio.Task[None] | None = None

    # --- reads -----------------------------------------------------------------------------------

    async def _live(self) -> _Dataset:
        pointer = await self._store.get(META, DATASET)
        return _Dataset("", None) if pointer is None else _Dataset(pointer.value.decode(), pointer.versionstamp)

    async def _load(self, dataset: _Dataset, prompt_id: int) -> _Loaded | None:
        entry = await self._store.get(dataset.by_id, id_key(prompt_id))
        return None if entry is None else _Loaded(_decode(entry), entry.versionstamp, dataset)

    async def _on_live(self, read: Callable[[_Dataset], Awaitable[T]], found: Callable[[T], bool]) -> T:
        """`read` from the live dataset. What it did not find (or all it read, for a scan) counts only if
        that dataset was still live afterwards: a restore may have switched datasets during the read."""
        for _ in range(_ATTEMPTS):
            dataset = await self._live()
            result = await read(dataset)
            if found(result) or await self._live() == dataset:
                return result
        raise Aborted("the registry kept being restored; try again", reason="CONTENDED")

    async def _find(self, prompt_id: int) -> _Loaded | None:
        """The prompt in the live dataset; None only if the dataset it was missing from is still live."""
        return await self._on_live(lambda dataset: self._load(dataset, prompt_id), lambda loaded: loaded is not None)

    async def _load_existing(self, prompt_id: int) -> _Loaded:
        loaded = await self._find(prompt_id)
        if loaded is None:
            raise NotFound(f"prompt {prompt_id} not found", reason="PROMPT_NOT_FOUND", metadata={"id": str(prompt_id)})
        return loaded

    async def get(self, prompt_id: int) -> Prompt:
        return (await self._load_existing(prompt_id)).prompt

    async def get_default(self, namespace: str, lang: str) -> Prompt:
        async def read(dataset: _Dataset) -> _Loaded | None:
            pointer = await self._store.get(dataset.defaults, default_key(namespace, lang))
            return None if pointer is None else await self._load(dataset, int(pointer.value))

        loaded = await self._on_live(read, lambda loaded: loaded is not None)
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
        async for batch in self._pages(space, prefix):
            entries += batch
        return entries

    async def _pages(self, space: str, prefix: str = "") -> AsyncIterator[list[Entry]]:
        start_after: str | None = None
        while True:
            batch = await self._store.list(space, prefix=prefix, start_after=start_after, limit=_SCAN_BATCH)
            if batch:
                yield batch
            if len(batch) < _SCAN_BATCH:
                return
            start_after = batch[-1].key

    async def all_prompts(self) -> list[Prompt]:
        """Every prompt, by id, all from one dataset."""
        entries = await self._on_live(lambda dataset: self._scan(dataset.by_id), lambda _: False)
        return [_decode(entry) for entry in entries]

    async def query(self, query: ListQuery) -> list[Prompt]:
        """Every prompt matching the filters, in listing order."""
        return sorted((p for p in await self.all_prompts() if query.matches(p)), key=sort_key)

    async def revisions(self, prompt_id: int) -> list[Revision]:
        """The prompt's history, oldest first, without the revisions of restores that never took effect."""
        revisions = []
        for entry in await self._scan(REVISIONS, id_key(prompt_id) + ":"):
            try:
                revisions.append(Revision.from_json(orjson.loads(entry.value)))
            except InvalidArgument as error:
                # Written by a version that let out-of-range values in; the rest of the history still shows.
                logger.warning("skipping revision %s: %s", entry.key, error.message)
        restores = sorted({r.restore for r in revisions if r.restore})
        records = await self._store.get_many(DATASETS, restores) if restores else []
        took_effect = {
            name for name, record in zip(restores, records, strict=True) if record and _state(record) in _TOOK_EFFECT
        }
        return [r for r in revisions if not r.restore or r.restore in took_effect]

    async def generation(self) -> str:
        """Changes whenever any prompt does: the versionstamp of the last change."""
        entry = await self._store.get(META, GENERATION)
        return "" if entry is None else entry.versionstamp

    # --- writes ----------------------------------------------------------------------------------

    async def _revision_numbers(self, count: int) -> range:
        """`count` new revision numbers, in one store call."""
        last = await self._store.increment(META, "revisions", count)
        return range(last - count + 1, last + 1)

    async def _commit(self, change: _Change, actor: str) -> bool:
        at = now_iso()
        if change.revisions:
            numbers = await self._revision_numbers(len(change.revisions))
            for number, (prompt_id, action, before, after) in zip(numbers, change.revisions, strict=True):
                revision = Revision(number, prompt_id, action, actor, at, before, after)
                change.mutations.append(
                    Set(REVISIONS, f"{id_key(prompt_id)}:{number:010d}", orjson.dumps(revision.to_json()))
                )
        change.mutations.append(Set(META, GENERATION, at.encode()))
        result = await self._store.commit(change.checks, change.mutations)
        return result.ok

    async def _clear_old_default(self, change: _Change, namespace: str, lang: str, new_id: int) -> None:
        """Adds to `change` whatever moves the (namespace, lang) default away from its current holder."""
        dataset = change.dataset
        pointer = await self._store.get(dataset.defaults, default_key(namespace, lang))
        change.expect(dataset.defaults, default_key(namespace, lang), pointer.versionstamp if pointer else None)
        if pointer is None or int(pointer.value) == new_id:
            return
        old = await self._load(dataset, int(pointer.value))
        if old is None:
            return
        change.expect(dataset.by_id, id_key(old.prompt.id), old.versionstamp)
        cleared = dataclasses.replace(old.prompt, is_default=False, updated_at=now_iso())
        change.put_prompt(cleared)
        change.record(old.prompt.id, "clear_default", old.prompt, cleared)

    async def _new_id(self) -> int:
        try:
            prompt_id = await self._store.increment(META, "ids", 1)
        except ValueError:
            prompt_id = INT32_MAX + 1
        if not 1 <= prompt_id <= INT32_MAX:
            raise FailedPrecondition(
                f"no prompt id is left below {INT32_MAX + 1}; restore an export to set the id counter again",
                reason="PROMPT_IDS_EXHAUSTED",
            )
        return prompt_id

    async def create(self, draft: Draft, *, make_default: bool, actor: str) -> Prompt:
        validate_prompt(draft)
        if make_default and not draft.is_active:
            raise FailedPrecondition("only an active prompt can be the default", reason="INACTIVE_DEFAULT")
        prompt_id = await self._new_id()
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
            dataset = await self._live()
            change = _Change(dataset)
            name = name_key(draft.namespace, draft.name, draft.version)
            # A restore sets the id counter from its data, which can put the counter below an id in use.
            change.expect(dataset.by_id, id_key(prompt_id), None)
            change.expect(dataset.by_name, name, None)
            change.mutations.append(Set(dataset.by_name, name, str(prompt_id).encode()))
            if make_default:
                await self._clear_old_default(change, draft.namespace, draft.lang, prompt_id)
                change.mutations.append(
                    Set(dataset.defaults, default_key(draft.namespace, draft.lang), str(prompt_id).encode())
                )
            change.put_prompt(prompt)
            change.record(prompt_id, "create", None, prompt)
            if await self._commit(change, actor):
                return prompt
            await self._raise_if_name_taken(dataset, draft.namespace, draft.name, draft.version, prompt_id)
            if await self._store.get(dataset.by_id, id_key(prompt_id)) is not None:
                prompt_id = await self._new_id()
        raise Aborted("the registry kept changing; try again", reason="CONTENDED")

    async def _raise_if_name_taken(
        self, dataset: _Dataset, namespace: str, name: str, version: int, own_id: int
    ) -> None:
        holder = await self._store.get(dataset.by_name, name_key(namespace, name, version))
        if holder is not None and int(holder.value) != own_id:
            raise AlreadyExists(
                f"a prompt {quoted(name)} version {version} already exists in namespace {quoted(namespace)}",
                reason="PROMPT_EXISTS",
                metadata={"id": holder.value.decode(), "namespace": namespace, "name": name, "version": str(version)},
            )

    async def update(self, prompt_id: int, changes: Changes, *, actor: str) -> Prompt:
        for _ in range(_ATTEMPTS):
            loaded = await self._load_existing(prompt_id)
            dataset = loaded.dataset
            before = loaded.prompt
            after = changes.apply(before, now_iso())
            validate_prompt(after)
            change = _Change(dataset)
            change.expect(dataset.by_id, id_key(prompt_id), loaded.versionstamp)
            old_name = name_key(before.namespace, before.name, before.version)
            new_name = name_key(after.namespace, after.name, after.version)
            if new_name != old_name:
                change.expect(dataset.by_name, new_name, None)
                change.mutations += [
                    Delete(dataset.by_name, old_name),
                    Set(dataset.by_name, new_name, str(prompt_id).encode()),
                ]
            moved = (after.namespace, after.lang) != (before.namespace, before.lang)
            if before.is_default and (not after.is_active or moved):
                # A deactivated or moved default stops being the default of its old (namespace, lang).
                pointer_key = default_key(before.namespace, before.lang)
                pointer = await self._store.get(dataset.defaults, pointer_key)
                change.expect(dataset.defaults, pointer_key, pointer.versionstamp if pointer else None)
                if pointer is not None and int(pointer.value) == prompt_id:
                    change.mutations.append(Delete(dataset.defaults, pointer_key))
                after = dataclasses.replace(after, is_default=False)
            change.put_prompt(after)
            change.record(prompt_id, "update", before, after)
            if await self._commit(change, actor):
                return after
            if new_name != old_name:
                await self._raise_if_name_taken(dataset, after.namespace, after.name, after.version, prompt_id)
        raise Aborted("the prompt kept changing; try again", reason="CONTENDED")

    async def delete(self, prompt_id: int, *, actor: str) -> Prompt:
        for _ in range(_ATTEMPTS):
            loaded = await self._load_existing(prompt_id)
            dataset = loaded.dataset
            prompt = loaded.prompt
            change = _Change(dataset)
            change.expect(dataset.by_id, id_key(prompt_id), loaded.versionstamp)
            change.mutations += [
                Delete(dataset.by_id, id_key(prompt_id)),
                Delete(dataset.by_name, name_key(prompt.namespace, prompt.name, prompt.version)),
            ]
            pointer_key = default_key(prompt.namespace, prompt.lang)
            pointer = await self._store.get(dataset.defaults, pointer_key)
            change.expect(dataset.defaults, pointer_key, pointer.versionstamp if pointer else None)
            if pointer is not None and int(pointer.value) == prompt_id:
                change.mutations.append(Delete(dataset.defaults, pointer_key))
            change.record(prompt_id, "delete", prompt, None)
            if await self._commit(change, actor):
                return prompt
        raise Aborted("the prompt kept changing; try again", reason="CONTENDED")

    async def set_default(self, prompt_id: int, *, actor: str) -> Prompt:
        for _ in range(_ATTEMPTS):
            loaded = await self._load_existing(prompt_id)
            dataset = loaded.dataset
            before = loaded.prompt
            if not before.is_active:
                raise FailedPrecondition(
                    f"prompt {prompt_id} is inactive; only an active prompt can be the default",
                    reason="INACTIVE_DEFAULT",
                    metadata={"id": str(prompt_id)},
                )
            change = _Change(dataset)
            change.expect(dataset.by_id, id_key(prompt_id), loaded.versionstamp)
            await self._clear_old_default(change, before.namespace, before.lang, prompt_id)
            after = dataclasses.replace(before, is_default=True, updated_at=now_iso())
            change.mutations.append(
                Set(dataset.defaults, default_key(before.namespace, before.lang), str(prompt_id).encode())
            )
            change.put_prompt(after)
            change.record(prompt_id, "set_default", before, after)
            if await self._commit(change, actor):
                return after
        raise Aborted("the defaults kept changing; try again", reason="CONTENDED")

    # --- restore ---------------------------------------------------------------------------------

    async def replace_all(self, prompts: Sequence[Prompt], *, actor: str, deadline: float | None = None) -> int:
        """Replaces the whole registry with `prompts` (each valid, together consistent): all or nothing.

        Sets the id counter from the data: the highest id restored or replaced, so a restore repairs a
        counter that ran out of range and hands out no id a prompt held just before. Raises
        DeadlineExceeded, having changed nothing, when the restore cannot take effect before `deadline`
        (a `time.monotonic()` value), and Aborted when another restore took effect during this one.
        """
        staging = _Staging(await self._live(), actor, deadline)
        claim = await self._store.commit(
            [Check(DATASETS, staging.dataset.name, None)], [Set(DATASETS, staging.dataset.name, _record("staging"))]
        )
        if not claim.ok or claim.versionstamp is None:
            raise Aborted("another restore started at the same moment; try again", reason="CONTENDED")
        started_switch = False
        try:
            highest = await self._stage(sorted(prompts, key=lambda prompt: prompt.id), staging)
            staging.check_deadline()
            change = _Change(staging.old)
            change.expect(DATASETS, staging.dataset.name, claim.versionstamp)
            change.mutations += [
                Set(META, DATASET, staging.dataset.name.encode()),
                Set(DATASETS, staging.dataset.name, _record("live")),
                Set(DATASETS, staging.old.name, _record("retired")),
                Set(META, "ids", str(highest).encode()),
            ]
            started_switch = True
            # Once sent, the switch may take effect even if this call is cancelled: never undo it from here.
            switched = await asyncio.shield(self._commit(change, actor))
        except BaseException:
            if not started_switch:
                await asyncio.shield(self._discard(staging, claim.versionstamp))
            raise
        if not switched:
            await self._discard(staging, claim.versionstamp)
            raise Aborted("another restore took effect during this one; nothing was changed", reason="CONTENDED")
        self._clear_in_background()
        return len(prompts)

    async def _stage(self, ordered: Sequence[Prompt], staging: _Staging) -> int:
        """Writes `ordered` (by id) as the staged dataset, with the restore's history; returns the highest id
        restored or replaced."""
        staged, old = staging.dataset, staging.old
        highest = ordered[-1].id if ordered else 0
        for batch in _batches(ordered):
            staging.check_deadline()
            current = await self._store.get_many(old.by_id, [id_key(p.id) for p in batch])
            mutations: list[Mutation] = []
            history: list[tuple[int, Prompt | None, Prompt | None]] = []
            for prompt, entry in zip(batch, current, strict=True):
                mutations.append(Set(staged.by_id, id_key(prompt.id), _encode(prompt)))
                name = name_key(prompt.namespace, prompt.name, prompt.version)
                mutations.append(Set(staged.by_name, name, str(prompt.id).encode()))
                if prompt.is_default:
                    mutations.append(
                        Set(staged.defaults, default_key(prompt.namespace, prompt.lang), str(prompt.id).encode())
                    )
                before = self._readable(entry)
                if before != prompt:
                    history.append((prompt.id, before, prompt))
            await self._write_history(mutations, history, staging)
        restored = {prompt.id for prompt in ordered}
        # The restored ids' old entries were read and compared batch by batch above: not decoded again here.
        restored_keys = {id_key(prompt_id) for prompt_id in restored}
        async for page in self._pages(old.by_id):
            staging.check_deadline()
            history = []
            for entry in page:
                if entry.key in restored_keys:
                    continue
                before = self._readable(entry)
                if before is not None and before.id not in restored:
                    highest = max(highest, before.id)
                    history.append((before.id, before, None))
            await self._write_history([], history, staging)
        return highest

    @staticmethod
    def _readable(entry: Entry | None) -> Prompt | None:
        """A replaced prompt, or None if it cannot be read (it goes, with no history of its going)."""
        if entry is None:
            return None
        try:
            return _decode(entry)
        except StoredPromptInvalid as error:
            logger.warning("a restore replaces an unreadable prompt: %s", error)
            return None

    async def _write_history(
        self,
        mutations: list[Mutation],
        history: Sequence[tuple[int, Prompt | None, Prompt | None]],
        staging: _Staging,
    ) -> None:
        if history:
            numbers = await self._revision_numbers(len(history))
            for number, (prompt_id, before, after) in zip(numbers, history, strict=True):
                action = "delete" if after is None else "restore"
                revision = Revision(
                    number, prompt_id, action, staging.actor, staging.at, before, after, restore=staging.dataset.name
                )
                key = f"{id_key(prompt_id)}:{number:010d}"
                mutations.append(Set(REVISIONS, key, orjson.dumps(revision.to_json())))
                staging.history.append(key)
        if mutations:
            await self._store.commit([], mutations)

    async def _discard(self, staging: _Staging, versionstamp: str) -> None:
        """Deletes what a restore that failed wrote, unless it took effect after all. Its history never shows
        (see `revisions`); deleting it only saves the space."""
        name = staging.dataset.name
        try:
            abandoned = await self._store.commit(
                [Check(DATASETS, name, versionstamp)], [Set(DATASETS, name, _record("abandoned"))]
            )
            if not abandoned.ok:
                return
            for start in range(0, len(staging.history), _SCAN_BATCH):
                keys = staging.history[start : start + _SCAN_BATCH]
                await self._store.commit([], [Delete(REVISIONS, key) for key in keys])
            await self.clear_datasets()
        except Exception:
            logger.exception("could not discard the staged dataset %s; a later restore deletes it", name)

    async def close(self) -> None:
        """Stops deleting old datasets; the next restore's clearing finishes the job."""
        if self._clearing is not None:
            self._clearing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clearing

    def _clear_in_background(self) -> None:
        if self._clearing is None or self._clearing.done():
            self._clearing = asyncio.ensure_future(self._clear_quietly())

    async def _clear_quietly(self) -> None:
        try:
            await self.clear_datasets()
        except Exception:
            logger.exception("could not delete old prompt datasets; the next restore tries again")

    async def clear_datasets(self) -> None:
        """Deletes the entries of datasets that are no longer live, and of restores that died half-way."""
        live = await self._live()
        stale_before = datetime.now(UTC) - _STALE_STAGING
        for record in await self._scan(DATASETS):
            state = _state(record)
            stale = state == "staging" and datetime.fromisoformat(orjson.loads(record.value)["at"]) < stale_before
            if record.key == live.name or (state not in {"retired", "abandoned"} and not stale):
                continue
            dataset = _Dataset(record.key, None)
            for space in (dataset.by_id, dataset.by_name, dataset.defaults):
                async for page in self._pages(space):
                    await self._store.commit([], [Delete(space, entry.key) for entry in page])
            # A restore's revisions stay visible once it took effect; a dead restore's never become visible.
            done = Set(DATASETS, record.key, _record("cleared")) if state == "retired" else Delete(DATASETS, record.key)
            await self._store.commit([Check(DATASETS, record.key, record.versionstamp)], [done])


def _state(record: Entry) -> str:
    return str(orjson.loads(record.value)["state"])
