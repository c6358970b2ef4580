"""`/runtime/{app}/...` through the real edge: the routes the Spark vite plugin's dev proxy calls.

`vite dev` with the `@github/spark` plugin sends `/_spark/{kv,db,user,loaded}/...` to
`${GITHUB_API_URL}/runtime/${app}/{service}/...` with `Authorization: bearer ${GITHUB_TOKEN}` (lowercase, as
the plugin writes it). Those routes answer as `/_spark/...` do, for the app the path names: the hosted app's
data is the same whichever way it is reached, and other apps' data is their own. The suites run in keys mode
(an API key on every call) on SQLite and on Redis; one in development mode shows a plugin with no token.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import FAILED_KEY
from tests.e2e.conftest import VALUE_LIMIT
from tests.support.http import json_error
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN = "runtime-routes-admin-token"
HOSTED = "hosted-app"
TEXT = {"content-type": "text/plain;charset=UTF-8"}
ODD_KEYS = ["a/b c", "100%", "what?", "#hash", "é", "日本語のキー", "emoji 😀", "plus+sign", "..x", "/leading"]


def enc(key: str) -> str:
    """What the runtime sends: `encodeURIComponent(key)`."""
    return quote(key, safe="-_.!~*'()")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def keyed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    """A suite hosting HOSTED in keys mode."""
    env = {
        "SPARK_APP_NAME": HOSTED,
        "SPARK_ACCESS_MODE": "keys",
        "ADMIN_TOKEN": ADMIN,
        "SPARK_ACCESS_KEY_CACHE_S": "0",
        "SPARK_KV_MAX_VALUE_BYTES": str(VALUE_LIMIT),
    }
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = f"{server.url.rsplit('/', 1)[0]}/13"
    running = RunningSuite.start(tmp_path_factory.mktemp(f"runtime-{request.param}"), env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def secret(keyed: RunningSuite) -> str:
    with httpx.Client(base_url=keyed.base_url, timeout=30.0) as client:
        created = client.post(
            "/admin/keys", headers={"x-admin-token": ADMIN}, json={"user": {"login": "dev", "email": "dev@example.com"}}
        )
    assert created.status_code == 200, created.text
    return str(created.json()["secret"])


@pytest.fixture
def edge(keyed: RunningSuite, secret: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client that sends the API key as the Spark plugin's proxy does."""
    headers = {"authorization": f"bearer {secret}"}
    with httpx.Client(base_url=keyed.base_url, timeout=30.0, headers=headers) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(keyed.logs())


@pytest.fixture
def anonymous(keyed: RunningSuite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed.base_url, timeout=30.0) as client:
        yield client


def app_error(response: httpx.Response, status: int, fragment: str) -> dict[str, Any]:
    body = json_error(response, status, fragment)
    assert not [h for h in response.headers if h.startswith("grpc-")], response.headers
    return body


