"""The block the launcher logs once at start: how this suite is configured, with no secret in it.

Access mode, store, the providers that have keys, whether the admin routes
are on, and where the edge listens: what an operator otherwise learns by
reading the environment and the code. Development mode on an address beyond
loopback (the Docker image binds 0.0.0.0) makes everyone who can reach the
edge the owner: that gets a WARNING of its own.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from launcher.config import LauncherConfig, is_wildcard
from services.common.store import SQLITE_FILENAME, userinfo_is_cut

logger = logging.getLogger(__name__)

_REDIS_DEFAULT_PORT = 6379


@dataclass(frozen=True, slots=True)
class Banner:
    """The start-up block: one line per subject, a warning when the configuration is dangerous, and the
    same facts as log fields."""

    lines: tuple[str, ...]
    warning: str | None
    fields: dict[str, Any]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_store(redis_url: str | None, data_dir: Path) -> str:
    """Where the state lives: the SQLite file, or the Redis server (never its password)."""
    if not redis_url:
        return f"SQLite {(data_dir / SQLITE_FILENAME).absolute()}"
    if userinfo_is_cut(redis_url):
        # Its host, port and database would be pieces of the password.
        return "Redis (REDIS_URL is unreadable: percent-encode / ? # in its password)"
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"Redis on the socket {parts.path}"
    try:
        port = parts.port or _REDIS_DEFAULT_PORT
    except ValueError:
        return "Redis (REDIS_URL has no valid port)"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    database = parts.path.strip("/") or "0"
    tls = ", TLS" if parts.scheme == "rediss" else ""
    return f"Redis {host}:{port} database {database}{tls}"


def _access(mode: str, checks: bool) -> str:
    if not checks:
        return "checks off (SPARK_ACCESS_CHECKS=off): every call is served unchecked, for benchmarks only"
    if mode == "development":
        return "development (every caller is the owner, no API key needed)"
    return "keys (every request needs an API key, made at /admin/keys with X-Admin-Token)"


def _providers(config: LauncherConfig) -> str:
    if not any(instance.service == "llm" for instance in config.instances):
        return "none (the llm service is not started: SPARK_SERVICES)"
    with_keys = [p.name for p in config.providers if p.has_key]
    if with_keys:
        return ", ".join(with_keys)
    variables = ", ".join(p.key_variable for p in config.providers)
    return f"none (set one of {variables} to offer its models)"


def build_banner(config: LauncherConfig) -> Banner:
    store = describe_store(config.redis_url, config.data_dir)
    edge = config.edge_url
    if not is_loopback(config.host):
        edge += " (every interface)" if is_wildcard(config.host) else " (beyond loopback)"
    admin = (
        "enabled (ADMIN_TOKEN is set)"
        if config.admin_routes
        else "disabled (ADMIN_TOKEN unset: /admin/*, /v1/usage and prompt writes answer 403)"
    )
    lines = (
        f"access: {_access(config.access_mode, config.access_checks)}",
        f"store: {store}",
        f"providers with keys: {_providers(config)}",
        f"admin routes: {admin}",
        f"edge: {edge}",
    )
    warning = None
    if config.access_mode == "development" and not is_loopback(config.host):
        warning = (
            f"DEVELOPMENT MODE ON {config.host}, NOT LOOPBACK: anyone who can reach port {config.edge_port} of "
            "this machine is the owner without a key, and can read, change and delete everything stored and spend "
            "the provider keys. Listen on loopback (SPARK_HOST=127.0.0.1), or require keys (SPARK_ACCESS_MODE=keys "
            "and ADMIN_TOKEN)"
        )
    fields = {
        "access_mode": config.access_mode,
        "store": store,
        "providers": [p.name for p in config.providers if p.has_key],
        "admin_routes": config.admin_routes,
        "url": config.edge_url,
    }
    return Banner(lines, warning, fields)


def log_banner(config: LauncherConfig) -> Banner:
    """Logs the banner (one record, and the warning as a second one); returns it."""
    banner = build_banner(config)
    logger.info("Spark services starting | %s", " | ".join(banner.lines), extra=banner.fields)
    if banner.warning is not None:
        logger.warning("%s", banner.warning, extra={"access_mode": config.access_mode, "host": config.host})
    return banner
