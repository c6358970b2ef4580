"""Processes the tests (or benchmarks) started: stopping one by its own handle, and whether one still runs."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def terminate(process: subprocess.Popen[Any], timeout_s: float) -> int:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie waiting for its parent counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
