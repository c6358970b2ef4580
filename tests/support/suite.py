"""The whole suite as a user runs it: the launcher, real services, real Envoy, free ports.

`RunningSuite.start(tmp_dir, extra_env)` runs `python -m launcher` exactly as
`make run` does, but with every port chosen at random, children's output in
files, and the access log in a file. `stop()` signals only the launcher's PID;
the launcher stops its children. `logs()` returns every child's log for
dumping when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_ports
from tests.support.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Spark services ready on "
# What `make run` runs.
LAUNCHER_COMMAND = (sys.executable, "-m", "launcher")
UNREACHABLE_LIMITS = ROOT / "benchmarks" / "limits.toml"
SERVICES = ("meta", "access", "kv", "llm", "prompts", "vision")
# Settings from the developer's shell that would change what a test sees (real provider keys above all).
ISOLATED_VARIABLES = frozenset(
    {
        "REDIS_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "ADMIN_TOKEN",
        "ALLOWED_ORIGINS",
        "DEFAULT_MODEL",
        *(f"{p}_API_KEY" for p in ("OPENAI", "ANTHROPIC", "OPENROUTER", "BIGMODEL")),
        *(f"{p}_BASE_URL" for p in ("OPENAI", "ANTHROPIC", "GITHUB_MODELS", "OPENROUTER", "BIGMODEL")),
        "GITHUB_TOKEN",
    }
)


def suite_environment(
    directory: Path, extra_env: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, int]]:
    """The launcher's environment for a suite in `directory` on free ports, and those ports by name."""
    directory.mkdir(parents=True, exist_ok=True)
    names = ("edge", "edge_admin", *SERVICES, *(f"{s}_metrics" for s in SERVICES))
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_") and k not in ISOLATED_VARIABLES}
    env.update(
        {
            "SPARK_DATA_DIR": str(directory / "data"),
            "SPARK_LOG_DIR": str(directory / "logs"),
            "SPARK_EDGE_ACCESS_LOG": str(directory / "logs" / "edge-access.log"),
            "SPARK_EDGE_PORT": str(ports["edge"]),
            "SPARK_EDGE_ADMIN_PORT": str(ports["edge_admin"]),
            **{f"SPARK_{name.upper()}_PORT": str(ports[name]) for name in SERVICES},
            **{f"SPARK_{name.upper()}_METRICS_PORT": str(ports[f"{name}_metrics"]) for name in SERVICES},
            "SPARK_SHUTDOWN_GRACE_S": "2",
        }
    )
    env.update(extra_env or {})
    # Limits no test reaches by accident (the benchmarks' file); tests of the rate limits set their own.
    env.setdefault("SPARK_ACCESS_LIMITS", str(UNREACHABLE_LIMITS))
    if "SPARK_ACCESS_MODE" not in env and "REDIS_URL" in env:
        # Tests that are not about access run as the development owner on Redis too (forced, as a
        # deployment would have to); tests/e2e/test_access_http.py runs with keys.
        env |= {"SPARK_ACCESS_MODE": "development", "SPARK_ACCESS_ALLOW_DEVELOPMENT": "true"}
    return env, ports


@dataclass
class RunningSuite:
    """A launcher process and where its parts listen."""

    directory: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['edge']}"

    @property
    def edge_address(self) -> str:
        return f"127.0.0.1:{self.ports['edge']}"

    @classmethod
    def start(
        cls, directory: Path, extra_env: Mapping[str, str] | None = None, timeout_s: float = 60.0
    ) -> RunningSuite:
        env, ports = suite_environment(directory, extra_env)
        stdout = (directory / "launcher.out").open("wb")
        process = subprocess.Popen(LAUNCHER_COMMAND, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT)
        stdout.close()
        suite = cls(directory, process, env, ports)
        deadline = time.monotonic() + timeout_s
        while READY_LINE not in suite.launcher_output():
            if process.poll() is not None or time.monotonic() > deadline:
                logs = suite.logs()
                suite.stop()
                raise RuntimeError(f"suite did not start (exit {process.returncode}):\n{logs}")
            time.sleep(0.05)
        return suite

    def launcher_output(self) -> str:
        return (self.directory / "launcher.out").read_text(encoding="utf-8", errors="replace")

    def logs(self) -> str:
        parts = [f"--- launcher ---\n{self.launcher_output()}"]
        log_dir = self.directory / "logs"
        if log_dir.exists():
            for path in sorted(log_dir.iterdir()):
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append(f"--- {path.name} ---\n{text[-20000:]}")
        return "\n".join(parts)

    def child_pids(self) -> dict[str, int]:
        """The launcher's children by log name, read from its 'started' log lines (latest wins)."""
        pids: dict[str, int] = {}
        for line in self.launcher_output().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("msg", "").startswith("started ") and "pid" in record:
                    pids[record["child"]] = int(record["pid"])
        return pids

    def __enter__(self) -> RunningSuite:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self, timeout_s: float = 20.0) -> int:
        return terminate(self.process, timeout_s)
