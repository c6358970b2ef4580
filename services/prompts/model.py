"""The prompt registry's domain types and their JSON form (the seed plan's export format)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.errors import FieldViolation, InvalidArgument

MAX_TEXT_CHARS = 10_000
MAX_NAME_CHARS = 200
MAX_TAGS = 50
MAX_TAG_CHARS = 100
DEFAULT_NAMESPACE = "default"
DEFAULT_LANG = "en"


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
        data = dataclasses.asdict(self)
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "prompt") -> Prompt:
        """Parses a stored or exported prompt, refusing anything malformed with the field named."""
        expected = {f.name for f in dataclasses.fields(cls)}
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
        if prompt.id < 1:
            raise _invalid(f"{where}.id", "must be a positive integer")
        validate_prompt(prompt, where)
        return prompt


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field} {description}", reason="INVALID_FIELD", violations=(FieldViolation(field, description),)
    )


def _typed(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data[key]
    # bool is an int in Python; JSON keeps them apart, and so do we.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(f"{where}.{key}", f"must be a {kind.__name__}")
    return value


def _typed_list(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{where}.{key}", "must be a list of strings")
    return value


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

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "prompt_id": self.prompt_id,
            "action": self.action,
            "actor": self.actor,
            "time": self.time,
            "before": self.before.to_json() if self.before else None,
            "after": self.after.to_json() if self.after else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Revision:
        return cls(
            revision=int(data["revision"]),
            prompt_id=int(data["prompt_id"]),
            action=str(data["action"]),
            actor=str(data["actor"]),
            time=str(data["time"]),
            before=Prompt.from_json(data["before"]) if data.get("before") else None,
            after=Prompt.from_json(data["after"]) if data.get("after") else None,
        )


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
    """The rules every stored prompt obeys; raises InvalidArgument naming the first field that breaks one."""
    prefix = f"{where}." if where else ""
    for field, value in (("namespace", prompt.namespace), ("name", prompt.name), ("lang", prompt.lang)):
        if not value.strip():
            raise _invalid(prefix + field, "is required")
        if len(value) > MAX_NAME_CHARS:
            raise _invalid(prefix + field, f"is longer than {MAX_NAME_CHARS} characters")
    if not 1 <= prompt.version <= 1_000_000:
        raise _invalid(prefix + "version", "must be between 1 and 1000000")
    if not prompt.text:
        raise _invalid(prefix + "text", "is required")
    if len(prompt.text) > MAX_TEXT_CHARS:
        raise _invalid(prefix + "text", f"is {len(prompt.text)} characters, over the limit of {MAX_TEXT_CHARS}")
    if len(prompt.tags) > MAX_TAGS or any(not tag or len(tag) > MAX_TAG_CHARS for tag in prompt.tags):
        raise _invalid(
            prefix + "tags", f"must be at most {MAX_TAGS} non-empty tags of up to {MAX_TAG_CHARS} characters"
        )
