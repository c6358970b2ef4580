"""The prompt registry's domain types and their JSON form (the seed plan's export format)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.errors import FieldViolation, InvalidArgument, quoted

MAX_TEXT_CHARS = 10_000
MAX_NAME_CHARS = 200
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_VERSION = 1_000_000
# Ids, versions, priorities and revision numbers are int32 in the API (JSON numbers, not strings).
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
DEFAULT_NAMESPACE = "default"
DEFAULT_LANG = "en"
ACTIONS = frozenset({"create", "update", "delete", "set_default", "clear_default", "restore"})
# RFC 3339 in ASCII digits (datetime and protobuf's Timestamp parser also take other digits).
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.ASCII)


def now_iso() -> str:
    """UTC, millisecond precision, `Z` suffix: sortable as text and what JavaScript's toISOString prints."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class Prompt:
    """One version of one named prompt in one language."""

    id: int
    namespace: str
    name: str
    version: int
    lang: str
    text: str
    tags: tuple[str, ...]
    priority: int
    is_active: bool
    is_default: bool
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict, which deep-copies every value: a restore converts tens of thousands.
        data = {name: getattr(self, name) for name in _PROMPT_FIELDS}
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "prompt") -> Prompt:
        """Parses a stored or exported prompt, refusing anything malformed with the field named."""
        expected = set(_PROMPT_FIELDS)
        unknown = sorted(set(data) - expected)
        missing = sorted(expected - set(data))
        if unknown or missing:
            problems = [FieldViolation(f"{where}.{k}", "unknown field") for k in unknown]
            problems += [FieldViolation(f"{where}.{k}", "is required") for k in missing]
            raise InvalidArgument(f"{where} is malformed", reason="MALFORMED_PROMPT", violations=tuple(problems))
        prompt = cls(
            id=_typed(data, "id", int, where),
            namespace=_typed(data, "namespace", str, where),
            name=_typed(data, "name", str, where),
            version=_typed(data, "version", int, where),
            lang=_typed(data, "lang", str, where),
            text=_typed(data, "text", str, where),
            tags=tuple(_typed_list(data, "tags", where)),
            priority=_typed(data, "priority", int, where),
            is_active=_typed(data, "is_active", bool, where),
            is_default=_typed(data, "is_default", bool, where),
            created_at=_typed(data, "created_at", str, where),
            updated_at=_typed(data, "updated_at", str, where),
        )
        validate_prompt(prompt, where)
        return prompt


_PROMPT_FIELDS = tuple(field.name for field in dataclasses.fields(Prompt))


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field} {description}", reason="INVALID_FIELD", violations=(FieldViolation(field, description),)
    )


_KINDS = {int: "an integer", str: "a string", bool: "a boolean"}


def shown(value: Any) -> str:
    """A JSON value for an error message, cut to a short prefix."""
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        # JSON numbers that reach here fit 64 bits or are doubles: short.
        return str(value)
    return "a list" if isinstance(value, list) else "an object"


