"""The vision service's settings; the only reader of the environment for this service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.access.config import GateConfig, read_gate_config
from services.common.config import EnvReader, ServerConfig, read_server_config

DEFAULT_PORT = 50054
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class VisionConfig:
    server: ServerConfig
    # gRPC targets of the services vision calls (several addresses are balanced round robin).
    prompts_target: str
    llm_target: str
    max_image_bytes: int
    keepalive_s: float
    timeout_s: float
    # Fetch http(s) image URLs here instead of passing them to the provider (SSRF-guarded).
    fetch_images: bool
    fetch_timeout_s: float
    cleanup_ttl_s: float
    # The store of the access checks (keys, limits).
    data_dir: Path
    redis_url: str | None
    gate: GateConfig


def grpc_target(addresses: str) -> str:
    """A channel target for `host:port[,host:port...]`: one address as is, several as an `ipv4:` list."""
    parts = [a.strip() for a in addresses.split(",") if a.strip()]
    return parts[0] if len(parts) == 1 else "ipv4:" + ",".join(parts)


def read_config(environ: Mapping[str, str] | None = None) -> VisionConfig:
    env = EnvReader(os.environ if environ is None else environ)
    max_image = env.integer("SPARK_VISION_MAX_IMAGE_BYTES", 10 * MIB, minimum=1, maximum=256 * MIB)
    config = VisionConfig(
        # Base64 in JSON grows an image by a third.
        server=read_server_config(env, "vision", default_port=DEFAULT_PORT, max_message_bytes=max_image * 2 + MIB),
        # The launcher passes every instance of each service as SPARK_<SVC>_ADDRESSES.
        prompts_target=grpc_target(env.text("SPARK_PROMPTS_ADDRESSES", "127.0.0.1:50053")),
        llm_target=grpc_target(env.text("SPARK_LLM_ADDRESSES", "127.0.0.1:50052")),
        max_image_bytes=max_image,
        keepalive_s=env.number("SPARK_VISION_KEEPALIVE_S", 15.0, minimum=0.01),
        timeout_s=env.number("SPARK_VISION_TIMEOUT_S", 300.0, minimum=0.01),
        fetch_images=env.flag("SPARK_VISION_FETCH_IMAGES", False),
        fetch_timeout_s=env.number("SPARK_VISION_FETCH_TIMEOUT_S", 10.0, minimum=0.01),
        cleanup_ttl_s=env.number("SPARK_VISION_CLEANUP_TTL_S", 10.0),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        gate=read_gate_config(env),
    )
    env.finish()
    return config
