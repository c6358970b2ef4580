"""HTTP routes come from the protos' `google.api.http` rules, additional bindings included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2

from services.common.descriptors import default_descriptor_path
from services.common.routes import HttpRoute, http_routes, load_descriptor_pool
from tests.support.suite import ROOT

KV = "spark.kv.v1.KvService"
META = "spark.meta.v1.MetaService"


@pytest.fixture(scope="module")
def pool() -> descriptor_pool.DescriptorPool:
    return load_descriptor_pool(default_descriptor_path())


def test_kv_routes_are_exactly_its_http_rules(pool: descriptor_pool.DescriptorPool) -> None:
    assert http_routes(pool, [KV]) == [
        HttpRoute("GET", "/_spark/db/collections/{name}", f"{KV}/ListSparkCollection"),
        HttpRoute("GET", "/_spark/kv", f"{KV}/ListSparkKeys"),
        HttpRoute("DELETE", "/_spark/kv/{key}", f"{KV}/DeleteSparkValue"),
        HttpRoute("GET", "/_spark/kv/{key}", f"{KV}/GetSparkValue"),
        HttpRoute("POST", "/_spark/kv/{key}", f"{KV}/SetSparkValue"),
        HttpRoute("PUT", "/_spark/kv/{key}", f"{KV}/SetSparkValue"),
        HttpRoute("GET", "/runtime/{app}/db/collections/{name}", f"{KV}/ListSparkCollection"),
        HttpRoute("GET", "/runtime/{app}/kv", f"{KV}/ListSparkKeys"),
        HttpRoute("DELETE", "/runtime/{app}/kv/{key}", f"{KV}/DeleteSparkValue"),
        HttpRoute("GET", "/runtime/{app}/kv/{key}", f"{KV}/GetSparkValue"),
        HttpRoute("POST", "/runtime/{app}/kv/{key}", f"{KV}/SetSparkValue"),
        HttpRoute("PUT", "/runtime/{app}/kv/{key}", f"{KV}/SetSparkValue"),
    ]


def test_meta_serves_only_healthz(pool: descriptor_pool.DescriptorPool) -> None:
    assert http_routes(pool, [META]) == [HttpRoute("GET", "/healthz", f"{META}/GetHealth")]


def test_services_without_rules_add_nothing(pool: descriptor_pool.DescriptorPool) -> None:
    assert http_routes(pool, ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]) == []
    assert http_routes(pool, []) == []


def test_routes_of_several_services_are_merged_and_sorted(pool: descriptor_pool.DescriptorPool) -> None:
    routes = http_routes(pool, [META, KV])
    assert routes == sorted(http_routes(pool, [KV]) + http_routes(pool, [META]), key=lambda r: (r.path, r.method))
    assert [(r.path, r.method) for r in routes] == sorted((r.path, r.method) for r in routes)


def test_unknown_service_is_an_error(pool: descriptor_pool.DescriptorPool) -> None:
    with pytest.raises(KeyError):
        http_routes(pool, ["spark.nope.v1.NopeService"])


def _pool_with_rules(rules: dict[str, http_pb2.HttpRule]) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(empty_pb2.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(
        name="test/routes.proto", package="test.v1", syntax="proto3", dependency=["google/protobuf/empty.proto"]
    )
    service = file.service.add(name="RoutesService")
    for name, rule in rules.items():
        method = service.method.add(
            name=name, input_type=".google.protobuf.Empty", output_type=".google.protobuf.Empty"
        )
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool.Add(file)
    return pool


def test_every_pattern_kind_and_additional_bindings() -> None:
    pool = _pool_with_rules(
        {
            "Head": http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/things/{id}")),
            "Patch": http_pb2.HttpRule(
                patch="/v1/things/{id}",
                body="*",
                additional_bindings=[
                    http_pb2.HttpRule(post="/v1/things/{id}:patch", body="*"),
                    http_pb2.HttpRule(put="/v1/things/{id}", body="*"),
                ],
            ),
            "Remove": http_pb2.HttpRule(delete="/v1/things/{id}"),
            "Plain": http_pb2.HttpRule(),
        }
    )
    rpc = "test.v1.RoutesService/"
    assert http_routes(pool, ["test.v1.RoutesService"]) == [
        HttpRoute("DELETE", "/v1/things/{id}", rpc + "Remove"),
        HttpRoute("HEAD", "/v1/things/{id}", rpc + "Head"),
        HttpRoute("PATCH", "/v1/things/{id}", rpc + "Patch"),
        HttpRoute("PUT", "/v1/things/{id}", rpc + "Patch"),
        HttpRoute("POST", "/v1/things/{id}:patch", rpc + "Patch"),
    ]


def test_rules_are_found_even_if_options_were_read_before_the_extension_was_imported() -> None:
    # Options read (and kept) before `google.api.annotations_pb2` is imported stay without the
    # extension; a fresh interpreter is the only place where that import has not happened yet.
    script = textwrap.dedent(
        """
        import sys
        from services.common.descriptors import default_descriptor_path, load_pool
        pool, names = load_pool(default_descriptor_path())
        held = [m.GetOptions() for n in names for m in pool.FindServiceByName(n).methods]
        assert "google.api.annotations_pb2" not in sys.modules
        from services.common.routes import http_routes
        print(" ".join(r.method + r.path for r in http_routes(pool, ["spark.meta.v1.MetaService"])))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["GET/healthz"]
