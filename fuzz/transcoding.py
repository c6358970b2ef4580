"""What services learn from the edge's transcoded HTTP requests (`services.common.transcoding`).

The input is an HTTP body; as text it is also the rest of a path after `/_spark/kv/`.

- `json_object` returns a dict or raises InvalidArgument MALFORMED_BODY.
- `strict_body`, on a request whose body Struct is the input (as it arrives after gRPC decoding), returns
  the request parsed into its typed fields or raises InvalidArgument INVALID_BODY or FIELD_CONFLICT; a
  field bound from the path keeps its value, and parsing the body of the result again gives the result.
- `check_path_field` accepts the value the path names and refuses others with FIELD_IN_QUERY.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError, Message
from spark.prompts.v1 import prompts_pb2

from services.common.errors import InvalidArgument
from services.common.transcoding import ORIGINAL_PATH_HEADER, check_path_field, json_object, strict_body

PATH_ID = 7
KV_PATH = "/_spark/kv/"


class _Context:
    """The one thing `check_path_field` asks of a gRPC context: the call's metadata."""

    def __init__(self, path: str) -> None:
        self._metadata = ((ORIGINAL_PATH_HEADER, path),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _received(request: Message, body: dict[str, Any]) -> Message | None:
    """The request with `body` as its Struct, as the servicer would receive it, or None if it cannot be sent."""
    try:
        struct = struct_pb2.Struct()
        struct.update(body)
        request.json.CopyFrom(struct)  # type: ignore[attr-defined]
        return type(request).FromString(request.SerializeToString())
    except (ValueError, TypeError, RecursionError, DecodeError):
        return None


def _check_strict_body(request: Message, body: dict[str, Any]) -> None:
    received = _received(request, body)
    if received is None:
        return
    try:
        parsed = strict_body(received)
    except InvalidArgument as error:
        assert error.reason in ("INVALID_BODY", "FIELD_CONFLICT"), error.reason
        return
    if isinstance(request, prompts_pb2.UpdatePromptRequest):
        assert parsed.id == PATH_ID  # type: ignore[attr-defined]
    typed = type(parsed)()
    typed.CopyFrom(parsed)
    typed.ClearField("json")
    again = _received(type(request)(), json_format.MessageToDict(typed, preserving_proto_field_name=True))
    assert again is not None
    reparsed = strict_body(again)
    reparsed.ClearField("json")
    assert reparsed == typed, (reparsed, typed)


def _check_path(text: str) -> None:
    path = KV_PATH + text
    segment = text.split("?", 1)[0]
    key = unquote_to_bytes(segment).decode("utf-8", "surrogateescape")
    context: Any = _Context(path)
    check_path_field(context, KV_PATH, "key", key)
    try:
        check_path_field(context, KV_PATH, "key", key + "x")
    except InvalidArgument as error:
        assert error.reason == "FIELD_IN_QUERY"
    else:
        raise AssertionError("a key other than the path's was accepted")


def TestOneInput(data: bytes) -> None:
    _check_path(data.decode("latin-1"))
    try:
        body = json_object(data)
    except InvalidArgument as error:
        assert error.reason == "MALFORMED_BODY"
        return
    assert isinstance(body, dict) and body == orjson.loads(data)
    for request in (
        prompts_pb2.CreatePromptRequest(),
        prompts_pb2.UpdatePromptRequest(id=PATH_ID),
        prompts_pb2.RenderPromptRequest(),
    ):
        _check_strict_body(request, body)
