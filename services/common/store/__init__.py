"""The shared store layer: one async `Store` interface, SQLite and Redis backends.

`open_store` picks the backend from a URL so that services only carry one
setting: empty for the embedded SQLite file, a Redis URL otherwise.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.trace import TracerProvider

from .base import (
    MAX_LIST_LIMIT,
    MAX_TTL_MS,
    Check,
    CommitResult,
    Delete,
    Entry,
    Mutation,
    Set,
    Store,
    StoreError,
    StoreUnavailable,
    delete_value,
    set_if_absent,
    set_value,
)
from .redis import DEFAULT_PREFIX, RedisStore, userinfo_is_cut
from .sqlite import SqliteStore

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_LIST_LIMIT",
    "MAX_TTL_MS",
    "SQLITE_FILENAME",
    "Check",
    "CommitResult",
    "Delete",
    "Entry",
    "Mutation",
    "RedisStore",
    "Set",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "delete_value",
    "open_store",
    "set_if_absent",
    "set_value",
    "userinfo_is_cut",
]

SQLITE_FILENAME = "spark.db"
_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def open_store(
    url: str | None,
    data_dir: Path,
    *,
    redis_prefix: str = DEFAULT_PREFIX,
    tracer_provider: TracerProvider | None = None,
) -> Store:
    """Open the store a service is configured with.

    None or "" opens (creating if needed) the SQLite file `data_dir/spark.db`;
    a `redis://`, `rediss://` or `unix://` URL opens a Redis store. Redis
    connects lazily: call `await store.ping()` to fail fast at startup.
    Raises ValueError for any other URL.

    With `tracer_provider`, each Redis command becomes a span under the
    current one. Pass it only when traces are exported, as the gRPC server
    span is only started then: a span per command costs CPU for nothing
    otherwise. SQLite calls are not traced.
    """
    if not url:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteStore(data_dir / SQLITE_FILENAME)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _REDIS_SCHEMES:
        # Only the scheme is echoed: the URL may carry a password.
        raise ValueError(f"unsupported store URL scheme {scheme!r}; use redis://, rediss:// or unix://")
    return RedisStore(url, prefix=redis_prefix, tracer_provider=tracer_provider)
