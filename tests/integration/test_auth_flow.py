"""Sign-in with GitHub on real servers: the access and kv services (production interceptors, keys mode, one
real store: SQLite and Redis) against tests/fakes/github.py, called as the edge calls them (the suite's
token, the client's address, the original path and method, the browser's cookies and Origin).

The whole web flow, the single-use state bound to its browser, same-origin `return_to` only, the cookie's
attributes, hash-only storage, logout, expiry, the admin's revocation, the Origin check of cookie writes,
and each SPARK_APP_ACCESS mode."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import grpc
import httpx
import orjson
import pytest
from google.api import httpbody_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from spark.access.v1 import access_pb2, access_pb2_grpc
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from services.access.config import read_config as read_access_config
from services.access.keys import KeyStore
from services.access.policy import ROUTE_CLASSES
from services.access.server import build_server as build_access
from services.access.sessions import LOGINS, SESSION_USERS, SESSIONS, STATES, SessionBook
from services.access.users import User
from services.common.identity import CLIENT_ADDRESS_HEADER, INTERNAL_HEADER
from services.common.server import RunningServer
from services.common.store import Store
from services.kv.config import read_config as read_kv_config
from services.kv.server import build_server as build_kv
from tests.fakes.github import CLIENT_SECRET, HUBOT, OCTOCAT, FakeGitHub
from tests.integration.conftest import StoreFactory

ADMIN_TOKEN = "auth-flow-admin-token"
INTERNAL_TOKEN = "auth-flow-internal-token-" + "0123456789abcdef" * 2
PUBLIC = "http://app.example:8080"
APP = "notes"
INDEX = b"<!doctype html><title>notes</title><div id=root></div>"
TTL_S = 3600
Metadata = Sequence[tuple[str, str]]


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@dataclass
class Suite:
    access: access_pb2_grpc.AccessServiceStub
    kv: kv_pb2_grpc.KvServiceStub
    store: Store
    github: FakeGitHub

    def browser(self, address: str = "203.0.113.7") -> Browser:
        return Browser(self, address)


Start = Callable[..., Awaitable[Suite]]


def _limits(sign_ins: int = 1000) -> str:
    tables = [f'[classes.{name}]\nper_user = 100000\nper_address = 100000\nwindow = "day"\n' for name in ROUTE_CLASSES]
    return f"sign_ins_per_address = {sign_ins}\n\n" + "\n".join(tables)


@pytest.fixture
async def start(store_factory: StoreFactory, tmp_path: Path, github: FakeGitHub) -> AsyncIterator[Start]:
    """Starts an access and a kv server on one store with sign-in pointed at the fake GitHub."""
    running: list[RunningServer] = []
    channels: list[grpc.aio.Channel] = []
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "index.html").write_bytes(INDEX)
    github.requests.clear()

    async def start_suite(access: str = "public", owners: str = "octocat", sign_ins: int = 1000, **env: str) -> Suite:
        limits = tmp_path / f"limits-{len(running)}.toml"
        limits.write_text(_limits(sign_ins), encoding="utf-8")
        settings = {
            "SPARK_DATA_DIR": str(tmp_path),
            "SPARK_ACCESS_MODE": "keys",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "SPARK_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "SPARK_ACCESS_LIMITS": str(limits),
            "SPARK_ACCESS_KEY_CACHE_S": "0",
            "SPARK_APP_NAME": APP,
            "SPARK_APP_ACCESS": access,
            "SPARK_OWNERS": owners,
            "SPARK_SESSION_TTL_S": str(TTL_S),
            "SPARK_APP_SNAPSHOT": str(snapshot),
            **github.env(PUBLIC),
            **env,
        }
        store = store_factory()
        access_server = await build_access(read_access_config({**settings, "SPARK_ACCESS_PORT": "0"}), store)
        kv_server = await build_kv(read_kv_config({**settings, "SPARK_KV_PORT": "0"}), store)
        running.extend((access_server, kv_server))
        access_channel = grpc.aio.insecure_channel(f"127.0.0.1:{access_server.port}")
        kv_channel = grpc.aio.insecure_channel(f"127.0.0.1:{kv_server.port}")
        channels.extend((access_channel, kv_channel))
        return Suite(
            access_pb2_grpc.AccessServiceStub(access_channel), kv_pb2_grpc.KvServiceStub(kv_channel), store, github
        )

    yield start_suite
    for channel in channels:
        await channel.close()
    for server in running:
        await server.stop()


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def cookies(self) -> list[str]:
        return [value for key, value in self.headers if key == "set-cookie"]


@dataclass
class Browser:
    """A browser behind the edge: what the edge would send each service for it, and its cookie jar."""

    suite: Suite
    address: str
    # name -> (value, path)
    jar: dict[str, tuple[str, str]] = field(default_factory=dict)

    def metadata(self, path: str, method: str, *, origin: str | None = PUBLIC, **extra: str) -> list[tuple[str, str]]:
        metadata = [
            (INTERNAL_HEADER, INTERNAL_TOKEN),
            (CLIENT_ADDRESS_HEADER, self.address),
            ("x-envoy-original-path", path),
            ("x-spark-original-method", method),
        ]
        cookies = "; ".join(f"{n}={v}" for n, (v, p) in self.jar.items() if path.startswith(p))
        if cookies:
            metadata.append(("cookie", cookies))
        if origin is not None and method not in ("GET", "HEAD"):
            metadata.append(("origin", origin))
        metadata += [(key.replace("_", "-"), value) for key, value in extra.items()]
        return metadata

    def keep(self, answer: Answer) -> None:
        for cookie in answer.cookies():
            pair, *attributes = cookie.split("; ")
            name, _, value = pair.partition("=")
            path = next((a[5:] for a in attributes if a.startswith("Path=")), "/")
            if "Max-Age=0" in attributes:
                self.jar.pop(name, None)
            else:
                self.jar[name] = (value, path)

    async def call(self, rpc: Callable[..., grpc.aio.UnaryUnaryCall], request: object, metadata: Metadata) -> Answer:
        call = rpc(request, metadata=metadata)
        reply = await call
        headers = [(k, v) for k, v in await call.initial_metadata() if isinstance(v, str)]
        status = int(next((v for k, v in headers if k == "x-http-status"), "200"))
        body = reply.data if isinstance(reply, httpbody_pb2.HttpBody) else b""
        answer = Answer(status, headers, body)
        self.keep(answer)
        return answer

    async def login(self, return_to: str = "/") -> Answer:
        path = f"/_spark/auth/login?return_to={quote(return_to, safe='')}"
        return await self.call(
            self.suite.access.StartSignIn,
            access_pb2.StartSignInRequest(return_to=return_to),
            self.metadata(path, "GET"),
        )

    async def callback(self, query: dict[str, str]) -> Answer:
        path = "/_spark/auth/callback?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return await self.call(
            self.suite.access.FinishSignIn, access_pb2.FinishSignInRequest(**query), self.metadata(path, "GET")
        )

    async def at_github(self, location: str, login: str | None = None) -> dict[str, str]:
        """Follows the redirect to GitHub's authorization page; the query GitHub sends back to the callback."""
        url = location + (f"&login={login}" if login else "")
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.status_code == 302, response.text
        back = response.headers["location"]
        assert back.startswith(f"{PUBLIC}/_spark/auth/callback?")
        return {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}

    async def sign_in(self, login: str = "octocat", return_to: str = "/") -> Answer:
        started = await self.login(return_to)
        assert started.status == 302
        location = started.header("location")
        assert location is not None
        return await self.callback(await self.at_github(location, login))

    async def user(self, path: str = "/_spark/user") -> access_pb2.User:
        return await self.suite.access.GetUser(access_pb2.GetUserRequest(), metadata=self.metadata(path, "GET"))

    async def put(self, key: str, value: bytes, *, origin: str | None = PUBLIC, **extra: str) -> None:
        await self.suite.kv.SetSparkValue(
            kv_pb2.SetSparkValueRequest(key=key, body=httpbody_pb2.HttpBody(content_type="text/plain", data=value)),
            metadata=self.metadata(f"/_spark/kv/{key}", "POST", origin=origin, **extra),
        )

    async def get(self, key: str) -> bytes:
        reply = await self.suite.kv.GetSparkValue(
            kv_pb2.GetSparkValueRequest(key=key), metadata=self.metadata(f"/_spark/kv/{key}", "GET")
        )
        return bytes(reply.data)

    async def logout(self, *, origin: str | None = PUBLIC, return_to: str = "") -> Answer:
        return await self.call(
            self.suite.access.SignOut,
            access_pb2.SignOutRequest(return_to=return_to),
            self.metadata("/_spark/auth/logout", "POST", origin=origin),
        )

    async def page(self, path: str) -> Answer:
        return await self.call(
            self.suite.access.OpenPage,
            access_pb2.OpenPageRequest(path=path),
            self.metadata(f"/_spark/auth/page?path={quote(path, safe='')}", "GET"),
        )


