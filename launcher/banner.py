"""The block the launcher logs once at start: how this suite is configured, with no secret in it.

Access mode, sign-in and who may use a hosted app, store, the providers that
have keys, whether the admin routes are on, and where the edge listens: what
an operator otherwise learns by reading the environment and the code.
Development mode without sign-in makes every visitor the owner, which the
banner says when an app is hosted; on an address beyond loopback (the Docker
image binds 0.0.0.0) that is everyone who can reach the edge, and gets a
WARNING of its own. So does sign-in whose cookies would cross a network in
the clear (SPARK_PUBLIC_URL on plain http beyond loopback).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from launcher.config import LauncherConfig, is_wildcard
from services.access.config import SignInGate, read_sign_in
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


def _access(mode: str, checks: bool, sign_in: SignInGate | None) -> str:
    if not checks:
        return "checks off (SPARK_ACCESS_CHECKS=off): every call is served unchecked, for benchmarks only"
    if mode == "development" and sign_in is None:
        return "development (every caller is the owner, no API key needed)"
    if mode == "development":
        return (
            "development with sign-in (no one is everyone's owner: a caller is an API key's user, a signed-in "
            "GitHub user on the app's routes, or anonymous)"
        )
    return "keys (every request needs an API key, made at /admin/keys with X-Admin-Token)"


_WHO_MAY_USE = {
    "public": "anyone may use the app; visitors who have not signed in are anonymous (isOwner false)",
    "signed-in": "only signed-in GitHub users may use the app",
    "owners": "only SPARK_OWNERS may use the app",
}


def _sign_in(config: LauncherConfig, sign_in: SignInGate | None) -> str | None:
    """Who the app's visitors are; None when no app is hosted and sign-in is off (nothing to say)."""
    if sign_in is None:
        if config.app_dir is None:
            return None
        if config.access_mode == "development" and config.access_checks:
            return (
                "sign-in: off (SPARK_AUTH unset): EVERY VISITOR OF THE APP IS ITS OWNER, anonymous ones included; "
                "set SPARK_AUTH=github to sign people in"
            )
        return "sign-in: off (SPARK_AUTH unset): the app's visitors need an API key; set SPARK_AUTH=github"
    owners = ", ".join(sorted(sign_in.owners)) or "nobody (SPARK_OWNERS unset)"
    return (
        f"sign-in: GitHub, callback {sign_in.public_origin}/_spark/auth/callback; app {sign_in.app!r} "
        f"{sign_in.app_access}: {_WHO_MAY_USE[sign_in.app_access]}; owners: {owners}"
    )


def _clear_text_origin(sign_in: SignInGate | None) -> str | None:
    """The app's origin when sign-in cookies would travel unencrypted beyond this machine (http elsewhere)."""
    if sign_in is None:
        return None
    parts = urlsplit(sign_in.public_origin)
    return sign_in.public_origin if parts.scheme == "http" and not is_loopback(parts.hostname or "") else None


def _providers(config: LauncherConfig) -> str:
    if not any(instance.service == "llm" for instance in config.instances):
        return "none (the llm service is not started: SPARK_SERVICES)"
    with_keys = [p.name for p in config.providers if p.has_key]
    if with_keys:
        return ", ".join(with_keys)
    variables = ", ".join(p.key_variable for p in config.providers)
    return f"none (set one of {variables} to offer its models)"


def build_banner(config: LauncherConfig, sign_in: SignInGate | None = None) -> Banner:
    """The banner of `config`; `sign_in` as the services read it (services/access/config.py)."""
    store = describe_store(config.redis_url, config.data_dir)
    edge = config.edge_url
    if not is_loopback(config.host):
        edge += " (every interface)" if is_wildcard(config.host) else " (beyond loopback)"
    admin = (
        "enabled (ADMIN_TOKEN is set)"
        if config.admin_routes
        else "disabled (ADMIN_TOKEN unset: /admin/*, /v1/usage and prompt writes answer 403)"
    )
    visitors = _sign_in(config, sign_in)
    lines = (
        f"access: {_access(config.access_mode, config.access_checks, sign_in)}",
        *((visitors,) if visitors is not None else ()),
        f"store: {store}",
        f"providers with keys: {_providers(config)}",
        f"admin routes: {admin}",
        f"edge: {edge}",
    )
    warning = None
    clear_text = _clear_text_origin(sign_in)
    if clear_text is not None:
        warning = (
            f"SIGN-IN OVER PLAIN HTTP: SPARK_PUBLIC_URL={clear_text} sends session cookies unencrypted "
            "across the network, where anyone on the way can take them. Serve the app over https (the edge's "
            "SPARK_EDGE_TLS_CERT, or a TLS proxy in front) and set SPARK_PUBLIC_URL=https://..."
        )
    elif config.access_mode == "development" and sign_in is None and not is_loopback(config.host):
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
    if visitors is not None:
        fields["sign_in"] = sign_in.app_access if sign_in is not None else "off"
    return Banner(lines, warning, fields)


def log_banner(config: LauncherConfig) -> Banner:
    """Logs the banner (one record, and the warning as a second one); returns it."""
    banner = build_banner(config, read_sign_in())
    logger.info("Spark services starting | %s", " | ".join(banner.lines), extra=banner.fields)
    if banner.warning is not None:
        logger.warning("%s", banner.warning, extra={"access_mode": config.access_mode, "host": config.host})
    return banner
