"""The launcher's settings; the only reader of the environment for the launcher.

Which services to start, how many processes of each, and every port: a port
configured as 0 (and every extra worker's port) is picked free here, before
anything starts, so that every child knows every other child's address. Each
port is kept with the setting that chose it, for the check that every one is
free before anything starts.

What the banner reports (access mode, store, providers) is read with the
access and llm services' own config readers, so the launcher and the
services cannot disagree, and a service's refusal to start (keys mode without
ADMIN_TOKEN, say) stops the launcher before any process starts.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from edge.settings import read_app_access
from edge.static import SnapshotLimits, read_limits
from services.access.config import GateConfig, read_gate_config
from services.access.config import read_config as read_access_config
from services.common.app import read_app_name
from services.common.config import ConfigError, EnvReader
from services.llm.config import read_config as read_llm_config

T = TypeVar("T")

# (name, default gRPC port, default metrics port, default processes); meta first: it reports on the others.
# kv runs two processes by default: one Python process is the bottleneck of KV traffic. So does access, which
# the edge asks about every request: with two, one can die and be restarted while the other answers (on two
# cores one process is about 8% faster; measured in benchmarks/access.py).
SERVICES: tuple[tuple[str, int, int, int], ...] = (
    ("meta", 50050, 9460, 1),
    ("access", 50055, 9465, 1),
    ("kv", 50051, 9461, 2),
    ("llm", 50052, 9462, 1),
    ("prompts", 50053, 9463, 1),
    ("vision", 50054, 9464, 1),
)


@dataclass(frozen=True, slots=True)
class Instance:
    """One process of a service: the first keeps the service's name and ports, the others are `<name>-<n>`."""

    name: str
    service: str
    port: int
    metrics_port: int


@dataclass(frozen=True, slots=True)
class Binding:
    """A port the suite will listen on, and the setting that chose it (for a message when it is taken)."""

    what: str
    host: str
    port: int
    setting: str


@dataclass(frozen=True, slots=True)
class Provider:
    """An LLM provider of the registry, and whether its key variable is set (never the key)."""

    name: str
    key_variable: str
    has_key: bool


@dataclass(frozen=True, slots=True)
class LauncherConfig:
    """What the launcher starts and where."""

    host: str
    edge_port: int
    # The edge serves HTTPS (SPARK_EDGE_TLS_CERT): the launcher's own readiness check uses it too.
    edge_tls: bool
    edge_admin_port: int
    data_dir: Path
    instances: tuple[Instance, ...]
    log_dir: Path | None
    startup_timeout_s: float
    grace_s: float
    log_level: str
    # Every port the suite will listen on, in start order; the edge's last.
    bindings: tuple[Binding, ...]
    # The access mode ("development" or "keys"), and whether calls are checked at all (SPARK_ACCESS_CHECKS).
    access_mode: str
    access_checks: bool
    # May carry a password: kept out of repr, and the banner shows only where it points.
    redis_url: str | None = field(repr=False)
    # The registry's providers; empty when llm is not started.
    providers: tuple[Provider, ...]
    # ADMIN_TOKEN is set (its value stays in the environment the children inherit).
    admin_routes: bool
    # The hosted app (SPARK_APP_DIR), snapshotted into `app_snapshot` before anything starts; the edge serves
    # the snapshot and the access service reads its index.html (SPARK_APP_SNAPSHOT). None: no app is hosted.
    app_dir: Path | None
    app_snapshot: Path | None
    app_limits: SnapshotLimits
    # The app's name (services/common/app.py), passed to every child as SPARK_APP_NAME.
    app_name: str

    def address(self, instance: Instance) -> str:
        return f"{self.host}:{instance.port}"

    @property
    def edge_url(self) -> str:
        return f"{'https' if self.edge_tls else 'http'}://{self.host}:{self.edge_port}"


class _Ports:
    """Picks free ports for everything configured as 0, never one that is configured explicitly.

    A port the kernel calls free is free only until someone binds it; every explicit port is known
    before any is picked, so a picked port cannot collide with one a caller chose but has not bound yet.
    """

    def __init__(self, host: str, explicit: Iterable[int]) -> None:
        self._host = host
        self._taken = {port for port in explicit if port > 0}

    def pick(self) -> int:
        while True:
            port = _free_port(self._host)
            if port not in self._taken:
                self._taken.add(port)
                return port

    def given_or_pick(self, port: int) -> int:
        return port or self.pick()


