"""Restores through the edge: checked by the API's own rules, bounded, all or nothing, answered with their outcome.

The suite's edge gives ordinary routes 2 s: a restore of thousands of prompts outlasts that, and must still
be answered with its outcome (the restore route waits for the service's own time limit), never with a 504
while the restore goes on to take effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.support.http import json_error
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

TOKEN = "test-admin-token"
ADMIN = {"X-Admin-Token": TOKEN}
MAX_BYTES = 4 * 1024 * 1024
MAX_PROMPTS = 8000
AT = "2026-01-02T03:04:05.000Z"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    directory = tmp_path_factory.mktemp(f"restore-{request.param}")
    env = {
        "ADMIN_TOKEN": TOKEN,
        "SPARK_SERVICES": "meta,access,prompts",
        "SPARK_EDGE_ROUTE_TIMEOUT_S": "2",
        "SPARK_PROMPTS_RESTORE_MAX_BYTES": str(MAX_BYTES),
        "SPARK_PROMPTS_RESTORE_MAX_PROMPTS": str(MAX_PROMPTS),
        "SPARK_PROMPTS_BACKUP_CRON": "off",
    }
    with contextlib.ExitStack() as stack:
        if request.param == "redis":
            # A server of its own: a restore replaces every prompt in the database it is given.
            server = stack.enter_context(RedisServer(directory / "redis"))
            env |= {"REDIS_URL": server.url, "SPARK_PROMPTS_WORKERS": "2"}
        running = stack.enter_context(RunningSuite.start(directory / "suite", env))
        yield running


def prompt(prompt_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": prompt_id,
        "namespace": "restored",
        "name": f"p{prompt_id}",
        "version": 1,
        "lang": "en",
        "text": f"Describe {{{{subject}}}} ({prompt_id}).",
        "tags": [],
        "priority": 0,
        "is_active": True,
        "is_default": prompt_id == 1,
        "created_at": AT,
        "updated_at": AT,
        **fields,
    }


def export(prompts: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"exported_at": AT, "count": len(prompts), "format_version": 1, "prompts": prompts})


def restore(http: httpx.Client, body: bytes) -> httpx.Response:
    return http.post("/admin/restore", content=body, headers={**ADMIN, "Content-Type": "application/json"})


def create(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.post("/v1/prompts", json={"namespace": "created", "name": name, "text": "t"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["id"], int) and body["name"] == name
    return body


def listing(http: httpx.Client) -> list[dict[str, Any]]:
    response = http.get("/v1/prompts", params={"limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("id", 2**31, "2147483648"),
        ("id", 2**63, "9223372036854775808"),
        ("id", 0, "not 0"),
        ("priority", 2**40, "1099511627776"),
        ("created_at", "not a date", "'not a date'"),
        ("updated_at", "2026-01-02 03:04:05", "'2026-01-02 03:04:05'"),
        ("version", 1_000_001, "1000001"),
        ("lang", " ", "lang is required"),
        ("name", "n" * 201, "longer than 200"),
        ("text", "", "text is required"),
        ("created_at", "x" * 5000, "(5000 characters)"),
    ],
)
def test_a_restore_with_a_value_the_api_refuses_is_a_400_naming_it_and_changes_nothing(
    http: httpx.Client, field: str, value: Any, shown: str
) -> None:
    before = listing(http)
    bad = json_error(restore(http, export([prompt(1), prompt(2), prompt(3, **{field: value})])), 400, "prompts[2].")
    assert f"prompts[2].{field}" in bad["message"], bad
    assert shown in bad["message"], bad
    assert len(bad["message"]) < 300, bad
    assert listing(http) == before
    # The registry still works: creates answer 201 with the prompt, listings 200.
    created = create(http, f"after-{field}-{len(str(value))}")
    assert created in listing(http)


def test_a_good_restore_after_refused_ones_works_and_sets_the_id_counter_from_its_data(http: httpx.Client) -> None:
    for bad in ({"id": 2**31}, {"id": 2**63}, {"priority": 2**40}, {"created_at": "not a date"}):
        json_error(restore(http, export([prompt(1), prompt(7, **bad)])), 400, "prompts[1]")
    created = create(http, "before-restore")
    restored = restore(http, export([prompt(1), prompt(5)]))
    assert restored.status_code == 200, restored.text
    assert restored.json() == {"restored": 2}
    assert [p["id"] for p in listing(http)] == [1, 5]
    assert http.get("/v1/prompts/default", params={"namespace": "restored"}).json()["id"] == 1
    # The counter comes from the data: the highest id restored or replaced (the create just before).
    assert create(http, "after-restore")["id"] == max(5, created["id"]) + 1
    json_error(http.get(f"/v1/prompts/{created['id']}"), 404, "not found")


def test_an_export_at_the_byte_limit_is_taken_and_one_byte_more_is_a_413(http: httpx.Client) -> None:
    body = export([prompt(1), prompt(2)])
    at_limit = body[:-1] + b" " * (MAX_BYTES - len(body)) + b"}"
    assert len(at_limit) == MAX_BYTES
    taken = restore(http, at_limit)
    assert taken.status_code == 200, taken.text
    too_large = restore(http, at_limit + b" ")
    assert too_large.status_code == 413, too_large.text
    assert too_large.headers["content-type"] == "application/json"
    assert too_large.json()["message"]


def test_an_export_over_the_prompt_limit_is_refused_before_anything_is_written(http: httpx.Client) -> None:
    before = listing(http)
    refused = json_error(restore(http, export([prompt(i) for i in range(1, MAX_PROMPTS + 2)])), 400, "limit of 8000")
    assert refused["details"][0]["field_violations"][0]["field"] == "prompts"
    assert listing(http) == before


def test_a_restore_longer_than_the_route_timeout_is_answered_with_its_outcome(http: httpx.Client) -> None:
    prompts = [prompt(i) for i in range(1, MAX_PROMPTS + 1)]
    with httpx.Client(base_url=str(http.base_url), timeout=120) as patient:
        restored = restore(patient, export(prompts))
    assert restored.status_code == 200, restored.text
    assert restored.json() == {"restored": MAX_PROMPTS}
    # Already applied when answered, not later.
    assert http.get(f"/v1/prompts/{MAX_PROMPTS}").json()["name"] == f"p{MAX_PROMPTS}"
    assert create(http, "after-big-restore")["id"] == MAX_PROMPTS + 1
