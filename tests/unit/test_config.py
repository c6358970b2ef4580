"""Configuration is read once, typed, and every problem is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.settings import read_settings
from launcher.config import read_config as read_launcher_config
from services.common.config import ConfigError, EnvReader
from services.kv.config import read_config as read_kv_config
from services.llm.config import read_config as read_llm_config
from services.meta.config import read_config as read_meta_config
from services.prompts.config import read_config as read_prompts_config


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(ConfigError) as raised:
        read_kv_config({"SPARK_KV_PORT": "eighty", "SPARK_KV_MAX_VALUE_BYTES": "0", "SPARK_LOG_LEVEL": "loud"})
    problems = raised.value.problems
    assert len(problems) == 3
    assert any("SPARK_KV_PORT" in p for p in problems)
    assert any("SPARK_KV_MAX_VALUE_BYTES" in p for p in problems)
    assert any("SPARK_LOG_LEVEL" in p for p in problems)


def test_kv_defaults() -> None:
    config = read_kv_config({})
    assert config.max_value_bytes == 10 * 1024 * 1024
    assert config.max_key_bytes == 1024
    assert config.redis_url is None
    assert config.server.port == 50051
    assert config.server.host == "127.0.0.1"
    assert config.server.metrics_port is None
    assert config.server.max_message_bytes >= config.max_value_bytes


def test_blank_values_mean_unset() -> None:
    reader = EnvReader({"A": "  ", "B": "true"})
    assert reader.optional_text("A") is None
    assert reader.flag("B", False) is True
    assert reader.integer("A", 7) == 7
    reader.finish()


def test_meta_backends_are_parsed_and_checked() -> None:
    config = read_meta_config({"SPARK_META_BACKENDS": "kv=127.0.0.1:50051, llm=llm:50052"})
    assert [(b.name, b.address) for b in config.backends] == [("kv", "127.0.0.1:50051"), ("llm", "llm:50052")]
    with pytest.raises(ConfigError, match="not name=host:port"):
        read_meta_config({"SPARK_META_BACKENDS": "kv"})


def test_edge_settings() -> None:
    settings = read_settings(
        Path("/x.pb"),
        {
            "SPARK_EDGE_UPSTREAMS": "kv=kv:50051,meta=127.0.0.1:50050,access=access:50055",
            "ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317",
        },
    )
    assert settings.port == 8080
    assert [u.host for u in settings.upstreams["kv"]] == ["kv"]
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.otlp is not None and (settings.otlp.host, settings.otlp.port) == ("jaeger", 4317)
    workers = read_settings(Path("/x.pb"), {"SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:1,kv=127.0.0.1:2,access=127.0.0.1:3"})
    assert [u.port for u in workers.upstreams["kv"]] == [1, 2]
    with pytest.raises(ConfigError, match="SPARK_EDGE_UPSTREAMS"):
        read_settings(Path("/x.pb"), {"SPARK_EDGE_UPSTREAMS": "kv=nohost"})


def test_launcher_rejects_unknown_services() -> None:
    with pytest.raises(ConfigError, match="unknown service 'nope'"):
        read_launcher_config({"SPARK_SERVICES": "meta,kv,nope"})
    config = read_launcher_config({"SPARK_KV_PORT": "0", "SPARK_KV_WORKERS": "3"})
    names = [i.name for i in config.instances]
    assert names == ["meta", "access", "kv", "kv-2", "kv-3", "llm", "prompts", "vision"]
    ports = [i.port for i in config.instances]
    assert (ports[0], ports[1], ports[-1]) == (50050, 50055, 50054)
    assert len(set(ports)) == len(ports)
    metrics = [i.metrics_port for i in config.instances]
    assert metrics[:2] == [9460, 9465]
    assert metrics[-1] == 9464
    assert len(set(metrics)) == len(metrics)
    off = read_launcher_config({"SPARK_KV_METRICS_PORT": "-1"})
    assert [i.metrics_port for i in off.instances if i.service == "kv"] == [-1, -1]


def test_prompts_config_checks_the_backup_schedule() -> None:
    assert read_prompts_config({}).backup_cron == "0 3 * * *"
    assert read_prompts_config({"SPARK_PROMPTS_BACKUP_CRON": "off"}).backup_cron is None
    with pytest.raises(ConfigError, match="SPARK_PROMPTS_BACKUP_CRON"):
        read_prompts_config({"SPARK_PROMPTS_BACKUP_CRON": "61 * * * *"})
    assert "secret" not in repr(read_prompts_config({"ADMIN_TOKEN": "secret"}))


def test_prompts_config_bounds_a_restore_and_takes_messages_that_carry_one() -> None:
    default = read_prompts_config({})
    assert (default.restore_max_prompts, default.restore_max_bytes, default.restore_timeout_s) == (10_000, 32 << 20, 60)
    bigger = read_prompts_config({"SPARK_PROMPTS_RESTORE_MAX_BYTES": str(100 << 20)})
    assert bigger.server.max_message_bytes >= 100 << 20
    with pytest.raises(ConfigError) as raised:
        read_prompts_config({"SPARK_PROMPTS_RESTORE_MAX_PROMPTS": "0", "SPARK_PROMPTS_RESTORE_TIMEOUT_S": "soon"})
    assert "SPARK_PROMPTS_RESTORE_MAX_PROMPTS" in str(raised.value)
    assert "SPARK_PROMPTS_RESTORE_TIMEOUT_S" in str(raised.value)


def test_llm_daily_token_budget() -> None:
    assert read_llm_config({}).daily_token_budget == 2_000_000
    assert read_llm_config({"SPARK_LLM_DAILY_TOKEN_BUDGET": "0"}).daily_token_budget == 0
    assert read_llm_config({"SPARK_LLM_DAILY_TOKEN_BUDGET": "50000"}).daily_token_budget == 50_000
    for bad in ("-1", "lots", "1.5"):
        with pytest.raises(ConfigError, match="SPARK_LLM_DAILY_TOKEN_BUDGET"):
            read_llm_config({"SPARK_LLM_DAILY_TOKEN_BUDGET": bad})


def test_llm_provider_connections_are_enough_for_a_thousand_streams_by_default() -> None:
    """Each open stream holds one connection to its provider: 256 left a burst of 1,000 streams waiting."""
    assert read_llm_config({"OPENAI_API_KEY": "k"}).providers["openai"].max_connections == 4096
    given = read_llm_config({"OPENAI_API_KEY": "k", "SPARK_LLM_PROVIDER_CONNECTIONS": "64"})
    assert given.providers["openai"].max_connections == 64
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match="SPARK_LLM_PROVIDER_CONNECTIONS"):
            read_llm_config({"SPARK_LLM_PROVIDER_CONNECTIONS": bad})
