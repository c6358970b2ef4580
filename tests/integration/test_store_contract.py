"""The store contract, run unchanged against every backend (`store` fixture).

Backend-specific behaviour (several processes on one SQLite file, a locked
database, Redis going away and coming back) is tested at the end of the file.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.common.store import (
    MAX_LIST_LIMIT,
    Check,
    CommitResult,
    Delete,
    Entry,
    RedisStore,
    Set,
    SqliteStore,
    Store,
    StoreError,
    StoreUnavailable,
    delete_value,
    set_if_absent,
    set_value,
)
from tests.support.redis_server import RedisServer

StoreFactory = Callable[[], Store]

VERSIONSTAMP_RE = re.compile(r"[0-9a-f]{20}")
REPO_ROOT = Path(__file__).resolve().parents[2]
SPACE = "kv:default"

# Keys a browser app really sends (percent-decoded by the edge) plus the
# characters that break naive encodings.
AWKWARD_KEYS = [
    "",
    "plain",
    "a/b c",
    "a//b/",
    "100%",
    "%2F",
    "what?",
    "#fragment",
    "a:b",
    ":",
    " leading and trailing ",
    "tab\tnew\nline",
    "nul\x00inside",
    "emoji 🎉🚀",
    "中文键",
    "日本語",
    "עברית",
    "مرحبا",
    "é composed",
    "e\u0301 decomposed",
    "\uffff",
    "\U00010000",
    "\U0010ffff",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def must_commit(store: Store, checks: list[Check], mutations: list[Set | Delete]) -> str:
    result = await store.commit(checks, mutations)
    assert result.ok, result
    assert result.versionstamp is not None
    return result.versionstamp


async def list_all(store: Store, space: str, *, prefix: str = "", page: int = 1000) -> list[Entry]:
    entries: list[Entry] = []
    start_after: str | None = None
    while True:
        batch = await store.list(space, prefix=prefix, start_after=start_after, limit=page)
        entries += batch
        if len(batch) < page:
            return entries
        start_after = batch[-1].key


async def list_keys(store: Store, space: str, **kwargs: object) -> list[str]:
    return [entry.key for entry in await store.list(space, **kwargs)]  # type: ignore[arg-type]


# ---------------------------------------------------------------- basics


async def test_round_trips_arbitrary_bytes(store: Store) -> None:
    rng = random.Random(1)
    values = {
        "empty": b"",
        "nul": b"\x00",
        "all-bytes": bytes(range(256)) * 4,
        "invalid-utf8": b"\xff\xfe\xc3\x28",
        "json": b'{"a": [1, 2, "\\u00e9"]}',
        "ten-mib": rng.randbytes(10 * 1024 * 1024),
    }
    stamps = {key: await set_value(store, SPACE, key, value) for key, value in values.items()}
    for key, value in values.items():
        entry = await store.get(SPACE, key)
        assert entry == Entry(SPACE, key, value, stamps[key], None)
    listed = await store.list(SPACE)
    assert {entry.key: entry.value for entry in listed} == values


async def test_unicode_keys_round_trip_and_list_in_code_point_order(store: Store) -> None:
    for index, key in enumerate(AWKWARD_KEYS):
        await set_value(store, SPACE, key, str(index).encode())
    for index, key in enumerate(AWKWARD_KEYS):
        entry = await store.get(SPACE, key)
        assert entry is not None, key
        assert (entry.key, entry.value) == (key, str(index).encode())
    # Python compares str by code point, which is also UTF-8 byte order; it
    # differs from UTF-16 order (JavaScript) for "\uffff" vs "\U00010000".
    expected = sorted(AWKWARD_KEYS)
    assert expected.index("\uffff") < expected.index("\U00010000")
    assert await list_keys(store, SPACE) == expected
    got = await store.get_many(SPACE, AWKWARD_KEYS)
    assert [entry.key if entry else None for entry in got] == AWKWARD_KEYS


async def test_get_missing_returns_none(store: Store) -> None:
    assert await store.get(SPACE, "missing") is None
    assert await store.get_many(SPACE, []) == []
    await set_value(store, SPACE, "present", b"1")
    got = await store.get_many(SPACE, ["missing", "present", "present", "other"])
    assert [entry.value if entry else None for entry in got] == [None, b"1", b"1", None]
    assert await store.list("no-such-space") == []


async def test_versionstamps_are_20_hex_and_strictly_increasing(store: Store) -> None:
    stamps: list[str] = []
    for i in range(10):
        stamps.append(await set_value(store, SPACE, f"k{i % 3}", b"x"))
        await store.increment(SPACE, "counter", 1)
        entry = await store.get(SPACE, "counter")
        assert entry is not None
        stamps.append(entry.versionstamp)
        stamps.append(await delete_value(store, SPACE, "gone"))
    assert all(VERSIONSTAMP_RE.fullmatch(stamp) for stamp in stamps)
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    # Fixed-width lowercase hex sorts as strings exactly as it does as numbers.
    assert [int(stamp, 16) for stamp in stamps] == sorted(int(stamp, 16) for stamp in stamps)


async def test_one_commit_has_one_versionstamp(store: Store) -> None:
    stamp = await must_commit(store, [], [Set(SPACE, "a", b"1"), Set("other", "b", b"2")])
    a, b = await store.get(SPACE, "a"), await store.get("other", "b")
    assert a is not None and b is not None
    assert a.versionstamp == b.versionstamp == stamp


# ---------------------------------------------------------------- checks


async def test_check_and_set_succeeds_with_current_versionstamp(store: Store) -> None:
    first = await set_value(store, SPACE, "k", b"v1")
    second = await must_commit(store, [Check(SPACE, "k", first)], [Set(SPACE, "k", b"v2")])
    assert second > first
    entry = await store.get(SPACE, "k")
    assert entry is not None
    assert (entry.value, entry.versionstamp) == (b"v2", second)


async def test_failed_check_writes_nothing(store: Store) -> None:
    stale = await set_value(store, SPACE, "k", b"v1")
    current = await set_value(store, SPACE, "k", b"v2")
    await set_value(store, SPACE, "doomed", b"still here")
    result = await store.commit(
        [Check("elsewhere", "x", None), Check(SPACE, "k", stale)],
        [Set(SPACE, "k", b"v3"), Set(SPACE, "new", b"n"), Delete(SPACE, "doomed"), Set("elsewhere", "x", b"x")],
    )
    assert result == CommitResult(ok=False, versionstamp=None)
    entry = await store.get(SPACE, "k")
    assert entry is not None
    assert (entry.value, entry.versionstamp) == (b"v2", current)
    assert await store.get(SPACE, "new") is None
    assert await store.get("elsewhere", "x") is None
    assert await store.get(SPACE, "doomed") is not None
    assert await list_keys(store, SPACE) == ["doomed", "k"]


async def test_check_none_means_insert_if_absent(store: Store) -> None:
    first = await set_if_absent(store, SPACE, "nonce", b"first")
    assert first is not None
    assert await set_if_absent(store, SPACE, "nonce", b"second") is None
    entry = await store.get(SPACE, "nonce")
    assert entry is not None and entry.value == b"first"
    # A check for absence fails against a live entry whatever its version.
    result = await store.commit([Check(SPACE, "nonce", None)], [Set(SPACE, "other", b"x")])
    assert not result.ok
    await delete_value(store, SPACE, "nonce")
    assert await set_if_absent(store, SPACE, "nonce", b"third") is not None


async def test_check_on_absent_key_with_versionstamp_fails(store: Store) -> None:
    made_up = "0" * 19 + "1"
    result = await store.commit([Check(SPACE, "never", made_up)], [Set(SPACE, "never", b"x")])
    assert not result.ok
    assert await store.get(SPACE, "never") is None


async def test_checks_only_commit_succeeds_without_writing(store: Store) -> None:
    stamp = await set_value(store, SPACE, "k", b"v")
    result = await store.commit([Check(SPACE, "k", stamp), Check(SPACE, "absent", None)], [])
    assert result.ok and result.versionstamp is not None and result.versionstamp > stamp
    entry = await store.get(SPACE, "k")
    assert entry is not None and entry.versionstamp == stamp


async def test_multi_key_commit_across_spaces_is_atomic(store: Store) -> None:
    a = await set_value(store, "space-a", "x", b"a0")
    b = await set_value(store, "space-b", "y", b"b0")
    stamp = await must_commit(
        store,
        [Check("space-a", "x", a), Check("space-b", "y", b)],
        [Set("space-a", "x", b"a1"), Set("space-b", "y", b"b1"), Delete("space-a", "z")],
    )
    x, y = await store.get("space-a", "x"), await store.get("space-b", "y")
    assert x is not None and y is not None
    assert (x.value, y.value, x.versionstamp, y.versionstamp) == (b"a1", b"b1", stamp, stamp)
    # One stale check in the other space sinks the whole commit.
    result = await store.commit(
        [Check("space-a", "x", stamp), Check("space-b", "y", b)],
        [Set("space-a", "x", b"a2"), Set("space-b", "y", b"b2")],
    )
    assert not result.ok
    x, y = await store.get("space-a", "x"), await store.get("space-b", "y")
    assert x is not None and y is not None
    assert (x.value, y.value) == (b"a1", b"b1")


async def test_mutations_apply_in_order(store: Store) -> None:
    await must_commit(
        store, [], [Set(SPACE, "k", b"1"), Delete(SPACE, "k"), Set(SPACE, "j", b"1"), Set(SPACE, "j", b"2")]
    )
    assert await store.get(SPACE, "k") is None
    entry = await store.get(SPACE, "j")
    assert entry is not None and entry.value == b"2"
    assert await list_keys(store, SPACE) == ["j"]


async def test_delete(store: Store) -> None:
    await set_value(store, SPACE, "a", b"1")
    await set_value(store, SPACE, "b", b"2")
    stamp = await delete_value(store, SPACE, "a")
    assert VERSIONSTAMP_RE.fullmatch(stamp)
    assert await store.get(SPACE, "a") is None
    assert await list_keys(store, SPACE) == ["b"]
    # Deleting what is not there is not an error, and a delete can be guarded.
    await delete_value(store, SPACE, "never-existed")
    assert (await store.commit([Check(SPACE, "a", None)], [Delete(SPACE, "b")])).ok
    assert await list_keys(store, SPACE) == []


# ---------------------------------------------------------------- listing


async def test_list_by_prefix(store: Store) -> None:
    keys = ["a", "b", "b/1", "b/2", "ba", "bb/x", "c", "é", "é/1", "éa", "ê", "中", "中文", "中文/键", "丰"]
    for key in keys:
        await set_value(store, SPACE, key, key.encode())
    assert await list_keys(store, SPACE, prefix="b") == ["b", "b/1", "b/2", "ba", "bb/x"]
    assert await list_keys(store, SPACE, prefix="b/") == ["b/1", "b/2"]
    assert await list_keys(store, SPACE, prefix="é") == ["é", "é/1", "éa"]
    assert await list_keys(store, SPACE, prefix="中文") == ["中文", "中文/键"]
    assert await list_keys(store, SPACE, prefix="中") == ["中", "中文", "中文/键"]
    assert await list_keys(store, SPACE, prefix="z") == []
    assert await list_keys(store, SPACE, prefix="") == sorted(keys)
    entries = await store.list(SPACE, prefix="b/")
    assert [(e.space, e.key, e.value) for e in entries] == [(SPACE, "b/1", b"b/1"), (SPACE, "b/2", b"b/2")]


async def test_list_prefix_bound_with_highest_code_points(store: Store) -> None:
    # A bound built as prefix + max_char, or a LIKE pattern, gets these wrong.
    keys = ["a", "a\U0010ffff", "a\U0010ffffz", "a\uffff", "a\U00010000", "a%", "a_", "b", "`"]
    for key in keys:
        await set_value(store, SPACE, key, b"")
    assert await list_keys(store, SPACE, prefix="a") == sorted(k for k in keys if k.startswith("a"))
    assert await list_keys(store, SPACE, prefix="a\U0010ffff") == ["a\U0010ffff", "a\U0010ffffz"]
    assert await list_keys(store, SPACE, prefix="a%") == ["a%"]
    assert await list_keys(store, SPACE, prefix="a_") == ["a_"]
    assert await list_keys(store, SPACE, prefix="\x00") == []


async def test_list_pagination_visits_every_entry_once(store: Store) -> None:
    keys = [f"item/{i:03d}" for i in range(57)] + ["itemz", "other"]
    random.Random(2).shuffle(keys)
    for key in keys:
        await set_value(store, SPACE, key, b"v")
    expected = sorted(k for k in keys if k.startswith("item/"))
    for page in (1, 10, 57, 100):
        got = [entry.key for entry in await list_all(store, SPACE, prefix="item/", page=page)]
        assert got == expected, page


async def test_list_start_after(store: Store) -> None:
    for key in ["a", "b/1", "b/2", "b/3", "c"]:
        await set_value(store, SPACE, key, b"")
    assert await list_keys(store, SPACE, start_after="b/1") == ["b/2", "b/3", "c"]
    assert await list_keys(store, SPACE, start_after="b/15") == ["b/2", "b/3", "c"]
    assert await list_keys(store, SPACE, start_after="") == ["a", "b/1", "b/2", "b/3", "c"]
    assert await list_keys(store, SPACE, prefix="b/", start_after="a") == ["b/1", "b/2", "b/3"]
    assert await list_keys(store, SPACE, prefix="b/", start_after="b/2") == ["b/3"]
    assert await list_keys(store, SPACE, prefix="b/", start_after="b/3") == []
    assert await list_keys(store, SPACE, prefix="b/", start_after="c") == []
    assert await list_keys(store, SPACE, prefix="b/", start_after="b/1", limit=1) == ["b/2"]


async def test_list_limit(store: Store) -> None:
    for i in range(300):
        await set_value(store, SPACE, f"{i:04d}", b"")
    assert await list_keys(store, SPACE, limit=1) == ["0000"]
    assert len(await store.list(SPACE, limit=299)) == 299
    assert len(await store.list(SPACE, limit=MAX_LIST_LIMIT)) == 300
    assert len(await store.list(SPACE)) == 300
    for bad in (0, -1, MAX_LIST_LIMIT + 1, True, 1.5, "10"):
        with pytest.raises(ValueError, match="limit"):
            await store.list(SPACE, limit=bad)  # type: ignore[arg-type]


async def test_spaces_are_isolated(store: Store) -> None:
    # Naive "space:key" joins make the first two of these the same entry.
    await set_value(store, "a", "b:c", b"space a")
    await set_value(store, "a:b", "c", b"space a:b")
    await set_value(store, "a:", "b:c", b"space a:")
    await set_value(store, "", "a:b:c", b"empty space")
    await set_value(store, "a\x00", "b", b"nul space")
    expectations = {
        ("a", "b:c"): b"space a",
        ("a:b", "c"): b"space a:b",
        ("a:", "b:c"): b"space a:",
        ("", "a:b:c"): b"empty space",
        ("a\x00", "b"): b"nul space",
    }
    for (space, key), value in expectations.items():
        entry = await store.get(space, key)
        assert entry is not None and entry.value == value, (space, key)
        assert [(e.key, e.value) for e in await store.list(space)] == [(key, value)]
    assert await store.get("a", "b") is None
    assert await store.get("a:b", "b:c") is None
    assert await list_keys(store, "a", prefix="b:") == ["b:c"]
    await delete_value(store, "a", "b:c")
    assert (await store.get("a:b", "c")) is not None


# ---------------------------------------------------------------- expiry


async def test_ttl_expiry_hides_entry_everywhere(store: Store) -> None:
    before = now_ms()
    stamp = await set_value(store, SPACE, "short", b"v", ttl_ms=300)
    await set_value(store, SPACE, "long", b"v")
    entry = await store.get(SPACE, "short")
    assert entry is not None and entry.expires_at_ms is not None
    assert before + 300 - 50 <= entry.expires_at_ms <= now_ms() + 300 + 50
    assert await list_keys(store, SPACE) == ["long", "short"]
    await asyncio.sleep(0.45)
    assert await store.get(SPACE, "short") is None
    assert await store.get_many(SPACE, ["short", "long"]) == [None, await store.get(SPACE, "long")]
    assert await list_keys(store, SPACE) == ["long"]
    assert await list_keys(store, SPACE, prefix="sh") == []
    # To checks, an expired entry is absent.
    assert not (await store.commit([Check(SPACE, "short", stamp)], [])).ok
    assert await set_if_absent(store, SPACE, "short", b"again") is not None
    entry = await store.get(SPACE, "short")
    assert entry is not None and entry.value == b"again" and entry.expires_at_ms is None


async def test_overwriting_without_ttl_removes_expiry(store: Store) -> None:
    await set_value(store, SPACE, "k", b"temporary", ttl_ms=200)
    await set_value(store, SPACE, "k", b"permanent")
    await set_value(store, SPACE, "j", b"temporary", ttl_ms=200)
    await set_value(store, SPACE, "j", b"longer", ttl_ms=60_000)
    await asyncio.sleep(0.3)
    # Further writes to the space give a backend the chance to prune expired
    # index entries; it must not prune these two.
    await set_value(store, SPACE, "x", b"", ttl_ms=1)
    await asyncio.sleep(0.01)
    await set_value(store, SPACE, "y", b"")
    k, j = await store.get(SPACE, "k"), await store.get(SPACE, "j")
    assert k is not None and (k.value, k.expires_at_ms) == (b"permanent", None)
    assert j is not None and j.value == b"longer" and j.expires_at_ms is not None
    assert j.expires_at_ms > now_ms() + 50_000
    assert await list_keys(store, SPACE) == ["j", "k", "y"]


async def test_many_expired_entries_leave_listing_correct(store: Store) -> None:
    for i in range(40):
        await set_value(store, SPACE, f"t{i:02d}", b"", ttl_ms=100)
    for i in range(0, 40, 8):
        await set_value(store, SPACE, f"t{i:02d}b", b"")
    await asyncio.sleep(0.2)
    expected = [f"t{i:02d}b" for i in range(0, 40, 8)]
    assert await list_keys(store, SPACE, limit=2) == expected[:2]
    assert [entry.key for entry in await list_all(store, SPACE, page=3)] == expected
    assert await list_keys(store, SPACE) == expected


# ---------------------------------------------------------------- counters


async def test_increment_creates_adds_and_stores_decimal(store: Store) -> None:
    assert await store.increment(SPACE, "n", 5) == 5
    assert await store.increment(SPACE, "n", 3) == 8
    assert await store.increment(SPACE, "n", -10) == -2
    assert await store.increment(SPACE, "n", 0) == -2
    entry = await store.get(SPACE, "n")
    assert entry is not None and (entry.value, entry.expires_at_ms) == (b"-2", None)
    # Counters written by commit are counters too.
    await set_value(store, SPACE, "m", b"41")
    assert await store.increment(SPACE, "m", 1) == 42
    assert await list_keys(store, SPACE) == ["m", "n"]


async def test_increment_keeps_ttl_and_restarts_after_expiry(store: Store) -> None:
    before = now_ms()
    assert await store.increment(SPACE, "window", 1, ttl_ms=400) == 1
    first = await store.get(SPACE, "window")
    assert first is not None and first.expires_at_ms is not None
    assert before + 400 - 50 <= first.expires_at_ms <= now_ms() + 400 + 50
    assert await store.increment(SPACE, "window", 1, ttl_ms=60_000) == 2
    assert await store.increment(SPACE, "window", 1) == 3
    second = await store.get(SPACE, "window")
    assert second is not None
    assert second.expires_at_ms == first.expires_at_ms
    assert second.versionstamp > first.versionstamp
    await asyncio.sleep(0.5)
    assert await store.get(SPACE, "window") is None
    assert await store.increment(SPACE, "window", 7, ttl_ms=60_000) == 7
    third = await store.get(SPACE, "window")
    assert third is not None and third.expires_at_ms is not None
    assert third.expires_at_ms > now_ms() + 50_000
    # Without a TTL a re-created counter does not inherit the old expiry.
    await set_value(store, SPACE, "plain", b"1", ttl_ms=100)
    await asyncio.sleep(0.2)
    assert await store.increment(SPACE, "plain", 1) == 1
    await asyncio.sleep(0.01)
    await store.increment(SPACE, "other", 1)
    plain = await store.get(SPACE, "plain")
    assert plain is not None and plain.expires_at_ms is None
    assert "plain" in await list_keys(store, SPACE)


async def test_increment_rejects_non_counters_and_overflow(store: Store) -> None:
    for bad in (b"abc", b"1.5", b" 1", b"+1", b"01", b"-0", b"", b"99999999999999999999"):
        stamp = await set_value(store, SPACE, "bad", bad)
        with pytest.raises(ValueError):
            await store.increment(SPACE, "bad", 1)
        entry = await store.get(SPACE, "bad")
        assert entry is not None and (entry.value, entry.versionstamp) == (bad, stamp)
    await set_value(store, SPACE, "big", str(2**63 - 2).encode())
    assert await store.increment(SPACE, "big", 1) == 2**63 - 1
    with pytest.raises(ValueError):
        await store.increment(SPACE, "big", 1)
    await set_value(store, SPACE, "small", str(-(2**63) + 1).encode())
    assert await store.increment(SPACE, "small", -1) == -(2**63)
    with pytest.raises(ValueError):
        await store.increment(SPACE, "small", -1)
    entry = await store.get(SPACE, "small")
    assert entry is not None and entry.value == str(-(2**63)).encode()


# ---------------------------------------------------------------- concurrency


async def test_concurrent_commits_to_distinct_keys_all_land(store: Store) -> None:
    results = await asyncio.gather(
        *(
            store.commit([Check(SPACE, f"k{i:03d}", None)], [Set(SPACE, f"k{i:03d}", str(i).encode())])
            for i in range(100)
        )
    )
    assert all(result.ok for result in results)
    stamps = [result.versionstamp for result in results]
    assert len(set(stamps)) == 100
    entries = await store.list(SPACE)
    assert [(entry.key, entry.value) for entry in entries] == [(f"k{i:03d}", str(i).encode()) for i in range(100)]


async def cas_increment(store: Store, space: str, key: str) -> int:
    """Read, add one, commit guarded by the versionstamp read; retry on conflict."""
    conflicts = 0
    while True:
        entry = await store.get(space, key)
        current = 0 if entry is None else int(entry.value)
        check = Check(space, key, None if entry is None else entry.versionstamp)
        if (await store.commit([check], [Set(space, key, str(current + 1).encode())])).ok:
            return conflicts
        conflicts += 1


async def test_concurrent_cas_increments_lose_no_update(store: Store) -> None:
    conflicts = await asyncio.gather(*(cas_increment(store, SPACE, "counter") for _ in range(100)))
    entry = await store.get(SPACE, "counter")
    assert entry is not None and entry.value == b"100"
    # 100 racing read-modify-writes must have collided, or this tested nothing.
    assert sum(conflicts) > 0


async def test_concurrent_increments_are_exact(store: Store) -> None:
    results = await asyncio.gather(*(store.increment(SPACE, "hits", 1, ttl_ms=60_000) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))
    entry = await store.get(SPACE, "hits")
    assert entry is not None and entry.value == b"100"


async def test_a_cancelled_caller_is_told_so_even_if_its_write_went_through(store: Store) -> None:
    # A cancelled RPC (its client gone, its deadline passed) must stop, not carry on with the next step; on
    # Redis the cancellation used to be dropped when it arrived as the command was being written.
    mutations = [Set(SPACE, f"k{i}", b"x" * 1000) for i in range(3000)]
    for delay in (0, 0.001, 0.005, 0.02):
        task = asyncio.ensure_future(store.commit([], mutations))
        await asyncio.sleep(delay)
        if task.cancel():
            with pytest.raises(asyncio.CancelledError):
                await task
    assert await set_value(store, SPACE, "after", b"")

    async def clean_up_when_cancelled() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # Cleanup in the cancelled task itself (a `finally` that settles a budget) still runs.
            return await set_value(store, SPACE, "cleanup", b"")
        return ""

    cleaning = asyncio.ensure_future(clean_up_when_cancelled())
    await asyncio.sleep(0)
    cleaning.cancel()
    assert await cleaning


async def test_two_stores_on_the_same_data_see_each_other(store_factory: StoreFactory) -> None:
    one, two = store_factory(), store_factory()
    stamp = await set_value(one, SPACE, "shared", b"from one")
    entry = await two.get(SPACE, "shared")
    assert entry is not None and (entry.value, entry.versionstamp) == (b"from one", stamp)
    assert not (await two.commit([Check(SPACE, "shared", None)], [Set(SPACE, "shared", b"x")])).ok
    assert (await two.commit([Check(SPACE, "shared", stamp)], [Set(SPACE, "shared", b"from two")])).ok
    entry = await one.get(SPACE, "shared")
    assert entry is not None and entry.value == b"from two"

    results = await asyncio.gather(
        *(set_value(one if i % 2 else two, SPACE, f"k{i}", b"") for i in range(100)),
        *(cas_increment(one if i % 2 else two, SPACE, "counter") for i in range(40)),
        *(two.increment(SPACE, "hits", 1) for _ in range(20)),
        *(one.increment(SPACE, "hits", 1) for _ in range(20)),
    )
    stamps = results[:100]
    assert len(set(stamps)) == 100
    counter = await one.get(SPACE, "counter")
    hits = await two.get(SPACE, "hits")
    assert counter is not None and counter.value == b"40"
    assert hits is not None and hits.value == b"40"
    assert len(await list_all(two, SPACE)) == 100 + 3


# ---------------------------------------------------------------- arguments and lifecycle


async def test_bad_arguments_raise_value_error(store: Store) -> None:
    bad_constructions: list[Callable[[], object]] = [
        lambda: Set(SPACE, "k", b"v", ttl_ms=0),
        lambda: Set(SPACE, "k", b"v", ttl_ms=-5),
        lambda: Set(SPACE, "k", b"v", ttl_ms=True),
        lambda: Set(SPACE, "k", b"v", ttl_ms=1.5),  # type: ignore[arg-type]
        lambda: Set(SPACE, "k", b"v", ttl_ms=10**15),
        lambda: Set(SPACE, "k", "text"),  # type: ignore[arg-type]
        lambda: Set(SPACE, "k", bytearray(b"v")),  # type: ignore[arg-type]
        lambda: Set(SPACE, 1, b"v"),  # type: ignore[arg-type]
        lambda: Set(None, "k", b"v"),  # type: ignore[arg-type]
        lambda: Set(SPACE, "lone \ud800 surrogate", b"v"),
        lambda: Delete(SPACE, b"k"),  # type: ignore[arg-type]
        lambda: Check(SPACE, "k", "ABCDEF0123456789ABCD"),
        lambda: Check(SPACE, "k", "0" * 19),
        lambda: Check(SPACE, "k", "g" * 20),
        lambda: Check(SPACE, "k", 5),  # type: ignore[arg-type]
    ]
    for construct in bad_constructions:
        with pytest.raises(ValueError):
            construct()
    bad_calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get(SPACE, 1),  # type: ignore[arg-type]
        lambda: store.get("bad \udfff", "k"),
        lambda: store.get_many(SPACE, "abc"),
        lambda: store.get_many(SPACE, ["ok", None]),  # type: ignore[list-item]
        lambda: store.list(SPACE, prefix=None),  # type: ignore[arg-type]
        lambda: store.list(SPACE, start_after=3),  # type: ignore[arg-type]
        lambda: store.commit([Set(SPACE, "k", b"v")], []),  # type: ignore[list-item]
        lambda: store.commit([], [Check(SPACE, "k", None)]),  # type: ignore[list-item]
        lambda: store.increment(SPACE, "n", 1.0),  # type: ignore[arg-type]
        lambda: store.increment(SPACE, "n", True),
        lambda: store.increment(SPACE, "n", 2**63),
        lambda: store.increment(SPACE, "n", 1, ttl_ms=0),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            await call()
    # Nothing above may have written anything.
    assert await store.list(SPACE) == []
    assert await store.get(SPACE, "n") is None


async def test_ping_and_close(store_factory: StoreFactory) -> None:
    store = store_factory()
    await store.ping()
    await set_value(store, SPACE, "k", b"v")
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.get(SPACE, "k")
    with pytest.raises(StoreError):
        await set_value(store, SPACE, "k", b"v")
    reopened = store_factory()
    entry = await reopened.get(SPACE, "k")
    assert entry is not None and entry.value == b"v"


# ---------------------------------------------------------------- SQLite only

WRITER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from services.common.store import SqliteStore, Set

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    try:
        results = await asyncio.gather(
            *(store.commit([], [Set("kv", f"{sys.argv[2]}-{i}", b"x")]) for i in range(int(sys.argv[3])))
        )
        for _ in range(int(sys.argv[3])):
            await store.increment("kv", "shared-counter", 1)
    finally:
        await store.close()
    print("\\n".join(r.versionstamp for r in results))

asyncio.run(main())
"""


