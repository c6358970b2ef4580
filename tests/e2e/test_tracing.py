"""One trace per request across hops: the edge's span is the parent of the service's."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tests.fakes.providers import FakeProviderThread
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

SERVER_KIND = 2
CLIENT_KIND = 3
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
# Every request traced (the default samples one in a hundred), exported within 100 ms.
TRACED = {"OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def test_edge_and_kv_spans_share_one_trace(tmp_path: Path, receiver: OtlpReceiver) -> None:
    suite = RunningSuite.start(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **TRACED})
    try:
        with httpx.Client(base_url=suite.base_url, timeout=10) as http:
            assert http.post("/_spark/kv/traced", content="1").status_code == 200

        def kv_span(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
            return next((s for s in spans if s.service == "spark-kv" and s.name.endswith("SetSparkValue")), None)

        def complete(spans: list[ReceivedSpan]) -> bool:
            kv = kv_span(spans)
            in_trace = [s for s in spans if kv is not None and s.trace_id == kv.trace_id]
            return kv is not None and any(s.span_id == kv.parent_span_id for s in in_trace)

        spans = receiver.wait_for(complete, 20.0)
    finally:
        suite.stop()
    kv = kv_span(spans)
    assert kv is not None
    trace = [s for s in spans if s.trace_id == kv.trace_id]
    edge = [s for s in trace if s.service == "spark-edge"]
    assert edge, f"no edge span in the kv span's trace: {spans}"
    assert kv.kind == SERVER_KIND
    assert kv.parent_span_id in {s.span_id for s in edge}
    # kv admits the call itself: no hop to the access service on the way.
    assert not [s for s in trace if s.service == "spark-access"], trace


def test_a_vision_request_is_one_trace_through_prompts_and_llm(tmp_path: Path, receiver: OtlpReceiver) -> None:
    with FakeProviderThread() as fake:
        suite = RunningSuite.start(
            tmp_path,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                **TRACED,
                "OPENAI_API_KEY": "sk-test",
                **fake.env(),
            },
        )
        try:
            with httpx.Client(base_url=suite.base_url, timeout=10) as http:
                body = {"prompt": "Describe it.", "image_base64": base64.b64encode(PNG).decode()}
                assert http.post("/v1/vision/analyze", json=body).status_code == 200

            def named(spans: list[ReceivedSpan], service: str, method: str) -> list[ReceivedSpan]:
                return [s for s in spans if s.service == service and s.name.endswith(method)]

            def complete(spans: list[ReceivedSpan]) -> bool:
                # Every span of the chain, and the parents they name, have arrived (exports are batched).
                ids = {s.span_id for s in spans}
                chain = [
                    named(spans, service, method)
                    for service, method in (
                        ("spark-vision", "Analyze"),
                        ("spark-prompts", "RenderPrompt"),
                        ("spark-llm", "GenerateContent"),
                        ("spark-llm", "POST"),
                    )
                ]
                return all(any(s.kind == SERVER_KIND and s.parent_span_id in ids for s in found) for found in chain)

            spans = receiver.wait_for(complete, 20.0)
        finally:
            suite.stop()
    by_id = {s.span_id: s for s in spans}
    vision = next(s for s in named(spans, "spark-vision", "Analyze") if s.kind == SERVER_KIND)
    assert by_id[vision.parent_span_id].service == "spark-edge"
    for service, method in (("spark-prompts", "RenderPrompt"), ("spark-llm", "GenerateContent")):
        server = next(s for s in named(spans, service, method) if s.kind == SERVER_KIND)
        client = by_id[server.parent_span_id]
        assert (client.service, client.trace_id) == ("spark-vision", vision.trace_id), (service, client)
    # llm -> provider: the HTTP call is a client span under the llm's server span, and the provider got
    # the trace in `traceparent`.
    llm = next(s for s in named(spans, "spark-llm", "GenerateContent") if s.kind == SERVER_KIND)
    http_call = next(s for s in named(spans, "spark-llm", "POST") if s.kind == CLIENT_KIND)
    assert (http_call.parent_span_id, http_call.trace_id) == (llm.span_id, vision.trace_id)
    assert fake.requests[-1].headers["traceparent"].split("-")[1] == vision.trace_id
