"""`python -m benchmarks.kv`: Spark KV through the Envoy edge, on SQLite and on Redis, next to raw Redis and webdis.

One run starts a Redis (AOF everysec), then the suite (`python -m launcher`)
three times in turn: on the embedded SQLite store (one and two kv processes)
and on that Redis. Each time it preloads `KEYS` values through the edge,
checks every one reads back byte for byte, and drives `GET` and
`POST /_spark/kv/{key}` with wrk. Last, on the same Redis, redis-benchmark
runs GET and SET, and webdis (an HTTP front for Redis) gets the same keys
and values through its `/GET` and `/SET` paths, every answer checked. It
prints one results table and one memory table, and writes both as JSON.

The edge's access log goes to /dev/null during the run so that logging is not
what gets measured. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks import webdis
from benchmarks.harness import (
    BenchError,
    CpuMeter,
    LoadResult,
    Suite,
    Wrk,
    counts_text,
    cpu_text,
    load_average,
    mib,
    problems_section,
    publish,
    rss_bytes,
    run_redis_benchmark,
    start_command,
    table,
    verdict,
)
from benchmarks.peers import PeerUnavailable
from tests.support.redis_server import RedisServer, start_redis_server

logger = logging.getLogger(__name__)

TARGET: Final = "KV GET through the edge ≥ 8,000 req/s with p99 ≤ 10 ms"
TARGET_RPS: Final = 8000.0
TARGET_P99_MS: Final = 10.0
CONNECTIONS: Final = 16
KEYS: Final = 1000
VALUE_BYTES: Final = 100
KEY_PREFIX: Final = "bench-"
# webdis writes raw Redis keys: its own, apart from the kv service's and redis-benchmark's.
WEBDIS_KEY_PREFIX: Final = "webdis-bench-"
SETTLE_S: Final = 1.0
MIB: Final = 1024 * 1024


def value_for(i: int, size: int = VALUE_BYTES) -> bytes:
    """The preloaded JSON text of key i; benchmarks/wrk/load.lua writes the same shape with rev 2."""
    head = f'{{"id":{i},"owner":"bench","rev":1,"tags":["a","b"],"note":"'
    return (head + "x" * max(0, size - len(head) - 2) + '"}').encode()


def key_for(i: int, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}{i:06d}"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    target: str
    backend: str
    op: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu_percent: dict[str, float]


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """RSS of one process (or the suite's sum) idle before and after the load."""

    process: str
    backend: str
    idle_before_mib: float | None
    after_load_mib: float | None


def _row(target: str, backend: str, op: str, result: LoadResult, cpu: dict[str, float]) -> Row:
    return Row(target, backend, op, CONNECTIONS, result.rps, result.p50_ms, result.p99_ms, result.errors, cpu)


def preload(url: str, headers: Mapping[str, str] | None = None) -> list[str]:
    """Writes every key through the edge and reads it back; returns what did not match the contract."""
    problems: list[str] = []
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    try:
        for i in range(1, KEYS + 1):
            connection.request(
                "POST", f"/_spark/kv/{key_for(i)}", value_for(i), {**(headers or {}), "Content-Type": "text/plain"}
            )
            response = connection.getresponse()
            if response.status != 200:
                problems.append(f"POST {key_for(i)} -> {response.status} {response.read()[:200]!r}")
            else:
                response.read()
        for i in range(1, KEYS + 1):
            connection.request("GET", f"/_spark/kv/{key_for(i)}", headers=dict(headers or {}))
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body != value_for(i):
                problems.append(f"GET {key_for(i)} -> {response.status} {body[:200]!r}, expected {value_for(i)!r}")
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"preload through the edge failed: {error!r}") from error
    finally:
        connection.close()
    return problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])


def _suite_memory(backend: str, before: dict[str, int | None], after: dict[str, int | None]) -> list[MemoryRow]:
    names = sorted(set(before) | set(after))
    rows = [MemoryRow(name, backend, mib(before.get(name)), mib(after.get(name))) for name in names]
    total_before = sum(v for v in before.values() if v is not None)
    total_after = sum(v for v in after.values() if v is not None)
    return [*rows, MemoryRow("suite total", backend, mib(total_before), mib(total_after))]


