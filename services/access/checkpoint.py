"""Every call is admitted where it lands: in the process that serves it, before its handler runs.

The same check for a call through the edge and a call straight to a service's port: the caller's
credential (an API key in `authorization: Bearer …` or `x-api-key`; the admin token for admin
methods; with sign-in on, the session cookie of a browser's call through the edge), its nonce, and its
rate limit, by the policy its proto declares (services/access/methods.py).
There is no second process on the way: the keys are cached for `SPARK_ACCESS_KEY_CACHE_S` (a
revocation reaches every instance within it) and the limits are leased from the shared store
(services/access/limiter.py), so a call costs the store nothing most of the time.

A refusal is the error with its gRPC status (HTTP 401, 403, 409, 428 or 429 at the edge), with
`Retry-After` and, for a rate limit, the `X-RateLimit-*` headers. The identity of an admitted call is
`services.common.identity.current_caller()` for its handler, and the whole admission (user, credential,
address) `services.access.admitted.admitted()`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import grpc

from services.access.admitted import ADMITTED, Admitted
from services.access.config import DEVELOPMENT_USER, OPERATOR, GateConfig
from services.access.gate import Call, Gate, GateSettings
from services.access.internal import InternalToken
from services.access.keys import KeyStore
from services.access.limiter import Limiter
from services.access.methods import MethodPolicy, method_policies
from services.access.metrics import AccessMetrics
from services.access.nonces import NonceBook
from services.access.proofs import AdminProofs
from services.access.quota import Quota
from services.access.sessions import SessionBook
from services.common.errors import DomainError, Unavailable
from services.common.identity import (
    ANONYMOUS,
    CALLER,
    CLIENT_ADDRESS_HEADER,
    INTERNAL_HEADER,
    MAX_CALLER_CHARS,
    USER_METADATA,
)
from services.common.retry import retry_after
from services.common.store import Store, StoreError
from services.common.transcoding import HTTP_STATUS_HEADER

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Admit = Callable[[Context], Awaitable[None]]
# RFC 6585's "Precondition Required", for a method that needs X-Nonce called without one.
NONCE_REQUIRED_STATUS = "428"
# Who a service calling another for itself (not for a caller) is.
SUITE = "suite"


def peer_address(peer: str | None) -> str:
    """The address of a gRPC peer (`ipv4:192.0.2.1:5000`, `ipv6:%5B::1%5D:5000`), without its port."""
    if not peer:
        return "unknown"
    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.find("]")]
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return rest or peer


class Checkpoint:
    def __init__(
        self,
        *,
        gate: Gate,
        quota: Quota,
        metrics: AccessMetrics,
        policies: Mapping[str, MethodPolicy],
        internal: InternalToken,
        config: GateConfig,
    ) -> None:
        self._gate = gate
        self._quota = quota
        self._metrics = metrics
        self._policies = policies
        self._internal = internal
        self._trusted_proxies = config.trusted_proxies

    def admission(self, method: str) -> Admit | None:
        """The check of calls to `method`; None for methods that are not the suite's (health, reflection),
        which stay open for probes and grpcurl."""
        policy = self._policies.get(method)
        if policy is None:
            return None

        async def admit(context: Context) -> None:
            await self._admit(policy, context)

        return admit

    async def _admit(self, policy: MethodPolicy, context: Context) -> None:
        metadata = [(key, value) for key, value in context.invocation_metadata() or () if isinstance(value, str)]
        headers = dict(metadata)
        client_address = None
        if self._internal.shown_in(headers.get(INTERNAL_HEADER)):
            client_address = headers.get(CLIENT_ADDRESS_HEADER)
            if client_address is None:
                # A service calling another, for its own caller (checked where the call entered the suite)
                # or for itself: the internal token is the credential, and the caller was counted already.
                self._metrics.check(policy.route_class, "internal")
                CALLER.set((headers.get(USER_METADATA) or SUITE)[:MAX_CALLER_CHARS])
                ADMITTED.set(Admitted(None, "internal", "suite"))
                return
        if client_address is not None:
            # Forwarded by the edge, which names the peer it accepted the request from.
            address = self._trusted_proxies.client(client_address, headers.get("x-forwarded-for"))
        else:
            address = peer_address(context.peer())
        cookies = [value for key, value in metadata if key == "cookie"]
        call = Call(headers, address, cookies, from_edge=client_address is not None)
        try:
            admission = await self._gate.admit(policy, call)
            counted = await self._quota.count(policy.route_class, admission.subject)
            if not counted.decision.allowed:
                await context.send_initial_metadata(
                    [*counted.headers(), ("retry-after", retry_after(counted.decision.reset_s))]
                )
                self._metrics.check(policy.route_class, "RATE_LIMITED")
                raise counted.refusal()
        except StoreError as error:
            logger.error("store failed during an access check: %s", error)
            self._metrics.check(policy.route_class, "STORE_UNAVAILABLE")
            await context.send_initial_metadata((("retry-after", "1"),))
            raise Unavailable(
                "the access store is unavailable; retry shortly", reason="STORE_UNAVAILABLE", retry_after_s=1.0
            ) from None
        except DomainError as error:
            if error.reason != "RATE_LIMITED":
                self._metrics.check(policy.route_class, error.reason or type(error).__name__)
                await _send_refusal_headers(context, error)
            raise
        self._metrics.check(policy.route_class, "allowed")
        CALLER.set(admission.caller or ANONYMOUS)
        ADMITTED.set(Admitted(admission.user, admission.credential, address))


async def _send_refusal_headers(context: Context, error: DomainError) -> None:
    headers = []
    if error.retry_after_s is not None:
        headers.append(("retry-after", retry_after(error.retry_after_s)))
    if error.reason == "NONCE_REQUIRED":
        headers.append((HTTP_STATUS_HEADER, NONCE_REQUIRED_STATUS))
    if headers:
        await context.send_initial_metadata(headers)


def build_checkpoint(
    config: GateConfig,
    store: Store,
    metrics: AccessMetrics,
    service_names: Iterable[str],
    keys: KeyStore | None = None,
) -> Checkpoint | None:
    """The checkpoint of a service serving `service_names`; None when checks are off (development only).
    `keys`: the service's own key store, so that its revocations skip its cache. Raises PolicyError when
    one of the methods declares no policy."""
    if not config.checks:
        return None
    limiter = Limiter(store)
    gate = Gate(
        GateSettings(
            development=config.mode == "development",
            development_user=DEVELOPMENT_USER,
            operator=OPERATOR,
            admin_token=config.admin_token,
            nonce_routes=config.nonce_routes,
            auth_failures_per_address=config.limits.auth_failures_per_address,
            sign_in=config.sign_in,
        ),
        keys or KeyStore(store, cache_s=config.key_cache_s),
        NonceBook(store, ttl_s=config.nonce_ttl_s),
        limiter,
        AdminProofs(store, config.admin_token),
        sessions=SessionBook(store) if config.sign_in is not None else None,
    )
    return Checkpoint(
        gate=gate,
        quota=Quota(config.limits, limiter),
        metrics=metrics,
        policies=method_policies(service_names),
        internal=InternalToken(config.internal_token),
        config=config,
    )