def _required(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise _invalid(f"{where}.{key}", "is required")
    return data[key]


def _typed(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = _required(data, key, where)
    # bool is an int in Python; JSON keeps them apart, and so do we.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(f"{where}.{key}", f"must be {_KINDS[kind]}, not {shown(value)}")
    return value


def _typed_list(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = _required(data, key, where)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{where}.{key}", "must be a list of strings")
    return value


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check_range(value: int, low: int, high: int, field: str) -> None:
    """Refuses an integer the API's field could not carry."""
    if not low <= value <= high:
        raise _invalid(field, f"must be between {low} and {high}, not {shown(value)}")


def check_time(value: str, field: str) -> None:
    """Refuses a time the API could not print: every answer that carries one parses it into protobuf's
    Timestamp, which takes RFC 3339 times in UTC years 1 to 9999. This check takes a subset of those (no
    offsets of a day or more) at a tenth of the cost: a restore checks two per prompt."""
    if _TIME_RE.fullmatch(value):
        try:
            # An offset can move a time out of the years a Timestamp holds.
            datetime.fromisoformat(value).astimezone(UTC)
            return
        except (ValueError, OverflowError):
            pass
    raise _invalid(field, f"must be an RFC 3339 time such as 2026-01-31T12:00:00.000Z, not {shown(value)}")


@dataclass(frozen=True, slots=True)
class Draft:
    """A prompt to create."""

    namespace: str
    name: str
    text: str
    version: int = 1
    lang: str = DEFAULT_LANG
    tags: tuple[str, ...] = ()
    priority: int = 0
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class Changes:
    """Fields to change on a prompt; None leaves a field as it is."""

    namespace: str | None = None
    name: str | None = None
    version: int | None = None
    lang: str | None = None
    text: str | None = None
    tags: tuple[str, ...] | None = None
    priority: int | None = None
    is_active: bool | None = None

    def apply(self, prompt: Prompt, updated_at: str) -> Prompt:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        return dataclasses.replace(prompt, **values, updated_at=updated_at)


@dataclass(frozen=True, slots=True)
class Revision:
    """One recorded change of one prompt."""

    revision: int
    prompt_id: int
    action: str
    actor: str
    time: str
    before: Prompt | None
    after: Prompt | None
    # The dataset a restore wrote, for a restore's revisions: they count only once that restore took effect.
    restore: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "revision": self.revision,
            "prompt_id": self.prompt_id,
            "action": self.action,
            "actor": self.actor,
            "time": self.time,
            "before": self.before.to_json() if self.before else None,
            "after": self.after.to_json() if self.after else None,
        }
        if self.restore:
            data["restore"] = self.restore
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "revision") -> Revision:
        """Parses a stored revision with the rules of the prompts it holds; raises InvalidArgument."""
        before, after = data.get("before"), data.get("after")
        revision = cls(
            revision=_typed(data, "revision", int, where),
            prompt_id=_typed(data, "prompt_id", int, where),
            action=_typed(data, "action", str, where),
            actor=_typed(data, "actor", str, where),
            time=_typed(data, "time", str, where),
            before=Prompt.from_json(before, f"{where}.before") if before else None,
            after=Prompt.from_json(after, f"{where}.after") if after else None,
            restore=_typed(data, "restore", str, where) if "restore" in data else "",
        )
        check_range(revision.revision, 1, INT32_MAX, f"{where}.revision")
        check_range(revision.prompt_id, 1, INT32_MAX, f"{where}.prompt_id")
        if revision.action not in ACTIONS:
            raise _invalid(f"{where}.action", f"must be one of {', '.join(sorted(ACTIONS))}")
        check_time(revision.time, f"{where}.time")
        return revision


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filters of a prompt listing."""

    namespace: str = ""
    lang: str = ""
    active: bool | None = None
    tag: str = ""

    def matches(self, prompt: Prompt) -> bool:
        return (
            (not self.namespace or prompt.namespace == self.namespace)
            and (not self.lang or prompt.lang == self.lang)
            and (self.active is None or prompt.is_active == self.active)
            and (not self.tag or self.tag in prompt.tags)
        )


def sort_key(prompt: Prompt) -> tuple[int, str, int, int]:
    """Priority ascending, then name, then version descending (then id, so the order is total)."""
    return (prompt.priority, prompt.name, -prompt.version, prompt.id)


def validate_prompt(prompt: Prompt | Draft, where: str = "") -> None:
    """The rules every stored prompt obeys, for a create, an update and every prompt of a restore alike;
    raises InvalidArgument naming the first field (in field order) that breaks one."""
    if isinstance(prompt, Prompt):
        check_range(prompt.id, 1, INT32_MAX, _field(where, "id"))
    for field, value in (("namespace", prompt.namespace), ("name", prompt.name)):
        _check_name(value, _field(where, field))
    check_range(prompt.version, 1, MAX_VERSION, _field(where, "version"))
    _check_name(prompt.lang, _field(where, "lang"))
    if not prompt.text:
        raise _invalid(_field(where, "text"), "is required")
    if len(prompt.text) > MAX_TEXT_CHARS:
        raise _invalid(_field(where, "text"), f"is {len(prompt.text)} characters, over the limit of {MAX_TEXT_CHARS}")
    if len(prompt.tags) > MAX_TAGS or any(not tag or len(tag) > MAX_TAG_CHARS for tag in prompt.tags):
        raise _invalid(
            _field(where, "tags"), f"must be at most {MAX_TAGS} non-empty tags of up to {MAX_TAG_CHARS} characters"
        )
    check_range(prompt.priority, INT32_MIN, INT32_MAX, _field(where, "priority"))
    if isinstance(prompt, Prompt):
        check_time(prompt.created_at, _field(where, "created_at"))
        check_time(prompt.updated_at, _field(where, "updated_at"))


def _check_name(value: str, field: str) -> None:
    if not value.strip():
        raise _invalid(field, "is required")
    if len(value) > MAX_NAME_CHARS:
        raise _invalid(field, f"is longer than {MAX_NAME_CHARS} characters")
