"""Types, errors and the `Store` protocol shared by every store backend.

The model follows Deno KV: entries live in caller-chosen *spaces*, every
committed write gets one new versionstamp that is strictly greater than all
earlier ones, and a commit applies its mutations only if all of its checks
(expected versionstamps, or "absent") hold.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

__all__ = [
    "MAX_LIST_LIMIT",
    "MAX_TTL_MS",
    "Check",
    "CommitResult",
    "Delete",
    "Entry",
    "Mutation",
    "Set",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "decode_counter",
    "delete_value",
    "encode_text",
    "format_versionstamp",
    "parse_versionstamp",
    "set_if_absent",
    "set_value",
    "validate_delta",
    "validate_list_args",
    "validate_tag",
]

MAX_LIST_LIMIT: Final = 10_000
# A century is far beyond any cache or nonce lifetime, and it keeps
# now + ttl exactly representable as a double inside Redis's Lua.
MAX_TTL_MS: Final = 100 * 365 * 24 * 3600 * 1000
VERSIONSTAMP_HEX_LEN: Final = 20
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_VERSIONSTAMP_RE: Final = re.compile(r"[0-9a-f]{20}")
# What a `Store.tagged` tag may hold: no braces (it goes inside a Redis Cluster hash tag) and no ':' (the
# separator when a tagged store is tagged again).
_TAG_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The exact integer syntax Redis's HINCRBY accepts, so both backends agree on
# which stored values count as counters.
_COUNTER_RE: Final = re.compile(rb"0|-?[1-9][0-9]{0,18}")


class StoreError(Exception):
    """A storage operation failed for a reason other than bad arguments."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or is locked; the caller may retry later."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored value and the versionstamp of the commit that wrote it."""

    space: str
    key: str
    value: bytes
    versionstamp: str
    expires_at_ms: int | None


@dataclass(frozen=True, slots=True)
class Check:
    """A commit precondition: the entry's current versionstamp, or None for absent."""

    space: str
    key: str
    versionstamp: str | None

    def __post_init__(self) -> None:
        encode_text(self.space, "space")
        encode_text(self.key, "key")
        if self.versionstamp is not None:
            parse_versionstamp(self.versionstamp)


@dataclass(frozen=True, slots=True)
class Set:
    """Write `value` under (space, key), expiring after `ttl_ms` if given."""

    space: str
    key: str
    value: bytes
    ttl_ms: int | None = None

    def __post_init__(self) -> None:
        encode_text(self.space, "space")
        encode_text(self.key, "key")
        if not isinstance(self.value, bytes):
            raise ValueError(f"value must be bytes, not {type(self.value).__name__}")
        validate_ttl(self.ttl_ms)


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove (space, key); deleting an absent entry is not an error."""

    space: str
    key: str

    def __post_init__(self) -> None:
        encode_text(self.space, "space")
        encode_text(self.key, "key")


Mutation: TypeAlias = Set | Delete


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Outcome of `Store.commit`: ok is False when a check failed and nothing was written."""

    ok: bool
    versionstamp: str | None


