"""The gateway's routing against a local provider speaking the real OpenAI and Anthropic protocols.

Retries, Retry-After, fallbacks, breakers, deadlines and mid-stream failures,
with the production providers (the official SDKs) making real HTTP calls.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest
from prometheus_client import CollectorRegistry

from services.common.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable
from services.llm.breaker import Breaker, BreakerState
from services.llm.chat import ChatMessage, ChatRequest, Delta, Finished, Served
from services.llm.gateway import Gateway, MidStreamError, RetryPolicy
from services.llm.metrics import LlmMetrics
from services.llm.providers.base import Provider, ProviderSettings
from services.llm.registry import parse_registry
from services.llm.server import build_providers
from tests.fakes.providers import FakeProvider, running_fake
from tests.support.clock import ManualClock

REQUEST = ChatRequest("primary", (ChatMessage("user", "Hello there"),))


def _registry(fake: FakeProvider) -> Any:
    def provider(api: str) -> dict[str, str]:
        return {
            "api": api,
            "key_variable": "K",
            "base_url_variable": "U",
            "base_url": "http://x",
            "vision_model": "primary",
        }

    return parse_registry(
        {
            "default_model": "primary",
            "providers": {"openai": provider("openai"), "anthropic": provider("anthropic")},
            "models": {
                "primary": {"provider": "openai", "upstream": "gpt-4o-mini", "fallbacks": ["backup"]},
                "backup": {"provider": "anthropic", "upstream": "claude-haiku-4-5", "default_max_tokens": 64},
            },
        }
    )


class Sleeps:
    """Records backoff sleeps instead of waiting them out."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with running_fake(reply="Hello from the fake", chunk_chars=4) as provider:
        yield provider


Built = tuple[Gateway, dict[str, Breaker], Sleeps]


class GatewayFactory(Protocol):
    def __call__(
        self, *, threshold: int = 5, attempts: int = 3, open_s: float = 30.0, clock: ManualClock[float] | None = None
    ) -> Built: ...


@pytest.fixture
async def make_gateway(fake: FakeProvider) -> AsyncIterator[GatewayFactory]:
    """Builds gateways on the production providers and closes their SDK clients afterwards."""
    opened: list[Provider] = []

    def build(
        *, threshold: int = 5, attempts: int = 3, open_s: float = 30.0, clock: ManualClock[float] | None = None
    ) -> Built:
        return _gateway(fake, opened, threshold=threshold, attempts=attempts, open_s=open_s, clock=clock)

    yield build
    await asyncio.gather(*(provider.close() for provider in opened))


def _gateway(
    fake: FakeProvider,
    opened: list[Provider],
    *,
    threshold: int,
    attempts: int,
    open_s: float,
    clock: ManualClock[float] | None,
) -> Built:
    registry = _registry(fake)
    settings = {
        "openai": ProviderSettings("openai", "sk-test", fake.openai_base_url),
        "anthropic": ProviderSettings("anthropic", "ak-test", fake.anthropic_base_url),
    }
    providers = build_providers(registry, settings)
    opened.extend(providers.values())
    breakers = {
        name: Breaker(failure_threshold=threshold, open_s=open_s, **({"clock": clock} if clock else {}))
        for name in settings
    }
    sleeps = Sleeps()
    gateway = Gateway(
        registry,
        providers,
        breakers,
        RetryPolicy(max_attempts=attempts, backoff_base_s=0.1, backoff_max_s=1.0),
        LlmMetrics(CollectorRegistry()),
        rng=random.Random(7),
        sleep=sleeps,
    )
    return gateway, breakers, sleeps


