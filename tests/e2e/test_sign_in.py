"""Sign-in with GitHub through the real edge, redirects followed by hand against tests/fakes/github.py.

The suite runs as a deployment of a private app would (keys mode, an admin token, SPARK_AUTH=github,
SPARK_APP_ACCESS=signed-in, SPARK_OWNERS, a hosted app), on SQLite and on Redis: login → GitHub → callback →
cookie → `/_spark/user` is the GitHub user → a KV write with the app's Origin works, another Origin's is a 403
that stores nothing → logout → the cookie is refused. Without a session `/_spark/*` is a 401 JSON and a page
load a 302 to sign in; API keys work next to sessions. A public app (development mode with sign-in) serves
visitors as anonymous.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.conftest import FAILED_KEY
from tests.fakes.github import HUBOT, OCTOCAT, FakeGitHub
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN = "sign-in-admin-token"
INDEX = b"<!doctype html><html><head><title>notes</title></head><body><div id=root></div></body></html>"
_DATABASES = itertools.count(7)


def app_dir(directory: Path) -> Path:
    """A built Spark app: its index.html and one hashed asset."""
    dist = directory / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "index-abc123.js").write_text("console.log('notes')\n", encoding="utf-8")
    return dist


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, github: FakeGitHub
) -> Iterator[RunningSuite]:
    directory = tmp_path_factory.mktemp(f"sign-in-{request.param}")
    env = {
        **github.env(),
        "SPARK_ACCESS_MODE": "keys",
        "ADMIN_TOKEN": ADMIN,
        "SPARK_ACCESS_KEY_CACHE_S": "0",
        "SPARK_APP_ACCESS": "signed-in",
        "SPARK_OWNERS": "OctoCat",
        "SPARK_APP_DIR": str(app_dir(directory)),
        "SPARK_APP_NAME": "notes",
        # The edge's own address (SPARK_PUBLIC_URL's default) is the origin here.
    }
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = f"{server.url.rsplit('/', 1)[0]}/{next(_DATABASES)}"
    running = RunningSuite.start(directory, env)
    yield running
    running.stop()


@pytest.fixture
def browser(suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A browser on the edge: a cookie jar, redirects not followed; the suite's logs printed on failure."""
    with httpx.Client(base_url=suite.base_url, timeout=30.0, follow_redirects=False) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


def sign_in(browser: httpx.Client, github: FakeGitHub, login: str, return_to: str = "/") -> httpx.Response:
    """The whole web flow, each redirect followed by hand; the callback's answer."""
    started = browser.get("/_spark/auth/login", params={"return_to": return_to})
    assert started.status_code == 302, started.text
    authorize = started.headers["location"]
    assert authorize.startswith(f"{github.url}/login/oauth/authorize?")
    # GitHub is another site: the browser goes there without the suite's cookies.
    with httpx.Client(follow_redirects=False) as elsewhere:
        approved = elsewhere.get(f"{authorize}&login={login}")
    assert approved.status_code == 302, approved.text
    callback = urlsplit(approved.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}" == str(browser.base_url).rstrip("/")
    assert callback.path == "/_spark/auth/callback"
    return browser.get(f"{callback.path}?{callback.query}")


def origin(suite: RunningSuite) -> dict[str, str]:
    return {"Origin": suite.base_url}


