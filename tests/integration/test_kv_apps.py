"""Every app's KV and /_spark/db data apart, on SQLite and on Redis, and nothing stored before apps lost.

A store written by the suite before apps had names (the layout frozen below, written with raw SQL and raw Redis
commands, not through today's code) is read by today's kv service: its data is the default app's. Apps never
see each other's keys or collections, and on Redis each app's keys carry a Cluster hash tag of its own.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
import pytest
import pytest_asyncio
from google.api import httpbody_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis
from redis.crc import key_slot
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from services.common.store import RedisStore, SqliteStore, Store, StoreError
from services.kv.config import read_config
from services.kv.server import build_server
from tests.support.redis_server import RedisServer

# What the store held before apps had names: (collection, key, value, versionstamp), and the counter after them.
OLD_ENTRIES = [
    ("", "greeting", b'"hello"', 7),
    ("", "a/b c", b'{"n": 1}', 9),
    ("todos", "1", b'{"title": "write the test", "done": false}', 12),
    ("todos", "emoji \U0001f389", b"[1, 2, 3]", 30),
]
OLD_COUNTER = 41
# The SQLite schema as the suite before apps created it (PRAGMA user_version 1, WAL).
OLD_SQLITE_SCHEMA = (
    """CREATE TABLE entries (
        space BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, versionstamp INTEGER NOT NULL,
        expires_at INTEGER, PRIMARY KEY (space, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX entries_expires_at ON entries (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE TABLE versionstamp (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL)",
    "PRAGMA user_version=1",
)


@dataclass
class Backend:
    """A store on one backend, and what its data looks like underneath."""

    name: str
    # Opens the store at first call (after the old layout is written, as an upgraded suite would), then the same.
    open_store: Callable[[], Store]
    # Writes OLD_ENTRIES as the suite before apps did.
    write_old_layout: Callable[[], Awaitable[None]]
    # Whether the entry (space, key) is stored in the old layout, read without the Store code.
    stored_as_before: Callable[[str, str], Awaitable[bool]]
    # Redis: every key of this test's prefix; SQLite: none.
    raw_keys: Callable[[], Awaitable[list[bytes]]]
    # Redis: the hash tag this test's store uses.
    tag: str = ""


def _redis_space_part(space: str) -> bytes:
    encoded = space.encode()
    return str(len(encoded)).encode() + b":" + encoded


@pytest_asyncio.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "spark.db"

        async def write_sqlite() -> None:
            with sqlite3.connect(path, isolation_level=None) as db:
                db.execute("PRAGMA journal_mode=WAL")
                for statement in OLD_SQLITE_SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO versionstamp (id, value) VALUES (0, ?)", (OLD_COUNTER,))
                for collection, key, value, stamp in OLD_ENTRIES:
                    db.execute(
                        "INSERT INTO entries VALUES (?, ?, ?, ?, NULL)",
                        (f"kv:{collection}".encode(), key.encode(), value, stamp),
                    )
            db.close()

        async def in_sqlite(space: str, key: str) -> bool:
            db = sqlite3.connect(path)
            try:
                row = db.execute("SELECT 1 FROM entries WHERE space = ? AND key = ?", (space.encode(), key.encode()))
                return row.fetchone() is not None
            finally:
                db.close()

        async def no_keys() -> list[bytes]:
            return []

        opened: list[SqliteStore] = []

        def open_sqlite() -> Store:
            if not opened:
                opened.append(SqliteStore(path))
            return opened[0]

        yield Backend("sqlite", open_sqlite, write_sqlite, in_sqlite, no_keys)
        for sqlite_store in opened:
            await sqlite_store.close()
        return

    server: RedisServer = request.getfixturevalue("redis_server")
    tag = "test-" + uuid.uuid4().hex
    prefix = "{" + tag + "}:"
    raw = Redis.from_url(server.url)
    store = RedisStore(server.url, prefix=prefix)

    async def write_redis() -> None:
        for collection, key, value, stamp in OLD_ENTRIES:
            part = _redis_space_part(f"kv:{collection}")
            await raw.hset(
                prefix.encode() + b"e:" + part + b":" + key.encode(), mapping={"v": value, "s": f"{stamp:020x}"}
            )
            await raw.zadd(prefix.encode() + b"i:" + part, {key.encode(): 0})
        await raw.set(prefix + "vs", OLD_COUNTER)

    async def in_redis(space: str, key: str) -> bool:
        return bool(await raw.exists(prefix.encode() + b"e:" + _redis_space_part(space) + b":" + key.encode()))

    async def redis_keys() -> list[bytes]:
        return [key async for key in raw.scan_iter(match="{" + tag + "*")]

    try:
        yield Backend("redis", lambda: store, write_redis, in_redis, redis_keys, tag)
    finally:
        await store.close()
        await raw.aclose()


@dataclass
class Kv:
    stub: kv_pb2_grpc.KvServiceStub

    async def put(self, key: str, value: bytes, *, app: str = "", collection: str = "") -> None:
        body = httpbody_pb2.HttpBody(content_type="text/plain", data=value)
        await self.stub.SetSparkValue(kv_pb2.SetSparkValueRequest(app=app, collection=collection, key=key, body=body))

    async def get(self, key: str, *, app: str = "", collection: str = "") -> bytes | None:
        try:
            body = await self.stub.GetSparkValue(kv_pb2.GetSparkValueRequest(app=app, collection=collection, key=key))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return bytes(body.data)

    async def keys(self, *, app: str = "", collection: str = "") -> list[str]:
        body = await self.stub.ListSparkKeys(kv_pb2.ListSparkKeysRequest(app=app, collection=collection))
        return list(orjson.loads(body.data))

    async def collection(self, name: str, *, app: str = "") -> list[dict[str, str]]:
        body = await self.stub.ListSparkCollection(kv_pb2.ListSparkCollectionRequest(app=app, name=name))
        return list(orjson.loads(body.data))


@asynccontextmanager
async def kv_service(store: Store, hosted_app: str | None = None) -> AsyncIterator[Kv]:
    """The kv service on `store`, hosting `hosted_app` (SPARK_APP_NAME; unset: the default app)."""
    env = {"SPARK_KV_PORT": "0", "SPARK_KV_METRICS_PORT": "-1"}
    if hosted_app is not None:
        env["SPARK_APP_NAME"] = hosted_app
    running = await build_server(read_config(env), store)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Kv(kv_pb2_grpc.KvServiceStub(channel))
    finally:
        await channel.close()
        await running.stop()


def bad_request(error: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """The ErrorInfo reason and the BadRequest fields of an INVALID_ARGUMENT."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    reason, fields = "", []
    for detail in status.details:
        info, request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(request):
            fields = [violation.field for violation in request.field_violations]
    return reason, fields


async def test_an_upgraded_store_serves_its_data_as_the_default_apps(backend: Backend) -> None:
    await backend.write_old_layout()
    async with kv_service(backend.open_store()) as kv:
        assert sorted(await kv.keys()) == ["a/b c", "greeting"]
        assert await kv.get("greeting") == b'"hello"'
        assert await kv.get("a/b c") == b'{"n": 1}'
        assert await kv.collection("todos") == [
            {"key": "1", "value": '{"title": "write the test", "done": false}'},
            {"key": "emoji \U0001f389", "value": "[1, 2, 3]"},
        ]
        # `/runtime/default/...` is the same data.
        assert sorted(await kv.keys(app="default")) == ["a/b c", "greeting"]
        assert await kv.get("greeting", app="default") == b'"hello"'
        entry = (await kv.stub.GetEntry(kv_pb2.GetEntryRequest(collection="todos", key="1"))).entry
        assert entry.versionstamp == f"{12:020x}"
        # The versionstamps go on from where the old store left them.
        written = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(collection="todos", key="2", value="{}"))
        assert written.versionstamp > f"{OLD_COUNTER:020x}"
        # Another app sees none of it.
        assert await kv.keys(app="other") == []
        assert await kv.get("greeting", app="other") is None
        assert await kv.collection("todos", app="other") == []
        # What the default app writes now is stored as before, so a downgrade would still read it.
        await kv.put("new", b"1")
        assert await backend.stored_as_before("kv:", "new")
        assert await backend.stored_as_before("kv:todos", "2")
    # A suite that now hosts a named app serves that app at /_spark; the old data stays the default app's.
    async with kv_service(backend.open_store(), "my-app") as kv:
        assert await kv.keys() == []
        assert await kv.get("greeting") is None
        assert await kv.get("greeting", app="default") == b'"hello"'
        await kv.put("greeting", b'"mine"')
        assert await kv.get("greeting", app="my-app") == b'"mine"'
        assert await kv.get("greeting", app="default") == b'"hello"'


async def test_two_apps_never_see_each_others_keys_or_collections(backend: Backend) -> None:
    apps = ["", "alpha", "beta", "default"]  # "" is the hosted app, "alpha"
    async with kv_service(backend.open_store(), "alpha") as kv:
        for app in ("alpha", "beta", "default"):
            await kv.put("shared", orjson.dumps(app), app=app)
            await kv.put(f"only-{app}", b"true", app=app)
            await kv.put("k", orjson.dumps(app), app=app, collection="notes")
        # Default-app collections named like another app's spaces stay the default app's.
        await kv.put("k", b'"tricky"', app="default", collection="{alpha}:kv:notes")
        await kv.put("k", b'"trickier"', app="default", collection="app:{alpha}:kv:notes")

        assert sorted(await kv.keys()) == sorted(await kv.keys(app="alpha")) == ["only-alpha", "shared"]
        assert sorted(await kv.keys(app="beta")) == ["only-beta", "shared"]
        assert sorted(await kv.keys(app="default")) == ["only-default", "shared"]
        for app in apps:
            name = app or "alpha"
            assert await kv.get("shared", app=app) == orjson.dumps(name)
            assert await kv.collection("notes", app=app) == [{"key": "k", "value": orjson.dumps(name).decode()}]
            others = {"alpha", "beta", "default"} - {name}
            for other in others:
                assert await kv.get(f"only-{other}", app=app) is None, (app, other)
        assert await kv.collection("{alpha}:kv:notes", app="alpha") == []
        assert await kv.collection("app:{alpha}:kv:notes", app="alpha") == []
        assert await kv.collection("{alpha}:kv:notes", app="default") == [{"key": "k", "value": '"tricky"'}]

        # The typed API sees the same partitions.
        page = await kv.stub.ListEntries(kv_pb2.ListEntriesRequest(app="beta", collection="notes"))
        assert [(e.key, e.value) for e in page.entries] == [("k", '"beta"')]
        got = await kv.stub.GetEntry(kv_pb2.GetEntryRequest(app="beta", key="shared"))
        assert got.entry.value == '"beta"'

        # Deleting in one app leaves the others alone.
        await kv.stub.DeleteSparkValue(kv_pb2.DeleteSparkValueRequest(app="beta", key="shared"))
        assert await kv.get("shared", app="beta") is None
        assert await kv.get("shared") == b'"alpha"'
        assert await kv.get("shared", app="default") == b'"default"'
        deleted = await kv.stub.DeleteEntry(kv_pb2.DeleteEntryRequest(app="default", collection="notes", key="k"))
        assert deleted.deleted
        assert await kv.collection("notes", app="alpha") == [{"key": "k", "value": '"alpha"'}]

        # Each app's versionstamps grow with its own writes.
        first = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(app="beta", key="stamp", value="1"))
        second = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(app="beta", key="stamp", value="2"))
        assert second.versionstamp > first.versionstamp
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await kv.stub.SetEntry(
                kv_pb2.SetEntryRequest(app="beta", key="stamp", value="3", expected_versionstamp=first.versionstamp)
            )
        assert raised.value.code() == grpc.StatusCode.ABORTED


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_redis_keys_of_an_app_carry_its_own_hash_tag(backend: Backend) -> None:
    async with kv_service(backend.open_store(), "alpha") as kv:
        for app in ("", "beta", "default", "x" * 64):
            await kv.put("k", b"1", app=app)
            await kv.put("k", b"1", app=app, collection="c")
            await kv.stub.SetEntry(
                kv_pb2.SetEntryRequest(app=app, key="brief", value="1", ttl=duration_pb2.Duration(seconds=60))
            )
    by_tag: dict[str, list[bytes]] = {}
    for key in await backend.raw_keys():
        tag = key[1 : key.index(b"}")].decode()
        by_tag.setdefault(tag, []).append(key)
    base = backend.tag
    assert set(by_tag) == {base, f"{base}:alpha", f"{base}:beta", f"{base}:{'x' * 64}"}
    for tag, keys in by_tag.items():
        # Entries, indexes, expiry sets and the versionstamp counter: everything a commit touches.
        kinds = {key[len(tag) + 3 : len(tag) + 5] for key in keys}
        assert {b"e:", b"i:", b"x:", b"vs"} <= kinds, (tag, keys)
        assert {key_slot(key) for key in keys} == {key_slot(("{" + tag + "}").encode())}
    assert len({key_slot(("{" + tag + "}").encode()) for tag in by_tag}) == len(by_tag), "chosen to differ"
    # The default app's keys are where they always were.
    assert await backend.stored_as_before("kv:", "k")


async def test_the_path_names_the_app(backend: Backend) -> None:
    async with kv_service(backend.open_store(), "hosted") as kv:
        await kv.put("k", b'"hosted"')
        await kv.put("k", b'"other"', app="other")

        def through_edge(path: str) -> tuple[tuple[str, str]]:
            return (("x-envoy-original-path", path),)

        request = kv_pb2.GetSparkValueRequest(app="other", key="k")
        assert (await kv.stub.GetSparkValue(request, metadata=through_edge("/runtime/other/kv/k"))).data == b'"other"'
        plain = kv_pb2.GetSparkValueRequest(key="k")
        assert (await kv.stub.GetSparkValue(plain, metadata=through_edge("/_spark/kv/k"))).data == b'"hosted"'
        listing = kv_pb2.ListSparkCollectionRequest(app="other", name="c")
        listed = await kv.stub.ListSparkCollection(listing, metadata=through_edge("/runtime/other/db/collections/c"))
        assert listed.data == b"[]"
        # `/_spark/kv/k?app=other`: the hosted app's path cannot reach another app; `/runtime/hosted/kv/k?app=other`:
        # nor can a query override the path's app.
        for path in ("/_spark/kv/k?app=other", "/runtime/hosted/kv/k?app=other"):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await kv.stub.GetSparkValue(request, metadata=through_edge(path))
            assert bad_request(raised.value) == ("FIELD_IN_QUERY", ["app"])
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await kv.stub.ListSparkKeys(kv_pb2.ListSparkKeysRequest(app="other"), metadata=through_edge("/_spark/kv"))
        assert bad_request(raised.value) == ("FIELD_IN_QUERY", ["app"])
        # The key of a /runtime path is checked against the path as the /_spark one is.
        moved = kv_pb2.GetSparkValueRequest(app="other", key="b")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await kv.stub.GetSparkValue(moved, metadata=through_edge("/runtime/other/kv/a?key=b"))
        assert bad_request(raised.value) == ("FIELD_IN_QUERY", ["key"])
        moved_collection = kv_pb2.ListSparkCollectionRequest(app="other", name="b")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await kv.stub.ListSparkCollection(
                moved_collection, metadata=through_edge("/runtime/other/db/collections/a?name=b")
            )
        assert bad_request(raised.value) == ("FIELD_IN_QUERY", ["name"])


@pytest.mark.parametrize("app", [".hidden", "a b", "a/b", "x" * 65, "{tag}", "é"])
async def test_an_invalid_app_is_refused_naming_app(backend: Backend, app: str) -> None:
    async with kv_service(backend.open_store()) as kv:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: kv.stub.ListSparkKeys(kv_pb2.ListSparkKeysRequest(app=app)),
            lambda: kv.stub.GetSparkValue(kv_pb2.GetSparkValueRequest(app=app, key="k")),
            lambda: kv.put("k", b"1", app=app),
            lambda: kv.stub.ListSparkCollection(kv_pb2.ListSparkCollectionRequest(app=app, name="c")),
            lambda: kv.stub.SetEntry(kv_pb2.SetEntryRequest(app=app, key="k", value="1")),
            lambda: kv.stub.DeleteEntry(kv_pb2.DeleteEntryRequest(app=app, key="k")),
            lambda: kv.stub.ListEntries(kv_pb2.ListEntriesRequest(app=app)),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call()
            assert bad_request(raised.value) == ("INVALID_APP", ["app"])
            assert "app must be 1 to 64 of" in (raised.value.details() or "")
    # Nothing was stored for it (the service's own rate-limit counters are the default tag's).
    assert [key for key in await backend.raw_keys() if not key.startswith(b"{" + backend.tag.encode() + b"}")] == []


async def test_a_tagged_store_goes_with_the_store_it_came_from(backend: Backend) -> None:
    store = backend.open_store()
    for tag in ("", "a b", "{x}", "a:b", "x" * 65):
        with pytest.raises(ValueError, match="store tag"):
            store.tagged(tag)
    tagged = store.tagged("alpha")
    assert tagged.backend == store.backend
    await tagged.commit([], [])
    if backend.name == "redis":
        # Closing a tagged store leaves the one it came from (and its other tagged stores) working.
        again = store.tagged("alpha")
        await tagged.close()
        with pytest.raises(StoreError, match="closed"):
            await tagged.get("s", "k")
        assert await again.get("s", "k") is None
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await again.get("s", "k")
