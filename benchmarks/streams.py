"""`python -m benchmarks.streams`: many streamed chat completions held open at once through the edge.

A fake provider (OpenAI's protocol, its own process) streams `TOKENS` tokens
spread over `--hold` seconds (60) per request. `--streams` (1,000)
`POST /v1/chat/completions` with `"stream": true` are opened at once through
the edge (edge -> access check -> llm -> provider) from one asyncio client. A
stream completes when it ends with `data: [DONE]` after every token, in
order. The report gives how many completed, the most connected and the most
streaming at once, the time to the first token (p50/p99) under that load, the kernel's listen-queue
overflows meanwhile, every process's RSS idle, at the peak and after the
streams closed, and each limit of the suite on that path next to what the
run needs from it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import logging
import os
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from benchmarks.chat_load import MODEL, chat_body
from benchmarks.harness import (
    LIMITS_FILE,
    BenchError,
    Suite,
    counts_text,
    load_average,
    p50_p99,
    problems_section,
    publish,
    raise_open_files_limit,
    rss_mib,
    start_command,
    table,
    verdict,
)
from benchmarks.llm import fake_provider
from services.access.policy import DEFAULT_LIMITS_PATH, load_limits
from services.llm.config import read_config as read_llm_config

logger = logging.getLogger(__name__)

TARGET: Final = "every stream completes with every token, all of them streaming at once"
STREAMS: Final = 1000
HOLD_S: Final = 60.0
QUICK_STREAMS: Final = 100
QUICK_HOLD_S: Final = 10.0
TOKENS: Final = 20
SETTLE_S: Final = 2.0
SAMPLE_EVERY_S: Final = 0.5
ROOT: Final = Path(__file__).resolve().parent.parent
# Beyond the hold, how long a stream may take before it counts as not completed (a queue somewhere).
GRACE_S: Final = 120.0
# The client's sockets, one per stream, plus what Python and the suite's processes already hold.
_SPARE_FILES: Final = 1024
_LLM_CLASS: Final = "llm"

ContentOf = Callable[[Any], str | None]


def openai_content(event: Any) -> str | None:
    """The text in an OpenAI `chat.completion.chunk`'s first choice's delta, if any."""
    try:
        content = event["choices"][0]["delta"].get("content")
    except (LookupError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


@dataclass(slots=True)
class SseTally:
    """What one Server-Sent Events response carried: the text of its content events, and whether it ended well.

    Comments (the suite's keepalives), `event:` and blank lines are skipped; an event that is not
    JSON is counted as malformed, and one with an `error` member is kept as the stream's error.
    """

    content_of: ContentOf
    pieces: list[str] = field(default_factory=list)
    events: int = 0
    malformed: int = 0
    done: bool = False
    error: str | None = None

    def feed(self, line: str) -> bool:
        """Takes one line without its newline; True when it carried the stream's first content."""
        if not line.startswith("data:") or self.done:
            return False
        data = line.removeprefix("data:").removeprefix(" ")
        if data == "[DONE]":
            self.done = True
            return False
        self.events += 1
        try:
            event = json.loads(data)
        except ValueError:
            self.malformed += 1
            return False
        if isinstance(event, dict) and "error" in event:
            self.error = _error_name(event["error"])
        piece = self.content_of(event)
        if not piece:
            return False
        self.pieces.append(piece)
        return len(self.pieces) == 1

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _error_name(error: Any) -> str:
    """An error event's code (OpenAI's shape: `{"message", "type", "code"}`), else a short form of it."""
    if isinstance(error, dict):
        for key in ("code", "type"):
            if isinstance(error.get(key), str):
                return str(error[key])
    return json.dumps(error)[:80]


@dataclass(frozen=True, slots=True)
class StreamResult:
    """One stream as the client saw it; times in seconds from the moment every stream was started."""

    status: int | None
    opened_s: float | None
    first_token_s: float | None
    closed_s: float
    done: bool
    text: str
    error: str | None
    malformed: int = 0

    def outcome(self, expected_text: str) -> str:
        """`completed`, or the first thing that went wrong with this stream."""
        if self.error is not None:
            return self.error
        if self.status != 200:
            return f"HTTP {self.status}"
        if not self.done:
            return "ended without [DONE]"
        if self.malformed:
            return "events that are not JSON"
        return "completed" if self.text == expected_text else "tokens missing or out of order"


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: Mapping[str, Any],
    content_of: ContentOf,
    started: float,
    deadline_s: float,
) -> StreamResult:
    tally = SseTally(content_of)
    status: int | None = None
    opened: float | None = None
    first: float | None = None
    error: str | None = None

    async def read() -> None:
        nonlocal status, opened, first
        async with session.post(url, json=body) as response:
            status, opened = response.status, time.perf_counter() - started
            async for raw in response.content:
                if tally.feed(raw.decode(errors="replace").rstrip("\r\n")) and first is None:
                    first = time.perf_counter() - started

    try:
        await asyncio.wait_for(read(), deadline_s)
    except aiohttp.ClientError as failure:  # first: aiohttp's read timeout is a TimeoutError too
        error = f"{type(failure).__name__}: {failure}"[:200]
    except TimeoutError:
        error = f"not over in {deadline_s:g} s"
    if error is None and tally.error is not None:
        error = f"error event: {tally.error}"
    closed = time.perf_counter() - started
    return StreamResult(status, opened, first, closed, tally.done, tally.text, error, tally.malformed)


