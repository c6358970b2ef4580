"""Provider outages and slow providers: breakers open and close, fallbacks serve, timeouts fire on time.

OpenAI and Anthropic are two separate fake providers here (each speaking its
real wire protocol), so that one can fail or slow down while the other
serves. `gpt-4o-mini` (OpenAI) falls back to `claude-haiku-4-5` (Anthropic)
and back; OpenRouter, the first fallback in the registry, has no key and is
skipped. The breaker opens after three failures in a row, stays open for
three seconds, and every request has two seconds (`SPARK_LLM_TIMEOUT_S`) in
all (tests/faults/conftest.py). Breaker states are read where an operator
reads them: `/v1/providers`, the details of `/healthz`, and the
`llm_breaker_state` metric.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes.providers import DEFAULT_REPLY, FakeProviderThread
from tests.faults.conftest import BREAKER_FAILURES, BREAKER_OPEN_S, LLM_TIMEOUT_S
from tests.support.http import api_error, sse_events, wait_for
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.faults

FAILURES = BREAKER_FAILURES
OPEN_S = BREAKER_OPEN_S
TIMEOUT_S = LLM_TIMEOUT_S
HELLO = [{"role": "user", "content": "Hello there"}]
MINI = {"model": "gpt-4o-mini", "messages": HELLO}
HAIKU = {"model": "claude-haiku-4-5", "messages": HELLO}
PROVIDER_OF = {"gpt-4o-mini": "openai", "claude-haiku-4-5": "anthropic"}
BREAKER_METRIC = re.compile(r'^llm_breaker_state\{provider="(\w+)"\} (\S+)$', re.MULTILINE)


def breakers(client: httpx.Client) -> dict[str, tuple[str, int]]:
    """(state, consecutive failures) of each configured provider, from `/v1/providers`."""
    response = client.get("/v1/providers")
    assert response.status_code == 200, response.text
    return {
        p["name"]: (p["breaker"], p.get("consecutive_failures", 0))
        for p in response.json()["providers"]
        if p["configured"]
    }


def health_details(client: httpx.Client) -> dict[str, str]:
    services = {s["name"]: s for s in client.get("/healthz").json()["services"]}
    return dict(services["llm"]["details"])


def metric_states(suite: RunningSuite) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{suite.ports['llm_metrics']}/metrics", timeout=10.0).text
    return {provider: float(value) for provider, value in BREAKER_METRIC.findall(text)}


def chat_requests(fake: FakeProviderThread) -> int:
    return sum(1 for r in fake.requests if r.path.endswith(("/chat/completions", "/v1/messages")))


def served_by(response: httpx.Response) -> str:
    """Which provider answered a 200 completion, by the model it names."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == DEFAULT_REPLY
    return PROVIDER_OF[body["model"]]


def timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


@pytest.fixture
def http(
    llm_suite: RunningSuite,
    openai_fake: FakeProviderThread,
    anthropic_fake: FakeProviderThread,
    show_logs: list[RunningSuite],
) -> Iterator[httpx.Client]:
    """A client on the edge once both providers answer promptly and both breakers are closed with no failures
    counted (a test leaves a breaker open; the next one waits out its trial)."""
    show_logs.append(llm_suite)
    openai_fake.delay_s = anthropic_fake.delay_s = 0.0
    with httpx.Client(base_url=llm_suite.base_url, timeout=30.0) as client:
        deadline = time.monotonic() + 30.0
        while (states := breakers(client)) != {"openai": ("closed", 0), "anthropic": ("closed", 0)}:
            assert time.monotonic() < deadline, states
            for provider, body in (("openai", MINI), ("anthropic", HAIKU)):
                if states[provider] != ("closed", 0):
                    client.post("/v1/chat/completions", json=body)
            time.sleep(0.2)
        yield client
    openai_fake.delay_s = anthropic_fake.delay_s = 0.0


def test_an_outage_opens_the_breaker_the_fallback_serves_and_the_breaker_closes_on_return(
    http: httpx.Client, llm_suite: RunningSuite, openai_fake: FakeProviderThread
) -> None:
    """OpenAI answers 503 three times: the breaker opens and Anthropic serves; while open no request reaches
    OpenAI; its first half-open trial fails too (open again), the second succeeds (closed)."""
    openai_fake.fail_next(FAILURES, 503)
    assert served_by(http.post("/v1/chat/completions", json=MINI)) == "anthropic"
    before = chat_requests(openai_fake)
    for _ in range(3):
        response, elapsed = timed(lambda: http.post("/v1/chat/completions", json=MINI))
        assert served_by(response) == "anthropic" and elapsed < TIMEOUT_S
    # Still open after those requests, so none of them was a half-open trial: they all skipped OpenAI.
    assert breakers(http) == {"openai": ("open", FAILURES), "anthropic": ("closed", 0)}, "host too slow for OPEN_S"
    assert chat_requests(openai_fake) == before
    assert health_details(http) == {"breaker.openai": "open", "breaker.anthropic": "closed"}
    assert metric_states(llm_suite)["openai"] == 2.0

    openai_fake.fail_next(1, 503)
    assert wait_for(lambda: breakers(http)["openai"][0] == "half_open", OPEN_S + 10)
    assert served_by(http.post("/v1/chat/completions", json=MINI)) == "anthropic"
    assert breakers(http)["openai"] == ("open", FAILURES + 1)
    assert chat_requests(openai_fake) == before + 1

    assert wait_for(lambda: breakers(http)["openai"][0] == "half_open", OPEN_S + 10)
    assert served_by(http.post("/v1/chat/completions", json=MINI)) == "openai"
    assert breakers(http)["openai"] == ("closed", 0)
    assert health_details(http)["breaker.openai"] == "closed"
    assert metric_states(llm_suite)["openai"] == 0.0


