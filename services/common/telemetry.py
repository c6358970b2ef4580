"""OpenTelemetry tracing: one tracer provider per process, OTLP export when configured."""

from __future__ import annotations

import logging

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from redis.asyncio import Redis

logger = logging.getLogger(__name__)


def build_tracer_provider(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """A provider that exports to the OTLP endpoint when one is set."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"spark-{service}"}))
    if otlp_endpoint:
        insecure = not otlp_endpoint.startswith("https://")
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=insecure)))
        logger.info("exporting traces", extra={"otlp_endpoint": otlp_endpoint})
    return provider


def _traced(details: grpc.HandlerCallDetails) -> bool:
    # Health and reflection are operator plumbing, not requests worth a trace; Health/Watch is also a
    # coroutine-style stream, which the instrumentation's stream wrapper cannot drive. A plain prefix
    # test: the library's own filters cost a typing.Protocol isinstance check per call.
    method: str = details.method
    return not method.startswith(_UNTRACED_PREFIXES)


_UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


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
