"""The shared bootstrap: error mapping for the unexpected, and a service process's lifecycle."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common.config import ServerConfig
from services.common.errors import MAX_MESSAGE_BYTES, FieldViolation, InvalidArgument
from services.common.server import start_server
from tests.support.ports import free_port
from tests.support.suite import ROOT

CONFIG = ServerConfig(
    name="test",
    host="127.0.0.1",
    port=0,
    metrics_port=None,
    shutdown_grace_s=1.0,
    max_message_bytes=1024,
    log_level="info",
    otlp_endpoint=None,
)


async def _failure_of(behavior: Callable[[bytes, Any], Awaitable[bytes]]) -> grpc.aio.AioRpcError:
    """Serves `behavior` as the one method of a server with the production interceptors, calls it over a
    channel with gRPC's default limits, and returns the error it answers with."""

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(behavior)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Failing", {"Go": handler}),))

    running = await start_server(CONFIG, ["test.Failing"], register)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary("/test.Failing/Go")(b"")
        return raised.value
    finally:
        await running.stop()


async def test_an_unexpected_exception_is_internal_and_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def explode(request: bytes, context: Any) -> bytes:
        raise RuntimeError("secret path /etc/db-password")

    with caplog.at_level(logging.ERROR):
        error = await _failure_of(explode)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"
    assert "secret" not in str(error.trailing_metadata())
    assert any("secret path" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_an_error_that_echoes_a_huge_input_reaches_a_default_client_as_itself() -> None:
    """The status travels in trailers, which a gRPC client with default limits refused past 16 KiB as
    RESOURCE_EXHAUSTED ("received metadata size exceeds hard limit"): a 400 that became a 429."""
    name = "f" * 200_000

    async def refuse(request: bytes, context: Any) -> bytes:
        raise InvalidArgument(
            f"{name}: is not a field", reason="UNKNOWN_FIELD", violations=(FieldViolation(name, "is not a field"),)
        )

    error = await _failure_of(refuse)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("ffff") and error.details().endswith("\u2026")
    assert len(error.details().encode()) <= MAX_MESSAGE_BYTES
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field.startswith("ffff")


def _run_kv(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_") and k != "REDIS_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.kv"],
        cwd=ROOT,
        env={**base, "SPARK_DATA_DIR": str(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = _run_kv(tmp_path, {"SPARK_KV_PORT": str(port), "SPARK_SHUTDOWN_GRACE_S": "1"})
    try:
        deadline = time.monotonic() + 20
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=max(0.1, deadline - time.monotonic()))
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    lines = output.splitlines()
    assert any('"msg":"ready on :' in line for line in lines), output
    assert any('"msg":"shutting down"' in line for line in lines), output
    assert lines[-1].endswith('"msg":"stopped"}'), output


def test_invalid_configuration_exits_2_and_lists_every_problem(tmp_path: Path) -> None:
    process = _run_kv(tmp_path, {"SPARK_KV_PORT": "-1", "SPARK_KV_MAX_KEY_BYTES": "big"})
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "SPARK_KV_PORT" in output
    assert "SPARK_KV_MAX_KEY_BYTES" in output
    assert "Traceback" not in output
