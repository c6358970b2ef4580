"""The launcher's pure parts: its config (every port with the setting that chose it), the start-up banner,
and the port check, each at its boundary (an environment mapping in, a config, banner or refusal out)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from launcher.banner import build_banner, describe_store, is_loopback
from launcher.config import Binding, read_config
from launcher.ports import holder, unavailable
from services.common.config import ConfigError

SECRETS = {
    "ADMIN_TOKEN": "admin-s3cret",
    "OPENAI_API_KEY": "sk-s3cret",
    "ANTHROPIC_API_KEY": "ak-s3cret",
    "REDIS_URL": "redis://user:redis-s3cret@cache.internal:6380/4",
}
SECRET_VALUES = ("admin-s3cret", "sk-s3cret", "ak-s3cret", "redis-s3cret")


# --- config ---


def test_every_port_is_listed_with_the_setting_that_chose_it() -> None:
    config = read_config({"SPARK_KV_PORT": "7001", "SPARK_LLM_PORT": "0", "SPARK_VISION_METRICS_PORT": "-1"})
    settings = {binding.what: (binding.host, binding.port, binding.setting) for binding in config.bindings}
    assert settings["kv gRPC"] == ("127.0.0.1", 7001, "SPARK_KV_PORT=7001")
    assert settings["meta gRPC"] == ("127.0.0.1", 50050, "the default of SPARK_META_PORT")
    assert settings["llm gRPC"][2] == "a free port picked because SPARK_LLM_PORT=0"
    assert settings["kv-2 gRPC"][2] == "a free port picked for worker 2 of SPARK_KV_WORKERS"
    assert settings["the edge"] == ("127.0.0.1", 8080, "the default of SPARK_EDGE_PORT")
    assert settings["Envoy's admin API"] == ("127.0.0.1", 9901, "the default of SPARK_EDGE_ADMIN_PORT")
    assert "vision metrics" not in settings and "Envoy's stats listener" not in settings
    ports = [binding.port for binding in config.bindings]
    assert len(ports) == len(set(ports))
    assert {i.port for i in config.instances} | {i.metrics_port for i in config.instances if i.metrics_port > 0} <= set(
        ports
    )


def test_the_edges_admin_and_stats_listeners_are_checked_where_envoy_binds_them() -> None:
    config = read_config(
        {"SPARK_HOST": "0.0.0.0", "SPARK_EDGE_ADMIN_HOST": "127.0.0.1", "SPARK_EDGE_STATS_PORT": "9466"}
    )
    settings = {binding.what: (binding.host, binding.port) for binding in config.bindings}
    assert settings["Envoy's admin API"] == ("127.0.0.1", 9901)
    assert settings["Envoy's stats listener"] == ("0.0.0.0", 9466)
    assert settings["the edge"] == ("0.0.0.0", 8080)


def test_one_port_chosen_by_two_settings_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as raised:
        read_config({"SPARK_KV_PORT": "8080"})
    (problem,) = raised.value.problems
    assert "port 8080 is chosen twice" in problem
    assert "kv gRPC (SPARK_KV_PORT=8080)" in problem and "the edge (the default of SPARK_EDGE_PORT)" in problem


def test_a_service_that_would_refuse_to_start_stops_the_launcher_with_its_own_words() -> None:
    with pytest.raises(ConfigError) as raised:
        read_config({"REDIS_URL": "redis://r:6379/0", "SPARK_LOG_LEVEL": "loud"})
    problems = raised.value.problems
    assert any("ADMIN_TOKEN is unset" in p and "SPARK_ACCESS_ALLOW_DEVELOPMENT=true" in p for p in problems)
    # The launcher, access and llm all read SPARK_LOG_LEVEL: said once.
    assert len([p for p in problems if "SPARK_LOG_LEVEL" in p]) == 1
    # Every service checks its callers, whether or not the access service is started.
    with pytest.raises(ConfigError, match="ADMIN_TOKEN is unset"):
        read_config({"REDIS_URL": "redis://r:6379/0", "SPARK_SERVICES": "meta,kv"})


def test_the_config_keeps_no_secret_in_its_repr() -> None:
    text = repr(read_config(SECRETS))
    for secret in SECRET_VALUES:
        assert secret not in text


# --- the banner ---


def test_the_default_banner_spells_out_development_mode_and_where_everything_is() -> None:
    config = read_config({"SPARK_DATA_DIR": "/srv/spark"})
    banner = build_banner(config)
    assert banner.lines == (
        "access: development (every caller is the owner, no API key needed)",
        "store: SQLite /srv/spark/spark.db",
        "providers with keys: none (set one of OPENAI_API_KEY, ANTHROPIC_API_KEY, GITHUB_TOKEN, OPENROUTER_API_KEY, "
        "BIGMODEL_API_KEY to offer its models)",
        "admin routes: disabled (ADMIN_TOKEN unset: /admin/*, /v1/usage and prompt writes answer 403)",
        "edge: http://127.0.0.1:8080",
    )
    assert banner.warning is None
    assert banner.fields == {
        "access_mode": "development",
        "store": "SQLite /srv/spark/spark.db",
        "providers": [],
        "admin_routes": False,
        "url": "http://127.0.0.1:8080",
    }


def test_the_banner_names_providers_and_redis_but_never_a_secret() -> None:
    banner = build_banner(read_config(SECRETS))
    assert banner.lines[0] == "access: keys (every request needs an API key, made at /admin/keys with X-Admin-Token)"
    assert banner.lines[1] == "store: Redis cache.internal:6380 database 4"
    assert banner.lines[2] == "providers with keys: openai, anthropic"
    assert banner.lines[3] == "admin routes: enabled (ADMIN_TOKEN is set)"
    assert banner.warning is None
    text = repr(banner)
    for secret in SECRET_VALUES:
        assert secret not in text


def test_services_that_are_not_started_are_said_so() -> None:
    banner = build_banner(read_config({"SPARK_SERVICES": "meta,kv"}))
    assert banner.lines[0].startswith("access: development")
    assert banner.lines[2] == "providers with keys: none (the llm service is not started: SPARK_SERVICES)"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_development_mode_beyond_loopback_is_a_loud_warning(host: str) -> None:
    banner = build_banner(read_config({"SPARK_HOST": host, "SPARK_EDGE_ADMIN_HOST": "127.0.0.1"}))
    assert banner.warning is not None
    assert banner.warning.startswith(f"DEVELOPMENT MODE ON {host}, NOT LOOPBACK: anyone who can reach port 8080")
    assert "SPARK_HOST=127.0.0.1" in banner.warning and "SPARK_ACCESS_MODE=keys" in banner.warning
    assert banner.lines[-1].endswith("(every interface)" if host in ("0.0.0.0", "::") else "(beyond loopback)")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_development_mode_on_loopback_is_no_warning(host: str) -> None:
    assert is_loopback(host)
    assert not is_loopback(f"spark.example.{host}")
    assert build_banner(read_config({"SPARK_HOST": host})).warning is None


def test_keys_mode_beyond_loopback_is_no_warning() -> None:
    config = read_config({"SPARK_HOST": "0.0.0.0", "SPARK_ACCESS_MODE": "keys", "ADMIN_TOKEN": "t"})
    assert build_banner(config).warning is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost", "Redis localhost:6379 database 0"),
        ("redis://:pw@[::1]:6390/2", "Redis [::1]:6390 database 2"),
        ("rediss://user:pw@cache.example:6380/1", "Redis cache.example:6380 database 1, TLS"),
        ("unix://:pw@/run/redis/redis.sock?db=3", "Redis on the socket /run/redis/redis.sock"),
        ("redis://:pw@host:notaport/0", "Redis (REDIS_URL has no valid port)"),
        # A / ? or # in a password ends the authority early: the rest would show as a port or a database.
        ("redis://:6380/pw@host:6379/0", "Redis (REDIS_URL is unreadable: percent-encode / ? # in its password)"),
        ("redis://:/pw@host:6379/0", "Redis (REDIS_URL is unreadable: percent-encode / ? # in its password)"),
        ("redis://:6380?pw@host:6379/0", "Redis (REDIS_URL is unreadable: percent-encode / ? # in its password)"),
        ("redis://:6380#pw@host:6379/0", "Redis (REDIS_URL is unreadable: percent-encode / ? # in its password)"),
        ("redis://:p%2Fw@host:6379/0", "Redis host:6379 database 0"),
    ],
)
def test_the_store_is_shown_without_its_password(url: str, shown: str) -> None:
    assert describe_store(url, Path("/unused")) == shown


# --- the port check ---


def test_a_free_port_passes_and_a_taken_one_names_this_process_as_its_holder() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            free_port = free.getsockname()[1]
        bindings = [
            Binding("kv gRPC", "127.0.0.1", port, f"SPARK_KV_PORT={port}"),
            Binding("the edge", "127.0.0.1", free_port, f"SPARK_EDGE_PORT={free_port}"),
        ]
        (refused,) = unavailable(bindings)
    assert refused.binding is bindings[0]
    assert refused.message().startswith(
        f"kv gRPC cannot listen on 127.0.0.1:{port} (SPARK_KV_PORT={port}): the port is in use by pid {os.getpid()} ("
    )


def test_a_port_bound_but_not_yet_listening_is_taken_too() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert unavailable([Binding("meta gRPC", "127.0.0.1", port, "SPARK_META_PORT")])


def test_an_address_that_is_not_this_machines_is_refused_with_the_systems_reason() -> None:
    (refused,) = unavailable([Binding("the edge", "192.0.2.1", 8080, "SPARK_EDGE_PORT=8080")])
    assert "cannot listen on 192.0.2.1:8080" in refused.message()
    assert "address" in refused.reason.lower()


def fake_proc(root: Path, port: int, inode: str, pid: str | None) -> Path:
    """A /proc with one listening socket on `port` (and, if pid is given, the process whose fd holds it)."""
    (root / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    row = f"   0: 0100007F:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 {inode} 1\n"
    (root / "net" / "tcp").write_text(header + row, encoding="ascii")
    (root / "net" / "tcp6").write_text(header, encoding="ascii")
    if pid is not None:
        (root / pid / "fd").mkdir(parents=True)
        (root / pid / "fd" / "3").symlink_to(f"socket:[{inode}]")
        (root / pid / "cmdline").write_bytes(b"envoy\0-c\0/tmp/envoy.json\0")
    (root / "self").mkdir(exist_ok=True)
    return root


def test_the_holder_is_read_from_proc(tmp_path: Path) -> None:
    assert holder(8080, fake_proc(tmp_path / "a", 8080, "4242", "77")) == "pid 77 (envoy -c /tmp/envoy.json)"
    assert holder(8080, fake_proc(tmp_path / "b", 8080, "4242", None)) == (
        "another process (not one this user may inspect)"
    )
    assert holder(9090, fake_proc(tmp_path / "c", 8080, "4242", "77")) == "another process"
