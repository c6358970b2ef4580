"""What every service asks of each call before serving it: who is calling, may they call this method,
and is its nonce fresh. Transport-free: `checkpoint.py` adapts it to a gRPC call.

Who is calling: the user of an API key (`Authorization: Bearer` or `X-Api-Key`), else, with sign-in on,
the person of a session cookie (the hosted app's routes only, and only from the edge, where browsers
are), else the development owner (development mode without sign-in), else nobody: an anonymous visitor
of a public app, a public method's caller, or a refusal.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from services.access.admitted import Credential
from services.access.config import SignInGate
from services.access.keys import KeyStore, looks_like_key
from services.access.limiter import Limiter
from services.access.methods import APP_PREFIX, SIGN_IN_PREFIX, MethodPolicy
from services.access.nonces import NonceBook
from services.access.proofs import AdminProofs
from services.access.sessions import SESSION_COOKIE, SessionBook, cookie_values, write_refusal
from services.access.users import User
from services.common.app import APP_HEADER, RUNTIME_PREFIX, app_of_path
from services.common.errors import (
    FailedPrecondition,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.common.transcoding import ORIGINAL_PATH_HEADER

AUTH_FAILURE_WINDOW_S = 60
# A call with no credential at all, where one is needed.
API_KEY_REQUIRED = "an API key is required: send Authorization: Bearer <key> or X-Api-Key: <key>"
# The same, said by the edge, which does not know whether the method is an admin one.
API_KEY_OR_ADMIN_TOKEN_REQUIRED = API_KEY_REQUIRED + " (admin routes: X-Admin-Token)"
# Where a call may carry a credential: an API key, the admin token alone on admin methods, or a session
# cookie (any cookie reaches the services, which tell whether one is a live session).
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-admin-token", "cookie")
SIGN_IN_REQUIRED = "sign in first: this app is for signed-in people (GET /_spark/auth/login?return_to=<page>)"


@dataclass(frozen=True, slots=True)
class Admission:
    user: User | None
    # The rate-limit subject: "user:<id>" ("user:github:<id>" for a session), or "address:<ip>" for anonymous
    # callers.
    subject: str
    credential: Credential = "key"

    @property
    def caller(self) -> str | None:
        """The caller's id as the services log and count it: a session's is `github:<id>`, apart from every
        API key user's (whose ids cannot hold a colon)."""
        if self.user is None:
            return None
        return f"github:{self.user.id}" if self.credential == "session" else self.user.id


@dataclass(frozen=True, slots=True)
class Call:
    """What the gate reads of a call besides its method: its headers (the last value of each) and cookies."""

    headers: Mapping[str, str]
    address: str
    # Every `Cookie` header the call carries.
    cookies: Sequence[str] = ()
    # It came through the edge (the suite's token and the client's address shown): only then is a session
    # cookie a credential. A browser reaches the suite there, and the edge writes the original path and method.
    from_edge: bool = False


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
    # Sign-in with GitHub; None: no sessions (and development mode's owner is everyone's).
    sign_in: SignInGate | None = None


