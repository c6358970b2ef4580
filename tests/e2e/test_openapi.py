"""The Swagger file generated from the protos: it is up to date, and the real edge keeps it under schemathesis.

Every operation gets schemathesis's boundary cases and a fixed number of generated requests (valid and
invalid) against one running suite with an admin token, sent with the token; the admin operations get them
once more without it, when none may succeed. Whatever schemathesis sends, the edge must never answer 5xx,
must answer only the statuses the file lists, with the content types and bodies it describes, and no
process of the suite may die. The llm and vision routes reach a local provider speaking OpenAI's and
Anthropic's protocols, so no request leaves the machine.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case, CheckFunction
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.filters import HasAPIOperation

from tests.conftest import FAILED_KEY
from tests.fakes.providers import FakeProviderThread
from tests.support.suite import RunningSuite
from tools import openapi

pytestmark = pytest.mark.e2e

TOKEN = "openapi-admin"
# Generated requests per operation, on top of schemathesis's explicit boundary cases.
EXAMPLES = 12
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Explicit examples are schemathesis's boundary cases (each operation's share is fixed by its schema), then
# a fixed number of generated ones; no shrinking, so a failure costs no extra minutes.
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

schema = schemathesis.openapi.from_path(str(openapi.OUTPUT))


def test_the_committed_swagger_file_matches_the_protos() -> None:
    diff = openapi.drift()
    assert diff == [], "".join(diff[:100]) + "\nrun `python -m tools.openapi`"


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {
        "ADMIN_TOKEN": TOKEN,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_API_KEY": "ak-test",
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        "SPARK_LLM_BACKOFF_BASE_S": "0.01",
    }
    running = RunningSuite.start(tmp_path_factory.mktemp("suite-openapi"), env)
    yield running
    running.stop()


@pytest.fixture
def children(suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    """The suite's processes before the test; the logs are printed if the test fails."""
    yield suite.child_pids()
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


def _exercise(case: Case, suite: RunningSuite, children: dict[str, int], headers: dict[str, str]) -> int:
    response = case.call(base_url=suite.base_url, headers=headers, timeout=60)
    # Swagger 2.0 cannot describe an event stream's events; test_llm_http and test_vision_http check them.
    streamed = any(value.startswith("text/event-stream") for value in response.headers.get("content-type", []))
    checks = [check for check in CHECKS if not (streamed and check is response_schema_conformance)]
    case.validate_response(response, checks=checks, headers=headers)
    assert suite.process.poll() is None, "the launcher exited"
    assert suite.child_pids() == children, "a process of the suite was restarted"
    return response.status_code


def _admin_only(context: HasAPIOperation) -> bool:
    return context.operation.definition.raw.get("security") == openapi.ADMIN_SECURITY


@schema.parametrize()
@BOUNDED
def test_the_edge_keeps_the_contract(case: Case, suite: RunningSuite, children: dict[str, int]) -> None:
    """Every operation with the admin token, which the routes that need none ignore."""
    _exercise(case, suite, children, {"X-Admin-Token": TOKEN})


@schema.include(_admin_only).parametrize()
@BOUNDED
def test_admin_routes_refuse_callers_without_the_token(
    case: Case, suite: RunningSuite, children: dict[str, int]
) -> None:
    status = _exercise(case, suite, children, {})
    assert not 200 <= status < 300, f"{case.method} {case.path} succeeded without the admin token"
