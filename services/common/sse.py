"""Server-Sent Events framing for the streams the edge passes through as raw `HttpBody` messages."""

from __future__ import annotations

from typing import Any

import orjson

from services.common.errors import DomainError, contract_of

# A comment: clients and proxies see traffic, event parsers skip it.
KEEPALIVE = b": keepalive\n\n"
# The end of an OpenAI-style stream; a stream that fails ends without it.
DONE = b"data: [DONE]\n\n"


def event(payload: Any) -> bytes:
    """One `data:` event carrying `payload` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(error: DomainError) -> bytes:
    """A failure after a stream began (its HTTP status was already sent): the one error event of every
    stream of the suite, in OpenAI's shape (the official SDKs raise it as an APIError) with the error's
    reason, and no `[DONE]` after it."""
    contract = contract_of(error)
    return event(
        {
            "error": {
                "message": error.message,
                "type": contract.openai_type,
                "code": contract.code.name.lower(),
                "reason": error.reason,
            }
        }
    )
