"""House style, enforced: ruff and mypy (strict) are clean."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.suite import ROOT

pytestmark = pytest.mark.checks


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run("mypy", "launcher", "services", "edge", "tools", "benchmarks", "fuzz")
    assert result.returncode == 0, result.stdout + result.stderr
