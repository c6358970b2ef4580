"""Redis store: every entry is a hash, every write a Lua script.

Layout, all under one prefix carrying a Cluster hash tag (default `{spark}:`)
so that every multi-key script touches a single slot:

* `<p>e:<len>:<space>:<key>` — hash {v: value, s: versionstamp}, PEXPIRE for TTL
* `<p>i:<len>:<space>` — sorted set, all scores 0, members = UTF-8 keys, for
  ordered prefix listing with ZRANGEBYLEX (byte order = code point order)
* `<p>x:<len>:<space>` — sorted set of keys that carry a TTL, scored by expiry
  time, so expired members can be pruned from the index without a scan
* `<p>vs` — the versionstamp counter (INCR)
* `<p>t:<token>` — short-lived record of a finished write, see below

`<len>` is the byte length of the UTF-8 space, which makes the encoding
unambiguous for any space and key.

A tagged store (`tagged(tag)`, one hosted app's data) has the same layout under
a prefix whose hash tag names the tag too: `{spark:<tag>}:` for `{spark}:`. Its
keys hash to a slot of their own, so the data of different tags spreads across
a cluster's shards, and it has a versionstamp counter of its own in that slot.

redis-py retries a command after a connection error or timeout, and by then
the script may already have run. Each write therefore carries a random token
and records its result under it for a short while; a retried script finds the
record and returns the original result instead of writing twice.

Durability is whatever the server's AOF policy gives. The server must not
evict keys (`maxmemory-policy noeviction` or a `volatile-*` policy): losing
the counter would let versionstamps go backwards. Requires Redis >= 7.0.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from opentelemetry.trace import TracerProvider
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.telemetry import trace_redis

from .base import (
    Check,
    CommitResult,
    Delete,
    Entry,
    Mutation,
    Set,
    StoreError,
    StoreUnavailable,
    encode_text,
    validate_delta,
    validate_list_args,
    validate_tag,
    validate_ttl,
)

__all__ = ["DEFAULT_PREFIX", "RedisStore", "userinfo_is_cut"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_PREFIX: Final = "{spark}:"
# Replies that mean "the server cannot take this right now" rather than
# "this request is wrong"; callers map StoreUnavailable to UNAVAILABLE.
_UNAVAILABLE_RE: Final = re.compile(
    r"\b(OOM|MISCONF|READONLY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|BUSY|NOREPLICAS)\b"
)
_COUNTER_ERROR_RE: Final = re.compile(r"not an integer|would overflow")
# Retries only need to outlive the operation deadline.
_WRITE_RECORD_TTL_MS: Final = 30_000
# Neither the URL nor the parser's complaint about it is repeated: either may hold the password.
_UNREADABLE_URL: Final = "the Redis URL is unreadable (not quoted: it may hold a password); percent-encode / ? # in it"
# How many expired index members one write removes; each write adds at most
# one, so indexes cannot grow without bound while a space is written to.
_PRUNE_BATCH: Final = 16

_PRUNE_LUA: Final = f"""
local function prune(index, expiry)
  local now = redis.call('TIME')
  local cutoff = '(' .. (now[1] * 1000 + math.floor(now[2] / 1000))
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', cutoff, 'LIMIT', 0, {_PRUNE_BATCH})
  if #gone > 0 then
    redis.call('ZREM', index, unpack(gone))
    redis.call('ZREM', expiry, unpack(gone))
  end
end
"""

# KEYS: counter, write record, then one entry key per check, then
# (entry, index, expiry) per mutation.
# ARGV: #checks, #mutations, record ttl, one expected versionstamp per check
# ('' = absent), then (op, key, value, ttl or '') per mutation.
_COMMIT_LUA: Final = (
    _PRUNE_LUA
    + """
local done = redis.call('GET', KEYS[2])
if done then return done end
local nchecks = tonumber(ARGV[1])
local nmutations = tonumber(ARGV[2])
for i = 1, nchecks do
  local current = redis.call('HGET', KEYS[2 + i], 's')
  local expected = ARGV[3 + i]
  if expected == '' then
    if current then return false end
  elseif current ~= expected then
    return false
  end
