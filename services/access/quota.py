"""Counting one request against its route class's rate limit: the one place both edge paths use.

The edge counts either inside the ext_authz check (`SPARK_EDGE_RATE_LIMITS=check`, the default: one
call to the access service per request) or through Envoy's rate-limit filter and the
`envoy.service.ratelimit.v3` API (`filter`: a second call). Both count the same buckets with the same
limits, and both answer with the same `X-RateLimit-*` headers, 429 body and `Retry-After`.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.access.limiter import Decision, Limiter
from services.access.metrics import AccessMetrics
from services.access.policy import ClassLimit, Limits
from services.access.replies import retry_after
from services.common.errors import ResourceExhausted


@dataclass(frozen=True, slots=True)
class Counted:
    limit: ClassLimit
    decision: Decision

    def headers(self) -> list[tuple[str, str]]:
        """The headers Envoy's rate-limit filter writes (draft 03 of the IETF RateLimit fields)."""
        limit = self.decision.limit
        return [
            ("x-ratelimit-limit", f'{limit}, {limit};w={self.limit.window_s};name="{self.limit.route_class}"'),
            ("x-ratelimit-remaining", str(self.decision.remaining)),
            ("x-ratelimit-reset", retry_after(self.decision.reset_s)),
        ]

    def refusal(self) -> ResourceExhausted:
        return ResourceExhausted(
            f"rate limit exceeded: {self.decision.limit} requests per {self.limit.window} on "
            f"{self.limit.route_class} routes; retry in {retry_after(self.decision.reset_s)} s",
            reason="RATE_LIMITED",
            metadata={
                "route_class": self.limit.route_class,
                "limit": str(self.decision.limit),
                "window": self.limit.window,
            },
            retry_after_s=self.decision.reset_s,
        )


class Quota:
    def __init__(self, limits: Limits, limiter: Limiter, metrics: AccessMetrics) -> None:
        self._limits = limits
        self._limiter = limiter
        self._metrics = metrics

    def knows(self, route_class: str) -> bool:
        return route_class in self._limits.classes

    async def count(self, route_class: str, subject: str, cost: int = 1) -> Counted:
        """Counts against `per_user` for "user:<id>" subjects and `per_address` for the others.
        Raises KeyError for a route class the limits file does not know; StoreError when the store fails."""
        limit = self._limits.classes[route_class]
        per = limit.per_user if subject.startswith("user:") else limit.per_address
        decision = await self._limiter.hit(f"{route_class}|{subject}", per, limit.window_s, cost)
        self._metrics.rate_limit(route_class, "ok" if decision.allowed else "over_limit")
        return Counted(limit, decision)