async def open_streams(
    url: str,
    body: Mapping[str, Any],
    count: int,
    content_of: ContentOf,
    *,
    read_timeout_s: float,
    deadline_s: float,
    during: Callable[[], Awaitable[None]] | None = None,
) -> list[StreamResult]:
    """Starts `count` streamed POSTs at once, each on its own connection, and reads them all to their end.

    `during` runs next to them (e.g. to sample memory) and is cancelled when the last stream ends.
    """
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=read_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        streams = [
            asyncio.ensure_future(
                _one(session, url, body=body, content_of=content_of, started=started, deadline_s=deadline_s)
            )
            for _ in range(count)
        ]
        side = asyncio.ensure_future(during()) if during is not None else None
        try:
            return list(await asyncio.gather(*streams))
        finally:
            if side is not None:
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)


def max_open(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals (opened, closed) that overlap at any instant; one that closes as another opens does not."""
    events = sorted([(opened, 1) for opened, _ in intervals] + [(closed, -1) for _, closed in intervals])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def listen_overflows() -> int:
    """The host's TcpExt ListenOverflows: connections dropped because a listen queue was full (any listener)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0))


class RssPeaks:
    """The highest RSS seen per process, and of their sum at one instant, over repeated samples."""

    def __init__(self, pids: Mapping[str, int], total_of: Sequence[str]) -> None:
        self.pids = dict(pids)
        self.total_of = tuple(total_of)
        self.peak: dict[str, float | None] = {}

    def sample(self) -> None:
        now = with_total(rss_mib(self.pids), self.total_of)
        for name, value in now.items():
            if value is not None and (self.peak.get(name) or 0.0) < value:
                self.peak[name] = value

    async def run(self, every_s: float) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every_s)


def with_total(rss: Mapping[str, float | None], names: Sequence[str]) -> dict[str, float | None]:
    """`rss` plus the sum of `names` (the suite's processes) as `suite total`."""
    return {**rss, "suite total": round(sum(rss.get(name) or 0.0 for name in names), 1)}


# --- the suite's limits on this path ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit on the streams' path: its value in this run, where it is set, and what the run needs."""

    name: str
    where: str
    value: float
    needed: float

    @property
    def ok(self) -> bool:
        return self.value >= self.needed


