"""Restores on both store backends: all or nothing, the id counter set from the data, racing writes kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from services.common.errors import Aborted, AlreadyExists, DeadlineExceeded, FailedPrecondition, NotFound
from services.common.store import Set, Store
from services.prompts.model import INT32_MAX, Draft, ListQuery, Prompt
from services.prompts.repository import (
    BY_ID,
    DATASETS,
    META,
    REVISIONS,
    PromptRepository,
    StoredPromptInvalid,
    id_key,
)
from tests.integration.conftest import StoreFactory

AT = "2026-01-02T03:04:05.000Z"


def restored(prompt_id: int, name: str = "", **fields: Any) -> Prompt:
    values: dict[str, Any] = {
        "id": prompt_id,
        "namespace": "ns",
        "name": name or f"r{prompt_id}",
        "version": 1,
        "lang": "en",
        "text": f"text of {prompt_id}",
        "tags": (),
        "priority": 0,
        "is_active": True,
        "is_default": False,
        "created_at": AT,
        "updated_at": AT,
    }
    return Prompt(**{**values, **fields})


def draft(name: str, text: str = "t") -> Draft:
    return Draft(namespace="ns", name=name, text=text)


async def snapshot(repo: PromptRepository, ids: range = range(1, 30)) -> tuple[Any, ...]:
    """What a caller can see: prompts, the default, and every listed history."""
    prompts = await repo.all_prompts()
    try:
        default: int | None = (await repo.get_default("ns", "en")).id
    except NotFound:
        default = None
    histories = [await repo.revisions(i) for i in ids]
    return prompts, default, histories


async def spaces_in_use(store: Store) -> list[str]:
    """The datasets that still hold entries, by their by_id space (the first dataset's has no suffix)."""
    names = [""] + [entry.key for entry in await store.list(DATASETS)]
    return [name for name in names if await store.list(f"{BY_ID}/{name}" if name else BY_ID, limit=1)]


async def test_a_restore_replaces_everything_and_records_only_what_it_changed(store_factory: StoreFactory) -> None:
    store = store_factory()
    repo = PromptRepository(store)
    kept = await repo.create(draft("kept"), make_default=False, actor="t")
    changed = await repo.create(draft("changed"), make_default=True, actor="t")
    dropped = await repo.create(draft("dropped"), make_default=False, actor="t")
    generation = await repo.generation()
    new = restored(9, is_default=True)
    count = await repo.replace_all([new, kept, restored(changed.id, "changed", text="new text")], actor="restorer")
    assert count == 3
    assert [p.id for p in await repo.all_prompts()] == [kept.id, changed.id, 9]
    assert (await repo.get(changed.id)).text == "new text"
    assert (await repo.get_default("ns", "en")).id == 9
    assert await repo.generation() != generation
    with pytest.raises(NotFound):
        await repo.get(dropped.id)
    assert [r.action for r in await repo.revisions(kept.id)] == ["create"]
    assert [(r.action, r.actor) for r in await repo.revisions(changed.id)][-1] == ("restore", "restorer")
    assert [r.action for r in await repo.revisions(dropped.id)] == ["create", "delete"]
    assert [r.action for r in await repo.revisions(9)] == ["restore"]
    with pytest.raises(AlreadyExists):
        await repo.create(draft("changed"), make_default=False, actor="t")
    # The replaced dataset is deleted afterwards (in the background in the service).
    await repo.clear_datasets()
    live = await store.get(META, "dataset")
    assert live is not None
    assert await spaces_in_use(store) == [live.value.decode()]


async def test_the_id_counter_is_set_from_the_data_and_a_broken_one_is_repaired(store_factory: StoreFactory) -> None:
    store = store_factory()
    repo = PromptRepository(store)
    for name in ("a", "b", "c"):
        await repo.create(draft(name), make_default=False, actor="t")
    # What a restore of id 2**63 left behind before restores were checked.
    await store.commit([], [Set(META, "ids", str(2**63 - 1).encode())])
    with pytest.raises(FailedPrecondition, match="no prompt id is left"):
        await repo.create(draft("d"), make_default=False, actor="t")
    await store.commit([], [Set(META, "ids", str(INT32_MAX).encode())])
    with pytest.raises(FailedPrecondition, match="no prompt id is left"):
        await repo.create(draft("d"), make_default=False, actor="t")
    await repo.replace_all([restored(1), restored(5)], actor="t")
    # The highest id restored (5) or replaced (3): not the old counter, and no id a prompt held just before.
    assert (await repo.create(draft("e"), make_default=False, actor="t")).id == 6
    await repo.replace_all([restored(2)], actor="t")
    assert (await repo.create(draft("f"), make_default=False, actor="t")).id == 7


async def test_a_restore_replaces_prompts_stored_out_of_range(store_factory: StoreFactory) -> None:
    store = store_factory()
    repo = PromptRepository(store)
    bad = restored(1).to_json() | {"id": 2**31, "priority": 2**40, "created_at": "not a date"}
    await store.commit([], [Set(BY_ID, id_key(2**31), orjson.dumps(bad))])
    with pytest.raises(StoredPromptInvalid):
        await repo.all_prompts()
    await repo.replace_all([restored(3)], actor="t")
    assert [p.id for p in await repo.query(ListQuery())] == [3]
    assert (await repo.create(draft("next"), make_default=False, actor="t")).id == 4


async def test_a_restore_out_of_time_changes_nothing(store_factory: StoreFactory) -> None:
    store = store_factory()
    repo = PromptRepository(store)
    await repo.create(draft("old"), make_default=True, actor="t")
    before = await snapshot(repo)
    with pytest.raises(DeadlineExceeded, match="nothing was changed"):
        await repo.replace_all([restored(i) for i in range(1, 20)], actor="t", deadline=time.monotonic())
    assert await snapshot(repo) == before
    assert await spaces_in_use(store) == [""]
    assert [entry.key for entry in await store.list(DATASETS)] == []


async def test_a_restore_cancelled_half_way_changes_nothing(store_factory: StoreFactory) -> None:
    store = store_factory()
    repo = PromptRepository(store)
    await repo.create(draft("old"), make_default=True, actor="t")
    before = await snapshot(repo, range(1, 5))
    counter = await store.get(META, "revisions")
    # About fifteen batches: the cancellation lands long before the last one, let alone the switch.
    prompts = [restored(i, text="x" * 1000) for i in range(1, 3001)]
    task = asyncio.ensure_future(repo.replace_all(prompts, actor="t"))
    while await store.get(META, "revisions") == counter:
        assert not task.done()
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Some of its history was written; none of it shows, and it is deleted with the rest.
    assert await store.get(META, "revisions") != counter
    assert await snapshot(repo, range(1, 5)) == before
    assert await spaces_in_use(store) == [""]
    assert len(await store.list(REVISIONS)) == 1


async def test_creates_racing_a_restore_from_another_instance_are_kept_or_replaced_whole(
    store_factory: StoreFactory,
) -> None:
    restorer, writer = PromptRepository(store_factory()), PromptRepository(store_factory())
    prompts = [restored(i, text="y" * 2000) for i in range(1, 1001)]

    async def creates() -> list[Prompt]:
        made = []
        for i in range(40):
            made.append(await writer.create(draft(f"w{i}", text=f"written {i}"), make_default=False, actor="t"))
            await asyncio.sleep(0.005)
        return made

    _, made = await asyncio.gather(restorer.replace_all(prompts, actor="t"), creates())
    now = {p.id: p for p in await writer.all_prompts()}
    assert all(now[p.id] == p for p in prompts)
    survivors = [p for p in made if p.id in now and now[p.id].name == p.name]
    # A create that took effect after the switch is there, whole, under an id of its own; one before it was
    # replaced. Nothing else: no created prompt under a restored one's id, no prompt lost between the two.
    assert len(now) == len(prompts) + len(survivors)
    assert all(now[p.id] == p for p in survivors)
    assert len({p.id for p in made}) == len(made)
    for p in made:
        if p not in survivors:
            assert p.id <= len(prompts)  # replaced by the restore's prompt of that id, or gone
    assert (await writer.create(draft("after"), make_default=False, actor="t")).id > max(now)


async def test_reads_during_a_restore_never_miss_a_prompt_both_sides_hold(store_factory: StoreFactory) -> None:
    restorer, reader = PromptRepository(store_factory()), PromptRepository(store_factory())
    kept = await restorer.create(draft("kept"), make_default=True, actor="t")
    prompts = [kept, *(restored(i, text="z" * 2000) for i in range(2, 800))]
    done = False

    async def read() -> int:
        reads = 0
        while not done:
            assert (await reader.get(kept.id)).id == kept.id
            assert (await reader.get_default("ns", "en")).id == kept.id
            reads += 1
            await asyncio.sleep(0)
        return reads

    async def restore_twice() -> None:
        nonlocal done
        for _ in range(2):
            await restorer.replace_all(prompts, actor="t")
            await restorer.clear_datasets()
        done = True

    _, reads = await asyncio.gather(restore_twice(), read())
    assert reads > 0


async def test_two_restores_at_once_leave_exactly_one_of_them(store_factory: StoreFactory) -> None:
    first, second = PromptRepository(store_factory()), PromptRepository(store_factory())
    exports = [
        [restored(i, text=f"first {i}") for i in range(1, 300)],
        [restored(i, text=f"second {i}") for i in range(1, 200)],
    ]
    results = await asyncio.gather(
        first.replace_all(exports[0], actor="t"), second.replace_all(exports[1], actor="t"), return_exceptions=True
    )
    assert all(isinstance(r, (int, Aborted)) for r in results), results
    assert any(isinstance(r, int) for r in results)
    assert await first.all_prompts() in exports
