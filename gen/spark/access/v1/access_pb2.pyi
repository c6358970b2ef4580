from google.api import annotations_pb2 as _annotations_pb2
from spark.policy.v1 import policy_pb2 as _policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class User(_message.Message):
    __slots__ = ("id", "login", "email", "avatar_url", "is_owner")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    IS_OWNER_FIELD_NUMBER: _ClassVar[int]
    id: str
    login: str
    email: str
    avatar_url: str
    is_owner: bool
    def __init__(self, id: _Optional[str] = ..., login: _Optional[str] = ..., email: _Optional[str] = ..., avatar_url: _Optional[str] = ..., is_owner: _Optional[bool] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: str
    def __init__(self, app: _Optional[str] = ...) -> None: ...

class RecordLoadRequest(_message.Message):
    __slots__ = ("url", "load_ms", "app")
    URL_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    url: str
    load_ms: float
    app: str
    def __init__(self, url: _Optional[str] = ..., load_ms: _Optional[float] = ..., app: _Optional[str] = ...) -> None: ...

class RecordLoadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("user", "label", "update_user")
    USER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    label: str
    update_user: bool
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., label: _Optional[str] = ..., update_user: _Optional[bool] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("id", "label", "user", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    user: User
    created_at: str
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ..., user: _Optional[_Union[User, _Mapping]] = ..., created_at: _Optional[str] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: ApiKey
    secret: str
    def __init__(self, key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("route_class", "per_user", "per_address", "window")
    ROUTE_CLASS_FIELD_NUMBER: _ClassVar[int]
    PER_USER_FIELD_NUMBER: _ClassVar[int]
    PER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    route_class: str
    per_user: int
    per_address: int
    window: str
    def __init__(self, route_class: _Optional[str] = ..., per_user: _Optional[int] = ..., per_address: _Optional[int] = ..., window: _Optional[str] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("mode", "limits", "nonce_routes", "nonce_ttl_s", "auth_failures_per_address")
    MODE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    NONCE_ROUTES_FIELD_NUMBER: _ClassVar[int]
    NONCE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    AUTH_FAILURES_PER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    mode: str
    limits: _containers.RepeatedCompositeFieldContainer[RateLimit]
    nonce_routes: _containers.RepeatedScalarFieldContainer[str]
    nonce_ttl_s: int
    auth_failures_per_address: int
    def __init__(self, mode: _Optional[str] = ..., limits: _Optional[_Iterable[_Union[RateLimit, _Mapping]]] = ..., nonce_routes: _Optional[_Iterable[str]] = ..., nonce_ttl_s: _Optional[int] = ..., auth_failures_per_address: _Optional[int] = ...) -> None: ...
