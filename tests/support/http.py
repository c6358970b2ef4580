"""Helpers for end-to-end tests over HTTP: JSON errors, SSE bodies, waiting for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

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


T = TypeVar("T")
R = TypeVar("R")


def in_threads(base_url: str, work: Callable[[httpx.Client, T], R], items: Sequence[T], workers: int) -> list[R]:
    """`work(client, item)` for every item on `workers` threads, each with a client of its own, as separate
    browsers would be (one httpx client shared by threads can hand a connection closed by one to another)."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def run(item: T) -> R:
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=30.0)
            with lock:
                clients.append(client)
        return work(client, item)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, items))
    finally:
        for client in clients:
            client.close()
