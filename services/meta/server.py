"""Wires the meta service: health aggregation plus suite-wide reflection."""

from __future__ import annotations

import grpc
from spark.meta.v1 import meta_pb2, meta_pb2_grpc

from services.common.descriptors import default_descriptor_path, load_pool
from services.common.server import RunningServer, start_server
from services.meta.config import MetaConfig
from services.meta.service import MetaServicer

SERVICE_NAME = meta_pb2.DESCRIPTOR.services_by_name["MetaService"].full_name


async def build_server(config: MetaConfig) -> RunningServer:
    pool, service_names = load_pool(config.descriptor_path or default_descriptor_path())
    servicer = MetaServicer(config.backends, config.health_timeout_s)

    def register(server: grpc.aio.Server) -> None:
        meta_pb2_grpc.add_MetaServiceServicer_to_server(servicer, server)

    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=[servicer.close],
        pool=pool,
        reflected_names=service_names,
    )
