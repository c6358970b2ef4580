"""What every service asks of each call before serving it: who is calling, may they call this method,
and is its nonce fresh. Transport-free: `checkpoint.py` adapts it to a gRPC call."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from services.access.keys import KeyStore, looks_like_key
from services.access.limiter import Limiter
from services.access.methods import MethodPolicy
from services.access.nonces import NonceBook
from services.access.proofs import AdminProofs
from services.access.users import User
from services.common.errors import (
    FailedPrecondition,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

AUTH_FAILURE_WINDOW_S = 60
# A call with no credential at all, where one is needed.
API_KEY_REQUIRED = "an API key is required: send Authorization: Bearer <key> or X-Api-Key: <key>"
# The same, said by the edge, which does not know whether the method is an admin one.
API_KEY_OR_ADMIN_TOKEN_REQUIRED = API_KEY_REQUIRED + " (admin routes: X-Admin-Token)"
# Where a call may carry a credential: an API key, or the admin token alone on admin methods.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-admin-token")


@dataclass(frozen=True, slots=True)
class Admission:
    user: User | None
    # The rate-limit subject: "user:<id>", or "address:<ip>" for anonymous callers.
    subject: str


@dataclass(frozen=True, slots=True)
class GateSettings:
    development: bool
    development_user: User
    # Who a request authenticated by the admin token alone is.
    operator: User
    admin_token: str | None
    # Method names (e.g. "GetPolicy") or route classes on which X-Nonce is required.
    nonce_routes: frozenset[str]
    auth_failures_per_address: int


class Gate:
    def __init__(
        self, settings: GateSettings, keys: KeyStore, nonces: NonceBook, limiter: Limiter, proofs: AdminProofs
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._nonces = nonces
        self._limiter = limiter
        self._proofs = proofs

    async def admit(self, method: MethodPolicy, headers: Mapping[str, str], address: str) -> Admission:
        """The caller's identity for a call of `method` from the client at `address`, or a DomainError
        saying why it is refused."""
        token = _token(headers)
        if method.admin:
            await self._check_admin(headers.get("x-admin-token"), address)
            # The admin token identifies the operator, so the first key can be made before any exists.
            user = await self._identify(method, token, address) if token else self._settings.operator
        else:
            user = await self._identify(method, token, address)
        subject = f"user:{user.id}" if user is not None else f"address:{address}"
        nonce = headers.get("x-nonce")
        if nonce is not None:
            await self._nonces.accept(subject, nonce)
        elif method.short_name in self._settings.nonce_routes or method.route_class in self._settings.nonce_routes:
            raise FailedPrecondition(
                "this method requires an X-Nonce header (a fresh random value per request)", reason="NONCE_REQUIRED"
            )
        return Admission(user, subject)

    async def _identify(self, method: MethodPolicy, token: str | None, address: str) -> User | None:
        development = self._settings.development
        if token is None or (development and not looks_like_key(token)):
            # Development mode: everyone is the owner; a token that is not one of our keys (the OpenAI SDK
            # insists on sending one) is ignored. A key of ours is still checked, to test keys locally.
            if development:
                return self._settings.development_user
            if method.public:
                return None
            raise Unauthenticated(API_KEY_REQUIRED, reason="API_KEY_MISSING")
        user = await self._keys.verify(token)
        if user is None:
            await self._count_failure(address)
            raise Unauthenticated("the API key is not valid (malformed, unknown or revoked)", reason="API_KEY_INVALID")
        return user

    async def _check_admin(self, given: str | None, address: str) -> None:
        token = self._settings.admin_token
        if not token:
            raise PermissionDenied("admin routes are disabled: the suite has no ADMIN_TOKEN", reason="ADMIN_DISABLED")
        if not hmac.compare_digest((given or "").encode(), token.encode()):
            await self._count_failure(address)
            raise Unauthenticated("X-Admin-Token is missing or wrong", reason="ADMIN_TOKEN_INVALID")
        # Right: served where the token was used before; elsewhere only while the address is not locked out
        # for failures, so that a guesser's right guess looks like its wrong ones (services/access/proofs.py).
        if await self._proofs.used_from(address):
            return
        locked_for = await self._limiter.reached(
            _failures_bucket(address), self._settings.auth_failures_per_address, AUTH_FAILURE_WINDOW_S
        )
        if locked_for is not None:
            raise _too_many_failures(locked_for)
        await self._proofs.remember(address)

    async def _count_failure(self, address: str) -> None:
        """Counts a wrong key or admin token against the address; past the limit, wrong ones are a 429
        until the window ends. Only failures are counted and the counter is consulted only after the
        credential was checked (in the same time whatever the count): a right key is served even while
        its address is shut out, and so is the right admin token where it was used before, so one
        client's guesses behind a shared address (a NAT, a proxy) lock out neither the others nor the
        operator."""
        decision = await self._limiter.hit(
            _failures_bucket(address), self._settings.auth_failures_per_address, AUTH_FAILURE_WINDOW_S
        )
        if not decision.allowed:
            raise _too_many_failures(decision.reset_s)


def _failures_bucket(address: str) -> str:
    return f"auth-failures|{address}"


def _too_many_failures(reset_s: float) -> ResourceExhausted:
    return ResourceExhausted(
        "too many failed API keys or admin tokens from this address; wait for the window to end",
        reason="AUTH_FAILURES",
        retry_after_s=reset_s,
    )


def _token(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None
