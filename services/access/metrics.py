"""The access service's own Prometheus metrics, registered next to the shared gRPC ones."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)


class AccessMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._checks = Counter(
            "access_checks",
            "Access checks of the calls this service served, by route class and outcome (allowed, internal, or the "
            "refusal's reason: RATE_LIMITED, API_KEY_INVALID, ...).",
            ("route_class", "outcome"),
            registry=registry,
        )
        self._load = Histogram(
            "spark_client_load_seconds",
            "Spark runtime load time reported by browsers through /_spark/loaded.",
            buckets=_LOAD_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], Any] = {}

    def _child(self, family: Counter, kind: str, route_class: str, value: str) -> Any:
        child = self._children.get((kind, route_class, value))
        if child is None:
            child = self._children[(kind, route_class, value)] = family.labels(route_class, value)
        return child

    def check(self, route_class: str, outcome: str) -> None:
        self._child(self._checks, "check", route_class, outcome).inc()

    def client_load(self, seconds: float) -> None:
        self._load.observe(seconds)
