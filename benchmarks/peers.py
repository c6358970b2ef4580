"""Peer LLM gateways to measure next to ours: the LiteLLM proxy and the Portkey AI gateway, run locally.

Each peer is installed on first use into `.cache/peers/<name>` (LiteLLM into a virtualenv of its own,
never the project's, whose dependencies it would fight; Portkey with npm), started on 127.0.0.1 and a
free port in front of an OpenAI-compatible provider (in the benchmarks, `tests.fakes.providers`), and
stopped by PID:

    with FakeProviderThread() as fake, running_litellm(fake.openai_base_url) as peer:
        measure_chat(f"{peer.base_url}/chat/completions", headers=peer.headers, ...)

When a peer cannot be installed here (no network, no Node.js, ...) `ensure_*` raises `PeerUnavailable`,
whose message a benchmark prints as "not measured: <reason>".
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import quote, urlsplit

from benchmarks.chat_load import MODEL, chat_body
from benchmarks.harness import HOST, BenchError, descendants
from tests.support.ports import free_ports
from tests.support.processes import terminate

logger = logging.getLogger(__name__)

PEERS_DIR: Final = Path(__file__).resolve().parent.parent / ".cache" / "peers"
DUMMY_KEY: Final = "dummy"
LITELLM_REQUIREMENT: Final = "litellm[proxy]"
PORTKEY_PACKAGE: Final = "@portkey-ai/gateway"

LITELLM_INSTALL_TIMEOUT_S: Final = 900.0
PORTKEY_INSTALL_TIMEOUT_S: Final = 300.0
# Seconds pip waits on one stalled socket before it gives up (its own default is 15, raised by PIP_DEFAULT_TIMEOUT).
PIP_SOCKET_TIMEOUT_S: Final = 60
# LiteLLM imports a few hundred modules before it listens: tens of seconds on a busy 2-core host.
STARTUP_TIMEOUT_S: Final = 180.0
STOP_TIMEOUT_S: Final = 10.0
_START_ATTEMPTS: Final = 3
_PROBE_TIMEOUT_S: Final = 10.0
# Written last by ensure_litellm, so an interrupted install is redone instead of half-used.
_INSTALLED_MARKER: Final = ".installed"
_MIN_NODE_MAJOR: Final = 18
# Whatever in the caller's environment could change what a peer does or where it sends requests.
_SCRUBBED_ENV_PREFIXES: Final = (
    "OPENAI_", "LITELLM_", "PORTKEY_", "DATABASE_", "REDIS_", "OTEL_", "SPARK_", "JSON_LOGS", "NODE_OPTIONS",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)  # fmt: skip

# Portkey's start-server.js takes `--port=` but no host and listens on every interface; this module,
# loaded by `node --import` before it, makes a listen() without a host bind 127.0.0.1 instead.
_NODE_LOOPBACK_SHIM: Final = (
    'import net from "node:net";'
    "const listen = net.Server.prototype.listen;"
    "net.Server.prototype.listen = function (port, host, ...rest) {"
    f'  return listen.call(this, port, typeof port === "number" && host === undefined ? "{HOST}" : host, ...rest);'
    "};"
)


class PeerUnavailable(BenchError):
    """A peer cannot be installed or run on this machine; the message says why."""


@dataclass(frozen=True, slots=True)
class Peer:
    """A running peer: for a gateway, POST `{base_url}/chat/completions` with `headers` reaches the provider."""

    name: str
    version: str
    # The one process that serves the requests (no workers): sample it with harness.rss_bytes / cpu_seconds.
    pid: int
    base_url: str
    # Extra request headers a client must send (the peer's auth and routing).
    headers: Mapping[str, str]
    # Removed with its temporary directory when the peer stops.
    log_path: Path


@dataclass(frozen=True, slots=True)
class PortkeyCommand:
    """How to start the installed Portkey gateway: `argv` plus `--port=N`."""

    argv: tuple[str, ...]
    version: str

    def for_port(self, port: int) -> list[str]:
        return [*self.argv, f"--port={port}"]


# --- installing -------------------------------------------------------------------------------------


def _install(argv: Sequence[str], *, what: str, timeout_s: float) -> None:
    """Runs one install step; any failure, including a timeout, makes the peer unavailable."""
    started = time.monotonic()
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        raise PeerUnavailable(f"{what} did not finish in {timeout_s:g} s") from error
    except OSError as error:
        raise PeerUnavailable(f"{what} could not run: {error}") from error
    if completed.returncode != 0:
        raise PeerUnavailable(f"{what} failed ({completed.returncode}):\n{_tail(completed.stdout + completed.stderr)}")
    logger.info("%s took %.0f s", what, time.monotonic() - started)


def litellm_version(venv: Path) -> str | None:
    """The installed litellm's version, from its dist-info directory name; None if it is not installed."""
    found = sorted(venv.glob("lib/python*/site-packages/litellm-*.dist-info"))
    return found[0].name.removeprefix("litellm-").removesuffix(".dist-info") if found else None


