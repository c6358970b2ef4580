"""Wires the access service: one server for AccessService, Envoy's ext_authz and its rate-limit API."""

from __future__ import annotations

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from spark.access.v1 import access_pb2, access_pb2_grpc

from services.access.authz import AuthorizationServicer
from services.access.config import DEVELOPMENT_USER, OPERATOR, AccessConfig
from services.access.gate import Gate, GateSettings
from services.access.keys import KeyStore
from services.access.limiter import Limiter
from services.access.metrics import AccessMetrics
from services.access.nonces import NonceBook
from services.access.proofs import AdminProofs
from services.access.quota import Quota
from services.access.ratelimit import RateLimitServicer
from services.access.service import AccessServicer
from services.common.metrics import ServiceMetrics
from services.common.server import RunningServer, service_store, start_server
from services.common.store import Store

SERVICE_NAMES = (
    access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
    external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
    rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name,
)


async def build_server(config: AccessConfig, store: Store | None = None) -> RunningServer:
    """Starts the access server; opens the configured store unless one is passed in (tests share one)."""
    owned, active_store, tracer_provider = service_store(config.server, config.redis_url, config.data_dir, store)
    service_metrics = ServiceMetrics()
    metrics = AccessMetrics(service_metrics.registry)
    keys = KeyStore(active_store, cache_s=config.key_cache_s)
    limiter = Limiter(active_store)
    quota = Quota(config.limits, limiter, metrics)
    gate = Gate(
        GateSettings(
            development=config.mode == "development",
            development_user=DEVELOPMENT_USER,
            operator=OPERATOR,
            admin_token=config.admin_token,
            nonce_routes=config.nonce_routes,
            auth_failures_per_address=config.limits.auth_failures_per_address,
            trusted_proxies=config.trusted_proxies,
        ),
        keys,
        NonceBook(active_store, ttl_s=config.nonce_ttl_s),
        limiter,
        AdminProofs(active_store, config.admin_token),
    )

    def register(server: grpc.aio.Server) -> None:
        access_pb2_grpc.add_AccessServiceServicer_to_server(
            AccessServicer(config, keys, metrics, DEVELOPMENT_USER), server
        )
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(AuthorizationServicer(gate, quota, metrics), server)
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitServicer(quota), server)

    return await start_server(
        config.server,
        SERVICE_NAMES,
        register,
        closers=[active_store.close] if owned else [],
        metrics=service_metrics,
        tracer_provider=tracer_provider,
    )
