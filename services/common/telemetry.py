"""OpenTelemetry tracing: one tracer provider per process, OTLP export when configured, head-sampled.

Sampling is decided once per request, where it enters the suite, and every hop follows that decision
(parent-based): the edge samples HTTP requests (Envoy's random sampling, at the same ratio) and passes its
decision in `traceparent`; a service samples the calls that reach it with no trace context, by trace id.
A call whose parent was not sampled is not instrumented at all (no span, no CPU), and a span that is not
a server span (a provider call, a Redis command, a call to another service) is only ever a child: it
never starts a trace of its own. `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (services/common/config.py)
set the ratio; the default is `parentbased_traceidratio` at 0.01 (benchmarks.access measures the cost).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from redis.asyncio import Redis

from services.common.identity import INTERNAL_HEADER

logger = logging.getLogger(__name__)


class _ServerRoots(Sampler):
    """Roots: a server span by its trace id at the ratio, anything else never (it would be an orphan)."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(  # noqa: PLR0917 (the SDK's signature)
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is not SpanKind.SERVER:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"ServerRoots{{{self._ratio.get_description()}}}"


def build_tracer_provider(service: str, otlp_endpoint: str | None, sampling_ratio: float = 1.0) -> TracerProvider:
    """A provider that exports to the OTLP endpoint when one is set, sampling as the module says."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"spark-{service}"}),
        sampler=ParentBased(root=_ServerRoots(sampling_ratio)),
    )
    if otlp_endpoint:
        insecure = not otlp_endpoint.startswith("https://")
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=insecure)))
        logger.info("exporting traces", extra={"otlp_endpoint": otlp_endpoint})
    return provider


def _traced(details: grpc.HandlerCallDetails) -> bool:
    """Whether to instrument a call at all. Health and reflection are operator plumbing, not requests worth a
    trace (Health/Watch is also a coroutine-style stream, which the instrumentation's stream wrapper cannot
    drive). A call whose `traceparent` says its trace is not sampled is left alone, and so is a call from
    another part of the suite that carries none (its caller was not traced). Plain tests: the library's own
    filters cost a typing.Protocol isinstance check per call."""
    method: str = details.method
    if method.startswith(_UNTRACED_PREFIXES):
        return False
    internal = False
    for key, value in details.invocation_metadata or ():
        if key == TRACEPARENT:
            # version-trace_id-parent_id-flags: bit 0 of the flags is "sampled".
            return isinstance(value, str) and value[-1:] in _SAMPLED_LAST_DIGITS
        if key == INTERNAL_HEADER:  # only its presence matters here, not whether it is right
            internal = True
    return not internal


_UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
TRACEPARENT = "traceparent"
_SAMPLED_LAST_DIGITS = frozenset("13579bdfBDF")


def server_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    """Starts a server span per RPC, continuing the caller's trace from its metadata."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(tracer_provider=provider, filter_=_traced)
    return interceptor


def client_interceptors(provider: TracerProvider) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for channels to other services, propagating the current trace."""
    interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(tracer_provider=provider)
    return interceptors


def trace_redis(client: Redis, provider: trace.TracerProvider) -> None:
    """Makes every command on this one client a CLIENT span, a child of the current span (the RPC's).

    Only this instance is wrapped, not redis-py's classes, so other clients in the process stay untraced.
    The instrumentation writes the statement as the command name with each argument replaced by `?`
    (`EVALSHA ? ? ?`): keys and values never reach a span. No request hook is installed because it
    would be handed the raw arguments.
    """
    RedisInstrumentor.instrument_client(client, tracer_provider=provider)
