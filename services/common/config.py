"""Reading typed settings from an environment mapping.

Each service's own `config.py` is the only caller of `os.environ`; it hands
the mapping to an `EnvReader`, which collects every missing or invalid value
so that one start-up error lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """One or more settings are missing or invalid; the message lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class EnvReader:
    """Reads typed values from an environment, remembering every problem."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        raw = self._raw(name)
        return default if raw is None else raw

    def optional_text(self, name: str) -> str | None:
        return self._raw(name)

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw, 10)
        except ValueError:
            self._problems.append(f"{name}={raw!r} is not an integer")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self._problems.append(f"{name}={value} is outside [{minimum}, {maximum}]")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._problems.append(f"{name}={raw!r} is not a number")
            return default
        if value < minimum:
            self._problems.append(f"{name}={value} is below {minimum}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        self._problems.append(f"{name}={raw!r} is not a boolean (true/false)")
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            self._problems.append(f"{name}={raw!r} is not one of {', '.join(choices)}")
            return default
        return raw.lower()

    def path(self, name: str, default: str) -> Path:
        return Path(self.text(name, default)).expanduser()

    def problem(self, message: str) -> None:
        """Records a problem found by a cross-field check."""
        self._problems.append(message)

    def finish(self) -> None:
        """Raises ConfigError listing every problem seen, if any (each once)."""
        if self._problems:
            raise ConfigError(list(dict.fromkeys(self._problems)))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What every service's gRPC server needs: where to listen and how to behave."""

    name: str
    host: str
    port: int
    metrics_port: int | None
    shutdown_grace_s: float
    max_message_bytes: int
    log_level: str
    otlp_endpoint: str | None
    # The share of requests traced where they enter the suite (services/common/telemetry.py).
    trace_ratio: float = 1.0


def read_server_config(
    env: EnvReader,
    name: str,
    *,
    default_port: int,
    max_message_bytes: int = 4 * 1024 * 1024,
) -> ServerConfig:
    """Reads the shared server settings of one service from `SPARK_<NAME>_*` variables."""
    prefix = f"SPARK_{name.upper()}_"
    metrics_port = env.integer(prefix + "METRICS_PORT", -1, minimum=-1, maximum=65535)
    return ServerConfig(
        name=name,
        host=env.text(prefix + "HOST", "127.0.0.1"),
        port=env.integer(prefix + "PORT", default_port, minimum=0, maximum=65535),
        metrics_port=None if metrics_port < 0 else metrics_port,
        shutdown_grace_s=env.number("SPARK_SHUTDOWN_GRACE_S", 5.0),
        max_message_bytes=max_message_bytes,
        log_level=env.choice("SPARK_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        otlp_endpoint=env.optional_text("OTEL_EXPORTER_OTLP_ENDPOINT"),
        trace_ratio=read_trace_ratio(env),
    )


# OpenTelemetry's standard sampler names. Every one is applied parent-based: a request is traced across every
# hop or at none, as the hop where it entered the suite decided.
TRACE_SAMPLERS = {
    "parentbased_traceidratio": None,
    "traceidratio": None,
    "parentbased_always_on": 1.0,
    "always_on": 1.0,
    "parentbased_always_off": 0.0,
    "always_off": 0.0,
}
# One request in a hundred: at this host's 3,000 req/s, 30 traces a second; every request costs half the throughput.
DEFAULT_TRACE_RATIO = 0.01


def read_trace_ratio(env: EnvReader) -> float:
    """The share of requests to trace from `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (the default:
    `parentbased_traceidratio` at 0.01, one request in a hundred)."""
    sampler = env.choice("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", tuple(TRACE_SAMPLERS))
    fixed = TRACE_SAMPLERS.get(sampler)
    ratio = env.number("OTEL_TRACES_SAMPLER_ARG", DEFAULT_TRACE_RATIO)
    if not 0.0 <= ratio <= 1.0:
        env.problem(f"OTEL_TRACES_SAMPLER_ARG is a ratio from 0 to 1, not {ratio:g}")
        ratio = DEFAULT_TRACE_RATIO
    return fixed if fixed is not None else ratio
