"""Wires the meta service: health aggregation plus suite-wide reflection."""

from __future__ import annotations

import grpc
from spark.meta.v1 import meta_pb2, meta_pb2_grpc

from services.access.checkpoint import build_checkpoint
from services.access.metrics import AccessMetrics
from services.common.descriptors import default_descriptor_path, load_pool
from services.common.metrics import ServiceMetrics
from services.common.server import RunningServer, service_store, start_server
from services.common.store import Store
from services.meta.config import MetaConfig
from services.meta.service import MetaServicer

SERVICE_NAME = meta_pb2.DESCRIPTOR.services_by_name["MetaService"].full_name


async def build_server(config: MetaConfig, store: Store | None = None) -> RunningServer:
    """Starts the meta server; opens the configured store (for the access checks) unless one is passed in."""
    owned, active_store, tracer_provider = service_store(config.server, config.redis_url, config.data_dir, store)
    metrics = ServiceMetrics()
    checkpoint = build_checkpoint(config.gate, active_store, AccessMetrics(metrics.registry), [SERVICE_NAME])
    pool, service_names = load_pool(config.descriptor_path or default_descriptor_path())
    servicer = MetaServicer(config.backends, config.health_timeout_s)

    def register(server: grpc.aio.Server) -> None:
        meta_pb2_grpc.add_MetaServiceServicer_to_server(servicer, server)

    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=[active_store.close, servicer.close] if owned else [servicer.close],
        pool=pool,
        reflected_names=service_names,
        metrics=metrics,
        tracer_provider=tracer_provider,
        admissions=checkpoint,
    )
