"""Integration fixtures: a real redis-server and a store per backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from services.common.store import RedisStore, SqliteStore, Store
from tests.support.redis_server import RedisServer

StoreFactory = Callable[[], Store]


@pytest_asyncio.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A callable opening another store on the same data, as a second process would.

    SQLite stores share one file in tmp_path; Redis stores share the session
    server and a key prefix unique to this test. All are closed at teardown.
    """
    opened: list[Store] = []
    if request.param == "sqlite":
        path = tmp_path / "spark.db"

        def open_one() -> Store:
            store = SqliteStore(path)
            opened.append(store)
            return store

    else:
        # Requested lazily so that sqlite-only runs never start redis-server.
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = "{test-" + uuid.uuid4().hex + "}:"

        def open_one() -> Store:
            store = RedisStore(server.url, prefix=prefix)
            opened.append(store)
            return store

    try:
        yield open_one
    finally:
        for store in opened:
            await store.close()


@pytest_asyncio.fixture
async def store(store_factory: StoreFactory) -> Store:
    """A fresh, empty store: ids "sqlite" and "redis"."""
    return store_factory()