def _free_port(host: str) -> int:
    """A port the kernel calls free on `host`; on every address of its family if `host` is not one of this
    machine's (the port check then says so, naming the setting)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        family, kind, proto, address = socket.AF_INET, socket.SOCK_STREAM, 0, ("", 0)
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError:
            probe.bind(("", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class _Setting:
    """A port as configured: its variable, its value, and whether the value is the default."""

    variable: str
    port: int
    given: bool

    def describe(self) -> str:
        if self.port == 0:
            return f"a free port picked because {self.variable}=0"
        return f"{self.variable}={self.port}" if self.given else f"the default of {self.variable}"


@dataclass(frozen=True, slots=True)
class _ServicePorts:
    name: str
    port: _Setting
    metrics_port: _Setting
    workers: int


def _port_setting(env: EnvReader, variable: str, default: int, minimum: int) -> _Setting:
    port = env.integer(variable, default, minimum=minimum, maximum=65535)
    return _Setting(variable, port, env.optional_text(variable) is not None)


def _read_service_ports(env: EnvReader, services: tuple[str, ...]) -> list[_ServicePorts]:
    defaults = {name: (port, metrics_port, workers) for name, port, metrics_port, workers in SERVICES}
    configured = []
    for name in services:
        port, metrics_port, workers = defaults[name]
        prefix = f"SPARK_{name.upper()}_"
        configured.append(
            _ServicePorts(
                name,
                _port_setting(env, prefix + "PORT", port, 0),
                _port_setting(env, prefix + "METRICS_PORT", metrics_port, -1),
                env.integer(prefix + "WORKERS", workers, minimum=1, maximum=64),
            )
        )
    return configured


def _instances(configured: list[_ServicePorts], ports: _Ports, host: str) -> tuple[tuple[Instance, ...], list[Binding]]:
    """Every process to start, and its ports. Workers of one service each get their own port, so that
    the edge balances requests across them itself instead of leaving it to how the kernel hashes a few
    long-lived HTTP/2 connections onto SO_REUSEPORT listeners."""
    instances = []
    bindings = []
    for service in configured:
        for index in range(service.workers):
            first = index == 0
            name = service.name if first else f"{service.name}-{index + 1}"
            extra = f"a free port picked for worker {index + 1} of SPARK_{service.name.upper()}_WORKERS"
            port = ports.given_or_pick(service.port.port) if first else ports.pick()
            bindings.append(Binding(f"{name} gRPC", host, port, service.port.describe() if first else extra))
            if service.metrics_port.port < 0:
                metrics_port = -1
            else:
                metrics_port = ports.given_or_pick(service.metrics_port.port) if first else ports.pick()
                setting = service.metrics_port.describe() if first else extra
                bindings.append(Binding(f"{name} metrics", host, metrics_port, setting))
            instances.append(Instance(name=name, service=service.name, port=port, metrics_port=metrics_port))
    return tuple(instances), bindings


def is_wildcard(host: str) -> bool:
    """0.0.0.0 or ::, every interface."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _report_shared_ports(env: EnvReader, bindings: list[Binding]) -> None:
    """Two settings that choose one port on one address: the second listener could never start."""
    for index, binding in enumerate(bindings):
        for earlier in bindings[:index]:
            overlap = earlier.host == binding.host or is_wildcard(earlier.host) or is_wildcard(binding.host)
            if earlier.port == binding.port and overlap:
                env.problem(
                    f"port {binding.port} is chosen twice, for {earlier.what} ({earlier.setting}) and for "
                    f"{binding.what} ({binding.setting}): give one of them another port"
                )


def _service_config(read: Callable[[Mapping[str, str]], T], environ: Mapping[str, str], env: EnvReader) -> T | None:
    """A service's own config, read from the environment its processes inherit; its problems become the
    launcher's, so that a service that would refuse to start stops the launcher before anything starts."""
    try:
        return read(environ)
    except ConfigError as error:
        for problem in error.problems:
            env.problem(problem)
        return None


def _read_gate_config(environ: Mapping[str, str]) -> GateConfig:
    """The access settings every service reads (one service's problems with them are every service's)."""
    env = EnvReader(environ)
    gate = read_gate_config(env)
    env.finish()
    return gate


