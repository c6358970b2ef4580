"""Plumbing shared by the benchmarks: free ports, the launched suite, /proc sampling, wrk and redis-benchmark.

Everything here only ever signals processes it started, by PID, and every
wait is bounded by a deadline.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import logging
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from services.common.logs import setup_logging
from tests.support.ports import free_ports
from tests.support.processes import terminate

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
WRK_SCRIPTS: Final = Path(__file__).parent / "wrk"
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_READY_LINE: Final = "Spark services ready on "
LIMITS_FILE: Final = Path(__file__).with_name("limits.toml")
# The launcher stops the edge and then the services, each with a 5 s grace.
_STOP_TIMEOUT_S: Final = 30.0


class BenchError(RuntimeError):
    """Something the benchmark depends on did not start, crashed or printed nonsense."""


def start_command() -> None:
    """What every benchmark command does first: the suite's JSON logs (httpx's per-request lines left out), and
    SIGTERM (from `timeout`, say) handled like Ctrl-C, so that every process the benchmark started is stopped."""
    setup_logging("bench", "info")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# --- /proc sampling -------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int | None:
    """VmRSS of a live process, or None if it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may contain spaces and parentheses; the fields after the last ")" may not.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from the kernel's per-thread children lists."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in map(int, children.read_text().split()):
                    found.append(child)
                    pending.append(child)
    return found


def _host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


class CpuMeter:
    """CPU used since construction by named processes, by our waited-for children (the load tool) and by the host.

    Percentages are of one core, so a saturated 2-core host reads 200.
    """

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._start = self._sample()

    def _sample(self) -> tuple[float, dict[str, float], tuple[float, float]]:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        seconds["load tool"] = usage.ru_utime + usage.ru_stime
        return time.monotonic(), seconds, _host_cpu()

    def read(self) -> dict[str, float]:
        (wall0, seconds0, (busy0, total0)), (wall, seconds, (busy, total)) = self._start, self._sample()
        elapsed = max(wall - wall0, 1e-6)
        result = {name: round(100 * (seconds[name] - seconds0[name]) / elapsed, 1) for name in seconds}
        result["host"] = round(100 * (os.cpu_count() or 1) * (busy - busy0) / max(total - total0, 1.0), 1)
        return result


def mib(value: int | None) -> float | None:
    """Bytes as MiB with one decimal; None stays None (a process that was gone)."""
    return None if value is None else round(value / (1024 * 1024), 1)


def rss_mib(pids: Mapping[str, int]) -> dict[str, float | None]:
    """The VmRSS of each named process in MiB (None for one that is gone)."""
    return {name: mib(rss_bytes(pid)) for name, pid in pids.items()}


def load_average() -> str:
    """The host's 1, 5 and 15 minute load averages, for a report's header: the machine is shared."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def raise_open_files_limit(needed: int) -> int:
    """Raises the soft RLIMIT_NOFILE to `needed` if it is lower; processes started later inherit it.

    Past the hard limit only root may go; anyone else gets the hard limit. Returns the soft limit now.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    else:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True, slots=True)
class Section:
    """Part of a sectioned table: a title line (may be empty), a header and the rows."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


def sectioned_table(sections: Sequence[Section]) -> str:
    """Plain-text tables that share their column widths, so that they read as one; columns left-aligned."""
    for section in sections:
        if any(len(row) != len(section.header) for row in section.rows):
            raise ValueError(f"a row of {section.title or 'the table'} does not match its header")
    columns = max(len(section.header) for section in sections)
    grids = [[list(section.header), *map(list, section.rows)] for section in sections]
    widths = [max((len(row[i]) for grid in grids for row in grid if i < len(row)), default=0) for i in range(columns)]
    lines: list[str] = []
    for section, grid in zip(sections, grids, strict=True):
        if section.title:
            lines += [""] if lines else []
            lines.append(section.title)
        rule = ["-" * width for width in widths[: len(section.header)]]
        for row in (grid[0], rule, *grid[1:]):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())
    return "\n".join(lines)


def p50_p99(samples: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile (statistics' default method); zeros when there are no samples."""
    if len(samples) < 2:
        return (samples[0], samples[0]) if samples else (0.0, 0.0)
    return statistics.median(samples), statistics.quantiles(samples, n=100)[98]


def counts_text(counts: Mapping[str, int]) -> str:
    """Errors or failures by kind for a table cell, `0` when there are none."""
    return ", ".join(f"{name}: {count}" for name, count in counts.items()) or "0"


def cpu_text(cpu: Mapping[str, float]) -> str:
    """A CpuMeter reading for a table cell: the processes that used at least 1% of a core, and the host."""
    short = {"redis-server": "redis", "load tool": "load"}
    return " ".join(
        f"{short.get(name, name)} {value:.0f}" for name, value in cpu.items() if value >= 1 or name == "host"
    )


