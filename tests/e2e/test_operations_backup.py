"""docs/operations.md's backup of the embedded SQLite store, as documented: each command, run from a
checkout-like directory while the suite takes writes, makes a copy that restores as documented with every
write acknowledged before the backup began; a wrong path fails instead of copying an empty database."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.suite import ROOT, RunningSuite

pytestmark = pytest.mark.e2e

SMALL_SUITE = {"SPARK_SERVICES": "meta,access,kv", "SPARK_KV_WORKERS": "1"}
BEFORE = 50


def documented_commands() -> list[str]:
    """The backup commands of the SQLite row of docs/operations.md's backup table."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| The embedded SQLite store"))
    return [code for code in re.findall(r"`([^`]+)`", row) if code.startswith(("sqlite3 ", "python3 "))]


def run_documented(command: str, checkout: Path, backups: Path) -> subprocess.CompletedProcess[str]:
    """Runs a documented command in `checkout` (where `var/` is), with `/backups/` rewritten to `backups`."""
    return subprocess.run(
        ["bash", "-c", command.replace("/backups/", f"{backups}/")],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def restore(copy: Path, data: Path) -> None:
    """docs/operations.md's restore, once the suite is stopped."""
    for leftover in ("spark.db-wal", "spark.db-shm"):
        (data / leftover).unlink(missing_ok=True)
    (data / "spark.db").write_bytes(copy.read_bytes())


def test_each_documented_backup_is_a_consistent_copy_that_restores(tmp_path: Path) -> None:
    commands = documented_commands()
    assert [command.split()[0] for command in commands] == ["sqlite3", "python3"], commands
    checkout, backups = tmp_path / "checkout", tmp_path / "backups"
    data = checkout / "var"
    backups.mkdir(parents=True)
    env = {**SMALL_SUITE, "SPARK_DATA_DIR": str(data)}
    copies: list[Path] = []
    suite = RunningSuite.start(tmp_path / "suite", env)
    try:
        with httpx.Client(base_url=suite.base_url, timeout=30.0) as http:
            for n in range(BEFORE):
                assert http.put(f"/_spark/kv/before-{n}", content=f'{{"n":{n}}}').status_code == 200
            stop = threading.Event()
            written: list[int] = []

            def keep_writing() -> None:
                with httpx.Client(base_url=suite.base_url, timeout=30.0) as writer:
                    while not stop.is_set():
                        n = len(written)
                        if writer.put(f"/_spark/kv/during-{n}", content=f'"{"x" * 1000}"').status_code == 200:
                            written.append(n)

            writer = threading.Thread(target=keep_writing)
            writer.start()
            try:
                for number, command in enumerate(commands):
                    done = run_documented(command, checkout, backups)
                    assert done.returncode == 0, done.stderr
                    [made] = [path for path in backups.iterdir() if path not in copies]
                    copies.append(made.rename(backups / f"copy-{number}.db"))
            finally:
                stop.set()
                writer.join()
            assert written, "no write went on during the backups"
        for copy in copies:
            with sqlite3.connect(copy) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        suite.stop()
    for number, copy in enumerate(copies):
        restore(copy, data)
        with (
            RunningSuite.start(tmp_path / f"restored-{number}", env) as restored,
            httpx.Client(base_url=restored.base_url, timeout=30.0) as http,
        ):
            for n in range(BEFORE):
                got = http.get(f"/_spark/kv/before-{n}")
                assert (got.status_code, got.text) == (200, f'{{"n":{n}}}'), restored.logs()


def test_a_wrong_path_fails_instead_of_copying_an_empty_database(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    for command in documented_commands():
        done = run_documented(command, tmp_path, backups)
        assert done.returncode != 0, command
        assert "unable to open database" in done.stderr
        assert not (tmp_path / "var").exists()
        for made in backups.iterdir():
            assert made.stat().st_size == 0, made
