"""Daily token budgets over real gRPC with the production interceptors, a real store (SQLite and Redis) shared
by instances, and a local provider speaking the real OpenAI and Anthropic protocols."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from google.api import httpbody_pb2
from google.rpc import error_details_pb2, status_pb2
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from services.access.internal import InternalToken
from services.common.server import RunningServer
from services.common.store import Store
from services.common.store.base import decode_counter
from services.llm.budget import SPACE, counter_key
from services.llm.config import read_config
from services.llm.server import build_server
from tests.fakes.providers import FakeProvider, running_fake
from tests.integration.conftest import StoreFactory

TEXT = "Hello there"
REPLY = "Hello from the fake"
# What the fake reports for TEXT and REPLY: one prompt token per word, one completion token per 4-character delta.
ACTUAL = len(TEXT.split()) + math.ceil(len(REPLY) / 4)
# How often instances return unused budget leases (and usage counts) to the store.
FLUSH_S = 0.02
# The suite's own token: the calls below are made as vision makes them, for a user of its own.
INTERNAL_TOKEN = "budget-internal-token-" + "0123456789abcdef" * 2


def _estimate(max_tokens: int, text: str = TEXT) -> int:
    """The service's reservation for one text message: a token per 4 characters, plus max_tokens (the test
    models' caps and defaults are all larger than the max_tokens used here)."""
    return math.ceil(len(text) / 4) + max_tokens


@dataclass
class Llm:
    stub: llm_pb2_grpc.LlmServiceStub
    running: RunningServer
    channel: grpc.aio.Channel
    store: Store


Start = Callable[..., Awaitable[Llm]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with running_fake(reply=REPLY, chunk_chars=4) as provider:
        yield provider


@pytest.fixture
async def start(fake: FakeProvider, store_factory: StoreFactory) -> AsyncIterator[Start]:
    """Starts llm instances, each with a store of its own on the same data, as separate processes would run."""
    started: list[Llm] = []

    async def start_one(budget: int, **env: str) -> Llm:
        config = read_config(
            {
                "SPARK_LLM_PORT": "0",
                "SPARK_LLM_METRICS_PORT": "0",
                "OPENAI_API_KEY": "sk-test",
                "ANTHROPIC_API_KEY": "ak-test",
                "SPARK_LLM_USAGE_FLUSH_S": str(FLUSH_S),
                "SPARK_LLM_BACKOFF_BASE_S": "0.01",
                "SPARK_LLM_DAILY_TOKEN_BUDGET": str(budget),
                "SPARK_INTERNAL_TOKEN": INTERNAL_TOKEN,
                **fake.env(),
                **env,
            }
        )
        store = store_factory()
        running = await build_server(config, store)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        llm = Llm(llm_pb2_grpc.LlmServiceStub(channel), running, channel, store)
        started.append(llm)
        return llm

    yield start_one
    for llm in started:
        await llm.channel.close()
        await llm.running.stop()


@pytest.fixture
def used(store_factory: StoreFactory) -> Callable[[str], Awaitable[int | None]]:
    """Reads a caller's settled counter for today through a store of the test's own.

    An instance returns what its calls did not use to the store at its next flush (every FLUSH_S), so a value
    is read as settled once it has not changed over several flushes."""
    store = store_factory()

    async def read(caller: str) -> int | None:
        entry = await store.get(SPACE, counter_key(dt.datetime.now(dt.UTC).date(), caller))
        return None if entry is None else decode_counter(entry.value)

    async def settled(caller: str) -> int | None:
        deadline = time.monotonic() + 5
        value = await read(caller)
        while time.monotonic() < deadline:
            await asyncio.sleep(FLUSH_S * 5)
            value, previous = await read(caller), value
            if value == previous:
                break
        return value

    return settled


Used = Callable[[str], Awaitable[int | None]]


def _typed(max_tokens: int, text: str = TEXT, **fields: object) -> llm_pb2.GenerateContentRequest:
    message = llm_pb2.Message(role="user", parts=[llm_pb2.ContentPart(text=text)])
    return llm_pb2.GenerateContentRequest(
        model="gpt-4o-mini",
        messages=[message],
        max_tokens=max_tokens,
        **fields,  # type: ignore[arg-type]
    )


def _body(max_tokens: int, **fields: object) -> httpbody_pb2.HttpBody:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": TEXT}], "max_tokens": max_tokens}
    return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps({**body, **fields}).encode())


def _user(name: str) -> tuple[tuple[str, str], ...]:
    """A call on behalf of `name`: x-spark-user counts only next to the suite's internal token."""
    return InternalToken(INTERNAL_TOKEN).on_behalf_of(name)


