"""Wires the vision service: channels to the prompts and llm services, the cleanup rule, the servicer."""

from __future__ import annotations

import grpc
from spark.llm.v1 import llm_pb2_grpc
from spark.prompts.v1 import prompts_pb2_grpc
from spark.vision.v1 import vision_pb2, vision_pb2_grpc

from services.access.checkpoint import build_checkpoint
from services.access.internal import InternalToken
from services.access.metrics import AccessMetrics
from services.common.channels import open_channel
from services.common.metrics import ServiceMetrics
from services.common.server import RunningServer, service_store, start_server
from services.common.store import Store
from services.vision.config import VisionConfig
from services.vision.service import CleanupRules, VisionServicer

SERVICE_NAME = vision_pb2.DESCRIPTOR.services_by_name["VisionService"].full_name
# Several addresses of one service are balanced per call, not pinned to the first.
ROUND_ROBIN = (("grpc.lb_policy_name", "round_robin"),)


async def build_server(config: VisionConfig, store: Store | None = None) -> RunningServer:
    """Starts the vision server; opens the configured store (for the access checks) unless one is passed in."""
    owned, active_store, tracer = service_store(config.server, config.redis_url, config.data_dir, store)
    metrics = ServiceMetrics()
    checkpoint = build_checkpoint(config.gate, active_store, AccessMetrics(metrics.registry), [SERVICE_NAME])
    internal = InternalToken(config.gate.internal_token)
    # Calls to prompts and llm join the request's trace when traces go anywhere.
    traced = tracer if config.server.otlp_endpoint else None
    prompts_channel = open_channel(config.prompts_target, traced, extra_options=ROUND_ROBIN)
    llm_channel = open_channel(config.llm_target, traced, extra_options=ROUND_ROBIN)
    prompts = prompts_pb2_grpc.PromptsServiceStub(prompts_channel)
    servicer = VisionServicer(
        prompts,
        llm_pb2_grpc.LlmServiceStub(llm_channel),
        CleanupRules(prompts, config.cleanup_ttl_s, internal),
        config,
        internal,
    )

    def register(server: grpc.aio.Server) -> None:
        vision_pb2_grpc.add_VisionServiceServicer_to_server(servicer, server)

    async def close_channels() -> None:
        await prompts_channel.close()
        await llm_channel.close()

    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=[active_store.close, close_channels] if owned else [close_channels],
        metrics=metrics,
        tracer_provider=tracer,
        admissions=checkpoint,
    )
