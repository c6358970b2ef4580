"""`python -m benchmarks.access`: what the access checks cost, side by side in one run.

KV GET through the edge with the access checks on (the default: the kv
service admits each call itself, by the key cache and leased rate-limit
counters, services/access/checkpoint.py), next to the same suite with
`SPARK_ACCESS_CHECKS=off` (every call served unchecked; development mode
only), and with traces exported to an OTLP receiver (in this process) at the
default sampling (one request in a hundred), at one in ten, and at every request; and with each request
carrying an API key, or the cookie of a session signed in through a local GitHub (what a session lookup
costs per request, next to a key). The limits file
is one no run reaches, so every request is checked and none is refused. The rows run
in turn, twice over in alternating order, because the host is shared and
noisy: compare rows of the same round. Embedded SQLite by default; `--redis`
puts the counters (and KV) in a Redis.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from benchmarks.harness import (
    BenchError,
    CpuMeter,
    Suite,
    Wrk,
    load_average,
    publish,
    rss_mib,
    start_command,
    table,
)
from benchmarks.kv import KEY_PREFIX, KEYS, VALUE_BYTES, preload
from tests.fakes.github import FakeGitHub
from tests.support.otlp import OtlpReceiver
from tests.support.redis_server import RedisServer, start_redis_server

logger = logging.getLogger(__name__)

TARGET: Final = (
    "the access checks cost ≤ 15% of KV GET throughput through the edge (≥ 85% of checks off), "
    "and so does exporting traces at the default sampling (≥ 85% of checks on without export)"
)
MAX_COST: Final = 0.15
CONNECTIONS: Final = (16, 1)
SETTLE_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    env: dict[str, str]
    # The variant whose throughput this one's cost is measured against; None for a baseline.
    baseline: str | None = None
    # Traces go to an OTLP receiver started for the run.
    traced: bool = False
    # The credential every request carries: none (development mode's owner), an API key, or the cookie of a
    # session signed in through a local GitHub (SPARK_AUTH=github).
    credential: str = "none"


VARIANTS: Final = (
    Variant("checks off", {"SPARK_ACCESS_CHECKS": "off"}),
    Variant("checks on (default)", {}, baseline="checks off"),
    Variant("checks on, traces at the default 0.01", {}, baseline="checks on (default)", traced=True),
    Variant(
        "checks on, traces at 0.1",
        {"OTEL_TRACES_SAMPLER_ARG": "0.1"},
        baseline="checks on (default)",
        traced=True,
    ),
    Variant(
        "checks on, every request traced",
        {"OTEL_TRACES_SAMPLER": "always_on"},
        baseline="checks on (default)",
        traced=True,
    ),
    Variant("checks on, an API key", {}, baseline="checks on (default)", credential="key"),
    # A session is looked up in the store on every request (no cache: a logout ends it at once everywhere).
    Variant("checks on, a signed-in session", {}, baseline="checks on, an API key", credential="session"),
)
# Checks off is refused outside development mode: next to Redis it is forced (the checked row is in keys mode).
REDIS_DEVELOPMENT: Final = {"SPARK_ACCESS_MODE": "development", "SPARK_ACCESS_ALLOW_DEVELOPMENT": "true"}


@dataclass(frozen=True, slots=True)
class Row:
    round: int
    variant: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu_percent: dict[str, float]
    rss_mib: dict[str, float | None]


def bench_variant(
    variant: Variant, round_no: int, work_dir: Path, redis: RedisServer | None, duration_s: float
) -> list[Row]:
    directory = work_dir / f"{round_no}-{re.sub(r'[^a-z0-9]+', '-', variant.name)}"
    env = {**variant.env, **(REDIS_DEVELOPMENT if redis and variant is VARIANTS[0] else {})}
    receiver = OtlpReceiver() if variant.traced else None
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    github = FakeGitHub().start() if variant.credential == "session" else None
    if github is not None:
        env.update(github.env())
    try:
        return _bench_suite(variant, round_no, directory, env, redis=redis, duration_s=duration_s, github=github)
    finally:
        if receiver is not None:
            logger.info("%s: %d spans received", variant.name, len(receiver.spans()))
            receiver.stop()
        if github is not None:
            github.stop()


def _bench_suite(
    variant: Variant,
    round_no: int,
    directory: Path,
    env: dict[str, str],
    *,
    redis: RedisServer | None,
    duration_s: float,
    github: FakeGitHub | None,
) -> list[Row]:
    with Suite(directory, redis_url=redis.url if redis else None, extra_env=env) as suite:
        # With Redis the access service runs in keys mode, as deployed: every request carries a key (or the
        # session's cookie).
        headers: dict[str, str] = {}
        if github is not None:
            headers = session_headers(suite.url, github)
        elif variant.credential == "key" or (redis and variant is not VARIANTS[0]):
            headers = suite.api_key_headers()
        problems = preload(suite.url, headers)
        if problems:
            raise BenchError(f"{variant.name}: preload failed: {problems}")
        processes = suite.processes()
        time.sleep(SETTLE_S)
        rows = []
        for connections in CONNECTIONS:
            meter = CpuMeter(processes)
            result = Wrk(
                suite.url,
                ["get", str(KEYS), KEY_PREFIX, str(VALUE_BYTES)],
                duration_s=duration_s,
                connections=connections,
                headers=headers,
            ).run()
            cpu = meter.read()
            suite.check_alive()
            rss = rss_mib(processes)
            rows.append(
                Row(
                    round_no,
                    variant.name,
                    connections,
                    result.rps,
                    result.p50_ms,
                    result.p99_ms,
                    result.errors,
                    cpu,
                    rss,
                )
            )
    return rows


def session_headers(base_url: str, github: FakeGitHub) -> dict[str, str]:
    """Signs in through the local GitHub's web flow, each redirect followed by hand as a browser would; the
    session's cookie and the app's origin as headers."""
    with httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=False) as browser:
        started = browser.get("/_spark/auth/login", params={"return_to": "/"})
        if started.status_code != 302:
            raise BenchError(f"sign-in did not start: {started.status_code} {started.text[:300]}")
        approved = httpx.get(started.headers["location"], follow_redirects=False, timeout=30.0)
        callback = urlsplit(approved.headers.get("location", ""))
        finished = browser.get(f"{callback.path}?{callback.query}")
        cookie = browser.cookies.get("spark_session")
        if finished.status_code != 302 or not cookie:
            raise BenchError(f"sign-in did not finish: {finished.status_code} {finished.text[:300]}")
    # A browser names the page's origin on writes (the preload's), and a session write without it is refused.
    return {"Cookie": f"spark_session={cookie}", "Origin": base_url.rstrip("/")}


def costs(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Per round and connection count: each variant's throughput cost against its baseline's row of that round."""
    baselines = {v.name: v.baseline for v in VARIANTS}
    found = []
    for row in rows:
        baseline = baselines[row.variant]
        if baseline is None:
            continue
        base = next(r for r in rows if r.round == row.round and r.conns == row.conns and r.variant == baseline)
        found.append(
            {
                "round": row.round,
                "variant": row.variant,
                "baseline": baseline,
                "conns": row.conns,
                "cost": 1 - row.rps / base.rps if base.rps else None,
                "p50_added_ms": row.p50_ms - base.p50_ms,
            }
        )
    return found


