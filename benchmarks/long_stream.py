"""`python -m benchmarks.long_stream`: holds one real vision stream open for six minutes through the edge.

The suite runs with its default timeouts; the fake provider (OpenAI's
protocol, its own process) sends one line every 20 s, so the model is silent
for longer than the 15 s keepalive interval between tokens. The script prints every
event with its time and a verdict: the stream must end with `data: [DONE]`,
without an error event, after at least the asked duration. Exit code 0 when it
did, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from benchmarks.harness import BenchError, Suite, start_command
from benchmarks.llm import fake_provider

logger = logging.getLogger(__name__)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def hold_stream(url: str, *, minimum_s: float) -> bool:
    """Streams one analysis, printing each event as it comes; True if it stayed open to a clean end."""
    body = {"prompt": "Describe the image line by line.", "image_base64": base64.b64encode(PNG).decode()}
    started = time.monotonic()
    last = started
    longest_silence = 0.0
    counts = {"keepalive": 0, "delta": 0, "final": 0, "error": 0}
    done = False
    with (
        httpx.Client(timeout=httpx.Timeout(60.0, read=None)) as client,
        client.stream("POST", url, json=body) as response,
    ):
        if response.status_code != 200:
            sys.stdout.write(f"HTTP {response.status_code}: {response.read().decode(errors='replace')}\n")
            return False
        for line in response.iter_lines():
            if not line:
                continue
            now = time.monotonic()
            longest_silence, last = max(longest_silence, now - last), now
            if line.startswith(":"):
                kind = "keepalive"
            elif line == "data: [DONE]":
                kind, done = "done", True
            else:
                event = json.loads(line.removeprefix("data: "))
                kind = "error" if "error" in event else "delta" if "delta" in event else "final"
            counts[kind] = counts.get(kind, 0) + 1
            sys.stdout.write(f"{now - started:8.1f} s  {kind:9s} {line[:100]}\n")
            sys.stdout.flush()
    elapsed = time.monotonic() - started
    ok = done and counts["error"] == 0 and elapsed >= minimum_s
    sys.stdout.write(
        f"\nstream {'STAYED OPEN' if ok else 'FAILED'}: {elapsed:.1f} s (asked for at least {minimum_s:.0f} s), "
        f"{counts['delta']} deltas, {counts['keepalive']} keepalives, longest silence {longest_silence:.1f} s, "
        f"{'ended with [DONE]' if done else 'no [DONE]'}, {counts['error']} error events\n"
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_stream", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="how long the stream must stay open (default 6)")
    parser.add_argument("--gap", type=float, default=20.0, help="seconds between the model's lines (default 20)")
    args = parser.parse_args(argv)
    start_command()
    lines = int(args.minutes * 60 / args.gap) + 1
    reply = "".join(f"line {i:03d}\n" for i in range(lines))
    work_dir = Path(tempfile.mkdtemp(prefix="spark-long-stream-"))
    try:
        with fake_provider(work_dir, gap_s=args.gap, reply=reply, chunk_chars=len("line 000\n")) as (url, _):
            env = {
                "OPENAI_BASE_URL": url,
                "OPENAI_API_KEY": "sk-long-stream",
                "SPARK_SERVICES": "meta,access,llm,prompts,vision",
            }
            with Suite(work_dir / "suite", redis_url=None, extra_env=env) as suite:
                ok = hold_stream(f"{suite.url}/v1/vision/stream", minimum_s=args.minutes * 60 - args.gap)
    except BenchError as error:
        logger.error("could not run: %s (logs in %s)", error, work_dir)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
