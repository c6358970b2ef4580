"""Command-line tools the tests run, found where `make` installed them, never on PATH."""

from __future__ import annotations

import sys
from pathlib import Path


def venv_tool(name: str) -> str:
    """A console script installed into the virtualenv that runs the tests (grpcurl, ...)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is missing from {path.parent}: it comes from requirements/dev.txt (`make test`)"
    return str(path)
