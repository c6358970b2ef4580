"""Checks on what callers send: keys, collection names, JSON values, versionstamps, TTLs."""

from __future__ import annotations

import json
import re

import orjson

from services.common.errors import FieldViolation, InvalidArgument

_VERSIONSTAMP = re.compile(r"[0-9a-f]{20}")
MAX_TTL_MS = 10 * 365 * 24 * 3600 * 1000


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def json_error(data: bytes) -> str | None:
    """Returns why `data` is not a JSON text, or None if it is one.

    orjson decides the common case fast; it also rejects some valid JSON
    (arrays or objects nested deeper than 1,024 levels), so its "no" is
    confirmed by the standard library, which is exact about the grammar once
    NaN and Infinity are refused.
    """
    try:
        orjson.loads(data)
        return None
    except orjson.JSONDecodeError as fast_error:
        fast_reason = str(fast_error)
    try:
        json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        return None
    except UnicodeDecodeError as error:
        return f"body is not valid UTF-8 at byte {error.start}"
    except RecursionError:
        return "body nests too deeply"
    except ValueError as error:
        return f"body is not valid JSON: {error}" if str(error) else f"body is not valid JSON: {fast_reason}"


def check_json(data: bytes, field: str) -> None:
    reason = json_error(data)
    if reason is not None:
        raise InvalidArgument(reason, reason="INVALID_JSON", violations=(FieldViolation(field, reason),))


def check_value_size(data: bytes, limit: int, field: str) -> None:
    if len(data) > limit:
        message = f"value is {len(data)} bytes, over the limit of {limit} bytes"
        raise InvalidArgument(
            message,
            reason="VALUE_TOO_LARGE",
            metadata={"limit_bytes": str(limit), "size_bytes": str(len(data))},
            violations=(FieldViolation(field, message),),
        )


def check_name(value: str, field: str, limit: int, *, allow_empty: bool) -> None:
    """Keys and collection names: any Unicode text up to `limit` UTF-8 bytes."""
    if not value and not allow_empty:
        raise InvalidArgument(
            f"{field} must not be empty", reason="INVALID_KEY", violations=(FieldViolation(field, "must not be empty"),)
        )
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        description = f"is {size} bytes in UTF-8, over the limit of {limit} bytes"
        raise InvalidArgument(
            f"{field} {description}", reason="INVALID_KEY", violations=(FieldViolation(field, description),)
        )


def check_versionstamp(value: str, field: str) -> None:
    if not _VERSIONSTAMP.fullmatch(value):
        raise InvalidArgument(
            f"{field} must be 20 lowercase hex digits",
            reason="INVALID_VERSIONSTAMP",
            violations=(FieldViolation(field, "must be 20 lowercase hex digits"),),
        )


def check_ttl_ms(ttl_ms: int, field: str) -> None:
    if not 0 < ttl_ms <= MAX_TTL_MS:
        raise InvalidArgument(
            f"{field} must be between 1 ms and 10 years",
            reason="INVALID_TTL",
            violations=(FieldViolation(field, "must be between 1 ms and 10 years"),),
        )
