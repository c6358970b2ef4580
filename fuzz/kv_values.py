"""KV values, keys and page tokens (`services.kv`), and the store's encodings (`services.common.store`).

The input is a value body as `PUT /_spark/kv/{key}` sends it. The same bytes, as text, are also a key, a
collection name and a page token, and, split at NULs, two (space, key) addresses.

- `check_json` accepts exactly the JSON texts the standard library accepts with NaN and Infinity refused,
  and anything it accepts is UTF-8 (GetEntry decodes stored values into a proto string); otherwise it
  raises InvalidArgument INVALID_JSON.
- `check_value_size` and `check_name` raise InvalidArgument exactly when over their limits, and a name
  they accept encodes for the store (a store ValueError would be an INTERNAL).
- A page token decodes to a key or raises InvalidArgument INVALID_PAGE_TOKEN; an issued one decodes to
  the key it was issued for.
- Counters and versionstamps: parse to an int or raise ValueError; what parses is in canonical form, and
  formatting then parsing gives the number back.
- Redis entry keys of different (space, key) pairs differ.
"""

from __future__ import annotations

import json

from services.common.errors import InvalidArgument
from services.common.store import RedisStore
from services.common.store.base import decode_counter, encode_text, format_versionstamp, parse_versionstamp
from services.kv import validation
from services.kv.service import _decode_page_token, _encode_page_token

MAX_VALUE_BYTES = 4096
MAX_KEY_BYTES = 64
# Never connects: only its key layout is used.
_REDIS = RedisStore("redis://127.0.0.1:1/0")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _reference_is_json(data: bytes) -> bool | None:
    """The standard library's verdict, or None when it cannot tell (nesting beyond its recursion limit)."""
    try:
        json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        return None
    except ValueError:
        return False
    return True


def _check_value(data: bytes) -> None:
    try:
        validation.check_value_size(data, MAX_VALUE_BYTES, "body")
        assert len(data) <= MAX_VALUE_BYTES
    except InvalidArgument as error:
        assert error.reason == "VALUE_TOO_LARGE" and len(data) > MAX_VALUE_BYTES
    try:
        validation.check_json(data, "body")
        accepted = True
    except InvalidArgument as error:
        assert error.reason == "INVALID_JSON" and error.violations[0].field == "body"
        accepted = False
    if accepted:
        data.decode("utf-8")
    reference = _reference_is_json(data)
    assert reference is None or reference == accepted, (accepted, reference)


def _check_name(text: str) -> None:
    try:
        validation.check_name(text, "key", MAX_KEY_BYTES, allow_empty=False)
    except InvalidArgument as error:
        assert error.reason == "INVALID_KEY"
        assert not text or len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES
        return
    encoded = encode_text(text, "key")
    assert 0 < len(encoded) <= MAX_KEY_BYTES
    assert encoded.decode("utf-8") == text


def _check_page_token(collection: str, prefix: str, key: str, token: str) -> None:
    assert _decode_page_token(_encode_page_token(collection, prefix, key), collection, prefix) == key
    try:
        decoded = _decode_page_token(token, collection, prefix)
    except InvalidArgument as error:
        assert error.reason == "INVALID_PAGE_TOKEN"
        return
    assert isinstance(decoded, str)


def _check_counter_and_versionstamp(data: bytes, text: str) -> None:
    try:
        number = decode_counter(data)
    except ValueError:
        pass
    else:
        assert str(number).encode("ascii") == data
    try:
        sequence = parse_versionstamp(text)
    except ValueError:
        pass
    else:
        assert format_versionstamp(sequence) == text
    sequence = int.from_bytes(data[:10], "big")
    assert parse_versionstamp(format_versionstamp(sequence)) == sequence


def _check_entry_keys(text: str) -> None:
    parts = text.split("\x00")
    if len(parts) < 4:
        return
    first, second = (parts[0], parts[1]), (parts[2], parts[3])
    keys = [_REDIS._entry_key(encode_text(space, "space"), encode_text(key, "key")) for space, key in (first, second)]
    assert (keys[0] == keys[1]) == (first == second)


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    _check_value(data)
    _check_name(text)
    collection, _, rest = text.partition("\x00")
    _check_page_token(collection, rest[:8], rest, text)
    _check_counter_and_versionstamp(data, text)
    _check_entry_keys(text)
