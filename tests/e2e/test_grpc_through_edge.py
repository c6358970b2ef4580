"""Native gRPC through the edge: grpcurl lists, describes and calls every service via reflection."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.suite import RunningSuite
from tests.support.tools import venv_tool

pytestmark = pytest.mark.e2e


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    command = [venv_tool("grpcurl"), "-plaintext", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_reflection_at_the_edge_lists_every_service(suite: RunningSuite) -> None:
    listed = grpcurl(suite.edge_address, "list")
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {"spark.kv.v1.KvService", "spark.meta.v1.MetaService", "grpc.health.v1.Health"} <= services
    described = grpcurl(suite.edge_address, "describe", "spark.kv.v1.KvService")
    assert described.returncode == 0, described.stderr
    assert "rpc SetEntry ( .spark.kv.v1.SetEntryRequest ) returns ( .spark.kv.v1.SetEntryResponse )" in described.stdout
    # The HTTP rules come with the descriptors: the Spark runtime's route and its /runtime/{app} twin.
    assert 'option (.google.api.http) = { get:"/_spark/kv/{key}" additional_bindings:<' in described.stdout
    assert 'get:"/runtime/{app}/kv/{key}"' in described.stdout
    message = grpcurl(suite.edge_address, "describe", "spark.meta.v1.GetHealthResponse")
    assert message.returncode == 0, message.stderr
    assert "repeated .spark.meta.v1.ServiceHealth services = 2;" in message.stdout


def test_grpcurl_calls_the_typed_api_through_the_edge(suite: RunningSuite) -> None:
    written = grpcurl(
        "-d",
        '{"collection": "ops", "key": "k", "value": "[1,2]"}',
        suite.edge_address,
        "spark.kv.v1.KvService/SetEntry",
    )
    assert written.returncode == 0, written.stderr
    stamp = json.loads(written.stdout)["versionstamp"]
    got = grpcurl("-d", '{"collection": "ops", "key": "k"}', suite.edge_address, "spark.kv.v1.KvService/GetEntry")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["entry"] == {"collection": "ops", "key": "k", "value": "[1,2]", "versionstamp": stamp}
    stale = grpcurl(
        "-d",
        json.dumps({"collection": "ops", "key": "k", "value": "3", "expected_versionstamp": "0" * 20}),
        suite.edge_address,
        "spark.kv.v1.KvService/SetEntry",
    )
    assert stale.returncode != 0
    assert "Code: Aborted" in stale.stderr
    assert "VERSIONSTAMP_MISMATCH" in stale.stderr
    missing = grpcurl("-d", '{"key": "absent"}', suite.edge_address, "spark.kv.v1.KvService/GetEntry")
    assert "Code: NotFound" in missing.stderr


def test_health_through_the_edge(suite: RunningSuite) -> None:
    health = grpcurl(suite.edge_address, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}
