"""The `spark.meta.v1.MetaService` servicer: aggregated health of the suite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from spark.llm.v1 import llm_pb2, llm_pb2_grpc
from spark.meta.v1 import meta_pb2, meta_pb2_grpc

from services.common.channels import open_channel
from services.common.transcoding import set_http_status
from services.meta.config import Backend

SERVING = "SERVING"

Context = grpc.aio.ServicerContext[Any, Any]


class MetaServicer(meta_pb2_grpc.MetaServiceServicer):
    """Checks each backend's `grpc.health.v1` endpoint over one long-lived channel per backend."""

    def __init__(self, backends: Sequence[Backend], timeout_s: float) -> None:
        self._backends = tuple(backends)
        self._timeout_s = timeout_s
        self._channels = {b.name: open_channel(b.address) for b in self._backends}

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))

    async def _check(self, backend: Backend) -> meta_pb2.ServiceHealth:
        stub = health_pb2_grpc.HealthStub(self._channels[backend.name])
        started = time.perf_counter()
        try:
            # Waiting for the channel to (re)connect within the timeout tells "restarting" from "down".
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=self._timeout_s, wait_for_ready=True
            )
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            message = "" if status == SERVING else f"{backend.name} reports {status}"
        except grpc.aio.AioRpcError as error:
            status = "UNREACHABLE"
            message = f"health check failed: {error.code().name}"
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        details = await self._details(backend) if status == SERVING else {}
        return meta_pb2.ServiceHealth(
            name=backend.name, status=status, message=message, latency_ms=latency_ms, details=details
        )

    async def _details(self, backend: Backend) -> dict[str, str]:
        """What a serving backend reports about itself: the llm instances' provider breakers."""
        if backend.name.split("-")[0] != "llm":
            return {}
        stub = llm_pb2_grpc.LlmServiceStub(self._channels[backend.name])
        try:
            reply = await stub.ListProviders(llm_pb2.ListProvidersRequest(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            return {"error": f"ListProviders failed: {error.code().name}"}
        return {f"breaker.{p.name}": p.breaker for p in reply.providers if p.configured}

    async def GetHealth(self, request: meta_pb2.GetHealthRequest, context: Context) -> meta_pb2.GetHealthResponse:
        reports = await asyncio.gather(*(self._check(backend) for backend in self._backends))
        healthy = all(report.status == SERVING for report in reports)
        await set_http_status(context, 200 if healthy else 503)
        return meta_pb2.GetHealthResponse(status=SERVING if healthy else "NOT_SERVING", services=reports)
