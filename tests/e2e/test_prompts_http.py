"""The prompt registry through the edge: every route and every rule of the contract."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.http import in_threads, json_error
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

TOKEN = "test-admin-token"
ADMIN = {"X-Admin-Token": TOKEN}
RUSSIAN = "Опиши изображение подробно: {{subject}}. "
_DATABASES = itertools.count(8)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {"ADMIN_TOKEN": TOKEN, "SPARK_KV_WORKERS": "1"}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        # Two prompts instances on one Redis: ids, defaults and cache invalidation must hold across them.
        env |= {"REDIS_URL": f"{server.url.rsplit('/', 1)[0]}/{next(_DATABASES)}", "SPARK_PROMPTS_WORKERS": "2"}
    running = RunningSuite.start(tmp_path_factory.mktemp(f"prompts-{request.param}"), env)
    yield running
    running.stop()


_names = itertools.count(1)


def new_prompt(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"namespace": "vision", "name": f"p{next(_names)}", "text": "Describe {{subject}}.", **fields}
    response = http.post("/v1/prompts", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_answers_201_with_defaults_and_snake_case(http: httpx.Client) -> None:
    created = new_prompt(http, tags=["a"], make_default=False)
    assert created["version"] == 1
    assert created["lang"] == "en"
    assert created["is_active"] is True
    assert created["is_default"] is False
    assert created["priority"] == 0
    assert created["tags"] == ["a"]
    assert created["created_at"].endswith("Z")
    assert isinstance(created["id"], int)
    assert http.get(f"/v1/prompts/{created['id']}").json() == created


def test_writes_need_the_admin_token(http: httpx.Client) -> None:
    body = {"namespace": "n", "name": "x", "text": "t"}
    json_error(http.post("/v1/prompts", json=body), 401, "X-Admin-Token")
    json_error(http.post("/v1/prompts", json=body, headers={"X-Admin-Token": "wrong"}), 401, "X-Admin-Token")
    json_error(http.post("/admin/backup"), 401, "X-Admin-Token")
    json_error(http.put("/admin/regex_cleanup", json={"pattern": "x"}), 401, "X-Admin-Token")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "x", "text": "t"}, 400, "namespace is required"),
        ({"namespace": "n", "text": "t"}, 400, "name is required"),
        ({"namespace": "n", "name": "x"}, 400, "text is required"),
        ({"namespace": "n", "name": "x", "text": "t", "colour": "red"}, 400, "colour"),
        ({"namespace": "n", "name": "x", "text": "t" * 10_001}, 400, "over the limit of 10000"),
        ({"namespace": "n", "name": "x", "text": "t", "version": 0}, 400, "version"),
        ({"namespace": "n", "name": "x", "text": "t", "is_active": False, "make_default": True}, 400, "active"),
    ],
)
def test_bad_prompts_are_refused(http: httpx.Client, body: dict[str, Any], status: int, fragment: str) -> None:
    json_error(http.post("/v1/prompts", json=body, headers=ADMIN), status, fragment)


def test_ten_thousand_characters_of_any_language_round_trip(http: httpx.Client) -> None:
    text = (RUSSIAN * 400)[:10_000]
    created = new_prompt(http, text=text, lang="ru")
    assert http.get(f"/v1/prompts/{created['id']}").json()["text"] == text


def test_duplicate_name_and_version_is_409(http: httpx.Client) -> None:
    first = new_prompt(http, version=3)
    body = {"namespace": "vision", "name": first["name"], "version": 3, "text": "again"}
    json_error(http.post("/v1/prompts", json=body, headers=ADMIN), 409, "already exists")
    assert new_prompt(http, name=first["name"], version=4)["version"] == 4


def test_missing_and_malformed_ids(http: httpx.Client) -> None:
    json_error(http.get("/v1/prompts/999999"), 404, "not found")
    assert http.get("/v1/prompts/abc").status_code == 400


def test_list_filters_sorts_and_pages(http: httpx.Client) -> None:
    ns = "listing"
    for name, version, priority, lang, active in [
        ("b", 1, 1, "en", True),
        ("a", 1, 1, "en", True),
        ("a", 2, 1, "en", True),
        ("c", 1, 0, "en", True),
        ("d", 1, 0, "ru", True),
        ("e", 1, 0, "en", False),
    ]:
        new_prompt(
            http, namespace=ns, name=name, version=version, priority=priority, lang=lang, is_active=active, tags=[lang]
        )
    listed = http.get("/v1/prompts", params={"namespace": ns, "lang": "en", "active": "1"}).json()
    assert [(p["name"], p["version"]) for p in listed["items"]] == [("c", 1), ("a", 2), ("a", 1), ("b", 1)]
    assert listed["next_page_token"] == ""
    assert [p["name"] for p in http.get("/v1/prompts", params={"namespace": ns, "tag": "ru"}).json()["items"]] == ["d"]
    assert [p["name"] for p in http.get("/v1/prompts", params={"namespace": ns, "active": "0"}).json()["items"]] == [
        "e"
    ]
    pages, token = [], ""
    while True:
        page = http.get("/v1/prompts", params={"namespace": ns, "limit": 2, "page_token": token}).json()
        pages.append([p["name"] for p in page["items"]])
        token = page["next_page_token"]
        if not token:
            break
    assert pages == [["c", "d"], ["e", "a"], ["a", "b"]]
    json_error(http.get("/v1/prompts", params={"limit": 101}), 400, "limit")
    json_error(http.get("/v1/prompts", params={"active": "maybe"}), 400, "active")
    mismatched = {"namespace": "other", "page_token": token or "bm9wZQ"}
    json_error(http.get("/v1/prompts", params=mismatched), 400, "page_token")


def test_defaults_are_exclusive_and_follow_every_change(http: httpx.Client) -> None:
    ns = "defaults"
    json_error(http.get("/v1/prompts/default", params={"namespace": ns, "lang": "en"}), 404, "no default prompt")
    first = new_prompt(http, namespace=ns, make_default=True)
    assert first["is_default"] is True
    assert http.get("/v1/prompts/default", params={"namespace": ns, "lang": "en"}).json()["id"] == first["id"]
    second = new_prompt(http, namespace=ns)
    switched = http.put(f"/v1/prompts/{second['id']}/default", headers=ADMIN)
    assert switched.status_code == 200, switched.text
    assert switched.json()["is_default"] is True
    assert http.get(f"/v1/prompts/{first['id']}").json()["is_default"] is False
    assert http.get("/v1/prompts/default", params={"namespace": ns, "lang": "en"}).json()["id"] == second["id"]
    defaults = [p for p in http.get("/v1/prompts", params={"namespace": ns}).json()["items"] if p["is_default"]]
    assert [p["id"] for p in defaults] == [second["id"]]
    inactive = new_prompt(http, namespace=ns, is_active=False)
    json_error(http.put(f"/v1/prompts/{inactive['id']}/default", headers=ADMIN), 400, "inactive")
    deactivated = http.put(f"/v1/prompts/{second['id']}", json={"is_active": False}, headers=ADMIN).json()
    assert deactivated["is_default"] is False
    json_error(http.get("/v1/prompts/default", params={"namespace": ns, "lang": "en"}), 404, "no default prompt")
    third = new_prompt(http, namespace=ns, make_default=True)
    assert http.delete(f"/v1/prompts/{third['id']}", headers=ADMIN).json() == {"deleted": True, "id": third["id"]}
    json_error(http.get("/v1/prompts/default", params={"namespace": ns, "lang": "en"}), 404, "no default prompt")
    json_error(http.get(f"/v1/prompts/{third['id']}"), 404, "not found")


def test_update_changes_only_the_given_fields(http: httpx.Client) -> None:
    prompt = new_prompt(http, tags=["x"], priority=5)
    updated = http.put(f"/v1/prompts/{prompt['id']}", json={"text": "New {{a}}", "tags": ["y", "z"]}, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["text"], body["tags"], body["priority"], body["name"]) == ("New {{a}}", ["y", "z"], 5, prompt["name"])
    assert body["updated_at"] >= prompt["updated_at"]
    other = new_prompt(http)
    taken = {"name": other["name"]}
    json_error(http.put(f"/v1/prompts/{prompt['id']}", json=taken, headers=ADMIN), 409, "already exists")
    json_error(http.put(f"/v1/prompts/{prompt['id']}", json={"tags": [1]}, headers=ADMIN), 400, "tags")
    json_error(http.put("/v1/prompts/999999", json={"text": "x"}, headers=ADMIN), 404, "not found")


def test_every_change_is_in_the_history(http: httpx.Client) -> None:
    prompt = new_prompt(http, namespace="history")
    http.put(f"/v1/prompts/{prompt['id']}", json={"text": "v2"}, headers=ADMIN)
    http.put(f"/v1/prompts/{prompt['id']}/default", headers=ADMIN)
    http.delete(f"/v1/prompts/{prompt['id']}", headers=ADMIN)
    revisions = http.get(f"/v1/prompts/{prompt['id']}/revisions").json()["revisions"]
    assert [r["action"] for r in revisions] == ["create", "update", "set_default", "delete"]
    assert all(r["actor"] == "admin" for r in revisions)
    assert "before" not in revisions[0]
    assert revisions[1]["before"]["text"] == prompt["text"]
    assert revisions[1]["after"]["text"] == "v2"
    assert "after" not in revisions[3]
    assert [r["revision"] for r in revisions] == sorted(r["revision"] for r in revisions)


def test_render_fills_placeholders_and_names_missing_ones(http: httpx.Client) -> None:
    prompt = new_prompt(http, namespace="render", lang="ru", text=RUSSIAN + "{{style}}", make_default=True)
    by_id = http.post(
        "/v1/prompts:render", json={"id": prompt["id"], "variables": {"subject": "кот", "style": "кратко"}}
    )
    assert by_id.status_code == 200, by_id.text
    assert by_id.json() == {
        "text": RUSSIAN.replace("{{subject}}", "кот") + "кратко",
        "prompt_id": prompt["id"],
        "source": "id",
    }
    by_default = http.post(
        "/v1/prompts:render",
        json={"default_for": {"namespace": "render", "lang": "ru"}, "variables": {"subject": "a", "style": "b"}},
    ).json()
    assert by_default["prompt_id"] == prompt["id"]
    assert (
        http.post("/v1/prompts:render", json={"text": "Hi {{who}}", "variables": {"who": "you"}}).json()["text"]
        == "Hi you"
    )
    missing = json_error(http.post("/v1/prompts:render", json={"id": prompt["id"]}), 400, "style")
    assert "subject" in missing["message"]
    json_error(http.post("/v1/prompts:render", json={"variables": {}}), 400, "source")


def test_backup_restore_round_trip_and_bad_exports_change_nothing(http: httpx.Client) -> None:
    new_prompt(http, namespace="backup", make_default=True)
    export = http.post("/admin/backup", headers=ADMIN)
    assert export.status_code == 200, export.text
    assert export.headers["content-disposition"].startswith('attachment; filename="prompts-backup-')
    document = export.json()
    assert set(document) == {"exported_at", "count", "prompts", "format_version"}
    assert document["count"] == len(document["prompts"]) > 0
    backups = http.get("/admin/backups", headers=ADMIN).json()["backups"]
    assert backups[0]["count"] == document["count"]
    assert backups[0]["trigger"] == "manual"
    before = http.get("/v1/prompts", params={"limit": 100}).json()
    for bad, fragment in [
        (b"{not json", "not JSON"),
        (b'{"format_version": 2, "count": 0, "prompts": []}', "format_version"),
        (b'{"count": 5, "prompts": []}', "count"),
        (b'{"count": 1, "prompts": [{"id": 1}]}', "malformed"),
    ]:
        json_error(http.post("/admin/restore", content=bad, headers=ADMIN), 400, fragment)
    assert http.get("/v1/prompts", params={"limit": 100}).json() == before
    extra = new_prompt(http, namespace="backup")
    restored = http.post("/admin/restore", params={"backup_id": backups[0]["id"]}, headers=ADMIN)
    assert restored.status_code == 200, restored.text
    assert restored.json() == {"restored": document["count"]}
    json_error(http.get(f"/v1/prompts/{extra['id']}"), 404, "not found")
    assert new_prompt(http, namespace="backup")["id"] > extra["id"]


def test_about_lists_routes_from_the_protos_and_the_cleanup_rule(http: httpx.Client) -> None:
    about = http.get("/about").json()
    assert about["name"] == "Spark services"
    routes = {(r["method"], r["path"]) for r in about["routes"]}
    assert {("GET", "/v1/prompts"), ("POST", "/v1/prompts"), ("GET", "/_spark/kv/{key}"), ("GET", "/healthz")} <= routes
    assert about["regex_cleanup"]["source"] in {"default", "kv"}
    json_error(http.put("/admin/regex_cleanup", json={"pattern": "(unclosed"}, headers=ADMIN), 400, "")
    changed = http.put("/admin/regex_cleanup", json={"pattern": "^Note:.*$", "flags": "gm"}, headers=ADMIN).json()
    assert changed == {"pattern": "^Note:.*$", "flags": "gm", "source": "kv"}
    about = http.get("/about").json()
    assert about["regex_cleanup"] == changed
    assert about["config"]["regex_cleanup"] == changed


def test_about_has_the_seed_plans_shape(http: httpx.Client) -> None:
    """A front end written for the seed plan (002, stage 6.1) reads name, version, environment, routes and
    config.regex_cleanup; the fields this suite adds (each route's rpc, the top-level regex_cleanup) stay."""
    about = http.get("/about").json()
    assert {"name", "version", "environment", "routes", "config"} <= about.keys()
    assert about["name"] and about["version"]
    assert about["environment"] == "development"
    assert about["routes"] and all({"method", "path", "rpc"} <= route.keys() for route in about["routes"])
    rule = about["config"]["regex_cleanup"]
    assert set(rule) == {"pattern", "flags", "source"}
    assert rule["source"] in {"default", "kv"}
    assert rule == about["regex_cleanup"] == http.get("/admin/regex_cleanup", headers=ADMIN).json()


def test_fifty_concurrent_creates_get_fifty_distinct_ids(suite: RunningSuite) -> None:
    def create(client: httpx.Client, i: int) -> int:
        response = client.post("/v1/prompts", json={"namespace": "race", "name": f"r{i}", "text": "t"}, headers=ADMIN)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    ids = in_threads(suite.base_url, create, range(50), workers=25)
    assert len(set(ids)) == 50


def test_no_instance_serves_a_stale_default_after_a_write(http: httpx.Client) -> None:
    ns = "stale"
    first = new_prompt(http, namespace=ns, make_default=True)
    for _ in range(10):  # warm every instance's cache
        assert http.get("/v1/prompts/default", params={"namespace": ns}).json()["id"] == first["id"]
    for _ in range(5):
        second = new_prompt(http, namespace=ns)
        assert http.put(f"/v1/prompts/{second['id']}/default", headers=ADMIN).status_code == 200
        seen = {http.get("/v1/prompts/default", params={"namespace": ns}).json()["id"] for _ in range(10)}
        assert seen == {second["id"]}


def test_cache_hits_and_misses_are_counted(http: httpx.Client, suite: RunningSuite) -> None:
    new_prompt(http, namespace="metrics", make_default=True)
    for _ in range(50):
        assert http.get("/v1/prompts/default", params={"namespace": "metrics"}).status_code == 200
    text = httpx.get(f"http://127.0.0.1:{suite.ports['prompts_metrics']}/metrics").text
    counts = {
        result: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        for result in ("hit", "miss")
        if line.startswith(f'prompts_cache_lookups_total{{kind="default",result="{result}"}}')
    }
    assert counts["miss"] >= 1
    assert counts["hit"] >= 1
