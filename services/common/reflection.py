"""Server reflection under both protocol names grpcurl and other tools ask for."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

SERVICE_NAMES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


def enable_reflection(
    server: grpc.aio.Server, service_names: list[str], pool: descriptor_pool.DescriptorPool | None = None
) -> None:
    """Serves reflection for `service_names`; v1 and v1alpha share one wire format, so one servicer serves both."""
    servicer = reflection.aio.ReflectionServicer(list(dict.fromkeys([*service_names, *SERVICE_NAMES])), pool=pool)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    for name in SERVICE_NAMES:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