def test_a_slow_provider_times_out_with_a_precise_json_error_then_the_breaker_routes_around_it(
    http: httpx.Client, openai_fake: FakeProviderThread
) -> None:
    """OpenAI takes ten seconds to answer: each of three requests (plain, streamed, the Spark runtime's route)
    is a 504 JSON `LLM_TIMEOUT` after the two-second budget and the service hangs up on OpenAI; then the open
    breaker sends requests straight to Anthropic, until OpenAI is quick again and the trial closes it."""
    openai_fake.delay_s = 10.0
    disconnects = openai_fake.disconnects
    for path, body in (
        ("/v1/chat/completions", MINI),
        ("/v1/chat/completions", {**MINI, "stream": True}),
        ("/_spark/llm", MINI),
    ):
        response, elapsed = timed(lambda p=path, b=body: http.post(p, json=b))
        error = api_error(response, 504)
        assert response.headers["content-type"] == "application/json"
        if error.shape == "suite":
            assert error.body["code"] == 4, error.body
        assert error.message == (
            "no provider answered within the request timeout (last error: openai did not answer in time)"
        )
        assert error.reason == "LLM_TIMEOUT"
        assert TIMEOUT_S - 0.1 < elapsed < TIMEOUT_S + 3.0, elapsed
    assert breakers(http)["openai"] == ("open", FAILURES)
    assert wait_for(lambda: openai_fake.disconnects == disconnects + 3, 10.0), openai_fake.disconnects

    response, elapsed = timed(lambda: http.post("/v1/chat/completions", json=MINI))
    assert served_by(response) == "anthropic" and elapsed < TIMEOUT_S
    streamed = http.post("/v1/chat/completions", json={**MINI, "stream": True})
    assert streamed.headers["x-spark-provider"] == "anthropic" and sse_events(streamed.text)[-1] == "[DONE]"

    openai_fake.delay_s = 0.0
    assert wait_for(lambda: breakers(http)["openai"][0] == "half_open", OPEN_S + 10)
    assert served_by(http.post("/v1/chat/completions", json=MINI)) == "openai"
    assert breakers(http)["openai"] == ("closed", 0)


def test_with_every_provider_down_the_answer_is_a_quick_503_json_and_both_recover(
    http: httpx.Client, llm_suite: RunningSuite, openai_fake: FakeProviderThread, anthropic_fake: FakeProviderThread
) -> None:
    """Both providers fail: the request that finds out gets 503 naming the last failure; the next ones get
    503 `CIRCUIT_OPEN` with a RetryInfo at once, reaching no provider; both breakers close once the
    providers answer again."""
    openai_fake.fail_next(FAILURES, 503)
    anthropic_fake.fail_next(FAILURES, 503)
    response, elapsed = timed(lambda: http.post("/v1/chat/completions", json=MINI))
    assert response.status_code == 503 and elapsed < 5.0, response.text
    error = api_error(response, 503)
    assert error.reason == "PROVIDER_UNAVAILABLE"
    assert error.message == "anthropic answered HTTP 503: Service Unavailable"
    assert breakers(http) == {"openai": ("open", FAILURES), "anthropic": ("open", FAILURES)}

    calls = chat_requests(openai_fake), chat_requests(anthropic_fake)
    # OpenAI's shape has no place for the RetryInfo: every route says the wait in Retry-After, and the Spark
    # runtime's route keeps the suite's shape, which has it in the body too.
    for path, body in (("/v1/chat/completions", MINI), ("/v1/chat/completions", HAIKU), ("/_spark/llm", MINI)):
        response, elapsed = timed(lambda p=path, b=body: http.post(p, json=b))
        assert response.status_code == 503 and elapsed < 2.0, response.text
        assert response.headers["content-type"] == "application/json"
        error = api_error(response, 503, "circuit breaker open")
        assert error.reason == "CIRCUIT_OPEN"
        if error.shape == "suite":
            assert error.body["code"] == 14, error.body
            (delay,) = [d["retryDelay"] for d in error.body["details"] if d["@type"].endswith("RetryInfo")]
            assert 1.0 <= float(delay.removesuffix("s")) <= OPEN_S
        assert 1 <= int(response.headers["retry-after"]) <= OPEN_S
    assert (chat_requests(openai_fake), chat_requests(anthropic_fake)) == calls
    assert health_details(http) == {"breaker.openai": "open", "breaker.anthropic": "open"}
    states = metric_states(llm_suite)
    assert (states["openai"], states["anthropic"]) == (2.0, 2.0)

    both_half_open = {"openai": ("half_open", FAILURES), "anthropic": ("half_open", FAILURES)}
    assert wait_for(lambda: breakers(http) == both_half_open, OPEN_S + 10)
    assert served_by(http.post("/v1/chat/completions", json=MINI)) == "openai"
    assert served_by(http.post("/v1/chat/completions", json=HAIKU)) == "anthropic"
    assert breakers(http) == {"openai": ("closed", 0), "anthropic": ("closed", 0)}
