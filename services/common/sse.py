"""Server-Sent Events framing for the streams the edge passes through as raw `HttpBody` messages."""

from __future__ import annotations

from typing import Any

import orjson

# A comment: clients and proxies see traffic, event parsers skip it.
KEEPALIVE = b": keepalive\n\n"
# The end of an OpenAI-style stream; a stream that fails ends without it.
DONE = b"data: [DONE]\n\n"


def event(payload: Any) -> bytes:
    """One `data:` event carrying `payload` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
