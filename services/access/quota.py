"""Counting one call against its route class's rate limit, with the `X-RateLimit-*` headers and the 429
that go with it."""

from __future__ import annotations

from dataclasses import dataclass

from services.access.limiter import Decision, Limiter
from services.access.policy import ClassLimit, Limits
from services.common.errors import ResourceExhausted
from services.common.retry import retry_after


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
    def __init__(self, limits: Limits, limiter: Limiter) -> None:
        self._limits = limits
        self._limiter = limiter

    async def count(self, route_class: str, subject: str, cost: int = 1) -> Counted:
        """Counts against `per_user` for "user:<id>" subjects and `per_address` for the others.
        Raises KeyError for a route class the limits file does not know; StoreError when the store fails."""
        limit = self._limits.classes[route_class]
        per = limit.per_user if subject.startswith("user:") else limit.per_address
        decision = await self._limiter.hit(f"{route_class}|{subject}", per, limit.window_s, cost)
        return Counted(limit, decision)
