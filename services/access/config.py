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

Sign-in with GitHub (`SPARK_AUTH=github`) adds sessions next to API keys, in
either mode: every service reads who may use the hosted app (`SPARK_APP_ACCESS`,
`SPARK_OWNERS`) and the app's origin (`SPARK_PUBLIC_URL`) to check the session
cookie of the calls it serves; only the access service reads the OAuth App's
credentials (`SPARK_AUTH_GITHUB_*`), and only it needs them. With sign-in
on, nobody is the development owner: a caller is a key's user, a session's
user, or anonymous.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from services.access.addresses import TrustedProxies, parse_networks
from services.access.internal import read_internal_token
from services.access.policy import DEFAULT_LIMITS_PATH, Limits, PolicyError, load_limits
from services.access.users import User
from services.common.app import read_app_name
from services.common.config import EnvReader, ServerConfig, read_server_config

DEFAULT_PORT = 50055
MODES = ("development", "keys")
# The development owner; `spark.user()` returns it.
DEVELOPMENT_USER = User(id="owner", login="owner", email="", avatar_url="", is_owner=True)
# A request to an admin route that carries the admin token and no API key.
OPERATOR = User(id="admin", login="admin", email="", avatar_url="", is_owner=True)
# Who may use the hosted app once sign-in is on (SPARK_APP_ACCESS).
APP_ACCESS = ("public", "signed-in", "owners")
AUTH_PROVIDERS = ("github",)
DEFAULT_SESSION_TTL_S = 7 * 86400
MAX_SESSION_TTL_S = 365 * 86400
DEFAULT_GITHUB_URL = "https://github.com"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
# GitHub logins: letters, digits and single hyphens, at most 39 characters.
MAX_LOGIN_CHARS = 39


@dataclass(frozen=True, slots=True)
class SignInGate:
    """What every service needs to admit a call by its session cookie (SPARK_AUTH set)."""

    # public, signed-in or owners.
    app_access: str
    # GitHub logins, lowercased: GitHub's logins are case-insensitive.
    owners: frozenset[str]
    # The origin browsers load the app from (`https://app.example.com`): the only Origin a cookie write may have.
    public_origin: str
    # The app the suite hosts: a session is for it alone, never for `/runtime/{another app}`.
    app: str

    def is_owner(self, login: str) -> bool:
        return login.lower() in self.owners


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
    # Sign-in with GitHub: sessions next to API keys; None when SPARK_AUTH is unset.
    sign_in: SignInGate | None = None


@dataclass(frozen=True, slots=True)
class GitHubOAuth:
    """The OAuth App the access service signs people in with; the secret goes to the token endpoint only."""

    client_id: str
    client_secret: str = field(repr=False)
    # Where the authorization page and the token endpoint are (https://github.com), and the REST API.
    url: str
    api_url: str
    # `<SPARK_PUBLIC_URL>/_spark/auth/callback`, as registered with the OAuth App.
    redirect_uri: str
    session_ttl_s: int
    # Cookies get `Secure` when the app is served over https.
    secure_cookies: bool


@dataclass(frozen=True, slots=True)
class AccessConfig:
    server: ServerConfig
    data_dir: Path
    redis_url: str | None
    gate: GateConfig
    # None when SPARK_AUTH is unset.
    github: GitHubOAuth | None = None
    # The launcher's snapshot of the hosted app (SPARK_APP_SNAPSHOT), whose index.html OpenPage serves.
    app_snapshot: Path | None = None


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
        sign_in=read_sign_in_gate(env),
    )


def read_public_url(env: EnvReader) -> str:
    """`SPARK_PUBLIC_URL`, the origin browsers use, without a trailing slash; by default the edge's own
    address on loopback (`http://127.0.0.1:<SPARK_EDGE_PORT>`, https with SPARK_EDGE_TLS_CERT)."""
    scheme = "https" if env.optional_text("SPARK_EDGE_TLS_CERT") else "http"
    default = f"{scheme}://127.0.0.1:{env.integer('SPARK_EDGE_PORT', 8080, minimum=0, maximum=65535)}"
    url = env.text("SPARK_PUBLIC_URL", default).rstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or port == 0
    ):
        env.problem(
            f"SPARK_PUBLIC_URL={url!r} must be the origin browsers load the app from, scheme, host and port only "
            "(e.g. https://app.example.com or http://127.0.0.1:8080): the OAuth callback and the same-origin check "
            "of cookie writes use it"
        )
    return url.lower()


