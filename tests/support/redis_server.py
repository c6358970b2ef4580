"""A real `redis-server` subprocess for tests, on 127.0.0.1 and a free port.

Usage::

    with RedisServer(tmp_path) as server:      # starts it
        store = RedisStore(server.url)
        server.kill()                           # SIGKILL, as a crash would
        server.start()                          # same port, same dir, replays the AOF

or `start_redis_server(tmp_path)` for a started server that the caller must
`stop()`. The server only ever signals the process it started, by PID.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from tests.support.processes import terminate

__all__ = ["RedisServer", "RedisServerError", "start_redis_server"]

_HOST: Final = "127.0.0.1"
_BIND_ATTEMPTS: Final = 5


class RedisServerError(RuntimeError):
    """redis-server could not be started or did not answer."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int, timeout: float = 0.5) -> bool:
    """True once the server answers PING with PONG (not LOADING, not refused)."""
    try:
        with socket.create_connection((_HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process whose port and data dir survive restarts.

    The first `start()` picks a free port (retrying if another process wins
    the race for it); later starts reuse that port and `dir`, so a test can
    SIGKILL the server and bring the same instance back with its AOF.
    """

    def __init__(
        self,
        dir: Path,
        *,
        port: int | None = None,
        binary: str = "redis-server",
        extra_args: tuple[str, ...] = (),
        start_timeout_s: float = 10.0,
    ) -> None:
        self.dir = Path(dir)
        self.port = port
        self.extra_args = extra_args
        self.start_timeout_s = start_timeout_s
        found = shutil.which(binary)
        if found is None:
            raise RedisServerError(f"{binary} not found on PATH")
        self._binary = found
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("server was never started, so it has no port yet")
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.dir / "redis-server.log"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            raise RedisServerError("redis-server is already running")
        self.dir.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port is not None
        for _ in range(1 if fixed_port else _BIND_ATTEMPTS):
            port = self.port if self.port is not None else _free_port()
            if self._spawn(port):
                self.port = port
                return
        raise RedisServerError(f"redis-server did not come up; log tail:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server and wait for it; SIGKILL if it does not exit in time."""
        process = self._process
        if process is None:
            return
        terminate(process, timeout_s)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no AOF flush beyond what is on disk."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._reap()

    def ping(self) -> bool:
        return self.port is not None and self.running and _ping(self.port)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, pid={self.pid}, dir={str(self.dir)!r})"

    def _spawn(self, port: int) -> bool:
        """Start on `port`; False if it exited (e.g. the port was taken)."""
        self._log = self.log_path.open("ab")
        args = [
            self._binary,
            "--bind", _HOST,
            "--port", str(port),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dir", str(self.dir),
            "--daemonize", "no",
            *self.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._reap()
                return False
            if _ping(port):
                return True
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(
            f"redis-server on port {port} did not answer PING in {self.start_timeout_s} s; log tail:\n{self.log_tail()}"
        )

    def _reap(self) -> None:
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def start_redis_server(dir: Path, *, port: int | None = None, extra_args: tuple[str, ...] = ()) -> RedisServer:
    """Start a server in `dir`; the caller owns it and must `stop()` or `kill()` it.

    The returned object exposes `url`, `pid` and `port`.
    """
    server = RedisServer(dir, port=port, extra_args=extra_args)
    server.start()
    return server
