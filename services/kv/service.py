"""The thin `spark.kv.v1.KvService` servicer: proto <-> repository."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import grpc
import orjson
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from services.common.app import RUNTIME_PREFIX, app_of_call
from services.common.errors import Aborted, FieldViolation, InvalidArgument, NotFound
from services.common.store import Entry
from services.common.transcoding import ORIGINAL_PATH_HEADER, check_path_field, metadata_value
from services.kv import validation
from services.kv.repository import KvRepository

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
SPARK_PREFIX = "/_spark/"
KV_PATH = "/_spark/kv/"
COLLECTIONS_PATH = "/_spark/db/collections/"
INITIAL_HEADER = "x-spark-initial"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

Context = grpc.aio.ServicerContext[Any, Any]


def _json_body(payload: object) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=JSON_CONTENT_TYPE, data=orjson.dumps(payload))


def _entry_message(collection: str, entry: Entry, *, with_value: bool = True) -> kv_pb2.Entry:
    message = kv_pb2.Entry(
        collection=collection,
        key=entry.key,
        value=entry.value.decode("utf-8") if with_value else "",
        versionstamp=entry.versionstamp,
    )
    if entry.expires_at_ms is not None:
        expire = timestamp_pb2.Timestamp()
        expire.FromMilliseconds(entry.expires_at_ms)
        message.expire_time.CopyFrom(expire)
    return message


def _path_prefix(context: Context, spark_path: str) -> str:
    """`spark_path` (`/_spark/kv/`) as the request's path has it: `/runtime/<its app segment>/kv/` there."""
    original = metadata_value(context, ORIGINAL_PATH_HEADER) or ""
    if not original.startswith(RUNTIME_PREFIX):
        return spark_path
    segment = original[len(RUNTIME_PREFIX) :].split("/", 1)[0]
    return RUNTIME_PREFIX + segment + "/" + spark_path.removeprefix(SPARK_PREFIX)


def _encode_page_token(collection: str, prefix: str, last_key: str) -> str:
    raw = orjson.dumps({"c": collection, "p": prefix, "k": last_key})
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_page_token(token: str, collection: str, prefix: str) -> str:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if decoded["c"] == collection and decoded["p"] == prefix and isinstance(decoded["k"], str):
            return str(decoded["k"])
    except (binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError, KeyError, TypeError):
        pass
    raise InvalidArgument(
        "page_token was not issued for this collection and prefix",
        reason="INVALID_PAGE_TOKEN",
        violations=(FieldViolation("page_token", "not issued for this collection and prefix"),),
    )


