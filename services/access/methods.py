"""Each RPC's access policy, as its proto declares it (`spark.policy.v1.policy` method options).

The policy lives beside the RPC in `protos/`, once: which rate-limit class counts the call, whether
it needs the admin token, and whether callers without a credential may make it. Every service reads
the policies of the services it serves when it starts, and refuses to start when a method has none.

A method the Spark runtime calls (an HTTP binding under `/_spark/`, sign-in's own `/_spark/auth/` aside)
is one of the hosted app's: with sign-in on, a session cookie admits it, and who may call it without a
key is the app's access rule (SPARK_APP_ACCESS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Imported for its side effect too: the `google.api.http` extension must be known to read the bindings.
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from spark.policy.v1 import policy_pb2

from services.access.policy import ROUTE_CLASSES, PolicyError

APP_PREFIX = "/_spark/"
SIGN_IN_PREFIX = "/_spark/auth/"

# Typed for mypy: the generated stub types the extension as a plain FieldDescriptor.
EXTENSION: Any = policy_pb2.policy


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    # The gRPC method, "/package.Service/Method".
    name: str
    route_class: str
    admin: bool
    # Callers without a credential may call it when keys are required (health, about).
    public: bool
    # One of the hosted app's routes (the Spark runtime's `/_spark/*`).
    app: bool = False

    @property
    def short_name(self) -> str:
        return self.name.rpartition("/")[2]


def method_policies(
    service_names: Iterable[str], pool: descriptor_pool.DescriptorPool | None = None
) -> Mapping[str, MethodPolicy]:
    """The policy of every method of `service_names`, by gRPC method name. Raises PolicyError naming each
    method without a policy, or with a route class the limits file does not have."""
    pool = pool or descriptor_pool.Default()
    policies: dict[str, MethodPolicy] = {}
    problems: list[str] = []
    for service_name in service_names:
        # `MethodDescriptor.GetOptions()` is parsed once and cached, without the extension if it was asked
        # for before `policy_pb2` was imported, and never for a pool of its own: a copy is parsed now.
        service = descriptor_pb2.ServiceDescriptorProto()
        pool.FindServiceByName(service_name).CopyToProto(service)
        for method in service.method:
            name = f"/{service_name}/{method.name}"
            options = method.options
            if not options.HasExtension(EXTENSION):
                problems.append(f"{name} declares no (spark.policy.v1.policy) option")
                continue
            declared: policy_pb2.MethodPolicy = options.Extensions[EXTENSION]
            if declared.route_class not in ROUTE_CLASSES:
                problems.append(
                    f"{name}: route_class {declared.route_class!r} is not one of {', '.join(ROUTE_CLASSES)}"
                )
                continue
            policies[name] = MethodPolicy(
                name, declared.route_class, declared.admin, declared.public, app=_is_app_method(options)
            )
    if problems:
        raise PolicyError("; ".join(problems))
    return policies


def _is_app_method(options: descriptor_pb2.MethodOptions) -> bool:
    if not options.HasExtension(annotations_pb2.http):
        return False
    return any(
        path.startswith(APP_PREFIX) and not path.startswith(SIGN_IN_PREFIX)
        for path in _paths(options.Extensions[annotations_pb2.http])
    )


def _paths(rule: http_pb2.HttpRule) -> list[str]:
    pattern = rule.WhichOneof("pattern")
    paths = [] if pattern is None else [rule.custom.path if pattern == "custom" else getattr(rule, pattern)]
    for binding in rule.additional_bindings:
        paths += _paths(binding)
    return paths
