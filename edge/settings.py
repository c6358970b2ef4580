"""The edge's settings; the only reader of the environment for the edge."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edge.static import SnapshotError, StaticSite, load_snapshot, read_limits, take_snapshot
from services.access.config import APP_ACCESS, read_access_mode, read_anonymous_app_calls, read_checks
from services.access.internal import read_internal_token
from services.common.app import read_app_name
from services.common.config import EnvReader, read_trace_ratio
from services.prompts.config import read_restore_max_bytes, read_restore_timeout_s

MIB = 1024 * 1024
# How much longer than the prompts service's restore time limit the edge waits for its answer: the limit
# runs from when the service has the request, and a restore that met it only has one small commit to make.
RESTORE_ROUTE_MARGIN_S = 15.0
# Where `python -m edge` snapshots SPARK_APP_DIR when SPARK_APP_SNAPSHOT does not say (beside its config).
DEFAULT_SNAPSHOT_DIR = Path(tempfile.gettempdir()) / "spark-edge" / "app"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where one service listens, as the edge reaches it."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Everything the Envoy config is rendered from."""

    listen_host: str
    port: int
    admin_host: str
    admin_port: int
    upstreams: dict[str, tuple[Upstream, ...]]
    descriptor_path: Path
    allowed_origins: tuple[str, ...]
    kv_max_value_bytes: int
    # The prompts service's restore limits (SPARK_PROMPTS_RESTORE_MAX_BYTES, _TIMEOUT_S), so that the edge
    # lets through every restore the service takes and waits for the service's answer.
    restore_max_body_bytes: int
    restore_route_timeout_s: float
    default_max_body_bytes: int
    llm_max_body_bytes: int
    vision_max_body_bytes: int
    access_log_path: str
    otlp: Upstream | None
    # The share of HTTP requests the edge traces (OTEL_TRACES_SAMPLER, services/common/telemetry.py).
    trace_ratio: float
    max_heap_bytes: int
    max_connections: int
    route_timeout_s: float
    stream_idle_timeout_s: float
    # The secret the edge shows the services with the client's address (services/access/internal.py).
    internal_token: str | None = field(repr=False)
    # Keys mode with checks on: a request with no credential at all is refused here, before its body is read
    # and before any Python process sees it; the services check every credential that is there.
    credentials_required: bool
    # Sign-in is on and the app is public: the hosted app's `/_spark/*` calls may come with no credential at all
    # (an anonymous visitor), so the check above leaves them to the services.
    anonymous_app_calls: bool
    # TLS on the edge's listener (PEM files); HSTS is sent only then.
    tls_cert: Path | None
    tls_key: Path | None
    # A listener that serves only Envoy's /stats/prometheus, so Prometheus needs no access to the admin API.
    stats_port: int | None
    # The hosted app's files (edge/static.py), served at / by Envoy itself; None: no app is hosted.
    app: StaticSite | None
    # Its name (services/common/app.py), which GET /_spark/status reports.
    app_name: str
    # SPARK_APP_ACCESS: with "signed-in" or "owners" a page load goes to the access service (OpenPage), which
    # answers the page or a redirect to sign in; "public" pages are files like any other.
    app_access: str


