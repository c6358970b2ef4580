"""deploy/kubernetes, checked offline: structure, wiring, probes, autoscaling, hardening and network policies.

No cluster is needed (nor reachable here): the manifests are parsed with
PyYAML, and each container's environment is read by the service's own config
reader, as tests/checks/test_compose.py does for docker-compose.yml. A selector
that matches no pod, a probe on the wrong port, an autoscaler on a Deployment
without CPU requests or a secret baked into a manifest fails here.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from redis.connection import parse_url

from services.common.app import read_app_name
from services.common.config import ConfigError, EnvReader
from tests.checks.test_compose import (
    ACCESS_SETTINGS,
    SECRET_NAME,
    SERVICES,
    SUITE,
    assert_runnable_module,
    module_run_by,
    parse_pairs,
)
from tests.support.service_configs import READERS

pytestmark = pytest.mark.checks

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
PORTS = {"meta": 50050, "kv": 50051, "llm": 50052, "prompts": 50053, "vision": 50054, "access": 50055}

Json = dict[str, Any]


@pytest.fixture(scope="module")
def documents() -> list[Json]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[Json] = []
    for name in kustomization["resources"]:
        docs += [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text(encoding="utf-8")) if doc]
    return docs


def of_kind(documents: list[Json], kind: str) -> dict[str, Json]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def container(workload: Json) -> Json:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


# Secret keys a container cannot start without (kubelet holds the pod until the Secret has them): every service
# checks its own callers, so each needs the admin token, the internal token and the store; the edge shows the
# internal token to the services.
REQUIRED_SECRETS = (
    {(name, "ADMIN_TOKEN") for name in SERVICES}
    | {(name, "SPARK_INTERNAL_TOKEN") for name in SUITE}
    | {(name, "REDIS_PASSWORD") for name in ("redis", *SERVICES)}
)
REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def secret_value(key: str) -> str:
    """What a container is given for a required key of the Secret, here (URL-safe, as a real password must be,
    and longer than the 32 characters the internal token needs)."""
    return f"{key}-from-the-secret-0123456789abcdef"


def expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' `$(NAME)` expansion of an env value: a name defined before it (by envFrom or an earlier env
    entry) is replaced, `$$` is one `$`, and any other reference stays as written."""
    return REFERENCE.sub(lambda m: "$" if m[0] == "$$" else defined.get(m[1], m[0]), value)


def environment(workload: Json, config_map: Json) -> dict[str, str]:
    """What the container sees with every optional secret absent and every required one set (the least a
    deployment may give it)."""
    spec = container(workload)
    env: dict[str, str] = {}
    if {"configMapRef": {"name": config_map["metadata"]["name"]}} in spec.get("envFrom", []):
        env.update({key: str(value) for key, value in config_map["data"].items()})
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        elif not item["valueFrom"]["secretKeyRef"].get("optional", False):
            env[item["name"]] = secret_value(item["valueFrom"]["secretKeyRef"]["key"])
    return env


def test_every_resource_in_the_kustomization_exists_and_is_named(documents: list[Json]) -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert kustomization["namespace"] == "spark"
    for doc in documents:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"]


def test_every_suite_role_is_a_deployment_running_the_one_image(documents: list[Json]) -> None:
    deployments = of_kind(documents, "Deployment")
    assert set(deployments) == set(SUITE)
    for name, deployment in deployments.items():
        spec = container(deployment)
        assert spec["image"] == "spark-services"
        module = module_run_by(spec["command"])
        assert module == ("edge" if name == "edge" else f"services.{name}")
        assert_runnable_module(module)


def test_selectors_match_their_pods(documents: list[Json]) -> None:
    workloads = {**of_kind(documents, "Deployment"), **of_kind(documents, "StatefulSet")}
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads.values()]
    for workload, labels in zip(workloads.values(), pod_labels, strict=True):
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for kind in ("Service", "PodDisruptionBudget"):
        for name, doc in of_kind(documents, kind).items():
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matched = [labels for labels in pod_labels if selector.items() <= labels.items()]
            assert len(matched) == 1, f"{kind} {name} selects {len(matched)} workloads"


