"""webdis, an HTTP front for Redis (Debian package `webdis`), as a peer of the edge's KV routes.

It runs from a generated JSON config on 127.0.0.1 and a free port, in front of the
redis-server the suite uses, with as many threads as the host has CPUs (as Envoy
does) and its log at the start-up lines only; it is stopped by PID:

    with running_webdis(redis.port, work_dir) as peer:
        problems = preload(peer.base_url, items)

Commands are paths: `GET /GET/<key>` and `GET /SET/<key>/<value>`, each segment
percent-encoded; the answers are JSON (`{"GET":"<value>"}`, `{"SET":[true,"OK"]}`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from benchmarks.harness import HOST, BenchError
from benchmarks.peers import Peer, PeerUnavailable, peer_env, running_peer

STARTUP_TIMEOUT_S: Final = 30.0
_PROBE_TIMEOUT_S: Final = 2.0
_VERSION_LINE: Final = re.compile(r"Webdis (\S+) up and running")
# webdis's own levels: 3 logs start-up and errors, 4 and up every request (which would be measured).
_VERBOSITY: Final = 3


def webdis_config(redis_port: int, http_port: int, *, threads: int, logfile: str) -> dict[str, Any]:
    """webdis.json: HTTP on 127.0.0.1:`http_port`, Redis at 127.0.0.1:`redis_port`, in the foreground, no ACLs."""
    return {
        "redis_host": HOST,
        "redis_port": redis_port,
        "redis_auth": None,
        "http_host": HOST,
        "http_port": http_port,
        "threads": threads,
        "daemonize": False,
        "database": 0,
        "verbosity": _VERBOSITY,
        "logfile": logfile,
    }


def render_webdis_config(redis_port: int, http_port: int, *, threads: int, logfile: str = "/dev/stdout") -> str:
    return json.dumps(webdis_config(redis_port, http_port, threads=threads, logfile=logfile), indent=2) + "\n"


def command_path(*parts: str) -> str:
    """A webdis command as a path; `/` and `.` inside a part are data, not separators or a format suffix."""
    return "".join("/" + quote(part, safe="").replace(".", "%2E") for part in parts)


def version_from_log(text: str) -> str | None:
    found = _VERSION_LINE.search(text)
    return found.group(1) if found else None


def _request(base_url: str, path: str, timeout_s: float = _PROBE_TIMEOUT_S) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def probe(base_url: str) -> str | None:
    """None once webdis answers PING with Redis's PONG; otherwise what went wrong."""
    try:
        status, body = _request(base_url, "/PING")
    except (OSError, http.client.HTTPException) as error:
        return repr(error)
    return None if (status, body) == (200, b'{"PING":[true,"PONG"]}') else f"HTTP {status}: {body[:200]!r}"


def preload(base_url: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
    """SETs every (key, value) through webdis and GETs it back; returns what did not match (at most ten lines)."""
    problems: list[str] = []
    connection = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=10)
    try:
        for key, value in items:
            connection.request("GET", command_path("SET", key, value.decode()))
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body != b'{"SET":[true,"OK"]}':
                problems.append(f"SET {key} -> {response.status} {body[:200]!r}")
        for key, value in items:
            connection.request("GET", command_path("GET", key))
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or json.loads(body) != {"GET": value.decode()}:
                problems.append(f"GET {key} -> {response.status} {body[:200]!r}, expected {value!r}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise BenchError(f"preload through webdis failed: {error!r}") from error
    finally:
        connection.close()
    return problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])


@contextlib.contextmanager
def running_webdis(redis_port: int, work_dir: Path, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[Peer]:
    """webdis in front of the Redis on `redis_port`; `peer.base_url` is its root. PeerUnavailable if not installed."""
    executable = shutil.which("webdis")
    if executable is None:
        raise PeerUnavailable("webdis is not on PATH (Debian: apt-get install webdis)")
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "webdis.json"
    threads = os.cpu_count() or 1

    def argv_for_port(port: int) -> list[str]:
        config_path.write_text(render_webdis_config(redis_port, port, threads=threads))
        return [executable, str(config_path)]

    with running_peer(
        "webdis",
        "unknown",
        argv_for_port,
        env=peer_env(os.environ),
        work_dir=work_dir,
        headers={},
        startup_timeout_s=startup_timeout_s,
        base_path="",
        probe=probe,
    ) as peer:
        version = version_from_log(peer.log_path.read_text(errors="replace")) or peer.version
        yield dataclasses.replace(peer, version=version)
