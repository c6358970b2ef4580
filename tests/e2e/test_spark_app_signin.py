"""Sign-in with GitHub in a real browser, for the hosted Spark app (issue 16).

The suite hosts the test app (tests/e2e/spark_app/) with `SPARK_AUTH=github` pointed at a local GitHub
(tests/fakes/github.py: GitHub's OAuth web flow, with its authorization page), `SPARK_APP_ACCESS=signed-in`,
`SPARK_OWNERS=octocat`, and API keys next to the sessions. Debian's Chromium clicks through it as a person
would: a page load without a session goes to GitHub and back, `spark.user()` is the GitHub user, a visitor
who is not an owner is no owner, signing out ends the session at once, a page on another origin cannot write
with the cookie, and the `vite dev` loop works with an API key as GITHUB_TOKEN.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fakes.github import HUBOT, OCTOCAT, FakeGitHub
from tests.support.browser import (
    BuiltApp,
    OtherSite,
    ViteDevServer,
    app_ready,
    increment,
    open_app,
    start_suite,
)
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "admin-token-of-the-sign-in-tests"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
SESSION_COOKIE = "spark_session"


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    """GitHub, showing its authorization page for the browser to click through."""
    with FakeGitHub(users=(OCTOCAT, HUBOT), interactive=True) as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, app: BuiltApp, github: FakeGitHub
) -> Iterator[RunningSuite]:
    env = {
        **github.env(),
        "SPARK_APP_ACCESS": "signed-in",
        "SPARK_OWNERS": OCTOCAT.login,
        "SPARK_ACCESS_MODE": "keys",
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }
    running = start_suite(request, tmp_path_factory.mktemp(f"spark-app-signin-{request.param}"), app, env)
    yield running
    running.stop()


def sign_in(page: Page, suite: RunningSuite, github: FakeGitHub, login: str, path: str = "/") -> None:
    """Loads `path` without a session: the suite sends the browser to GitHub, where `login` authorizes the
    OAuth App, and GitHub sends it back, signed in, to `path`."""
    page.goto(path)
    assert page.url.startswith(f"{github.url}/login/oauth/authorize?"), page.url
    expect(page.locator("#authorize")).to_be_visible()
    github.signed_in_as = login
    page.locator("#authorize").click()
    page.wait_for_url(suite.base_url + path)
    app_ready(page)


def session_cookie(context: BrowserContext) -> dict[str, object]:
    found = [dict(c) for c in context.cookies() if c["name"] == SESSION_COOKIE]
    assert len(found) == 1, context.cookies()
    return found[0]


def test_a_page_load_signs_in_with_github_and_spark_user_is_the_github_user(
    page: Page, context: BrowserContext, suite: RunningSuite, github: FakeGitHub, http: httpx.Client
) -> None:
    sign_in(page, suite, github, OCTOCAT.login, "/todos/7")
    user = page.get_by_test_id("user")
    expect(user).to_have_attribute("data-login", OCTOCAT.login)
    expect(user).to_have_attribute("data-owner", "true")
    expect(user).to_have_attribute("data-avatar", OCTOCAT.avatar_url)
    expect(user).to_have_text("octocat (owner)")
    cookie = session_cookie(context)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)
    # The session is the credential of the app's own calls: useKV writes and reads back.
    before = int(page.get_by_test_id("count").inner_text())
    increment(page)
    page.reload()
    expect(page.get_by_test_id("count")).to_have_text(str(before + 1))
    # The same call without the cookie (signed-in access) is refused.
    assert http.get("/_spark/kv/counter").status_code == 401


def test_a_visitor_who_is_not_an_owner_is_themselves_and_no_owner(
    page: Page, suite: RunningSuite, github: FakeGitHub
) -> None:
    sign_in(page, suite, github, HUBOT.login)
    user = page.get_by_test_id("user")
    expect(user).to_have_attribute("data-login", HUBOT.login)
    expect(user).to_have_attribute("data-owner", "false")
    increment(page)


def test_signing_out_ends_the_session_at_once(
    page: Page, context: BrowserContext, suite: RunningSuite, github: FakeGitHub, http: httpx.Client
) -> None:
    sign_in(page, suite, github, OCTOCAT.login)
    secret = str(session_cookie(context)["value"])
    assert http.get("/_spark/user", headers={"Cookie": f"{SESSION_COOKIE}={secret}"}).json()["login"] == OCTOCAT.login
    with page.expect_response(lambda r: r.url.endswith("/_spark/auth/logout")) as signed_out:
        page.get_by_test_id("sign-out").click()
    assert signed_out.value.ok, signed_out.value.status
    # The app goes to / after signing out, which now needs a sign-in again.
    page.wait_for_url(lambda url: url.startswith(f"{github.url}/login/oauth/authorize?"))
    assert SESSION_COOKIE not in {c["name"] for c in context.cookies()}
    # The cookie, kept by someone, no longer works.
    refused = http.get("/_spark/user", headers={"Cookie": f"{SESSION_COOKIE}={secret}"})
    assert refused.status_code == 401, refused.text


def test_a_write_from_another_origin_with_the_cookie_is_refused(
    page: Page, suite: RunningSuite, github: FakeGitHub
) -> None:
    sign_in(page, suite, github, OCTOCAT.login)
    target = f"{suite.base_url}/_spark/kv/planted"
    # Another origin on the same host (so the SameSite=Lax cookie goes along): a form posting a JSON body
    # as text/plain, and a fetch with credentials, each a write the app itself could make.
    pages = {
        "/form": (
            f'<form id="f" method="post" enctype="text/plain" action="{target}">'
            "<input name='{\"planted\":\"' value='yes\"}'></form>"
            "<script>document.getElementById('f').submit()</script>"
        ),
        "/fetch": (
            "<script>fetch("
            f'"{target}-by-fetch", {{method: "POST", credentials: "include", mode: "no-cors", body: "1"}}'
            ").finally(() => { document.title = 'sent' })</script>"
        ),
    }
    with OtherSite(pages) as other:
        with page.expect_response(target) as answered:
            page.goto(f"{other.url}/form")
        refused = answered.value
        assert refused.request.headers.get("origin") == other.url
        assert refused.status == 403, refused.text()
        error = refused.json()
        assert [d.get("reason") for d in error["details"]] == ["CROSS_ORIGIN_WRITE"], error
        assert "Origin is not the app's own" in error["message"], error
        with page.expect_response(f"{target}-by-fetch") as fetched:
            page.goto(f"{other.url}/fetch")
        assert fetched.value.status == 403
    # Nothing was stored: the app, on its own origin with the same cookie, reads neither key.
    open_app(page, "/")
    assert page.request.get("/_spark/kv/planted").status == 404
    assert page.request.get("/_spark/kv/planted-by-fetch").status == 404


def test_the_vite_dev_loop_with_an_api_key_writes_the_hosted_apps_data(
    browser: Browser, suite: RunningSuite, http: httpx.Client, app: BuiltApp
) -> None:
    made = http.post("/admin/keys", headers=ADMIN, json={"user": {"login": "developer"}, "label": "vite dev"})
    assert made.is_success, made.text
    key = made.json()["secret"]
    authorized = {"Authorization": f"Bearer {key}"}
    assert http.put("/_spark/kv/counter", content="100", headers=authorized).is_success
    dev = ViteDevServer(app, github_api_url=suite.base_url, github_token=key)
    context = browser.new_context()
    try:
        with dev:
            page = context.new_page()
            open_app(page, dev.url + "/")
            expect(page.get_by_test_id("user")).to_have_attribute("data-login", "developer")
            expect(page.get_by_test_id("count")).to_have_text("100")
            increment(page)
    except AssertionError:
        sys.stderr.write(f"--- vite dev ---\n{dev.log()}")
        raise
    finally:
        context.close()
    assert http.get("/_spark/kv/counter", headers=authorized).text == "101"
