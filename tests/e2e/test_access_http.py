"""Identity, API keys, the admin token, nonces and rate limits, end to end through the edge.

Every service admits the calls it serves itself (services/access/checkpoint.py). The `keyed` suite
runs as a deployment would: Redis, two access processes, API keys required, an admin token, a nonce
required on one method, a small limit on the `spark` route class, and the tests' own address
(127.0.0.1) as a trusted proxy; a client connecting from 127.0.0.2 is one the edge does not trust.
The shared `suite` fixture (development mode, no admin token) covers the embedded default.
tests/e2e/test_access_direct.py calls the services' own ports, bypassing the edge.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from spark.access.v1 import access_pb2, access_pb2_grpc

from edge.routes import TRANSCODED_SERVICES
from services.access.gate import API_KEY_OR_ADMIN_TOKEN_REQUIRED
from services.access.policy import ROUTE_CLASSES
from services.common.descriptors import default_descriptor_path
from services.common.routes import http_routes, load_descriptor_pool
from tests.support import raw_http
from tests.support.http import api_error, error_shape, in_threads, json_error, wait_for
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite
from tests.support.tools import venv_tool

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ADMIN = "e2e-admin-token"
SPARK_LIMIT = 25
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
PUBLIC_PATHS = {"/healthz", "/about"}
# Sign-in's routes take no credential (a visitor signs in through them); this suite has no SPARK_AUTH, so the
# access service answers that sign-in is off.
SIGN_IN_PATHS = {"/_spark/auth/login", "/_spark/auth/callback", "/_spark/auth/logout", "/_spark/auth/page"}


def limits_file(directory: Path) -> Path:
    path = directory / "limits.toml"
    lines = ["auth_failures_per_address = 100000"]
    for name in ROUTE_CLASSES:
        per_user = SPARK_LIMIT if name == "spark" else 1_000_000
        lines += [f"[classes.{name}]", f"per_user = {per_user}", "per_address = 1000000", 'window = "day"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def keyed_environment(directory: Path, redis_url: str) -> dict[str, str]:
    """A suite in keys mode on `redis_url`, with the limits of `limits_file` and the tests' address as a proxy."""
    return {
        "REDIS_URL": redis_url,
        "SPARK_ACCESS_MODE": "keys",
        "SPARK_ACCESS_LIMITS": str(limits_file(directory)),
        "SPARK_ACCESS_NONCE_ROUTES": "GetPolicy",
        "SPARK_ACCESS_KEY_CACHE_S": "0",
        "ADMIN_TOKEN": ADMIN,
        "ALLOWED_ORIGINS": "http://app.example",
        # As if the tests were a reverse proxy in front of the edge.
        "SPARK_TRUSTED_PROXIES": "127.0.0.1",
    }


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RunningSuite]:
    directory = tmp_path_factory.mktemp("keyed")
    env = {
        **keyed_environment(directory, f"{redis_server.url.rsplit('/', 1)[0]}/14"),
        # Two access processes count one limit (test_two_access_instances_on_one_redis_admit_exactly_the_limit).
        "SPARK_ACCESS_WORKERS": "2",
    }
    running = RunningSuite.start(directory / "suite", env)
    yield running
    running.stop()


@pytest.fixture
def edge(keyed: RunningSuite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed.base_url, timeout=30.0) as client:
        yield client


def new_key(edge: httpx.Client, login: str, label: str = "", **user: Any) -> tuple[str, dict[str, Any]]:
    request = {"user": {"login": login, **user}, "label": label}
    created = edge.post("/admin/keys", headers={"x-admin-token": ADMIN}, json=request)
    assert created.status_code == 200, created.text
    body = created.json()
    return body["secret"], body["key"]