async def test_a_completion_from_the_primary_model(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, _, _ = make_gateway()
    completion, served = await gateway.complete(REQUEST, 10)
    assert completion.text == "Hello from the fake"
    assert (served.model, served.provider, served.upstream_model) == ("primary", "openai", "gpt-4o-mini")
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-test"


async def test_server_errors_are_retried_with_jittered_backoff(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    gateway, _, sleeps = make_gateway()
    fake.fail_next(2, 503)
    completion, served = await gateway.complete(REQUEST, 10)
    assert served.provider == "openai" and completion.text
    assert len(fake.requests) == 3
    assert len(sleeps.calls) == 2 and all(0 <= s <= 0.1 * 2**i for i, s in enumerate(sleeps.calls))


async def test_retry_after_is_honoured(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, _, sleeps = make_gateway()
    fake.fail_next(1, 429, retry_after=0.75)
    await gateway.complete(REQUEST, 10)
    assert sleeps.calls == [0.75]


async def test_a_retry_after_beyond_the_deadline_moves_to_the_fallback(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    gateway, _, sleeps = make_gateway()
    fake.fail_next(1, 429, retry_after=30)
    _, served = await gateway.complete(REQUEST, 5)
    assert served.model == "backup" and served.skipped == ("primary",)
    assert sleeps.calls == []
    # The Anthropic fallback got the model's default max_tokens, which the Messages API requires.
    assert fake.requests[-1].api == "anthropic" and fake.requests[-1].body["max_tokens"] == 64


async def test_exhausted_retries_fall_back_to_the_next_model(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, _, _ = make_gateway()
    fake.fail_next(3, 500)
    completion, served = await gateway.complete(REQUEST, 10)
    assert (served.model, served.provider) == ("backup", "anthropic")
    assert completion.text == "Hello from the fake"
    assert [r.api for r in fake.requests] == ["openai"] * 3 + ["anthropic"]


async def test_rate_limits_everywhere_are_a_429_with_retry_info(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    gateway, _, _ = make_gateway(attempts=1)
    fake.fail_next(2, 429, retry_after=2)
    with pytest.raises(ResourceExhausted) as caught:
        await gateway.complete(REQUEST, 10)
    assert caught.value.retry_after_s == 2


async def test_a_bad_request_is_not_retried_or_sent_elsewhere(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, breakers, _ = make_gateway()
    fake.fail_next(1, 400, message="messages: too long")
    with pytest.raises(InvalidArgument, match="messages: too long"):
        await gateway.complete(REQUEST, 10)
    assert len(fake.requests) == 1
    assert breakers["openai"].consecutive_failures == 0


async def test_a_rejected_key_moves_to_the_next_provider_without_retrying(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    gateway, _, sleeps = make_gateway()
    fake.fail_next(1, 401)
    _, served = await gateway.complete(REQUEST, 10)
    assert served.provider == "anthropic" and sleeps.calls == []


async def test_the_breaker_opens_skips_the_provider_and_closes_after_a_good_trial(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    clock = ManualClock(1_000.0)
    gateway, breakers, _ = make_gateway(threshold=2, attempts=2, open_s=30, clock=clock)
    fake.fail_next(2, 500)
    _, served = await gateway.complete(REQUEST, 10)
    assert served.provider == "anthropic"
    assert breakers["openai"].state is BreakerState.OPEN
    calls = len(fake.requests)
    _, served = await gateway.complete(REQUEST, 10)
    assert served.provider == "anthropic"
    assert [r.api for r in fake.requests[calls:]] == ["anthropic"]  # openai was not even tried
    clock.now += 29.9
    assert breakers["openai"].state is BreakerState.OPEN
    clock.now += 0.1
    assert breakers["openai"].state is BreakerState.HALF_OPEN
    _, served = await gateway.complete(REQUEST, 10)
    assert served.provider == "openai"
    assert breakers["openai"].state is BreakerState.CLOSED


async def test_every_breaker_open_is_a_503_with_a_retry_hint(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, _, _ = make_gateway(threshold=1, attempts=1)
    fake.fail_next(2, 502)
    with pytest.raises(Unavailable, match="502"):
        await gateway.complete(REQUEST, 10)
    with pytest.raises(Unavailable, match="circuit breaker open") as caught:
        await gateway.complete(REQUEST, 10)
    assert caught.value.retry_after_s is not None and caught.value.retry_after_s >= 1


async def test_a_slow_provider_hits_the_request_timeout(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, _, _ = make_gateway(attempts=1)
    fake.delay_s = 2
    with pytest.raises(DeadlineExceeded):
        await gateway.complete(REQUEST, 0.3)


async def _collect(gateway: Gateway, request: ChatRequest = REQUEST) -> list[Any]:
    return [event async for event in gateway.stream(request, 10)]


async def test_a_stream_yields_served_deltas_and_usage(fake: FakeProvider, make_gateway: GatewayFactory) -> None:
    gateway, _, _ = make_gateway()
    events = await _collect(gateway)
    assert isinstance(events[0], Served) and events[0].model == "primary"
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Hello from the fake"
    assert isinstance(events[-1], Finished) and events[-1].usage is not None
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_a_stream_that_fails_before_its_first_token_falls_back(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    gateway, _, _ = make_gateway(attempts=1)
    fake.fail_next(1, 500)
    events = await _collect(gateway)
    assert isinstance(events[0], Served) and events[0].provider == "anthropic"
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Hello from the fake"


@pytest.mark.parametrize("model", ["primary", "backup"])
async def test_a_stream_that_breaks_after_output_raises_instead_of_ending_cleanly(
    fake: FakeProvider, make_gateway: GatewayFactory, model: str
) -> None:
    gateway, _, _ = make_gateway()
    fake.fail_mid_stream(1, after_deltas=2)
    seen: list[Any] = []
    with pytest.raises(MidStreamError):
        async for event in gateway.stream(ChatRequest(model, REQUEST.messages), 10):
            seen.append(event)
    assert [e.text for e in seen if isinstance(e, Delta)] == ["Hell", "o fr"]
    assert not any(isinstance(e, Finished) for e in seen)


@pytest.mark.parametrize("model", ["primary", "backup"])
async def test_a_malformed_event_mid_stream_is_a_failure_not_a_silent_end(
    fake: FakeProvider, make_gateway: GatewayFactory, model: str
) -> None:
    gateway, _, _ = make_gateway()
    fake.malformed_stream(1, after_deltas=1)
    seen: list[Any] = []
    with pytest.raises(MidStreamError, match="malformed"):
        async for event in gateway.stream(ChatRequest(model, REQUEST.messages), 10):
            seen.append(event)
    assert [e.text for e in seen if isinstance(e, Delta)] == ["Hell"]


async def test_a_rejected_key_never_echoes_the_providers_message(
    fake: FakeProvider, make_gateway: GatewayFactory
) -> None:
    gateway, _, _ = make_gateway(attempts=1)
    echoed = "Incorrect API key provided: sk-te****test"
    fake.fail_next(2, 401, message=echoed)
    with pytest.raises(Unavailable) as caught:
        await gateway.complete(REQUEST, 10)
    assert "sk-te" not in caught.value.message and "rejected the gateway's credentials" in caught.value.message
