"""The rendered Envoy config is shaped as the contract needs (tests/checks/test_envoy_validate.py runs Envoy on it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from spark.access.v1 import access_pb2
from spark.kv.v1 import kv_pb2
from spark.llm.v1 import llm_pb2
from spark.meta.v1 import meta_pb2
from spark.prompts.v1 import prompts_pb2
from spark.vision.v1 import vision_pb2

from edge.envoy import (
    HEAD_AS_GET,
    HEAD_AS_GET_LUA,
    JSON_CHECK_LUA,
    JSON_STRING_LUA,
    LONG_TRANSCODER_ERROR,
    LUA,
    RBAC,
    error_type,
)
from edge.routes import DIRECT_REPLIES, HTTP_ROUTES, TRANSCODED_SERVICES
from edge.settings import read_settings
from services.access.gate import API_KEY_OR_ADMIN_TOKEN_REQUIRED
from services.access.internal import INTERNAL_HEADERS
from services.access.methods import method_policies
from services.access.policy import DEFAULT_LIMITS_PATH, PolicyError, load_limits
from services.common.config import ConfigError
from services.common.descriptors import default_descriptor_path, load_pool
from services.common.identity import CLIENT_ADDRESS_HEADER, INTERNAL_HEADER
from tests.support.edge_config import BASE_ENV, EVERYTHING, rendered
from tests.support.tls import self_signed
from tools.openapi import edge_route


def _manager(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    return dict(listener["filter_chains"][0]["filters"][0]["typed_config"])


def _routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in _manager(config)["route_config"]["virtual_hosts"][0]["routes"]}


def test_kv_routes_take_the_kv_body_limit_and_others_the_default() -> None:
    config = rendered({**BASE_ENV, "SPARK_KV_MAX_VALUE_BYTES": "12345", "SPARK_EDGE_MAX_BODY_BYTES": "999"})
    routes = _routes(config)
    transcoder = "envoy.filters.http.grpc_json_transcoder"
    assert routes["spark-kv"]["typed_per_filter_config"][transcoder]["max_request_body_size"] == 12345
    assert routes["spark-db"]["typed_per_filter_config"][transcoder]["max_request_body_size"] == 999
    assert routes["healthz"]["typed_per_filter_config"][transcoder]["max_request_body_size"] == 999


def test_the_restore_route_takes_what_the_prompts_service_takes_and_waits_for_its_answer() -> None:
    transcoder = "envoy.filters.http.grpc_json_transcoder"
    with_prompts = {"SPARK_EDGE_UPSTREAMS": BASE_ENV["SPARK_EDGE_UPSTREAMS"] + ",prompts=127.0.0.1:50053"}
    default = _routes(rendered(with_prompts))["admin-restore"]
    assert default["typed_per_filter_config"][transcoder]["max_request_body_size"] == 32 * 1024 * 1024
    assert default["route"]["timeout"] == "75s"
    env = {**with_prompts, "SPARK_PROMPTS_RESTORE_MAX_BYTES": "4096", "SPARK_PROMPTS_RESTORE_TIMEOUT_S": "7"}
    route = _routes(rendered(env))["admin-restore"]
    assert route["typed_per_filter_config"][transcoder]["max_request_body_size"] == 4096
    # The service's time limit plus a margin, also between bytes: a restore sends nothing until it answers.
    assert route["route"]["timeout"] == route["route"]["idle_timeout"] == "22s"


def test_hardening_settings() -> None:
    manager = _manager(rendered(BASE_ENV))
    assert manager["use_remote_address"] is True
    assert manager["normalize_path"] is True
    assert manager["merge_slashes"] is True
    assert manager["path_with_escaped_slashes_action"] == "KEEP_UNCHANGED"
    assert manager["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
    transcoder = next(f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.grpc_json_transcoder")
    options = transcoder["typed_config"]
    assert options["convert_grpc_status"] is True
    assert options["request_validation_options"]["reject_unknown_query_parameters"] is True
    assert [f["name"] for f in manager["http_filters"]] == [
        "envoy.filters.http.cors",
        "envoy.filters.http.header_mutation",
        "spark.head_as_get",
        "envoy.filters.http.buffer",
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.router",
    ]


def test_only_configured_services_get_routes() -> None:
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": "meta=127.0.0.1:50050,access=127.0.0.1:50055"}))
    assert "healthz" in routes
    assert "spark-kv" not in routes
    assert not [name for name in routes if name.startswith("grpc-spark.kv")]


def test_no_tracing_without_an_endpoint_and_tracing_with_one() -> None:
    assert "tracing" not in _manager(rendered(BASE_ENV))
    traced = rendered({**BASE_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert _manager(traced)["tracing"]["provider"]["name"] == "envoy.tracers.opentelemetry"
    assert "otlp_collector" in [c["name"] for c in traced["static_resources"]["clusters"]]


def test_the_edge_decides_nothing_about_callers_and_never_passes_on_a_clients_internal_headers() -> None:
    """Each service checks its callers (services/access/checkpoint.py): no ext_authz or rate-limit filter. A client
    cannot speak for the suite, on any route; the edge does, with the internal token, when it has one."""
    names = {f["name"] for f in _manager(rendered(BASE_ENV))["http_filters"]}
    assert not {"envoy.filters.http.ext_authz", "envoy.filters.http.ratelimit"} & names
    host = _manager(rendered(BASE_ENV))["route_config"]["virtual_hosts"][0]
    assert set(host["request_headers_to_remove"]) == set(INTERNAL_HEADERS)
    assert "request_headers_to_add" not in host
    token = "t" * 64
    added = _manager(rendered({**BASE_ENV, "SPARK_INTERNAL_TOKEN": token}))["route_config"]["virtual_hosts"][0]
    headers = {h["header"]["key"]: h["header"]["value"] for h in added["request_headers_to_add"]}
    assert headers == {INTERNAL_HEADER: token, CLIENT_ADDRESS_HEADER: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}
    assert {h["append_action"] for h in added["request_headers_to_add"]} == {"OVERWRITE_IF_EXISTS_OR_ADD"}
    assert token not in repr(read_settings(default_descriptor_path(), {**BASE_ENV, "SPARK_INTERNAL_TOKEN": token}))
    with pytest.raises(ConfigError, match="SPARK_INTERNAL_TOKEN must be at least 32 characters"):
        read_settings(default_descriptor_path(), {**BASE_ENV, "SPARK_INTERNAL_TOKEN": "short"})


def test_in_keys_mode_a_request_without_any_credential_stops_at_the_edge_but_on_public_routes() -> None:
    """Before its body is buffered and before any Python process sees it; the services check the rest."""
    keys = {"SPARK_EDGE_UPSTREAMS": EVERYTHING, "SPARK_ACCESS_MODE": "keys"}
    manager = _manager(rendered(keys))
    names = [f["name"] for f in manager["http_filters"]]
    assert names.index(RBAC) == names.index("envoy.filters.http.header_mutation") + 1
    assert names.index(RBAC) < names.index("envoy.filters.http.buffer")
    rbac = next(f for f in manager["http_filters"] if f["name"] == RBAC)["typed_config"]["rules"]
    per_route = _routes(rendered(keys))["spark-kv"]["typed_per_filter_config"][RBAC]
    assert per_route["disabled"] is False and per_route["config"]["rbac"]["rules"] == rbac
    (policy,) = rbac["policies"].values()
    assert rbac["action"] == "ALLOW" and policy["permissions"] == [{"any": True}]
    # A sign-in session's cookie is a credential too (the service checks it is one).
    credentials = {p["header"]["name"] for p in policy["principals"]}
    assert credentials == {"authorization", "x-api-key", "x-admin-token", "cookie"}
    rbac_filter = next(f for f in manager["http_filters"] if f["name"] == RBAC)
    assert rbac_filter["disabled"] is True, "on per route: a path no route serves stays a 404"
    open_routes = {
        name.removesuffix("-head")
        for name, route in _routes(rendered(keys)).items()
        if RBAC not in route.get("typed_per_filter_config", {})
    }
    assert open_routes == {
        "healthz",
        "about",
        "grpc-unknown",
        "grpc-spark.meta.v1.MetaService",
        "grpc-grpc.reflection.v1alpha.ServerReflection",
        "grpc-grpc.reflection.v1.ServerReflection",
        "grpc-grpc.health.v1.Health",
        "spark-kv-empty-key",
        "runtime-kv-empty-key",
        "runtime-invalid-app",
        "openai-responses",
        "app-status",
        "spark-auth",
    }
    mappers = manager["local_reply_config"]["mappers"]
    # One in each error shape (the API routes' picked by path), all with the services' words.
    refusals = [m for m in mappers if m.get("status_code") == 401]
    assert len(refusals) == 3
    assert {m["body"]["inline_string"] for m in refusals} == {API_KEY_OR_ADMIN_TOKEN_REQUIRED}
    for environ in ({}, {"SPARK_ACCESS_MODE": "keys", "SPARK_ACCESS_CHECKS": "off"}):
        assert RBAC not in [f["name"] for f in _manager(rendered({**BASE_ENV, **environ}))["http_filters"]]
    assert RBAC in [
        f["name"] for f in _manager(rendered({**BASE_ENV, "REDIS_URL": "redis://r:6379/0"}))["http_filters"]
    ]


def test_every_method_behind_the_edge_declares_its_policy_in_its_proto() -> None:
    # The services' own stubs, as each service imports them.
    modules = (access_pb2, kv_pb2, llm_pb2, meta_pb2, prompts_pb2, vision_pb2)
    policies = method_policies(TRANSCODED_SERVICES)
    assert len(policies) == sum(len(s.methods) for m in modules for s in m.DESCRIPTOR.services_by_name.values())
    limits = load_limits(DEFAULT_LIMITS_PATH)
    assert {p.route_class for p in policies.values()} <= set(limits.classes)
    # Signing in, and a page load (OpenPage answers the page or the way to sign in), need no credential.
    sign_in = {"StartSignIn", "FinishSignIn", "SignOut", "OpenPage"}
    assert {p.short_name for p in policies.values() if p.public} == {"GetHealth", "GetAbout", *sign_in}
    assert {p.short_name for p in policies.values() if p.admin} == {
        "CreateApiKey",
        "ListApiKeys",
        "RevokeApiKey",
        "GetPolicy",
        "GetUsage",
        "CreatePrompt",
        "UpdatePrompt",
        "DeletePrompt",
        "SetDefaultPrompt",
        "ExportPrompts",
        "ListBackups",
        "RestorePrompts",
        "GetCleanupRule",
        "UpdateCleanupRule",
        "ListSessions",
        "RevokeSessions",
    }


def test_a_method_without_a_policy_stops_the_service_from_starting() -> None:
    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="x/v1/x.proto", package="x.v1")
    file.message_type.add(name="Empty")
    file.service.add(name="X").method.add(name="Open", input_type=".x.v1.Empty", output_type=".x.v1.Empty")
    pool.Add(file)
    with pytest.raises(PolicyError, match=r"/x\.v1\.X/Open declares no \(spark\.policy\.v1\.policy\) option"):
        method_policies(["x.v1.X"], pool)


def test_tls_renders_a_tls_listener_and_hsts(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = rendered({**BASE_ENV, "SPARK_EDGE_TLS_CERT": str(cert), "SPARK_EDGE_TLS_KEY": str(key)})
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    tls = chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["tls_certificates"][0]["certificate_chain"]["filename"] == str(cert)
    assert tls["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_2"
    added = {m["append"]["header"]["key"] for m in _mutations(config) if "append" in m}
    assert "strict-transport-security" in added
    plain = {m["append"]["header"]["key"] for m in _mutations(rendered(BASE_ENV)) if "append" in m}
    assert "strict-transport-security" not in plain
    assert "transport_socket" not in rendered(BASE_ENV)["static_resources"]["listeners"][0]["filter_chains"][0]


def _mutations(config: dict[str, Any]) -> list[dict[str, Any]]:
    mutation = next(f for f in _manager(config)["http_filters"] if f["name"] == "envoy.filters.http.header_mutation")
    return list(mutation["typed_config"]["mutations"]["response_mutations"])


def test_tls_needs_both_files_and_they_must_exist(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ConfigError, match="go together"):
        read_settings(default_descriptor_path(), {**BASE_ENV, "SPARK_EDGE_TLS_CERT": str(cert)})
    with pytest.raises(ConfigError, match="is not a file"):
        read_settings(
            default_descriptor_path(),
            {**BASE_ENV, "SPARK_EDGE_TLS_CERT": str(cert), "SPARK_EDGE_TLS_KEY": str(tmp_path / "missing.key")},
        )


def test_the_stats_listener_routes_only_prometheus_text_to_the_admin_api() -> None:
    config = rendered({**BASE_ENV, "SPARK_EDGE_STATS_PORT": "9466", "SPARK_EDGE_ADMIN_HOST": "127.0.0.1"})
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    assert listeners["stats"]["address"]["socket_address"]["port_value"] == 9466
    manager = listeners["stats"]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"] for r in routes] == [{"path": "/stats/prometheus"}, {"prefix": "/"}]
    assert routes[0]["route"]["cluster"] == "envoy_admin" and routes[1]["direct_response"]["status"] == 404
    assert "stats" not in {listener["name"] for listener in rendered(BASE_ENV)["static_resources"]["listeners"]}


def test_routes_that_buffer_the_body_in_lua_raise_the_buffer_limit_with_the_current_field() -> None:
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING, "SPARK_EDGE_MAX_LLM_BODY_BYTES": "5000000"}))
    assert routes["llm-chat"]["request_body_buffer_limit"] == 5_000_000
    # The JSON check reads a body the buffer filter before it has taken whole (or refused with 413).
    buffer = routes["spark-loaded"]["typed_per_filter_config"]["envoy.filters.http.buffer"]
    assert buffer["config"]["buffer"]["max_request_bytes"] == 1024 * 1024
    assert "request_body_buffer_limit" not in routes["spark-loaded"]
    assert not [name for name, route in routes.items() if "per_request_buffer_limit_bytes" in route]


def test_every_http_route_has_a_head_twin_before_it_that_answers_as_get() -> None:
    config = rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING})
    order = [r["name"] for r in _manager(config)["route_config"]["virtual_hosts"][0]["routes"]]
    routes = _routes(config)
    head_lua = next(f for f in _manager(config)["http_filters"] if f["name"] == HEAD_AS_GET)
    # The GET route found again after a header change would answer HEAD with a body.
    assert head_lua["disabled"] is True and head_lua["typed_config"]["clear_route_cache"] is False
    for route in HTTP_ROUTES:
        twin = routes[f"{route.name}-head"]
        assert order.index(twin["name"]) < order.index(route.name)
        assert twin["match"] == {**route.match, "headers": [{"name": ":method", "string_match": {"exact": "HEAD"}}]}
        assert twin["route"] == routes[route.name]["route"]
        lua = twin["typed_per_filter_config"][HEAD_AS_GET]
        assert lua["disabled"] is False and lua["config"]["source_code"]["inline_string"] == HEAD_AS_GET_LUA
        assert HEAD_AS_GET not in routes[route.name]["typed_per_filter_config"]


def test_vary_origin_is_added_where_cors_makes_answers_depend_on_origin() -> None:
    def varies(config: dict[str, Any]) -> bool:
        return any(m.get("append", {}).get("header") == {"key": "vary", "value": "Origin"} for m in _mutations(config))

    assert varies(rendered({**BASE_ENV, "ALLOWED_ORIGINS": "https://app.example"}))
    assert not varies(rendered(BASE_ENV))


def test_the_transcoders_own_errors_do_not_repeat_a_long_request() -> None:
    mappers = _manager(rendered(BASE_ENV))["local_reply_config"]["mappers"]
    unrepeated = [m for m in mappers if "too long to repeat" in m.get("body", {}).get("inline_string", "")]
    statuses = []
    for mapper in unrepeated:
        # In the suite's shape, and before that in each API's on its routes' paths.
        status, cel, *on_path = mapper["filter"]["and_filter"]["filters"]
        statuses.append(status["status_code_filter"]["comparison"]["value"]["default_value"])
        assert cel["extension_filter"]["typed_config"]["expression"] == LONG_TRANSCODER_ERROR
        if not on_path:
            assert mapper["body_format_override"]["json_format"]["code"] == {400: 3, 404: 5}[statuses[-1]]
    assert statuses == [400, 404] * 3
    # Before the mappers that would write %LOCAL_REPLY_BODY% for these statuses.
    first_plain = next(
        i
        for i, m in enumerate(mappers)
        if m["filter"].get("status_code_filter", {}).get("comparison", {}).get("op") == "EQ"
    )
    assert max(mappers.index(m) for m in unrepeated) < first_plain


def _json_body_paths() -> set[str]:
    """The path templates of the HTTP rules whose body the transcoder reads as JSON into a message."""
    pool, _ = load_pool(default_descriptor_path())
    paths = set()
    for name in TRANSCODED_SERVICES:
        service = pool.FindServiceByName(name)
        proto = descriptor_pb2.ServiceDescriptorProto()
        service.CopyToProto(proto)
        for method in proto.method:
            rule = method.options.Extensions[annotations_pb2.http]
            for binding in (rule, *rule.additional_bindings):
                if not binding.body:
                    continue
                request = service.methods_by_name[method.name].input_type
                target = request if binding.body == "*" else request.fields_by_name[binding.body].message_type
                if target is None or target.full_name != "google.api.HttpBody":
                    paths.add(getattr(binding, binding.WhichOneof("pattern")))
    return paths


def test_every_json_body_the_transcoder_reads_is_checked_at_the_edge() -> None:
    """The transcoder's parser takes `{'a':1,}` and an empty body; only the edge's check refuses them."""
    paths = _json_body_paths()
    assert {"/_spark/loaded", "/v1/prompts", "/admin/regex_cleanup", "/admin/keys"} <= paths
    checked = {route.name for route in HTTP_ROUTES if route.json_body is not None}
    assert {edge_route(path).name for path in paths} == checked
    assert edge_route("/_spark/loaded").json_body == "required"
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING}))
    for name in checked:
        source = routes[name]["typed_per_filter_config"][LUA]["config"]["source_code"]["inline_string"]
        assert "is_json" in source, name


def _lua(route: dict[str, Any]) -> str:
    return str(route["typed_per_filter_config"][LUA]["config"]["source_code"]["inline_string"])


def test_the_openai_and_anthropic_routes_answer_errors_in_their_apis_shape() -> None:
    formats = {route.name: route.error_format for route in (*HTTP_ROUTES, *DIRECT_REPLIES)}
    assert {name for name, shape in formats.items() if shape == "openai"} == {
        "llm-chat",
        "llm-chat-stream",
        "llm-embeddings",
        "llm-models",
        "openai-responses",
    }
    assert {name for name, shape in formats.items() if shape == "anthropic"} == {"llm-messages", "llm-messages-stream"}
    # The Spark runtime's route and the suite's own LLM routes keep the suite's shape.
    assert formats["spark-llm"] == formats["llm-usage"] == formats["llm-providers"] == "suite"
    assert formats["prompts"] == formats["spark-kv"] == "suite"


def test_the_messages_routes_are_served_as_chat_is() -> None:
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING, "SPARK_EDGE_MAX_LLM_BODY_BYTES": "5000000"}))
    transcoder = "envoy.filters.http.grpc_json_transcoder"
    for unary, stream, stream_path in (
        ("llm-chat", "llm-chat-stream", "/v1/chat/completions:stream"),
        ("llm-messages", "llm-messages-stream", "/v1/messages:stream"),
    ):
        assert routes[unary]["route"]["timeout"] == "600s"
        assert routes[unary]["request_body_buffer_limit"] == 5_000_000
        assert f'replace(":path", "{stream_path}")' in _lua(routes[unary])
        assert routes[stream]["match"] == {"path": stream_path}
        assert (routes[stream]["route"]["timeout"], routes[stream]["route"]["idle_timeout"]) == ("0s", "0s")
        for name in (unary, stream):
            assert routes[name]["typed_per_filter_config"][transcoder]["max_request_body_size"] == 5_000_000
    assert routes["llm-messages"]["match"] == {"path": "/v1/messages"}


def test_the_routes_lua_reshapes_errors_only_where_the_api_has_its_own_shape() -> None:
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING}))
    shapes = {route.name: route.error_format for route in HTTP_ROUTES}
    for name, route in routes.items():
        if LUA not in route.get("typed_per_filter_config", {}):
            continue
        source = _lua(route)
        shape = shapes[name.removesuffix("-head")]
        # The status first (a service may refine a 400 into a 413), then the shape.
        assert source.count("function envoy_on_response") == 1 and "set_status(headers)" in source, name
        assert ("reshape_error(handle, headers)" in source) == (shape != "suite"), name
        # One JSON string scanner, shared, wherever a piece reads JSON.
        assert source.count("local function string_end") == (1 if "find(" in source else 0), name
        if shape == "openai":
            assert '"param":' in source and '[429] = "rate_limit_error"' in source, name
        if shape == "anthropic":
            assert '{"type":"error","error":' in source and '[413] = "request_too_large"' in source, name
    assert JSON_CHECK_LUA.startswith(JSON_STRING_LUA)
    # Envoy answers the Responses API itself, so the shape is the local-reply mappers' alone.
    assert LUA not in routes["openai-responses"].get("typed_per_filter_config", {})


@pytest.mark.parametrize(
    ("status", "openai", "anthropic"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (403, "permission_error", "permission_error"),
        (404, "not_found_error", "not_found_error"),
        (409, "conflict_error", "invalid_request_error"),
        (413, "invalid_request_error", "request_too_large"),
        (422, "invalid_request_error", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "server_error", "api_error"),
        (501, "server_error", "api_error"),
        (503, "server_error", "overloaded_error"),
        (504, "timeout", "timeout_error"),
    ],
)
def test_each_status_has_the_error_type_its_api_uses(status: int, openai: str, anthropic: str) -> None:
    assert (error_type("openai", status), error_type("anthropic", status)) == (openai, anthropic)


def test_envoys_own_replies_take_the_apis_shape_on_its_paths_and_native_grpc_keeps_its_own() -> None:
    manager = _manager(rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING, "SPARK_ACCESS_MODE": "keys"}))
    mappers = manager["local_reply_config"]["mappers"]

    def expressions(mapper: dict[str, Any]) -> list[str]:
        return [
            f["extension_filter"]["typed_config"]["expression"] for f in _filters(mapper) if "extension_filter" in f
        ]

    def shape(mapper: dict[str, Any]) -> str:
        body = mapper["body_format_override"]
        if "text_format_source" in body:
            return "text"
        return "anthropic" if body["json_format"].get("type") == "error" else next(iter(body["json_format"]))

    # First, Envoy's answers that are no error (a hosted app's files) as they are.
    assert shape(mappers[0]) == "text" and mappers[0]["filter"] == {
        "status_code_filter": {
            "comparison": {"op": "LE", "value": {"default_value": 399, "runtime_key": "edge.reply_to_399"}}
        }
    }
    # Then native gRPC callers: their status and a text body, whatever the path.
    assert [shape(m) for m in mappers[1:3]] == ["text", "text"]
    shapes = [shape(m) for m in mappers[3:]]
    assert shapes == sorted(shapes, key=["error", "anthropic", "code"].index), "API shapes before the suite's"
    paths = {
        "error": [e for m in mappers if shape(m) == "error" for e in expressions(m) if "matches(" in e],
        "anthropic": [e for m in mappers if shape(m) == "anthropic" for e in expressions(m) if "matches(" in e],
    }
    assert len(set(paths["error"])) == len(set(paths["anthropic"])) == 1
    assert len(paths["error"]) == shapes.count("error") and len(paths["anthropic"]) == shapes.count("anthropic")
    openai_paths, anthropic_paths = paths["error"][0], paths["anthropic"][0]
    assert "x-envoy-original-path" in openai_paths, "the path the client sent, not the gRPC method's"
    for path in ("/v1/chat/completions", "/v1/chat/completions:stream", "/v1/embeddings", "/v1/models"):
        assert f"|{path}|" in openai_paths.replace("^(", "|").replace(")(", "|"), path
    assert "/v1/responses(/.*)?" in openai_paths
    assert "^(/v1/messages|/v1/messages:stream)([?].*)?$" in anthropic_paths
    # Each kind of reply in each shape: the credential check's 401 with the services' words and reason.
    refusals = [m for m in mappers if m.get("status_code") == 401]
    assert [shape(m) for m in refusals] == ["error", "anthropic", "code"]
    assert refusals[0]["body_format_override"]["json_format"] == {
        "error": {
            "message": "%LOCAL_REPLY_BODY%",
            "type": "authentication_error",
            "param": None,
            "code": "api_key_missing",
        }
    }
    assert refusals[1]["body_format_override"]["json_format"] == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "%LOCAL_REPLY_BODY%"},
    }
    # Envoy's 413 (the transcoder's or a buffer's limit) in each shape, by its status alone.
    too_large = [m for m in mappers if _filters(m)[0] == _status(413, "EQ") and "body" not in m]
    assert [m["body_format_override"]["json_format"] for m in too_large] == [
        {"error": {"message": "%LOCAL_REPLY_BODY%", "type": "invalid_request_error", "param": None, "code": DETAILS}},
        {"type": "error", "error": {"type": "request_too_large", "message": "%LOCAL_REPLY_BODY%"}},
        {"code": 8, "message": "%LOCAL_REPLY_BODY%", "details": [{**EDGE_INFO, "reason": DETAILS}]},
    ]
    # Any other error status by its class, in each API's shape.
    for at_least, openai_type, anthropic_type in (
        (500, "server_error", "api_error"),
        (400, "invalid_request_error", "invalid_request_error"),
    ):
        classed = [m for m in mappers if _filters(m)[0] == _status(at_least, "GE")]
        assert [m["body_format_override"]["json_format"]["error"]["type"] for m in classed] == [
            openai_type,
            anthropic_type,
        ]


DETAILS = "%RESPONSE_CODE_DETAILS%"
EDGE_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "edge.spark"}


def _filters(mapper: dict[str, Any]) -> list[dict[str, Any]]:
    return list(mapper["filter"].get("and_filter", {}).get("filters", [mapper["filter"]]))


def _status(http_status: int, op: str) -> dict[str, Any]:
    key = f"edge.reply_{http_status}" if op == "EQ" else f"edge.reply_from_{http_status}"
    return {
        "status_code_filter": {"comparison": {"op": op, "value": {"default_value": http_status, "runtime_key": key}}}
    }