def refused(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    body = json_error(response, status, "")
    assert body["details"][0]["reason"] == reason, body
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    return body


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def test_no_route_in_the_descriptor_set_is_reachable_without_a_key(keyed: RunningSuite, edge: httpx.Client) -> None:
    routes = http_routes(load_descriptor_pool(default_descriptor_path()), TRANSCODED_SERVICES)
    assert len(routes) > 30
    agent = f"no-key-{uuid.uuid4().hex}"
    refusals = []
    for route in routes:
        path = concrete(route.path)
        response = edge.request(route.method, path, content=b"{}", headers={"user-agent": agent})
        if path in PUBLIC_PATHS:
            assert response.status_code == 200, (route, response.text)
        elif path in SIGN_IN_PATHS:
            assert api_error(response, 400, "sign-in is off").reason == "SIGN_IN_DISABLED", (route, response.text)
        else:
            # No credential at all: refused at the edge, admin routes included, before the body is read; in
            # the route's error shape, whose reason Anthropic's has no place for.
            error = api_error(response, 401, API_KEY_OR_ADMIN_TOKEN_REQUIRED)
            assert error.reason == ("API_KEY_MISSING" if error.shape != "anthropic" else None), (route, error)
            if error.shape == "suite":
                assert error.body["details"][0]["domain"] == "edge.spark", error.body
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value, (route, name)
            refusals.append((route.method, path))
    assert {"openai", "anthropic", "suite"} <= {error_shape(path) for _, path in refusals}
    # Each refusal is the edge's own (its credential check's), whatever shape the body has: the edge's log
    # names the check, and no service saw the request.
    access_log = Path(keyed.env["SPARK_EDGE_ACCESS_LOG"])

    def logged() -> list[dict[str, Any]]:
        lines = access_log.read_text(encoding="utf-8").splitlines()
        return [entry for line in lines if agent in line and (entry := json.loads(line))["status"] == 401]

    assert wait_for(lambda: len(logged()) >= len(refusals)), (len(logged()), len(refusals))
    assert sorted((e["method"], e["path"]) for e in logged()) == sorted(refusals)
    assert all(e["details"].startswith("rbac_access_denied") for e in logged()), logged()
    # A path no route knows reaches no service: Envoy answers 404 itself.
    assert edge.get("/no/such/route").status_code == 404


def test_native_grpc_through_the_edge_needs_a_key_too(keyed: RunningSuite, edge: httpx.Client) -> None:
    call = [venv_tool("grpcurl"), "-plaintext", "-d", "{}", keyed.edge_address, "spark.access.v1.AccessService/GetUser"]
    anonymous = subprocess.run(call, capture_output=True, text=True, timeout=30, check=False)
    assert anonymous.returncode != 0 and "Unauthenticated" in anonymous.stderr
    secret, _ = new_key(edge, "grpc-user")
    forged = ["-H", f"x-api-key: {secret}", "-H", "x-spark-user: mallory"]
    answered = subprocess.run([*call[:2], *forged, *call[2:]], capture_output=True, text=True, timeout=30, check=False)
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["id"] == "grpc-user"
    # Health and reflection stay open for operators.
    listed = subprocess.run(
        [venv_tool("grpcurl"), "-plaintext", keyed.edge_address, "list"], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0 and "spark.access.v1.AccessService" in listed.stdout


def test_a_key_is_its_users_identity_and_a_forged_identity_header_is_ignored(edge: httpx.Client) -> None:
    secret, key = new_key(edge, "ada", email="ada@example.com", avatar_url="https://img.example/ada.png")
    assert key["user"]["id"] == "ada" and secret.startswith(f"spk_{key['id']}_")
    for headers in ({"authorization": f"Bearer {secret}"}, {"x-api-key": secret}):
        response = edge.get("/_spark/user", headers={**headers, "x-spark-user": "mallory"})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "id": "ada",
            "login": "ada",
            "email": "ada@example.com",
            "avatarUrl": "https://img.example/ada.png",
            "isOwner": False,
        }
    refused(edge.get("/_spark/user", headers={"x-spark-user": "ada"}), 401, "API_KEY_MISSING")


def test_a_key_for_an_existing_login_never_silently_changes_its_profile(edge: httpx.Client) -> None:
    admin = {"x-admin-token": ADMIN}
    secret, _ = new_key(edge, "grace", email="grace@example.com")
    _, again = new_key(edge, "grace", label="phone")  # only the login: the user as stored
    assert again["user"]["email"] == "grace@example.com"
    taken = edge.post("/admin/keys", headers=admin, json={"user": {"login": "grace", "email": "mallory@example.com"}})
    body = json_error(taken, 409, "exists with another email")
    details = {d["@type"].rpartition(".")[2]: d for d in body["details"]}
    assert details["ErrorInfo"]["reason"] == "USER_EXISTS"
    assert [v["field"] for v in details["BadRequest"]["fieldViolations"]] == ["user.email"]
    assert edge.get("/_spark/user", headers={"x-api-key": secret}).json()["email"] == "grace@example.com"
    # Asked for explicitly, the profile changes for every key of the user.
    update = {"user": {"login": "grace", "email": "grace@new.example"}, "update_user": True}
    assert edge.post("/admin/keys", headers=admin, json=update).status_code == 200
    assert edge.get("/_spark/user", headers={"x-api-key": secret}).json()["email"] == "grace@new.example"


def test_wrong_and_revoked_keys_are_refused(edge: httpx.Client) -> None:
    refused(edge.get("/_spark/kv", headers={"x-api-key": "spk_0123456789abcdef_" + "x" * 43}), 401, "API_KEY_INVALID")
    refused(edge.get("/_spark/kv", headers={"authorization": "Bearer not-a-key"}), 401, "API_KEY_INVALID")
    secret, key = new_key(edge, "temp")
    assert edge.get("/_spark/kv", headers={"x-api-key": secret}).status_code == 200
    listed = edge.get("/admin/keys", headers={"x-admin-token": ADMIN}).json()["keys"]
    assert key["id"] in [k["id"] for k in listed]
    assert secret not in json.dumps(listed)
    assert edge.delete(f"/admin/keys/{key['id']}", headers={"x-admin-token": ADMIN}).status_code == 200
    refused(edge.get("/_spark/kv", headers={"x-api-key": secret}), 401, "API_KEY_INVALID")
    json_error(edge.delete(f"/admin/keys/{key['id']}", headers={"x-admin-token": ADMIN}), 404, "not found")


def test_admin_routes_need_the_admin_token(edge: httpx.Client) -> None:
    secret, _ = new_key(edge, "not-admin")
    user = {"x-api-key": secret}
    refused(edge.get("/admin/keys", headers=user), 401, "ADMIN_TOKEN_INVALID")
    refused(edge.get("/admin/keys", headers={**user, "x-admin-token": "guess"}), 401, "ADMIN_TOKEN_INVALID")
    refused(edge.post("/admin/backup", headers=user), 401, "ADMIN_TOKEN_INVALID")
    refused(edge.post("/v1/prompts", headers=user, json={"name": "x"}), 401, "ADMIN_TOKEN_INVALID")
    assert edge.get("/v1/prompts", headers=user).status_code == 200  # reading prompts is not admin
    assert edge.get("/admin/keys", headers={"x-admin-token": ADMIN}).status_code == 200


def test_a_replayed_nonce_is_refused_and_a_route_can_require_one(edge: httpx.Client) -> None:
    secret, _ = new_key(edge, "nonce-user")
    headers = {"x-api-key": secret, "x-nonce": "e2e-nonce-0001"}
    assert edge.get("/_spark/kv", headers=headers).status_code == 200
    refused(edge.get("/_spark/kv", headers=headers), 409, "NONCE_REPLAYED")
    refused(edge.get("/_spark/kv", headers={**headers, "x-nonce": "bad nonce"}), 400, "NONCE_INVALID")
    admin = {"x-admin-token": ADMIN}
    refused(edge.get("/admin/policy", headers=admin), 428, "NONCE_REQUIRED")
    policy = edge.get("/admin/policy", headers={**admin, "x-nonce": "e2e-nonce-0002"})
    assert policy.status_code == 200, policy.text
    assert policy.json()["mode"] == "keys"
    assert policy.json()["nonceRoutes"] == ["GetPolicy"]


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"], ids=["trusted-proxy", "untrusted-peer"])
def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(keyed: RunningSuite, source: str) -> None:
    """An anonymous caller's nonces are remembered per address: a nonce replayed from another forwarded
    address is fresh only if the service took that address as the client's. The edge's peer is the
    connection's source: 127.0.0.1 is in SPARK_TRUSTED_PROXIES, 127.0.0.2 is not."""
    nonce = f"xff-{uuid.uuid4().hex}"
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=keyed.base_url, transport=transport, timeout=30.0) as client:

        def about(forwarded: str) -> httpx.Response:
            return client.get("/about", headers={"x-forwarded-for": forwarded, "x-nonce": nonce})

        assert about("203.0.113.1").status_code == 200
        if source in keyed.env["SPARK_TRUSTED_PROXIES"].split(","):
            assert about("203.0.113.2").status_code == 200
            refused(about("203.0.113.1"), 409, "NONCE_REPLAYED")
        else:
            refused(about("203.0.113.2"), 409, "NONCE_REPLAYED")