class Gate:
    def __init__(
        self,
        settings: GateSettings,
        keys: KeyStore,
        nonces: NonceBook,
        limiter: Limiter,
        proofs: AdminProofs,
        *,
        sessions: SessionBook | None = None,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._nonces = nonces
        self._limiter = limiter
        self._proofs = proofs
        self._sessions = sessions

    async def admit(self, method: MethodPolicy, headers: Mapping[str, str] | Call, address: str = "") -> Admission:
        """The caller's identity for a call of `method`, or a DomainError saying why it is refused. `headers`
        is the whole call, or (for a caller with no cookies) its headers with the client's `address`."""
        call = headers if isinstance(headers, Call) else Call(headers, address)
        headers, address = call.headers, call.address
        token = _token(headers)
        if method.admin:
            await self._check_admin(headers.get("x-admin-token"), address)
            # The admin token identifies the operator, so the first key can be made before any exists.
            admission = (
                await self._identify(method, token, call)
                if token
                else Admission(self._settings.operator, f"user:{self._settings.operator.id}", "admin")
            )
        else:
            admission = await self._identify(method, token, call)
        nonce = headers.get("x-nonce")
        if nonce is not None:
            await self._nonces.accept(admission.subject, nonce)
        elif method.short_name in self._settings.nonce_routes or method.route_class in self._settings.nonce_routes:
            raise FailedPrecondition(
                "this method requires an X-Nonce header (a fresh random value per request)", reason="NONCE_REQUIRED"
            )
        return admission

    async def _identify(self, method: MethodPolicy, token: str | None, call: Call) -> Admission:
        development = self._settings.development
        sign_in = self._settings.sign_in
        if token is not None and not (development and not looks_like_key(token)):
            user = await self._keys.verify(token)
            if user is None:
                await self._count_failure(call.address)
                raise Unauthenticated(
                    "the API key is not valid (malformed, unknown or revoked)", reason="API_KEY_INVALID"
                )
            if sign_in is not None and sign_in.app_access == "owners" and not user.is_owner and _app_call(method, call):
                raise _owners_only(user.login)
            return Admission(user, f"user:{user.id}", "key")
        # No key of ours. In development mode a token that is not one (the OpenAI SDK insists on sending one)
        # is ignored, as if none were sent.
        if sign_in is not None and _app_call(method, call):
            return await self._visit(sign_in, call)
        if development and sign_in is None:
            # Everyone is the owner; a key of ours is still checked above, to test keys locally.
            user = self._settings.development_user
            return Admission(user, f"user:{user.id}", "development")
        if method.public:
            return Admission(None, f"address:{call.address}", "anonymous")
        raise Unauthenticated(API_KEY_REQUIRED, reason="API_KEY_MISSING")

    async def _visit(self, sign_in: SignInGate, call: Call) -> Admission:
        """A call of the hosted app's routes without an API key: by its session cookie, else anonymous in a
        public app. A session or a visit is for the hosted app alone."""
        secrets_given = cookie_values(call.cookies, SESSION_COOKIE) if call.from_edge else []
        apps = _apps_named(call.headers)
        if any(app not in ("", sign_in.app) for app in apps):
            raise Unauthenticated(
                f"only the hosted app {sign_in.app!r} takes a sign-in session or an anonymous visit; another app's "
                "routes need an API key: " + API_KEY_REQUIRED,
                reason="API_KEY_MISSING",
            )
        if secrets_given:
            assert self._sessions is not None, "sign-in is on without a session book"
            session = await self._sessions.find(secrets_given)
            if session is None:
                raise Unauthenticated(
                    "the sign-in session has ended (signed out, expired or revoked): sign in again at "
                    "/_spark/auth/login",
                    reason="SESSION_INVALID",
                )
            refusal = write_refusal(call.headers, sign_in.public_origin)
            if refusal is not None:
                raise refusal
            user = dataclasses.replace(session.user, is_owner=sign_in.is_owner(session.user.login))
            if sign_in.app_access == "owners" and not user.is_owner:
                raise _owners_only(user.login)
            return Admission(user, f"user:github:{user.id}", "session")
        if sign_in.app_access == "public":
            return Admission(None, f"address:{call.address}", "anonymous")
        raise Unauthenticated(SIGN_IN_REQUIRED, reason="SIGN_IN_REQUIRED")

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


def _owners_only(login: str) -> PermissionDenied:
    return PermissionDenied(
        f"this app is for its owners only, and {login!r} is not one of them (SPARK_OWNERS)", reason="OWNERS_ONLY"
    )


def _app_call(method: MethodPolicy, call: Call) -> bool:
    """A call of the hosted app's routes: an app method (services/access/methods.py) called on the path the
    Spark runtime calls it on (`/_spark/…` or `/runtime/{app}/…`). The same method on another route
    (`/v1/chat/completions` is `/_spark/llm`'s) or over native gRPC is the API's, and needs a key."""
    if not method.app:
        return False
    path = call.headers.get(ORIGINAL_PATH_HEADER, "").partition("?")[0]
    return (path.startswith(APP_PREFIX) and not path.startswith(SIGN_IN_PREFIX)) or path.startswith(RUNTIME_PREFIX)


def _apps_named(headers: Mapping[str, str]) -> list[str]:
    """The apps a call names besides the hosted one: `/runtime/{app}/…` in the path it came in on, an `app`
    query parameter (which the transcoder would bind to a request's `app` field), and `x-spark-app`."""
    apps = []
    original = headers.get(ORIGINAL_PATH_HEADER)
    if original is not None:
        named = app_of_path(original)
        if named is not None:
            apps.append(named)
        for pair in original.partition("?")[2].split("&"):
            name, _, value = pair.partition("=")
            if unquote(name) == "app":
                apps.append(unquote(value.replace("+", " ")))
    header = headers.get(APP_HEADER)
    if header is not None:
        apps.append(header)
    return apps


def _token(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None