def render(report: dict[str, Any], rows: Sequence[Row]) -> str:
    lines = [
        [
            str(r.round),
            r.variant,
            str(r.conns),
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(sum(r.errors.values())),
            " ".join(f"{k} {v:.0f}" for k, v in sorted(r.cpu_percent.items(), key=lambda kv: -kv[1]) if v >= 1),
        ]
        for r in rows
    ]
    text = table(["round", "variant", "conns", "req/s", "p50 ms", "p99 ms", "errors", "cpu % of one core"], lines)
    cost_lines = [
        [
            str(c["round"]),
            c["variant"],
            c["baseline"],
            str(c["conns"]),
            f"{100 * c['cost']:.1f}%",
            f"{c['p50_added_ms']:+.2f}",
        ]
        for c in report["costs"]
    ]
    text += "\n" + table(["round", "variant", "against", "conns", "throughput cost", "p50 added ms"], cost_lines)
    memory = [
        [r.variant, *(f"{k} {v:.0f}" for k, v in sorted(r.rss_mib.items()) if v)]
        for r in rows
        if r.conns == 1 and r.round == 1
    ]
    text += "\nRSS after load, MiB:\n" + "\n".join("  " + ", ".join(m) for m in memory) + "\n"
    return f"{text}\ntarget: {TARGET}\n" + "".join(f"{v}\n" for v in report["verdicts"])


def run(duration_s: float, work_dir: Path, use_redis: bool) -> tuple[dict[str, Any], list[Row]]:
    redis = start_redis_server(work_dir / "redis") if use_redis else None
    rows: list[Row] = []
    try:
        for round_no, order in ((1, VARIANTS), (2, tuple(reversed(VARIANTS)))):
            for variant in order:
                logger.info("round %s: %s", round_no, variant.name)
                rows += bench_variant(variant, round_no, work_dir, redis, duration_s)
    finally:
        if redis is not None:
            redis.stop()
    found = costs(rows)
    verdicts = []
    for c in found:
        # The targets are the defaults' costs; the other rows show the curve.
        if c["conns"] == CONNECTIONS[0] and c["cost"] is not None and "default" in c["variant"]:
            met = "met" if c["cost"] <= MAX_COST else "MISSED"
            verdicts.append(f"round {c['round']}, {c['variant']}: cost {100 * c['cost']:.1f}% ({met})")
    report = {
        "target": {"text": TARGET, "max_cost": MAX_COST},
        "config": {
            "duration_s": duration_s,
            "store": "redis" if use_redis else "sqlite",
            "cpus": os.cpu_count(),
            "load_average_at_start": load_average(),
        },
        "rows": [dataclasses.asdict(r) for r in rows],
        "costs": found,
        "verdicts": verdicts,
    }
    return report, rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.access", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load per row (default 10)")
    parser.add_argument("--redis", action="store_true", help="counters and KV in a Redis instead of SQLite")
    parser.add_argument("--json", type=Path, default=Path("var/bench/access.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-access-"))
    try:
        report, rows = run(args.duration, work_dir, args.redis)
    except BenchError as error:
        logger.error("benchmark failed; logs kept in %s: %s", work_dir, error)
        return 1
    publish(render(report, rows), report, args.json)
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
