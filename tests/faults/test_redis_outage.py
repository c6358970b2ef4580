"""Redis crashes under a write load and comes back: no acknowledged write is lost, nothing hangs.

Redis holds all shared state when REDIS_URL is set, so it is the one
dependency whose crash every instance meets at once. What a deployment needs
from the suite then: requests answer 503 JSON at once while Redis is down
(the services' store deadline, not the client's patience, bounds them), the
access checks every service makes fail closed (STORE_UNAVAILABLE), the
services find Redis again by themselves once it is back (the launcher
restarts nothing), and every write that got a 2xx before the crash is still
there with its exact value, which is what Redis's AOF with an fsync every
second promises for a crash of the Redis process alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import ADMIN_TOKEN
from tests.support.load import Load, assert_answered_quickly, check_kv_durability, kv_writes, unavailable
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = [pytest.mark.faults, pytest.mark.redis]

# Long enough that every pooled connection of every instance has failed and been dropped, not just one.
MIN_OUTAGE_S = 2.0
COLLECTION = "outage"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
PROMPT = {"namespace": "outage", "name": "after", "text": "Describe {{subject}}."}


def test_a_redis_crash_under_write_load_costs_no_acknowledged_write(
    tmp_path: Path, redis: RedisServer, show_logs: list[RunningSuite]
) -> None:
    """SIGKILL Redis while four clients write through the edge, restart it on the same port and directory."""
    # Two kv processes, the access service and prompts meet the outage; each counts its calls in Redis.
    env = {"REDIS_URL": redis.url, "ADMIN_TOKEN": ADMIN_TOKEN, "SPARK_SERVICES": "meta,access,kv,prompts"}
    suite = RunningSuite.start(tmp_path / "suite", env)
    show_logs.append(suite)
    with suite:
        pids = suite.child_pids()
        with Load(suite.base_url, kv_writes(COLLECTION), workers=4) as load:
            assert load.wait_for(lambda c: c.ok, 40), load.calls[-3:]
            redis.kill()
            killed_at = time.monotonic()
            assert load.wait_for(lambda c: c.started > killed_at and unavailable(c), 8), load.calls[-3:]
            with httpx.Client(base_url=suite.base_url, timeout=15.0) as client:
                started = time.monotonic()
                prompts_down = client.post("/v1/prompts", json=PROMPT, headers=ADMIN)
                # The owner needs no store (development mode), but nothing counted the call: it is refused.
                user_down = client.get("/_spark/user")
                assert time.monotonic() - started < 10.0
            for down in (prompts_down, user_down):
                assert down.status_code == 503 and down.json()["code"] == 14, down.text
                assert down.json()["details"][0]["reason"] == "STORE_UNAVAILABLE", down.text
                assert down.headers["retry-after"] == "1"
            time.sleep(max(0.0, MIN_OUTAGE_S - (time.monotonic() - killed_at)))
            restarting_at = time.monotonic()
            redis.start()
            back_at = time.monotonic()
            recovered = load.wait_for(lambda c: c.started > back_at and c.ok, 40)
            assert recovered, f"no recovery after Redis came back: {load.calls[-3:]}"
        calls = load.calls

        assert_answered_quickly(calls, allowed=(503,))
        during = [c for c in calls if c.started > killed_at and c.started + c.elapsed_s < restarting_at]
        assert during and all(unavailable(c) for c in during), [c for c in during if not unavailable(c)][:3]
        assert {c.json()["details"][0]["reason"] for c in during} == {"STORE_UNAVAILABLE"}
        # Reconnected, not restarted: the same processes serve before and after.
        assert suite.child_pids() == pids, suite.launcher_output()
        with httpx.Client(base_url=suite.base_url, timeout=30.0) as client:
            acknowledged = check_kv_durability(client, COLLECTION, calls)
            assert client.get("/healthz").status_code == 200
            created = client.post("/v1/prompts", json=PROMPT, headers=ADMIN)
            assert created.status_code == 201, created.text
            assert client.get(f"/v1/prompts/{created.json()['id']}").json()["text"] == PROMPT["text"]
        assert acknowledged >= 80
