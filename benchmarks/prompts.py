"""`python -m benchmarks.prompts`: GET /v1/prompts/default through the edge, warm cache vs cache off.

One run starts a Redis (AOF everysec) and then the suite four times in turn:
on the embedded SQLite store and on Redis, each with the prompts read cache
on (`SPARK_PROMPTS_CACHE=true`, the default) and off. Each time it creates a
default prompt of about 2 KB of Russian text, checks the route answers it,
warms the cache, and drives the route with wrk at 16 connections. It prints
one table and writes it as JSON. The seed plan expected "memory < 1 ms,
KV 3-5 ms" per read; the table says what this suite does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.harness import BenchError, CpuMeter, Suite, Wrk, publish, start_command
from tests.support.redis_server import start_redis_server

logger = logging.getLogger(__name__)

CONNECTIONS: Final = 16
TOKEN: Final = "bench-admin-token"  # noqa: S105 - for the benchmark's own throwaway suite
ROUTE: Final = "/v1/prompts/default?namespace=bench&lang=ru"
TEXT: Final = ("Опиши изображение подробно, перечисли объекты, цвета и настроение. {{subject}} " * 30)[:2000]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    backend: str
    cache: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_percent: dict[str, float]


def _request(url: str, method: str = "GET", body: bytes | None = None) -> bytes:
    headers = {"X-Admin-Token": TOKEN, "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return bytes(response.read())


def prepare(base_url: str, name: str) -> None:
    """Creates the default prompt (a new name per run: the Redis runs share a database) and checks it is served."""
    body = json.dumps({"namespace": "bench", "name": name, "lang": "ru", "text": TEXT, "make_default": True})
    created = json.loads(_request(f"{base_url}/v1/prompts", "POST", body.encode()))
    served = json.loads(_request(base_url + ROUTE))
    if served["id"] != created["id"] or served["text"] != TEXT:
        raise BenchError(f"the default prompt did not read back: {served}")
    for _ in range(20):
        _request(base_url + ROUTE)


def bench(backend: str, cache: bool, work_dir: Path, redis_url: str | None, duration_s: float) -> Row:
    env = {"ADMIN_TOKEN": TOKEN, "SPARK_PROMPTS_CACHE": "true" if cache else "false", "SPARK_KV_WORKERS": "1"}
    label = "on" if cache else "off"
    with Suite(work_dir / f"{backend}-{label}", redis_url=redis_url, extra_env=env) as suite:
        prepare(suite.url, f"{backend}-{label}")
        time.sleep(1.0)
        meter = CpuMeter({k: v for k, v in suite.processes().items() if k in {"prompts", "edge"}})
        result = Wrk(suite.url, ["path", ROUTE], duration_s=duration_s, connections=CONNECTIONS).run()
        suite.check_alive()
        return Row(backend, label, result.rps, result.p50_ms, result.p99_ms, result.error_count, meter.read())


def render(rows: Sequence[Row], duration_s: float) -> str:
    lines = [
        f"GET {ROUTE} through the edge: {CONNECTIONS} connections, wrk {duration_s:g} s per row",
        "",
        f"{'backend':<8} {'cache':<6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  cpu % of one core",
    ]
    for row in rows:
        cpu = " ".join(f"{name} {value:.0f}" for name, value in row.cpu_percent.items())
        numbers = f"{row.rps:>8,.0f} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} {row.errors:>7}"
        lines.append(f"{row.backend:<8} {row.cache:<6} {numbers}  {cpu}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prompts", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load per row (default 10)")
    parser.add_argument("--json", type=Path, default=Path("var/bench/prompts.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-prompts-"))
    rows: list[Row] = []
    try:
        redis = start_redis_server(work_dir / "redis")
        try:
            for backend in ("sqlite", "redis"):
                for cache in (True, False):
                    url = redis.url if backend == "redis" else None
                    rows.append(bench(backend, cache, work_dir, url, args.duration))
        finally:
            redis.stop()
    except BenchError as error:
        logger.error("benchmark failed: %s (logs kept in %s)", error, work_dir)
        return 1
    publish(render(rows, args.duration), [dataclasses.asdict(r) for r in rows], args.json)
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0 if all(row.errors == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