def amount(value: float) -> str:
    """A limit or a need as a person reads it: whole numbers with separators, fractions to two places."""
    if value == float("inf"):
        return "none"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def source_line(path: Path, pattern: str, *, after: str | None = None) -> str:
    """`path:line` of the first line matching `pattern` (past the first matching `after`), relative to the repo."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if after is not None and re.search(after, line)), -1) + 1
    number = next((i + 1 for i in range(start, len(lines)) if re.search(pattern, lines[i])), None)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"{shown}:{number}" if number is not None else str(shown)


def _cluster(envoy: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    clusters: Sequence[Mapping[str, Any]] = envoy["static_resources"]["clusters"]
    found = next((c for c in clusters if c["name"] == name), None)
    if found is None:
        raise BenchError(f"the edge's config has no {name} cluster")
    return found


def _managers(envoy: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The network filters' configs of the edge's public listener (the first): its HTTP connection manager."""
    for chain in envoy["static_resources"]["listeners"][0]["filter_chains"]:
        for listener_filter in chain["filters"]:
            yield listener_filter.get("typed_config", {})


def _stream_idle_timeout_s(envoy: Mapping[str, Any]) -> float:
    timeout = next((m["stream_idle_timeout"] for m in _managers(envoy) if "stream_idle_timeout" in m), None)
    if timeout is None:
        raise BenchError("the edge's config has no stream_idle_timeout")
    return float(timeout.removesuffix("s"))


def _downstream_connections(envoy: Mapping[str, Any]) -> float:
    for monitor in envoy.get("overload_manager", {}).get("resource_monitors", []):
        if "max_active_downstream_connections" in monitor.get("typed_config", {}):
            return float(monitor["typed_config"]["max_active_downstream_connections"])
    return float("inf")


def stream_limits(
    streams: int,
    gap_s: float,
    *,
    envoy: Mapping[str, Any],
    limits_file: Path,
    llm_workers: int,
    provider_connections: int,
    llm_timeout_s: float,
    open_files: int,
) -> list[Limit]:
    """Each limit that `streams` concurrent streams with `gap_s` between tokens must fit in, as this run set it."""
    edge, llm_config = ROOT / "edge" / "envoy.py", ROOT / "services" / "llm" / "config.py"
    llm_cluster = _cluster(envoy, "llm")
    (llm_breaker,) = llm_cluster["circuit_breakers"]["thresholds"]
    h2 = llm_cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    per_connection = h2["explicit_http_config"]["http2_protocol_options"]["max_concurrent_streams"]
    idle_timeout_s = _stream_idle_timeout_s(envoy)
    llm_class = load_limits(limits_file).classes[_LLM_CLASS]
    return [
        Limit("edge: downstream connections (overload manager)",
              source_line(ROOT / "edge" / "settings.py", r"SPARK_EDGE_MAX_CONNECTIONS"), _downstream_connections(envoy),
              streams),
        Limit("edge: llm cluster circuit breaker max_requests", source_line(edge, r'"max_requests"'),
              llm_breaker["max_requests"], streams),
        Limit("edge: llm cluster streams (max_connections x streams per connection)",
              source_line(edge, r'"max_concurrent_streams": \d+\}'),
              llm_breaker["max_connections"] * per_connection, streams),
        Limit("edge: stream idle timeout, s (vs the gap between tokens)", source_line(edge, r'"stream_idle_timeout"'),
              idle_timeout_s, gap_s),
        Limit(f"llm's access check: {_LLM_CLASS} requests per user per {llm_class.window} (limits file in use)",
              source_line(limits_file, r"^per_user", after=rf"^\[classes\.{_LLM_CLASS}\]"), llm_class.per_user,
              streams),
        Limit(f"llm: provider connections ({provider_connections:,} per llm process x {llm_workers})",
              source_line(llm_config, r"SPARK_LLM_PROVIDER_CONNECTIONS"), provider_connections * llm_workers, streams),
        Limit("llm: SPARK_LLM_TIMEOUT_S, s (first token and each gap)",
              source_line(llm_config, r"SPARK_LLM_TIMEOUT_S"), llm_timeout_s, gap_s),
        Limit("benchmark client and suite: open files (RLIMIT_NOFILE)", "ulimit -n", open_files, streams + 64),
    ]  # fmt: skip


