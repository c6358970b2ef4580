"""What a service can learn about the HTTP request the edge transcoded into its RPC."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import grpc

from services.common.errors import FieldViolation, InvalidArgument

# The transcoder keeps the HTTP path here when it rewrites `:path` to the gRPC method.
ORIGINAL_PATH_HEADER = "x-envoy-original-path"


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str | None:
    """One header of the call (gRPC metadata), or None."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def check_path_field(context: grpc.aio.ServicerContext[Any, Any], prefix: str, field: str, value: str) -> None:
    """Refuses a request whose `field` was bound from the query instead of the path it came in on.

    Envoy's transcoder lets `?key=b` (or `?k%65y=b`) override `{key}` in `/_spark/kv/a`, so a request
    for one key would act on another; no transcoder option forbids it, but the original path tells.
    """
    original = metadata_value(context, ORIGINAL_PATH_HEADER)
    if original is None or not original.startswith(prefix):
        return
    segment = original[len(prefix) :].split("?", 1)[0]
    if unquote_to_bytes(segment).decode("utf-8", "surrogateescape") != value:
        message = f"{field} is part of the path and may not also be given as a query parameter"
        raise InvalidArgument(message, reason="FIELD_IN_QUERY", violations=(FieldViolation(field, message),))
