"""Helpers for end-to-end tests over HTTP: JSON errors, SSE bodies, waiting for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from edge.envoy import error_type
from edge.routes import ErrorFormat

# The routes that answer errors in an API's own shape (README, "Every error is JSON"); every other path has
# the suite's. Exact paths, and `/v1/responses` with everything under it.
OPENAI_ERROR_PATHS = frozenset({"/v1/chat/completions", "/v1/chat/completions:stream", "/v1/embeddings", "/v1/models"})
OPENAI_ERROR_PREFIX = "/v1/responses"
ANTHROPIC_ERROR_PATHS = frozenset({"/v1/messages", "/v1/messages:stream"})
_TYPE = "type.googleapis.com/google.rpc."


def json_error(response: httpx.Response, status: int, fragment: str) -> dict[str, Any]:
    """Asserts a JSON error with this status whose message contains `fragment`; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = dict(response.json())
    assert fragment in body["message"], body
    return body


def error_shape(target: str | bytes) -> ErrorFormat:
    """The error shape of the route a request target (path and query, as the edge routes it) goes to."""
    path = (target.decode("latin-1") if isinstance(target, bytes) else target).partition("?")[0]
    if path in OPENAI_ERROR_PATHS or path == OPENAI_ERROR_PREFIX or path.startswith(OPENAI_ERROR_PREFIX + "/"):
        return "openai"
    if path in ANTHROPIC_ERROR_PATHS:
        return "anthropic"
    return "suite"


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error body read the same way whatever its shape.

    `reason` is the ErrorInfo reason as the service names it (OpenAI's `code` is it lowercased, or Envoy's
    response-code detail for Envoy's own replies: both are given upper-cased); `field` is the first field
    at fault (OpenAI's `param`, the suite's first BadRequest violation). Anthropic's shape carries neither.
    """

    shape: ErrorFormat
    status: int
    message: str
    reason: str | None
    field: str | None
    body: dict[str, Any]


def read_error(status: int, body: Any, shape: ErrorFormat) -> ApiError:
    """Asserts that `body` is an error of this status in exactly this shape, and reads it."""
    assert status >= 400, (status, body)
    assert isinstance(body, dict), body
    if shape == "openai":
        assert list(body) == ["error"], body
        error = body["error"]
        assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, body
        assert error["type"] == error_type("openai", status), (status, body)
        assert all(error[key] is None or isinstance(error[key], str) for key in ("param", "code")), body
        code, param = error["code"], error["param"]
        message, reason, field = error["message"], code.upper() if code is not None else None, param
    elif shape == "anthropic":
        assert set(body) == {"type", "error"} and body["type"] == "error", body
        error = body["error"]
        assert isinstance(error, dict) and set(error) == {"type", "message"}, body
        assert error["type"] == error_type("anthropic", status), (status, body)
        message, reason, field = error["message"], None, None
    else:
        assert {"code", "message"} <= set(body) <= {"code", "message", "details"}, body
        assert isinstance(body["code"], int), body
        details = body.get("details", [])
        assert isinstance(details, list), body
        infos = [d for d in details if d.get("@type") == _TYPE + "ErrorInfo"]
        requests = [d for d in details if d.get("@type") == _TYPE + "BadRequest"]
        violations = [v for d in requests[:1] for v in d.get("fieldViolations") or d.get("field_violations") or []]
        message = body["message"]
        reason = infos[0]["reason"] if infos else None
        field = violations[0]["field"] if violations else None
    assert isinstance(message, str), body
    return ApiError(shape, status, message, reason, field, dict(body))


def api_error(response: httpx.Response, status: int, fragment: str = "") -> ApiError:
    """`json_error` on any route: a JSON error with this status in its route's shape (`error_shape`), whose
    message contains `fragment`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = read_error(status, response.json(), error_shape(response.request.url.path))
    assert fragment in error.message, error
    return error


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