end
local vs = string.format('%020x', redis.call('INCR', KEYS[1]))
local k = 2 + nchecks
local a = 3 + nchecks
for j = 0, nmutations - 1 do
  local entry, index, expiry = KEYS[k + 3 * j + 1], KEYS[k + 3 * j + 2], KEYS[k + 3 * j + 3]
  local op, member, value, ttl = ARGV[a + 4 * j + 1], ARGV[a + 4 * j + 2], ARGV[a + 4 * j + 3], ARGV[a + 4 * j + 4]
  if op == 's' then
    redis.call('HSET', entry, 'v', value, 's', vs)
    if ttl == '' then
      redis.call('PERSIST', entry)
      redis.call('ZREM', expiry, member)
    else
      redis.call('PEXPIRE', entry, ttl)
      redis.call('ZADD', expiry, redis.call('PEXPIRETIME', entry), member)
    end
    redis.call('ZADD', index, 0, member)
  else
    redis.call('DEL', entry)
    redis.call('ZREM', index, member)
    redis.call('ZREM', expiry, member)
  end
  prune(index, expiry)
end
redis.call('SET', KEYS[2], vs, 'PX', ARGV[3])
return vs
"""
)

# KEYS: counter, write record, entry, index, expiry.
# ARGV: delta, ttl or '', key, record ttl.
_INCREMENT_LUA: Final = (
    _PRUNE_LUA
    + """
local done = redis.call('GET', KEYS[2])
if done then return done end
local existed = redis.call('EXISTS', KEYS[3]) == 1
-- HINCRBY is the only call that can fail (not an integer, overflow), so it
-- runs first: a failed increment leaves nothing behind.
redis.call('HINCRBY', KEYS[3], 'v', ARGV[1])
local vs = string.format('%020x', redis.call('INCR', KEYS[1]))
redis.call('HSET', KEYS[3], 's', vs)
if not existed then
  if ARGV[2] == '' then
    redis.call('ZREM', KEYS[5], ARGV[3])
  else
    redis.call('PEXPIRE', KEYS[3], ARGV[2])
    redis.call('ZADD', KEYS[5], redis.call('PEXPIRETIME', KEYS[3]), ARGV[3])
  end
  redis.call('ZADD', KEYS[4], 0, ARGV[3])
end
prune(KEYS[4], KEYS[5])
local value = redis.call('HGET', KEYS[3], 'v')
redis.call('SET', KEYS[2], value, 'PX', ARGV[4])
return value
"""
)

# KEYS: entry keys. Returns {value, versionstamp, pexpiretime} or nil each.
_READ_LUA: Final = """#!lua flags=no-writes
local out = {}
for i = 1, #KEYS do
  local fields = redis.call('HMGET', KEYS[i], 'v', 's')
  if fields[1] then
    out[i] = {fields[1], fields[2], redis.call('PEXPIRETIME', KEYS[i])}
  else
    out[i] = false
  end
end
return out
"""

# KEYS: index, expiry, then entry keys; ARGV: the matching index members.
# Like _READ_LUA, but drops index members whose entry has expired. Doing the
# existence check and the ZREM in one script is what makes this safe: a
# member whose entry is re-created later is re-added by that write.
_READ_AND_PRUNE_LUA: Final = """
local out = {}
for i = 3, #KEYS do
  local fields = redis.call('HMGET', KEYS[i], 'v', 's')
  if fields[1] then
    out[i - 2] = {fields[1], fields[2], redis.call('PEXPIRETIME', KEYS[i])}
  else
    out[i - 2] = false
    redis.call('ZREM', KEYS[1], ARGV[i - 2])
    redis.call('ZREM', KEYS[2], ARGV[i - 2])
  end
end
return out
"""


def _check_prefix(prefix: str) -> None:
    # Redis Cluster hashes only what lies between the first "{" and the next
    # "}", if that is non-empty; the prefix must pin that down by itself.
    start = prefix.find("{") if isinstance(prefix, str) else -1
    if start < 0 or prefix.find("}", start + 1) <= start + 1:
        raise ValueError(f"prefix must contain a Redis Cluster hash tag, like {DEFAULT_PREFIX!r}")


def _tagged_prefix(prefix: bytes, tag: str) -> bytes:
    """`prefix` with `:<tag>` added inside its hash tag: another slot, and no key of `prefix`'s own."""
    end = prefix.index(b"}", prefix.index(b"{") + 2)
    return prefix[:end] + b":" + tag.encode("ascii") + prefix[end:]


def userinfo_is_cut(url: str) -> bool:
    """Whether a `/`, `?` or `#` in the URL's user or password ends its authority early: the rest of the
    password would then be read as a port, a database or a query, echoed in an error or connected to."""
    parts = urlsplit(url)
    return "@" in parts.path + parts.query + parts.fragment


def _space_part(space_b: bytes) -> bytes:
    return str(len(space_b)).encode("ascii") + b":" + space_b


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise StoreError(f"unexpected reply from redis: {type(value).__name__}")
    return value