def default_llm_limit(streams: int) -> Limit:
    """The shipped access limits' llm class, for the report: a deployment with them refuses most of a burst."""
    llm_class = load_limits(DEFAULT_LIMITS_PATH).classes[_LLM_CLASS]
    where = source_line(DEFAULT_LIMITS_PATH, r"^per_user", after=rf"^\[classes\.{_LLM_CLASS}\]")
    return Limit(f"access (shipped default): {_LLM_CLASS} per user per {llm_class.window}", where,
                 llm_class.per_user, streams)  # fmt: skip


# Envoy counters that say the edge refused, timed out or could not queue a request (any listener or cluster).
_EDGE_COUNTERS: Final = re.compile(r"overflow$|rq_timeout$|idle_timeout$")


def edge_counters(stats: str) -> dict[str, int]:
    """From the text of Envoy's admin `/stats`: the counters that say a request was refused or cut short."""
    found = {}
    for line in stats.splitlines():
        name, _, value = line.partition(": ")
        if _EDGE_COUNTERS.search(name) and value.isdigit():
            found[name] = int(value)
    return found


def risen(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """How much each counter rose between two readings, for those that did."""
    return {name: value - before.get(name, 0) for name, value in after.items() if value > before.get(name, 0)}


def read_edge_counters(envoy: Mapping[str, Any]) -> dict[str, int]:
    address = envoy["admin"]["address"]["socket_address"]
    connection = http.client.HTTPConnection(address["address"], address["port_value"], timeout=10)
    try:
        connection.request("GET", "/stats")
        return edge_counters(connection.getresponse().read().decode())
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"the edge's admin /stats did not answer: {error!r}") from error
    finally:
        connection.close()


def counter_causes(counters: Mapping[str, int]) -> list[str]:
    """What each risen counter means for the streams, and the setting behind it."""
    settings, envoy = ROOT / "edge" / "settings.py", ROOT / "edge" / "envoy.py"
    causes = {
        "upstream_rq_pending_overflow": f"a cluster's circuit breaker was full ({source_line(envoy, 'max_requests')})",
        "downstream_global_cx_overflow": "the edge's connection limit was reached "
        f"({source_line(settings, 'SPARK_EDGE_MAX_CONNECTIONS')})",
    }
    return [
        f"edge counter {name} +{count}" + next((f": {why}" for key, why in causes.items() if name.endswith(key)), "")
        for name, count in counters.items()
    ]


# --- running ----------------------------------------------------------------------------------------


def reply_text(tokens: int = TOKENS) -> str:
    """What the fake streams: `tokens` tokens of six characters, one per delta."""
    return "".join(f"tok{i:02d} " for i in range(tokens))


def stream_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(chat_body(MODEL))
    body["stream"] = True
    return body


def summarize(results: Sequence[StreamResult], expected_text: str) -> dict[str, Any]:
    """Counts and percentiles of one load: how many completed, how many were connected (response headers in) and
    how many streaming (first token in) at once, TTFT and duration."""
    outcomes = Counter(result.outcome(expected_text) for result in results)
    ttfts = [1000 * r.first_token_s for r in results if r.first_token_s is not None]
    connected = [(r.opened_s, r.closed_s) for r in results if r.opened_s is not None and r.status == 200]
    streaming = [(r.first_token_s, r.closed_s) for r in results if r.first_token_s is not None]
    durations = [r.closed_s for r in results]
    ttft_p50, ttft_p99 = p50_p99(ttfts)
    return {
        "streams": len(results),
        "completed": outcomes.pop("completed", 0),
        "max_connected": max_open(connected),
        "max_streaming": max_open(streaming),
        "ttft_p50_ms": ttft_p50,
        "ttft_p99_ms": ttft_p99,
        "duration_p50_s": statistics.median(durations) if durations else 0.0,
        "duration_max_s": max(durations, default=0.0),
        "failures": dict(outcomes.most_common()),
    }


