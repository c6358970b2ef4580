"""The launcher behind `make run`: start-up, refusals, the banner, supervision, restarts and clean stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http import wait_for
from tests.support.processes import alive
from tests.support.suite import LAUNCHER_COMMAND, READY_LINE, ROOT, RunningSuite, suite_environment

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@pytest.fixture
def fresh_suite(tmp_path: Path) -> RunningSuite:
    suite = RunningSuite.start(tmp_path)
    yield suite  # type: ignore[misc]
    suite.stop()


def test_sigterm_stops_the_edge_and_every_service(fresh_suite: RunningSuite) -> None:
    pids = fresh_suite.child_pids()
    assert set(pids) == {"meta", "access", "kv", "kv-2", "llm", "prompts", "vision", "edge"}
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


# --- refusing to start, and the banner ---

# A refusal comes before any process starts: well under a suite's start-up time even on a busy machine.
REFUSAL_S = 10.0


def launch_and_wait(env: Mapping[str, str]) -> tuple[int, str, float]:
    """Runs the launcher to its end; its exit code, its output (stdout and stderr) and how long it took."""
    started = time.monotonic()
    result = subprocess.run(
        LAUNCHER_COMMAND, cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def log_records(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_taken_port_stops_the_launcher_before_anything_starts_naming_the_setting_and_the_holder(
    tmp_path: Path,
) -> None:
    env, ports = suite_environment(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["kv"]))
        squatter.listen()
        code, output, elapsed = launch_and_wait(env)
    assert code == 2, output
    assert elapsed < REFUSAL_S, elapsed
    kv = ports["kv"]
    expected = f"kv gRPC cannot listen on 127.0.0.1:{kv} (SPARK_KV_PORT={kv}): the port is in use by pid {os.getpid()}"
    (refusal,) = [r for r in log_records(output) if r["level"] == "error" and "cannot listen" in r["msg"]]
    assert refusal["msg"].startswith(expected), refusal
    assert "pytest" in refusal["msg"] or "python" in refusal["msg"], "the holder's command line"
    assert (refusal["port"], refusal["setting"]) == (kv, f"SPARK_KV_PORT={kv}")
    assert "nothing was started" in output
    assert not [r for r in log_records(output) if r["msg"].startswith("started ")], output
    assert READY_LINE not in output


def test_keys_mode_on_redis_without_an_admin_token_refuses_to_start_saying_what_to_set(tmp_path: Path) -> None:
    env, _ = suite_environment(tmp_path, {"REDIS_URL": "redis://127.0.0.1:1/0"})
    # Not the tests' forced development mode: keys, the default next to Redis.
    del env["SPARK_ACCESS_MODE"], env["SPARK_ACCESS_ALLOW_DEVELOPMENT"]
    code, output, elapsed = launch_and_wait(env)
    assert code == 2, output
    assert elapsed < REFUSAL_S, elapsed
    assert "ADMIN_TOKEN is unset" in output and "Set ADMIN_TOKEN" in output
    assert "SPARK_ACCESS_MODE=development and SPARK_ACCESS_ALLOW_DEVELOPMENT=true" in output
    assert "started " not in output and READY_LINE not in output


def test_the_banner_and_a_second_launcher_on_the_same_ports(tmp_path: Path) -> None:
    """The banner is logged once, before anything starts, with no secret in it. A second `make run` next to a
    running suite exits 2 at once naming each port's holder, and the first suite is left alone."""
    secrets = {"ADMIN_TOKEN": "admin-s3cret-value", "OPENAI_API_KEY": "sk-s3cret-value"}
    first = RunningSuite.start(tmp_path / "first", {**secrets, "SPARK_SERVICES": "meta,access,llm"})
    with first:
        output = first.launcher_output()
        for secret in secrets.values():
            assert secret not in output and secret not in first.logs()
        records = log_records(output)
        (banner,) = [r for r in records if r["msg"].startswith("Spark services starting")]
        assert records.index(banner) < min(i for i, r in enumerate(records) if r["msg"].startswith("started "))
        assert "access: development (every caller is the owner, no API key needed)" in banner["msg"]
        assert f"store: SQLite {tmp_path / 'first' / 'data' / 'spark.db'}" in banner["msg"]
        assert "providers with keys: openai |" in banner["msg"]
        assert "admin routes: enabled (ADMIN_TOKEN is set)" in banner["msg"]
        assert banner["msg"].endswith(f"edge: {first.base_url}")
        assert (banner["access_mode"], banner["providers"], banner["admin_routes"]) == ("development", ["openai"], True)
        assert not [r for r in records if r["level"] == "warning"], "loopback: no warning"

        pids = first.child_pids()
        code, second, elapsed = launch_and_wait(first.env)
        assert code == 2, second
        assert elapsed < REFUSAL_S, elapsed
        assert READY_LINE not in second and "Spark services starting" not in second
        refusals = {r["setting"]: r["msg"] for r in log_records(second) if "cannot listen" in r["msg"]}
        edge = first.ports["edge"]
        assert f"the edge cannot listen on 127.0.0.1:{edge}" in refusals[f"SPARK_EDGE_PORT={edge}"]
        assert f"in use by pid {pids['edge']} (" in refusals[f"SPARK_EDGE_PORT={edge}"]
        meta = first.ports["meta"]
        assert f"in use by pid {pids['meta']} (" in refusals[f"SPARK_META_PORT={meta}"]
        assert "services.meta" in refusals[f"SPARK_META_PORT={meta}"]
        assert first.child_pids() == pids and all(alive(pid) for pid in pids.values())
        with httpx.Client(base_url=first.base_url, timeout=10.0) as http:
            assert http.get("/healthz").status_code == 200
