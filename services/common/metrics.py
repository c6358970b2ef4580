"""Prometheus metrics per service: requests by method and code, and a latency histogram."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def split_method(full_method: str) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service, method


@dataclass
class ServiceMetrics:
    """The metrics of one service process, in their own registry (no process-wide globals)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by method and status code.",
            ("grpc_service", "grpc_method", "grpc_code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC on the server, by method.",
            ("grpc_service", "grpc_method"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        # Labelled children looked up once per (method, code): `labels()` costs a lock and a tuple per call.
        self._handled: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}

    def observe(self, full_method: str, code: str, seconds: float) -> None:
        handled = self._handled.get((full_method, code))
        if handled is None:
            service, method = split_method(full_method)
            handled = self._handled[(full_method, code)] = self.handled.labels(service, method, code)
        latency = self._latency.get(full_method)
        if latency is None:
            service, method = split_method(full_method)
            latency = self._latency[full_method] = self.latency.labels(service, method)
        handled.inc()
        latency.observe(seconds)


class MetricsEndpoint:
    """The `/metrics` HTTP endpoint of one service, served from a background thread."""

    def __init__(self, metrics: ServiceMetrics, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)
        self.port: int = self._server.server_port
        logger.info("metrics on :%s", self.port, extra={"metrics_port": self.port})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
