"""The gRPC server bootstrap every service reuses.

`start_server` builds a `grpc.aio` server with the shared interceptors
(tracing outermost, then errors and metrics), health, reflection and a
metrics endpoint; `serve` runs it until SIGTERM or SIGINT and shuts down
gracefully: health NOT_SERVING first, then `stop(grace)`, then the
service's own resources.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import grpc
import uvloop
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.config import ConfigError, ServerConfig
from services.common.interceptors import Admissions, ErrorAndMetricsInterceptor
from services.common.logs import setup_logging
from services.common.metrics import MetricsEndpoint, ServiceMetrics
from services.common.reflection import enable_reflection
from services.common.store import Store, open_store
from services.common.telemetry import build_tracer_provider, server_interceptor

logger = logging.getLogger(__name__)

Registrar = Callable[[grpc.aio.Server], None]
Closer = Callable[[], Awaitable[None]]


class HasServerConfig(Protocol):
    @property
    def server(self) -> ServerConfig: ...


ConfigT = TypeVar("ConfigT", bound=HasServerConfig)

# Headroom over the largest payload for the protobuf framing around it.
MESSAGE_OVERHEAD_BYTES = 64 * 1024
# Every header the edge accepts (60 KiB, `max_request_headers_kb`) reaches a service as metadata, with the
# edge's own added. gRPC's defaults refuse metadata over 8 KiB some of the time and over 16 KiB always, as
# RESOURCE_EXHAUSTED: a browser with large cookies would get random 429s.
MAX_METADATA_BYTES = 96 * 1024


@dataclass
class RunningServer:
    """A started server and everything to close when it stops."""

    config: ServerConfig
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    metrics: ServiceMetrics
    tracer_provider: TracerProvider
    metrics_endpoint: MetricsEndpoint | None
    closers: list[Closer] = field(default_factory=list)
    _stopping: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def stop(self) -> None:
        """Graceful stop: advertise NOT_SERVING, drain in-flight RPCs, then release resources.

        Safe to call more than once: later callers wait for the first stop.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.config.shutdown_grace_s)
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                logger.exception("error while closing a dependency")
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        self.tracer_provider.shutdown()


def service_store(
    config: ServerConfig, redis_url: str | None, data_dir: Path, given: Store | None
) -> tuple[bool, Store, TracerProvider]:
    """(owned, store, tracer provider) of a service: the store passed in (tests share one; the caller does not
    close it), or the configured one, whose Redis calls are spans of the request being served when traces
    are exported."""
    provider = build_tracer_provider(config.name, config.otlp_endpoint, config.trace_ratio)
    if given is not None:
        return False, given, provider
    return True, open_store(redis_url, data_dir, tracer_provider=provider if config.otlp_endpoint else None), provider


def _interceptors(
    config: ServerConfig, provider: TracerProvider, metrics: ServiceMetrics, admissions: Admissions | None
) -> list[grpc.aio.ServerInterceptor]:
    """Tracing (outermost, so errors and metrics run inside the span) only when traces go somewhere:
    a span per RPC costs about a quarter of a small RPC's CPU, for nothing when no collector listens."""
    interceptors: list[grpc.aio.ServerInterceptor] = [ErrorAndMetricsInterceptor(metrics, admissions)]
    if config.otlp_endpoint:
        interceptors.insert(0, server_interceptor(provider))
    return interceptors


async def start_server(
    config: ServerConfig,
    service_names: Sequence[str],
    register: Registrar,
    *,
    closers: Sequence[Closer] = (),
    pool: descriptor_pool.DescriptorPool | None = None,
    reflected_names: Sequence[str] = (),
    tracer_provider: TracerProvider | None = None,
    metrics: ServiceMetrics | None = None,
    admissions: Admissions | None = None,
) -> RunningServer:
    """Builds, binds and starts a server for the given services; all of them report SERVING.

    Reflection describes `service_names` from the default descriptor pool, or
    `reflected_names` from `pool` when a service reflects more than it serves. With `admissions`,
    every call is admitted before its handler runs (services/access/checkpoint.py).
    """
    provider = tracer_provider or build_tracer_provider(config.name, config.otlp_endpoint, config.trace_ratio)
    # A service with metrics of its own creates the registry first and passes it in.
    metrics = metrics or ServiceMetrics()
    max_bytes = config.max_message_bytes + MESSAGE_OVERHEAD_BYTES
    server = grpc.aio.server(
        interceptors=_interceptors(config, provider, metrics, admissions),
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            # One process per port: a second copy must fail loudly, not share the port.
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, [*service_names, *reflected_names, health.SERVICE_NAME], pool)
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port}")
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    endpoint = None
    if config.metrics_port is not None:
        endpoint = MetricsEndpoint(metrics, config.host, config.metrics_port)
    logger.info("ready on :%s", port, extra={"port": port, "services": list(service_names)})
    return RunningServer(
        config=config,
        server=server,
        port=port,
        health=health_servicer,
        metrics=metrics,
        tracer_provider=provider,
        metrics_endpoint=endpoint,
        closers=list(closers),
    )


def run_service(
    name: str, read_config: Callable[[], ConfigT], build: Callable[[ConfigT], Awaitable[RunningServer]]
) -> None:
    """The body of every `python -m services.<name>`: config once, logging, serve until signalled."""
    try:
        config = read_config()
    except ConfigError as error:
        sys.stderr.write(f"{name}: {error}\n")
        raise SystemExit(2) from error
    setup_logging(name, config.server.log_level)

    async def main() -> None:
        await serve_until_signalled(await build(config))

    # uvloop: about 15% less CPU per small RPC than the default loop.
    uvloop.run(main())


async def serve_until_signalled(running: RunningServer) -> None:
    """Waits for SIGTERM or SIGINT (or the server ending), then stops gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waiter = asyncio.ensure_future(running.server.wait_for_termination())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    logger.info("shutting down", extra={"grace_s": running.config.shutdown_grace_s})
    await running.stop()
    for task in (waiter, stopper):
        task.cancel()
    logger.info("stopped")