def _map_error(exc: RedisError) -> StoreError | ValueError:
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return StoreUnavailable(f"redis unavailable: {exc}")
    message = str(exc)
    if isinstance(exc, ResponseError):
        if _COUNTER_ERROR_RE.search(message):
            return ValueError("stored value is not a 64-bit integer counter or the increment would overflow")
        if _UNAVAILABLE_RE.search(message):
            return StoreUnavailable(f"redis unavailable: {message}")
    return StoreError(f"redis error: {message}")


class RedisStore:
    """A `Store` on one Redis server (or a Redis Cluster slot, via the hash tag)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        op_timeout_s: float = 3.0,
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        max_connections: int = 64,
        health_check_interval_s: int = 10,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """`tracer_provider`, when given, traces each Redis command as a span (see `trace_redis`)."""
        _check_prefix(prefix)
        if op_timeout_s <= 0 or socket_timeout_s <= 0 or connect_timeout_s <= 0 or max_connections < 1:
            raise ValueError("timeouts must be positive and max_connections at least 1")
        if userinfo_is_cut(url):
            raise ValueError(_UNREADABLE_URL)
        self._prefix = prefix.encode("utf-8")
        self._op_timeout_s = op_timeout_s
        # A few quick retries ride out a restart or a dropped connection; the
        # operation deadline bounds the total so callers never hang.
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=op_timeout_s,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=connect_timeout_s,
                socket_keepalive=True,
                retry=retry,
                health_check_interval=health_check_interval_s,
            )
        except ValueError:
            raise ValueError(_UNREADABLE_URL) from None
        self._client: Redis = Redis.from_pool(pool)
        if tracer_provider is not None:
            trace_redis(self._client, tracer_provider)
        self._commit_script = self._client.register_script(_COMMIT_LUA)
        self._increment_script = self._client.register_script(_INCREMENT_LUA)
        self._read_script = self._client.register_script(_READ_LUA)
        self._read_prune_script = self._client.register_script(_READ_AND_PRUNE_LUA)
        self._counter_key = self._prefix + b"vs"
        self._closed = False
        # The store that owns the connections: this one, or the one a tagged store was made from.
        self._root = self

    async def get(self, space: str, key: str) -> Entry | None:
        return (await self.get_many(space, (key,)))[0]

    async def get_many(self, space: str, keys: Sequence[str]) -> builtins.list[Entry | None]:
        space_b = encode_text(space, "space")
        if isinstance(keys, str):
            raise ValueError("keys must be a sequence of str, not a str")
        encoded = [encode_text(key, "key") for key in keys]
        if not encoded:
            self._ensure_open()
            return []
        rows = await self._call(lambda: self._read_script(keys=[self._entry_key(space_b, k) for k in encoded]))
        return [self._decode_row(space, key, row) for key, row in zip(keys, rows, strict=True)]

    async def list(
        self,
        space: str,
        *,
        prefix: str = "",
        start_after: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Entry]:
        space_b, prefix_b, after_b = validate_list_args(space, prefix, start_after, limit)
        if after_b is not None and after_b >= prefix_b:
            low = b"(" + after_b
        elif prefix_b:
            low = b"[" + prefix_b
        else:
            low = b"-"
        # 0xff never occurs in UTF-8, so every key with the prefix sorts below
        # this bound and every other key above the prefix sorts above it.
        high = b"(" + prefix_b + b"\xff" if prefix_b else b"+"
        return await self._call(lambda: self._list(space, space_b, low, high, limit))

    async def commit(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> CommitResult:
        keys, args = self._commit_arguments(checks, mutations)
        reply = await self._call(lambda: self._commit_script(keys=keys, args=args))
        if reply is None:
            return CommitResult(ok=False, versionstamp=None)
        return CommitResult(ok=True, versionstamp=_as_bytes(reply).decode("ascii"))

    def _commit_arguments(
        self, checks: Sequence[Check], mutations: Sequence[Mutation]
    ) -> tuple[builtins.list[bytes], builtins.list[bytes | str | int]]:
        keys: list[bytes] = [self._counter_key, self._new_write_record_key()]
        check_args: list[bytes | str | int] = []
        for check in checks:
            if not isinstance(check, Check):
                raise ValueError(f"checks must be Check, not {type(check).__name__}")
            keys.append(self._entry_key(encode_text(check.space, "space"), encode_text(check.key, "key")))
            check_args.append("" if check.versionstamp is None else check.versionstamp)
        mutation_args: list[bytes | str | int] = []
        for mutation in mutations:
            if not isinstance(mutation, (Set, Delete)):
                raise ValueError(f"mutations must be Set or Delete, not {type(mutation).__name__}")
            space_b = encode_text(mutation.space, "space")
            key_b = encode_text(mutation.key, "key")
            keys += [self._entry_key(space_b, key_b), self._index_key(space_b), self._expiry_key(space_b)]
            if isinstance(mutation, Set):
                ttl: str | int = "" if mutation.ttl_ms is None else mutation.ttl_ms
                mutation_args += ["s", key_b, mutation.value, ttl]
            else:
                mutation_args += ["d", key_b, "", ""]
        return keys, [len(check_args), len(mutations), _WRITE_RECORD_TTL_MS, *check_args, *mutation_args]

    async def increment(self, space: str, key: str, delta: int, ttl_ms: int | None = None) -> int:
        validate_delta(delta)
        validate_ttl(ttl_ms)
        space_b = encode_text(space, "space")
        key_b = encode_text(key, "key")
        keys = [
            self._counter_key,
            self._new_write_record_key(),
            self._entry_key(space_b, key_b),
            self._index_key(space_b),
            self._expiry_key(space_b),
        ]
        args: list[bytes | str | int] = [delta, "" if ttl_ms is None else ttl_ms, key_b, _WRITE_RECORD_TTL_MS]
        reply = await self._call(lambda: self._increment_script(keys=keys, args=args))
        return int(_as_bytes(reply))

    def tagged(self, tag: str) -> RedisStore:
        """This store's connections and scripts under a prefix whose hash tag names `tag` too."""
        validate_tag(tag)
        view = copy.copy(self)
        view._prefix = _tagged_prefix(self._prefix, tag)
        view._counter_key = view._prefix + b"vs"
        view._closed = False
        return view

    async def ping(self) -> None:
        await self._call(self._client.ping)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._root is self:
            await self._client.aclose()

    def _ensure_open(self) -> None:
        if self._closed or self._root._closed:
            raise StoreError("store is closed")

    async def _call(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        self._ensure_open()
        task = asyncio.current_task()
        cancels = 0 if task is None else task.cancelling()
        try:
            async with asyncio.timeout(self._op_timeout_s):
                result = await operation()
        except RedisError as exc:
            raise _map_error(exc) from exc
        except TimeoutError as exc:
            raise StoreUnavailable(f"redis did not answer within {self._op_timeout_s} s") from exc
        if task is not None and task.cancelling() > cancels:
            # redis-py writes each command through `asyncio.wait_for`, which on Python 3.11 returns the write's
            # result when a cancellation arrives just as the write completes, and drops the cancellation: the
            # caller (an RPC whose client went away) carried on as if never cancelled. The command has run;
            # the caller still hears that it was cancelled. (Cleanup after an earlier cancellation, counted
            # before the call, goes on.)
            raise asyncio.CancelledError
        return result

    async def _list(self, space: str, space_b: bytes, low: bytes, high: bytes, limit: int) -> builtins.list[Entry]:
        index = self._index_key(space_b)
        expiry = self._expiry_key(space_b)
        entries: list[Entry] = []
        # Members whose entry expired are pruned as they are met, so a page
        # may take several rounds; each round makes progress.
        while len(entries) < limit:
            wanted = limit - len(entries)
            members = [_as_bytes(m) for m in await self._client.zrangebylex(index, low, high, start=0, num=wanted)]
            if not members:
                break
            keys = [index, expiry, *(self._entry_key(space_b, member) for member in members)]
            rows = await self._read_prune_script(keys=keys, args=members)
            for member, row in zip(members, rows, strict=True):
                entry = self._decode_row(space, member.decode("utf-8"), row)
                if entry is not None:
                    entries.append(entry)
            if len(members) < wanted:
                break
            low = b"(" + members[-1]
        return entries

    @staticmethod
    def _decode_row(space: str, key: str, row: Any) -> Entry | None:
        if row is None:
            return None
        value, versionstamp, expires_at = row
        return Entry(
            space=space,
            key=key,
            value=_as_bytes(value),
            versionstamp=_as_bytes(versionstamp).decode("ascii"),
            expires_at_ms=int(expires_at) if int(expires_at) >= 0 else None,
        )

    def _entry_key(self, space_b: bytes, key_b: bytes) -> bytes:
        return self._prefix + b"e:" + _space_part(space_b) + b":" + key_b

    def _index_key(self, space_b: bytes) -> bytes:
        return self._prefix + b"i:" + _space_part(space_b)

    def _expiry_key(self, space_b: bytes) -> bytes:
        return self._prefix + b"x:" + _space_part(space_b)

    def _new_write_record_key(self) -> bytes:
        return self._prefix + b"t:" + secrets.token_hex(12).encode("ascii")
