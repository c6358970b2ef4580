"""Embedded SQLite store: one database file, safe to share between processes.

Writes go to one writer thread per store that group-commits: it drains up to
`max_batch` queued requests, runs each in its own SAVEPOINT inside a single
`BEGIN IMMEDIATE` transaction, and COMMITs once, so concurrent writers share
one fsync. `BEGIN IMMEDIATE` takes SQLite's write lock up front, which is
what makes the versionstamp counter safe across processes. Point reads run
inline on the event loop thread through a separate connection: in WAL mode
readers never wait for the writer.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from .base import (
    INT64_MAX,
    INT64_MIN,
    Check,
    CommitResult,
    Delete,
    Entry,
    Mutation,
    Set,
    StoreError,
    StoreUnavailable,
    decode_counter,
    encode_text,
    format_versionstamp,
    parse_versionstamp,
    validate_delta,
    validate_list_args,
    validate_tag,
    validate_ttl,
)

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA_VERSION: Final = 1
# Space and key are stored as UTF-8 BLOBs: memcmp order is code point order,
# NUL is allowed, and prefix bounds can use the byte 0xff, which never occurs
# in UTF-8.
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS entries (
        space BLOB NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        versionstamp INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (space, key)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS entries_expires_at
        ON entries (expires_at) WHERE expires_at IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS versionstamp (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        value INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO versionstamp (id, value) VALUES (0, 0)",
)
# Every read filters on expiry itself: a row past expires_at is invisible
# even before the sweeper deletes it.
_GET_SQL: Final = (
    "SELECT value, versionstamp, expires_at FROM entries "
    "WHERE space = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_LIST_SQL_HEAD: Final = (
    "SELECT key, value, versionstamp, expires_at FROM entries "
    "WHERE space = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_LIST_AFTER: Final = " AND key > ?"
_LIST_FROM: Final = " AND key >= ?"
_LIST_BELOW: Final = " AND key < ?"
_LIST_TAIL: Final = " ORDER BY key LIMIT ?"
_SWEEP_BATCH: Final = 500
# Beyond this many rows a list is copied out on a worker thread rather than
# on the event loop.
_INLINE_LIST_LIMIT: Final = 256
_BUSY_CODES: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _map_error(exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended codes (e.g. SQLITE_BUSY_SNAPSHOT) carry the primary code in the low byte.
    if code is not None and (code & 0xFF) in _BUSY_CODES:
        return StoreUnavailable(f"sqlite database is busy: {exc}")
    return StoreError(f"sqlite error: {exc}")


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/SAVEPOINT ourselves; the module's
    # implicit transactions would otherwise wrap reads and hold snapshots.
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA journal_size_limit=67108864")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> str:
    """Switches the file to WAL (persistent, so only the first opener of a fresh file changes anything).

    The switch needs an exclusive lock. When two processes open a fresh file at once, each holds a shared lock
    and wants the exclusive one; SQLite then answers "database is locked" at once instead of waiting (its busy
    handler would deadlock), so the switch is retried until the busy timeout, by which time the other has
    switched the file and the pragma merely reads the mode.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay_s = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def _init_schema(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    mode = _enable_wal(conn, busy_timeout_ms)
    if mode.lower() != "wal":
        raise StoreError(f"sqlite refused WAL mode (got {mode!r})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise StoreError(f"database schema version {version} is newer than {_SCHEMA_VERSION}")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _row_to_entry(space: str, key: str, row: tuple[bytes, int, int | None]) -> Entry:
    value, versionstamp, expires_at = row
    return Entry(space, key, value, format_versionstamp(versionstamp), expires_at)


@dataclass(frozen=True, slots=True)
class _ListQuery:
    space: str
    space_b: bytes
    prefix_b: bytes
    after_b: bytes | None
    limit: int


def _select_list(conn: sqlite3.Connection, query: _ListQuery) -> list[Entry]:
    sql = _LIST_SQL_HEAD
    params: list[object] = [query.space_b, _now_ms()]
    if query.after_b is not None and query.after_b >= query.prefix_b:
        sql += _LIST_AFTER
        params.append(query.after_b)
    elif query.prefix_b:
        sql += _LIST_FROM
        params.append(query.prefix_b)
    if query.prefix_b:
        # Every key with this prefix sorts below prefix + 0xff (a byte that
        # never occurs in UTF-8), and every other key above the prefix sorts
        # above the bound too.
        sql += _LIST_BELOW
        params.append(query.prefix_b + b"\xff")
    sql += _LIST_TAIL
    params.append(query.limit)
    space = query.space
    return [
        _row_to_entry(space, key.decode("utf-8"), (value, vs, exp)) for key, value, vs, exp in conn.execute(sql, params)
    ]


def _list_on_fresh_connection(path: Path, busy_timeout_ms: int, query: _ListQuery) -> list[Entry]:
    # A connection per call keeps worker threads from sharing the event
    # loop's reader; opening one is cheap next to copying thousands of rows.
    conn = _connect(path, busy_timeout_ms)
    try:
        conn.execute("PRAGMA query_only=ON")
        return _select_list(conn, query)
    finally:
        conn.close()


def _current_versionstamp(conn: sqlite3.Connection, space_b: bytes, key_b: bytes, now_ms: int) -> int | None:
    row = conn.execute(_GET_SQL, (space_b, key_b, now_ms)).fetchone()
    return None if row is None else int(row[1])


def _next_versionstamp(conn: sqlite3.Connection) -> int:
    row = conn.execute("UPDATE versionstamp SET value = value + 1 WHERE id = 0 RETURNING value").fetchone()
    return int(row[0])


def _upsert(conn: sqlite3.Connection, row: tuple[bytes, bytes, bytes, int, int | None]) -> None:
    conn.execute(
        "INSERT INTO entries (space, key, value, versionstamp, expires_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, "
        "versionstamp = excluded.versionstamp, expires_at = excluded.expires_at",
        row,
    )


@dataclass(frozen=True, slots=True)
class _PreparedCommit:
    checks: tuple[tuple[bytes, bytes, int | None], ...]
    mutations: tuple[tuple[bytes, bytes, bytes | None, int | None], ...]

    def apply(self, conn: sqlite3.Connection, now_ms: int) -> CommitResult:
        for space_b, key_b, expected in self.checks:
            if _current_versionstamp(conn, space_b, key_b, now_ms) != expected:
                return CommitResult(ok=False, versionstamp=None)
        versionstamp = _next_versionstamp(conn)
        for space_b, key_b, value, ttl_ms in self.mutations:
            if value is None:
                conn.execute("DELETE FROM entries WHERE space = ? AND key = ?", (space_b, key_b))
            else:
                expires_at = None if ttl_ms is None else now_ms + ttl_ms
                _upsert(conn, (space_b, key_b, value, versionstamp, expires_at))
        return CommitResult(ok=True, versionstamp=format_versionstamp(versionstamp))


@dataclass(frozen=True, slots=True)
class _PreparedIncrement:
    space_b: bytes
    key_b: bytes
    delta: int
    ttl_ms: int | None

    def apply(self, conn: sqlite3.Connection, now_ms: int) -> int:
        row = conn.execute(_GET_SQL, (self.space_b, self.key_b, now_ms)).fetchone()
        if row is None:
            number = self.delta
            expires_at = None if self.ttl_ms is None else now_ms + self.ttl_ms
        else:
            number = decode_counter(row[0]) + self.delta
            if not INT64_MIN <= number <= INT64_MAX:
                raise ValueError("increment would overflow a signed 64-bit integer")
            expires_at = row[2]
        versionstamp = _next_versionstamp(conn)
        _upsert(conn, (self.space_b, self.key_b, str(number).encode("ascii"), versionstamp, expires_at))
        return number


@dataclass(slots=True)
class _Request:
    apply: Callable[[sqlite3.Connection, int], object]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Stop:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _resolve(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], outcome: object) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, outcome)
    except RuntimeError:
        # The caller's loop is gone; nobody is left to tell.
        logger.debug("dropping store result for a closed event loop")


