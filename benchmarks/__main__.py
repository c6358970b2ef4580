"""`python -m benchmarks`: every comparison in one run, one table and one JSON file.

In turn, each part starting what it needs and stopping it before the next:

1. KV (`benchmarks.kv`): GET and SET through the edge on SQLite and Redis, next to
   redis-benchmark and webdis on the same redis-server;
2. chat (`benchmarks.llm`): non-streamed completions through the edge next to the
   LiteLLM proxy and the Portkey gateway, all in front of the same instant fake
   provider, and the time to first token of streamed ones;
3. streams (`benchmarks.streams`): `--streams` streamed completions held open at
   once through the edge for `--hold` seconds.

The report (`benchmarks.report`) adds every suite's and peer's memory and the
verdicts for the targets. A part that fails is reported and the others still run;
the exit code is 1 only then.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks import kv, llm, report, streams
from benchmarks.harness import BenchError, load_average, publish, start_command

logger = logging.getLogger("benchmarks")

QUICK_DURATION_S: Final = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n", 1)[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load per row (default 10)")
    length.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_DURATION_S:g} s per row and {streams.QUICK_STREAMS} streams of {streams.QUICK_HOLD_S:g} s, for "
        "smoke runs",
    )
    parser.add_argument("--streams", type=int, help=f"streams held open at once (default {streams.STREAMS:,})")
    parser.add_argument("--hold", type=float, help=f"seconds each stream lasts (default {streams.HOLD_S:g})")
    parser.add_argument("--no-peers", action="store_true", help="skip LiteLLM, Portkey and webdis (no installs)")
    parser.add_argument("--json", type=Path, default=Path("var/bench/all.json"), help="where to write the results")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start_command()
    duration_s = QUICK_DURATION_S if args.quick else args.duration
    stream_count = args.streams or (streams.QUICK_STREAMS if args.quick else streams.STREAMS)
    hold_s = args.hold or (streams.QUICK_HOLD_S if args.quick else streams.HOLD_S)
    peers = not args.no_peers
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-all-"))
    config: dict[str, Any] = {
        "duration_s": duration_s, "streams": stream_count, "hold_s": hold_s, "peers": peers,
        "cpus": os.cpu_count(), "load_average_at_start": load_average(),
    }  # fmt: skip
    started = time.monotonic()
    parts: dict[str, Callable[[Path], dict[str, Any]]] = {
        "kv": lambda path: kv.run(duration_s, path, peers=peers)[0],
        "chat": lambda path: llm.run(duration_s, path, peers=peers),
        "streams": lambda path: streams.run(path, streams=stream_count, hold_s=hold_s),
    }
    results: dict[str, dict[str, Any] | None] = {}
    failures = []
    for name, run in parts.items():
        logger.info("benchmark part %s", name)
        path = work_dir / name
        path.mkdir()
        try:
            results[name] = run(path)
        except BenchError as error:
            logger.error("benchmark part %s failed: %s", name, error)
            results[name] = None
            failures.append(f"{name}: not measured, it failed: {error}")
    config["elapsed_s"] = round(time.monotonic() - started, 1)
    combined = report.merge(
        kv=results["kv"], chat=results["chat"], streams=results["streams"], config=config, failures=failures
    )
    publish(report.render(combined), combined, args.json)
    if combined["problems"]:
        logger.warning("problems found; logs kept in %s", work_dir)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