async def test_sqlite_shared_by_processes(tmp_path: Path) -> None:
    path = tmp_path / "spark.db"
    store = SqliteStore(path)
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER_SCRIPT,
                str(path),
                f"p{n}",
                "150",
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO_ROOT,
            )
            for n in range(2)
        ]
        local = await asyncio.gather(
            *(store.commit([], [Set("kv", f"local-{i}", b"x")]) for i in range(150)),
            *(store.increment("kv", "shared-counter", 1) for _ in range(150)),
        )
        outputs = [await proc.communicate() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0]
        stamps = [line for out, _ in outputs for line in out.decode().split()]
        stamps += [r.versionstamp for r in local[:150] if isinstance(r, CommitResult) and r.versionstamp]
        assert len(stamps) == 450
        assert len(set(stamps)) == 450
        assert len(await list_all(store, "kv")) == 451
        counter = await store.get("kv", "shared-counter")
        assert counter is not None and counter.value == b"450"
    finally:
        await store.close()


async def test_sqlite_locked_beyond_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "spark.db"
    store = SqliteStore(path, busy_timeout_ms=200)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await set_value(store, SPACE, "k", b"v")
        with pytest.raises(StoreUnavailable):
            await store.increment(SPACE, "n", 1)
        assert time.monotonic() - started < 2
        # WAL readers are not blocked by a writer.
        assert await store.get(SPACE, "k") is None
        blocker.execute("ROLLBACK")
        await set_value(store, SPACE, "k", b"v")
    finally:
        blocker.close()
        await store.close()