def test_two_access_instances_on_one_redis_admit_exactly_the_limit(keyed: RunningSuite, edge: httpx.Client) -> None:
    assert {"access", "access-2"} <= set(keyed.child_pids())
    secret, _ = new_key(edge, "burst")

    def call(client: httpx.Client, _: int) -> httpx.Response:
        return client.get("/_spark/user", headers={"x-api-key": secret})

    responses = in_threads(keyed.base_url, call, range(SPARK_LIMIT + 20), workers=16)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == SPARK_LIMIT, statuses
    assert statuses.count(429) == 20
    for response in responses:
        if response.status_code == 200:
            # An allowed call costs no initial-metadata send: no X-RateLimit-* on it.
            assert not [name for name in response.headers if name.startswith("x-ratelimit-")], response.headers
            continue
        body = refused(response, 429, "RATE_LIMITED")
        assert "25 requests per day on spark routes" in body["message"]
        assert response.headers["x-ratelimit-limit"].split(",")[0] == str(SPARK_LIMIT)
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert 0 < int(response.headers["x-ratelimit-reset"]) <= 86400
        assert 0 < int(response.headers["retry-after"]) <= 86400
    # Another user's bucket is untouched.
    other, _ = new_key(edge, "calm")
    assert edge.get("/_spark/user", headers={"x-api-key": other}).status_code == 200


