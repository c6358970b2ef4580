"""Wires the vision service: channels to the prompts and llm services, the cleanup rule, the servicer."""

from __future__ import annotations

import grpc
from spark.llm.v1 import llm_pb2_grpc
from spark.prompts.v1 import prompts_pb2_grpc
from spark.vision.v1 import vision_pb2, vision_pb2_grpc

from services.common.channels import open_channel
from services.common.server import RunningServer, start_server
from services.common.telemetry import build_tracer_provider
from services.vision.config import VisionConfig
from services.vision.service import CleanupRules, VisionServicer

SERVICE_NAME = vision_pb2.DESCRIPTOR.services_by_name["VisionService"].full_name
# Several addresses of one service are balanced per call, not pinned to the first.
ROUND_ROBIN = (("grpc.lb_policy_name", "round_robin"),)


async def build_server(config: VisionConfig) -> RunningServer:
    tracer = build_tracer_provider(config.server.name, config.server.otlp_endpoint)
    # Calls to prompts and llm join the request's trace when traces go anywhere.
    traced = tracer if config.server.otlp_endpoint else None
    prompts_channel = open_channel(config.prompts_target, traced, extra_options=ROUND_ROBIN)
    llm_channel = open_channel(config.llm_target, traced, extra_options=ROUND_ROBIN)
    prompts = prompts_pb2_grpc.PromptsServiceStub(prompts_channel)
    servicer = VisionServicer(
        prompts, llm_pb2_grpc.LlmServiceStub(llm_channel), CleanupRules(prompts, config.cleanup_ttl_s), config
    )

    def register(server: grpc.aio.Server) -> None:
        vision_pb2_grpc.add_VisionServiceServicer_to_server(servicer, server)

    async def close_channels() -> None:
        await prompts_channel.close()
        await llm_channel.close()

    return await start_server(config.server, [SERVICE_NAME], register, closers=[close_channels], tracer_provider=tracer)