async def test_sqlite_durable_and_versionstamps_continue_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spark.db"
    store = SqliteStore(path)
    last = await set_value(store, SPACE, "k", b"v")
    await store.close()
    store = SqliteStore(path)
    try:
        entry = await store.get(SPACE, "k")
        assert entry is not None and entry.versionstamp == last
        assert await set_value(store, SPACE, "j", b"") > last
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
    finally:
        await store.close()


async def test_sqlite_sweeps_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "spark.db"
    store = SqliteStore(path, sweep_interval_s=0.2)
    conn = sqlite3.connect(path)
    try:
        await must_commit(store, [], [Set(SPACE, f"t{i}", b"", ttl_ms=300) for i in range(50)])
        await set_value(store, SPACE, "keep", b"")
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 51
        deadline = time.monotonic() + 5
        while conn.execute("SELECT count(*) FROM entries").fetchone()[0] > 1:
            assert time.monotonic() < deadline, "expired rows were never swept"
            await asyncio.sleep(0.05)
        assert await list_keys(store, SPACE) == ["keep"]
    finally:
        conn.close()
        await store.close()


async def test_sqlite_cancelled_caller_write_is_not_lost_or_stuck(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "spark.db")
    try:
        tasks = [asyncio.create_task(set_value(store, SPACE, f"k{i}", b"")) for i in range(50)]
        await asyncio.sleep(0)
        tasks[10].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(result, asyncio.CancelledError) for result in done) == 1
        # The store keeps working after a caller went away mid-flight.
        assert await set_value(store, SPACE, "after", b"")
    finally:
        await store.close()


