"""Wires the llm service: registry, providers, breakers, gateway, cache, budget, usage and the servicer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
from opentelemetry.trace import Tracer
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from services.access.checkpoint import build_checkpoint
from services.access.metrics import AccessMetrics
from services.common import periodic
from services.common.metrics import ServiceMetrics
from services.common.server import Closer, RunningServer, service_store, start_server
from services.common.store import Store
from services.llm.breaker import Breaker, BreakerState
from services.llm.budget import TokenBudget
from services.llm.cache import ResponseCache
from services.llm.completions import Completions
from services.llm.config import LlmConfig
from services.llm.gateway import Gateway, RetryPolicy
from services.llm.metrics import LlmMetrics
from services.llm.providers.anthropic import AnthropicProvider
from services.llm.providers.base import Provider, ProviderSettings
from services.llm.providers.openai_compatible import OpenAICompatibleProvider
from services.llm.registry import Registry
from services.llm.service import LlmServicer
from services.llm.usage import UsageLedger

SERVICE_NAME = llm_pb2.DESCRIPTOR.services_by_name["LlmService"].full_name


def build_providers(
    registry: Registry, settings: Mapping[str, ProviderSettings], tracer: Tracer | None = None
) -> dict[str, Provider]:
    """One SDK client per configured provider; with a tracer, each HTTP call is a span of the request's trace."""
    providers: dict[str, Provider] = {}
    for name, provider_settings in settings.items():
        if registry.providers[name].api == "anthropic":
            providers[name] = AnthropicProvider(provider_settings, tracer=tracer)
        else:
            providers[name] = OpenAICompatibleProvider(provider_settings, tracer=tracer)
    return providers


def build_breakers(config: LlmConfig, metrics: LlmMetrics) -> dict[str, Breaker]:
    breakers = {}
    for name in config.registry.providers:

        def report(state: BreakerState, provider: str = name) -> None:
            metrics.breaker_state(provider, state)

        breakers[name] = Breaker(
            failure_threshold=config.breaker.failure_threshold, open_s=config.breaker.open_s, on_change=report
        )
        report(BreakerState.CLOSED)
    return breakers


async def build_server(config: LlmConfig, store: Store | None = None) -> RunningServer:
    """Starts the llm server; opens the configured store unless one is passed in (tests share one)."""
    owned, active_store, tracer_provider = service_store(config.server, config.redis_url, config.data_dir, store)
    service_metrics = ServiceMetrics()
    metrics = LlmMetrics(service_metrics.registry)
    checkpoint = build_checkpoint(config.gate, active_store, AccessMetrics(service_metrics.registry), [SERVICE_NAME])
    tracer = tracer_provider.get_tracer(__name__) if config.server.otlp_endpoint else None
    providers = build_providers(config.registry, config.providers, tracer)
    breakers = build_breakers(config, metrics)
    policy = RetryPolicy(config.max_attempts, config.backoff_base_s, config.backoff_max_s)
    gateway = Gateway(config.registry, providers, breakers, policy, metrics)
    ledger = UsageLedger(active_store, config.registry, metrics)
    cache = ResponseCache(active_store, config.cache_ttl_s)
    budget = TokenBudget(active_store, config.daily_token_budget, metrics)
    completions = Completions(gateway, config.limits, cache, ledger, metrics, budget=budget)
    servicer = LlmServicer(
        completions,
        config.registry,
        providers,
        breakers,
        ledger,
        timeout_s=config.timeout_s,
        keepalive_s=config.keepalive_s,
    )

    def register(server: grpc.aio.Server) -> None:
        llm_pb2_grpc.add_LlmServiceServicer_to_server(servicer, server)

    # Usage counts and unused budget leases go to the store every few seconds, and once more at shutdown.
    stop_flushers = [periodic.start(config.usage_flush_s, flush) for flush in (ledger.flush, budget.flush)]

    async def close_providers() -> None:
        await asyncio.gather(*(provider.close() for provider in providers.values()))

    # Run in reverse: the last flush of usage needs the store.
    closers: list[Closer] = [active_store.close] if owned else []
    closers += [close_providers, *stop_flushers]
    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=closers,
        metrics=service_metrics,
        tracer_provider=tracer_provider,
        admissions=checkpoint,
    )
