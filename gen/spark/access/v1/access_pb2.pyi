from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
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

class StartSignInRequest(_message.Message):
    __slots__ = ("return_to",)
    RETURN_TO_FIELD_NUMBER: _ClassVar[int]
    return_to: str
    def __init__(self, return_to: _Optional[str] = ...) -> None: ...

class FinishSignInRequest(_message.Message):
    __slots__ = ("code", "state", "error", "error_description", "error_uri")
    CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_URI_FIELD_NUMBER: _ClassVar[int]
    code: str
    state: str
    error: str
    error_description: str
    error_uri: str
    def __init__(self, code: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., error_description: _Optional[str] = ..., error_uri: _Optional[str] = ...) -> None: ...

class SignOutRequest(_message.Message):
    __slots__ = ("return_to",)
    RETURN_TO_FIELD_NUMBER: _ClassVar[int]
    return_to: str
    def __init__(self, return_to: _Optional[str] = ...) -> None: ...

class OpenPageRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignInSession(_message.Message):
    __slots__ = ("id", "user", "created_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user: User
    created_at: str
    expires_at: str
    def __init__(self, id: _Optional[str] = ..., user: _Optional[_Union[User, _Mapping]] = ..., created_at: _Optional[str] = ..., expires_at: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SignInSession]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SignInSession, _Mapping]]] = ...) -> None: ...

class RevokeSessionsRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class RevokeSessionsResponse(_message.Message):
    __slots__ = ("user_id", "revoked")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    revoked: int
    def __init__(self, user_id: _Optional[str] = ..., revoked: _Optional[int] = ...) -> None: ...