def _retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    details = next(v for k, v in error.trailing_metadata() or () if k == "grpc-status-details-bin")
    retry = error_details_pb2.RetryInfo()
    for detail in status_pb2.Status.FromString(details).details:
        if detail.Unpack(retry):
            return float(retry.retry_delay.ToMilliseconds()) / 1000
    return None


async def _eventually(read: Callable[[], Awaitable[int | None]], expected: Callable[[int | None], bool]) -> int | None:
    """Polls until `expected` holds (a stream's reconciliation runs as the server winds the call down)."""
    deadline = time.monotonic() + 5
    value = await read()
    while not expected(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        value = await read()
    return value


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_a_call_under_budget_is_served_and_charged_what_it_used(start: Start, used: Used) -> None:
    llm = await start(budget=1000)
    reply = await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert reply.text == REPLY and reply.usage.total_tokens == ACTUAL
    assert await used("ada") == ACTUAL
    messages = [
        m
        async for m in llm.stub.StreamGenerateContent(
            llm_pb2.StreamGenerateContentRequest(request=_typed(50)), metadata=_user("ada")
        )
    ]
    assert messages[-1].done.usage.total_tokens == ACTUAL
    assert await _eventually(lambda: used("ada"), lambda v: v == 2 * ACTUAL) == 2 * ACTUAL


@pytest.mark.parametrize(
    "rpc", ["GenerateContent", "StreamGenerateContent", "CreateChatCompletion", "StreamChatCompletion"]
)
async def test_a_call_that_would_exceed_is_refused_before_the_provider_is_asked(
    start: Start, fake: FakeProvider, used: Used, rpc: str
) -> None:
    budget = ACTUAL + _estimate(50)
    llm = await start(budget=budget)
    await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert await used("ada") == ACTUAL
    sent = len(fake.requests)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if rpc == "GenerateContent":
            await llm.stub.GenerateContent(_typed(51), metadata=_user("ada"))
        elif rpc == "StreamGenerateContent":
            typed = llm_pb2.StreamGenerateContentRequest(request=_typed(51))
            [m async for m in llm.stub.StreamGenerateContent(typed, metadata=_user("ada"))]
        elif rpc == "CreateChatCompletion":
            await llm.stub.CreateChatCompletion(
                llm_pb2.CreateChatCompletionRequest(body=_body(51)), metadata=_user("ada")
            )
        else:
            wire = llm_pb2.StreamChatCompletionRequest(body=_body(51, stream=True))
            [m async for m in llm.stub.StreamChatCompletion(wire, metadata=_user("ada"))]
    error = caught.value
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"daily token budget of {budget} tokens for user 'ada'" in (error.details() or "")
    assert "00:00 UTC" in (error.details() or "")
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    delay = _retry_delay_s(error)
    assert delay is not None and abs(delay - (midnight - now).total_seconds()) < 60
    assert len(fake.requests) == sent
    assert await used("ada") == ACTUAL
    # Exactly what is left still fits.
    await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert await used("ada") == 2 * ACTUAL


async def test_a_used_up_budget_says_so_and_counts_the_refusal(start: Start, used: Used) -> None:
    # One-letter words: the fake counts more prompt tokens (one per word) than the estimate (one per 4 characters).
    text = " ".join("a" * 20)
    reply_tokens = 1  # max_tokens 1: the fake sends one delta
    actual = len(text.split()) + reply_tokens
    assert _estimate(1, text) < actual
    llm = await start(budget=actual)
    await llm.stub.GenerateContent(_typed(1, text), metadata=_user("ada"))
    assert await used("ada") == actual
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await llm.stub.GenerateContent(_typed(1), metadata=_user("ada"))
    assert caught.value.details() == (
        f"daily token budget of {actual} tokens for user 'ada' is used up; it resets at 00:00 UTC"
    )
    endpoint = llm.running.metrics_endpoint
    assert endpoint is not None
    text = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{endpoint.port}/metrics")
    assert 'llm_budget_refusals_total{reason="exhausted"} 1.0' in text


async def test_a_failed_provider_call_gives_the_reservation_back(start: Start, fake: FakeProvider, used: Used) -> None:
    budget = _estimate(50)
    llm = await start(budget=budget, SPARK_LLM_MAX_ATTEMPTS="1")
    fake.fail_next(2, 500)  # gpt-4o-mini, then its fallback claude-haiku-4-5
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert await used("ada") == 0
    fake.fail_next(2, 500)
    with pytest.raises(grpc.aio.AioRpcError):
        [
            m
            async for m in llm.stub.StreamGenerateContent(
                llm_pb2.StreamGenerateContentRequest(request=_typed(50)), metadata=_user("ada")
            )
        ]
    assert await _eventually(lambda: used("ada"), lambda v: v == 0) == 0
    # The whole budget is still there.
    await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert await used("ada") == ACTUAL


async def test_a_stream_broken_midway_is_charged_for_what_was_sent(
    start: Start, fake: FakeProvider, used: Used
) -> None:
    llm = await start(budget=1000)
    fake.fail_mid_stream(1, after_deltas=2)
    request = llm_pb2.StreamGenerateContentRequest(request=_typed(50))
    call = llm.stub.StreamGenerateContent(request, metadata=_user("ada"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [m async for m in call]
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    # No usage came: the prompt's estimate plus the two 4-character deltas the provider sent.
    expected = math.ceil(len(TEXT) / 4) + 2
    assert await _eventually(lambda: used("ada"), lambda v: v == expected) == expected


async def test_a_caller_who_leaves_gets_the_reservation_back(start: Start, fake: FakeProvider, used: Used) -> None:
    llm = await start(budget=1000)
    fake.delay_s = 5
    call = llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert await _eventually(lambda: used("ada"), lambda v: v == _estimate(50)) == _estimate(50)
    call.cancel()
    assert await _eventually(lambda: used("ada"), lambda v: v == 0) == 0

    fake.delay_s, fake.gap_s = 0.0, 0.5
    stream = llm.stub.StreamGenerateContent(
        llm_pb2.StreamGenerateContentRequest(request=_typed(50)), metadata=_user("grace")
    )
    first = await stream.read()
    assert first.delta == REPLY[:4]
    stream.cancel()
    prompt = math.ceil(len(TEXT) / 4)
    # Charged the prompt and what had been generated when it left, not the whole reservation.
    value = await _eventually(lambda: used("grace"), lambda v: v is not None and v < _estimate(50))
    assert value is not None and prompt < value < _estimate(50)


async def test_callers_have_budgets_of_their_own(start: Start, fake: FakeProvider, used: Used) -> None:
    llm = await start(budget=_estimate(50))
    await llm.stub.CreateChatCompletion(llm_pb2.CreateChatCompletionRequest(body=_body(50)), metadata=_user("ada"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # A service calling for its user (vision) forwards the user's identity as metadata. The request's old
    # `caller` field (7, now reserved) is ignored: it let any caller charge anyone.
    naming_mallory = _typed(50)
    naming_mallory.MergeFromString(b"\x3a\x07mallory")
    assert naming_mallory.SerializeToString().endswith(b"\x3a\x07mallory")
    await llm.stub.GenerateContent(naming_mallory, metadata=_user("grace"))
    assert (await used("ada"), await used("grace"), await used("mallory")) == (ACTUAL, ACTUAL, None)


async def test_a_budget_is_shared_by_every_instance(start: Start, fake: FakeProvider, used: Used) -> None:
    budget = ACTUAL + _estimate(50)
    first, second = await start(budget=budget), await start(budget=budget)
    await first.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await second.stub.GenerateContent(_typed(51), metadata=_user("ada"))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # What the first call did not use is the first instance's until its next flush returns it to the store.
    assert await used("ada") == ACTUAL
    await second.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert await used("ada") == 2 * ACTUAL


async def test_a_cached_answer_costs_nothing(start: Start, fake: FakeProvider, used: Used) -> None:
    # Room for one reservation of this request, not for a second next to the first's usage.
    llm = await start(budget=_estimate(90))
    request = _typed(90, temperature=0)
    original = await llm.stub.GenerateContent(request, metadata=_user("ada"))
    assert await llm.stub.GenerateContent(request, metadata=_user("ada")) == original
    assert len(fake.requests) == 1 and await used("ada") == ACTUAL


async def test_a_budget_of_zero_is_no_budget(start: Start, fake: FakeProvider, used: Used) -> None:
    llm = await start(budget=0)
    for _ in range(3):
        await llm.stub.GenerateContent(_typed(32_768), metadata=_user("ada"))
    assert len(fake.requests) == 3 and await used("ada") is None


async def test_a_budget_that_cannot_be_checked_refuses_the_call(start: Start, fake: FakeProvider) -> None:
    llm = await start(budget=1000)
    await llm.store.close()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await llm.stub.GenerateContent(_typed(50), metadata=_user("ada"))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "daily token budget cannot be checked" in (caught.value.details() or "")
    assert _retry_delay_s(caught.value) == 1.0
    assert fake.requests == []