def ensure_litellm(venv: Path = PEERS_DIR / "litellm", *, timeout_s: float = LITELLM_INSTALL_TIMEOUT_S) -> Path:
    """The `litellm` executable of its own virtualenv, created and filled with `litellm[proxy]` if needed."""
    executable = venv / "bin" / "litellm"
    if (venv / _INSTALLED_MARKER).is_file() and executable.is_file():
        return executable
    logger.info("installing %s into %s (a minute or two)", LITELLM_REQUIREMENT, venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _install([sys.executable, "-m", "venv", "--clear", str(venv)], what="python -m venv", timeout_s=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    _install(
        [*pip, "--timeout", str(PIP_SOCKET_TIMEOUT_S), LITELLM_REQUIREMENT],
        what=f"pip install {LITELLM_REQUIREMENT}",
        timeout_s=timeout_s,
    )
    if not executable.is_file():
        raise PeerUnavailable(f"{LITELLM_REQUIREMENT} installed no {executable}")
    (venv / _INSTALLED_MARKER).write_text(f"{litellm_version(venv)}\n")
    return executable


def _node_major(node: str) -> int | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
        return int(version.strip().removeprefix("v").split(".")[0])
    return None


def portkey_start_script(package_json: Mapping[str, Any]) -> str:
    """The package's Node server script: package.json's `bin`, a path or a one-entry map of command name to path."""
    bin_field = package_json.get("bin")
    if isinstance(bin_field, str):
        return bin_field
    if isinstance(bin_field, dict) and len(bin_field) == 1:
        return str(next(iter(bin_field.values())))
    raise PeerUnavailable(f"{PORTKEY_PACKAGE}'s package.json has no bin to start the server")


def portkey_command(node: str, package_dir: Path) -> PortkeyCommand:
    """node, the loopback shim, the installed start script and `--headless` (no web console, no log stream)."""
    package_json = json.loads((package_dir / "package.json").read_text())
    script = package_dir / portkey_start_script(package_json)
    if not script.is_file():
        raise PeerUnavailable(f"{PORTKEY_PACKAGE} is installed but {script} is missing")
    shim = "data:text/javascript," + quote(_NODE_LOOPBACK_SHIM)
    return PortkeyCommand((node, f"--import={shim}", str(script), "--headless"), str(package_json.get("version")))


def ensure_portkey(
    prefix: Path = PEERS_DIR / "portkey", *, timeout_s: float = PORTKEY_INSTALL_TIMEOUT_S
) -> PortkeyCommand:
    """How to start the Portkey gateway, after `npm i @portkey-ai/gateway` into `prefix` if it is not there."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PeerUnavailable("Node.js (node and npm) is not on PATH")
    major = _node_major(node)
    if major is None or major < _MIN_NODE_MAJOR:
        raise PeerUnavailable(f"{PORTKEY_PACKAGE} needs Node.js >= {_MIN_NODE_MAJOR}; {node} is {major or 'unknown'}")
    package_dir = prefix / "node_modules" / PORTKEY_PACKAGE
    if not (package_dir / "package.json").is_file():
        logger.info("installing %s into %s", PORTKEY_PACKAGE, prefix)
        prefix.mkdir(parents=True, exist_ok=True)
        _install(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", PORTKEY_PACKAGE],
            what=f"npm install {PORTKEY_PACKAGE}",
            timeout_s=timeout_s,
        )
    return portkey_command(node, package_dir)


# --- configuring --------------------------------------------------------------------------------------


def litellm_config(openai_base_url: str, master_key: str, model: str = MODEL) -> dict[str, Any]:
    """The proxy's config.yaml: `model` goes to the OpenAI-compatible `openai_base_url` with a dummy key.

    Clients authenticate with `master_key`: recent releases refuse to start without one, and it is
    how the proxy is deployed anyway, so the key check is part of what is measured.
    """
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"openai/{model}", "api_base": openai_base_url, "api_key": DUMMY_KEY},
            }
        ],
        # telemetry is a no-op in recent releases; litellm sets each of these on its module, known or not.
        "litellm_settings": {"telemetry": False, "set_verbose": False, "suppress_debug_info": True},
        "general_settings": {"master_key": master_key},
    }


def render_litellm_config(openai_base_url: str, master_key: str, model: str = MODEL) -> str:
    """litellm_config as config.yaml text: JSON, which every YAML parser reads, so no YAML writer is needed."""
    return json.dumps(litellm_config(openai_base_url, master_key, model), indent=2) + "\n"


def litellm_argv(executable: Path, config_path: Path, port: int) -> list[str]:
    """One uvicorn worker in the proxy's own process, on 127.0.0.1."""
    return [str(executable), "--config", str(config_path), "--host", HOST, "--port", str(port), "--num_workers", "1"]


def litellm_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` minus what could redirect or slow the proxy, plus quiet logs and the bundled model cost map."""
    env = peer_env(base)
    # ERROR also turns off uvicorn's per-request access log, which would otherwise be part of what is measured.
    env["LITELLM_LOG"] = "ERROR"
    # The remote map is fetched from GitHub at start-up, with retries: seconds lost where GitHub is unreachable.
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def portkey_headers(openai_base_url: str) -> dict[str, str]:
    """Portkey's per-request routing: the OpenAI provider at a custom host (its URL includes /v1), a dummy key."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": openai_base_url,
        "Authorization": f"Bearer {DUMMY_KEY}",
    }


def portkey_env(base: Mapping[str, str]) -> dict[str, str]:
    env = peer_env(base)
    env["NODE_ENV"] = "production"
    return env


def peer_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` without provider keys, gateway settings, telemetry exporters or HTTP proxies."""
    env = {name: value for name, value in base.items() if not name.startswith(_SCRUBBED_ENV_PREFIXES)}
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    return env


# --- running ------------------------------------------------------------------------------------------


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _log_tail(path: Path) -> str:
    try:
        return _tail(path.read_text(errors="replace"))
    except OSError:
        return "(no log)"


def probe_completion(base_url: str, headers: Mapping[str, str], timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """None once `POST {base_url}/chat/completions` answers 200 with a message; otherwise what went wrong."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout_s)
    try:
        connection.request(
            "POST", f"{parts.path}/chat/completions", chat_body(), {**headers, "Content-Type": "application/json"}
        )
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        return repr(error)
    finally:
        connection.close()
    if response.status != 200:
        return f"HTTP {response.status}: {body[:300]!r}"
    try:
        json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError):
        return f"HTTP 200 without a chat completion: {body[:300]!r}"
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the peer and wait; then the same for any process it started that outlived it."""
    children = descendants(process.pid) if process.poll() is None else []
    terminate(process, STOP_TIMEOUT_S)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            if Path(f"/proc/{child}").exists():
                os.kill(child, signal.SIGKILL)


def _wait_ready(
    process: subprocess.Popen[bytes], base_url: str, probe: Callable[[str], str | None], log_path: Path, deadline: float
) -> bool:
    """True once `probe(base_url)` finds the peer working; False if the peer exited (e.g. its port was taken)."""
    problem: str | None = "not started"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        problem = probe(base_url)
        if problem is None:
            return True
        time.sleep(0.25)
    raise BenchError(f"{base_url} was not ready in time; last: {problem}\nlog tail:\n{_log_tail(log_path)}")


@contextlib.contextmanager
def running_peer(
    name: str,
    version: str,
    argv_for_port: Callable[[int], Sequence[str]],
    *,
    env: Mapping[str, str],
    work_dir: Path,
    headers: Mapping[str, str],
    startup_timeout_s: float,
    base_path: str = "/v1",
    probe: Callable[[str], str | None] | None = None,
) -> Iterator[Peer]:
    """Starts the peer on a free port until `probe` passes (a new port if it exits first), then stops it.

    `probe(base_url)` returns None once the peer works, or what is still wrong; by default it is a chat
    completion through a gateway. Its log is `work_dir/<name>.log`.
    """
    log_path = work_dir / f"{name}.log"
    ready = probe or (lambda base_url: probe_completion(base_url, headers))
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_ports(1)[0]
        base_url = f"http://{HOST}:{port}{base_path}"
        log: IO[bytes] = log_path.open("ab")
        try:
            process = subprocess.Popen(
                argv_for_port(port), env=dict(env), cwd=work_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        finally:
            log.close()
        try:
            started = time.monotonic()
            if _wait_ready(process, base_url, ready, log_path, started + startup_timeout_s):
                logger.info("%s %s ready at %s in %.1f s", name, version, base_url, time.monotonic() - started)
                yield Peer(name, version, process.pid, base_url, dict(headers), log_path)
                if process.poll() is not None:
                    raise BenchError(f"{name} exited during the run; log tail:\n{_log_tail(log_path)}")
                return
        finally:
            _stop(process)
        logger.warning("%s exited while starting (attempt %d of %d)", name, attempt, _START_ATTEMPTS)
    raise BenchError(f"{name} did not start; log tail:\n{_log_tail(log_path)}")


@contextlib.contextmanager
def running_litellm(openai_base_url: str, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[Peer]:
    """The LiteLLM proxy (one worker, no database, a fresh master key) with `gpt-4o-mini` at `openai_base_url`."""
    executable = ensure_litellm()
    master_key = f"sk-{secrets.token_hex(32)}"
    with tempfile.TemporaryDirectory(prefix="spark-peer-litellm-") as tmp:
        work_dir = Path(tmp)
        config_path = work_dir / "config.yaml"
        config_path.write_text(render_litellm_config(openai_base_url, master_key))
        with running_peer(
            "litellm",
            litellm_version(executable.parent.parent) or "unknown",
            lambda port: litellm_argv(executable, config_path, port),
            env=litellm_env(os.environ),
            work_dir=work_dir,
            headers={"Authorization": f"Bearer {master_key}"},
            startup_timeout_s=startup_timeout_s,
        ) as peer:
            yield peer


@contextlib.contextmanager
def running_portkey(openai_base_url: str, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[Peer]:
    """The Portkey gateway, headless, routing by headers (`peer.headers`) to the OpenAI API at `openai_base_url`."""
    command = ensure_portkey()
    with (
        tempfile.TemporaryDirectory(prefix="spark-peer-portkey-") as tmp,
        running_peer(
            "portkey",
            command.version,
            command.for_port,
            env=portkey_env(os.environ),
            work_dir=Path(tmp),
            headers=portkey_headers(openai_base_url),
            startup_timeout_s=startup_timeout_s,
        ) as peer,
    ):
        yield peer
