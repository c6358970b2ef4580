"""`python -m benchmarks.vision`: 200 concurrent vision streams through the edge.

A fake provider (OpenAI's protocol, its own process) streams 50 tokens over
10 s per request. The same 200 streams are opened straight against it and
then through the edge (edge -> vision -> prompts, vision -> llm -> provider);
the table gives how many completed, time to the first token (p50/p99) and the
whole stream's duration, and the suite's RSS idle and in the middle of the
load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import logging
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import BenchError, Suite, p50_p99, problems_section, publish, rss_mib, start_command, table
from benchmarks.llm import fake_provider
from benchmarks.streams import GRACE_S, ContentOf, StreamResult, open_streams, openai_content

logger = logging.getLogger(__name__)

STREAMS: Final = 200
TOKENS: Final = 50
STREAM_S: Final = 10.0
PNG: Final = b"\x89PNG\r\n\x1a\n" + bytes(64)


@dataclass(frozen=True, slots=True)
class Row:
    target: str
    streams: int
    completed: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    duration_p50_ms: float


def _vision_content(event: Any) -> str | None:
    delta = event.get("delta") if isinstance(event, dict) else None
    return delta if isinstance(delta, str) else None


def _load(
    url: str, body: Mapping[str, Any], content_of: ContentOf, during: Callable[[], Awaitable[None]] | None = None
) -> list[StreamResult]:
    return asyncio.run(
        open_streams(url, body, STREAMS, content_of, read_timeout_s=60.0, deadline_s=STREAM_S + GRACE_S, during=during)
    )


def _row(target: str, results: Sequence[StreamResult]) -> Row:
    """A stream completed when it ended with `data: [DONE]` and no error (the suite's text is cleaned, not compared)."""
    ttft_p50, ttft_p99 = p50_p99([1000 * r.first_token_s for r in results if r.first_token_s is not None])
    return Row(
        target,
        len(results),
        sum(r.done and r.error is None and r.status == 200 for r in results),
        ttft_p50,
        ttft_p99,
        1000 * statistics.median(r.closed_s for r in results),
    )


def run(work_dir: Path) -> dict[str, Any]:
    reply = "".join(f"tok{i:02d}\n" for i in range(TOKENS))
    gap = STREAM_S / (TOKENS - 1)
    rows: list[Row] = []
    memory: dict[str, dict[str, float | None]] = {}
    with fake_provider(work_dir, gap_s=gap, reply=reply, chunk_chars=len("tok00\n")) as (provider_url, _):
        direct_body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

        direct = _load(f"{provider_url}/chat/completions", direct_body, openai_content)
        rows.append(_row("provider directly", direct))
        env = {
            "OPENAI_BASE_URL": provider_url,
            "OPENAI_API_KEY": "sk-bench",
            "SPARK_SERVICES": "meta,access,llm,prompts,vision",
        }
        with Suite(work_dir / "suite", redis_url=None, extra_env=env) as suite:
            processes = suite.processes()
            memory["idle"] = rss_mib(processes)

            async def sample_midway() -> None:
                await asyncio.sleep(STREAM_S / 2)
                memory["during"] = rss_mib(processes)

            body = {"prompt": "Describe the image.", "image_base64": base64.b64encode(PNG).decode()}
            through = _load(f"{suite.url}/v1/vision/stream", body, _vision_content, sample_midway)
            rows.append(_row("edge -> vision -> llm", through))
            suite.check_alive()
    base, edge = rows
    problems = [
        f"{r.target}: {r.streams - r.completed} of {r.streams} streams did not complete"
        for r in rows
        if r.completed < r.streams
    ]
    return {
        "config": {"streams": STREAMS, "tokens": TOKENS, "stream_s": STREAM_S},
        "rows": [dataclasses.asdict(r) for r in rows],
        "added_ttft_ms": {"p50": edge.ttft_p50_ms - base.ttft_p50_ms, "p99": edge.ttft_p99_ms - base.ttft_p99_ms},
        "memory_mib": memory,
        "problems": problems,
    }  # fmt: skip


def render(report: dict[str, Any]) -> str:
    config = report["config"]
    streams = table(
        ("target", "streams", "completed", "TTFT p50 ms", "TTFT p99 ms", "duration p50 ms"),
        [
            (r["target"], str(r["streams"]), str(r["completed"]), f"{r['ttft_p50_ms']:.1f}", f"{r['ttft_p99_ms']:.1f}",
             f"{r['duration_p50_ms']:.0f}")
            for r in report["rows"]
        ],
    )  # fmt: skip
    memory = report["memory_mib"]
    names = sorted(memory.get("idle", {}))
    rss = table(
        ("process", "RSS idle MiB", "RSS during MiB"),
        [(n, str(memory["idle"].get(n)), str(memory.get("during", {}).get(n))) for n in names],
    )
    added = report["added_ttft_ms"]
    parts = [
        f"Vision streams: {config['streams']} at once, {config['tokens']} tokens over {config['stream_s']:g} s each",
        "",
        streams,
        "",
        f"time to first token added by the suite: p50 {added['p50']:.1f} ms, p99 {added['p99']:.1f} ms",
        "",
        rss,
    ]
    parts += problems_section(report["problems"])
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vision", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, default=Path("var/bench/vision.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-vision-"))
    try:
        report = run(work_dir)
    except BenchError as error:
        logger.error("benchmark failed; logs kept in %s: %s", work_dir, error)
        return 1
    publish(render(report), report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
