"""The launcher's settings; the only reader of the environment for the launcher.

Which services to start, how many processes of each, and every port: a port
configured as 0 (and every extra worker's port) is picked free here, before
anything starts, so that every child knows every other child's address.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.config import EnvReader

# (name, default gRPC port, default metrics port, default processes); meta first: it reports on the others.
# kv runs two processes by default: one Python process is the bottleneck of KV traffic. So does access, which
# the edge asks about every request: with two, one can die and be restarted while the other answers (on two
# cores one process is about 8% faster; measured in benchmarks/access.py).
SERVICES: tuple[tuple[str, int, int, int], ...] = (
    ("meta", 50050, 9460, 1),
    ("access", 50055, 9465, 2),
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
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((self._host, 0))
                port = int(probe.getsockname()[1])
            if port not in self._taken:
                self._taken.add(port)
                return port

    def given_or_pick(self, port: int) -> int:
        return port or self.pick()


@dataclass(frozen=True, slots=True)
class _ServicePorts:
    name: str
    port: int
    metrics_port: int
    workers: int


def _read_service_ports(env: EnvReader, services: tuple[str, ...]) -> list[_ServicePorts]:
    defaults = {name: (port, metrics_port, workers) for name, port, metrics_port, workers in SERVICES}
    configured = []
    for name in services:
        port, metrics_port, workers = defaults[name]
        prefix = f"SPARK_{name.upper()}_"
        configured.append(
            _ServicePorts(
                name,
                env.integer(prefix + "PORT", port, minimum=0, maximum=65535),
                env.integer(prefix + "METRICS_PORT", metrics_port, minimum=-1, maximum=65535),
                env.integer(prefix + "WORKERS", workers, minimum=1, maximum=64),
            )
        )
    return configured


def _instances(configured: list[_ServicePorts], ports: _Ports) -> tuple[Instance, ...]:
    """Every process to start. Workers of one service each get their own port, so that the edge
    balances requests across them itself instead of leaving it to how the kernel hashes a few
    long-lived HTTP/2 connections onto SO_REUSEPORT listeners."""
    instances = []
    for service in configured:
        for index in range(service.workers):
            first = index == 0
            if service.metrics_port < 0:
                metrics_port = -1
            elif first:
                metrics_port = ports.given_or_pick(service.metrics_port)
            else:
                metrics_port = ports.pick()
            instances.append(
                Instance(
                    name=service.name if first else f"{service.name}-{index + 1}",
                    service=service.name,
                    port=ports.given_or_pick(service.port) if first else ports.pick(),
                    metrics_port=metrics_port,
                )
            )
    return tuple(instances)


def inherited_environment() -> dict[str, str]:
    """The launcher's own environment, which every child starts from (provider keys, ADMIN_TOKEN, SPARK_*)."""
    return dict(os.environ)


def read_config(environ: Mapping[str, str] | None = None) -> LauncherConfig:
    env = EnvReader(os.environ if environ is None else environ)
    host = env.text("SPARK_HOST", "127.0.0.1")
    known = [name for name, _, _, _ in SERVICES]
    wanted = tuple(s.strip() for s in env.text("SPARK_SERVICES", ",".join(known)).split(",") if s.strip())
    for name in wanted:
        if name not in known:
            env.problem(f"SPARK_SERVICES names unknown service {name!r} (known: {', '.join(known)})")
    if "meta" not in wanted:
        env.problem("SPARK_SERVICES must include meta: the edge's /healthz and reflection live there")
    edge_port = env.integer("SPARK_EDGE_PORT", 8080, minimum=0, maximum=65535)
    admin_port = env.integer("SPARK_EDGE_ADMIN_PORT", 9901, minimum=0, maximum=65535)
    configured = _read_service_ports(env, tuple(name for name in known if name in wanted))
    ports = _Ports(host, [edge_port, admin_port, *(p for c in configured for p in (c.port, c.metrics_port))])
    log_dir = env.optional_text("SPARK_LOG_DIR")
    config = LauncherConfig(
        host=host,
        edge_port=ports.given_or_pick(edge_port),
        edge_tls=bool(env.optional_text("SPARK_EDGE_TLS_CERT")),
        edge_admin_port=ports.given_or_pick(admin_port),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        instances=_instances(configured, ports),
        log_dir=Path(log_dir) if log_dir else None,
        startup_timeout_s=env.number("SPARK_STARTUP_TIMEOUT_S", 60.0, minimum=1.0),
        grace_s=env.number("SPARK_SHUTDOWN_GRACE_S", 5.0),
        log_level=env.choice("SPARK_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
    )
    env.finish()
    return config
