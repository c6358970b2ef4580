"""Helpers for end-to-end tests over HTTP: JSON errors, SSE bodies, waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def json_error(response: httpx.Response, status: int, fragment: str) -> dict[str, Any]:
    """Asserts a JSON error with this status whose message contains `fragment`; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = dict(response.json())
    assert fragment in body["message"], body
    return body


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order (comments dropped)."""
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block.startswith("data: ")]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Polls until `condition()` holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
