"""The meta service's settings; the only reader of the environment for this service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.access.config import GateConfig, read_gate_config
from services.common.config import EnvReader, ServerConfig, read_server_config

DEFAULT_PORT = 50050


@dataclass(frozen=True, slots=True)
class Backend:
    """One service whose health the suite reports."""

    name: str
    address: str


@dataclass(frozen=True, slots=True)
class MetaConfig:
    """What the meta service checks and which descriptor set it reflects."""

    server: ServerConfig
    backends: tuple[Backend, ...]
    descriptor_path: Path | None
    health_timeout_s: float
    # The store of the access checks (keys, limits).
    data_dir: Path
    redis_url: str | None
    gate: GateConfig


def parse_backends(raw: str, env: EnvReader) -> tuple[Backend, ...]:
    """Parses `name=host:port,name=host:port`."""
    backends = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, address = item.partition("=")
        if not sep or not name or ":" not in address:
            env.problem(f"SPARK_META_BACKENDS entry {item!r} is not name=host:port")
            continue
        backends.append(Backend(name.strip(), address.strip()))
    return tuple(backends)


def read_config(environ: Mapping[str, str] | None = None) -> MetaConfig:
    env = EnvReader(os.environ if environ is None else environ)
    descriptor = env.optional_text("SPARK_DESCRIPTOR_SET")
    config = MetaConfig(
        server=read_server_config(env, "meta", default_port=DEFAULT_PORT),
        backends=parse_backends(env.text("SPARK_META_BACKENDS", ""), env),
        descriptor_path=Path(descriptor) if descriptor else None,
        health_timeout_s=env.number("SPARK_META_HEALTH_TIMEOUT_S", 1.0, minimum=0.05),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        gate=read_gate_config(env),
    )
    env.finish()
    return config