def test_grpc_services_are_headless_on_their_ports_with_grpc_probes(documents: list[Json]) -> None:
    services, deployments = of_kind(documents, "Service"), of_kind(documents, "Deployment")
    for name in SERVICES:
        port = PORTS[name]
        # Headless: DNS gives every pod, so each request is balanced (a virtual IP pins an HTTP/2 connection).
        assert services[name]["spec"]["clusterIP"] == "None"
        assert {"name": "grpc", "port": port, "targetPort": "grpc", "appProtocol": "grpc"} in services[name]["spec"][
            "ports"
        ]
        spec = container(deployments[name])
        assert {"name": "grpc", "containerPort": port} in spec["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert spec[probe]["grpc"] == {"port": port}, f"{name} {probe}"
        env = {item["name"]: item.get("value") for item in spec["env"]}
        assert env[f"SPARK_{name.upper()}_PORT"] == str(port)
        assert env[f"SPARK_{name.upper()}_HOST"] == "0.0.0.0"


def test_the_edge_reaches_every_service_by_its_service_name(documents: list[Json]) -> None:
    edge_env = {item["name"]: item.get("value") for item in container(of_kind(documents, "Deployment")["edge"])["env"]}
    upstreams = parse_pairs(edge_env["SPARK_EDGE_UPSTREAMS"])
    assert upstreams == {name: (name, port) for name, port in PORTS.items()}
    meta_env = {item["name"]: item.get("value") for item in container(of_kind(documents, "Deployment")["meta"])["env"]}
    assert parse_pairs(meta_env["SPARK_META_BACKENDS"]) == {n: (n, p) for n, p in PORTS.items() if n != "meta"}
    edge_service = of_kind(documents, "Service")["edge"]
    # Nothing public by default: an Ingress or a LoadBalancer is the operator's choice.
    assert edge_service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_each_containers_environment_is_valid_for_its_config_reader(documents: list[Json]) -> None:
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    deployments = of_kind(documents, "Deployment")
    try:
        configs = {name: READERS[name](environment(deployments[name], config_map)) for name in SUITE}
    except ConfigError as error:
        pytest.fail(str(error), pytrace=False)
    # Each service checks its callers with API keys, against the one store, with the one pair of tokens.
    for name in SERVICES:
        gate = configs[name].gate
        assert (gate.mode, gate.checks) == ("keys", True), name
        assert gate.admin_token == secret_value("ADMIN_TOKEN"), name
        assert gate.internal_token == secret_value("SPARK_INTERNAL_TOKEN") == configs["edge"].internal_token, name
    redis_urls = {configs[name].redis_url for name in SERVICES}
    assert redis_urls == {f"redis://:{secret_value('REDIS_PASSWORD')}@redis:6379/0"}
    assert configs["edge"].kv_max_value_bytes == configs["kv"].max_value_bytes
    # The ConfigMap's keys mode reaches the edge too: a request with no credential at all stops there.
    assert configs["edge"].credentials_required
    assert configs["edge"].admin_host == "127.0.0.1" and configs["edge"].stats_port == 9466
    assert (configs["vision"].llm_target, configs["vision"].prompts_target) == ("llm:50052", "prompts:50053")


def test_every_service_gets_the_access_settings_and_the_edge_the_internal_token(documents: list[Json]) -> None:
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    deployments = of_kind(documents, "Deployment")
    settings = {
        name: {key: environment(deployments[name], config_map).get(key) for key in ACCESS_SETTINGS} for name in SERVICES
    }
    for name in SERVICES:
        missing = [key for key, value in settings[name].items() if value is None]
        assert not missing, f"{name} lacks {missing}"
    assert all(settings[name] == settings["access"] for name in SERVICES), settings
    assert settings["access"]["SPARK_ACCESS_MODE"] == "keys", "development mode serves everyone as the owner"
    edge = environment(deployments["edge"], config_map)
    assert edge["SPARK_INTERNAL_TOKEN"] == settings["access"]["SPARK_INTERNAL_TOKEN"]
    # The edge checks no caller: it needs neither the admin token nor the store.
    assert not {"ADMIN_TOKEN", "REDIS_URL", "REDIS_PASSWORD"} & set(edge), "the edge gets only the secrets it uses"
    # Each of them from the Secret's key of the same name, required: the same value everywhere.
    for name in SUITE:
        (reference,) = [
            item["valueFrom"] for item in container(deployments[name])["env"] if item["name"] == "SPARK_INTERNAL_TOKEN"
        ]
        assert reference == {"secretKeyRef": {"name": "spark-secrets", "key": "SPARK_INTERNAL_TOKEN"}}, name


def test_secrets_come_only_from_the_secret_and_only_the_tokens_and_the_redis_password_are_required(
    documents: list[Json],
) -> None:
    for doc in documents:
        if doc["kind"] == "ConfigMap":
            assert not [key for key in doc["data"] if SECRET_NAME.search(key)]
            # It would carry the Redis password.
            assert "REDIS_URL" not in doc["data"]
    for name, workload in {**of_kind(documents, "Deployment"), **of_kind(documents, "StatefulSet")}.items():
        for item in container(workload).get("env", []):
            if SECRET_NAME.search(item["name"]):
                assert "value" not in item, f"{name}: {item['name']} has a value in the manifest"
                ref = item["valueFrom"]["secretKeyRef"]
                if (name, item["name"]) in REQUIRED_SECRETS:
                    assert ref == {"name": "spark-secrets", "key": item["name"]}
                else:
                    assert ref == {"name": "spark-secrets", "key": item["name"], "optional": True}


def test_pods_run_unprivileged_on_a_read_only_root(documents: list[Json]) -> None:
    for name, workload in {**of_kind(documents, "Deployment"), **of_kind(documents, "StatefulSet")}.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        security = container(workload)["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        if name in SUITE:
            assert security["readOnlyRootFilesystem"] is True
            # The edge writes its Envoy config under /tmp.
            assert {"name": "tmp", "mountPath": "/tmp"} in container(workload)["volumeMounts"]


def test_autoscalers_scale_deployments_that_request_cpu(documents: list[Json]) -> None:
    deployments = of_kind(documents, "Deployment")
    autoscalers = of_kind(documents, "HorizontalPodAutoscaler")
    assert set(autoscalers) == set(SUITE) - {"meta"}
    for name, hpa in autoscalers.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["spec"]["minReplicas"] <= deployments[name]["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        # Utilization is measured against the request: without one the autoscaler does nothing.
        assert container(deployments[name])["resources"]["requests"]["cpu"]
    assert set(of_kind(documents, "PodDisruptionBudget")) == set(autoscalers)


def test_redis_persists_with_aof_on_a_volume(documents: list[Json]) -> None:
    redis = of_kind(documents, "StatefulSet")["redis"]
    args = container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--appendfsync") + 1] == "everysec"
    assert {"name": "data", "mountPath": "/data"} in container(redis)["volumeMounts"]
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_redis_requires_the_password_from_the_secret_and_every_redis_url_carries_it(documents: list[Json]) -> None:
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    redis = of_kind(documents, "StatefulSet")["redis"]
    # Required, not optional: an absent optional key leaves `$(REDIS_PASSWORD)` unexpanded, a password anyone
    # can read in this repository.
    (reference,) = [item["valueFrom"] for item in container(redis)["env"] if item["name"] == "REDIS_PASSWORD"]
    assert reference == {"secretKeyRef": {"name": "spark-secrets", "key": "REDIS_PASSWORD"}}
    env = environment(redis, config_map)
    assert env["REDIS_PASSWORD"] == secret_value("REDIS_PASSWORD")
    # redis-cli reads REDISCLI_AUTH: the probe authenticates without the password in its command line.
    assert env["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]
    assert "redis-cli ping" in " ".join(container(redis)["readinessProbe"]["exec"]["command"])
    port = of_kind(documents, "Service")["redis"]["spec"]["ports"][0]["port"]
    users = {}
    for name, deployment in of_kind(documents, "Deployment").items():
        if "REDIS_URL" in (deployment_env := environment(deployment, config_map)):
            users[name] = parse_url(deployment_env["REDIS_URL"])  # as the services read it (redis-py's from_url)
    # Without REDIS_URL a service keeps its state, and the access checks' keys and counters, in its own pod.
    assert set(users) == set(SERVICES)
    for name, parsed in users.items():
        assert (parsed["host"], parsed["port"], parsed.get("password")) == ("redis", port, env["REDIS_PASSWORD"]), name


@pytest.mark.parametrize(
    ("password", "starts"),
    [
        ("0123456789abcdef", True),
        ("Aa0.-_~", True),
        (None, False),
        ("", False),
        ("p/w", False),
        ("p@w", False),
        ("p w", False),
        ("p%41", False),
        ("p$w", False),
    ],
)
def test_redis_never_starts_without_a_password_a_url_can_carry(
    documents: list[Json], tmp_path: Path, password: str | None, starts: bool
) -> None:
    """The container's command, run by sh with the image's entrypoint replaced by one that prints what it
    would run: an absent, empty or URL-unsafe password stops it with a message that does not repeat it."""
    spec = container(of_kind(documents, "StatefulSet")["redis"])
    entrypoint = tmp_path / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    entrypoint.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"} | ({} if password is None else {"REDIS_PASSWORD": password})
    result = subprocess.run(
        [*spec["command"], *spec["args"]], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    if starts:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["redis-server", *spec["args"], "--requirepass", password]
    else:
        assert result.returncode != 0 and result.stdout == "", result.stdout
        assert "REDIS_PASSWORD" in result.stderr and "spark-secrets" in result.stderr, result.stderr
        assert not password or password not in result.stderr


# --- network policies ---

# What an operator puts on Prometheus's namespace and on its pods (docs/operations.md): only those scrape.
PROMETHEUS_LABEL = {"spark-metrics-scraper": "true"}
PROMETHEUS = "<Prometheus>"
ANYWHERE = "<anywhere>"
# The entry point: the one port open to every source.
ENTRY = ("edge", "http")

Port = tuple[str, str]  # (workload, container port name)


def workloads_of(documents: list[Json]) -> dict[str, Json]:
    return {**of_kind(documents, "Deployment"), **of_kind(documents, "StatefulSet")}


def selected(selector: Json, documents: list[Json]) -> set[str]:
    """The workloads whose pods a label selector of this namespace matches ({} matches every pod)."""
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is evaluated here: {selector}"
    wanted = selector.get("matchLabels", {}).items()
    return {
        name
        for name, workload in workloads_of(documents).items()
        if wanted <= workload["spec"]["template"]["metadata"]["labels"].items()
    }


def port_names(workload: Json) -> dict[int, str]:
    return {port["containerPort"]: port["name"] for port in container(workload)["ports"]}


def named_addresses(value: str) -> Iterator[tuple[str, int]]:
    """The host:port pairs an environment value names: `host:port` lists, `name=host:port` lists, URLs."""
    for item in filter(None, (part.strip() for part in value.split(","))):
        if "://" in item:
            parts = urlsplit(item)
            host, port = parts.hostname, parts.port
        else:
            host, _, digits = item.rpartition("=")[2].rpartition(":")
            port = int(digits) if digits.isdigit() else None
        if host and port:
            yield host, port


def callers_named_by_the_manifests(documents: list[Json]) -> dict[Port, set[str]]:
    """Who must reach each port: every workload whose environment names a Service's address (the edge's
    upstreams, meta's backends, vision's SPARK_*_ADDRESSES, REDIS_URL, ...), Prometheus on the port each pod's
    scrape annotation names, and anyone on the edge's HTTP port."""
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    workloads, services = workloads_of(documents), of_kind(documents, "Service")
    callers: dict[Port, set[str]] = defaultdict(set, {ENTRY: {ANYWHERE}})
    for name, workload in workloads.items():
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            callers[(name, port_names(workload)[int(annotations["prometheus.io/port"])])].add(PROMETHEUS)
        for value in environment(workload, config_map).values():
            for host, number in named_addresses(value):
                if host not in services:
                    continue
                (target,) = selected({"matchLabels": services[host]["spec"]["selector"]}, documents)
                (port,) = [port for port in services[host]["spec"]["ports"] if port["port"] == number]
                target_port = port["targetPort"]
                if isinstance(target_port, int):
                    target_port = port_names(workloads[target])[target_port]
                callers[(target, target_port)].add(name)
    return dict(callers)


def peer_sources(peer: Json, documents: list[Json]) -> set[str]:
    if peer == {
        "namespaceSelector": {"matchLabels": PROMETHEUS_LABEL},
        "podSelector": {"matchLabels": PROMETHEUS_LABEL},
    }:
        return {PROMETHEUS}
    # A podSelector alone means pods of the policy's own namespace; ipBlocks and other namespaces are not admitted.
    assert set(peer) == {"podSelector"}, f"a peer that is neither the suite's pods nor Prometheus: {peer}"
    sources = selected(peer["podSelector"], documents)
    assert sources, f"a peer that selects no pod: {peer}"
    return sources


def ingress_allowed(documents: list[Json]) -> dict[Port, set[str]]:
    """Who the NetworkPolicies let reach each port (the union of every policy that selects the pod)."""
    workloads = workloads_of(documents)
    allowed: dict[Port, set[str]] = defaultdict(set)
    for name, policy in of_kind(documents, "NetworkPolicy").items():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"], name
        targets = selected(spec["podSelector"], documents)
        assert targets, f"NetworkPolicy {name} selects no pod"
        for rule in spec.get("ingress", []):
            sources = set().union(*(peer_sources(peer, documents) for peer in rule.get("from", []))) or {ANYWHERE}
            # Without ports a rule opens every port of the pod, declared or not.
            assert rule.get("ports"), f"NetworkPolicy {name} has a rule without ports"
            for target in targets:
                names = port_names(workloads[target])
                for port in rule["ports"]:
                    assert port.get("protocol", "TCP") == "TCP" and "endPort" not in port, (name, port)
                    port_name = names[port["port"]] if isinstance(port["port"], int) else port["port"]
                    assert port_name in names.values(), f"{name}: {target} has no port {port_name}"
                    allowed[(target, port_name)] |= sources
    return dict(allowed)


def test_every_pod_refuses_ingress_that_no_policy_allows(documents: list[Json]) -> None:
    policies = of_kind(documents, "NetworkPolicy")
    deny_all = [
        name
        for name, policy in policies.items()
        if policy["spec"]["podSelector"] == {} and not policy["spec"].get("ingress")
    ]
    assert deny_all, "no default-deny ingress policy for the namespace"
    for name in deny_all:
        assert policies[name]["spec"]["policyTypes"] == ["Ingress"]
    isolated = set().union(*(selected(policies[name]["spec"]["podSelector"], documents) for name in deny_all))
    assert isolated == set(workloads_of(documents)), "a pod of the suite is open to every source"


def test_each_port_admits_exactly_the_callers_the_manifests_name(documents: list[Json]) -> None:
    expected = callers_named_by_the_manifests(documents)
    # The derivation sees the address variables (it is not vacuous).
    assert expected[("prompts", "grpc")] == {"edge", "meta", "vision"}
    assert expected[("redis", "redis")] == set(SERVICES)
    assert ingress_allowed(documents) == expected


def test_only_the_edges_http_port_is_open_to_every_source(documents: list[Json]) -> None:
    open_ports = [port for port, sources in ingress_allowed(documents).items() if ANYWHERE in sources]
    assert open_ports == [ENTRY]
    edge_ports = of_kind(documents, "Service")["edge"]["spec"]["ports"]
    assert {"name": "http", "port": 8080, "targetPort": "http"} in edge_ports


def test_metrics_ports_admit_only_prometheus_by_a_documented_label(documents: list[Json]) -> None:
    allowed = ingress_allowed(documents)
    scraped = {port for port, sources in allowed.items() if PROMETHEUS in sources}
    assert {("edge", "stats")} | {(name, "metrics") for name in SERVICES} == scraped
    assert all(allowed[port] == {PROMETHEUS} for port in scraped)
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    ((key, value),) = PROMETHEUS_LABEL.items()
    assert f"{key}={value}" in operations, "docs/operations.md must name the label an operator sets for Prometheus"


# --- the hosted Spark app and sign-in ---


def environment_with(
    workload: Json, config_map: Json, settings: dict[str, str], secrets: dict[str, str] | None = None
) -> dict[str, str]:
    """What the container sees with spark-config's keys set as `settings` say and the Secret's optional keys
    `secrets` present."""
    env = environment(workload, {**config_map, "data": {**config_map["data"], **settings}})
    for item in container(workload).get("env", []):
        reference = item.get("valueFrom", {}).get("secretKeyRef", {})
        if reference.get("optional") and reference["key"] in (secrets or {}):
            env[item["name"]] = (secrets or {})[reference["key"]]
    return env


def test_without_an_app_or_sign_in_no_app_is_served_and_nobody_signs_in(documents: list[Json]) -> None:
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    deployments = of_kind(documents, "Deployment")
    configs = {name: READERS[name](environment(deployments[name], config_map)) for name in SUITE}
    assert configs["edge"].app is None and configs["edge"].app_name == "default"
    assert configs["access"].app_snapshot is None and configs["access"].github is None
    assert all(configs[name].gate.sign_in is None for name in SERVICES)


def test_an_app_in_the_image_is_served_by_the_edge_and_named_alike_everywhere(
    documents: list[Json], tmp_path: Path
) -> None:
    # The image's /srv/app, here: dist/ and the app's runtime.config.json beside it.
    dist = tmp_path / "srv" / "app" / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><div id="root"></div>', encoding="utf-8")
    (dist / "assets" / "index-Bx1d2c3e.js").write_text("console.log('app')", encoding="utf-8")
    (dist.parent / "runtime.config.json").write_text('{"app": "my-app"}', encoding="utf-8")
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    deployments = of_kind(documents, "Deployment")
    envs = {name: environment_with(deployments[name], config_map, {"SPARK_APP_DIR": str(dist)}) for name in SUITE}
    assert all(read_app_name(EnvReader(envs[name])) == "my-app" for name in SUITE), "one name everywhere"
    # The edge snapshots it into its /tmp (an emptyDir); here, into the test's.
    edge = READERS["edge"](envs["edge"] | {"SPARK_APP_SNAPSHOT": str(tmp_path / "edge-tmp" / "app")})
    assert edge.app is not None and edge.app_name == "my-app"
    assert "SPARK_APP_SNAPSHOT" not in envs["edge"], "the edge's snapshot goes to its own /tmp, not into the image"
    access = READERS["access"](envs["access"])
    assert access.app_snapshot == dist and (access.app_snapshot / "index.html").is_file()


def test_sign_in_from_the_config_map_and_the_optional_secret_reaches_every_service(documents: list[Json]) -> None:
    config_map = of_kind(documents, "ConfigMap")["spark-config"]
    deployments = of_kind(documents, "Deployment")
    settings = {
        "SPARK_AUTH": "github",
        "SPARK_AUTH_GITHUB_CLIENT_ID": "Ov23li-client-of-the-config-map",
        "SPARK_PUBLIC_URL": "https://app.example.com",
        "SPARK_OWNERS": "octocat",
        "SPARK_APP_ACCESS": "owners",
    }
    secrets = {"SPARK_AUTH_GITHUB_CLIENT_SECRET": "client-secret-of-the-secret"}
    envs = {name: environment_with(deployments[name], config_map, settings, secrets) for name in SUITE}
    try:
        configs = {name: READERS[name](envs[name]) for name in SUITE}
    except ConfigError as error:
        pytest.fail(str(error), pytrace=False)
    for name in SERVICES:
        sign_in = configs[name].gate.sign_in
        assert sign_in is not None, name
        assert (sign_in.app_access, sign_in.owners, sign_in.public_origin) == (
            "owners",
            {"octocat"},
            "https://app.example.com",
        ), name
    github = configs["access"].github
    assert (github.client_id, github.client_secret) == (
        "Ov23li-client-of-the-config-map",
        "client-secret-of-the-secret",
    )
    assert github.redirect_uri == "https://app.example.com/_spark/auth/callback" and github.secure_cookies
    assert configs["edge"].app_access == "owners"
    for name in {*SUITE} - {"access"}:
        assert "SPARK_AUTH_GITHUB_CLIENT_SECRET" not in envs[name], f"{name} gets only the secrets it uses"
