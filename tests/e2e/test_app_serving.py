"""A hosted Spark app served by the real edge (`SPARK_APP_DIR`, started as `make run` starts the suite).

A small hand-made `dist/` (tests/unit/test_static_files.py makes it, with what must never be served beside
it); the Spark app the browser tests build is tests/e2e/test_spark_app*.py's. Envoy answers every file itself:
the services' request counters do not move while the files are served.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import brotli  # type: ignore[import-untyped]
import httpx
import pytest

from tests.conftest import FAILED_KEY
from tests.e2e.conftest import SUITE_KEY
from tests.fakes.github import FakeGitHub
from tests.support import raw_http
from tests.support.http import wait_for
from tests.support.redis_server import RedisServer
from tests.support.suite import LAUNCHER_COMMAND, ROOT, RunningSuite, suite_environment
from tests.unit.test_static_files import INDEX, SCRIPT, STYLE, make_dist

pytestmark = pytest.mark.e2e

IDENTITY = {"Accept-Encoding": "identity"}
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dist(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dist: Path
) -> Iterator[RunningSuite]:
    env = {"SPARK_APP_DIR": str(dist), "SPARK_APP_NAME": "static-test"}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = server.url
    running = RunningSuite.start(tmp_path_factory.mktemp(f"app-{request.param}"), env)
    request.node.stash[SUITE_KEY] = running
    yield running
    running.stop()


@pytest.fixture
def http(suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=suite.base_url, timeout=30.0) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


def _raw(suite: RunningSuite, target: str, headers: list[tuple[str, str]] | None = None) -> raw_http.RawResponse:
    return raw_http.send(suite.edge_address, "GET", target, headers or [], timeout_s=10)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/", "text/html; charset=utf-8", INDEX),
        ("/index.html", "text/html; charset=utf-8", INDEX),
        ("/assets/index-a1b2c3.js", "text/javascript; charset=utf-8", SCRIPT),
        ("/assets/index-d4e5f6.css", "text/css; charset=utf-8", STYLE),
        ("/favicon.svg", "image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg"/>'),
    ],
)
def test_each_file_with_its_content_type_byte_for_byte(
    http: httpx.Client, path: str, content_type: str, body: str
) -> None:
    response = http.get(path, headers=IDENTITY)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.text == body
    assert "content-encoding" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_binary_files_come_through_unchanged(http: httpx.Client, dist: Path) -> None:
    response = http.get("/assets/logo-0a1b.png", headers=IDENTITY)
    assert response.headers["content-type"] == "image/png"
    assert response.content == (dist / "assets" / "logo-0a1b.png").read_bytes()


def test_pages_are_revalidated_and_hashed_assets_kept_for_a_year(http: httpx.Client) -> None:
    for path in ("/", "/index.html", "/favicon.svg", "/a/client/route"):
        assert http.get(path).headers["cache-control"] == "no-cache", path
    for path in ("/assets/index-a1b2c3.js", "/assets/logo-0a1b.png"):
        assert http.get(path).headers["cache-control"] == IMMUTABLE, path


@pytest.mark.parametrize("encoding", ["identity", "gzip", "br"])
def test_if_none_match_with_the_etag_is_a_304_without_a_body(http: httpx.Client, encoding: str) -> None:
    headers = {"Accept-Encoding": encoding}
    first = http.get("/assets/index-a1b2c3.js", headers=headers)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}(-br|-gz)?"', etag)
    for validator in (etag, f"W/{etag}", f'"another", {etag}', "*"):
        again = http.get("/assets/index-a1b2c3.js", headers={**headers, "If-None-Match": validator})
        assert again.status_code == 304, validator
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == IMMUTABLE
        assert again.headers["vary"] == "Accept-Encoding"
        assert "location" not in again.headers and "content-length" not in again.headers
    changed = http.get("/assets/index-a1b2c3.js", headers={**headers, "If-None-Match": '"0123"'})
    assert changed.status_code == 200 and changed.text == SCRIPT
    # A client-side route revalidates its index.html too.
    page = http.get("/a/page", headers=headers)
    assert http.get("/another/page", headers={**headers, "If-None-Match": page.headers["etag"]}).status_code == 304


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip, deflate", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("deflate", None),
        ("identity", None),
    ],
)
def test_the_encoding_follows_accept_encoding_and_says_it_varies(
    suite: RunningSuite, accept: str, coding: str | None
) -> None:
    # Raw, so that no client decodes or asks for what it likes.
    response = _raw(suite, "/assets/index-a1b2c3.js", [("Accept-Encoding", accept)])
    assert response.status == 200
    assert response.headers.get("content-encoding") == coding
    assert response.headers["vary"] == "Accept-Encoding"
    decode = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}[coding]
    assert decode(response.body) == SCRIPT.encode()
    assert int(response.headers["content-length"]) == len(response.body)
    if coding:
        assert len(response.body) < len(SCRIPT) / 4
        assert response.headers["etag"].endswith({"br": '-br"', "gzip": '-gz"'}[coding])


def test_head_has_the_headers_of_get_and_no_body(suite: RunningSuite) -> None:
    for path in ("/", "/assets/index-a1b2c3.js", "/some/page"):
        get = raw_http.send(suite.edge_address, "GET", path, [("Accept-Encoding", "gzip")], timeout_s=10)
        head = raw_http.send(suite.edge_address, "HEAD", path, [("Accept-Encoding", "gzip")], timeout_s=10)
        assert head.status == 200 and head.body == b""
        for name in ("content-type", "content-length", "content-encoding", "etag", "cache-control", "vary"):
            assert head.headers[name] == get.headers[name], name


@pytest.mark.parametrize("path", ["/some/page", "/deep/a/b/c", "/page?with=query&x=%20", "/settings/", "/proxy.js"])
def test_client_side_routes_answer_the_index(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers=IDENTITY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == INDEX


def test_a_missing_asset_is_a_404(http: httpx.Client) -> None:
    response = http.get("/assets/index-000000.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"] == "no such file in the app"


@pytest.mark.parametrize(
    "target",
    [
        "/../outside.txt",
        "/assets/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/assets/%2E%2E/%2e%2e/outside.txt",
        "/..%2foutside.txt",
        "/leak.txt",
        "/linked-dir/outside.txt",
        "/dot-link.txt",
        "/.env",
        "/.git/config",
        "/proxy.js",
        "/package.json",
        "/assets/../proxy.js",
    ],
)
def test_nothing_outside_the_app_nor_its_server_files_is_ever_served(suite: RunningSuite, target: str) -> None:
    response = _raw(suite, target, [("Accept-Encoding", "identity")])
    assert response.status in (200, 400, 404), response
    for secret in (b"not the app's", b"SECRET=1", b"[core]", b"node server", b'"start"'):
        assert secret not in response.body, target
    if response.status == 200:
        assert response.body == INDEX.encode(), "a client-side route, at most"


def test_the_status_of_the_app(http: httpx.Client) -> None:
    response = http.get("/_spark/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "complete", "runtimePermanentName": "static-test"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_spark/nothing"),
        ("GET", "/_spark"),
        ("GET", "/v1/nothing"),
        ("GET", "/admin/nothing"),
        ("GET", "/runtime"),
        ("POST", "/some/page"),
    ],
)
def test_api_paths_no_route_serves_stay_json_404s(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 5
    # The API itself still answers beside the app.
    assert http.get("/_spark/kv").status_code == 200


def _handled(suite: RunningSuite) -> float:
    """Every RPC every service process has handled but health checks (Envoy's), from their /metrics."""
    ports = {
        json.loads(line)["metrics_port"]
        for path in (suite.directory / "logs").glob("*.log")
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("{") and '"metrics_port"' in line
    }
    assert len(ports) >= 6
    total = 0.0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for found in re.finditer(r"^grpc_server_handled_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
            if 'grpc_service="grpc.health.v1.Health"' not in found.group(1):
                total += float(found.group(2))
    return total


def test_the_files_never_reach_a_python_service(suite: RunningSuite, http: httpx.Client) -> None:
    http.post("/_spark/kv/counted", content='"x"')
    assert wait_for(lambda: _handled(suite) > 0)
    before = _handled(suite)
    for _ in range(20):
        for path in ("/", "/assets/index-a1b2c3.js", "/never/python", "/_spark/status", "/assets/missing.js"):
            http.get(path, headers={"Accept-Encoding": "br"})
    assert _handled(suite) == before
    # The access log agrees: Envoy answered itself, no upstream.
    log = Path(suite.env["SPARK_EDGE_ACCESS_LOG"])
    assert wait_for(lambda: log.read_text().count('"/never/python"') == 20)
    entries = [json.loads(line) for line in log.read_text().splitlines() if '"/never/python"' in line]
    assert all(e["upstream"] is None and e["details"] == "direct_response" for e in entries)


def test_an_app_over_the_file_limit_stops_the_launcher_naming_the_setting(tmp_path: Path, dist: Path) -> None:
    env, _ = suite_environment(tmp_path, {"SPARK_APP_DIR": str(dist), "SPARK_APP_MAX_FILES": "2"})
    result = subprocess.run(
        LAUNCHER_COMMAND, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SPARK_APP_MAX_FILES=2" in result.stderr and f"SPARK_APP_DIR={dist}" in result.stderr
    assert "started " not in result.stdout + result.stderr, "nothing was started"


@pytest.fixture(scope="module")
def signed_in_only(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Iterator[RunningSuite]:
    """The app for people signed in only, deployed in keys mode: page loads go to the access service."""
    with FakeGitHub() as github:
        env = {
            **github.env(),
            "SPARK_ACCESS_MODE": "keys",
            "ADMIN_TOKEN": "static-admin-token",
            "SPARK_APP_ACCESS": "signed-in",
            "SPARK_APP_DIR": str(dist),
        }
        running = RunningSuite.start(tmp_path_factory.mktemp("app-signed-in"), env)
        yield running
        running.stop()


@pytest.mark.parametrize("path", ["/", "/index.html", "/deep/page?x=1&y=%20z", "/proxy.js"])
def test_a_page_load_of_an_app_for_people_signed_in_goes_to_sign_in(signed_in_only: RunningSuite, path: str) -> None:
    login = "/_spark/auth/login?return_to=" + quote(path, safe="")
    for method in ("GET", "HEAD"):
        response = raw_http.send(signed_in_only.edge_address, method, path, timeout_s=10)
        assert response.status == 302, (method, response)
        assert response.headers["location"] == login
        if method == "HEAD":
            assert response.body == b""


def test_the_files_of_an_app_for_people_signed_in_stay_public_and_envoys(signed_in_only: RunningSuite) -> None:
    with httpx.Client(base_url=signed_in_only.base_url, timeout=10) as http:
        script = http.get("/assets/index-a1b2c3.js", headers=IDENTITY)
        assert script.status_code == 200 and script.text == SCRIPT
        assert script.headers["cache-control"] == IMMUTABLE
        assert http.get("/assets/nothing.js").status_code == 404
        assert http.get("/_spark/status").json()["status"] == "complete"
        # The API still wants a credential.
        assert http.get("/_spark/kv").status_code == 401


def test_a_public_apps_visitors_reach_the_services_without_a_credential_in_keys_mode(
    tmp_path: Path, dist: Path
) -> None:
    """Sign-in on and the app public, as compose and Kubernetes deploy it: the edge lets the app's calls with
    no credential through to the services, which admit the visitor as anonymous; other routes still need one."""
    with FakeGitHub() as github:
        env = {
            **github.env(),
            "SPARK_ACCESS_MODE": "keys",
            "ADMIN_TOKEN": "static-admin-token",
            "SPARK_APP_ACCESS": "public",
            "SPARK_APP_DIR": str(dist),
        }
        with RunningSuite.start(tmp_path, env) as running, httpx.Client(base_url=running.base_url, timeout=10) as http:
            user = http.get("/_spark/user")
            assert user.status_code == 200, user.text
            assert user.json()["login"] == "anonymous" and user.json()["isOwner"] is False
            assert http.get("/_spark/kv").status_code == 200
            assert http.get("/v1/models").status_code == 401
            assert http.get("/admin/keys").status_code == 401
            assert http.get("/").text == INDEX
