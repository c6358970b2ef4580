"""One trace per request across hops: the edge's span is the parent of the service's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

SERVER_KIND = 2


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver()
    yield running
    running.stop()


def test_edge_and_kv_spans_share_one_trace(tmp_path: Path, receiver: OtlpReceiver) -> None:
    suite = RunningSuite.start(
        tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    )
    try:
        with httpx.Client(base_url=suite.base_url, timeout=10) as http:
            assert http.post("/_spark/kv/traced", content="1").status_code == 200

        def complete(spans: list[ReceivedSpan]) -> bool:
            return any(s.service == "spark-kv" and s.name.endswith("SetSparkValue") for s in spans) and any(
                s.service == "spark-edge" for s in spans
            )

        spans = receiver.wait_for(complete, 20.0)
    finally:
        suite.stop()
    kv = next(s for s in spans if s.service == "spark-kv" and s.name.endswith("SetSparkValue"))
    edge = [s for s in spans if s.service == "spark-edge" and s.trace_id == kv.trace_id]
    assert edge, f"no edge span in the kv span's trace: {spans}"
    assert kv.kind == SERVER_KIND
    assert kv.parent_span_id in {s.span_id for s in edge}
