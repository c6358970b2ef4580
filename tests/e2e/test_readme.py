"""README.md's examples as a test: every command of its `sh` blocks and its OpenAI SDK script, run in
order as a reader would run them, answers what the README says it answers.

Each `make run` line restarts the suite (the real launcher, services and Envoy, on free ports) with the
variables the line sets, on one data directory, as a reader stopping and restarting `make run` keeps
`./var`. A fake provider stands in for every provider. The commands are the README's own text with only
the edge's address rewritten (127.0.0.1:8080 → the test suite's edge); `curl` is Debian's (wrapped to
report the HTTP status on stderr), `grpcurl` the virtualenv's, and `cat.png` and `cat.jpg` are made in the
working directory. tests/support/readme.py reads the README and its convention for expected answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.access.policy import DEFAULT_LIMITS_PATH
from tests.fakes.providers import DEFAULT_REPLY, FakeProviderThread
from tests.support.readme import Command, commands, compact_json, matches
from tests.support.suite import ISOLATED_VARIABLES, ROOT, RunningSuite
from tests.support.tools import venv_tool

pytestmark = pytest.mark.e2e

README_ADDRESS = "127.0.0.1:8080"
COMMAND_TIMEOUT_S = 60.0
# A baseline JPEG, 8x8 grey: the smallest tables that encode one block whose coefficients are all zero.
JPEG = bytes.fromhex(
    "".join(
        (
            "ffd8",  # start of image
            "ffe000104a46494600010100000100010000",  # JFIF header
            "ffdb004300" + "01" * 64,  # quantization table 0, all ones
            "ffc0000b080008000801011100",  # 8-bit, 8x8, one component using table 0
            "ffc4001400" + "01" + "00" * 15 + "00",  # DC table: one code (0), for category 0
            "ffc4001410" + "01" + "00" * 15 + "00",  # AC table: one code (0), for end of block
            "ffda0008010100003f00",  # start of scan
            "3f",  # DC 0, end of block, padded with ones
            "ffd9",  # end of image
        )
    )
)
# Providers that speak OpenAI's protocol besides OpenAI; the fake answers for all of them.
OPENAI_COMPATIBLE_URLS = ("GITHUB_MODELS_BASE_URL", "OPENROUTER_BASE_URL", "BIGMODEL_BASE_URL")
CURL = """#!/bin/sh
# The README's curl, writing the HTTP status on stderr for tests/e2e/test_readme.py.
exec /usr/bin/curl --write-out '%{stderr}%{http_code}\\n' "$@"
"""


def _png(width: int = 8, height: int = 8) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x99\x33" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Reader:
    """A reader's terminal: a working directory with the images, shell variables kept between commands,
    curl and grpcurl on PATH, and the suite that `make run` started last."""

    def __init__(self, directory: Path, fake: FakeProviderThread) -> None:
        self.directory = directory
        self.fake = fake
        self.work = directory / "work"
        self.work.mkdir()
        (self.work / "cat.png").write_bytes(_png())
        (self.work / "cat.jpg").write_bytes(JPEG)
        tools = directory / "bin"
        tools.mkdir()
        (tools / "curl").write_text(CURL)
        (tools / "curl").chmod(0o755)
        (tools / "grpcurl").symlink_to(venv_tool("grpcurl"))
        self.state = directory / "variables.sh"
        self.state.write_text("")
        self.env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES and not k.startswith("SPARK_")}
        self.env["PATH"] = f"{tools}{os.pathsep}{self.env.get('PATH', '')}"
        self.suite: RunningSuite | None = None
        self.started = 0

    def close(self) -> None:
        if self.suite is not None:
            self.suite.stop()

    def run(self, command: Command) -> str | None:
        """Runs one README command; returns what differs from the README, or None."""
        if command.kind == "suite":
            self._restart(command.env)
            return None
        if command.kind == "tooling":
            return _tooling_problem(shlex.split(command.source))
        if self.suite is None:
            return "runs before any `make run` line"
        source = command.source.replace(README_ADDRESS, self.suite.edge_address)
        if command.kind == "python":
            done = self._execute([sys.executable, "-c", source])
            return _python_problem(command, done, DEFAULT_REPLY)
        if command.kind == "assignment":
            name = command.source.split("=", 1)[0]
            done = self._execute(["bash", "-c", f"source {self.state}\n{source}\ndeclare -p {name} >> {self.state}"])
            return None if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}"
        done = self._execute(["bash", "-c", f"source {self.state}\n{source}"])
        return _shell_problem(command, done, DEFAULT_REPLY)

    def _execute(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )

    def _restart(self, settings: dict[str, str]) -> None:
        self.close()
        self.suite = None
        self.started += 1
        env = {
            **settings,
            **self.fake.env(),
            **dict.fromkeys(OPENAI_COMPATIBLE_URLS, self.fake.openai_base_url),
            "SPARK_DATA_DIR": str(self.directory / "var"),
            # The shipped limits, as `make run` has them (RunningSuite's default is limits no test reaches).
            "SPARK_ACCESS_LIMITS": str(DEFAULT_LIMITS_PATH),
        }
        self.suite = RunningSuite.start(self.directory / f"suite-{self.started}", env)


def _tooling_problem(words: list[str]) -> str | None:
    """`make <target>`, `docker compose` and `cp <file>` are checked by their own tests; here, that the
    target or file exists."""
    if words[0] == "make":
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        return None if re.search(rf"^{re.escape(words[1])}:", makefile, re.MULTILINE) else "no such make target"
    path = ROOT / (words[1] if words[0] == "cp" else "docker-compose.yml")
    return None if path.exists() else f"no {path.relative_to(ROOT)}"


def _shell_problem(command: Command, done: subprocess.CompletedProcess[str], answer: str) -> str | None:
    expected = command.expectation
    assert expected is not None
    if command.tool == "curl":
        statuses = re.findall(r"^(\d{3})$", done.stderr, re.MULTILINE)
        status: int | str = int(statuses[-1]) if statuses else f"no status (exit {done.returncode})"
        stderr = re.sub(r"^\d{3}\n", "", done.stderr, flags=re.MULTILINE).strip()
        wanted: int | str = expected.status or 200
        body = done.stdout
        message = _json_message(body)
    else:
        code = re.search(r"^\s*Code: (\w+)$", done.stderr, re.MULTILINE)
        status = code[1] if code else "OK" if done.returncode == 0 else f"exit {done.returncode}"
        wanted = expected.status or "OK"
        body = compact_json(done.stdout)
        found = re.search(r"^\s*Message: (.*)$", done.stderr, re.MULTILINE)
        message = found[1] if found else None
        stderr = done.stderr.strip()
    problems = []
    if status != wanted:
        problems.append(f"status {status}, not {wanted}")
    if expected.message is not None and (message is None or not matches(expected.message, message, answer)):
        problems.append(f"message {message!r}, not {expected.message!r}")
    if expected.body is not None and not matches(expected.body, body, answer):
        problems.append(f"answer {body!r}, not {expected.body!r}")
    if problems:
        return "; ".join(problems) + (f"\n  stderr: {stderr}" if stderr else "")
    return None


def _json_message(body: str) -> str | None:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None


def _python_problem(command: Command, done: subprocess.CompletedProcess[str], answer: str) -> str | None:
    expected = command.expectation
    assert expected is not None and expected.body is not None
    if done.returncode != 0:
        return f"exit {done.returncode}: {done.stderr}"
    return None if matches(expected.body, done.stdout, answer) else f"printed {done.stdout!r}, not {expected.body!r}"


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    with FakeProviderThread() as fake:
        reader = Reader(tmp_path, fake)
        try:
            yield reader
        finally:
            reader.close()


def test_every_readme_command_answers_what_the_readme_says(reader: Reader) -> None:
    failures: list[str] = []
    for command in commands((ROOT / "README.md").read_text(encoding="utf-8")):
        problem = reader.run(command)
        if problem is not None:
            failures.append(f"README.md:{command.line}: {command.source}\n  {problem}")
    if failures and reader.suite is not None:
        sys.stderr.write(reader.suite.logs())
    assert not failures, "\n".join(failures)
