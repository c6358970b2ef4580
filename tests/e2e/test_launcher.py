"""The launcher behind `make run`: start-up, supervision, restarts and clean stops."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.http import wait_for
from tests.support.processes import alive
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@pytest.fixture
def fresh_suite(tmp_path: Path) -> RunningSuite:
    suite = RunningSuite.start(tmp_path)
    yield suite  # type: ignore[misc]
    suite.stop()


def test_sigterm_stops_the_edge_and_every_service(fresh_suite: RunningSuite) -> None:
    pids = fresh_suite.child_pids()
    assert set(pids) == {"meta", "access", "access-2", "kv", "kv-2", "llm", "prompts", "vision", "edge"}
    assert all(alive(pid) for pid in pids.values())
    assert fresh_suite.stop() == 0
    assert wait_for(lambda: not any(alive(pid) for pid in pids.values()), 5.0), fresh_suite.logs()
    logs = fresh_suite.logs()
    assert '"msg":"stopped"' in logs


def test_a_killed_launcher_takes_its_children_with_it(fresh_suite: RunningSuite) -> None:
    pids = fresh_suite.child_pids()
    fresh_suite.process.send_signal(signal.SIGKILL)
    fresh_suite.process.wait()
    assert wait_for(lambda: not any(alive(pid) for pid in pids.values()), 5.0), pids


def test_a_killed_service_is_answered_503_json_then_restarted(tmp_path: Path) -> None:
    fresh_suite = RunningSuite.start(tmp_path, {"SPARK_KV_WORKERS": "1"})
    with fresh_suite, httpx.Client(base_url=fresh_suite.base_url, timeout=10.0) as http:
        assert http.post("/_spark/kv/survivor", content="1").status_code == 200
        kv_pid = fresh_suite.child_pids()["kv"]
        os.kill(kv_pid, signal.SIGKILL)
        assert wait_for(lambda: not alive(kv_pid), 5.0)
        started = time.monotonic()
        down = http.get("/_spark/kv/survivor")
        elapsed = time.monotonic() - started
        if down.status_code != 200:  # the restart may already have won the race
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/json"
            assert down.json()["code"] == 14
            assert elapsed < 5.0
            health = http.get("/healthz")
            assert health.status_code in (200, 503)
        assert wait_for(lambda: http.get("/_spark/kv/survivor").status_code == 200, 20.0), fresh_suite.logs()
        assert fresh_suite.child_pids()["kv"] != kv_pid
        assert http.get("/_spark/kv/survivor").content == b"1"
        assert http.get("/healthz").status_code == 200


def test_healthz_is_503_json_while_a_service_is_down(tmp_path: Path) -> None:
    suite = RunningSuite.start(tmp_path)
    try:
        with httpx.Client(base_url=suite.base_url, timeout=10.0) as http:
            kv_pid = suite.child_pids()["kv"]
            os.kill(kv_pid, signal.SIGSTOP)
            try:
                response = http.get("/healthz")
            finally:
                os.kill(kv_pid, signal.SIGCONT)
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["status"] == "NOT_SERVING"
            services = {s["name"]: s for s in body["services"]}
            assert services["kv"]["status"] == "UNREACHABLE"
            assert "DEADLINE_EXCEEDED" in services["kv"]["message"]
            assert services["kv-2"]["status"] == "SERVING"
            assert wait_for(lambda: http.get("/healthz").status_code == 200, 10.0)
    finally:
        suite.stop()


def test_default_value_limit_is_10_mib(tmp_path: Path) -> None:
    suite = RunningSuite.start(tmp_path)
    try:
        with httpx.Client(base_url=suite.base_url, timeout=60.0) as http:
            exact = b'"' + b"z" * (10 * MIB - 2) + b'"'
            assert http.post("/_spark/kv/ten", content=exact).status_code == 200
            assert http.get("/_spark/kv/ten").content == exact
            over = exact + b" "
            response = http.post("/_spark/kv/eleven", content=over)
            assert response.status_code == 413
            assert response.json()["code"] == 8
            assert http.get("/_spark/kv/eleven").status_code == 404
    finally:
        suite.stop()


def test_a_hung_service_times_out_as_504_json(tmp_path: Path) -> None:
    suite = RunningSuite.start(tmp_path, {"SPARK_EDGE_ROUTE_TIMEOUT_S": "1", "SPARK_KV_WORKERS": "1"})
    try:
        with httpx.Client(base_url=suite.base_url, timeout=10.0) as http:
            kv_pid = suite.child_pids()["kv"]
            os.kill(kv_pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                response = http.get("/_spark/kv/anything")
                elapsed = time.monotonic() - started
            finally:
                os.kill(kv_pid, signal.SIGCONT)
            assert response.status_code == 504, response.text
            assert response.json()["code"] == 4
            assert response.headers["content-type"] == "application/json"
            assert 0.9 < elapsed < 5.0
            assert wait_for(lambda: http.get("/_spark/kv/anything").status_code == 404, 10.0)
    finally:
        suite.stop()


def test_a_killed_worker_costs_no_request_while_another_serves(tmp_path: Path) -> None:
    suite = RunningSuite.start(tmp_path)
    try:
        with httpx.Client(base_url=suite.base_url, timeout=10.0) as http:
            assert http.post("/_spark/kv/steady", content="7").status_code == 200
            pids = suite.child_pids()
            assert {"kv", "kv-2"} <= set(pids)
            os.kill(pids["kv"], signal.SIGKILL)
            statuses = [http.get("/_spark/kv/steady").status_code for _ in range(200)]
            assert statuses == [200] * 200, suite.logs()
            assert wait_for(lambda: suite.child_pids()["kv"] != pids["kv"], 10.0)
            assert wait_for(lambda: http.get("/healthz").status_code == 200, 10.0)
    finally:
        suite.stop()
