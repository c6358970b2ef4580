"""Head sampling across the suite: decided once where a request enters, followed at every hop, never an
orphan trace started by a hop that was told not to trace."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import httpx
import pytest
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

REQUESTS = 200
# Exported within 100 ms of ending.
QUICK_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


def _write_keys(suite: RunningSuite, n: int) -> None:
    with httpx.Client(base_url=suite.base_url, timeout=10) as http:
        for i in range(n):
            assert http.post(f"/_spark/kv/sampled-{i}", content=str(i)).status_code == 200


def test_half_the_requests_are_traced_whole_and_the_others_not_at_all(tmp_path: Path, receiver: OtlpReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER_ARG": "0.5", **QUICK_EXPORT}
    with RunningSuite.start(tmp_path, env) as suite:
        _write_keys(suite, REQUESTS)

        def kv_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
            return [s for s in spans if s.service == "spark-kv" and s.name.endswith("SetSparkValue")]

        def parents_arrived(spans: list[ReceivedSpan]) -> bool:
            # Envoy exports its spans in batches (every 5 s): wait for the parent of every kv span.
            ids = {s.span_id for s in spans if s.service == "spark-edge"}
            return all(s.parent_span_id in ids for s in kv_spans(spans))

        time.sleep(1.0)
        spans = receiver.wait_for(parents_arrived, 20.0)
    kv = kv_spans(spans)
    edge = {s.span_id: s for s in spans if s.service == "spark-edge"}
    # Binomial(200, 0.5): 100 ± 7 (one standard deviation); outside 55..145 is broken sampling, not chance.
    assert 55 <= len(kv) <= 145, len(kv)
    # Every service span of a sampled request hangs under the edge's span of the same trace: the edge
    # decided, and kv followed; no request was traced by kv alone.
    for span in kv:
        parent = edge.get(span.parent_span_id)
        assert parent is not None and parent.trace_id == span.trace_id, span
    assert len({s.trace_id for s in kv}) == len(kv)


def test_with_sampling_off_nothing_is_traced(tmp_path: Path, receiver: OtlpReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "always_off", **QUICK_EXPORT}
    with RunningSuite.start(tmp_path, env) as suite:
        _write_keys(suite, 20)
        # A direct call without trace context: the service decides, and the ratio is 0.
        with grpc.insecure_channel(f"127.0.0.1:{suite.ports['kv']}") as channel:
            kv_pb2_grpc.KvServiceStub(channel).GetEntry(kv_pb2.GetEntryRequest(key="sampled-1"), timeout=5)
        time.sleep(1.5)
    assert receiver.spans() == []


def test_a_direct_call_without_trace_context_is_sampled_where_it_lands(tmp_path: Path, receiver: OtlpReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "always_on", **QUICK_EXPORT}
    with RunningSuite.start(tmp_path, env) as suite:
        with grpc.insecure_channel(f"127.0.0.1:{suite.ports['kv']}") as channel:
            kv_pb2_grpc.KvServiceStub(channel).SetEntry(kv_pb2.SetEntryRequest(key="direct", value="1"), timeout=5)
        spans = receiver.wait_for(lambda got: any(s.name.endswith("SetEntry") for s in got), 10.0)
    (span,) = [s for s in spans if s.name.endswith("SetEntry")]
    assert span.service == "spark-kv" and span.parent_span_id == ""
