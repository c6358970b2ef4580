"""Who is calling: the identity the edge passes to services as trusted metadata."""

from __future__ import annotations

from typing import Any

import grpc

from services.common.transcoding import metadata_value

# Set by the edge from the caller's verified identity (a client-sent value is stripped there).
USER_METADATA = "x-spark-user"
ANONYMOUS = "anonymous"
MAX_CALLER_CHARS = 128


def caller_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The calling user's id, or "anonymous" when the request carries none."""
    value = (metadata_value(context, USER_METADATA) or "").strip()
    return value[:MAX_CALLER_CHARS] or ANONYMOUS