def _warm_up(url: str) -> None:
    """One non-streaming completion (instant from the fake): the path works and its connections are open."""
    body = json.loads(chat_body(MODEL))

    async def once() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
            return response.status, await response.text()

    status, text = asyncio.run(once())
    if status != 200:
        raise BenchError(f"the warm-up completion through the edge answered {status}: {text[:300]}")


def run(work_dir: Path, *, streams: int = STREAMS, hold_s: float = HOLD_S, llm_workers: int = 1) -> dict[str, Any]:
    open_files = raise_open_files_limit(streams + _SPARE_FILES)
    gap_s = hold_s / (TOKENS - 1)
    expected = reply_text()
    load_average_at_start = load_average()
    memory: dict[str, dict[str, float | None]] = {}
    with fake_provider(work_dir, gap_s=gap_s, reply=expected, chunk_chars=len("tok00 ")) as (provider_url, fake_pid):
        env = {
            "OPENAI_BASE_URL": provider_url,
            "OPENAI_API_KEY": "sk-bench",
            "SPARK_SERVICES": "meta,access,llm",
            "SPARK_LLM_WORKERS": str(llm_workers),
        }
        with Suite(work_dir / "suite", redis_url=None, extra_env=env) as suite:
            url = f"{suite.url}/v1/chat/completions"
            processes = suite.processes()
            envoy = json.loads((suite.work_dir / "data" / "edge" / "envoy.json").read_text())
            # The suite's llm reads the same settings: what it uses is what this reads.
            llm_settings = read_llm_config(env)
            limits = stream_limits(
                streams, gap_s, envoy=envoy, limits_file=LIMITS_FILE, llm_workers=llm_workers,
                provider_connections=llm_settings.providers["openai"].max_connections,
                llm_timeout_s=llm_settings.timeout_s, open_files=open_files,
            )  # fmt: skip
            _warm_up(url)
            time.sleep(SETTLE_S)
            pids = {**processes, "provider": fake_pid}
            memory["idle"] = with_total(rss_mib(pids), list(processes))
            peaks = RssPeaks(pids, list(processes))
            overflows, counters = listen_overflows(), read_edge_counters(envoy)
            logger.info("opening %d streams of %g s through the edge", streams, hold_s)
            results = asyncio.run(
                open_streams(
                    url, stream_body(), streams, openai_content,
                    read_timeout_s=max(30.0, 3 * gap_s), deadline_s=hold_s + GRACE_S,
                    during=lambda: peaks.run(SAMPLE_EVERY_S),
                )
            )  # fmt: skip
            overflows, counters = listen_overflows() - overflows, risen(counters, read_edge_counters(envoy))
            memory["peak"] = peaks.peak
            time.sleep(SETTLE_S)
            memory["after"] = with_total(rss_mib(pids), list(processes))
            suite.check_alive()
            restarted = suite.processes() != processes
    summary = summarize(results, expected)
    summary["listen_overflows"] = overflows
    summary["edge_counters"] = counters
    problems = [f"a child of the launcher was restarted during the run: {processes}"] if restarted else []
    problems += counter_causes(counters)
    if summary["completed"] < streams:
        problems.append(
            f"{streams - summary['completed']} of {streams} streams did not complete: {summary['failures']}"
        )
    problems += [f"limit too low for this run: {limit.name} = {amount(limit.value)} at {limit.where}, needs "
                 f"{amount(limit.needed)}"
                 for limit in limits if not limit.ok]  # fmt: skip
    all_held = summary["completed"] == streams and summary["max_streaming"] == streams
    return {
        "config": {
            "streams": streams, "hold_s": hold_s, "tokens": TOKENS, "gap_s": round(gap_s, 3),
            "llm_workers": llm_workers, "open_files_limit": open_files, "cpus": os.cpu_count(),
            "load_average_at_start": load_average_at_start,
        },
        "result": summary,
        "memory_mib": memory,
        "growth_mib": {name: _growth(memory["idle"].get(name), value) for name, value in memory["after"].items()},
        "limits": [{**dataclasses.asdict(limit), "ok": limit.ok} for limit in limits],
        "default_limits": [{**dataclasses.asdict(limit), "ok": limit.ok} for limit in [default_llm_limit(streams)]],
        "verdicts": [
            verdict(all_held, f"{summary['completed']:,} of {streams:,} streams completed with every token, "
                              f"{summary['max_streaming']:,} streaming at once for ~{hold_s:g} s")
        ],
        "problems": problems,
    }  # fmt: skip


