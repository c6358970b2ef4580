"""The edge's Envoy config rendered from environment variables, as the launcher renders it."""

from __future__ import annotations

from typing import Any

from edge.envoy import render
from edge.settings import read_settings
from services.common.descriptors import default_descriptor_path

# A small edge: kv, meta and the access service.
BASE_ENV = {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:50051,meta=127.0.0.1:50050,access=127.0.0.1:50055"}
# Every service behind the edge.
EVERYTHING = "kv=127.0.0.1:1,meta=127.0.0.1:2,access=127.0.0.1:3,llm=127.0.0.1:4,prompts=127.0.0.1:5,vision=127.0.0.1:6"


def rendered(env: dict[str, str]) -> dict[str, Any]:
    return render(read_settings(default_descriptor_path(), env))
