"""The access settings every service reads (`read_gate_config`: identity, limits, the internal token),
and the access service's own; the only reader of the environment for them.

Development mode serves every request as one owner user without keys: the
embedded default, for one person on one machine. It is refused next to Redis
(a shared, multi-instance deployment) unless forced with
`SPARK_ACCESS_ALLOW_DEVELOPMENT=true`. Keys mode needs `ADMIN_TOKEN`: keys are
made through the admin routes, so without it not one could ever be created and
every request would be refused; the service refuses to start instead.

Keys mode also needs `SPARK_INTERNAL_TOKEN`, the secret the edge and the
services show each other (services/access/internal.py); the launcher makes one
for the suite it starts. `SPARK_ACCESS_CHECKS=off` serves every call unchecked,
for measuring what the checks cost, and only in development mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.access.addresses import TrustedProxies, parse_networks
from services.access.internal import read_internal_token
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
class GateConfig:
    """How every service admits the calls it serves (services/access/checkpoint.py)."""

    mode: str
    admin_token: str | None = field(repr=False)
    # The secret the suite's own parts show each other; None only in development mode without one.
    internal_token: str | None = field(repr=False)
    # False: every call is served unchecked (development mode only, to measure what checking costs).
    checks: bool
    limits: Limits
    nonce_ttl_s: int
    # Method names or route classes on which X-Nonce is required.
    nonce_routes: frozenset[str]
    key_cache_s: float
    # Peers (reverse proxies, load balancers) whose X-Forwarded-For names the client; none by default.
    trusted_proxies: TrustedProxies


@dataclass(frozen=True, slots=True)
class AccessConfig:
    server: ServerConfig
    data_dir: Path
    redis_url: str | None
    gate: GateConfig


def _keys_without_admin_token(*, chosen: bool, redis: bool) -> str:
    """What to set when keys mode has no admin token: the token, or development mode where it is allowed."""
    why = "SPARK_ACCESS_MODE=keys" if chosen else "SPARK_ACCESS_MODE is keys (the default with REDIS_URL set)"
    development = "SPARK_ACCESS_MODE=development"
    if redis:
        development += " and SPARK_ACCESS_ALLOW_DEVELOPMENT=true"
    return (
        f"{why} but ADMIN_TOKEN is unset: API keys are created at /admin/keys with X-Admin-Token, so no key could "
        "ever be created and every request would be refused. Set ADMIN_TOKEN to a long random secret (e.g. "
        f"`openssl rand -hex 32`), or, for one person on one machine, {development} (everyone is the owner)"
    )


def read_access_mode(env: EnvReader) -> str:
    """`SPARK_ACCESS_MODE`: keys by default next to Redis, development otherwise."""
    return env.choice("SPARK_ACCESS_MODE", "keys" if env.optional_text("REDIS_URL") else "development", MODES)


def read_checks(env: EnvReader) -> bool:
    """Whether calls are checked at all (`SPARK_ACCESS_CHECKS`, on unless benchmarking)."""
    return env.choice("SPARK_ACCESS_CHECKS", "on", ("on", "off")) == "on"


def read_gate_config(env: EnvReader) -> GateConfig:
    """The access settings, read by every service with its own settings; problems go to `env`."""
    redis_url = env.optional_text("REDIS_URL")
    mode = read_access_mode(env)
    if mode == "development" and redis_url and not env.flag("SPARK_ACCESS_ALLOW_DEVELOPMENT", False):
        env.problem(
            "SPARK_ACCESS_MODE=development serves everyone as the owner without keys; it is refused with "
            "REDIS_URL set (a shared deployment). Use SPARK_ACCESS_MODE=keys, or force it with "
            "SPARK_ACCESS_ALLOW_DEVELOPMENT=true"
        )
    admin_token = env.optional_text("ADMIN_TOKEN")
    if mode == "keys" and admin_token is None:
        env.problem(
            _keys_without_admin_token(chosen=env.optional_text("SPARK_ACCESS_MODE") is not None, redis=bool(redis_url))
        )
    internal_token = read_internal_token(env)
    if mode == "keys" and internal_token is None:
        env.problem(
            "SPARK_ACCESS_MODE is keys but SPARK_INTERNAL_TOKEN is unset: the edge and the services prove to each "
            "other that they are the suite with it (the same value everywhere; `openssl rand -hex 32`). "
            "`make run` makes one for the suite it starts"
        )
    checks = read_checks(env)
    if not checks and mode != "development":
        env.problem("SPARK_ACCESS_CHECKS=off serves every call unchecked; it is refused outside development mode")
    proxies, invalid = parse_networks(env.text("SPARK_TRUSTED_PROXIES", ""))
    if invalid:
        env.problem(
            "SPARK_TRUSTED_PROXIES must list IP addresses or CIDR ranges (e.g. 10.0.0.0/8,192.0.2.7), not "
            + ", ".join(map(repr, invalid))
        )
    if any(network.prefixlen == 0 for network in proxies):
        env.problem(
            "SPARK_TRUSTED_PROXIES trusts every address (a /0 range): any client could then name its own address "
            "in X-Forwarded-For and escape the per-address limits. List your proxies' addresses or subnets"
        )
    limits_path = env.path("SPARK_ACCESS_LIMITS", str(DEFAULT_LIMITS_PATH))
    try:
        limits = load_limits(limits_path)
    except PolicyError as error:
        env.problem(f"SPARK_ACCESS_LIMITS: {error}")
        limits = load_limits(DEFAULT_LIMITS_PATH)
    return GateConfig(
        mode=mode,
        admin_token=admin_token,
        internal_token=internal_token,
        checks=checks,
        limits=limits,
        nonce_ttl_s=env.integer("SPARK_ACCESS_NONCE_TTL_S", 300, minimum=1, maximum=7 * 86400),
        nonce_routes=frozenset(r.strip() for r in env.text("SPARK_ACCESS_NONCE_ROUTES", "").split(",") if r.strip()),
        key_cache_s=env.number("SPARK_ACCESS_KEY_CACHE_S", 5.0),
        trusted_proxies=TrustedProxies(proxies),
    )


def read_config(environ: Mapping[str, str] | None = None) -> AccessConfig:
    env = EnvReader(os.environ if environ is None else environ)
    config = AccessConfig(
        server=read_server_config(env, "access", default_port=DEFAULT_PORT),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        gate=read_gate_config(env),
    )
    env.finish()
    return config
