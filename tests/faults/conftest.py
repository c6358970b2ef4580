"""Fixtures for the fault-injection tests: logs of the suites a failed test ran, a Redis of each test's own, and
the suite with fake LLM providers that the provider and restart tests share.

These tests kill and restart parts of the suite, so none of them uses the session's shared redis-server.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAILED_KEY
from tests.fakes.providers import FakeProviderThread
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

ADMIN_TOKEN = "faults-admin-token"
BREAKER_FAILURES = 3
BREAKER_OPEN_S = 3.0
LLM_TIMEOUT_S = 2.0


@pytest.fixture
def show_logs(request: pytest.FixtureRequest) -> Iterator[list[RunningSuite]]:
    """Suites appended to this list have their logs printed if the test fails."""
    suites: list[RunningSuite] = []
    yield suites
    if request.node.stash.get(FAILED_KEY, False):
        for suite in suites:
            sys.stderr.write(suite.logs())


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server (AOF, fsync every second) that this test alone may kill and restart."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="package")
def openai_fake() -> Iterator[FakeProviderThread]:
    """The suite's OpenAI; a provider of its own so that it can fail or slow down while Anthropic serves."""
    with FakeProviderThread() as provider:
        yield provider


@pytest.fixture(scope="package")
def anthropic_fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread() as provider:
        yield provider


@pytest.fixture(scope="package")
def llm_suite(
    openai_fake: FakeProviderThread, anthropic_fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSuite]:
    """One process each of meta, access, llm and prompts on SQLite, shared by the provider and restart tests.

    The breaker opens after three failures in a row and stays open three seconds; a request has two
    seconds in all, so that these tests spend seconds, not minutes, waiting for breakers and timeouts.
    """
    env = {
        "OPENAI_BASE_URL": openai_fake.openai_base_url,
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": anthropic_fake.anthropic_base_url,
        "ANTHROPIC_API_KEY": "ak-test",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SPARK_SERVICES": "meta,access,llm,prompts",
        "SPARK_LLM_BREAKER_FAILURES": str(BREAKER_FAILURES),
        "SPARK_LLM_BREAKER_OPEN_S": str(BREAKER_OPEN_S),
        "SPARK_LLM_TIMEOUT_S": str(LLM_TIMEOUT_S),
        "SPARK_LLM_MAX_ATTEMPTS": str(BREAKER_FAILURES),
        "SPARK_LLM_BACKOFF_BASE_S": "0.01",
    }
    with RunningSuite.start(tmp_path_factory.mktemp("llm-suite"), env) as running:
        yield running
