"""The edge over TLS (HSTS only then) and its stats-only listener, with the real launcher and Envoy."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_ports
from tests.support.suite import RunningSuite
from tests.support.tls import self_signed

pytestmark = pytest.mark.e2e


def test_the_edge_serves_https_with_hsts_and_a_stats_listener_that_serves_only_stats(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    (stats_port,) = free_ports(1)
    env = {
        "SPARK_EDGE_TLS_CERT": str(cert),
        "SPARK_EDGE_TLS_KEY": str(key),
        "SPARK_EDGE_STATS_PORT": str(stats_port),
        "SPARK_SERVICES": "meta,access,kv",
    }
    with RunningSuite.start(tmp_path / "suite", env) as suite:
        assert f"ready on https://127.0.0.1:{suite.ports['edge']}" in suite.launcher_output()
        with httpx.Client(
            base_url=f"https://127.0.0.1:{suite.ports['edge']}",
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=10,
        ) as https:
            health = https.get("/healthz")
            assert health.status_code == 200
            assert health.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
            assert https.get("/_spark/kv/missing").headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{suite.ports['edge']}/healthz", timeout=5)  # no plain HTTP beside TLS
        stats = httpx.get(f"http://127.0.0.1:{stats_port}/stats/prometheus", timeout=10)
        assert stats.status_code == 200 and "envoy_cluster_upstream_rq" in stats.text
        for path in ("/quitquitquit", "/config_dump", "/stats", "/"):
            assert httpx.post(f"http://127.0.0.1:{stats_port}{path}", timeout=10).status_code == 404
