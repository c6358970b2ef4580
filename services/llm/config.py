"""The llm service's settings; the only reader of the environment for this service.

Provider keys and base URLs are read from the variables the registry names
(OPENAI_API_KEY, ANTHROPIC_BASE_URL, ...), so adding a provider to the
registry needs no code here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.access.config import GateConfig, read_gate_config
from services.common.config import EnvReader, ServerConfig, read_server_config
from services.llm.guard import GuardLimits, InjectionMode
from services.llm.providers.base import ProviderSettings
from services.llm.registry import DEFAULT_REGISTRY_PATH, Registry, RegistryError, load_registry

DEFAULT_PORT = 50052
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int
    open_s: float


@dataclass(frozen=True, slots=True)
class LlmConfig:
    server: ServerConfig
    data_dir: Path
    redis_url: str | None
    gate: GateConfig
    registry: Registry
    # Providers with a key, by registry name; the settings hold the key, so they are kept out of repr.
    providers: Mapping[str, ProviderSettings] = field(repr=False)
    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    breaker: BreakerSettings
    limits: GuardLimits
    cache_ttl_s: float
    keepalive_s: float
    usage_flush_s: float
    # Tokens per caller per UTC day, summed over instances; 0 means no budget.
    daily_token_budget: int


def read_config(environ: Mapping[str, str] | None = None) -> LlmConfig:
    env = EnvReader(os.environ if environ is None else environ)
    registry_path = env.path("SPARK_LLM_MODELS", str(DEFAULT_REGISTRY_PATH))
    try:
        registry = load_registry(registry_path)
    except RegistryError as error:
        env.problem(f"SPARK_LLM_MODELS: {error}")
        registry = load_registry(DEFAULT_REGISTRY_PATH)
    default_model = env.optional_text("DEFAULT_MODEL")
    if default_model:
        try:
            registry = registry.with_default(default_model)
        except RegistryError as error:
            env.problem(f"DEFAULT_MODEL: {error}")
    providers: dict[str, ProviderSettings] = {}
    connections = env.integer("SPARK_LLM_PROVIDER_CONNECTIONS", 4096, minimum=1, maximum=65536)
    for spec in registry.providers.values():
        key = env.optional_text(spec.key_variable)
        base_url = env.text(spec.base_url_variable, spec.base_url)
        if not base_url.startswith(("http://", "https://")):
            env.problem(f"{spec.base_url_variable}={base_url!r} is not an http(s) URL")
        if key:
            providers[spec.name] = ProviderSettings(spec.name, key, base_url.rstrip("/"), max_connections=connections)
    injection: InjectionMode = "flag"
    match env.choice("SPARK_LLM_INJECTION", "flag", ("off", "flag", "refuse")):
        case "off":
            injection = "off"
        case "refuse":
            injection = "refuse"
    config = LlmConfig(
        # Images arrive inline as data URLs.
        server=read_server_config(env, "llm", default_port=DEFAULT_PORT, max_message_bytes=32 * MIB),
        data_dir=env.path("SPARK_DATA_DIR", "./var"),
        redis_url=env.optional_text("REDIS_URL"),
        gate=read_gate_config(env),
        registry=registry,
        providers=providers,
        timeout_s=env.number("SPARK_LLM_TIMEOUT_S", 120.0, minimum=0.01),
        max_attempts=env.integer("SPARK_LLM_MAX_ATTEMPTS", 3, minimum=1, maximum=10),
        backoff_base_s=env.number("SPARK_LLM_BACKOFF_BASE_S", 0.25),
        backoff_max_s=env.number("SPARK_LLM_BACKOFF_MAX_S", 8.0),
        breaker=BreakerSettings(
            failure_threshold=env.integer("SPARK_LLM_BREAKER_FAILURES", 5, minimum=1, maximum=1000),
            open_s=env.number("SPARK_LLM_BREAKER_OPEN_S", 30.0, minimum=0.01),
        ),
        limits=GuardLimits(
            max_messages=env.integer("SPARK_LLM_MAX_MESSAGES", 100, minimum=1, maximum=10_000),
            max_message_chars=env.integer("SPARK_LLM_MAX_MESSAGE_CHARS", 10_000, minimum=1, maximum=10_000_000),
            max_tokens=env.integer("SPARK_LLM_MAX_TOKENS", 32_768, minimum=1, maximum=1_000_000),
            injection=injection,
        ),
        cache_ttl_s=env.number("SPARK_LLM_CACHE_TTL_S", 3600.0),
        keepalive_s=env.number("SPARK_LLM_KEEPALIVE_S", 15.0, minimum=0.01),
        usage_flush_s=env.number("SPARK_LLM_USAGE_FLUSH_S", 2.0, minimum=0.01),
        daily_token_budget=env.integer("SPARK_LLM_DAILY_TOKEN_BUDGET", 2_000_000, minimum=0, maximum=1_000_000_000_000),
    )
    env.finish()
    return config
