"""The prompts service's settings; the only reader of the environment for this service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.access.config import GateConfig, read_gate_config
from services.common.config import EnvReader, ServerConfig, read_server_config
from services.common.errors import InvalidArgument
from services.prompts.cron import CronSchedule

DEFAULT_PORT = 50053
MIB = 1024 * 1024
# The largest restore (an export's prompts and bytes) and how long one may take. The edge reads the same
# variables: its body limit on /admin/restore is the byte limit, and its route timeout outlasts the time
# limit, so the caller always gets the service's own answer.
RESTORE_MAX_PROMPTS = 10_000
RESTORE_MAX_BYTES = 32 * MIB
RESTORE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class PromptsConfig:
    """Wiring, cache, backups and the admin token of the prompts service."""

    server: ServerConfig
    data_dir: Path
    redis_url: str | None
    gate: GateConfig
    environment: str
    cache_enabled: bool
    cache_get_ttl_s: float
    cache_list_ttl_s: float
    backup_cron: str | None
    backup_retention_days: int
    restore_max_prompts: int
    restore_max_bytes: int
    restore_timeout_s: float


def read_config(environ: Mapping[str, str] | None = None) -> PromptsConfig:
    env = EnvReader(os.environ if environ is None else environ)
    cron = env.text("SPARK_PROMPTS_BACKUP_CRON", "0 3 * * *")
    if cron.lower() != "off":
        try:
            CronSchedule.parse(cron)
        except InvalidArgument as error:
            env.problem(f"SPARK_PROMPTS_BACKUP_CRON={cron!r}: {error.message}")
    restore_max_bytes = read_restore_max_bytes(env)
    config = PromptsConfig(
        # Exports and restores carry the whole registry. A restore over its limit but within this one gets
        # the service's own answer (413 at the edge) rather than gRPC's.
        server=read_server_config(
            env, "prompts", default_port=DEFAULT_PORT, max_message_bytes=max(64 * MIB, restore_max_bytes)
        ),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        gate=read_gate_config(env),
        environment=env.text("SPARK_ENVIRONMENT", "development"),
        cache_enabled=env.flag("SPARK_PROMPTS_CACHE", True),
        cache_get_ttl_s=env.number("SPARK_PROMPTS_CACHE_GET_TTL_S", 300.0),
        cache_list_ttl_s=env.number("SPARK_PROMPTS_CACHE_LIST_TTL_S", 60.0),
        backup_cron=None if cron.lower() == "off" else cron,
        backup_retention_days=env.integer("SPARK_PROMPTS_BACKUP_RETENTION_DAYS", 30, minimum=1, maximum=3650),
        restore_max_prompts=env.integer(
            "SPARK_PROMPTS_RESTORE_MAX_PROMPTS", RESTORE_MAX_PROMPTS, minimum=1, maximum=1_000_000
        ),
        restore_max_bytes=restore_max_bytes,
        restore_timeout_s=read_restore_timeout_s(env),
    )
    env.finish()
    return config


def read_restore_max_bytes(env: EnvReader) -> int:
    """SPARK_PROMPTS_RESTORE_MAX_BYTES: the largest export a restore takes (the edge's body limit too)."""
    return env.integer("SPARK_PROMPTS_RESTORE_MAX_BYTES", RESTORE_MAX_BYTES, minimum=1024, maximum=1024 * MIB)


def read_restore_timeout_s(env: EnvReader) -> float:
    """SPARK_PROMPTS_RESTORE_TIMEOUT_S: how long a restore may take before it gives up, having changed nothing."""
    return env.number("SPARK_PROMPTS_RESTORE_TIMEOUT_S", RESTORE_TIMEOUT_S, minimum=1.0)
