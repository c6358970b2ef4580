"""Wires the kv service: store, repository, servicer, and the shared server bootstrap."""

from __future__ import annotations

import grpc
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from services.access.checkpoint import build_checkpoint
from services.access.metrics import AccessMetrics
from services.common.metrics import ServiceMetrics
from services.common.server import RunningServer, service_store, start_server
from services.common.store import Store
from services.kv.config import KvConfig
from services.kv.repository import KvRepository, ListLimits
from services.kv.service import KvServicer

SERVICE_NAME = kv_pb2.DESCRIPTOR.services_by_name["KvService"].full_name


async def build_server(config: KvConfig, store: Store | None = None) -> RunningServer:
    """Starts the kv server; opens the configured store unless one is passed in (tests share one)."""
    owned, active_store, tracer_provider = service_store(config.server, config.redis_url, config.data_dir, store)
    metrics = ServiceMetrics()
    checkpoint = build_checkpoint(config.gate, active_store, AccessMetrics(metrics.registry), [SERVICE_NAME])
    repository = KvRepository(active_store, ListLimits(config.max_list_entries, config.max_list_bytes))
    servicer = KvServicer(
        repository,
        hosted_app=config.app_name,
        max_value_bytes=config.max_value_bytes,
        max_key_bytes=config.max_key_bytes,
    )

    def register(server: grpc.aio.Server) -> None:
        kv_pb2_grpc.add_KvServiceServicer_to_server(servicer, server)

    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=[active_store.close] if owned else [],
        metrics=metrics,
        tracer_provider=tracer_provider,
        admissions=checkpoint,
    )