class Store(Protocol):
    """An async, atomic key-value store; see the backends for durability details."""

    backend: str

    async def get(self, space: str, key: str) -> Entry | None:
        """Return the live entry, or None if it is absent or expired."""
        ...

    async def get_many(self, space: str, keys: Sequence[str]) -> builtins.list[Entry | None]:
        """Return one result per key, in the order of `keys`, from one snapshot."""
        ...

    async def list(
        self,
        space: str,
        *,
        prefix: str = "",
        start_after: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Entry]:
        """Return live entries whose key starts with prefix, ascending by code point.

        Only keys strictly after `start_after` are returned, at most `limit`
        (1..MAX_LIST_LIMIT). Pass the last key of a page as the next
        `start_after` to paginate.
        """
        ...

    async def commit(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> CommitResult:
        """Apply all mutations under one new versionstamp if every check holds."""
        ...

    async def increment(self, space: str, key: str, delta: int, ttl_ms: int | None = None) -> int:
        """Add delta to a decimal counter, creating it (with ttl_ms) if absent or expired.

        An existing counter keeps its expiry. Raises ValueError if the stored
        value is not a 64-bit decimal integer or the result would overflow.
        """
        ...

    def tagged(self, tag: str) -> Store:
        """The store for data that belongs together apart from the rest (one hosted app's, say).

        On Redis its keys carry a Cluster hash tag of their own (so that data of different tags spreads
        across a cluster's shards) and its versionstamps come from a counter of their own: they grow with
        every commit through stores of the same tag. A commit may only touch one tag's data. Elsewhere
        (SQLite) it is this store itself. Data is still told apart by space: a space read through another
        tag than it was written with is undefined, so give each tag's data spaces of its own. Close only
        the store `tagged` was called on; tagged stores go with it. `tag` is 1 to 64 of `A-Za-z0-9._-`
        (ValueError otherwise).
        """
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...


def encode_text(text: str, what: str) -> bytes:
    """UTF-8 encode a space or key, rejecting non-strings and lone surrogates."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be str, not {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (lone surrogate)") from None


def validate_tag(tag: str) -> None:
    """Raise ValueError unless tag is a `Store.tagged` tag: 1 to 64 of `A-Za-z0-9._-`."""
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise ValueError("a store tag must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'")


def format_versionstamp(number: int) -> str:
    """Render a commit sequence number as the public 20-hex-digit versionstamp."""
    return f"{number:020x}"


def parse_versionstamp(versionstamp: str) -> int:
    """Return the sequence number of a versionstamp, or raise ValueError."""
    if not isinstance(versionstamp, str) or not _VERSIONSTAMP_RE.fullmatch(versionstamp):
        raise ValueError(f"versionstamp must be {VERSIONSTAMP_HEX_LEN} lowercase hex digits")
    return int(versionstamp, 16)


def validate_ttl(ttl_ms: int | None) -> None:
    """Raise ValueError unless ttl_ms is None or a positive int up to MAX_TTL_MS."""
    if ttl_ms is None:
        return
    # bool is an int subclass; True as a TTL is a caller bug, not 1 ms.
    if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool):
        raise ValueError(f"ttl_ms must be int or None, not {type(ttl_ms).__name__}")
    if not 0 < ttl_ms <= MAX_TTL_MS:
        raise ValueError(f"ttl_ms must be in 1..{MAX_TTL_MS}, got {ttl_ms}")


def validate_delta(delta: int) -> None:
    """Raise ValueError unless delta is a 64-bit signed int."""
    if not isinstance(delta, int) or isinstance(delta, bool):
        raise ValueError(f"delta must be int, not {type(delta).__name__}")
    if not INT64_MIN <= delta <= INT64_MAX:
        raise ValueError("delta must fit in a signed 64-bit integer")


def validate_list_args(
    space: str, prefix: str, start_after: str | None, limit: int
) -> tuple[bytes, bytes, bytes | None]:
    """Check list() arguments and return (space, prefix, start_after) as UTF-8."""
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ValueError(f"limit must be int, not {type(limit).__name__}")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be in 1..{MAX_LIST_LIMIT}, got {limit}")
    space_b = encode_text(space, "space")
    prefix_b = encode_text(prefix, "prefix")
    after_b = None if start_after is None else encode_text(start_after, "start_after")
    return space_b, prefix_b, after_b


def decode_counter(value: bytes) -> int:
    """Parse a stored counter, raising ValueError if it is not a 64-bit decimal."""
    if not _COUNTER_RE.fullmatch(value):
        raise ValueError("stored value is not a decimal integer counter")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError("stored counter does not fit in a signed 64-bit integer")
    return number


async def set_value(store: Store, space: str, key: str, value: bytes, *, ttl_ms: int | None = None) -> str:
    """Unconditionally write one entry and return its versionstamp."""
    result = await store.commit((), (Set(space, key, value, ttl_ms),))
    return _committed_versionstamp(result)


async def delete_value(store: Store, space: str, key: str) -> str:
    """Unconditionally delete one entry and return the commit's versionstamp."""
    result = await store.commit((), (Delete(space, key),))
    return _committed_versionstamp(result)


async def set_if_absent(store: Store, space: str, key: str, value: bytes, *, ttl_ms: int | None = None) -> str | None:
    """Write one entry only if no live entry exists; None means it already existed.

    With a TTL this is the nonce / lock primitive: the first writer wins until
    the entry expires.
    """
    result = await store.commit((Check(space, key, None),), (Set(space, key, value, ttl_ms),))
    return result.versionstamp if result.ok else None


def _committed_versionstamp(result: CommitResult) -> str:
    # A commit without checks cannot fail a check, so a missing versionstamp
    # means a backend broke its contract.
    if not result.ok or result.versionstamp is None:
        raise StoreError("unconditional commit was not applied")
    return result.versionstamp
