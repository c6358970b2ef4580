"""Wires the access service: the caller's user, the runtime's load reports, API keys, the policy and sign-in."""

from __future__ import annotations

import grpc
from spark.access.v1 import access_pb2, access_pb2_grpc

from services.access.checkpoint import build_checkpoint
from services.access.config import DEVELOPMENT_USER, AccessConfig
from services.access.keys import KeyStore
from services.access.limiter import Limiter
from services.access.metrics import AccessMetrics
from services.access.oauth import GitHub
from services.access.service import AccessServicer
from services.access.sessions import SessionBook, SignInStates
from services.access.signin import SignIn
from services.common.metrics import ServiceMetrics
from services.common.server import RunningServer, service_store, start_server
from services.common.store import Store

SERVICE_NAME = access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name


async def build_server(config: AccessConfig, store: Store | None = None) -> RunningServer:
    """Starts the access server; opens the configured store unless one is passed in (tests share one)."""
    owned, active_store, tracer_provider = service_store(config.server, config.redis_url, config.data_dir, store)
    service_metrics = ServiceMetrics()
    metrics = AccessMetrics(service_metrics.registry)
    # One key store for the checks and the key routes: a revocation here skips this instance's cache at once.
    keys = KeyStore(active_store, cache_s=config.gate.key_cache_s)
    checkpoint = build_checkpoint(config.gate, active_store, metrics, [SERVICE_NAME], keys)
    github = GitHub(config.github) if config.github is not None else None
    sessions = SessionBook(active_store)
    sign_in = SignIn(
        gate=config.gate.sign_in,
        oauth=config.github,
        github=github,
        sessions=sessions,
        states=SignInStates(active_store),
        limiter=Limiter(active_store),
        attempts_per_address=config.gate.limits.sign_ins_per_address,
        app_snapshot=config.app_snapshot,
    )

    def register(server: grpc.aio.Server) -> None:
        access_pb2_grpc.add_AccessServiceServicer_to_server(
            AccessServicer(config, keys, metrics, DEVELOPMENT_USER, sign_in=sign_in, sessions=sessions), server
        )

    closers = [github.close] if github is not None else []
    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=[*closers, active_store.close] if owned else closers,
        metrics=service_metrics,
        tracer_provider=tracer_provider,
        admissions=checkpoint,
    )