def refusal(caught: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[grpc.StatusCode, str]:
    status = rpc_status.from_call(caught.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details)
    return caught.value.code(), info.reason


async def refused(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return refusal(caught)


ADMIN = (("x-admin-token", ADMIN_TOKEN),)


# --- the web flow --------------------------------------------------------------------------------------------


async def test_the_web_flow_signs_in_the_github_user_with_a_session_cookie(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    started = await browser.login("/notes/7?tab=2#top")
    # To GitHub's authorization page with the OAuth App's parameters and a state bound to this browser.
    assert started.status == 302
    location = urlsplit(started.header("location") or "")
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{suite.github.url}/login/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query.keys() == {"client_id", "redirect_uri", "scope", "state"}
    assert query["client_id"] == suite.github.client_id
    assert query["redirect_uri"] == f"{PUBLIC}/_spark/auth/callback"
    assert query["scope"] == "read:user user:email"
    assert browser.jar["spark_auth_state"] == (query["state"], "/_spark/auth/callback")
    assert started.header("cache-control") == "no-store"

    back = await browser.at_github(started.header("location") or "")
    assert back["state"] == query["state"]
    finished = await browser.callback(back)
    assert finished.status == 302
    assert finished.header("location") == "/notes/7?tab=2#top"
    session_cookie = next(c for c in finished.cookies() if c.startswith("spark_session="))
    name_value, *attributes = session_cookie.split("; ")
    assert attributes == ["Path=/", f"Max-Age={TTL_S}", "HttpOnly", "SameSite=Lax"]  # no Secure over http
    assert len(name_value.partition("=")[2]) == 43
    assert "spark_auth_state" not in browser.jar  # cleared once used

    user = await browser.user()
    assert (user.id, user.login, user.email, user.is_owner) == ("583231", "octocat", "octocat@github.com", True)
    assert user.avatar_url == OCTOCAT.avatar_url

    # What went to GitHub: the code exchange (the secret only there, JSON asked for), then the profile.
    exchange, profile = (r for r in suite.github.requests if r.method == "POST" or r.path == "/api/user")
    assert exchange.path == "/login/oauth/access_token"
    assert exchange.headers["accept"] == "application/json"
    assert exchange.form.keys() == {"client_id", "client_secret", "code", "redirect_uri"}
    assert exchange.form["code"] == back["code"]
    assert profile.headers["authorization"].startswith("Bearer gho_")
    for request in suite.github.requests:
        if request is not exchange:
            assert CLIENT_SECRET not in repr(request)


async def test_the_primary_email_comes_from_user_emails_when_the_profile_hides_it(start: Start) -> None:
    suite = await start(owners="octocat,HUBOT")
    browser = suite.browser()
    await browser.sign_in("hubot")
    user = await browser.user()
    assert (user.login, user.email, user.is_owner) == ("Hubot", "hubot@example.com", True)
    assert "/api/user/emails" in suite.github.paths()


async def test_a_state_is_used_once_and_only_by_the_browser_that_started_it(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    started = await browser.login()
    back = await browser.at_github(started.header("location") or "")
    # Someone else's browser with this callback URL (a login CSRF): the state is not its own.
    assert await refused(suite.browser("198.51.100.1").callback(back)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "STATE_FOREIGN",
    )
    state_cookie = browser.jar["spark_auth_state"]
    assert (await browser.callback(back)).status == 302
    browser.jar["spark_auth_state"] = state_cookie
    assert await refused(browser.callback(back)) == (grpc.StatusCode.INVALID_ARGUMENT, "STATE_USED")
    assert await refused(browser.callback({"code": back["code"]})) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "STATE_INVALID",
    )


async def test_a_code_github_does_not_take_is_a_400_and_no_session(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    started = await browser.login()
    back = await browser.at_github(started.header("location") or "")
    assert await refused(browser.callback({**back, "code": "0123456789abcdef0123"})) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "CODE_INVALID",
    )
    assert "spark_session" not in browser.jar


async def test_githubs_error_redirects_are_clear_refusals(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    suite.github.deny_next()
    started = await browser.login()
    back = await browser.at_github(started.header("location") or "")
    assert back["error"] == "access_denied"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await browser.callback(back)
    assert refusal(caught) == (grpc.StatusCode.PERMISSION_DENIED, "SIGN_IN_DENIED")
    assert "cancelled" in (caught.value.details() or "")
    failed = {"error": "redirect_uri_mismatch", "error_description": "The redirect_uri MUST match", "state": "x"}
    assert await refused(browser.callback(failed)) == (grpc.StatusCode.FAILED_PRECONDITION, "SIGN_IN_FAILED")
    unknown = {"error": "<script>" * 10, "error_description": "<b>" * 5000}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await browser.callback(unknown)
    assert refusal(caught) == (grpc.StatusCode.FAILED_PRECONDITION, "SIGN_IN_FAILED")
    assert "<script>" not in (caught.value.details() or "") and len(caught.value.details() or "") < 400


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http://app.example:9090/x",
        "/a\tb",
        "x/y",
    ],
)
async def test_return_to_is_a_path_on_the_apps_own_origin_only(start: Start, return_to: str) -> None:
    suite = await start()
    assert await refused(suite.browser().login(return_to)) == (grpc.StatusCode.INVALID_ARGUMENT, "NOT_SAME_ORIGIN")


async def test_an_absolute_return_to_on_the_apps_origin_becomes_its_path(start: Start) -> None:
    suite = await start()
    finished = await suite.browser().sign_in(return_to=f"{PUBLIC}/board?x=1")
    assert finished.header("location") == "/board?x=1"


async def test_every_parameter_is_bounded(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    assert await refused(browser.login("/" + "a" * 5000)) == (grpc.StatusCode.INVALID_ARGUMENT, "TOO_LONG")
    for field_name in ("code", "state", "error"):
        assert await refused(browser.callback({field_name: "a" * 300})) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "TOO_LONG",
        )
    assert await refused(browser.page("/" + "p" * 5000)) == (grpc.StatusCode.INVALID_ARGUMENT, "TOO_LONG")


async def test_sign_in_attempts_are_limited_per_address(start: Start) -> None:
    suite = await start(sign_ins=3)
    browser = suite.browser("192.0.2.50")
    for _ in range(3):
        await browser.login()
    assert await refused(browser.login()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGN_IN_ATTEMPTS")
    assert await refused(browser.callback({"state": "x"})) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGN_IN_ATTEMPTS")
    assert (await suite.browser("192.0.2.51").login()).status == 302


# --- the session -----------------------------------------------------------------------------------------------


async def test_the_store_holds_only_the_sessions_hash(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    await browser.sign_in()
    secret = browser.jar["spark_session"][0]
    sessions = await suite.store.list(SESSIONS)
    assert [entry.key for entry in sessions] == [hashlib.sha256(secret.encode()).hexdigest()]
    token = next(r for r in suite.github.requests if r.path == "/api/user").headers["authorization"].split()[1]
    for space in (SESSIONS, SESSION_USERS, LOGINS, STATES):
        for entry in await suite.store.list(space):
            assert secret not in entry.key and secret.encode() not in entry.value
            assert token not in entry.key and token.encode() not in entry.value
    assert sessions[0].expires_at_ms is not None


async def test_logout_ends_the_session_at_once_everywhere(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    await browser.sign_in()
    await browser.put("k", b"1")
    old_cookie = browser.jar["spark_session"]
    out = await browser.logout()
    assert out.status == 200 and orjson.loads(out.body) == {"signedIn": False}
    assert out.cookies() == ["spark_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"]
    # The browser kept the cookie anyway (a copy): refused on every service.
    browser.jar["spark_session"] = old_cookie
    assert await refused(browser.user()) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID")
    assert await refused(browser.get("k")) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID")
    assert await suite.store.list(SESSIONS) == []
    # A second logout, and one with a return_to, succeed without a session.
    again = await suite.browser().logout(return_to="/bye")
    assert (again.status, again.header("location")) == (302, "/bye")


async def test_a_logout_from_another_origin_is_refused_and_ends_nothing(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    await browser.sign_in()
    assert await refused(browser.logout(origin="https://evil.example")) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CROSS_ORIGIN_WRITE",
    )
    assert (await browser.user()).login == "octocat"


async def test_an_expired_session_is_refused(start: Start) -> None:
    suite = await start()
    # Made an hour and a minute ago for an hour: the store may still hold it, its expiry is checked anyway.
    clock = SessionBook(suite.store, clock=lambda: time.time() - TTL_S - 60)
    secret = await clock.create(User("583231", "octocat"), TTL_S)
    browser = suite.browser()
    browser.jar["spark_session"] = (secret, "/")
    assert await refused(browser.user()) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID")


async def test_signing_in_again_ends_the_browsers_previous_session(start: Start) -> None:
    suite = await start(owners="octocat,hubot")
    browser = suite.browser()
    await browser.sign_in("octocat")
    await browser.sign_in("hubot")
    assert (await browser.user()).login == "Hubot"
    assert len(await suite.store.list(SESSIONS)) == 1


async def test_the_admin_lists_and_revokes_a_users_sessions(start: Start) -> None:
    suite = await start(owners="octocat")
    laptop, phone, other = suite.browser("192.0.2.1"), suite.browser("192.0.2.2"), suite.browser("192.0.2.3")
    await laptop.sign_in("octocat")
    await phone.sign_in("octocat")
    await other.sign_in("hubot")
    listed = await suite.access.ListSessions(access_pb2.ListSessionsRequest(), metadata=ADMIN)
    assert sorted(s.user.login for s in listed.sessions) == ["Hubot", "octocat", "octocat"]
    assert {s.user.is_owner for s in listed.sessions if s.user.login == "octocat"} == {True}
    assert all(len(s.id) == 16 and s.expires_at.endswith("Z") for s in listed.sessions)
    for session in listed.sessions:
        assert session.id not in (laptop.jar["spark_session"][0], phone.jar["spark_session"][0])

    revoked = await suite.access.RevokeSessions(access_pb2.RevokeSessionsRequest(user="OctoCat"), metadata=ADMIN)
    assert (revoked.user_id, revoked.revoked) == ("583231", 2)
    for browser in (laptop, phone):
        assert await refused(browser.user()) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID")
    assert (await other.user()).login == "Hubot"
    by_id = await suite.access.RevokeSessions(access_pb2.RevokeSessionsRequest(user=str(HUBOT.id)), metadata=ADMIN)
    assert by_id.revoked == 1
    nobody = await suite.access.RevokeSessions(access_pb2.RevokeSessionsRequest(user="nobody"), metadata=ADMIN)
    assert (nobody.user_id, nobody.revoked) == ("", 0)
    assert await refused(suite.access.ListSessions(access_pb2.ListSessionsRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "ADMIN_TOKEN_INVALID",
    )


# --- writes with a session: the app's own Origin only -----------------------------------------------------------


async def test_a_cookie_write_from_another_origin_is_refused_and_stores_nothing(start: Start) -> None:
    suite = await start()
    browser = suite.browser()
    await browser.sign_in()
    for origin, extra in (
        ("https://evil.example", {}),
        ("http://app.example:9090", {}),
        ("null", {}),
        (PUBLIC, {"sec_fetch_site": "cross-site"}),
        (None, {}),
    ):
        assert await refused(browser.put("k", b"1", origin=origin, **extra)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_ORIGIN_WRITE",
        ), origin
    assert await refused(browser.get("k")) == (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND")
    await browser.put("k", b"2", origin=PUBLIC.upper())
    await browser.put("k", b"3", origin=None, sec_fetch_site="same-origin")
    assert await browser.get("k") == b"3"


async def test_an_api_key_still_works_next_to_sessions_and_wins_over_a_cookie(start: Start) -> None:
    suite = await start(access="owners")
    _, secret = await KeyStore(suite.store, cache_s=0).create(User("ci", "ci", is_owner=True), "")
    browser = suite.browser()
    await browser.sign_in("hubot")  # not an owner
    assert await refused(browser.get("k")) == (grpc.StatusCode.PERMISSION_DENIED, "OWNERS_ONLY")
    keyed = browser.metadata("/_spark/kv/k", "POST", origin="https://evil.example", authorization=f"Bearer {secret}")
    body = httpbody_pb2.HttpBody(content_type="text/plain", data=b"1")
    await suite.kv.SetSparkValue(kv_pb2.SetSparkValueRequest(key="k", body=body), metadata=keyed)
    user = await suite.access.GetUser(access_pb2.GetUserRequest(), metadata=(("x-api-key", secret),))
    assert (user.id, user.is_owner) == ("ci", True)


async def test_a_session_is_for_the_hosted_app_only_and_only_through_the_edge(start: Start) -> None:
    suite = await start(access="signed-in")
    browser = suite.browser()
    await browser.sign_in()
    assert (await browser.user(f"/runtime/{APP}/user")).login == "octocat"
    assert await refused(browser.user("/runtime/other/user")) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
    assert await refused(browser.user("/_spark/user?app=other")) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_MISSING",
    )
    # The same cookie on a call that did not come through the edge is no credential.
    direct = [
        (k, v) for k, v in browser.metadata("/_spark/user", "GET") if k not in (INTERNAL_HEADER, CLIENT_ADDRESS_HEADER)
    ]
    assert await refused(suite.access.GetUser(access_pb2.GetUserRequest(), metadata=direct)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SIGN_IN_REQUIRED",
    )
    # Nor on the API's routes of the same method, nor over native gRPC.
    entry = kv_pb2.GetEntryRequest(key="k")
    native = [(k, v) for k, v in browser.metadata("", "GET") if k != "x-envoy-original-path"]
    assert await refused(suite.kv.GetEntry(entry, metadata=native)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_MISSING",
    )


# --- who may use the app (SPARK_APP_ACCESS) ------------------------------------------------------------------


async def test_public_visitors_are_anonymous_and_signed_in_people_themselves(start: Start) -> None:
    suite = await start(access="public", owners="")
    visitor = suite.browser()
    user = await visitor.user()
    assert (user.id, user.login, user.is_owner) == ("anonymous", "anonymous", False)
    await visitor.put("k", b"1", origin="https://anywhere.example")  # no cookie: nothing to forge
    assert await visitor.get("k") == b"1"
    page = await visitor.page("/")
    assert (page.status, page.body) == (200, INDEX)
    await visitor.sign_in("octocat")
    user = await visitor.user()
    assert (user.login, user.is_owner) == ("octocat", False)  # SPARK_OWNERS names nobody


async def test_signed_in_mode_refuses_visitors_and_sends_their_page_loads_to_sign_in(start: Start) -> None:
    suite = await start(access="signed-in")
    visitor = suite.browser()
    assert await refused(visitor.user()) == (grpc.StatusCode.UNAUTHENTICATED, "SIGN_IN_REQUIRED")
    assert await refused(visitor.get("k")) == (grpc.StatusCode.UNAUTHENTICATED, "SIGN_IN_REQUIRED")
    page = await visitor.page("/board/3?x=1")
    assert (page.status, page.header("location")) == (302, "/_spark/auth/login?return_to=%2Fboard%2F3%3Fx%3D1")
    await visitor.sign_in("hubot", return_to="/board/3?x=1")
    page = await visitor.page("/board/3?x=1")
    assert (page.status, page.body, page.header("cache-control")) == (200, INDEX, "private, no-cache")
    assert (await visitor.user()).is_owner is False
    assert await refused(visitor.page("https://evil.example/")) == (grpc.StatusCode.INVALID_ARGUMENT, "NOT_SAME_ORIGIN")


async def test_owners_mode_admits_only_spark_owners(start: Start) -> None:
    suite = await start(access="owners", owners="OCTOCAT")
    owner, other = suite.browser("192.0.2.1"), suite.browser("192.0.2.2")
    await owner.sign_in("octocat")
    await other.sign_in("hubot")
    assert (await owner.user()).is_owner is True
    await owner.put("k", b"1")
    assert await refused(other.user()) == (grpc.StatusCode.PERMISSION_DENIED, "OWNERS_ONLY")
    assert await refused(other.get("k")) == (grpc.StatusCode.PERMISSION_DENIED, "OWNERS_ONLY")
    assert await refused(other.page("/")) == (grpc.StatusCode.PERMISSION_DENIED, "OWNERS_ONLY")
    assert (await owner.page("/")).body == INDEX
    assert await refused(suite.browser().user()) == (grpc.StatusCode.UNAUTHENTICATED, "SIGN_IN_REQUIRED")


async def test_development_mode_with_sign_in_has_no_development_owner(start: Start) -> None:
    suite = await start(SPARK_ACCESS_MODE="development")
    visitor = suite.browser()
    assert (await visitor.user()).id == "anonymous"
    await visitor.sign_in("octocat")
    assert (await visitor.user()).login == "octocat"
    # The API's routes need a key now: nobody is everyone's owner.
    assert await refused(suite.kv.GetEntry(kv_pb2.GetEntryRequest(key="k"))) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_MISSING",
    )
