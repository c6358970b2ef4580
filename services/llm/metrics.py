"""The llm service's own Prometheus metrics, registered next to the shared gRPC ones."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.llm.breaker import BreakerState
from services.llm.chat import Usage

_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class LlmMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._upstream = Counter(
            "llm_upstream_requests",
            "Provider calls by provider, model and outcome (ok, retryable, rate_limited, timeout, credentials, "
            "request, breaker_open).",
            ("provider", "model", "outcome"),
            registry=registry,
        )
        self._upstream_seconds = Histogram(
            "llm_upstream_seconds",
            "Time to a provider's answer (its first event, for streams), by provider.",
            ("provider",),
            buckets=_UPSTREAM_BUCKETS,
            registry=registry,
        )
        self._breaker = Gauge(
            "llm_breaker_state",
            "Circuit-breaker state per provider: 0 closed, 1 half-open, 2 open.",
            ("provider",),
            registry=registry,
        )
        self._tokens = Counter(
            "llm_tokens",
            "Tokens by provider, model, caller and kind (prompt, completion).",
            ("provider", "model", "caller", "kind"),
            registry=registry,
        )
        self._cost = Counter(
            "llm_cost_usd",
            "Cost in US dollars from the registry's prices.",
            ("provider", "model", "caller"),
            registry=registry,
        )
        self._cache = Counter(
            "llm_cache_lookups", "Response-cache lookups by result (hit, miss).", ("result",), registry=registry
        )
        self._injections = Counter(
            "llm_prompt_injections",
            "Requests matching a prompt-injection pattern, by pattern and action (flagged, refused).",
            ("pattern", "action"),
            registry=registry,
        )
        self._budget_refusals = Counter(
            "llm_budget_refusals",
            "Provider calls refused by the daily token budget, by reason (exhausted, store_unavailable).",
            ("reason",),
            registry=registry,
        )

    def upstream_success(self, provider: str, model: str, seconds: float) -> None:
        self._upstream.labels(provider, model, "ok").inc()
        self._upstream_seconds.labels(provider).observe(seconds)

    def upstream_failure(self, provider: str, model: str, outcome: str) -> None:
        self._upstream.labels(provider, model, outcome).inc()

    def breaker_state(self, provider: str, state: BreakerState) -> None:
        self._breaker.labels(provider).set(BREAKER_VALUES[state])

    def usage(self, provider: str, model: str, caller: str, usage: Usage, cost_usd: float) -> None:
        self._tokens.labels(provider, model, caller, "prompt").inc(usage.prompt_tokens)
        self._tokens.labels(provider, model, caller, "completion").inc(usage.completion_tokens)
        self._cost.labels(provider, model, caller).inc(cost_usd)

    def cache(self, hit: bool) -> None:
        self._cache.labels("hit" if hit else "miss").inc()

    def injection(self, patterns: tuple[str, ...], action: str) -> None:
        for pattern in patterns:
            self._injections.labels(pattern, action).inc()

    def budget_refusal(self, reason: str) -> None:
        self._budget_refusals.labels(reason).inc()
