"""`python -m benchmarks.llm`: chat completions through the edge next to the same requests sent straight to the
provider, and next to the LiteLLM proxy and the Portkey gateway in front of the same provider.

A fake provider (the tests' OpenAI wire protocol, in a process of its own)
answers instantly, so every millisecond measured is a gateway's. In one run:
wrk at 16 connections for each target (req/s, p50, p99), the same at one
connection for the latency the edge adds, and streaming time-to-first-token
sent directly and through the edge. Peers that cannot be installed here are
reported as not measured, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks.chat_load import chat_body, measure_chat, messages_tool_body, tool_body
from benchmarks.fake_provider import READY_PREFIX
from benchmarks.harness import (
    BenchError,
    CpuMeter,
    LoadResult,
    Suite,
    counts_text,
    cpu_text,
    load_average,
    p50_p99,
    problems_section,
    publish,
    rss_mib,
    start_command,
    table,
    verdict,
)
from benchmarks.peers import Peer, PeerUnavailable, running_litellm, running_portkey
from tests.support.processes import terminate

logger = logging.getLogger(__name__)

CONNECTIONS: Final = 16
TTFT_REQUESTS: Final = 200
TARGET: Final = (
    "non-streaming completions through the edge ≥ 2x Portkey's req/s and ≥ 15x LiteLLM's at 16 connections, "
    "≥ 1,000 req/s; ≤ 3 ms p50 added at 1"
)
TARGET_RPS: Final = 1000.0
TARGET_PORTKEY_FACTOR: Final = 2.0
TARGET_LITELLM_FACTOR: Final = 15.0
TARGET_ADDED_P50_MS: Final = 3.0
_START_TIMEOUT_S: Final = 30.0
# An Anthropic model of the registry: the fake speaks its protocol too, so OpenAI bodies to it are translated.
ANTHROPIC_MODEL: Final = "claude-haiku-4-5"


@dataclass(frozen=True, slots=True)
class Row:
    target: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu_percent: dict[str, float]
    rss_mib: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class Ttft:
    target: str
    requests: int
    p50_ms: float
    p99_ms: float


@contextlib.contextmanager
def fake_provider(
    work_dir: Path, *, gap_s: float = 0.0, reply: str | None = None, chunk_chars: int | None = None
) -> Iterator[tuple[str, int]]:
    """The fake provider in its own process: yields (its OpenAI base URL, its pid)."""
    log = (work_dir / "fake-provider.out").open("w+")
    argv = [sys.executable, "-m", "benchmarks.fake_provider", "--gap", str(gap_s)]
    if reply is not None:
        argv += ["--reply", reply]
    if chunk_chars is not None:
        argv += ["--chunk-chars", str(chunk_chars)]
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        url = ""
        while not url:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise BenchError(f"the fake provider did not start:\n{log.read()}")
            time.sleep(0.05)
            log.seek(0)
            url = next((ln.removeprefix(READY_PREFIX).strip() for ln in log if ln.startswith(READY_PREFIX)), "")
        yield f"{url}/v1", process.pid
    finally:
        terminate(process, 10.0)
        log.close()


def _load(
    name: str,
    url: str,
    headers: Mapping[str, str],
    pids: Mapping[str, int],
    *,
    connections: int,
    duration_s: float,
    body: bytes | None = None,
) -> Row:
    meter = CpuMeter(pids)
    load: dict[str, Any] = {} if body is None else {"body": body}
    result: LoadResult = measure_chat(url, headers=headers, connections=connections, duration_s=duration_s, **load)
    cpu = meter.read()
    return Row(name, connections, result.rps, result.p50_ms, result.p99_ms, result.errors, cpu, rss_mib(pids))


def _idle(name: str, pids: Mapping[str, int]) -> Row:
    """No load: only the processes' RSS before any request, in the same table."""
    return Row(f"{name} (idle)", 0, 0, 0, 0, {}, {}, rss_mib(pids))


def _both(name: str, url: str, headers: Mapping[str, str], pids: Mapping[str, int], duration_s: float) -> list[Row]:
    """The load at 16 connections (throughput) and at one (the latency a gateway adds)."""
    return [
        _load(name, url, headers, pids, connections=connections, duration_s=duration_s)
        for connections in (CONNECTIONS, 1)
    ]