class SqliteStore:
    """A `Store` on one SQLite file; several stores or processes may share the file."""

    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        max_batch: int = 128,
        sweep_interval_s: float = 30.0,
    ) -> None:
        if busy_timeout_ms < 0 or max_batch < 1 or sweep_interval_s <= 0:
            raise ValueError("busy_timeout_ms >= 0, max_batch >= 1 and sweep_interval_s > 0 are required")
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._sweep_interval_s = sweep_interval_s
        self._queue: queue.SimpleQueue[_Request | _Stop] = queue.SimpleQueue()
        self._closed = False
        try:
            writer = _connect(self._path, busy_timeout_ms)
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc
        try:
            _init_schema(writer, busy_timeout_ms)
            reader = _connect(self._path, busy_timeout_ms)
        except BaseException as exc:
            writer.close()
            if isinstance(exc, sqlite3.Error):
                raise _map_error(exc) from exc
            raise
        reader.execute("PRAGMA query_only=ON")
        self._reader = reader
        self._writer = writer
        self._thread = threading.Thread(
            target=self._run_writer, name=f"sqlite-store-writer:{self._path.name}", daemon=True
        )
        self._thread.start()
        logger.info("sqlite store opened at %s", self._path)

    @property
    def path(self) -> Path:
        return self._path

    async def get(self, space: str, key: str) -> Entry | None:
        space_b = encode_text(space, "space")
        key_b = encode_text(key, "key")
        self._ensure_open()
        try:
            row = self._reader.execute(_GET_SQL, (space_b, key_b, _now_ms())).fetchone()
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc
        return None if row is None else _row_to_entry(space, key, row)

    async def get_many(self, space: str, keys: Sequence[str]) -> builtins.list[Entry | None]:
        space_b = encode_text(space, "space")
        if isinstance(keys, str):
            raise ValueError("keys must be a sequence of str, not a str")
        encoded = [encode_text(key, "key") for key in keys]
        self._ensure_open()
        now_ms = _now_ms()
        result: list[Entry | None] = []
        try:
            # One read transaction, so all keys come from the same snapshot;
            # cached point lookups cost microseconds each.
            self._reader.execute("BEGIN")
            try:
                for key, key_b in zip(keys, encoded, strict=True):
                    row = self._reader.execute(_GET_SQL, (space_b, key_b, now_ms)).fetchone()
                    result.append(None if row is None else _row_to_entry(space, key, row))
            finally:
                self._reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc
        return result

    async def list(
        self,
        space: str,
        *,
        prefix: str = "",
        start_after: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Entry]:
        space_b, prefix_b, after_b = validate_list_args(space, prefix, start_after, limit)
        self._ensure_open()
        query = _ListQuery(space, space_b, prefix_b, after_b, limit)
        try:
            if limit <= _INLINE_LIST_LIMIT:
                return _select_list(self._reader, query)
            return await asyncio.to_thread(_list_on_fresh_connection, self._path, self._busy_timeout_ms, query)
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc

    async def commit(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> CommitResult:
        prepared = _PreparedCommit(
            checks=tuple(_prepare_check(check) for check in checks),
            mutations=tuple(_prepare_mutation(mutation) for mutation in mutations),
        )
        return await self._submit(prepared.apply)

    async def increment(self, space: str, key: str, delta: int, ttl_ms: int | None = None) -> int:
        validate_delta(delta)
        validate_ttl(ttl_ms)
        prepared = _PreparedIncrement(encode_text(space, "space"), encode_text(key, "key"), delta, ttl_ms)
        return await self._submit(prepared.apply)

    async def ping(self) -> None:
        self._ensure_open()
        if not self._thread.is_alive():
            raise StoreUnavailable("sqlite writer thread is not running")
        try:
            self._reader.execute("SELECT value FROM versionstamp WHERE id = 0").fetchone()
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc

    def tagged(self, tag: str) -> SqliteStore:
        """This store: one file has no shards to spread over, and one counter serves every space."""
        validate_tag(tag)
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        try:
            # A writer that died on a bug can no longer answer the stop request.
            if self._thread.is_alive():
                self._queue.put(_Stop(loop, stopped))
                await stopped
        finally:
            # The writer has closed its connection and is returning, so this
            # join does not block the loop in practice.
            self._thread.join()
            self._reader.close()
            logger.info("sqlite store at %s closed", self._path)

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    async def _submit(self, apply: Callable[[sqlite3.Connection, int], _T]) -> _T:
        self._ensure_open()
        if not self._thread.is_alive():
            raise StoreUnavailable("sqlite writer thread is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put(_Request(apply, loop, future))
        return await future

    def _run_writer(self) -> None:
        conn = self._writer
        next_sweep = time.monotonic() + self._sweep_interval_s
        stop: _Stop | None = None
        try:
            while stop is None:
                try:
                    first = self._queue.get(timeout=max(0.0, next_sweep - time.monotonic()))
                except queue.Empty:
                    self._sweep_alone(conn)
                    next_sweep = time.monotonic() + self._sweep_interval_s
                    continue
                batch: list[_Request] = []
                item: _Request | _Stop = first
                while True:
                    if isinstance(item, _Stop):
                        stop = item
                        break
                    batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                sweep = time.monotonic() >= next_sweep
                if sweep:
                    next_sweep = time.monotonic() + self._sweep_interval_s
                self._run_batch(conn, batch, sweep=sweep)
        except BaseException:
            logger.exception("sqlite writer thread crashed")
            raise
        finally:
            self._drain_after_stop()
            conn.close()
            if stop is not None:
                _resolve(stop.loop, stop.future, None)

    def _drain_after_stop(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Request):
                _resolve(item.loop, item.future, StoreError("store is closed"))
            else:
                _resolve(item.loop, item.future, None)

    def _run_batch(self, conn: sqlite3.Connection, batch: builtins.list[_Request], *, sweep: bool) -> None:
        # A caller that was cancelled before its turn must not have its write
        # applied behind its back; reading the flag across threads is benign.
        live = [request for request in batch if not request.future.cancelled()]
        if not live and not sweep:
            return
        now_ms = _now_ms()
        outcomes: list[object] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail_all(live, _map_error(exc))
            return
        try:
            for request in live:
                conn.execute("SAVEPOINT request")
                try:
                    outcomes.append(request.apply(conn, now_ms))
                except ValueError as exc:
                    # Only this caller's savepoint is undone; the rest of the
                    # batch still commits.
                    conn.execute("ROLLBACK TO request")
                    outcomes.append(exc)
                conn.execute("RELEASE request")
            if sweep:
                self._sweep(conn, now_ms)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.warning("sqlite group commit of %d requests failed: %s", len(live), exc)
            self._rollback(conn)
            self._fail_all(live, _map_error(exc))
            return
        except Exception:
            # A bug in one request must not take the writer thread down with
            # every later caller waiting on it.
            logger.exception("sqlite group commit failed unexpectedly")
            self._rollback(conn)
            self._fail_all(live, StoreError("sqlite writer failed"))
            return
        for request, outcome in zip(live, outcomes, strict=True):
            _resolve(request.loop, request.future, outcome)

    @staticmethod
    def _fail_all(requests: builtins.list[_Request], error: StoreError) -> None:
        for request in requests:
            _resolve(request.loop, request.future, error)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("sqlite rollback failed")

    @staticmethod
    def _sweep(conn: sqlite3.Connection, now_ms: int) -> int:
        # Expired rows are already invisible; deleting them in bounded
        # batches keeps the table and the expiry index from growing forever.
        cursor = conn.execute(
            "DELETE FROM entries WHERE (space, key) IN ("
            "SELECT space, key FROM entries WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
            (now_ms, _SWEEP_BATCH),
        )
        return cursor.rowcount

    def _sweep_alone(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = self._sweep(conn, _now_ms())
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
        except sqlite3.Error as exc:
            logger.warning("sqlite expiry sweep failed: %s", exc)
            return
        if removed:
            logger.debug("sqlite expiry sweep removed %d entries", removed)


def _prepare_check(check: Check) -> tuple[bytes, bytes, int | None]:
    if not isinstance(check, Check):
        raise ValueError(f"checks must be Check, not {type(check).__name__}")
    expected = None if check.versionstamp is None else parse_versionstamp(check.versionstamp)
    return encode_text(check.space, "space"), encode_text(check.key, "key"), expected


def _prepare_mutation(mutation: Mutation) -> tuple[bytes, bytes, bytes | None, int | None]:
    if isinstance(mutation, Set):
        return encode_text(mutation.space, "space"), encode_text(mutation.key, "key"), mutation.value, mutation.ttl_ms
    if isinstance(mutation, Delete):
        return encode_text(mutation.space, "space"), encode_text(mutation.key, "key"), None, None
    raise ValueError(f"mutations must be Set or Delete, not {type(mutation).__name__}")
