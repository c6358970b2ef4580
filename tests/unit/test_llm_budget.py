"""The daily token budget: the estimate, reserving and reconciling on a real SQLite store, refusals and fail-closed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from prometheus_client import CollectorRegistry

from services.common.errors import ResourceExhausted, Unavailable, status_code_of, to_rpc_status
from services.common.store import SqliteStore, Store
from services.common.store.base import decode_counter
from services.llm.budget import SPACE, Estimate, TokenBudget, counter_key, estimate
from services.llm.chat import ChatMessage, ChatRequest, ImagePart, TextPart, Usage
from services.llm.metrics import LlmMetrics
from services.llm.registry import ModelSpec, Price

NOON = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
TODAY = NOON.date()


def _model(max_tokens: int, default_max_tokens: int | None = None) -> ModelSpec:
    return ModelSpec("m", "openai", "m", False, default_max_tokens, max_tokens, (), Price(0, 0))


def _request(*messages: ChatMessage, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest("m", messages, max_tokens=max_tokens)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = SqliteStore(tmp_path / "spark.db")
    yield opened
    await opened.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _budget(store: Store, registry: CollectorRegistry, daily: int, clock: Clock | None = None) -> TokenBudget:
    return TokenBudget(store, daily, LlmMetrics(registry), now=clock or Clock(NOON))


async def _used(store: Store, caller: str, day: dt.date = TODAY) -> int | None:
    entry = await store.get(SPACE, counter_key(day, caller))
    return None if entry is None else decode_counter(entry.value)


def _refusals(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("llm_budget_refusals_total", {"reason": reason}) or 0.0


# --- the estimate --------------------------------------------------------------------------------


def test_the_prompt_is_a_quarter_of_its_characters_rounded_up_plus_a_fixed_amount_per_image() -> None:
    request = _request(
        ChatMessage("system", "x" * 10),
        ChatMessage("user", (TextPart("y" * 7), ImagePart("https://example.com/a.png"), ImagePart("data:,"))),
        max_tokens=100,
    )
    assert estimate(request, [_model(4096)]) == Estimate(prompt_tokens=5 + 2000, completion_tokens=100)


@pytest.mark.parametrize(
    ("max_tokens", "default", "cap", "expected"),
    [
        (100, None, 4096, 100),  # what the caller asked for
        (9000, None, 4096, 4096),  # capped by the model, as the gateway sends it
        (None, 1024, 4096, 1024),  # the model's default
        (None, None, 16384, 16384),  # the provider's own default: anything up to the cap
    ],
)
def test_the_completion_part_is_the_effective_max_tokens(
    max_tokens: int | None, default: int | None, cap: int, expected: int
) -> None:
    request = _request(ChatMessage("user", "hi"), max_tokens=max_tokens)
    assert estimate(request, [_model(cap, default)]).completion_tokens == expected


def test_the_completion_part_is_the_worst_case_over_the_fallbacks() -> None:
    request = _request(ChatMessage("user", "hi"))
    assert estimate(request, [_model(64000, 4096), _model(16384)]).completion_tokens == 16384


def test_what_a_call_spent_is_the_providers_count_or_else_estimated_from_its_output() -> None:
    guess = Estimate(prompt_tokens=30, completion_tokens=500)
    assert guess.total == 530
    assert guess.spent(Usage(12, 34), output_chars=1000) == 46
    assert guess.spent(None, output_chars=9) == 30 + 3


# --- reserving and reconciling -------------------------------------------------------------------


async def test_a_reservation_is_held_then_reconciled_to_what_was_used(
    store: Store, registry: CollectorRegistry
) -> None:
    budget = _budget(store, registry, 1000)
    reservation = await budget.reserve("ada", 400)
    assert await _used(store, "ada") == 400
    await budget.reconcile(reservation, 123)
    # What was not used stays leased to this instance until the next flush returns it.
    assert await _used(store, "ada") == 400
    await budget.flush()
    assert await _used(store, "ada") == 123
    await budget.reconcile(await budget.reserve("ada", 50), 0)
    await budget.flush()
    assert await _used(store, "ada") == 123


async def test_one_lease_serves_many_calls_without_a_store_write(store: Store, registry: CollectorRegistry) -> None:
    budget = _budget(store, registry, 2_000_000)
    for _ in range(50):
        await budget.reconcile(await budget.reserve("ada", 1000), 10)
    # One lease of the largest chunk (100,000 tokens) covered all fifty calls.
    assert await _used(store, "ada") == 100_000
    await budget.flush()
    assert await _used(store, "ada") == 500
    await budget.flush()
    assert await _used(store, "ada") == 500


async def test_calls_arriving_together_share_one_lease_at_a_time(store: Store, registry: CollectorRegistry) -> None:
    budget = _budget(store, registry, 2_000_000)
    await asyncio.gather(*(budget.reserve("ada", 16_000) for _ in range(16)))
    # Each lease of 100,000 serves six calls; sixteen need three leases, not sixteen.
    assert await _used(store, "ada") == 300_000


async def test_near_the_end_a_call_leases_just_what_it_needs(store: Store, registry: CollectorRegistry) -> None:
    budget = _budget(store, registry, 1000)  # leases of 50
    await budget.reserve("ada", 960)
    await budget.reserve("ada", 30)  # a chunk of 50 does not fit; 30 does
    assert await _used(store, "ada") == 990
    await budget.reserve("ada", 10)
    assert await _used(store, "ada") == 1000


async def test_instances_sharing_a_store_never_overspend_together(store: Store, registry: CollectorRegistry) -> None:
    first, second = _budget(store, registry, 1000), _budget(store, CollectorRegistry(), 1000)
    reservation = await first.reserve("ada", 900)
    with pytest.raises(ResourceExhausted):
        await second.reserve("ada", 200)
    await first.reconcile(reservation, 100)
    # The first instance holds what its call did not use until it flushes; then the second may have it.
    with pytest.raises(ResourceExhausted):
        await second.reserve("ada", 200)
    await first.flush()
    await second.reserve("ada", 200)
    assert await _used(store, "ada") == 300


async def test_a_call_that_would_go_over_is_refused_and_takes_nothing(
    store: Store, registry: CollectorRegistry
) -> None:
    budget = _budget(store, registry, 1000, Clock(dt.datetime(2026, 3, 14, 23, 0, 0, tzinfo=dt.UTC)))
    await budget.reserve("ada", 1000)  # exactly the budget fits
    with pytest.raises(ResourceExhausted) as refused:
        await budget.reserve("ada", 1)
    error = refused.value
    assert error.message == "daily token budget of 1000 tokens for user 'ada' is used up; it resets at 00:00 UTC"
    assert error.reason == "DAILY_TOKEN_BUDGET_EXCEEDED"
    assert error.metadata == {"budget": "1000", "remaining": "0", "estimate": "1", "resets_at": "2026-03-15T00:00:00Z"}
    assert error.retry_after_s == 3600.0
    assert await _used(store, "ada") == 1000
    assert _refusals(registry, "exhausted") == 1


async def test_a_refusal_with_some_budget_left_says_how_much(store: Store, registry: CollectorRegistry) -> None:
    budget = _budget(store, registry, 1000)
    await budget.reconcile(await budget.reserve("ada", 500), 700)
    with pytest.raises(ResourceExhausted) as refused:
        await budget.reserve("ada", 301)
    assert "has 300 tokens left, and this request may use up to 301" in refused.value.message
    assert "lower max_tokens" in refused.value.message
    assert refused.value.retry_after_s == 12 * 3600.0
    assert await _used(store, "ada") == 700
    await budget.reserve("ada", 300)


def test_a_refusal_is_resource_exhausted_with_a_retry_delay() -> None:
    status = to_rpc_status(ResourceExhausted("m", reason="DAILY_TOKEN_BUDGET_EXCEEDED", retry_after_s=90.5))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.ToMilliseconds() == 90_500


async def test_callers_and_days_have_budgets_of_their_own(store: Store, registry: CollectorRegistry) -> None:
    clock = Clock(NOON)
    budget = _budget(store, registry, 100, clock)
    await budget.reserve("ada", 100)
    await budget.reserve("grace", 100)
    with pytest.raises(ResourceExhausted):
        await budget.reserve("ada", 1)
    clock.now += dt.timedelta(hours=12)
    late = await budget.reserve("ada", 100)
    assert await _used(store, "ada", clock.now.date()) == 100
    assert await _used(store, "ada") == 100
    # A call reserved before midnight is reconciled on the day it was reserved.
    await budget.reconcile(late, 40)
    await budget.flush()
    assert await _used(store, "ada", clock.now.date()) == 40


async def test_concurrent_reservations_never_overspend(store: Store, registry: CollectorRegistry) -> None:
    budget = _budget(store, registry, 1000)
    results = await asyncio.gather(*(budget.reserve("ada", 100) for _ in range(25)), return_exceptions=True)
    granted = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, ResourceExhausted) for r in results if isinstance(r, BaseException))
    assert 0 < len(granted) <= 10
    assert await _used(store, "ada") == 100 * len(granted)


async def test_a_budget_of_zero_touches_no_store(store: Store, registry: CollectorRegistry) -> None:
    await store.close()
    budget = _budget(store, registry, 0)
    reservation = await budget.reserve("ada", 10**9)
    await budget.reconcile(reservation, 5)


async def test_an_unreachable_store_refuses_the_call(store: Store, registry: CollectorRegistry) -> None:
    budget = _budget(store, registry, 1000)
    reservation = await budget.reserve("ada", 10)  # leases 50
    await store.close()
    # What the lease still holds is served without the store; more is not.
    await budget.reserve("ada", 20)
    with pytest.raises(Unavailable) as refused:
        await budget.reserve("ada", 30)
    assert status_code_of(refused.value) is grpc.StatusCode.UNAVAILABLE
    assert refused.value.reason == "TOKEN_BUDGET_UNAVAILABLE" and refused.value.retry_after_s == 1.0
    assert _refusals(registry, "store_unavailable") == 1
    # Reconciling happens after the answer: a store failure then is logged, not raised; so is a flush's.
    await budget.reconcile(reservation, 30)
    await budget.flush()