def measure_ttft(url: str, *, requests: int, headers: Mapping[str, str] | None = None) -> list[float]:
    """Milliseconds from sending a streamed request to its first content delta, one request at a time."""
    body = json.loads(chat_body())
    body.update(stream=True)
    samples = []
    with httpx.Client(timeout=30.0, headers=dict(headers or {})) as client:
        for _ in range(requests):
            started = time.perf_counter()
            with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    raise BenchError(f"{url} answered {response.status_code}: {response.read()!r}")
                for line in response.iter_lines():
                    if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                        samples.append((time.perf_counter() - started) * 1000)
                        break
    return samples


def _ttft_row(name: str, samples: Sequence[float]) -> Ttft:
    return Ttft(name, len(samples), *p50_p99(samples))


def _suite(work_dir: Path, provider_url: str, workers: int) -> Suite:
    return Suite(
        work_dir,
        redis_url=None,
        extra_env={
            "SPARK_SERVICES": "meta,access,llm",
            "SPARK_LLM_WORKERS": str(workers),
            "OPENAI_BASE_URL": provider_url,
            "OPENAI_API_KEY": "sk-bench",
            "ANTHROPIC_BASE_URL": provider_url.removesuffix("/v1"),
            "ANTHROPIC_API_KEY": "ak-bench",
        },
    )


def _tool_rows(base_url: str, headers: Mapping[str, str], pids: Mapping[str, int], duration_s: float) -> list[Row]:
    """What tools and translation cost next to the plain completion above, at 16 connections: a tool call passed
    through to an OpenAI-protocol model, a plain completion and a tool call translated for an Anthropic model,
    and the same tool call asked for through the Messages API."""
    chat, messages = f"{base_url}/v1/chat/completions", f"{base_url}/v1/messages"
    variants = (
        ("llm x1: tool call, passed through (gpt-4o-mini)", chat, tool_body()),
        (f"llm x1: plain, translated ({ANTHROPIC_MODEL})", chat, chat_body(ANTHROPIC_MODEL)),
        (f"llm x1: tool call, translated ({ANTHROPIC_MODEL})", chat, tool_body(ANTHROPIC_MODEL)),
        (f"llm x1: /v1/messages tool call ({ANTHROPIC_MODEL})", messages, messages_tool_body(ANTHROPIC_MODEL)),
        ("llm x1: /v1/messages tool call, translated (gpt-4o-mini)", messages, messages_tool_body("gpt-4o-mini")),
    )
    return [
        _load(name, url, headers, pids, connections=CONNECTIONS, duration_s=duration_s, body=body)
        for name, url, body in variants
    ]


def _peer_rows(provider_url: str, duration_s: float, problems: list[str]) -> list[Row]:
    rows: list[Row] = []
    starters: Sequence[tuple[str, Callable[[str], contextlib.AbstractContextManager[Peer]]]] = (
        ("LiteLLM proxy", running_litellm),
        ("Portkey gateway", running_portkey),
    )
    for name, start in starters:
        try:
            with start(provider_url) as peer:
                url = f"{peer.base_url}/chat/completions"
                # Its RSS after the one start-up probe, which every peer needs to be ready.
                idle = _idle(f"{name} {peer.version}", {"peer": peer.pid})
                rows += _both(f"{name} {peer.version}", url, peer.headers, {"peer": peer.pid}, duration_s)
                rows.append(idle)
        except PeerUnavailable as error:
            problems.append(f"{name} not measured: {error}")
    return rows


def run(duration_s: float, work_dir: Path, *, peers: bool) -> dict[str, Any]:
    rows: list[Row] = []
    ttfts: list[Ttft] = []
    problems: list[str] = []
    headers = {"content-type": "application/json"}
    with fake_provider(work_dir) as (provider_url, provider_pid):
        direct = f"{provider_url}/chat/completions"
        fake_pids = {"provider": provider_pid}
        rows += _both("provider directly", direct, headers, fake_pids, duration_s)
        ttfts.append(_ttft_row("provider directly", measure_ttft(direct, requests=TTFT_REQUESTS)))
        for workers in (1, 2):
            with _suite(work_dir / f"suite-{workers}", provider_url, workers) as suite:
                edge = f"{suite.url}/v1/chat/completions"
                pids = {**suite.processes(), **fake_pids}
                name = f"edge, llm x{workers}"
                idle = _idle(name, pids)
                rows += _both(name, edge, headers, pids, duration_s)
                rows.append(idle)
                ttfts.append(_ttft_row(name, measure_ttft(edge, requests=TTFT_REQUESTS)))
                if workers == 1:
                    rows += _tool_rows(suite.url, headers, pids, duration_s)
                suite.check_alive()
        if peers:
            rows += _peer_rows(provider_url, duration_s, problems)
    problems += [f"{row.target} ({row.conns} conns): errors {row.errors}" for row in rows if row.errors]
    return {
        "target": TARGET,
        "config": {"duration_s": duration_s, "connections": CONNECTIONS, "ttft_requests": TTFT_REQUESTS,
                   "cpus": os.cpu_count(), "load_average_at_start": load_average()},
        "rows": [dataclasses.asdict(row) for row in rows],
        "ttft": [dataclasses.asdict(t) for t in ttfts],
        "verdicts": verdicts(rows, ttfts),
        "problems": problems,
    }  # fmt: skip


