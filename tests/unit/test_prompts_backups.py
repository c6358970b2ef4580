"""Export validation: a restore either takes a whole, consistent export or nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.common.errors import InvalidArgument
from services.prompts.backups import BackupStore, export_document, parse_export
from services.prompts.model import Prompt


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
        (orjson.dumps({"count": 1, "prompts": [{**prompt().to_json(), "is_active": 1}]}), "is_active must be a boolean"),
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
