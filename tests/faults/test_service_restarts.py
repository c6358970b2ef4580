"""A service process killed under load: 503 JSON at once meanwhile, the launcher's restart, recovery unaided.

tests/e2e/test_launcher.py kills an idle kv process; here the llm, prompts
and access services (one process each, so nothing else can answer for them)
die while clients keep calling them through the edge. Every request must get
an answer within a bound, never a hang: a 2xx, or a 503 with the JSON error
body. Every service checks its own calls, so the access service down is only
its own routes down (/_spark/user here), until the restarted process serves.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import pytest

from tests.faults.conftest import ADMIN_TOKEN
from tests.support.http import wait_for
from tests.support.load import Action, Load, assert_answered_quickly, unavailable
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.faults

NAMESPACE = "restarts"


@pytest.fixture(scope="module")
def suite(llm_suite: RunningSuite) -> RunningSuite:
    """The shared suite, with a default prompt for the prompts load to read."""
    with httpx.Client(base_url=llm_suite.base_url, timeout=30.0) as client:
        body = {"namespace": NAMESPACE, "name": "p", "text": "Describe {{subject}}.", "make_default": True}
        response = client.post("/v1/prompts", json=body, headers={"X-Admin-Token": ADMIN_TOKEN})
        assert response.status_code == 201, response.text
    return llm_suite


def chat(client: httpx.Client, worker: int, sequence: int) -> tuple[Any, httpx.Request]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {worker} {sequence}"}]}
    return None, client.build_request("POST", "/v1/chat/completions", json=body)


def default_prompt(client: httpx.Client, worker: int, sequence: int) -> tuple[Any, httpx.Request]:
    return None, client.build_request("GET", "/v1/prompts/default", params={"namespace": NAMESPACE})


def user(client: httpx.Client, worker: int, sequence: int) -> tuple[Any, httpx.Request]:
    return None, client.build_request("GET", "/_spark/user")


@pytest.mark.parametrize(("service", "action"), [("llm", chat), ("prompts", default_prompt), ("access", user)])
def test_a_service_killed_under_load_is_answered_503_json_then_serves_again(
    suite: RunningSuite, show_logs: list[RunningSuite], service: str, action: Action
) -> None:
    """SIGKILL the service's only process while three clients call it; its requests get 2xx or a quick 503 JSON
    until the launcher's new process serves them again, with nobody stepping in."""
    show_logs.append(suite)
    with Load(suite.base_url, action, workers=3, pause_s=0.02) as load:
        assert load.wait_for(lambda c: c.ok, 10), load.calls[-3:]
        old_pid = suite.child_pids()[service]
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_for(lambda: suite.child_pids()[service] != old_pid, 30), suite.launcher_output()
        assert load.wait_for(lambda c: c.started > killed_at and unavailable(c), 1), load.calls[-3:]
        restarted_at = time.monotonic()
        assert load.wait_for(lambda c: c.started > restarted_at and c.ok, 10, timeout_s=45), load.calls[-3:]
    calls = load.calls

    assert_answered_quickly(calls, allowed=(503,))
    outage = [c for c in calls if c.started > killed_at and not c.ok]
    assert outage and all(unavailable(c) for c in outage), outage[:3]
    with httpx.Client(base_url=suite.base_url, timeout=10.0) as client:
        assert wait_for(lambda: client.get("/healthz").status_code == 200, 30), client.get("/healthz").text