def _find(rows: Sequence[Row], prefix: str, conns: int) -> Row | None:
    return next((r for r in rows if r.target.startswith(prefix) and r.conns == conns and r.rps), None)


def verdicts(rows: Sequence[Row], ttfts: Sequence[Ttft]) -> list[str]:
    """PASS or FAIL per target, for the faster of the edge's rows at 16 connections; a peer not measured is n/a."""
    best = max((r for r in rows if r.target.startswith("edge") and r.conns == CONNECTIONS), key=lambda r: r.rps)
    lines = [verdict(best.rps >= TARGET_RPS, f"edge {best.rps:,.0f} req/s ({best.target}) ≥ {TARGET_RPS:,.0f}")]
    for peer, factor in (("Portkey", TARGET_PORTKEY_FACTOR), ("LiteLLM", TARGET_LITELLM_FACTOR)):
        found = _find(rows, peer, CONNECTIONS)
        if found is None:
            lines.append(f"n/a   edge ≥ {factor:g}x {peer}: {peer} not measured")
            continue
        measured = best.rps / max(found.rps, 1e-9)
        text = f"edge / {peer} = {measured:.1f}x ≥ {factor:g}x ({peer} {found.rps:,.0f} req/s)"
        lines.append(verdict(measured >= factor, text))
    direct, edge_one = _find(rows, "provider directly", 1), _find(rows, "edge, llm x1", 1)
    if direct is not None and edge_one is not None:
        added = edge_one.p50_ms - direct.p50_ms
        lines.append(verdict(added <= TARGET_ADDED_P50_MS, f"p50 added at 1 connection: {added:.2f} ms"))
    base = next((t for t in ttfts if t.target == "provider directly"), None)
    for ttft in ttfts:
        if base is not None and ttft is not base:
            lines.append(f"info  time to first token added ({ttft.target}): p50 {ttft.p50_ms - base.p50_ms:.2f} ms")
    return lines


def render(report: dict[str, Any]) -> str:
    config = report["config"]
    load = table(
        ("target", "conns", "req/s", "p50 ms", "p99 ms", "errors", "cpu % of one core", "RSS MiB"),
        [
            (
                r["target"], str(r["conns"]), f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                counts_text(r["errors"]), cpu_text(r["cpu_percent"]),
                " ".join(f"{k} {v}" for k, v in r["rss_mib"].items() if v is not None),
            )
            for r in report["rows"]
        ],
    )  # fmt: skip
    ttft = table(
        ("streaming, 1 connection", "requests", "TTFT p50 ms", "TTFT p99 ms"),
        [(t["target"], str(t["requests"]), f"{t['p50_ms']:.2f}", f"{t['p99_ms']:.2f}") for t in report["ttft"]],
    )
    parts = [
        f"LLM gateway benchmark: non-streaming chat completions against an instant fake provider, wrk "
        f"{config['duration_s']:g} s per row; host: {config['cpus']} CPUs, load average at start "
        f"{config['load_average_at_start']}",
        "",
        load,
        "",
        ttft,
        "",
        f"Target: {report['target']}",
        *(f"  {line}" for line in report["verdicts"]),
    ]
    parts += problems_section(report["problems"])
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm", description=__doc__.split("\n", 1)[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load per row (default 10)")
    length.add_argument("--quick", action="store_true", help="2 s per row, for smoke runs")
    parser.add_argument("--no-peers", action="store_true", help="skip LiteLLM and Portkey (no installs)")
    parser.add_argument("--json", type=Path, default=Path("var/bench/llm.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-llm-"))
    try:
        report = run(2.0 if args.quick else args.duration, work_dir, peers=not args.no_peers)
    except BenchError as error:
        logger.error("benchmark failed; logs kept in %s: %s", work_dir, error)
        return 1
    publish(render(report), report, args.json)
    if not report["problems"]:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
