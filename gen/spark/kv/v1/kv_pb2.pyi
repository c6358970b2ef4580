import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from spark.policy.v1 import policy_pb2 as _policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListSparkKeysRequest(_message.Message):
    __slots__ = ("collection", "app")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    collection: str
    app: str
    def __init__(self, collection: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class GetSparkValueRequest(_message.Message):
    __slots__ = ("key", "collection", "app")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    app: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class SetSparkValueRequest(_message.Message):
    __slots__ = ("key", "collection", "body", "app")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    body: _httpbody_pb2.HttpBody
    app: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ..., body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ..., app: _Optional[str] = ...) -> None: ...

class SetSparkValueResponse(_message.Message):
    __slots__ = ("written", "versionstamp")
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    VERSIONSTAMP_FIELD_NUMBER: _ClassVar[int]
    written: bool
    versionstamp: str
    def __init__(self, written: _Optional[bool] = ..., versionstamp: _Optional[str] = ...) -> None: ...

class DeleteSparkValueRequest(_message.Message):
    __slots__ = ("key", "collection", "app")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    app: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class DeleteSparkValueResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class ListSparkCollectionRequest(_message.Message):
    __slots__ = ("name", "app")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    name: str
    app: str
    def __init__(self, name: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("collection", "key", "value", "versionstamp", "expire_time")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSIONSTAMP_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    value: str
    versionstamp: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ..., versionstamp: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetEntryRequest(_message.Message):
    __slots__ = ("collection", "key", "app")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    app: str
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class GetEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ...) -> None: ...

class SetEntryRequest(_message.Message):
    __slots__ = ("collection", "key", "value", "expected_versionstamp", "only_if_absent", "ttl", "app")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSIONSTAMP_FIELD_NUMBER: _ClassVar[int]
    ONLY_IF_ABSENT_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    value: str
    expected_versionstamp: str
    only_if_absent: bool
    ttl: _duration_pb2.Duration
    app: str
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ..., expected_versionstamp: _Optional[str] = ..., only_if_absent: _Optional[bool] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., app: _Optional[str] = ...) -> None: ...

class SetEntryResponse(_message.Message):
    __slots__ = ("versionstamp",)
    VERSIONSTAMP_FIELD_NUMBER: _ClassVar[int]
    versionstamp: str
    def __init__(self, versionstamp: _Optional[str] = ...) -> None: ...

class DeleteEntryRequest(_message.Message):
    __slots__ = ("collection", "key", "expected_versionstamp", "app")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSIONSTAMP_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    expected_versionstamp: str
    app: str
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., expected_versionstamp: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class DeleteEntryResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("collection", "prefix", "page_size", "page_token", "keys_only", "app")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEYS_ONLY_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    collection: str
    prefix: str
    page_size: int
    page_token: str
    keys_only: bool
    app: str
    def __init__(self, collection: _Optional[str] = ..., prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., keys_only: _Optional[bool] = ..., app: _Optional[str] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