def _get_and_set(
    url: str,
    target: str,
    backend: str,
    watched: Mapping[str, int],
    duration_s: float,
    *,
    webdis_paths: bool = False,
    headers: Mapping[str, str] | None = None,
    after_each: Callable[[], None] | None = None,
) -> tuple[list[Row], list[str]]:
    """wrk GET, then SET, over the KEYS preloaded keys: the edge's KV routes, or webdis's command paths."""
    rows, problems = [], []
    for op in ("get", "set"):
        meter = CpuMeter(watched)
        script_args = [f"webdis-{op}" if webdis_paths else op, str(KEYS),
                       WEBDIS_KEY_PREFIX if webdis_paths else KEY_PREFIX, str(VALUE_BYTES)]  # fmt: skip
        result = Wrk(url, script_args, duration_s=duration_s, connections=CONNECTIONS, headers=headers or {}).run()
        rows.append(_row(target, backend, op.upper(), result, meter.read()))
        if after_each is not None:
            after_each()
        if result.errors:
            problems.append(f"{target}, {backend}, {op.upper()}: {result.errors}")
    return rows, problems


def bench_suite(
    backend: str, workers: int, work_dir: Path, redis: RedisServer, duration_s: float
) -> tuple[list[Row], list[MemoryRow], list[str]]:
    """Starts the suite on one backend with `workers` kv processes, preloads, and runs GET and SET through the edge."""
    redis_url = redis.url if backend == "redis" else None
    target = f"edge, kv x{workers}"
    with Suite(work_dir / f"{backend}-{workers}", redis_url=redis_url, kv_workers=workers) as suite:
        logger.info("suite on %s ready at %s", backend, suite.url)
        processes = suite.processes()
        time.sleep(SETTLE_S)
        idle_before = {name: rss_bytes(pid) for name, pid in processes.items()}
        # On Redis the access service runs in keys mode, as deployed: every request carries a key.
        headers = suite.api_key_headers() if redis_url else {}
        problems = [f"{backend} preload: {problem}" for problem in preload(suite.url, headers)]
        watched = {**processes, **({"redis-server": redis.pid} if backend == "redis" and redis.pid else {})}
        rows, load_problems = _get_and_set(
            suite.url, target, backend, watched, duration_s, headers=headers, after_each=suite.check_alive
        )
        problems += load_problems
        time.sleep(SETTLE_S)
        after_load = {name: rss_bytes(pid) for name, pid in processes.items()}
        if suite.processes() != processes:
            problems.append(f"{backend}: a child of the launcher was restarted during the run: {suite.processes()}")
    return rows, _suite_memory(f"{backend}, kv x{workers}", idle_before, after_load), problems


def bench_redis(redis: RedisServer, requests: int) -> list[Row]:
    """redis-benchmark GET and SET on the same Redis; SET first so GET finds values."""
    if redis.port is None or redis.pid is None:
        raise BenchError("redis-server is not running")
    rows = []
    for test in ("set", "get"):
        meter = CpuMeter({"redis-server": redis.pid})
        result = run_redis_benchmark(
            redis.port, test, requests=requests, connections=CONNECTIONS, keys=KEYS, value_bytes=VALUE_BYTES
        )
        rows.append(_row("redis-benchmark", "redis", test.upper(), result, meter.read()))
    return rows[::-1]


def bench_webdis(redis: RedisServer, work_dir: Path, duration_s: float) -> tuple[list[Row], MemoryRow, list[str]]:
    """webdis on the same Redis: preloads its own keys through it, then wrk GET and SET with every answer checked."""
    if redis.port is None or redis.pid is None:
        raise BenchError("redis-server is not running")
    with webdis.running_webdis(redis.port, work_dir / "webdis") as peer:
        idle = rss_bytes(peer.pid)
        items = [(key_for(i, WEBDIS_KEY_PREFIX), value_for(i)) for i in range(1, KEYS + 1)]
        problems = [f"webdis preload: {problem}" for problem in webdis.preload(peer.base_url, items)]
        watched = {"webdis": peer.pid, "redis-server": redis.pid}
        rows, load_problems = _get_and_set(
            peer.base_url, f"webdis {peer.version}", "redis", watched, duration_s, webdis_paths=True
        )
        problems += load_problems
        time.sleep(SETTLE_S)
        memory = MemoryRow("webdis", "redis", mib(idle), mib(rss_bytes(peer.pid)))
    return rows, memory, problems


