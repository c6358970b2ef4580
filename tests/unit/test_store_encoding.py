"""Pure helpers of the store layer: validation and encodings both backends rely on."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

from services.common.store import MAX_TTL_MS, Check, Delete, RedisStore, Set, SqliteStore, open_store
from services.common.store.base import (
    decode_counter,
    encode_text,
    format_versionstamp,
    parse_versionstamp,
    validate_delta,
    validate_list_args,
)
from services.common.store.redis import _space_part


@pytest.mark.parametrize(
    ("raw", "number"),
    [(b"0", 0), (b"7", 7), (b"-7", -7), (b"9223372036854775807", 2**63 - 1), (b"-9223372036854775808", -(2**63))],
)
def test_decode_counter_accepts_redis_integers(raw: bytes, number: int) -> None:
    assert decode_counter(raw) == number


@pytest.mark.parametrize(
    "raw",
    [b"", b"-", b"-0", b"01", b"+1", b" 1", b"1 ", b"1.0", b"1e3", b"0x1", b"\xd9\xa1", b"9223372036854775808"],
)
def test_decode_counter_rejects_what_redis_rejects(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_counter(raw)


def test_versionstamp_round_trip_and_order() -> None:
    stamps = [format_versionstamp(n) for n in (1, 9, 10, 255, 2**64, 2**79)]
    assert all(len(stamp) == 20 for stamp in stamps)
    assert stamps == sorted(stamps)
    assert [parse_versionstamp(stamp) for stamp in stamps] == [1, 9, 10, 255, 2**64, 2**79]
    for bad in ("", "0" * 21, "A" * 20, " " + "0" * 19, "\uff10" * 20):
        with pytest.raises(ValueError):
            parse_versionstamp(bad)


def test_encode_text_is_utf8_and_rejects_surrogates() -> None:
    assert encode_text("a/é 中🎉\x00", "key") == "a/é 中🎉\x00".encode()
    with pytest.raises(ValueError, match="key"):
        encode_text("\udc80", "key")
    with pytest.raises(ValueError, match="space"):
        encode_text(b"bytes", "space")  # type: ignore[arg-type]


def test_utf8_byte_order_is_code_point_order() -> None:
    # The property both backends' ordering rests on, including across the
    # surrogate range where UTF-16 order differs.
    chars = ["\x00", "\x7f", "\x80", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff"]
    assert sorted(chars, key=lambda c: c.encode()) == sorted(chars)
    assert sorted(chars, key=lambda c: c.encode("utf-16-be")) != sorted(chars)


def test_validate_list_args() -> None:
    assert validate_list_args("s", "p", None, 1) == (b"s", b"p", None)
    assert validate_list_args("s", "", "", 10_000) == (b"s", b"", b"")
    for limit in (0, 10_001, True):
        with pytest.raises(ValueError):
            validate_list_args("s", "", None, limit)


def test_validate_delta_bounds() -> None:
    validate_delta(2**63 - 1)
    validate_delta(-(2**63))
    for bad in (2**63, -(2**63) - 1, False, 1.0):
        with pytest.raises(ValueError):
            validate_delta(bad)  # type: ignore[arg-type]


def test_mutations_validate_on_construction() -> None:
    assert Set("s", "k", b"v", ttl_ms=MAX_TTL_MS).ttl_ms == MAX_TTL_MS
    with pytest.raises(ValueError):
        Set("s", "k", b"v", ttl_ms=MAX_TTL_MS + 1)
    assert Check("s", "k", None).versionstamp is None
    assert Delete("s", "").key == ""


def test_redis_space_encoding_is_unambiguous() -> None:
    # (space, key) pairs that collide under a plain "space:key" join.
    pairs = [(b"a", b"b:c"), (b"a:b", b"c"), (b"a:", b"b:c"), (b"", b"a:b:c"), (b"1:a", b"")]
    names = {_space_part(space) + b":" + key for space, key in pairs}
    assert len(names) == len(pairs)


async def test_open_store_picks_backend(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "var"
    sqlite_store = open_store(None, data_dir)
    try:
        assert isinstance(sqlite_store, SqliteStore)
        assert sqlite_store.path == data_dir / "spark.db"
        assert sqlite_store.path.exists()
    finally:
        await sqlite_store.close()
    empty_url = open_store("", data_dir)
    await empty_url.close()
    for url in ("redis://127.0.0.1:1/0", "rediss://example.invalid:6380", "unix:///tmp/redis.sock"):
        redis_store = open_store(url, data_dir)
        assert isinstance(redis_store, RedisStore)
        assert redis_store.backend == "redis"
        await redis_store.close()
    with pytest.raises(ValueError, match="scheme"):
        open_store("postgres://user:secret@host/db", data_dir)


@pytest.mark.parametrize(
    "password",
    # An unencoded / ? or # ends the URL's authority early: what follows reads as a port or a database.
    ["Zq9kd/Wx7mn", "63801/Wx7mn", "/Wx7mn", "63801?Wx7mn", "Zq9kd#Wx7mn", "Zq9kd@Pv3rt/Wx7mn"],
)
def test_a_redis_url_that_cannot_be_read_is_refused_without_quoting_its_password(tmp_path: Path, password: str) -> None:
    """The service dies with this error's traceback in its log: nothing of the password may be in it."""
    with pytest.raises(ValueError, match="the Redis URL is unreadable") as caught:
        open_store(f"redis://:{password}@redis:6379/0", tmp_path)
    logged = "".join(traceback.format_exception(caught.value))
    for piece in filter(None, re.split(r"[/?#@]", password)):
        assert piece not in logged
