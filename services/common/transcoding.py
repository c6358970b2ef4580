"""What a service can learn about the HTTP request the edge transcoded into its RPC."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from services.common.errors import FieldViolation, InvalidArgument

# The transcoder keeps the HTTP path here when it rewrites `:path` to the gRPC method.
ORIGINAL_PATH_HEADER = "x-envoy-original-path"
# The edge turns this initial-metadata header into the HTTP status: the transcoder answers 200 for every OK.
HTTP_STATUS_HEADER = "x-http-status"


async def set_http_status(context: grpc.aio.ServicerContext[Any, Any], status: int) -> None:
    """Sets the HTTP status the edge answers with (e.g. 201, or 503 for an unhealthy /healthz)."""
    await context.send_initial_metadata(((HTTP_STATUS_HEADER, str(status)),))


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


MessageT = TypeVar("MessageT", bound=Message)


def strict_body(request: MessageT, field: str = "json") -> MessageT:
    """The request with its HTTP body (a Struct in `field`) parsed into its typed fields, unknown fields refused.

    Envoy's transcoder drops JSON fields a message does not define without a word; routes that must refuse
    them bind the whole body to a Struct and call this. A request without the body is returned as it is.
    """
    if not request.HasField(field):
        return request
    body = json_format.MessageToDict(getattr(request, field))
    parsed = type(request)()
    try:
        json_format.ParseDict(body, parsed, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        raise InvalidArgument(
            f"the request body is invalid: {error}",
            reason="INVALID_BODY",
            violations=(FieldViolation("body", str(error)),),
        ) from error
    for descriptor, value in request.ListFields():
        # Fields bound from the path or query win; a body that names them differently is refused.
        if descriptor.name == field:
            continue
        given_in_body = (
            parsed.HasField(descriptor.name) if descriptor.has_presence else getattr(parsed, descriptor.name)
        )
        if given_in_body and getattr(parsed, descriptor.name) != value:
            message = f"{descriptor.name} is given in the path and, differently, in the body"
            raise InvalidArgument(
                message, reason="FIELD_CONFLICT", violations=(FieldViolation(descriptor.name, message),)
            )
        _copy_field(parsed, descriptor.name, value)
    return parsed


def _copy_field(message: Message, name: str, value: Any) -> None:
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        container = getattr(message, name)
        del container[:]
        container.extend(value)
    elif field.message_type is not None:
        getattr(message, name).CopyFrom(value)
    else:
        setattr(message, name, value)


def json_object(data: bytes) -> dict[str, Any]:
    """A raw (HttpBody) request body that must be one JSON object; anything else is INVALID_ARGUMENT."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidArgument(f"the body is not valid JSON: {error}", reason="MALFORMED_BODY") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object", reason="MALFORMED_BODY")
    return body
