"""The embedded SQLite store under crashes: kv processes SIGKILLed in the middle of a write load.

Without REDIS_URL every service shares one SQLite file in WAL mode. A kv
process killed in the middle of a group commit must leave the file as if the
commit never began, and every write it acknowledged (after its COMMIT) must
survive, both while the launcher restarts it and after the whole suite dies
at once. The file is then checked by SQLite itself (`PRAGMA integrity_check`)
and read directly, and a new suite must open it and serve the same values.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from services.common.store import SQLITE_FILENAME
from services.kv.repository import space_of
from tests.support.http import wait_for
from tests.support.load import (
    Load,
    assert_answered_quickly,
    check_kv_durability,
    kv_writes,
    lost_writes,
)
from tests.support.processes import alive
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.faults

COLLECTION = "crash"
ENV = {"SPARK_SERVICES": "meta,access,kv"}
# Which kv processes each round kills at once; both together leave the edge no instance for a moment.
ROUNDS = (("kv",), ("kv", "kv-2"))


def stored_in_file(database: Path, collection: str) -> dict[str, str]:
    """The collection's entries read straight from the SQLite file, as no service is running."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT key, value FROM entries WHERE space = ?", (space_of(collection).encode(),))
        return {key.decode(): value.decode() for key, value in rows}


def integrity(database: Path) -> list[str]:
    """SQLite's own verdict on the file (opening it first recovers the WAL, as any opener would)."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]


def test_kv_killed_mid_write_loses_no_acknowledged_write_and_never_corrupts_the_file(
    tmp_path: Path, show_logs: list[RunningSuite]
) -> None:
    """Two rounds of SIGKILL on kv processes under six writers, then SIGKILL on the launcher (and so on
    every child) while they still write; the file is checked, read directly, then served again."""
    suite = RunningSuite.start(tmp_path, ENV)
    show_logs.append(suite)
    database = Path(suite.env["SPARK_DATA_DIR"]) / SQLITE_FILENAME
    kills: list[float] = []
    with suite, Load(suite.base_url, kv_writes(COLLECTION), workers=6) as load:
        for victims in ROUNDS:
            mark = time.monotonic()
            assert load.wait_for(lambda c, mark=mark: c.started > mark and c.ok, 30), load.calls[-3:]
            before = suite.child_pids()
            for name in victims:
                os.kill(before[name], signal.SIGKILL)
            kills.append(time.monotonic())
            restarted = wait_for(lambda v=victims, b=before: all(suite.child_pids()[n] != b[n] for n in v), 30)
            assert restarted, suite.launcher_output()
            with httpx.Client(base_url=suite.base_url, timeout=10.0) as client:
                assert wait_for(lambda c=client: c.get("/healthz").status_code == 200, 30), suite.logs()
        mark = time.monotonic()
        assert load.wait_for(lambda c: c.started > mark and c.ok, 30), load.calls[-3:]
        children = suite.child_pids()
        # The last crash: the launcher and, through PR_SET_PDEATHSIG, every child, with writes in flight.
        suite.process.send_signal(signal.SIGKILL)
        crashed_at = time.monotonic()
        suite.process.wait()
        assert wait_for(lambda: not any(alive(pid) for pid in children.values()), 10), children
    calls = load.calls

    answered = [c for c in calls if c.started + c.elapsed_s < crashed_at]
    assert_answered_quickly(answered, allowed=(503,))
    for killed_at in kills:
        assert any(c.started < killed_at < c.started + c.elapsed_s for c in calls), "no write was in flight"
    assert integrity(database) == ["ok"]
    problems = lost_writes(stored_in_file(database, COLLECTION), calls)
    assert not problems, problems[:5]

    reopened = RunningSuite.start(tmp_path, ENV)
    show_logs.append(reopened)
    with reopened, httpx.Client(base_url=reopened.base_url, timeout=30.0) as client:
        acknowledged = check_kv_durability(client, COLLECTION, calls)
    assert acknowledged >= 100