def read_sign_in_gate(env: EnvReader) -> SignInGate | None:
    """The sign-in settings every service checks sessions with; None when SPARK_AUTH is unset. Problems go to
    `env`. The OAuth App's credentials are the access service's alone (`read_config`)."""
    provider = env.choice("SPARK_AUTH", "", ("", *AUTH_PROVIDERS))
    access = env.choice("SPARK_APP_ACCESS", "public", APP_ACCESS)
    owners = frozenset(o.strip().lower() for o in env.text("SPARK_OWNERS", "").split(",") if o.strip())
    invalid = sorted(o for o in owners if not _is_login(o))
    if invalid:
        env.problem("SPARK_OWNERS must list GitHub logins (comma separated), not " + ", ".join(map(repr, invalid)))
    if not provider:
        if env.optional_text("SPARK_APP_ACCESS") is not None:
            env.problem(
                "SPARK_APP_ACCESS says who may use the app once people sign in; it needs SPARK_AUTH=github "
                "(and the OAuth App's SPARK_AUTH_GITHUB_CLIENT_ID and SPARK_AUTH_GITHUB_CLIENT_SECRET)"
            )
        return None
    if access == "owners" and not owners:
        env.problem("SPARK_APP_ACCESS=owners lets only SPARK_OWNERS use the app, and SPARK_OWNERS names nobody")
    origin = read_public_url(env)
    return SignInGate(app_access=access, owners=owners, public_origin=origin, app=read_app_name(env))


def _is_login(login: str) -> bool:
    return (
        0 < len(login) <= MAX_LOGIN_CHARS
        and login.replace("-", "").isalnum()
        and login.isascii()
        and not login.startswith("-")
        and not login.endswith("-")
        and "--" not in login
    )


def read_anonymous_app_calls(env: EnvReader) -> bool:
    """Whether the hosted app's calls (`/_spark/*`) may come with no credential at all: sign-in is on and the
    app is public, so visitors who have not signed in are anonymous. The edge must then let them through."""
    signed_in = env.choice("SPARK_AUTH", "", ("", *AUTH_PROVIDERS)) != ""
    return signed_in and env.choice("SPARK_APP_ACCESS", "public", APP_ACCESS) == "public"


def _read_github(env: EnvReader, gate: GateConfig) -> GitHubOAuth | None:
    """The OAuth App: only the access service reads its secret (no other service needs it)."""
    if gate.sign_in is None:
        return None
    for name in ("SPARK_AUTH_GITHUB_CLIENT_ID", "SPARK_AUTH_GITHUB_CLIENT_SECRET"):
        if env.optional_text(name) is None:
            env.problem(
                f"SPARK_AUTH=github needs {name} (for the access service): register an OAuth App on GitHub "
                "(Settings, Developer settings, OAuth Apps) with the callback URL "
                "<SPARK_PUBLIC_URL>/_spark/auth/callback"
            )
    urls = {}
    defaults = (("SPARK_AUTH_GITHUB_URL", DEFAULT_GITHUB_URL), ("SPARK_AUTH_GITHUB_API_URL", DEFAULT_GITHUB_API_URL))
    for name, default in defaults:
        url = env.text(name, default).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            env.problem(f"{name}={url!r} is not an http(s) URL")
        urls[name] = url
    public_url = read_public_url(env)
    return GitHubOAuth(
        client_id=env.text("SPARK_AUTH_GITHUB_CLIENT_ID", ""),
        client_secret=env.text("SPARK_AUTH_GITHUB_CLIENT_SECRET", ""),
        url=urls["SPARK_AUTH_GITHUB_URL"],
        api_url=urls["SPARK_AUTH_GITHUB_API_URL"],
        redirect_uri=f"{public_url}/_spark/auth/callback",
        session_ttl_s=env.integer("SPARK_SESSION_TTL_S", DEFAULT_SESSION_TTL_S, minimum=60, maximum=MAX_SESSION_TTL_S),
        secure_cookies=public_url.startswith("https://"),
    )


def read_sign_in(environ: Mapping[str, str] | None = None) -> SignInGate | None:
    """The sign-in settings alone (the launcher's banner says them); raises ConfigError for invalid ones."""
    env = EnvReader(os.environ if environ is None else environ)
    sign_in = read_sign_in_gate(env)
    env.finish()
    return sign_in


def read_config(environ: Mapping[str, str] | None = None) -> AccessConfig:
    env = EnvReader(os.environ if environ is None else environ)
    config = AccessConfig(
        server=read_server_config(env, "access", default_port=DEFAULT_PORT),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        gate=read_gate_config(env),
    )
    snapshot = env.optional_text("SPARK_APP_SNAPSHOT")
    config = dataclasses.replace(
        config, github=_read_github(env, config.gate), app_snapshot=Path(snapshot) if snapshot else None
    )
    env.finish()
    return config
