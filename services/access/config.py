"""The access service's settings; the only reader of the environment for this service.

Development mode serves every request as one owner user without keys: the
embedded default, for one person on one machine. It is refused next to Redis
(a shared, multi-instance deployment) unless forced with
`SPARK_ACCESS_ALLOW_DEVELOPMENT=true`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.access.policy import DEFAULT_LIMITS_PATH, Limits, PolicyError, load_limits
from services.access.users import User
from services.common.config import EnvReader, ServerConfig, read_server_config

DEFAULT_PORT = 50055
MODES = ("development", "keys")
# The development owner; `spark.user()` returns it.
DEVELOPMENT_USER = User(id="owner", login="owner", email="", avatar_url="", is_owner=True)
# A request to an admin route that carries the admin token and no API key.
OPERATOR = User(id="admin", login="admin", email="", avatar_url="", is_owner=True)


@dataclass(frozen=True, slots=True)
class AccessConfig:
    server: ServerConfig
    data_dir: Path
    redis_url: str | None
    admin_token: str | None = field(repr=False)
    mode: str
    limits: Limits
    nonce_ttl_s: int
    # Route names or route classes on which X-Nonce is required.
    nonce_routes: frozenset[str]
    key_cache_s: float


def read_config(environ: Mapping[str, str] | None = None) -> AccessConfig:
    env = EnvReader(os.environ if environ is None else environ)
    redis_url = env.optional_text("REDIS_URL")
    mode = env.choice("SPARK_ACCESS_MODE", "keys" if redis_url else "development", MODES)
    if mode == "development" and redis_url and not env.flag("SPARK_ACCESS_ALLOW_DEVELOPMENT", False):
        env.problem(
            "SPARK_ACCESS_MODE=development serves everyone as the owner without keys; it is refused with "
            "REDIS_URL set (a shared deployment). Use SPARK_ACCESS_MODE=keys, or force it with "
            "SPARK_ACCESS_ALLOW_DEVELOPMENT=true"
        )
    limits_path = env.path("SPARK_ACCESS_LIMITS", str(DEFAULT_LIMITS_PATH))
    try:
        limits = load_limits(limits_path)
    except PolicyError as error:
        env.problem(f"SPARK_ACCESS_LIMITS: {error}")
        limits = load_limits(DEFAULT_LIMITS_PATH)
    config = AccessConfig(
        server=read_server_config(env, "access", default_port=DEFAULT_PORT),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=redis_url,
        admin_token=env.optional_text("ADMIN_TOKEN"),
        mode=mode,
        limits=limits,
        nonce_ttl_s=env.integer("SPARK_ACCESS_NONCE_TTL_S", 300, minimum=1, maximum=7 * 86400),
        nonce_routes=frozenset(r.strip() for r in env.text("SPARK_ACCESS_NONCE_ROUTES", "").split(",") if r.strip()),
        key_cache_s=env.number("SPARK_ACCESS_KEY_CACHE_S", 5.0),
    )
    env.finish()
    return config
