"""Envoy's rate-limit API (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`).

Used when the edge runs Envoy's rate-limit filter (`SPARK_EDGE_RATE_LIMITS=filter`). The edge sends
one descriptor per request: `[(route_class, <class>), (subject, user:<id> | address:<ip>)]`. Envoy
turns the statuses into `X-RateLimit-*` headers; an over-limit answer carries `Retry-After` and the
JSON error body.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2 as rls
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from google.protobuf import duration_pb2

from services.access.quota import Counted, Quota
from services.access.replies import error_body, retry_after, whole_seconds
from services.common.store import StoreError

logger = logging.getLogger(__name__)

UNITS = {
    "second": rls.RateLimitResponse.RateLimit.SECOND,
    "minute": rls.RateLimitResponse.RateLimit.MINUTE,
    "hour": rls.RateLimitResponse.RateLimit.HOUR,
    "day": rls.RateLimitResponse.RateLimit.DAY,
}


def _status(counted: Counted) -> rls.RateLimitResponse.DescriptorStatus:
    decision = counted.decision
    return rls.RateLimitResponse.DescriptorStatus(
        code=rls.RateLimitResponse.OK if decision.allowed else rls.RateLimitResponse.OVER_LIMIT,
        current_limit=rls.RateLimitResponse.RateLimit(
            name=counted.limit.route_class, requests_per_unit=decision.limit, unit=UNITS[counted.limit.window]
        ),
        limit_remaining=decision.remaining,
        duration_until_reset=duration_pb2.Duration(seconds=whole_seconds(decision.reset_s)),
    )


class RateLimitServicer(rls_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, quota: Quota) -> None:
        self._quota = quota

    async def ShouldRateLimit(self, request: rls.RateLimitRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        cost = request.hits_addend or 1
        response = rls.RateLimitResponse(overall_code=rls.RateLimitResponse.OK)
        over: Counted | None = None
        for descriptor in request.descriptors:
            entries = {entry.key: entry.value for entry in descriptor.entries}
            route_class, subject = entries.get("route_class", ""), entries.get("subject", "")
            if not self._quota.knows(route_class) or not subject:
                # A misconfigured edge fails closed: Envoy answers its status_on_error.
                logger.error("rate-limit descriptor without a known route class and subject: %s", sorted(entries))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "descriptor needs route_class and subject")
            try:
                counted = await self._quota.count(route_class, subject, cost)
            except StoreError:
                logger.exception("store failed during a rate-limit decision")
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the rate-limit store is unavailable")
            response.statuses.append(_status(counted))
            if not counted.decision.allowed and over is None:
                over = counted
        if over is not None:
            refusal = over.refusal()
            response.overall_code = rls.RateLimitResponse.OVER_LIMIT
            response.response_headers_to_add.extend(
                [
                    base_pb2.HeaderValue(key="retry-after", value=retry_after(over.decision.reset_s)),
                    base_pb2.HeaderValue(key="content-type", value="application/json"),
                ]
            )
            response.raw_body = error_body(refusal)
        return response
