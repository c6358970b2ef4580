"""Head sampling: one decision per request, where it enters the suite, followed at every hop."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common.config import ConfigError, EnvReader, read_trace_ratio
from services.common.telemetry import _traced, build_tracer_provider
from tests.support.edge_config import BASE_ENV, rendered

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOT_SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


class Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.method = method
        self.invocation_metadata = metadata


def ratio(environ: dict[str, str]) -> float:
    env = EnvReader(environ)
    value = read_trace_ratio(env)
    env.finish()
    return value


def test_the_default_is_one_request_in_a_hundred_and_the_standard_names_are_understood() -> None:
    assert ratio({}) == 0.01
    assert ratio({"OTEL_TRACES_SAMPLER_ARG": "0.25"}) == 0.25
    assert ratio({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}) == 0.5
    assert ratio({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}) == 1.0
    assert ratio({"OTEL_TRACES_SAMPLER": "always_off", "OTEL_TRACES_SAMPLER_ARG": "0.5"}) == 0.0
    for wrong in ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, {"OTEL_TRACES_SAMPLER_ARG": "1.5"}):
        with pytest.raises(ConfigError):
            ratio(wrong)


def test_the_edge_samples_http_requests_at_the_same_ratio() -> None:
    def sampling(environ: dict[str, str]) -> Any:
        env = {**BASE_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", **environ}
        listener = rendered(env)["static_resources"]["listeners"][0]
        return listener["filter_chains"][0]["filters"][0]["typed_config"]["tracing"]["random_sampling"]

    assert sampling({}) == {"value": 1.0}
    assert sampling({"OTEL_TRACES_SAMPLER": "always_on"}) == {"value": 100.0}
    assert sampling({"OTEL_TRACES_SAMPLER_ARG": "0.001"}) == {"value": 0.1}


def test_a_call_is_instrumented_only_when_its_trace_may_be_sampled() -> None:
    method = "/spark.kv.v1.KvService/GetSparkValue"
    assert _traced(Details(method, (("traceparent", SAMPLED),)))
    assert not _traced(Details(method, (("traceparent", NOT_SAMPLED),)))
    # A direct caller with no trace context: the service decides, by trace id.
    assert _traced(Details(method))
    # Another part of the suite that sends none was not traced itself.
    assert not _traced(Details(method, (("x-spark-internal", "x"),)))
    assert _traced(Details(method, (("x-spark-internal", "x"), ("traceparent", SAMPLED))))
    assert not _traced(Details("/grpc.health.v1.Health/Check"))


@pytest.mark.parametrize(("sampling_ratio", "kept"), [(1.0, True), (0.0, False)])
def test_only_server_spans_start_traces_and_children_follow_their_parent(sampling_ratio: float, kept: bool) -> None:
    provider = build_tracer_provider("test", None, sampling_ratio)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(__name__)
    with (
        tracer.start_as_current_span("rpc", kind=SpanKind.SERVER),
        tracer.start_as_current_span("provider call", kind=SpanKind.CLIENT),
    ):
        pass
    # Outside any request: a Redis command or a call to another service never starts a trace.
    with tracer.start_as_current_span("orphan", kind=SpanKind.CLIENT):
        pass
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == (["provider call", "rpc"] if kept else [])
