"""The JSON error bodies the edge sends for refusals, in the services' error shape.

The transcoder turns a service's `google.rpc.Status` into
`{"code", "message", "details": [{"@type": ..., ...}]}`; refusals made at the
edge (ext_authz, rate limits) are written in the same shape, so a client has
one error format to parse.
"""

from __future__ import annotations

import math

import orjson

from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    status_code_of,
)

DOMAIN = "spark.access"
TYPE = "type.googleapis.com/google.rpc."

HTTP_STATUS: dict[type[DomainError], int] = {
    InvalidArgument: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    AlreadyExists: 409,
    # A nonce the route requires is missing: RFC 6585's "Precondition Required".
    FailedPrecondition: 428,
    ResourceExhausted: 429,
    Unavailable: 503,
}


def http_status_of(error: DomainError) -> int:
    return HTTP_STATUS.get(type(error), 403)


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up, at least 1: for Retry-After, X-RateLimit-Reset and the rate-limit API's reset."""
    return max(1, math.ceil(seconds))


def retry_after(seconds: float) -> str:
    """A Retry-After value."""
    return str(whole_seconds(seconds))


def error_body(error: DomainError) -> bytes:
    details: list[dict[str, object]] = [
        {"@type": TYPE + "ErrorInfo", "reason": error.reason, "domain": DOMAIN, "metadata": error.metadata}
    ]
    if error.retry_after_s is not None:
        details.append({"@type": TYPE + "RetryInfo", "retryDelay": f"{retry_after(error.retry_after_s)}s"})
    return orjson.dumps({"code": status_code_of(error).value[0], "message": error.message, "details": details})
