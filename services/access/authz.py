"""Envoy's ext_authz API (`envoy.service.auth.v3.Authorization/Check`) in front of the gate.

An allowed request goes on with the trusted `x-spark-user` set (a client's is
replaced or removed) and the API key removed, so services never see keys. On
routes whose rate limit is counted here (the default) the `X-RateLimit-*`
headers go on the response, and an exhausted limit is a 429; otherwise the
rate-limit subject goes to Envoy's rate-limit filter as dynamic metadata. A
refusal is the error as a JSON body with its HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from services.access.gate import Admission, Gate, RouteContext
from services.access.metrics import AccessMetrics
from services.access.quota import Quota
from services.access.replies import error_body, http_status_of, retry_after
from services.common.errors import DomainError, PermissionDenied, Unavailable
from services.common.identity import USER_METADATA
from services.common.store import StoreError

logger = logging.getLogger(__name__)

SUBJECT_METADATA = "subject"
# Credentials stop at the edge.
REMOVED_HEADERS = ("authorization", "x-api-key")
MAX_CACHED_REPLIES = 4096


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def allowed(admission: Admission, response_headers: Sequence[tuple[str, str]] = ()) -> authz.CheckResponse:
    """With `response_headers` (the rate limit was counted here) the subject is not needed downstream."""
    user_id = admission.user.id if admission.user is not None else ""
    ok = authz.OkHttpResponse(
        headers=[_header(USER_METADATA, user_id)] if user_id else [],
        headers_to_remove=[*REMOVED_HEADERS, *(() if user_id else (USER_METADATA,))],
        response_headers_to_add=[_header(key, value) for key, value in response_headers],
    )
    response = authz.CheckResponse(status=status_pb2.Status(code=code_pb2.OK), ok_response=ok)
    if not response_headers:
        # For the rate-limit filter's descriptor.
        response.dynamic_metadata.update({SUBJECT_METADATA: admission.subject})
    return response


def denied(error: DomainError, response_headers: Sequence[tuple[str, str]] = ()) -> authz.CheckResponse:
    headers = [_header("content-type", "application/json"), *(_header(k, v) for k, v in response_headers)]
    if error.retry_after_s is not None:
        headers.append(_header("retry-after", retry_after(error.retry_after_s)))
    return authz.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message=error.message),
        denied_response=authz.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status_of(error)),
            headers=headers,
            body=error_body(error).decode(),
        ),
    )


class AuthorizationServicer(authz_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, gate: Gate, quota: Quota, metrics: AccessMetrics) -> None:
        self._gate = gate
        self._quota = quota
        self._metrics = metrics
        # Without rate-limit headers an allowed reply depends only on the admission: identified users'
        # replies are built once.
        self._replies: dict[Admission, authz.CheckResponse] = {}

    async def Check(self, request: authz.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        attributes = request.attributes
        http = attributes.request.http
        route = RouteContext.from_extensions(attributes.context_extensions)
        route_class = route.route_class if route is not None else "none"
        try:
            if route is None or not self._quota.knows(route.route_class):
                raise PermissionDenied("this route has no access policy at the edge", reason="NO_ROUTE_POLICY")
            admission = await self._gate.admit(
                route, http.method, http.headers, attributes.source.address.socket_address.address
            )
            limit_headers: list[tuple[str, str]] = []
            if route.counted_here:
                counted = await self._quota.count(route.route_class, admission.subject)
                limit_headers = counted.headers()
                if not counted.decision.allowed:
                    self._metrics.check(route_class, "RATE_LIMITED")
                    return denied(counted.refusal(), limit_headers)
        except DomainError as error:
            self._metrics.check(route_class, error.reason or type(error).__name__)
            return denied(error)
        except StoreError:
            logger.exception("store failed during an access check")
            self._metrics.check(route_class, "STORE_UNAVAILABLE")
            return denied(Unavailable("the access store is unavailable; retry shortly", reason="STORE_UNAVAILABLE"))
        self._metrics.check(route_class, "allowed")
        if limit_headers or admission.user is None:
            return allowed(admission, limit_headers)
        reply = self._replies.get(admission)
        if reply is None:
            if len(self._replies) >= MAX_CACHED_REPLIES:
                self._replies.clear()
            reply = self._replies[admission] = allowed(admission)
        return reply