def inherited_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The launcher's own environment, which every child starts from (provider keys, ADMIN_TOKEN, SPARK_*),
    with a new `SPARK_INTERNAL_TOKEN` when none is set: the suite's parts show it to each other
    (services/access/internal.py), and one launcher starts them all."""
    inherited = dict(os.environ if environ is None else environ)
    if not inherited.get("SPARK_INTERNAL_TOKEN", "").strip():
        inherited["SPARK_INTERNAL_TOKEN"] = secrets.token_hex(32)
    return inherited


def read_config(environ: Mapping[str, str] | None = None) -> LauncherConfig:
    # The children's environment (with the internal token the launcher would make) is what their settings see.
    environ = inherited_environment(environ)
    env = EnvReader(environ)
    host = env.text("SPARK_HOST", "127.0.0.1")
    known = [name for name, _, _, _ in SERVICES]
    wanted = tuple(s.strip() for s in env.text("SPARK_SERVICES", ",".join(known)).split(",") if s.strip())
    for name in wanted:
        if name not in known:
            env.problem(f"SPARK_SERVICES names unknown service {name!r} (known: {', '.join(known)})")
    if "meta" not in wanted:
        env.problem("SPARK_SERVICES must include meta: the edge's /healthz and reflection live there")
    edge = _port_setting(env, "SPARK_EDGE_PORT", 8080, 0)
    admin = _port_setting(env, "SPARK_EDGE_ADMIN_PORT", 9901, 0)
    # Read here only to check they are free: the edge's own settings (edge/settings.py) use them.
    admin_host = env.text("SPARK_EDGE_ADMIN_HOST", "127.0.0.1")
    stats = _port_setting(env, "SPARK_EDGE_STATS_PORT", -1, -1)
    configured = _read_service_ports(env, tuple(name for name in known if name in wanted))
    explicit = [edge.port, admin.port, stats.port, *(s.port for c in configured for s in (c.port, c.metrics_port))]
    ports = _Ports(host, explicit)
    instances, bindings = _instances(configured, ports, host)
    edge_port, admin_port = ports.given_or_pick(edge.port), ports.given_or_pick(admin.port)
    bindings.append(Binding("the edge", host, edge_port, edge.describe()))
    bindings.append(Binding("Envoy's admin API", admin_host, admin_port, admin.describe()))
    if stats.port > 0:
        bindings.append(Binding("Envoy's stats listener", host, stats.port, stats.describe()))
    _report_shared_ports(env, bindings)
    gate = _service_config(_read_gate_config, environ, env)
    llm = _service_config(read_llm_config, environ, env) if "llm" in wanted else None
    # Sign-in's settings (the OAuth App's id and secret) are the access service's alone: a missing one stops
    # the launcher here, not the access process after the others started.
    if "access" in wanted:
        _service_config(read_access_config, environ, env)
    providers = (
        ()
        if llm is None
        else tuple(Provider(p.name, p.key_variable, p.name in llm.providers) for p in llm.registry.providers.values())
    )
    log_dir = env.optional_text("SPARK_LOG_DIR")
    data_dir = env.path("SPARK_DATA_DIR", "./var")
    app_dir = env.optional_text("SPARK_APP_DIR")
    # Read here to refuse a wrong value before anything starts; the edge reads it for itself.
    read_app_access(env)
    config = LauncherConfig(
        host=host,
        edge_port=edge_port,
        edge_tls=bool(env.optional_text("SPARK_EDGE_TLS_CERT")),
        edge_admin_port=admin_port,
        data_dir=data_dir,
        instances=instances,
        log_dir=Path(log_dir) if log_dir else None,
        startup_timeout_s=env.number("SPARK_STARTUP_TIMEOUT_S", 60.0, minimum=1.0),
        grace_s=env.number("SPARK_SHUTDOWN_GRACE_S", 5.0),
        log_level=env.choice("SPARK_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        bindings=tuple(bindings),
        access_mode=gate.mode if gate is not None else "development",
        access_checks=gate.checks if gate is not None else True,
        redis_url=env.optional_text("REDIS_URL"),
        providers=providers,
        admin_routes=env.optional_text("ADMIN_TOKEN") is not None,
        app_dir=Path(app_dir).expanduser() if app_dir else None,
        app_snapshot=data_dir / "edge" / "app" if app_dir else None,
        app_limits=read_limits(env),
        app_name=read_app_name(env),
    )
    env.finish()
    return config