def _growth(idle: float | None, after: float | None) -> float | None:
    return None if idle is None or after is None else round(after - idle, 1)


def render(report: dict[str, Any]) -> str:
    config, result, memory = report["config"], report["result"], report["memory_mib"]
    streams = table(
        ("streams", "completed", "connected at once", "streaming at once", "TTFT p50 ms", "TTFT p99 ms",
         "duration p50 s", "max s", "listen overflows", "failures"),
        [(str(result["streams"]), str(result["completed"]), str(result["max_connected"]),
          str(result["max_streaming"]), f"{result['ttft_p50_ms']:.1f}",
          f"{result['ttft_p99_ms']:.1f}", f"{result['duration_p50_s']:.1f}", f"{result['duration_max_s']:.1f}",
          str(result["listen_overflows"]), counts_text(result["failures"]))],
    )  # fmt: skip

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rss = table(
        ("process", "RSS idle MiB", "peak MiB", "after MiB", "growth MiB"),
        [
            (name, cell(memory["idle"].get(name)), cell(memory["peak"].get(name)), cell(memory["after"].get(name)),
             cell(report["growth_mib"].get(name)))
            for name in memory["idle"]
        ],
    )  # fmt: skip
    limits = table(
        ("limit on the path", "value", "needed", "ok", "where"),
        [
            (limit["name"], amount(limit["value"]), amount(limit["needed"]), "yes" if limit["ok"] else "NO",
             limit["where"])
            for limit in report["limits"] + report["default_limits"]
        ],
    )  # fmt: skip
    parts = [
        f"Streams: {config['streams']:,} streamed chat completions at once through the edge, {config['tokens']} tokens "
        f"{config['gap_s']:g} s apart (~{config['hold_s']:g} s each), llm x{config['llm_workers']}; host: "
        f"{config['cpus']} CPUs, load average at start {config['load_average_at_start']}",
        "",
        streams,
        f"Edge refusal and timeout counters that rose meanwhile: {counts_text(result['edge_counters'])}",
        "",
        rss,
        "",
        limits,
        "",
        f"Target: {TARGET}",
        *(f"  {line}" for line in report["verdicts"]),
    ]
    parts += problems_section(report["problems"])
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streams", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, help=f"streams open at once (default {STREAMS:,})")
    parser.add_argument("--hold", type=float, help=f"seconds each stream lasts (default {HOLD_S:g})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STREAMS} streams of {QUICK_HOLD_S:g} s")
    parser.add_argument("--llm-workers", type=int, default=1, help="llm processes (SPARK_LLM_WORKERS; default 1)")
    parser.add_argument("--json", type=Path, default=Path("var/bench/streams.json"), help="where to write the results")
    args = parser.parse_args(argv)
    start_command()
    work_dir = Path(tempfile.mkdtemp(prefix="spark-bench-streams-"))
    streams = args.streams or (QUICK_STREAMS if args.quick else STREAMS)
    hold_s = args.hold or (QUICK_HOLD_S if args.quick else HOLD_S)
    try:
        report = run(work_dir, streams=streams, hold_s=hold_s, llm_workers=args.llm_workers)
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
