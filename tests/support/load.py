"""Background HTTP load for fault-injection tests, and what such tests check about every request.

`Load` runs worker threads that repeat one kind of request against the edge
until stopped, each with a client of its own and a client-side timeout, and
records every outcome: status, body, when it started and how long it took.
A test injects a fault while the load runs, then judges each request: a
request the client gave up on is a hang, and a hang is what the suite must
never do.

    with Load(suite.base_url, kv_writes("c")) as load:
        assert load.wait_for(lambda c: c.ok, 50)
        server.kill()
        ...
    assert_answered_quickly(load.calls, allowed=(503,))
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.http import wait_for

# Longer than any bound a test asserts: a request still unanswered by then is recorded as a hang.
CLIENT_TIMEOUT_S = 15.0
_JOIN_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Call:
    """One request of the load and its outcome."""

    worker: int
    sequence: int
    # What the action said the request was (e.g. the key and value written).
    label: Any
    started: float
    elapsed_s: float
    # 0 when no HTTP answer came (a transport error or the client's timeout).
    status: int
    content_type: str
    body: bytes
    error: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return (
            f"Call(worker={self.worker}, seq={self.sequence}, label={self.label!r}, status={self.status}, "
            f"elapsed={self.elapsed_s:.2f}s, error={self.error!r}, body={self.body[:200]!r})"
        )


# Builds the next request of one worker: (label, request); `sequence` counts that worker's requests from 0.
Action = Callable[[httpx.Client, int, int], tuple[Any, httpx.Request]]


class Load:
    """Worker threads repeating `action` until `stop()`; every outcome ends up in `calls`."""

    def __init__(
        self,
        base_url: str,
        action: Action,
        *,
        workers: int = 4,
        pause_s: float = 0.0,
        timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self._base_url = base_url
        self._action = action
        self._workers = workers
        self._pause_s = pause_s
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def start(self) -> Load:
        for worker in range(self._workers):
            thread = threading.Thread(target=self._run, args=(worker,), name=f"load-{worker}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> list[Call]:
        """Stops the workers after their current request and returns every call."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout_s + _JOIN_GRACE_S)
            if thread.is_alive():
                raise RuntimeError(f"load worker {thread.name} did not stop")
        if self._errors:
            raise AssertionError(f"a load worker failed: {self._errors[0]!r}") from self._errors[0]
        return self.calls

    def count(self, predicate: Callable[[Call], bool]) -> int:
        with self._lock:
            return sum(1 for call in self._calls if predicate(call))

    def wait_for(self, predicate: Callable[[Call], bool], at_least: int, timeout_s: float = 30.0) -> bool:
        """Polls until `at_least` calls satisfy `predicate` (True), or `timeout_s` passes or the load stops (False)."""

        def enough() -> bool:
            return self.count(predicate) >= at_least

        return wait_for(lambda: enough() or self._stop.is_set(), timeout_s) and enough()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self, worker: int) -> None:
        try:
            with httpx.Client(base_url=self._base_url, timeout=self._timeout_s) as client:
                sequence = 0
                while not self._stop.is_set():
                    self._record(self._send(client, worker, sequence))
                    sequence += 1
                    if self._pause_s:
                        self._stop.wait(self._pause_s)
        except BaseException as error:  # reported by stop() in the test's thread
            self._errors.append(error)

    def _send(self, client: httpx.Client, worker: int, sequence: int) -> Call:
        label, request = self._action(client, worker, sequence)
        started = time.monotonic()
        try:
            response = client.send(request)
        except httpx.HTTPError as error:
            return Call(worker, sequence, label, started, time.monotonic() - started, 0, "", b"", repr(error))
        elapsed = time.monotonic() - started
        content_type = response.headers.get("content-type", "")
        return Call(worker, sequence, label, started, elapsed, response.status_code, content_type, response.content, "")

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)


