"""Streams outlive every timeout the edge has: with the edge's timeouts scaled down to one second, a
model silent for longer than that between tokens still streams to the end through the edge.

`tools/long_stream.py` holds a real six-minute stream with the default settings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.providers import FakeProviderThread
from tests.support.http import api_error, sse_events
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

EDGE_TIMEOUT_S = 1.0
GAP_S = 2.5
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(reply="first line\nsecond line\nthird line\n", chunk_chars=11, gap_s=GAP_S) as provider:
        yield provider


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {
        **fake.env(),
        "OPENAI_API_KEY": "sk-test",
        "SPARK_EDGE_ROUTE_TIMEOUT_S": str(EDGE_TIMEOUT_S),
        "SPARK_EDGE_STREAM_IDLE_TIMEOUT_S": str(EDGE_TIMEOUT_S),
        # Keepalives rarer than the gaps: the silence itself must get through, not just the comments.
        "SPARK_VISION_KEEPALIVE_S": "30",
        "SPARK_LLM_KEEPALIVE_S": "30",
    }
    running = RunningSuite.start(tmp_path_factory.mktemp("long-streams"), env)
    yield running
    running.stop()


def test_a_unary_route_is_still_cut_at_the_scaled_down_idle_timeout(
    suite: RunningSuite, fake: FakeProviderThread
) -> None:
    fake.delay_s = GAP_S
    try:
        with httpx.Client(base_url=suite.base_url, timeout=30.0) as http:
            response = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    finally:
        fake.delay_s = 0.0
    # The scaled-down timeouts are in force: the same silence cuts a route that is not a stream.
    assert response.status_code in (408, 504), response.text
    # Envoy's own reply on an OpenAI route: its response-code detail (e.g. stream_idle_timeout) as the code.
    reason = api_error(response, response.status_code).reason
    assert reason is not None and reason.endswith("_TIMEOUT"), response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/vision/stream", {"prompt": "Describe it.", "image_base64": base64.b64encode(PNG).decode()}),
        ("/v1/chat/completions", {"stream": True, "messages": [{"role": "user", "content": "hi"}]}),
    ],
)
def test_silences_longer_than_the_edge_timeouts_are_survived(
    suite: RunningSuite, path: str, body: dict[str, object]
) -> None:
    with httpx.Client(base_url=suite.base_url, timeout=60.0) as http:
        response = http.post(path, json=body)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]", response.text
    assert not any("error" in json.loads(e) for e in events[:-1])
