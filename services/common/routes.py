"""The suite's HTTP routes, read from the `google.api.http` rules in the descriptor set.

The protos are the single source of the HTTP contract, so anything that lists
routes (such as an `/about` endpoint) derives them from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Imported for its side effect too: the `google.api.http` extension must be known to parse it.
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from services.common.descriptors import load_pool


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One HTTP binding of one RPC."""

    method: str  # "GET", "POST", ...
    path: str  # the template, e.g. "/v1/prompts/{id}"
    rpc: str  # e.g. "spark.prompts.v1.PromptsService/GetPrompt"


def load_descriptor_pool(path: Path) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding the FileDescriptorSet at `path` (plus health and reflection)."""
    pool, _ = load_pool(path)
    return pool


def http_routes(pool: descriptor_pool.DescriptorPool, services: Iterable[str]) -> list[HttpRoute]:
    """Every binding (additional ones included) of the named services' RPCs, sorted by path then method.

    Raises KeyError if a service is not in the pool; a service without rules adds nothing.
    """
    routes: list[HttpRoute] = []
    for name in services:
        service = pool.FindServiceByName(name)
        # `MethodDescriptor.GetOptions()` is parsed once and cached, without the extension if
        # `annotations_pb2` was not imported by then; a copy of the proto is parsed now.
        proto = descriptor_pb2.ServiceDescriptorProto()
        service.CopyToProto(proto)
        for method in proto.method:
            if method.options.HasExtension(annotations_pb2.http):
                rpc = f"{service.full_name}/{method.name}"
                routes.extend(
                    HttpRoute(verb, path, rpc)
                    for verb, path in _bindings(method.options.Extensions[annotations_pb2.http])
                )
    return sorted(routes, key=lambda route: (route.path, route.method, route.rpc))


def _bindings(rule: http_pb2.HttpRule) -> Iterator[tuple[str, str]]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        yield rule.custom.kind, rule.custom.path
    elif pattern is not None:
        yield pattern.upper(), getattr(rule, pattern)
    for binding in rule.additional_bindings:
        yield from _bindings(binding)