def verdict(ok: bool, text: str) -> str:
    """One line of a benchmark's verdicts: PASS or FAIL, then what was measured against what."""
    return f"{'PASS' if ok else 'FAIL'}  {text}"


def table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """A plain-text table with left-aligned columns."""
    return sectioned_table([Section("", header, lines)])


# --- the suite --------------------------------------------------------------------------------------


def _process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    for arg in argv:
        if arg.startswith(b"services."):
            return arg.decode().removeprefix("services.")
    program = Path(argv[0].decode(errors="replace")).name
    return "edge" if "envoy" in program else program


class Suite:
    """`python -m launcher` with explicit free ports, in its own work dir, stopped by PID."""

    def __init__(
        self,
        work_dir: Path,
        *,
        redis_url: str | None,
        kv_workers: int = 2,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 90.0,
    ) -> None:
        self.work_dir = work_dir
        self.redis_url = redis_url
        self.kv_workers = kv_workers
        self.extra_env = dict(extra_env or {})
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self._admin_token = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._outputs: list[IO[bytes]] = []

    def _environ(self, ports: Sequence[int]) -> dict[str, str]:
        # Only our settings: a developer's SPARK_*, REDIS_URL or OTEL_* must not change what is measured.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "OTEL_")) and k != "REDIS_URL"}
        names = ("EDGE_PORT", "EDGE_ADMIN_PORT", "KV_PORT", "META_PORT", "KV_METRICS_PORT", "META_METRICS_PORT")
        env.update({f"SPARK_{name}": str(port) for name, port in zip(names, ports, strict=True)})
        env["SPARK_DATA_DIR"] = str(self.work_dir / "data")
        env["SPARK_LOG_DIR"] = str(self.work_dir / "logs")
        env["SPARK_EDGE_ACCESS_LOG"] = os.devnull
        env["SPARK_KV_WORKERS"] = str(self.kv_workers)
        # The KV and prompts benchmarks measure these; others name their own services in extra_env.
        env["SPARK_SERVICES"] = "meta,access,kv,prompts"
        # The edge's policy filters run on every request, with limits no benchmark reaches.
        env["SPARK_ACCESS_LIMITS"] = str(LIMITS_FILE)
        env["SPARK_ACCESS_PORT"] = "0"
        # For api_key_headers(): with REDIS_URL the access service runs in keys mode, as a deployment does.
        env["ADMIN_TOKEN"] = self._admin_token
        env["SPARK_ACCESS_METRICS_PORT"] = "0"
        # The token budget's store writes are measured; one benchmark caller must not use it up.
        env["SPARK_LLM_DAILY_TOKEN_BUDGET"] = str(10**12)
        # Not measured here, but started by the launcher: any free port.
        env["SPARK_PROMPTS_PORT"] = "0"
        env["SPARK_PROMPTS_METRICS_PORT"] = "0"
        env["SPARK_LLM_PORT"] = "0"
        env["SPARK_LLM_METRICS_PORT"] = "0"
        env["SPARK_VISION_PORT"] = "0"
        env["SPARK_VISION_METRICS_PORT"] = "0"
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def start(self, attempts: int = 3) -> None:
        """Starts the launcher and waits for its ready line; retries if another process took a port."""
        for attempt in range(1, attempts + 1):
            ports = free_ports(6)
            if self._start_once(ports):
                self.url = f"http://{HOST}:{ports[0]}"
                return
            if attempt == attempts:
                raise BenchError(f"the suite did not start; launcher log tail:\n{self.log_tail()}")

    def _start_once(self, ports: Sequence[int]) -> bool:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        stdout_path = self.work_dir / "launcher.out"
        stdout_path.write_bytes(b"")
        self._outputs = [stdout_path.open("ab"), (self.work_dir / "launcher.log").open("ab")]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "launcher"],
            env=self._environ(ports),
            stdin=subprocess.DEVNULL,
            stdout=self._outputs[0],
            stderr=self._outputs[1],
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if _READY_LINE in stdout_path.read_text(errors="replace"):
                return True
            if self._process.poll() is not None:
                self._reap()
                return False
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"the suite was not ready in {self.startup_timeout_s} s; log tail:\n{self.log_tail()}")

    def api_key_headers(self, login: str = "bench") -> dict[str, str]:
        """A new API key for `login`, made through the edge's admin route, as the header that sends it.

        Requests without one are refused (401) when the access service runs in keys mode, its default with
        REDIS_URL set; without REDIS_URL it runs in development mode and needs none.
        """
        body = json.dumps({"user": {"login": login}})
        headers = {"x-admin-token": self._admin_token, "Content-Type": "application/json"}
        connection = http.client.HTTPConnection(self.url.removeprefix("http://"), timeout=10)
        try:
            connection.request("POST", "/admin/keys", body, headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise BenchError(f"POST /admin/keys failed: {error!r}") from error
        finally:
            connection.close()
        if response.status != 200:
            raise BenchError(f"POST /admin/keys answered {response.status}: {payload[:300]!r}")
        return {"Authorization": f"Bearer {json.loads(payload)['secret']}"}

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchError("the suite is not running")
        return self._process.pid

    def processes(self) -> dict[str, int]:
        """The launcher's children by name: meta, kv, kv-2, ..., edge (workers numbered as the launcher does)."""
        named: dict[str, int] = {}
        for pid in sorted(descendants(self.pid)):
            name = base = _process_name(pid)
            copies = 1
            while name in named:
                copies += 1
                name = f"{base}-{copies}"
            named[name] = pid
        return named

    def check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            raise BenchError(f"the launcher exited; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        tails = []
        for path in [self.work_dir / "launcher.log", *sorted((self.work_dir / "logs").glob("*.log"))]:
            with contextlib.suppress(OSError):
                tails.append(f"== {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)

    def stop(self) -> None:
        """SIGTERM to the launcher (it stops its children); SIGKILL if it overstays, which the kernel passes on."""
        process = self._process
        if process is None:
            return
        terminate(process, _STOP_TIMEOUT_S)
        self._reap()

    def _reap(self) -> None:
        self._process = None
        for output in self._outputs:
            output.close()
        self._outputs = []

    def __enter__(self) -> Suite:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- load tools -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load run measured; latencies in milliseconds."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def _run(argv: Sequence[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{argv[0]} did not finish in {timeout_s:g} s") from error


def parse_wrk_report(stdout: str) -> LoadResult:
    """The `WRK_JSON` line our wrk scripts print in done(): errors are socket errors, every non-2xx by status and
    (webdis) every 2xx whose body is not what the command returns."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no WRK_JSON line:\n{stdout}")
    report: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    # wrk counts status >= 400 as a "status" error; our Lua counts every non-2xx by code instead.
    errors = {name: count for name, count in report["errors"].items() if name != "status" and count}
    errors.update({f"http {status}": count for status, count in report["statuses"].items()})
    if report.get("mismatched"):
        errors["wrong body"] = report["mismatched"]
    latency = report["latency_us"]
    return LoadResult(
        requests=report["requests"],
        rps=report["requests"] / max(report["duration_us"] / 1e6, 1e-6),
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        errors=errors,
    )


@dataclass(frozen=True, slots=True)
class Wrk:
    """One wrk run with a script from benchmarks/wrk/; errors are socket errors plus every non-2xx by status."""

    url: str
    script_args: Sequence[str]
    duration_s: float
    connections: int
    threads: int = 2
    script: str = "load.lua"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 2.0

    def argv(self) -> list[str]:
        """The command line; wrk wants at least one connection per thread."""
        argv = [
            "wrk", f"-t{max(1, min(self.threads, self.connections))}", f"-c{self.connections}",
            f"-d{self.duration_s:g}s", "--latency", "--timeout", f"{self.timeout_s:g}s",
        ]  # fmt: skip
        for name, value in self.headers.items():
            argv += ["-H", f"{name}: {value}"]
        return [*argv, "-s", str(WRK_SCRIPTS / self.script), self.url, "--", *self.script_args]

    def run(self) -> LoadResult:
        completed = _run(self.argv(), timeout_s=self.duration_s + 60)
        if completed.returncode != 0:
            raise BenchError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
        return parse_wrk_report(completed.stdout)


def publish(text: str, report: object, path: Path) -> None:
    """Prints a benchmark's table and writes its report as JSON."""
    sys.stdout.write(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)


def run_redis_benchmark(
    port: int, test: str, *, requests: int, connections: int, keys: int, value_bytes: int
) -> LoadResult:
    """One `redis-benchmark --csv` test; it exits non-zero on the first error reply, so a result has no errors."""
    argv = [
        "redis-benchmark", "-h", HOST, "-p", str(port), "-c", str(connections), "-n", str(requests),
        "-t", test, "-d", str(value_bytes), "-r", str(keys), "--csv",
    ]  # fmt: skip
    completed = _run(argv, timeout_s=300)
    rows = [row for row in csv.DictReader(completed.stdout.splitlines()) if row.get("test") == test.upper()]
    if completed.returncode != 0 or len(rows) != 1:
        raise BenchError(f"redis-benchmark failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    row = rows[0]
    return LoadResult(
        requests=requests,
        rps=float(row["rps"]),
        p50_ms=float(row["p50_latency_ms"]),
        p99_ms=float(row["p99_latency_ms"]),
        errors={},
    )


def problems_section(problems: Sequence[str]) -> list[str]:
    """The lines that list a report's problems under its table; none when there are none."""
    return ["", "Problems:", *(f"  {problem}" for problem in problems)] if problems else []