def test_headers_just_under_the_limits_are_served_or_a_clean_431_never_a_500(
    keyed: RunningSuite, edge: httpx.Client
) -> None:
    """The door lets in 100 header lines and 60 KiB; the headers the edge adds (the internal token, the
    client's address, tracing) can push a request that got in over those limits, which must be a clean 431."""
    secret, _ = new_key(edge, "many-headers")
    key: raw_http.Header = ("X-Api-Key", secret)

    def sent(extra: list[raw_http.Header]) -> raw_http.RawResponse:
        # raw_http adds Host and Connection.
        return raw_http.send(keyed.edge_address, "GET", "/_spark/user", [key, *extra])

    def answer(response: raw_http.RawResponse) -> str:
        """Returns "ok", or the reason of a JSON 431 in the one error shape."""
        if response.status == 200:
            assert response.json()["id"] == "many-headers"
            return "ok"
        assert response.status == 431, (response.status, response.body[:300])
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["code"] == 8 and body["message"], body
        return str(body["details"][0]["reason"])

    by_count = {n: answer(sent([(f"X-H{i}", "v") for i in range(n - 3)])) for n in (80, *range(93, 104))}
    assert by_count[80] == "ok"
    assert {by_count[n] for n in range(93, 101)} <= {"ok", "request_headers_too_large"}
    assert {by_count[n] for n in range(101, 104)} == {"http1.too_many_headers"}
    # The same for size: a sweep across the edge's additions below the 60 KiB at the door.
    by_size = {size: answer(sent([("X-Big", "a" * size)])) for size in range(60 * 1024 - 600, 60 * 1024 + 40, 40)}
    assert set(by_size.values()) <= {"ok", "request_headers_too_large", "http1.headers_too_large"}
    # The sweep crosses a limit: served below it, a clean 431 above.
    assert "ok" in by_size.values() and set(by_size.values()) != {"ok"}, by_size


def test_native_grpc_just_under_the_header_limit_is_resource_exhausted_never_unknown(
    keyed: RunningSuite, edge: httpx.Client
) -> None:
    """The same over-full request as a gRPC call: served, or RESOURCE_EXHAUSTED saying why (where the edge's
    own headers push it over), or refused at the door; never UNKNOWN and nothing."""
    secret, _ = new_key(edge, "many-metadata")
    outcomes: dict[int, str] = {}
    with grpc.insecure_channel(keyed.edge_address) as channel:
        stub = access_pb2_grpc.AccessServiceStub(channel)
        for extra in range(84, 100):
            metadata = [("x-api-key", secret), *((f"x-h{i}", "v") for i in range(extra))]
            try:
                stub.GetUser(access_pb2.GetUserRequest(), metadata=metadata, timeout=30)
                outcomes[extra] = "ok"
            except grpc.RpcError as error:
                outcomes[extra] = f"{error.code().name}: {error.details()}"
    assert outcomes[84] == "ok"
    # The sweep crosses a limit: served below it, refused above.
    assert set(outcomes.values()) != {"ok"}, outcomes
    too_large = [o for o in outcomes.values() if o.startswith("RESOURCE_EXHAUSTED")]
    assert all("pass its limits of 100 headers" in o for o in too_large), outcomes
    # The rest is served, or refused at the door (HTTP/2 resets a stream with too many headers).
    door = [o for o in outcomes.values() if o != "ok" and not o.startswith("RESOURCE_EXHAUSTED")]
    assert all(o.startswith("INTERNAL") and "RST_STREAM" in o for o in door), outcomes


