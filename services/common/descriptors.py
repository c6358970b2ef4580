"""The suite's descriptor set: one file shared by the edge's transcoder and reflection."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2


def default_descriptor_path() -> Path:
    return Path(str(resources.files("spark") / "descriptor_set.pb"))


def load_pool(path: Path) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A fresh pool holding the set plus health and reflection, and every service name in it."""
    file_set = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    for module in (health_pb2, reflection_pb2):
        file_set.file.append(descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb))
    pool = descriptor_pool.DescriptorPool()
    for file in file_set.file:
        pool.Add(file)
    names = [
        f"{file.package}.{service.name}" if file.package else service.name
        for file in file_set.file
        for service in file.service
    ]
    return pool, names
