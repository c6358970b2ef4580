"""Export validation: a restore takes a whole, consistent export that the API itself would accept, or nothing."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from spark.prompts.v1 import prompts_pb2

from services.common.errors import InvalidArgument
from services.prompts.backups import BackupStore, export_document, parse_export
from services.prompts.model import Draft, Prompt, Revision, validate_prompt


def prompt(**overrides: Any) -> Prompt:
    fields: dict[str, Any] = {
        "id": 1,
        "namespace": "ns",
        "name": "n",
        "version": 1,
        "lang": "ru",
        "text": "Привет, {{name}}",
        "tags": ("a",),
        "priority": 0,
        "is_active": True,
        "is_default": False,
        "created_at": "2026-11-22T03:00:00.000Z",
        "updated_at": "2026-11-22T03:00:00.000Z",
    }
    return Prompt(**{**fields, **overrides})


def test_an_export_round_trips() -> None:
    prompts = [prompt(id=2, name="b", is_default=True), prompt(id=1)]
    document = orjson.loads(export_document(prompts))
    assert set(document) == {"exported_at", "count", "prompts", "format_version"}
    assert document["count"] == 2
    assert [p["id"] for p in document["prompts"]] == [1, 2]
    assert parse_export(export_document(prompts), max_prompts=10) == sorted(prompts, key=lambda p: p.id)


def test_the_seed_format_without_a_version_is_accepted() -> None:
    data = orjson.dumps({"exported_at": "x", "count": 1, "prompts": [prompt().to_json()]})
    assert parse_export(data, max_prompts=10) == [prompt()]


def _document(*prompts: Prompt, **extra: Any) -> bytes:
    return orjson.dumps({"exported_at": "x", "count": len(prompts), "prompts": [p.to_json() for p in prompts], **extra})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"[]", "must be a JSON object"),
        (b"{", "is not JSON"),
        (_document(format_version=2), "format_version 2"),
        (_document(extra=1), "extra"),
        (orjson.dumps({"count": 1, "prompts": []}), "count"),
        (_document(prompt(), prompt()), "repeats id 1"),
        (_document(prompt(), prompt(id=2)), "repeats namespace 'ns', name 'n' and version 1"),
        (_document(prompt(is_default=True, is_active=False)), "inactive"),
        (_document(prompt(is_default=True), prompt(id=2, name="m", is_default=True)), "second default"),
        (_document(prompt(text="x" * 10_001)), "text"),
        (orjson.dumps({"count": 1, "prompts": [{**prompt().to_json(), "version": "1"}]}), "version must be an integer"),
        (
            orjson.dumps({"count": 1, "prompts": [{**prompt().to_json(), "is_active": 1}]}),
            "is_active must be a boolean",
        ),
        (orjson.dumps({"count": 1, "prompts": [{**prompt().to_json(), "colour": "red"}]}), "malformed"),
    ],
)
def test_bad_exports_are_refused_whole(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_export(data, max_prompts=10)
    everything = raised.value.message + " ".join(v.description + v.field for v in raised.value.violations)
    assert fragment in everything


def test_backup_ids_in_one_millisecond_sort_in_the_order_they_were_made() -> None:
    backups = BackupStore(None, retention_days=1)  # type: ignore[arg-type]  # ids need no store
    ids = [backups._new_id("2026-11-23T00:25:09.037Z") for _ in range(300)]
    assert sorted(ids) == ids
    assert len(set(ids)) == 300
    assert backups._new_id("2026-11-23T00:25:09.038Z") > ids[-1]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("id", 2**31, "prompts[1].id must be between 1 and 2147483647, not 2147483648"),
        ("id", 2**63, "prompts[1].id must be between 1 and 2147483647, not 9223372036854775808"),
        # Past 64 bits, JSON's number becomes a double.
        ("id", float(2**64), "prompts[1].id must be an integer, not 1.8446744073709552e+19"),
        ("priority", 2**40, "prompts[1].priority must be between -2147483648 and 2147483647, not 1099511627776"),
        ("priority", -(2**31) - 1, "prompts[1].priority must be between"),
        ("created_at", "not a date", "prompts[1].created_at must be an RFC 3339 time"),
        ("updated_at", "2026-02-30T00:00:00Z", "prompts[1].updated_at must be an RFC 3339 time"),
        # Full-width digits, which protobuf's parser (strptime) would take.
        ("updated_at", "\uff12\uff10\uff12\uff16-01-01T00:00:00Z", "prompts[1].updated_at must be an RFC 3339 time"),
        ("created_at", "0001-01-01T00:00:00+01:00", "prompts[1].created_at must be an RFC 3339 time"),
        ("created_at", "x" * 10_000, "… (10000 characters)"),
    ],
)
def test_a_restore_checks_the_ranges_the_api_uses_and_names_the_record(field: str, value: Any, fragment: str) -> None:
    data = orjson.dumps(
        {"count": 2, "prompts": [prompt().to_json(), {**prompt(id=2, name="m").to_json(), field: value}]}
    )
    with pytest.raises(InvalidArgument) as raised:
        parse_export(data, max_prompts=10)
    assert fragment in raised.value.message
    assert len(raised.value.message) < 300
    assert raised.value.violations[0].field == f"prompts[1].{field}"


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-22T03:00:00Z",
        "2026-11-22T03:00:00.123456789+05:30",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:59:59-01:00",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59+01:00",
    ],
)
def test_every_time_a_restore_takes_is_one_the_api_can_print(time: str) -> None:
    (restored,) = parse_export(_document(prompt(created_at=time, updated_at=time)), max_prompts=10)
    message = prompts_pb2.Prompt()
    message.created_at.FromJsonString(restored.created_at)


@pytest.mark.parametrize(
    "time",
    ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "2026-11-22T24:00:00Z", "2026-11-22T03:00:00.Z"],
)
def test_a_time_the_api_could_not_print_is_refused(time: str) -> None:
    with pytest.raises(InvalidArgument, match="must be an RFC 3339 time"):
        parse_export(_document(prompt(created_at=time)), max_prompts=10)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"priority": 2**40}, "priority"),
        ({"version": 0}, "version"),
        ({"name": "n" * 201}, "name"),
        ({"lang": "  "}, "lang"),
        ({"tags": ("",)}, "tags"),
        ({"text": "t" * 10_001}, "text"),
    ],
)
def test_a_create_and_a_restore_are_refused_by_the_same_rule(changes: dict[str, Any], field: str) -> None:
    draft = Draft(**{"namespace": "ns", "name": "n", "text": "t", **changes})
    with pytest.raises(InvalidArgument) as by_api:
        validate_prompt(draft)
    with pytest.raises(InvalidArgument) as by_restore:
        parse_export(_document(prompt(**changes)), max_prompts=10)
    assert by_api.value.violations[0].field == field
    assert by_restore.value.violations[0].field == f"prompts[0].{field}"
    assert by_restore.value.violations[0].description == by_api.value.violations[0].description


def test_an_export_over_the_prompt_limit_is_refused_whole() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_export(_document(*(prompt(id=i, name=f"n{i}") for i in range(1, 12))), max_prompts=10)
    assert raised.value.reason == "RESTORE_TOO_LARGE"
    assert "11 prompts, over the restore limit of 10" in raised.value.message
    assert parse_export(_document(*(prompt(id=i, name=f"n{i}") for i in range(1, 11))), max_prompts=10)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"revision": 2**31}, "revision.revision must be between"),
        ({"prompt_id": 0}, "revision.prompt_id must be between"),
        ({"action": "rename"}, "revision.action must be one of"),
        ({"time": "yesterday"}, "revision.time must be an RFC 3339 time"),
        ({"after": {**prompt().to_json(), "priority": 2**40}}, "revision.after.priority must be between"),
    ],
)
def test_stored_revisions_obey_the_same_rules(changes: dict[str, Any], fragment: str) -> None:
    revision = Revision(1, 1, "create", "admin", "2026-11-22T03:00:00.000Z", None, prompt())
    assert Revision.from_json(revision.to_json()) == revision
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        Revision.from_json({**revision.to_json(), **changes})


def test_a_stored_revision_missing_a_field_is_refused_with_its_name() -> None:
    """A KeyError here would pass the history's `except InvalidArgument` and answer 500."""
    data = Revision(1, 1, "create", "admin", "2026-11-22T03:00:00.000Z", None, prompt()).to_json()
    del data["actor"]
    with pytest.raises(InvalidArgument) as raised:
        Revision.from_json(data)
    assert [(v.field, v.description) for v in raised.value.violations] == [("revision.actor", "is required")]