def verdicts(rows: Sequence[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.target.startswith("edge") and row.op == "GET":
            ok = row.rps >= TARGET_RPS and row.p99_ms <= TARGET_P99_MS
            lines.append(verdict(ok, f"{row.target}, {row.backend}: {row.rps:,.0f} req/s, p99 {row.p99_ms:.2f} ms"))
    return lines


def render(report: dict[str, Any], rows: Sequence[Row], memory: Sequence[MemoryRow]) -> str:
    config = report["config"]
    results = table(
        ("target", "backend", "op", "conns", "req/s", "p50 ms", "p99 ms", "errors/non-2xx", "cpu % of one core"),
        [
            (
                row.target, row.backend, row.op, str(row.conns), f"{row.rps:,.0f}", f"{row.p50_ms:.2f}",
                f"{row.p99_ms:.2f}", counts_text(row.errors), cpu_text(row.cpu_percent),
            )
            for row in rows
        ],
    )  # fmt: skip

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    memory_table = table(
        ("process", "backend", "idle before MiB", "after load MiB"),
        [(m.process, m.backend, cell(m.idle_before_mib), cell(m.after_load_mib)) for m in memory],
    )
    parts = [
        f"Spark KV benchmark: {config['keys']:,} keys of {config['value_bytes']}-byte JSON, "
        f"{config['connections']} connections, wrk {config['duration_s']:g} s per row, "
        f"redis-benchmark -n {config['redis_benchmark_requests']:,}; edge access log: {config['edge_access_log']}; "
        f"host: {config['cpus']} CPUs, load average at start {config['load_average_at_start']}",
        "",
        results,
        "",
        f"Target: {TARGET}",
        *(f"  {line}" for line in report["verdicts"]),
        "",
        memory_table,
    ]
    parts += problems_section(report["problems"])
    return "\n".join(parts) + "\n"


def run(duration_s: float, work_dir: Path, *, peers: bool = True) -> tuple[dict[str, Any], list[Row], list[MemoryRow]]:
    """Every row in turn; with `peers`, webdis too (reported as not measured if it is not installed)."""
    redis_requests = max(10_000, int(10_000 * duration_s))
    load_average_at_start = load_average()
    rows: list[Row] = []
    memory: list[MemoryRow] = []
    problems: list[str] = []
    redis = start_redis_server(work_dir / "redis")
    try:
        if redis.pid is None:
            raise BenchError("redis-server did not start")
        redis_idle = rss_bytes(redis.pid)
        # The default (two kv processes) on both stores, and one process on SQLite for comparison.
        for backend, workers in (("sqlite", 1), ("sqlite", 2), ("redis", 2)):
            suite_rows, suite_memory, suite_problems = bench_suite(backend, workers, work_dir, redis, duration_s)
            rows += suite_rows
            memory += suite_memory
            problems += suite_problems
        rows += bench_redis(redis, redis_requests)
        if peers:
            try:
                webdis_rows, webdis_memory, webdis_problems = bench_webdis(redis, work_dir, duration_s)
            except PeerUnavailable as error:
                problems.append(f"webdis not measured: {error}")
            else:
                rows += webdis_rows
                memory.append(webdis_memory)
                problems += webdis_problems
        time.sleep(SETTLE_S)
        memory.append(MemoryRow("redis-server", "redis", mib(redis_idle), mib(rss_bytes(redis.pid))))
    finally:
        redis.stop()
    return (
        {
            "target": {"text": TARGET, "min_rps": TARGET_RPS, "max_p99_ms": TARGET_P99_MS},
            "config": {
                "duration_s": duration_s,
                "connections": CONNECTIONS,
                "keys": KEYS,
                "value_bytes": VALUE_BYTES,
                "redis_benchmark_requests": redis_requests,
                "edge_access_log": os.devnull,
                "cpus": os.cpu_count(),
                "load_average_at_start": load_average_at_start,
            },
            "rows": [dataclasses.asdict(row) for row in rows],
            "verdicts": verdicts(rows),
            "memory": [dataclasses.asdict(m) for m in memory],
            "problems": problems,
        },
        rows,
        memory,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kv", description=__doc__.split("\n", 1)[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load per row (default 10)")
    length.add_argument("--quick", action="store_true", help="2 s per row, for smoke runs")
    parser.add_argument("--no-peers", action="store_true", help="skip webdis")
    parser.add_argument("--json", type=Path, default=Path("var/bench/kv.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    duration_s = 2.0 if args.quick else args.duration
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-kv-"))
    try:
        report, rows, memory = run(duration_s, work_dir, peers=not args.no_peers)
    except BenchError as error:
        logger.error("benchmark failed; logs kept in %s: %s", work_dir, error)
        return 1
    publish(render(report, rows, memory), report, args.json)
    if report["problems"]:
        logger.warning("problems found; logs kept in %s", work_dir)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
