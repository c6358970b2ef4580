"""A public hosted Spark app with sign-in, in a real browser (issue 16).

`SPARK_AUTH=github` and `SPARK_APP_ACCESS=public`: a visitor who has not signed in uses the app as the
anonymous user (no owner), signs in through the "Sign in" link (the fake GitHub of tests/fakes/github.py) to
become their GitHub self, and is anonymous again after signing out. On SQLite in development mode, as the
README's `SPARK_AUTH=github ... make run` has it; on Redis in keys mode (API keys required), as docker compose
and the Kubernetes manifests have it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.fakes.github import OCTOCAT, FakeGitHub
from tests.support.browser import BuiltApp, app_ready, increment, open_app, start_suite
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    """GitHub approving at once, as it does for a person who authorized the OAuth App before."""
    with FakeGitHub(users=(OCTOCAT,)) as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, app: BuiltApp, github: FakeGitHub
) -> Iterator[RunningSuite]:
    env = {
        **github.env(),
        "SPARK_APP_ACCESS": "public",
        "SPARK_OWNERS": OCTOCAT.login,
        "SPARK_ACCESS_MODE": "development" if request.param == "sqlite" else "keys",
        "ADMIN_TOKEN": "admin-token-of-the-public-app-tests",
    }
    running = start_suite(request, tmp_path_factory.mktemp(f"spark-app-public-{request.param}"), app, env)
    yield running
    running.stop()


def test_a_visitor_uses_the_app_anonymously_signs_in_and_out(page: Page, suite: RunningSuite) -> None:
    open_app(page, "/")
    user = page.get_by_test_id("user")
    expect(user).to_have_attribute("data-login", "anonymous")
    expect(user).to_have_attribute("data-owner", "false")
    before = int(page.get_by_test_id("count").inner_text())
    increment(page)
    expect(page.get_by_test_id("count")).to_have_text(str(before + 1))

    page.get_by_test_id("sign-in").click()
    page.wait_for_url(suite.base_url + "/")
    app_ready(page)
    expect(user).to_have_attribute("data-login", OCTOCAT.login)
    expect(user).to_have_attribute("data-owner", "true")
    expect(page.get_by_test_id("count")).to_have_text(str(before + 1))

    with page.expect_response(lambda r: r.url.endswith("/_spark/auth/logout")) as signed_out:
        page.get_by_test_id("sign-out").click()
    assert signed_out.value.ok, signed_out.value.status
    page.wait_for_url(suite.base_url + "/")
    app_ready(page)
    expect(user).to_have_attribute("data-login", "anonymous")
