"""The kv service's settings; the only reader of the environment for this service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.access.config import GateConfig, read_gate_config
from services.common.app import read_app_name
from services.common.config import EnvReader, ServerConfig, read_server_config

MIB = 1024 * 1024
DEFAULT_PORT = 50051


@dataclass(frozen=True, slots=True)
class KvConfig:
    """Limits and wiring of the kv service."""

    server: ServerConfig
    data_dir: Path
    redis_url: str | None
    max_value_bytes: int
    max_key_bytes: int
    max_list_entries: int
    max_list_bytes: int
    gate: GateConfig
    # The hosted app (SPARK_APP_NAME), whose data `/_spark/kv` and `/_spark/db` serve.
    app_name: str


def read_config(environ: Mapping[str, str] | None = None) -> KvConfig:
    """Reads every `SPARK_KV_*` setting at once; raises ConfigError listing all problems."""
    env = EnvReader(os.environ if environ is None else environ)
    max_value = env.integer("SPARK_KV_MAX_VALUE_BYTES", 10 * MIB, minimum=1, maximum=1024 * MIB)
    max_list_bytes = env.integer("SPARK_KV_MAX_LIST_BYTES", 32 * MIB, minimum=1, maximum=1024 * MIB)
    config = KvConfig(
        server=read_server_config(
            env, "kv", default_port=DEFAULT_PORT, max_message_bytes=max(max_value, max_list_bytes)
        ),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        max_value_bytes=max_value,
        max_key_bytes=env.integer("SPARK_KV_MAX_KEY_BYTES", 1024, minimum=1, maximum=64 * 1024),
        max_list_entries=env.integer("SPARK_KV_MAX_LIST_ENTRIES", 10_000, minimum=1, maximum=1_000_000),
        max_list_bytes=max_list_bytes,
        gate=read_gate_config(env),
        app_name=read_app_name(env),
    )
    env.finish()
    return config