class KvServicer(kv_pb2_grpc.KvServiceServicer):
    """Maps KvService RPCs onto the repository; all rules live in validation and the repository."""

    def __init__(self, repository: KvRepository, *, hosted_app: str, max_value_bytes: int, max_key_bytes: int) -> None:
        self._repository = repository
        self._hosted_app = hosted_app
        self._max_value_bytes = max_value_bytes
        self._max_key_bytes = max_key_bytes

    def _app(self, context: Context, app: str) -> str:
        """The app a call is for (see `app_of_call`)."""
        return app_of_call(app, metadata_value(context, ORIGINAL_PATH_HEADER), self._hosted_app)

    def _check_address(self, collection: str, key: str) -> None:
        validation.check_name(collection, "collection", self._max_key_bytes, allow_empty=True)
        validation.check_name(key, "key", self._max_key_bytes, allow_empty=False)

    def _spark_address(self, context: Context, app: str, collection: str, key: str) -> str:
        """Checks the address of a `Spark*` call and returns its app."""
        resolved = self._app(context, app)
        self._check_address(collection, key)
        check_path_field(context, _path_prefix(context, KV_PATH), "key", key)
        return resolved

    async def ListSparkKeys(self, request: kv_pb2.ListSparkKeysRequest, context: Context) -> httpbody_pb2.HttpBody:
        app = self._app(context, request.app)
        validation.check_name(request.collection, "collection", self._max_key_bytes, allow_empty=True)
        entries = await self._repository.all_entries(app, request.collection)
        return _json_body([entry.key for entry in entries])

    async def GetSparkValue(self, request: kv_pb2.GetSparkValueRequest, context: Context) -> httpbody_pb2.HttpBody:
        app = self._spark_address(context, request.app, request.collection, request.key)
        entry = await self._repository.get(app, request.collection, request.key)
        if entry is None:
            raise NotFound("key not found", reason="KEY_NOT_FOUND", metadata={"key": request.key})
        return httpbody_pb2.HttpBody(content_type=JSON_CONTENT_TYPE, data=entry.value)

    async def SetSparkValue(
        self, request: kv_pb2.SetSparkValueRequest, context: Context
    ) -> kv_pb2.SetSparkValueResponse:
        app = self._spark_address(context, request.app, request.collection, request.key)
        value = request.body.data
        validation.check_value_size(value, self._max_value_bytes, "body")
        validation.check_json(value, "body")
        only_if_absent = (metadata_value(context, INITIAL_HEADER) or "").strip().lower() == "true"
        result = await self._repository.set(app, request.collection, request.key, value, only_if_absent=only_if_absent)
        return kv_pb2.SetSparkValueResponse(written=result.written, versionstamp=result.versionstamp or "")

    async def DeleteSparkValue(
        self, request: kv_pb2.DeleteSparkValueRequest, context: Context
    ) -> kv_pb2.DeleteSparkValueResponse:
        app = self._spark_address(context, request.app, request.collection, request.key)
        deleted = await self._repository.delete(app, request.collection, request.key)
        return kv_pb2.DeleteSparkValueResponse(deleted=deleted)

    async def ListSparkCollection(
        self, request: kv_pb2.ListSparkCollectionRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        app = self._app(context, request.app)
        validation.check_name(request.name, "name", self._max_key_bytes, allow_empty=False)
        check_path_field(context, _path_prefix(context, COLLECTIONS_PATH), "name", request.name)
        entries = await self._repository.all_entries(app, request.name)
        return _json_body([{"key": entry.key, "value": entry.value.decode("utf-8")} for entry in entries])

    async def GetEntry(self, request: kv_pb2.GetEntryRequest, context: Context) -> kv_pb2.GetEntryResponse:
        app = self._app(context, request.app)
        self._check_address(request.collection, request.key)
        entry = await self._repository.get(app, request.collection, request.key)
        if entry is None:
            raise NotFound("key not found", reason="KEY_NOT_FOUND", metadata={"key": request.key})
        return kv_pb2.GetEntryResponse(entry=_entry_message(request.collection, entry))

    async def SetEntry(self, request: kv_pb2.SetEntryRequest, context: Context) -> kv_pb2.SetEntryResponse:
        app = self._app(context, request.app)
        self._check_address(request.collection, request.key)
        value = request.value.encode("utf-8")
        validation.check_value_size(value, self._max_value_bytes, "value")
        validation.check_json(value, "value")
        expected = request.expected_versionstamp if request.HasField("expected_versionstamp") else None
        if expected is not None:
            validation.check_versionstamp(expected, "expected_versionstamp")
        ttl_ms = None
        if request.HasField("ttl"):
            ttl_ms = request.ttl.ToMilliseconds()
            validation.check_ttl_ms(ttl_ms, "ttl")
        result = await self._repository.set(
            app,
            request.collection,
            request.key,
            value,
            expected_versionstamp=expected,
            only_if_absent=request.only_if_absent,
            ttl_ms=ttl_ms,
        )
        if not result.written:
            raise Aborted(
                "the entry changed: its versionstamp does not match or it already exists",
                reason="VERSIONSTAMP_MISMATCH",
                metadata={"key": request.key, "current_versionstamp": result.versionstamp or ""},
            )
        return kv_pb2.SetEntryResponse(versionstamp=result.versionstamp or "")

    async def DeleteEntry(self, request: kv_pb2.DeleteEntryRequest, context: Context) -> kv_pb2.DeleteEntryResponse:
        app = self._app(context, request.app)
        self._check_address(request.collection, request.key)
        expected = request.expected_versionstamp if request.HasField("expected_versionstamp") else None
        if expected is not None:
            validation.check_versionstamp(expected, "expected_versionstamp")
        deleted = await self._repository.delete(app, request.collection, request.key, expected_versionstamp=expected)
        return kv_pb2.DeleteEntryResponse(deleted=deleted)

    async def ListEntries(self, request: kv_pb2.ListEntriesRequest, context: Context) -> kv_pb2.ListEntriesResponse:
        app = self._app(context, request.app)
        validation.check_name(request.collection, "collection", self._max_key_bytes, allow_empty=True)
        validation.check_name(request.prefix, "prefix", self._max_key_bytes, allow_empty=True)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(
                f"page_size must be between 0 and {MAX_PAGE_SIZE}",
                reason="INVALID_PAGE_SIZE",
                violations=(FieldViolation("page_size", f"must be between 0 and {MAX_PAGE_SIZE}"),),
            )
        start_after = None
        if request.page_token:
            start_after = _decode_page_token(request.page_token, request.collection, request.prefix)
        size = request.page_size or DEFAULT_PAGE_SIZE
        entries, more = await self._repository.page(app, request.collection, request.prefix, start_after, size)
        token = _encode_page_token(request.collection, request.prefix, entries[-1].key) if more and entries else ""
        return kv_pb2.ListEntriesResponse(
            entries=[_entry_message(request.collection, e, with_value=not request.keys_only) for e in entries],
            next_page_token=token,
        )
