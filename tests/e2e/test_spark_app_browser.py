"""A Spark app hosted by the suite, in a real browser (issue 16).

The small app of tests/e2e/spark_app/ is built with vite and the Spark plugin once per session
(tests/support/browser.py); the suite serves its `dist/` at `/` (`SPARK_APP_DIR`) next to `/_spark/*`, and
Debian's Chromium runs it through Playwright. Development mode here (no sign-in: every visitor is the owner);
tests/e2e/test_spark_app_signin.py covers sign-in with GitHub. The `vite dev` loop runs the app's own dev
server with `GITHUB_API_URL` pointed at the suite: the Spark plugin proxies `/_spark/{svc}/…` to
`/runtime/{app}/{svc}/…`, and what it writes is the hosted app's data.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import BuiltApp, ViteDevServer, increment, open_app, start_suite
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, app: BuiltApp
) -> Iterator[RunningSuite]:
    running = start_suite(request, tmp_path_factory.mktemp(f"spark-app-{request.param}"), app, {})
    yield running
    running.stop()


def test_the_app_is_served_at_the_root_and_on_client_side_routes(
    page: Page, suite: RunningSuite, http: httpx.Client, app: BuiltApp
) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading")).to_have_text("Browser test app")
    open_app(page, "/todos/some/page")
    expect(page.get_by_role("heading")).to_have_text("Browser test app")
    # The app and its runtime calls share the edge's origin: nothing the page loaded came from elsewhere.
    assert page.url == f"{suite.base_url}/todos/some/page"
    assert http.get("/_spark/status").json() == {"status": "complete", "runtimePermanentName": app.name}


def test_use_kv_state_survives_a_reload(page: Page, http: httpx.Client) -> None:
    open_app(page)
    before = int(page.get_by_test_id("count").inner_text())
    for _ in range(3):
        increment(page)
    expect(page.get_by_test_id("count")).to_have_text(str(before + 3))
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/kv/todos")):
        page.get_by_test_id("todo-input").fill("water the plants")
        page.get_by_test_id("todo-add").click()

    page.reload()
    open_app(page, page.url)
    expect(page.get_by_test_id("count")).to_have_text(str(before + 3))
    expect(page.get_by_test_id("todos").get_by_role("listitem")).to_have_text(["water the plants"])
    # Stored as the runtime writes it (JSON.stringify's text), where any client of the suite reads it.
    assert http.get("/_spark/kv/counter").text == str(before + 3)
    assert http.get("/_spark/kv/todos").json() == ["water the plants"]


def test_spark_kv_keys_lists_what_was_written(page: Page, http: httpx.Client) -> None:
    assert http.post("/_spark/kv/written elsewhere", content='"by curl"').is_success
    open_app(page)
    increment(page)
    page.get_by_test_id("keys-refresh").click()
    expect(page.get_by_test_id("keys")).to_contain_text("counter")
    listed = page.get_by_test_id("keys").inner_text().split(",")
    assert {"counter", "todos", "written elsewhere"} <= set(listed), listed
    assert sorted(http.get("/_spark/kv").json()) == listed


def test_spark_user_shows_the_user(page: Page) -> None:
    open_app(page)
    user = page.get_by_test_id("user")
    # Development mode (no sign-in configured): every visitor is the owner, as the banner says.
    expect(user).to_have_attribute("data-login", "owner")
    expect(user).to_have_attribute("data-owner", "true")
    expect(user).to_have_text("owner (owner)")


def test_vite_dev_loop_writes_the_hosted_apps_data(
    browser: Browser, suite: RunningSuite, http: httpx.Client, app: BuiltApp
) -> None:
    assert http.put("/_spark/kv/counter", content="40").is_success
    dev = ViteDevServer(app, github_api_url=suite.base_url)
    context = browser.new_context()
    try:
        with dev:
            page = context.new_page()
            # Every runtime call goes to the dev server, whose Spark plugin sends it on to the suite's
            # /runtime/{app}/… (the only way these reads and writes can reach the suite).
            proxied: list[str] = []
            page.on("request", lambda r: proxied.append(r.url) if "/_spark/" in r.url else None)
            open_app(page, dev.url + "/")
            expect(page.get_by_test_id("count")).to_have_text("40")
            increment(page)
            expect(page.get_by_test_id("count")).to_have_text("41")
            assert all(url.startswith(dev.url) for url in proxied), proxied
    except AssertionError:
        sys.stderr.write(f"--- vite dev ---\n{dev.log()}")
        raise
    finally:
        context.close()
    # The hosted app's data, under both of its names.
    assert http.get("/_spark/kv/counter").text == "41"
    assert http.get(f"/runtime/{app.name}/kv/counter").text == "41"