def test_sign_in_then_the_github_user_writes_then_signs_out(
    suite: RunningSuite, browser: httpx.Client, github: FakeGitHub
) -> None:
    finished = sign_in(browser, github, OCTOCAT.login, "/notes/1?view=all")
    assert finished.status_code == 302, finished.text
    assert finished.headers["location"] == "/notes/1?view=all"
    set_cookies = finished.headers.get_list("set-cookie")
    session = next(c for c in set_cookies if c.startswith("spark_session="))
    assert "; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax" in session and "Secure" not in session
    assert any(c.startswith("spark_auth_state=; Path=/_spark/auth/callback; Max-Age=0") for c in set_cookies)
    assert finished.headers["cache-control"] == "no-store"

    user = browser.get("/_spark/user")
    assert user.status_code == 200, user.text
    assert user.json() == {
        "id": str(OCTOCAT.id),
        "login": "octocat",
        "email": OCTOCAT.email,
        "avatarUrl": OCTOCAT.avatar_url,
        "isOwner": True,
    }

    # A write with the cookie from the app's own origin; another origin's is refused and stores nothing.
    assert browser.put("/_spark/kv/todo", content=b'"milk"', headers=origin(suite)).status_code == 200
    evil = browser.put("/_spark/kv/todo", content=b'"pwned"', headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403, evil.text
    assert evil.json()["details"][-1]["reason"] == "CROSS_ORIGIN_WRITE"
    cross = browser.delete("/_spark/kv/todo", headers={**origin(suite), "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert browser.get("/_spark/kv/todo").content == b'"milk"'
    assert browser.get("/_spark/kv").json() == ["todo"]

    # The callback's single-use code and state stay out of the edge's access log (it logs paths, no queries);
    # neither does the session cookie appear anywhere in the logs.
    cookie = browser.cookies["spark_session"]
    logs = suite.logs()
    assert "/_spark/auth/callback" in logs and "code=" not in logs and "state=" not in logs
    assert cookie not in logs
    out = browser.post("/_spark/auth/logout", headers=origin(suite))
    assert out.status_code == 200, out.text
    assert out.json() == {"signedIn": False}
    assert "spark_session" not in browser.cookies
    # A copy of the cookie kept anyway is refused at once, on every service.
    for path in ("/_spark/user", "/_spark/kv/todo"):
        refused = browser.get(path, headers={"Cookie": f"spark_session={cookie}"})
        assert refused.status_code == 401, refused.text
        assert refused.json()["details"][-1]["reason"] == "SESSION_INVALID"


def test_is_owner_follows_spark_owners(browser: httpx.Client, github: FakeGitHub) -> None:
    assert sign_in(browser, github, HUBOT.login).status_code == 302
    user = browser.get("/_spark/user").json()
    assert (user["login"], user["email"], user["isOwner"]) == ("Hubot", "hubot@example.com", False)


def test_without_a_session_the_app_is_a_401_and_a_page_load_goes_to_sign_in(browser: httpx.Client) -> None:
    for path in ("/_spark/user", "/_spark/kv", "/_spark/kv/todo"):
        refused = browser.get(path)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.headers["content-type"].startswith("application/json")
        assert refused.json()["message"]
    page = browser.get("/notes/1?view=all")
    assert page.status_code == 302, page.text
    assert page.headers["location"] == "/_spark/auth/login?return_to=" + quote("/notes/1?view=all", safe="")
    # The app's other files stay public and static.
    assert browser.get("/assets/index-abc123.js").status_code == 200


def test_a_page_load_with_a_session_is_the_app(browser: httpx.Client, github: FakeGitHub) -> None:
    sign_in(browser, github, OCTOCAT.login)
    page = browser.get("/notes/1")
    assert page.status_code == 200, page.text
    assert page.content == INDEX
    assert page.headers["content-type"].startswith("text/html")


def test_githubs_refusal_is_a_clear_403(browser: httpx.Client, github: FakeGitHub) -> None:
    github.deny_next()
    finished = sign_in(browser, github, OCTOCAT.login)
    assert finished.status_code == 403, finished.text
    assert finished.json()["details"][-1]["reason"] == "SIGN_IN_DENIED"
    assert "spark_session" not in browser.cookies


def test_return_to_must_stay_on_the_apps_origin(browser: httpx.Client) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        refused = browser.get("/_spark/auth/login", params={"return_to": target})
        assert refused.status_code == 400, refused.text
        assert "location" not in refused.headers


def test_api_keys_still_work_next_to_sessions(suite: RunningSuite, browser: httpx.Client, github: FakeGitHub) -> None:
    made = browser.post(
        "/admin/keys",
        headers={"X-Admin-Token": ADMIN},
        json={"user": {"login": "ci", "isOwner": True}, "label": "e2e"},
    )
    assert made.status_code == 200, made.text
    key = {"Authorization": f"Bearer {made.json()['secret']}"}
    assert browser.get("/_spark/user", headers=key).json()["id"] == "ci"
    sign_in(browser, github, HUBOT.login)
    # The key wins over the cookie; no Origin check applies to a key.
    assert browser.get("/_spark/user", headers=key).json()["id"] == "ci"
    put = browser.put("/_spark/kv/by-key", content=b"1", headers={**key, "Origin": "https://tool.example"})
    assert put.status_code == 200
    assert browser.get("/_spark/user").json()["login"] == "Hubot"
    # Sessions are listed and revoked by the admin.
    listed = browser.get("/admin/sessions", headers={"X-Admin-Token": ADMIN}).json()["sessions"]
    assert "Hubot" in {s["user"]["login"] for s in listed}
    revoked = browser.delete("/admin/sessions/hubot", headers={"X-Admin-Token": ADMIN})
    assert revoked.status_code == 200 and revoked.json()["revoked"] >= 1
    assert browser.get("/_spark/user").status_code == 401


@pytest.fixture(scope="module")
def public_suite(tmp_path_factory: pytest.TempPathFactory, github: FakeGitHub) -> Iterator[RunningSuite]:
    """A public app with sign-in, in development mode: visitors who have not signed in are anonymous."""
    directory = tmp_path_factory.mktemp("sign-in-public")
    running = RunningSuite.start(directory, {**github.env(), "SPARK_OWNERS": "octocat"})
    yield running
    running.stop()


def test_a_public_apps_visitors_are_anonymous_until_they_sign_in(
    public_suite: RunningSuite, github: FakeGitHub
) -> None:
    with httpx.Client(base_url=public_suite.base_url, follow_redirects=False, timeout=30.0) as visitor:
        assert visitor.get("/_spark/user").json() == {
            "id": "anonymous",
            "login": "anonymous",
            "email": "",
            "avatarUrl": "",
            "isOwner": False,
        }
        assert visitor.put("/_spark/kv/x", content=b"1").status_code == 200
        sign_in(visitor, github, OCTOCAT.login)
        assert visitor.get("/_spark/user").json()["isOwner"] is True
        # With sign-in on, development mode has no owner for everyone: the API's routes need a key.
        assert visitor.get("/v1/models").status_code == 401
        back = parse_qs(urlsplit(visitor.get("/_spark/auth/login").headers["location"]).query)
        assert back["redirect_uri"] == [f"{public_suite.base_url}/_spark/auth/callback"]
