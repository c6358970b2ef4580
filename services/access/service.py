"""`spark.access.v1.AccessService`: the caller's user, the runtime's load reports, and API keys."""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
from spark.access.v1 import access_pb2, access_pb2_grpc

from services.access.config import AccessConfig
from services.access.keys import MAX_LABEL_CHARS, KeyRecord, KeyStore
from services.access.metrics import AccessMetrics
from services.access.users import MAX_URL_CHARS, User, user_from_request
from services.common.errors import FieldViolation, InvalidArgument, NotFound, Unauthenticated
from services.common.identity import ANONYMOUS, current_caller

logger = logging.getLogger(__name__)

MAX_LOAD_MS = 3_600_000.0

Context = grpc.aio.ServicerContext[Any, Any]


def _key_proto(record: KeyRecord) -> access_pb2.ApiKey:
    return access_pb2.ApiKey(
        id=record.id, label=record.label, user=record.user.to_proto(), created_at=record.created_at
    )


def _without_query(url: str) -> str:
    """The URL without query and fragment, which may hold tokens."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, config: AccessConfig, keys: KeyStore, metrics: AccessMetrics, development_user: User) -> None:
        self._config = config
        self._keys = keys
        self._metrics = metrics
        self._development_user = development_user

    async def GetUser(self, request: access_pb2.GetUserRequest, context: Context) -> access_pb2.User:
        user_id = current_caller()
        if user_id == ANONYMOUS:
            raise Unauthenticated("the request carries no identity: send an API key", reason="NO_IDENTITY")
        if self._config.gate.mode == "development" and user_id == self._development_user.id:
            return self._development_user.to_proto()
        user = await self._keys.user(user_id)
        if user is None:
            raise NotFound(f"user {user_id!r} not found", reason="USER_NOT_FOUND")
        return user.to_proto()

    async def RecordLoad(
        self, request: access_pb2.RecordLoadRequest, context: Context
    ) -> access_pb2.RecordLoadResponse:
        violations = []
        if len(request.url) > MAX_URL_CHARS:
            violations.append(FieldViolation("url", f"at most {MAX_URL_CHARS} characters"))
        if not (math.isfinite(request.load_ms) and 0 <= request.load_ms <= MAX_LOAD_MS):
            violations.append(FieldViolation("load_ms", f"milliseconds from 0 to {MAX_LOAD_MS:.0f}"))
        if violations:
            raise InvalidArgument("the load report is not valid", reason="INVALID_LOAD", violations=tuple(violations))
        self._metrics.client_load(request.load_ms / 1000)
        logger.info(
            "client loaded",
            extra={
                "event": "client_loaded",
                "url": _without_query(request.url),
                "load_ms": round(request.load_ms, 1),
                "user": current_caller(),
            },
        )
        return access_pb2.RecordLoadResponse()

    async def CreateApiKey(
        self, request: access_pb2.CreateApiKeyRequest, context: Context
    ) -> access_pb2.CreateApiKeyResponse:
        if len(request.label) > MAX_LABEL_CHARS:
            raise InvalidArgument(
                "the label is too long",
                reason="INVALID_LABEL",
                violations=(FieldViolation("label", f"at most {MAX_LABEL_CHARS} characters"),),
            )
        record, secret = await self._keys.create(
            user_from_request(request.user), request.label, update_user=request.update_user
        )
        logger.info(
            "API key created",
            extra={"key_id": record.id, "user": record.user.id, "update_user": request.update_user},
        )
        return access_pb2.CreateApiKeyResponse(key=_key_proto(record), secret=secret)

    async def ListApiKeys(
        self, request: access_pb2.ListApiKeysRequest, context: Context
    ) -> access_pb2.ListApiKeysResponse:
        return access_pb2.ListApiKeysResponse(keys=[_key_proto(r) for r in await self._keys.list()])

    async def RevokeApiKey(
        self, request: access_pb2.RevokeApiKeyRequest, context: Context
    ) -> access_pb2.RevokeApiKeyResponse:
        await self._keys.revoke(request.id)
        logger.info("API key revoked", extra={"key_id": request.id})
        return access_pb2.RevokeApiKeyResponse()

    async def GetPolicy(self, request: access_pb2.GetPolicyRequest, context: Context) -> access_pb2.Policy:
        limits = self._config.gate.limits
        return access_pb2.Policy(
            mode=self._config.gate.mode,
            limits=[
                access_pb2.RateLimit(
                    route_class=c.route_class, per_user=c.per_user, per_address=c.per_address, window=c.window
                )
                for c in limits.classes.values()
            ],
            nonce_routes=sorted(self._config.gate.nonce_routes),
            nonce_ttl_s=self._config.gate.nonce_ttl_s,
            auth_failures_per_address=limits.auth_failures_per_address,
        )
