"""Supervision: start every service, wait until each is SERVING, then the edge; restart what dies; stop cleanly.

A child that dies is restarted with backoff. On SIGINT or SIGTERM the edge
stops first, so that no new requests arrive, then the services, each with a
grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launcher.children import Child, ChildFactory
from launcher.config import LauncherConfig

logger = logging.getLogger(__name__)

_RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)


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
        self._factory = ChildFactory(config, environ)

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.config.startup_timeout_s
        for instance in self.config.instances:
            child = self._factory.service(instance)
            self.children.append(child)
            await child.start()
        await asyncio.gather(
            *(
                wait_for_grpc_health(self.config.address(instance), deadline, child)
                for instance, child in zip(self.config.instances, self.children, strict=True)
            )
        )
        edge = self._factory.edge()
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