def parse_upstreams(raw: str, env: EnvReader) -> dict[str, tuple[Upstream, ...]]:
    """Parses `kv=127.0.0.1:50051,kv=127.0.0.1:50061,meta=meta:50050`: a repeated name adds an endpoint."""
    upstreams: dict[str, tuple[Upstream, ...]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        if not name or not host or not port.isdigit():
            env.problem(f"SPARK_EDGE_UPSTREAMS entry {item!r} is not name=host:port")
            continue
        name = name.strip()
        upstreams[name] = (*upstreams.get(name, ()), Upstream(host.strip(), int(port)))
    return upstreams


def parse_otlp(endpoint: str | None, env: EnvReader) -> Upstream | None:
    if not endpoint:
        return None
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not parts.hostname:
        env.problem(f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint!r} has no host")
        return None
    return Upstream(parts.hostname, parts.port or 4317)


def read_app_access(env: EnvReader) -> str:
    """SPARK_APP_ACCESS: public (the default), signed-in or owners (the access service says what each means)."""
    return env.choice("SPARK_APP_ACCESS", "public", APP_ACCESS)


def read_app(env: EnvReader) -> StaticSite | None:
    """The hosted app: SPARK_APP_DIR snapshotted now into SPARK_APP_SNAPSHOT (default beside the edge's config),
    or, without SPARK_APP_DIR, the snapshot already at SPARK_APP_SNAPSHOT (the launcher takes it first, since the
    access service reads it too); None if neither is set."""
    limits = read_limits(env)
    app_dir, snapshot = env.optional_text("SPARK_APP_DIR"), env.optional_text("SPARK_APP_SNAPSHOT")
    try:
        if app_dir is not None:
            target = Path(snapshot).expanduser() if snapshot else DEFAULT_SNAPSHOT_DIR
            return take_snapshot(Path(app_dir).expanduser(), target, limits)
        if snapshot is not None:
            return load_snapshot(Path(snapshot).expanduser())
    except SnapshotError as error:
        env.problem(str(error))
    return None


def read_settings(descriptor_path: Path, environ: Mapping[str, str] | None = None) -> EdgeSettings:
    env = EnvReader(os.environ if environ is None else environ)
    upstreams = parse_upstreams(env.text("SPARK_EDGE_UPSTREAMS", ""), env)
    tls_cert, tls_key = env.optional_text("SPARK_EDGE_TLS_CERT"), env.optional_text("SPARK_EDGE_TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        env.problem("SPARK_EDGE_TLS_CERT and SPARK_EDGE_TLS_KEY go together: set both (PEM files) or neither")
    for name, value in (("SPARK_EDGE_TLS_CERT", tls_cert), ("SPARK_EDGE_TLS_KEY", tls_key)):
        if value and not Path(value).is_file():
            env.problem(f"{name}={value!r} is not a file")
    stats_port = env.integer("SPARK_EDGE_STATS_PORT", -1, minimum=-1, maximum=65535)
    # The vision service accepts messages up to twice its image limit and refuses larger ones as
    # RESOURCE_EXHAUSTED, which would reach the caller as a 429: the edge's default stays below that.
    max_image = env.integer("SPARK_VISION_MAX_IMAGE_BYTES", 10 * MIB, minimum=1, maximum=256 * MIB)
    settings = EdgeSettings(
        listen_host=env.text("SPARK_EDGE_HOST", "127.0.0.1"),
        port=env.integer("SPARK_EDGE_PORT", 8080, minimum=0, maximum=65535),
        # Envoy's admin API answers anyone who reaches it: loopback unless a private network needs it
        # (compose's Prometheus scrapes /stats/prometheus there).
        admin_host=env.text("SPARK_EDGE_ADMIN_HOST", "127.0.0.1"),
        admin_port=env.integer("SPARK_EDGE_ADMIN_PORT", 9901, minimum=0, maximum=65535),
        upstreams=upstreams,
        descriptor_path=descriptor_path,
        allowed_origins=tuple(o.strip() for o in env.text("ALLOWED_ORIGINS", "").split(",") if o.strip()),
        kv_max_value_bytes=env.integer("SPARK_KV_MAX_VALUE_BYTES", 10 * MIB, minimum=1, maximum=1024 * MIB),
        restore_max_body_bytes=read_restore_max_bytes(env),
        restore_route_timeout_s=read_restore_timeout_s(env) + RESTORE_ROUTE_MARGIN_S,
        default_max_body_bytes=env.integer("SPARK_EDGE_MAX_BODY_BYTES", MIB, minimum=1, maximum=1024 * MIB),
        # Chat bodies carry images as base64 data URLs.
        llm_max_body_bytes=env.integer("SPARK_EDGE_MAX_LLM_BODY_BYTES", 24 * MIB, minimum=1, maximum=1024 * MIB),
        # An image at the vision limit as base64 in JSON: 16 MiB for the default 10 MiB.
        vision_max_body_bytes=env.integer(
            "SPARK_EDGE_MAX_VISION_BODY_BYTES", max_image * 3 // 2 + MIB, minimum=1, maximum=1024 * MIB
        ),
        access_log_path=env.text("SPARK_EDGE_ACCESS_LOG", "/dev/stdout"),
        otlp=parse_otlp(env.optional_text("OTEL_EXPORTER_OTLP_ENDPOINT"), env),
        trace_ratio=read_trace_ratio(env),
        max_heap_bytes=env.integer("SPARK_EDGE_MAX_HEAP_BYTES", 1024 * MIB, minimum=64 * MIB),
        max_connections=env.integer("SPARK_EDGE_MAX_CONNECTIONS", 10_000, minimum=1),
        route_timeout_s=env.number("SPARK_EDGE_ROUTE_TIMEOUT_S", 30.0, minimum=0.01),
        # Routes without their own idle timeout; the streaming routes have none at all.
        stream_idle_timeout_s=env.number("SPARK_EDGE_STREAM_IDLE_TIMEOUT_S", 300.0, minimum=0.01),
        internal_token=read_internal_token(env),
        credentials_required=read_access_mode(env) == "keys" and read_checks(env),
        anonymous_app_calls=read_anonymous_app_calls(env),
        tls_cert=Path(tls_cert) if tls_cert and tls_key else None,
        tls_key=Path(tls_key) if tls_cert and tls_key else None,
        stats_port=None if stats_port < 0 else stats_port,
        app=read_app(env),
        app_name=read_app_name(env),
        app_access=read_app_access(env),
    )
    if settings.app is not None and settings.app_access != "public" and "access" not in upstreams:
        env.problem(
            f"SPARK_APP_ACCESS={settings.app_access} sends page loads to the access service: "
            "SPARK_EDGE_UPSTREAMS must name it (access=host:port)"
        )
    env.finish()
    return settings
