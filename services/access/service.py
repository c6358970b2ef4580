"""`spark.access.v1.AccessService`: the caller's user, the runtime's load reports, API keys, and sign-in."""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
from google.api import httpbody_pb2
from spark.access.v1 import access_pb2, access_pb2_grpc

from services.access.admitted import admitted
from services.access.config import AccessConfig
from services.access.keys import MAX_LABEL_CHARS, KeyRecord, KeyStore
from services.access.metrics import AccessMetrics
from services.access.sessions import MAX_RETURN_TO_CHARS, SessionBook
from services.access.signin import Reply, SignIn
from services.access.users import MAX_URL_CHARS, User, user_from_request
from services.common.errors import FieldViolation, InvalidArgument, NotFound, Unauthenticated
from services.common.identity import ANONYMOUS, current_caller
from services.common.transcoding import HTTP_STATUS_HEADER

logger = logging.getLogger(__name__)

MAX_LOAD_MS = 3_600_000.0
# Who a visitor of a public app who has not signed in is (`spark.user()`).
ANONYMOUS_USER = User(id=ANONYMOUS, login=ANONYMOUS)
# An admin names a user by GitHub login (at most 39 characters) or numeric id.
MAX_USER_CHARS = 64

Context = grpc.aio.ServicerContext[Any, Any]


def _key_proto(record: KeyRecord) -> access_pb2.ApiKey:
    return access_pb2.ApiKey(
        id=record.id, label=record.label, user=record.user.to_proto(), created_at=record.created_at
    )


def _without_query(url: str) -> str:
    """The URL without query and fragment, which may hold tokens."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _metadata(context: Context) -> tuple[dict[str, str], list[str]]:
    """The call's headers (the last value of each) and its `Cookie` headers."""
    pairs = [(key, value) for key, value in context.invocation_metadata() or () if isinstance(value, str)]
    return dict(pairs), [value for key, value in pairs if key == "cookie"]


def _bounded(field: str, value: str, limit: int) -> str:
    if len(value) > limit:
        message = f"at most {limit} characters"
        raise InvalidArgument(
            f"{field} is too long: {message}", reason="TOO_LONG", violations=(FieldViolation(field, message),)
        )
    return value


async def _answer(context: Context, reply: Reply) -> httpbody_pb2.HttpBody:
    """A reply as the edge passes it on: its status (when not 200) and headers as initial metadata."""
    metadata = list(reply.headers)
    if reply.status != 200:
        metadata.append((HTTP_STATUS_HEADER, str(reply.status)))
    if metadata:
        await context.send_initial_metadata(metadata)
    return httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(
        self,
        config: AccessConfig,
        keys: KeyStore,
        metrics: AccessMetrics,
        development_user: User,
        *,
        sign_in: SignIn,
        sessions: SessionBook,
    ) -> None:
        self._config = config
        self._keys = keys
        self._metrics = metrics
        self._development_user = development_user
        self._sign_in = sign_in
        self._sessions = sessions

    async def GetUser(self, request: access_pb2.GetUserRequest, context: Context) -> access_pb2.User:
        caller = admitted()
        if caller.credential == "session" and caller.user is not None:
            return caller.user.to_proto()
        user_id = current_caller()
        if user_id == ANONYMOUS:
            if caller.credential == "anonymous" and self._config.gate.sign_in is not None:
                # A visitor of a public app who has not signed in.
                return ANONYMOUS_USER.to_proto()
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

    async def StartSignIn(self, request: access_pb2.StartSignInRequest, context: Context) -> httpbody_pb2.HttpBody:
        return_to = _bounded("return_to", request.return_to, MAX_RETURN_TO_CHARS)
        return await _answer(context, await self._sign_in.login(return_to, admitted().address))

    async def FinishSignIn(self, request: access_pb2.FinishSignInRequest, context: Context) -> httpbody_pb2.HttpBody:
        query = {
            "code": request.code,
            "state": request.state,
            "error": request.error,
            # GitHub's words are cut to size where they are quoted.
            "error_description": request.error_description,
        }
        for field in ("code", "state", "error"):
            _bounded(field, query[field], 256)
        _, cookies = _metadata(context)
        return await _answer(context, await self._sign_in.callback(query, cookies, admitted().address))

    async def SignOut(self, request: access_pb2.SignOutRequest, context: Context) -> httpbody_pb2.HttpBody:
        return_to = _bounded("return_to", request.return_to, MAX_RETURN_TO_CHARS)
        headers, cookies = _metadata(context)
        return await _answer(context, await self._sign_in.logout(return_to, headers, cookies))

    async def OpenPage(self, request: access_pb2.OpenPageRequest, context: Context) -> httpbody_pb2.HttpBody:
        path = _bounded("path", request.path, MAX_RETURN_TO_CHARS)
        # An API key's user (the page's route is public, so the check did not ask for one) or a session's person.
        user = admitted().user
        if user is None:
            _, cookies = _metadata(context)
            user = await self._sign_in.session_user(cookies)
        return await _answer(context, await self._sign_in.open_page(path, user))

    async def ListSessions(
        self, request: access_pb2.ListSessionsRequest, context: Context
    ) -> access_pb2.ListSessionsResponse:
        return access_pb2.ListSessionsResponse(
            sessions=[
                access_pb2.SignInSession(
                    id=session.sha256[:16],
                    user=self._sign_in.person(session).to_proto()
                    if self._config.gate.sign_in
                    else session.user.to_proto(),
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                )
                for session in await self._sessions.list()
            ]
        )

    async def RevokeSessions(
        self, request: access_pb2.RevokeSessionsRequest, context: Context
    ) -> access_pb2.RevokeSessionsResponse:
        user = _bounded("user", request.user.strip(), MAX_USER_CHARS)
        if not user:
            raise InvalidArgument(
                "user must name a GitHub login or id",
                reason="INVALID_USER",
                violations=(FieldViolation("user", "empty"),),
            )
        user_id, revoked = await self._sessions.revoke(user)
        logger.info(
            "sessions revoked", extra={"event": "sessions_revoked", "user": user_id or user, "revoked": revoked}
        )
        return access_pb2.RevokeSessionsResponse(user_id=user_id or "", revoked=revoked)