# ---------------------------------------------------------------- Redis only


@pytest.mark.redis
async def test_redis_down_raises_unavailable_quickly_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = RedisStore(server.url)
    try:
        await set_value(store, SPACE, "k", b"before")
        await store.increment(SPACE, "n", 1)
        server.stop()
        for operation in (
            store.ping,
            lambda: store.get(SPACE, "k"),
            lambda: store.list(SPACE),
            lambda: set_value(store, SPACE, "k", b"during"),
            lambda: store.increment(SPACE, "n", 1),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await operation()
            assert time.monotonic() - started < 3
        # Same port and dir: the AOF brings the data back, and the client
        # reconnects and reloads its scripts by itself.
        server.start()
        entry = await store.get(SPACE, "k")
        assert entry is not None and entry.value == b"before"
        assert await store.increment(SPACE, "n", 1) == 2
        await set_value(store, SPACE, "k", b"after")
        assert await list_keys(store, SPACE) == ["k", "n"]
    finally:
        await store.close()
        server.stop()


@pytest.mark.redis
async def test_redis_killed_and_restarted_keeps_acknowledged_writes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = RedisStore(server.url)
    try:
        stamps = [await set_value(store, SPACE, f"k{i}", str(i).encode()) for i in range(20)]
        server.kill()
        server.start()
        # A write acknowledged before a SIGKILL is in the kernel's copy of the
        # AOF; only a machine crash could lose the last second.
        entries = await store.list(SPACE)
        assert [(e.key, e.versionstamp) for e in entries] == sorted((f"k{i}", stamps[i]) for i in range(20))
        assert await set_value(store, SPACE, "new", b"") > stamps[-1]
    finally:
        await store.close()
        server.stop()


@pytest.mark.redis
async def test_redis_hung_server_raises_unavailable_within_deadline(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = RedisStore(server.url, op_timeout_s=1.0, socket_timeout_s=0.5)
    assert server.pid is not None
    try:
        await set_value(store, SPACE, "k", b"v")
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.get(SPACE, "k")
            with pytest.raises(StoreUnavailable):
                await set_value(store, SPACE, "k", b"w")
            assert time.monotonic() - started < 3
        finally:
            os.kill(server.pid, signal.SIGCONT)
        entry = await store.get(SPACE, "k")
        assert entry is not None
    finally:
        await store.close()
        server.stop()


@pytest.mark.redis
async def test_redis_retried_write_applies_once(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, prefix="{retry-test}:")
    try:
        await set_value(store, SPACE, "k", b"v0")
        entry = await store.get(SPACE, "k")
        assert entry is not None
        # The same script call twice, as redis-py's retry would send it after
        # losing the first reply.
        keys, args = store._commit_arguments([Check(SPACE, "k", entry.versionstamp)], [Set(SPACE, "k", b"v1")])
        first = await store._commit_script(keys=keys, args=args)
        second = await store._commit_script(keys=keys, args=args)
        assert first == second is not None
        after = await store.get(SPACE, "k")
        assert after is not None and (after.value, after.versionstamp) == (b"v1", first.decode())
    finally:
        await store.close()


@pytest.mark.redis
async def test_redis_expired_members_are_pruned_from_indexes(redis_server: RedisServer) -> None:
    prefix = "{prune-test}:"
    store = RedisStore(redis_server.url, prefix=prefix)
    raw = Redis.from_url(redis_server.url)
    index = prefix.encode() + b"i:" + str(len(SPACE)).encode() + b":" + SPACE.encode()
    expiry = prefix.encode() + b"x:" + str(len(SPACE)).encode() + b":" + SPACE.encode()
    try:
        # Long enough that all 100 are still live when counted on a busy host (at 400 ms, 6 had gone).
        for i in range(100):
            await store.increment(SPACE, f"window-{i}", 1, ttl_ms=3000)
        assert await raw.zcard(index) == 100
        await asyncio.sleep(3.05)
        # Each write prunes a bounded batch, so steady traffic keeps the
        # index near the number of live entries.
        for i in range(10):
            await store.increment(SPACE, f"late-{i}", 1, ttl_ms=60_000)
        assert await raw.zcard(index) == 10
        assert await raw.zcard(expiry) == 10
        await store.commit([], [Set(SPACE, "gone", b"", ttl_ms=20)])
        await asyncio.sleep(0.05)
        assert [e.key for e in await store.list(SPACE, prefix="g")] == []
        assert await raw.zscore(index, b"gone") is None
    finally:
        await raw.aclose()
        await store.close()


def test_redis_prefix_must_carry_a_hash_tag() -> None:
    for bad in ("spark:", "{}:", "}{spark:", "{spark"):
        with pytest.raises(ValueError, match="hash tag"):
            RedisStore("redis://127.0.0.1:1/0", prefix=bad)
