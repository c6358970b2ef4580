"""Users: who a request is from, as the Spark runtime's `spark.user()` describes them."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from spark.access.v1 import access_pb2

from services.common.errors import FieldViolation, InvalidArgument

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_EMAIL_CHARS = 254
MAX_URL_CHARS = 2048


@dataclass(frozen=True, slots=True)
class User:
    id: str
    login: str
    email: str = ""
    avatar_url: str = ""
    is_owner: bool = False

    def to_proto(self) -> access_pb2.User:
        return access_pb2.User(**asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, object]) -> User:
        return cls(
            id=str(data["id"]),
            login=str(data["login"]),
            email=str(data.get("email", "")),
            avatar_url=str(data.get("avatar_url", "")),
            is_owner=bool(data.get("is_owner", False)),
        )


def conflicting_fields(stored: User, given: User) -> list[str]:
    """The request's fields (as `user.<name>`) that would change the stored profile. An empty email or
    avatar URL and `is_owner: false` are not given (proto3 cannot tell them from absent): they keep the
    stored values. The id is the same, it is how the user was found."""
    fields = []
    if given.login != stored.login:
        fields.append("user.login")
    if given.email and given.email != stored.email:
        fields.append("user.email")
    if given.avatar_url and given.avatar_url != stored.avatar_url:
        fields.append("user.avatar_url")
    if given.is_owner and not stored.is_owner:
        fields.append("user.is_owner")
    return fields


def user_from_request(message: access_pb2.User) -> User:
    """A validated user from an admin's request; the id defaults to the login."""
    login = message.login.strip()
    user_id = message.id.strip() or login
    violations = []
    if not _ID.fullmatch(login):
        violations.append(FieldViolation("user.login", "1-64 characters: letters, digits and . _ @ -"))
    if not _ID.fullmatch(user_id):
        violations.append(FieldViolation("user.id", "1-64 characters: letters, digits and . _ @ -"))
    if len(message.email) > MAX_EMAIL_CHARS or (message.email and "@" not in message.email):
        violations.append(FieldViolation("user.email", f"an address of at most {MAX_EMAIL_CHARS} characters"))
    if len(message.avatar_url) > MAX_URL_CHARS or (
        message.avatar_url and not message.avatar_url.startswith(("https://", "http://"))
    ):
        violations.append(FieldViolation("user.avatar_url", f"an http(s) URL of at most {MAX_URL_CHARS} characters"))
    if violations:
        raise InvalidArgument("the user is not valid", reason="INVALID_USER", violations=tuple(violations))
    return User(user_id, login, message.email, message.avatar_url, message.is_owner)