@pytest.mark.parametrize("base", ["/_spark", f"/runtime/{HOSTED}", "/runtime/vite-dev.app_2"])
def test_kv_and_db_answer_as_the_spark_routes_do(edge: httpx.Client, base: str) -> None:
    tag = base.replace("/", "_")
    key = f"round-trip{tag}"
    text = ' { "spaced" : [ 1 , 2 ], "é": "😀" } '
    put = edge.put(f"{base}/kv/{key}", content=text.encode(), headers=TEXT)
    assert put.status_code == 200, put.text
    assert put.json()["written"] is True
    got = edge.get(f"{base}/kv/{key}")
    assert got.status_code == 200 and got.content == text.encode()
    assert got.headers["content-type"].startswith("application/json")
    # POST writes too; `X-Spark-Initial: true` only where nothing is stored.
    assert edge.post(f"{base}/kv/{key}", content=b"1", headers=TEXT).json()["written"] is True
    initial = edge.post(f"{base}/kv/{key}", content=b"2", headers={**TEXT, "x-spark-initial": "true"})
    assert initial.status_code == 200 and initial.json()["written"] is False
    assert edge.get(f"{base}/kv/{key}").content == b"1"
    for odd in ODD_KEYS:
        value = json.dumps({"key": odd})
        assert edge.put(f"{base}/kv/{enc(odd)}", content=value, headers=TEXT).status_code == 200
        assert edge.get(f"{base}/kv/{enc(odd)}").content == value.encode()
    listed = edge.get(f"{base}/kv")
    assert listed.status_code == 200 and set(listed.json()) >= {key, *ODD_KEYS}
    # Collections, by query and through /db/collections.
    assert edge.put(f"{base}/kv/b?collection=todos", content=b'{"n":2}', headers=TEXT).status_code == 200
    assert edge.put(f"{base}/kv/a?collection=todos", content=b'{"n":1}', headers=TEXT).status_code == 200
    assert edge.get(f"{base}/kv?collection=todos").json() == ["a", "b"]
    assert edge.get(f"{base}/db/collections/todos").json() == [
        {"key": "a", "value": '{"n":1}'},
        {"key": "b", "value": '{"n":2}'},
    ]
    # Deletes answer 2xx whether or not the key existed; then it is a 404.
    assert edge.delete(f"{base}/kv/{key}").status_code == 200
    assert edge.delete(f"{base}/kv/{key}").status_code == 200
    app_error(edge.get(f"{base}/kv/{key}"), 404, "key not found")
    # The same refusals.
    app_error(edge.put(f"{base}/kv/bad", content=b"{not json", headers=TEXT), 400, "not valid JSON")
    app_error(edge.get(f"{base}/kv/"), 400, "key must not be empty")
    too_big = edge.put(f"{base}/kv/big", content=b'"' + b"x" * VALUE_LIMIT + b'"', headers=TEXT)
    assert too_big.status_code == 413 and too_big.headers["content-type"].startswith("application/json")


def test_the_hosted_apps_data_is_the_same_through_spark_and_runtime(edge: httpx.Client) -> None:
    assert edge.put("/_spark/kv/shared-1", content=b'"from /_spark"', headers=TEXT).status_code == 200
    assert edge.get(f"/runtime/{HOSTED}/kv/shared-1").content == b'"from /_spark"'
    assert edge.put(f"/runtime/{HOSTED}/kv/shared-2?collection=c", content=b'"from vite"', headers=TEXT).is_success
    assert edge.get("/_spark/kv/shared-2?collection=c").content == b'"from vite"'
    assert edge.get("/_spark/db/collections/c").json() == edge.get(f"/runtime/{HOSTED}/db/collections/c").json()
    assert edge.get("/_spark/kv").json() == edge.get(f"/runtime/{HOSTED}/kv").json()
    assert edge.delete(f"/runtime/{HOSTED}/kv/shared-1").is_success
    assert edge.get("/_spark/kv/shared-1").status_code == 404


def test_apps_never_see_each_others_data(edge: httpx.Client) -> None:
    apps = ["app-one", "app-two", "default"]
    for app in apps:
        assert edge.put(f"/runtime/{app}/kv/apart", content=json.dumps(app), headers=TEXT).is_success
        assert edge.put(f"/runtime/{app}/kv/x?collection=apart", content=b"1", headers=TEXT).is_success
        assert edge.put(f"/runtime/{app}/kv/only-{app}", content=b"true", headers=TEXT).is_success
    for app in apps:
        assert edge.get(f"/runtime/{app}/kv/apart").json() == app
        keys = edge.get(f"/runtime/{app}/kv").json()
        assert f"only-{app}" in keys and not {f"only-{other}" for other in apps if other != app} & set(keys)
        assert edge.get(f"/runtime/{app}/db/collections/apart").json() == [{"key": "x", "value": "1"}]
    # The hosted app is none of them.
    app_error(edge.get("/_spark/kv/apart"), 404, "key not found")
    assert edge.delete("/runtime/app-one/kv/apart").is_success
    assert edge.get("/runtime/app-two/kv/apart").json() == "app-two"


def test_user_and_loaded_answer_as_the_spark_routes_do(edge: httpx.Client) -> None:
    spark_user = edge.get("/_spark/user")
    assert spark_user.status_code == 200, spark_user.text
    assert spark_user.json()["login"] == "dev"
    for app in (HOSTED, "vite-dev"):
        user = edge.get(f"/runtime/{app}/user")
        assert user.status_code == 200 and user.json() == spark_user.json(), user.text
        report = {"url": "http://localhost:5000/", "load_ms": 123.5}
        assert (
            edge.post(f"/runtime/{app}/loaded", json=report).status_code
            == edge.post("/_spark/loaded", json=report).status_code
            == 200
        )
        empty = edge.post(f"/runtime/{app}/loaded", content=b"", headers={"content-type": "application/json"})
        spark_empty = edge.post("/_spark/loaded", content=b"", headers={"content-type": "application/json"})
        assert (empty.status_code, empty.json()["message"]) == (spark_empty.status_code, spark_empty.json()["message"])
        assert empty.status_code == 400


