"""End-to-end fixtures: the suite started by the real launcher, per store backend."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.conftest import FAILED_KEY
from tests.fakes.providers import FakeProviderThread
from tests.support.browser import BuiltApp, built_app, chromium
from tests.support.otlp import OtlpReceiver
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

# Smaller than the 10 MiB default so that the size tests stay quick; the
# default itself is covered by test_default_value_limit_is_10_mib.
VALUE_LIMIT = 256 * 1024
_REDIS_DATABASES = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {"SPARK_KV_MAX_VALUE_BYTES": str(VALUE_LIMIT), "ALLOWED_ORIGINS": "http://app.example"}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        # A database of its own per suite, so modules never see each other's keys.
        env["REDIS_URL"] = f"{server.url.rsplit('/', 1)[0]}/{next(_REDIS_DATABASES)}"
    running = RunningSuite.start(tmp_path_factory.mktemp(f"suite-{request.param}"), env)
    request.node.stash[SUITE_KEY] = running
    yield running
    running.stop()


SUITE_KEY = pytest.StashKey[RunningSuite]()


@pytest.fixture
def http(suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """An HTTP client on the edge; the suite's logs are printed if the test fails."""
    with httpx.Client(base_url=suite.base_url, timeout=30.0) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP trace receiver for the suite to export to."""
    running = OtlpReceiver()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderThread]:
    """The fake LLM provider (OpenAI's and Anthropic's wire formats), one per test module; modules that script
    it differently define their own."""
    with FakeProviderThread() as provider:
        yield provider


@pytest.fixture(scope="module")
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> BuiltApp:
    """The small Spark app of tests/e2e/spark_app, built with vite once per session."""
    return built_app(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium through Playwright, one per module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser, suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies, no cache) on the module's suite; the suite's logs and the pages'
    console are printed if the test fails."""
    opened = browser.new_context(base_url=suite.base_url)
    console: list[str] = []
    opened.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield opened
    opened.close()
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs() + "\n--- browser console ---\n" + "\n".join(console))


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
