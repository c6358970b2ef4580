"""The OpenAI-protocol provider sends its requests straight on aiohttp (services/llm/providers/direct.py):
here each one is held against the official SDK sending the same request to the same fake provider.

The same method, path, headers and JSON body must arrive, and the same failures must come back as the
same errors, or the direct path is not allowed to stand in for the SDK."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import openai
import pytest

from services.llm.chat import ChatMessage, ChatRequest, Completion, ImagePart, TextPart
from services.llm.providers.base import ProviderError, ProviderSettings, status_error
from services.llm.providers.openai_compatible import OpenAICompatibleProvider, _error_message, request_payload
from tests.fakes.providers import FakeProvider, RecordedRequest, running_fake

KEY = "sk-test-0123456789"
MODEL = "gpt-4o-mini"
TIMEOUT_S = 30.0
# Set by each side's HTTP library, not by the SDK: where it connects and how long the body is.
TRANSPORT_HEADERS = frozenset({"host", "content-length", "connection"})

REQUESTS = {
    "text": ChatRequest(model=MODEL, messages=(ChatMessage("user", "Say hello"),)),
    "everything": ChatRequest(
        model=MODEL,
        messages=(
            ChatMessage("system", "Answer in JSON."),
            ChatMessage(
                "user",
                (TextPart("What is this?"), ImagePart("data:image/png;base64,iVBORw0KGgo=", detail="low")),
            ),
        ),
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=("END",),
        json_mode=True,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
    ),
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with running_fake() as provider:
        yield provider


def sdk(base_url: str, timeout_s: float = TIMEOUT_S) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=timeout_s)


def direct(base_url: str, connect_timeout_s: float = 10.0) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        ProviderSettings("openai", KEY, base_url, connect_timeout_s=connect_timeout_s, max_connections=10)
    )


def as_sent(request: RecordedRequest) -> tuple[str, str, str, dict[str, str], object]:
    headers = {k: v for k, v in request.headers.items() if k not in TRANSPORT_HEADERS}
    return request.method, request.path, request.query, headers, request.body


def sdk_error(error: openai.OpenAIError) -> ProviderError:
    """How the gateway mapped the SDK's exceptions when it sent through the SDK."""
    if isinstance(error, openai.APITimeoutError):
        return ProviderError("openai", "timeout", "openai did not answer in time")
    if isinstance(error, openai.APIStatusError):
        detail = _error_message(error.body) or error.message
        return status_error("openai", error.status_code, detail, error.response.headers)
    if isinstance(error, openai.APIConnectionError):
        return ProviderError("openai", "retryable", "could not reach openai")
    raise AssertionError(f"unexpected {error!r}")


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_a_completion_goes_out_as_the_sdk_sends_it(fake: FakeProvider, name: str) -> None:
    request = REQUESTS[name]
    client, provider = sdk(fake.openai_base_url), direct(fake.openai_base_url)
    try:
        await client.chat.completions.create(**request_payload(request, MODEL))
        completion = await provider.complete(request, MODEL, TIMEOUT_S)
    finally:
        await client.close()
        await provider.close()
    by_sdk, by_direct = fake.requests
    assert as_sent(by_direct) == as_sent(by_sdk)
    assert by_direct.headers["authorization"] == f"Bearer {KEY}"
    assert isinstance(completion, Completion) and completion.text


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_a_stream_goes_out_as_the_sdk_sends_it(fake: FakeProvider, name: str) -> None:
    request = REQUESTS[name]
    client, provider = sdk(fake.openai_base_url), direct(fake.openai_base_url)
    try:
        payload = request_payload(request, MODEL)
        stream = await client.chat.completions.create(**payload, stream=True, stream_options={"include_usage": True})
        sdk_text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        events = [event async for event in provider.stream(request, MODEL, TIMEOUT_S)]
    finally:
        await client.close()
        await provider.close()
    by_sdk, by_direct = fake.requests
    assert as_sent(by_direct) == as_sent(by_sdk)
    assert "".join(getattr(event, "text", "") for event in events) == sdk_text


async def both_fail(
    base_url: str, *, stream: bool = False, timeout_s: float = TIMEOUT_S
) -> tuple[openai.OpenAIError, ProviderError]:
    """The same request that fails, through the SDK and through the direct client: what each raised."""
    request = REQUESTS["text"]
    payload = request_payload(request, MODEL)
    client, provider = sdk(base_url, timeout_s), direct(base_url)
    try:
        with pytest.raises(openai.OpenAIError) as raised:
            await client.chat.completions.create(**payload, stream=stream)
        with pytest.raises(ProviderError) as direct_raised:
            if stream:
                async for _ in provider.stream(request, MODEL, timeout_s):
                    pass
            else:
                await provider.complete(request, MODEL, timeout_s)
    finally:
        await client.close()
        await provider.close()
    return raised.value, direct_raised.value


@pytest.mark.parametrize(
    ("status", "retry_after"), [(400, None), (401, None), (404, None), (429, 7.0), (500, None), (503, 2.0)]
)
async def test_an_error_status_becomes_the_error_the_sdk_would_have_raised(
    fake: FakeProvider, status: int, retry_after: float | None
) -> None:
    fake.fail_next(2, status, retry_after=retry_after)
    by_sdk, by_direct = await both_fail(fake.openai_base_url)
    assert isinstance(by_sdk, openai.APIStatusError)
    assert by_direct == sdk_error(by_sdk)
    assert by_direct.status == status


async def test_a_stream_refused_with_a_status_becomes_the_same_error(fake: FakeProvider) -> None:
    fake.fail_next(2, 429, retry_after=3.0)
    by_sdk, by_direct = await both_fail(fake.openai_base_url, stream=True)
    assert isinstance(by_sdk, openai.APIStatusError)
    assert by_direct == sdk_error(by_sdk)


async def test_a_slow_provider_is_a_timeout_for_both() -> None:
    async with running_fake(delay_s=2.0) as slow:
        by_sdk, by_direct = await both_fail(slow.openai_base_url, timeout_s=0.3)
    assert isinstance(by_sdk, openai.APITimeoutError)
    assert by_direct == sdk_error(by_sdk)


async def test_a_provider_out_of_reach_is_the_same_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    by_sdk, by_direct = await both_fail(closed)
    assert isinstance(by_sdk, openai.APIConnectionError)
    assert by_direct == sdk_error(by_sdk)