def test_in_keys_mode_a_runtime_call_needs_an_api_key(anonymous: httpx.Client, secret: str) -> None:
    calls = [
        ("GET", f"/runtime/{HOSTED}/kv"),
        ("GET", f"/runtime/{HOSTED}/kv/k"),
        ("PUT", f"/runtime/{HOSTED}/kv/k"),
        ("DELETE", f"/runtime/{HOSTED}/kv/k"),
        ("GET", f"/runtime/{HOSTED}/db/collections/c"),
        ("GET", f"/runtime/{HOSTED}/user"),
        ("POST", "/runtime/other/loaded"),
    ]
    for method, path in calls:
        # What each route takes: a KV value as text, a load report as JSON.
        content = {"PUT": b"1", "POST": b'{"url": "http://localhost:5000/", "load_ms": 1}'}.get(method)
        headers = {"content-type": "application/json"} if content else {}
        response = anonymous.request(method, path, content=content, headers=headers)
        assert app_error(response, 401, "API key")["details"][0]["reason"] == "API_KEY_MISSING", path
        wrong = anonymous.request(method, path, content=content, headers={**headers, "authorization": "bearer spk_x"})
        assert wrong.status_code == 401, (path, wrong.text)
    # The plugin's `bearer` (lowercase) and the usual `Bearer` both carry the key.
    for scheme in ("bearer", "Bearer"):
        answered = anonymous.get(f"/runtime/{HOSTED}/user", headers={"authorization": f"{scheme} {secret}"})
        assert answered.status_code == 200 and answered.json()["login"] == "dev"


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/runtime/.hidden/kv", 400, "app must be 1 to 64 of"),
        ("/runtime/a%20b/kv/k", 400, "app must be 1 to 64 of"),
        ("/runtime/a%2Fb/user", 400, "app must be 1 to 64 of"),
        ("/runtime/..x/db/collections/c", 400, "app must be 1 to 64 of"),
        (f"/runtime/{'x' * 65}/kv/k", 400, "app must be 1 to 64 of"),
        (f"/runtime/{'x' * 65}/db/collections/c", 400, "app must be 1 to 64 of"),
        ("/_spark/kv/k?app=other", 400, "/_spark/ paths serve the hosted app"),
        ("/_spark/kv?app=other", 400, "/_spark/ paths serve the hosted app"),
        (f"/runtime/{HOSTED}/kv/k?app=other", 400, "app is part of the path"),
        (f"/runtime/{HOSTED}/kv/a?key=b", 400, "key is part of the path"),
    ],
)
def test_the_app_comes_from_the_path_and_must_be_an_app_name(
    edge: httpx.Client, path: str, status: int, fragment: str
) -> None:
    body = app_error(edge.get(path), status, fragment)
    assert body["code"] == 3, body


def test_other_runtime_paths_are_json_404s(edge: httpx.Client) -> None:
    for path in ("/runtime/app/llm", "/runtime/app/kvx", "/runtime/app", "/runtime/app/user/more"):
        response = edge.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith("application/json"), path


@pytest.fixture(scope="module")
def development(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    """The zero-set-up suite: development mode, SQLite, no app named (the hosted app is `default`)."""
    directory = tmp_path_factory.mktemp("runtime-dev")
    running = RunningSuite.start(directory / "suite", {})
    yield running
    running.stop()


def test_in_development_mode_the_dev_proxy_needs_no_token(development: RunningSuite) -> None:
    with httpx.Client(base_url=development.base_url, timeout=30.0) as client:
        assert client.put("/runtime/default/kv/dev?collection=c", content=b'"no token"', headers=TEXT).is_success
        # Unnamed, the hosted app is `default`: the same data as /_spark.
        assert client.get("/_spark/kv/dev?collection=c").content == b'"no token"'
        assert client.get("/runtime/default/user").json() == client.get("/_spark/user").json()
        assert client.get("/runtime/elsewhere/kv/dev?collection=c").status_code == 404
