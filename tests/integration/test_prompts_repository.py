"""The prompt registry's rules on both store backends, under concurrency and from two instances."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.prompts.backups import BackupStore
from services.prompts.cache import ReadCache
from services.prompts.model import Changes, Draft, ListQuery
from services.prompts.repository import PromptRepository
from tests.integration.conftest import StoreFactory


def draft(name: str, **fields: object) -> Draft:
    return Draft(namespace=str(fields.pop("namespace", "ns")), name=name, text="t", **fields)  # type: ignore[arg-type]


async def defaults_of(repo: PromptRepository, namespace: str = "ns") -> list[int]:
    return [p.id for p in await repo.query(ListQuery(namespace=namespace)) if p.is_default]


async def test_fifty_concurrent_creates_from_two_instances_get_distinct_ids(store_factory: StoreFactory) -> None:
    first, second = PromptRepository(store_factory()), PromptRepository(store_factory())
    created = await asyncio.gather(
        *((first if i % 2 else second).create(draft(f"p{i}"), make_default=False, actor="t") for i in range(50))
    )
    ids = [p.id for p in created]
    assert len(set(ids)) == 50
    assert sorted(p.id for p in await first.all_prompts()) == sorted(ids)


async def test_concurrent_defaults_leave_exactly_one(store_factory: StoreFactory) -> None:
    first, second = PromptRepository(store_factory()), PromptRepository(store_factory())
    prompts = [await first.create(draft(f"d{i}"), make_default=False, actor="t") for i in range(20)]
    await asyncio.gather(*((first if i % 2 else second).set_default(p.id, actor="t") for i, p in enumerate(prompts)))
    holders = await defaults_of(first)
    assert len(holders) == 1
    assert (await second.get_default("ns", "en")).id == holders[0]


async def test_concurrent_creates_with_make_default_leave_exactly_one(store_factory: StoreFactory) -> None:
    first, second = PromptRepository(store_factory()), PromptRepository(store_factory())
    await asyncio.gather(
        *((first if i % 2 else second).create(draft(f"m{i}"), make_default=True, actor="t") for i in range(20))
    )
    holders = await defaults_of(first)
    assert len(holders) == 1
    assert (await first.get_default("ns", "en")).id == holders[0]


async def test_duplicate_names_race_to_exactly_one_winner(store_factory: StoreFactory) -> None:
    first, second = PromptRepository(store_factory()), PromptRepository(store_factory())
    results = await asyncio.gather(
        *((first if i % 2 else second).create(draft("same"), make_default=False, actor="t") for i in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, BaseException))
    assert len(await first.all_prompts()) == 1


async def test_deactivating_or_deleting_the_default_clears_it(store_factory: StoreFactory) -> None:
    repo = PromptRepository(store_factory())
    prompt = await repo.create(draft("x"), make_default=True, actor="t")
    await repo.update(prompt.id, Changes(is_active=False), actor="t")
    with pytest.raises(NotFound):
        await repo.get_default("ns", "en")
    with pytest.raises(FailedPrecondition):
        await repo.set_default(prompt.id, actor="t")
    other = await repo.create(draft("y"), make_default=True, actor="t")
    await repo.delete(other.id, actor="t")
    with pytest.raises(NotFound):
        await repo.get_default("ns", "en")
    assert [r.action for r in await repo.revisions(other.id)] == ["create", "delete"]


async def test_every_change_moves_the_generation(store_factory: StoreFactory) -> None:
    repo = PromptRepository(store_factory())
    seen = {await repo.generation()}
    prompt = await repo.create(draft("g"), make_default=False, actor="t")
    seen.add(await repo.generation())
    await repo.update(prompt.id, Changes(text="u"), actor="t")
    seen.add(await repo.generation())
    await repo.set_default(prompt.id, actor="t")
    seen.add(await repo.generation())
    await repo.delete(prompt.id, actor="t")
    seen.add(await repo.generation())
    assert len(seen) == 5


async def test_one_instance_takes_each_scheduled_backup(store_factory: StoreFactory) -> None:
    first, second = BackupStore(store_factory(), retention_days=30), BackupStore(store_factory(), retention_days=30)
    claims = await asyncio.gather(*((first if i % 2 else second).claim("2026-11-23T03:00") for i in range(10)))
    assert sum(claims) == 1
    assert await first.claim("2026-11-24T03:00")


async def test_backups_are_listed_newest_first_and_loadable(store_factory: StoreFactory) -> None:
    backups = BackupStore(store_factory(), retention_days=30)
    older = await backups.save(b'{"a":1}', 1, "scheduled")
    newer = await backups.save(b'{"b":2}', 2, "manual")
    assert [b.id for b in await backups.list()] == [newer.id, older.id]
    assert await backups.load(older.id) == b'{"a":1}'
    with pytest.raises(NotFound):
        await backups.load("missing")


async def test_the_cache_serves_hits_and_drops_everything_after_any_write(store_factory: StoreFactory) -> None:
    writer, reader = PromptRepository(store_factory()), PromptRepository(store_factory())
    cache = ReadCache(reader.generation, CollectorRegistry())
    prompt = await writer.create(draft("c"), make_default=True, actor="t")
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return (await reader.get_default("ns", "en")).id

    assert await cache.get_or_load("default", "k", 300, load) == prompt.id
    assert await cache.get_or_load("default", "k", 300, load) == prompt.id
    assert loads == 1
    other = await writer.create(draft("d"), make_default=True, actor="t")
    assert await cache.get_or_load("default", "k", 300, load) == other.id
    assert loads == 2