def test_the_runtime_load_report_is_a_metric_and_a_log_event_with_the_user(
    keyed: RunningSuite, edge: httpx.Client
) -> None:
    secret, _ = new_key(edge, "loader")
    agent = f"loader-{uuid.uuid4().hex}"
    headers = {"x-api-key": secret, "user-agent": agent}
    report = {"url": "https://app.example/page?token=hidden#frag", "load_ms": 812.5}
    assert edge.post("/_spark/loaded", headers=headers, json=report).status_code == 200
    json_error(edge.post("/_spark/loaded", headers=headers, json={"url": "u", "load_ms": -1}), 400, "not valid")
    logs = Path(keyed.env["SPARK_LOG_DIR"])

    def logged() -> list[dict[str, Any]]:
        lines = [line for p in logs.glob("access*.log") for line in p.read_text().splitlines()]
        return [json.loads(line) for line in lines if '"client_loaded"' in line and '"loader"' in line]

    assert wait_for(lambda: bool(logged()))
    (event,) = logged()
    assert event["url"] == "https://app.example/page" and event["load_ms"] == 812.5 and event["user"] == "loader"
    # Each access process serves its own /metrics; their ports are in their start-up log lines.
    ports = [
        json.loads(line)["metrics_port"]
        for path in logs.glob("access*.log")
        for line in path.read_text().splitlines()
        if '"metrics_port"' in line
    ]
    assert len(ports) == 2
    observed = 0.0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        found = re.search(r"^spark_client_load_seconds_count (\S+)$", text, re.MULTILINE)
        observed += float(found.group(1)) if found else 0.0
    assert observed == 1.0
    # The edge logs the request, not the user: it no longer knows who the caller is.
    access_log = Path(keyed.env["SPARK_EDGE_ACCESS_LOG"])
    assert wait_for(lambda: agent in access_log.read_text())
    entries = [json.loads(line) for line in access_log.read_text().splitlines() if agent in line]
    assert [(e["path"], e["method"], e["status"]) for e in entries] == [
        ("/_spark/loaded", "POST", 200),
        ("/_spark/loaded", "POST", 400),
    ]
    assert all("trace_id" in e and "user" not in e for e in entries)


def test_preflights_pass_without_a_key_and_refusals_carry_cors_headers(edge: httpx.Client) -> None:
    origin = {"origin": "http://app.example"}
    preflight = edge.options(
        "/_spark/kv/x",
        headers={**origin, "access-control-request-method": "PUT", "access-control-request-headers": "x-api-key"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    denied = edge.get("/_spark/kv", headers=origin)
    refused(denied, 401, "API_KEY_MISSING")
    assert denied.headers["access-control-allow-origin"] == "http://app.example"


# --- the embedded default: development mode, no admin token --------------------------------------------


def test_development_mode_serves_the_owner_and_keeps_admin_routes_closed(http: httpx.Client) -> None:
    user = http.get("/_spark/user")
    assert user.status_code == 200
    assert user.json() == {"id": "owner", "login": "owner", "email": "", "avatarUrl": "", "isOwner": True}
    assert "x-ratelimit-limit" not in user.headers
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/backup"), ("GET", "/v1/usage")):
        body = json_error(http.request(method, path, headers={"x-admin-token": "anything"}), 403, "no ADMIN_TOKEN")
        assert body["details"][0]["reason"] == "ADMIN_DISABLED"
    assert http.post("/_spark/loaded", json={"url": "http://localhost:5173/", "load_ms": 120}).status_code == 200


def test_with_the_access_service_stopped_the_other_services_still_admit_and_refuse(
    keyed: RunningSuite, edge: httpx.Client
) -> None:
    """No route waits for the access service any more: kv checks keys itself, so with every access process
    stopped a key is still served and a missing or wrong one still refused."""
    secret, _ = new_key(edge, "while-down")
    wrong_key = secret[:-1] + ("y" if secret.endswith("x") else "x")
    pids = [pid for name, pid in keyed.child_pids().items() if name.startswith("access")]
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        served = edge.put("/_spark/kv/while-down", headers={"x-api-key": secret}, content=b"1", timeout=10.0)
        missing = edge.get("/_spark/kv/while-down", timeout=10.0)
        wrong = edge.get("/_spark/kv/while-down", headers={"x-api-key": wrong_key}, timeout=10.0)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert served.status_code == 200, served.text
    refused(missing, 401, "API_KEY_MISSING")
    refused(wrong, 401, "API_KEY_INVALID")
    assert edge.get("/_spark/kv/while-down", headers={"x-api-key": secret}).content == b"1"
