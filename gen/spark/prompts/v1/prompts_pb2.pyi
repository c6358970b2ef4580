import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from spark.policy.v1 import policy_pb2 as _policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Prompt(_message.Message):
    __slots__ = ("id", "namespace", "name", "version", "lang", "text", "tags", "priority", "is_active", "is_default", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    namespace: str
    name: str
    version: int
    lang: str
    text: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    is_active: bool
    is_default: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., lang: _Optional[str] = ..., text: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., is_active: _Optional[bool] = ..., is_default: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPromptsRequest(_message.Message):
    __slots__ = ("namespace", "lang", "active", "tag", "limit", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    lang: str
    active: str
    tag: str
    limit: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., lang: _Optional[str] = ..., active: _Optional[str] = ..., tag: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPromptsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Prompt]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreatePromptRequest(_message.Message):
    __slots__ = ("namespace", "name", "version", "lang", "text", "tags", "priority", "is_active", "make_default", "json")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    MAKE_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    version: int
    lang: str
    text: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    is_active: bool
    make_default: bool
    json: _struct_pb2.Struct
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., lang: _Optional[str] = ..., text: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., is_active: _Optional[bool] = ..., make_default: _Optional[bool] = ..., json: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetPromptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class UpdatePromptRequest(_message.Message):
    __slots__ = ("id", "namespace", "name", "version", "lang", "text", "tags", "priority", "is_active", "json")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    namespace: str
    name: str
    version: int
    lang: str
    text: str
    tags: _struct_pb2.ListValue
    priority: int
    is_active: bool
    json: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., lang: _Optional[str] = ..., text: _Optional[str] = ..., tags: _Optional[_Union[_struct_pb2.ListValue, _Mapping]] = ..., priority: _Optional[int] = ..., is_active: _Optional[bool] = ..., json: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeletePromptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class DeletePromptResponse(_message.Message):
    __slots__ = ("deleted", "id")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    id: int
    def __init__(self, deleted: _Optional[bool] = ..., id: _Optional[int] = ...) -> None: ...

class GetDefaultPromptRequest(_message.Message):
    __slots__ = ("namespace", "lang")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    lang: str
    def __init__(self, namespace: _Optional[str] = ..., lang: _Optional[str] = ...) -> None: ...

class SetDefaultPromptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListPromptRevisionsRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class PromptRevision(_message.Message):
    __slots__ = ("revision", "prompt_id", "action", "actor", "time", "before", "after")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    revision: int
    prompt_id: int
    action: str
    actor: str
    time: _timestamp_pb2.Timestamp
    before: Prompt
    after: Prompt
    def __init__(self, revision: _Optional[int] = ..., prompt_id: _Optional[int] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before: _Optional[_Union[Prompt, _Mapping]] = ..., after: _Optional[_Union[Prompt, _Mapping]] = ...) -> None: ...

class ListPromptRevisionsResponse(_message.Message):
    __slots__ = ("revisions",)
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    revisions: _containers.RepeatedCompositeFieldContainer[PromptRevision]
    def __init__(self, revisions: _Optional[_Iterable[_Union[PromptRevision, _Mapping]]] = ...) -> None: ...

class PromptSelector(_message.Message):
    __slots__ = ("namespace", "lang")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    lang: str
    def __init__(self, namespace: _Optional[str] = ..., lang: _Optional[str] = ...) -> None: ...

class RenderPromptRequest(_message.Message):
    __slots__ = ("text", "id", "default_for", "variables", "json")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FOR_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    text: str
    id: int
    default_for: PromptSelector
    variables: _containers.ScalarMap[str, str]
    json: _struct_pb2.Struct
    def __init__(self, text: _Optional[str] = ..., id: _Optional[int] = ..., default_for: _Optional[_Union[PromptSelector, _Mapping]] = ..., variables: _Optional[_Mapping[str, str]] = ..., json: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RenderPromptResponse(_message.Message):
    __slots__ = ("text", "prompt_id", "source")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    prompt_id: int
    source: str
    def __init__(self, text: _Optional[str] = ..., prompt_id: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class ExportPromptsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Backup(_message.Message):
    __slots__ = ("id", "created_at", "count", "size_bytes", "trigger")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: _timestamp_pb2.Timestamp
    count: int
    size_bytes: int
    trigger: str
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., trigger: _Optional[str] = ...) -> None: ...

class ListBackupsResponse(_message.Message):
    __slots__ = ("backups",)
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[Backup]
    def __init__(self, backups: _Optional[_Iterable[_Union[Backup, _Mapping]]] = ...) -> None: ...

class RestorePromptsRequest(_message.Message):
    __slots__ = ("body", "backup_id")
    BODY_FIELD_NUMBER: _ClassVar[int]
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    body: _httpbody_pb2.HttpBody
    backup_id: str
    def __init__(self, body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ..., backup_id: _Optional[str] = ...) -> None: ...

class RestorePromptsResponse(_message.Message):
    __slots__ = ("restored",)
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    restored: int
    def __init__(self, restored: _Optional[int] = ...) -> None: ...

class GetAboutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HttpRoute(_message.Message):
    __slots__ = ("method", "path", "rpc")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RPC_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    rpc: str
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., rpc: _Optional[str] = ...) -> None: ...

class GetAboutResponse(_message.Message):
    __slots__ = ("name", "version", "environment", "routes", "regex_cleanup", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    REGEX_CLEANUP_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    environment: str
    routes: _containers.RepeatedCompositeFieldContainer[HttpRoute]
    regex_cleanup: CleanupRule
    config: AboutConfig
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., environment: _Optional[str] = ..., routes: _Optional[_Iterable[_Union[HttpRoute, _Mapping]]] = ..., regex_cleanup: _Optional[_Union[CleanupRule, _Mapping]] = ..., config: _Optional[_Union[AboutConfig, _Mapping]] = ...) -> None: ...

class AboutConfig(_message.Message):
    __slots__ = ("regex_cleanup",)
    REGEX_CLEANUP_FIELD_NUMBER: _ClassVar[int]
    regex_cleanup: CleanupRule
    def __init__(self, regex_cleanup: _Optional[_Union[CleanupRule, _Mapping]] = ...) -> None: ...

class CleanupRule(_message.Message):
    __slots__ = ("pattern", "flags", "source")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    flags: str
    source: str
    def __init__(self, pattern: _Optional[str] = ..., flags: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class GetCleanupRuleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateCleanupRuleRequest(_message.Message):
    __slots__ = ("pattern", "flags", "json")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    flags: str
    json: _struct_pb2.Struct
    def __init__(self, pattern: _Optional[str] = ..., flags: _Optional[str] = ..., json: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