def kv_writes(collection: str, *, overwrite_every: int = 2) -> Action:
    """Spark KV sets: mostly a fresh key per request (`w<worker>-<n>`), and every `overwrite_every`-th request
    overwrites the worker's own `last-<worker>` key with its sequence number, so that a lost overwrite (an old
    value coming back) shows too. The label is (key, the exact body sent)."""

    def action(client: httpx.Client, worker: int, sequence: int) -> tuple[Any, httpx.Request]:
        if overwrite_every and sequence % overwrite_every == 1:
            key, value = f"last-{worker}", json.dumps(sequence)
        else:
            key, value = f"w{worker}-{sequence}", json.dumps({"worker": worker, "n": sequence, "pad": "x" * 64})
        request = client.build_request(
            "POST", f"/_spark/kv/{key}", params={"collection": collection}, content=value.encode()
        )
        return (key, value), request

    return action


def acknowledged_values(calls: Iterable[Call]) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """From `kv_writes` calls: every fresh key a 2xx acknowledged, with its value; and per overwritten key the
    range its final value must lie in: (the last acknowledged sequence, the last attempted one)."""
    fresh: dict[str, str] = {}
    overwritten: dict[str, tuple[int, int]] = {}
    for call in calls:
        key, value = call.label
        if key.startswith("last-"):
            acked, attempted = overwritten.get(key, (-1, -1))
            sequence = int(value)
            overwritten[key] = (max(acked, sequence) if call.ok else acked, max(attempted, sequence))
        elif call.ok:
            fresh[key] = value
    return fresh, overwritten


def lost_writes(stored: Mapping[str, str], calls: Iterable[Call]) -> list[str]:
    """What `stored` (key -> value of one collection) lacks of the acknowledged `kv_writes` calls: a fresh key
    missing or with another value, or an overwritten key whose value went back before its last acknowledged
    write."""
    fresh, overwritten = acknowledged_values(calls)
    problems = [
        f"{key}: acknowledged {value!r}, stored {stored.get(key)!r}"
        for key, value in fresh.items()
        if stored.get(key) != value
    ]
    for key, (acked, attempted) in overwritten.items():
        found = stored.get(key)
        if acked >= 0 and (found is None or not acked <= int(found) <= attempted):
            problems.append(f"{key}: acknowledged up to {acked}, attempted up to {attempted}, stored {found!r}")
    return problems


def check_kv_durability(client: httpx.Client, collection: str, calls: Sequence[Call]) -> int:
    """Asserts, through the edge, that no acknowledged `kv_writes` call was lost; returns how many there were."""
    listing = client.get(f"/_spark/db/collections/{collection}")
    assert listing.status_code == 200, listing.text
    problems = lost_writes({item["key"]: item["value"] for item in listing.json()}, calls)
    acknowledged = sum(1 for call in calls if call.ok)
    assert not problems, f"{len(problems)} of {acknowledged} acknowledged writes lost, e.g. {problems[:5]}"
    return acknowledged


def assert_answered_quickly(calls: Sequence[Call], *, allowed: Collection[int], bound_s: float = 5.0) -> None:
    """Every call was answered (none hung until the client gave up) within `bound_s`; every non-2xx has a status
    in `allowed` and a JSON error body in one of the edge's shapes."""
    hung = [call for call in calls if call.status == 0]
    assert not hung, f"{len(hung)} requests got no HTTP answer, e.g. {hung[:3]}"
    slow = [call for call in calls if call.elapsed_s >= bound_s]
    assert not slow, f"{len(slow)} requests took {bound_s} s or more, e.g. {slow[:3]}"
    for call in calls:
        if call.ok:
            continue
        assert call.status in allowed, call
        assert call.content_type.startswith("application/json"), call
        assert _error_kind(call.json()) is not None, call


def _error_kind(body: Any) -> int | str | None:
    """What a JSON error body says failed, in any of the edge's shapes: the suite's gRPC `code` (an int), or
    OpenAI's / Anthropic's error `type`; None for a body that is no error with a message."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("code"), int) and isinstance(body.get("message"), str):
        return int(body["code"])
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str):
        return str(error["type"])
    return None


def unavailable(call: Call) -> bool:
    """A 503 JSON error, as the edge answers for a dependency that is down: gRPC's UNAVAILABLE (14) in the
    suite's shape, or the route's API's own (OpenAI's `server_error`, Anthropic's `overloaded_error`)."""
    if call.status != 503 or not call.content_type.startswith("application/json"):
        return False
    return _error_kind(call.json()) in (14, "server_error", "overloaded_error")
