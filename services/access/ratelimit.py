"""Envoy's rate-limit API (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`).

The edge sends one descriptor per request: `[(route_class, <class>),
(subject, user:<id> | address:<ip>)]`. The limit is the class's `per_user`
or `per_address`. Envoy turns the statuses into `X-RateLimit-*` headers; an
over-limit answer carries `Retry-After` and the JSON error body.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2 as rls
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from google.protobuf import duration_pb2

from services.access.limiter import Decision, Limiter
from services.access.metrics import AccessMetrics
from services.access.policy import ClassLimit, Limits
from services.access.replies import error_body, retry_after
from services.common.errors import ResourceExhausted
from services.common.store import StoreError

logger = logging.getLogger(__name__)

UNITS = {
    "second": rls.RateLimitResponse.RateLimit.SECOND,
    "minute": rls.RateLimitResponse.RateLimit.MINUTE,
    "hour": rls.RateLimitResponse.RateLimit.HOUR,
    "day": rls.RateLimitResponse.RateLimit.DAY,
}


def _status(limit: ClassLimit, decision: Decision) -> rls.RateLimitResponse.DescriptorStatus:
    return rls.RateLimitResponse.DescriptorStatus(
        code=rls.RateLimitResponse.OK if decision.allowed else rls.RateLimitResponse.OVER_LIMIT,
        current_limit=rls.RateLimitResponse.RateLimit(
            name=limit.route_class, requests_per_unit=decision.limit, unit=UNITS[limit.window]
        ),
        limit_remaining=decision.remaining,
        duration_until_reset=duration_pb2.Duration(seconds=max(1, int(decision.reset_s + 0.999))),
    )


def over_limit_error(limit: ClassLimit, decision: Decision) -> ResourceExhausted:
    return ResourceExhausted(
        f"rate limit exceeded: {decision.limit} requests per {limit.window} on {limit.route_class} routes; "
        f"retry in {retry_after(decision.reset_s)} s",
        reason="RATE_LIMITED",
        metadata={"route_class": limit.route_class, "limit": str(decision.limit), "window": limit.window},
        retry_after_s=decision.reset_s,
    )


class RateLimitServicer(rls_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, limits: Limits, limiter: Limiter, metrics: AccessMetrics) -> None:
        self._limits = limits
        self._limiter = limiter
        self._metrics = metrics

    async def ShouldRateLimit(self, request: rls.RateLimitRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        cost = request.hits_addend or 1
        response = rls.RateLimitResponse(overall_code=rls.RateLimitResponse.OK)
        refusal: ResourceExhausted | None = None
        for descriptor in request.descriptors:
            entries = {entry.key: entry.value for entry in descriptor.entries}
            limit = self._limits.classes.get(entries.get("route_class", ""))
            subject = entries.get("subject", "")
            if limit is None or not subject:
                # A misconfigured edge fails closed: Envoy answers its status_on_error.
                logger.error("rate-limit descriptor without a known route class and subject: %s", sorted(entries))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "descriptor needs route_class and subject")
            per = limit.per_user if subject.startswith("user:") else limit.per_address
            try:
                decision = await self._limiter.hit(f"{limit.route_class}|{subject}", per, limit.window_s, cost)
            except StoreError:
                logger.exception("store failed during a rate-limit decision")
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the rate-limit store is unavailable")
            response.statuses.append(_status(limit, decision))
            self._metrics.rate_limit(limit.route_class, "ok" if decision.allowed else "over_limit")
            if not decision.allowed and refusal is None:
                refusal = over_limit_error(limit, decision)
        if refusal is not None:
            response.overall_code = rls.RateLimitResponse.OVER_LIMIT
            response.response_headers_to_add.extend(
                [
                    base_pb2.HeaderValue(key="retry-after", value=retry_after(refusal.retry_after_s or 1)),
                    base_pb2.HeaderValue(key="content-type", value="application/json"),
                ]
            )
            response.raw_body = error_body(refusal)
        return response
