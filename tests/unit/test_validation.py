"""What the kv service accepts as JSON values, keys and versionstamps."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.kv import validation


@pytest.mark.parametrize(
    "text",
    [
        b"0",
        b"-1.5e300",
        b'"x"',
        b"null",
        b"[]",
        b"{}",
        b' {"a" : [1, {"b": null}]} ',
        '"é😀"'.encode(),
        b"123456789012345678901234567890",
    ],
)
def test_valid_json_is_accepted(text: bytes) -> None:
    assert validation.json_error(text) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b"NaN", "NaN is not valid JSON"),
        (b"-Infinity", "Infinity is not valid JSON"),
        (b"[1,]", "Expecting value"),
        (b"'single'", "Expecting value"),
        (b'"\xff"', "not valid UTF-8 at byte 1"),
        (b"1 2", "Extra data"),
        (b"[" * 5000 + b"]" * 5000, "nests too deeply"),
    ],
)
def test_invalid_json_says_why(text: bytes, fragment: str) -> None:
    reason = validation.json_error(text)
    assert reason is not None
    assert fragment in reason


def test_check_json_names_the_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.check_json(b"{", "body")
    assert raised.value.reason == "INVALID_JSON"
    assert raised.value.violations[0].field == "body"


def test_value_size_limit_is_inclusive() -> None:
    validation.check_value_size(b"x" * 10, 10, "body")
    with pytest.raises(InvalidArgument) as raised:
        validation.check_value_size(b"x" * 11, 10, "body")
    assert raised.value.reason == "VALUE_TOO_LARGE"
    assert raised.value.metadata == {"limit_bytes": "10", "size_bytes": "11"}


def test_names_are_measured_in_utf8_bytes() -> None:
    validation.check_name("é" * 512, "key", 1024, allow_empty=False)
    with pytest.raises(InvalidArgument, match="1025 bytes"):
        validation.check_name("é" * 512 + "x", "key", 1024, allow_empty=False)
    with pytest.raises(InvalidArgument, match="must not be empty"):
        validation.check_name("", "key", 1024, allow_empty=False)
    validation.check_name("", "collection", 1024, allow_empty=True)


@pytest.mark.parametrize("stamp", ["", "0" * 19, "0" * 21, "G" * 20, "00000000000000000A01"])
def test_malformed_versionstamps_are_refused(stamp: str) -> None:
    with pytest.raises(InvalidArgument):
        validation.check_versionstamp(stamp, "expected_versionstamp")


def test_ttl_bounds() -> None:
    validation.check_ttl_ms(1, "ttl")
    for bad in (0, -5, validation.MAX_TTL_MS + 1):
        with pytest.raises(InvalidArgument):
            validation.check_ttl_ms(bad, "ttl")
