"""The llm service through the real edge: the OpenAI SDK, the Spark runtime, SSE and every error.

A local provider speaking the real OpenAI and Anthropic protocols stands in
for the upstream APIs; the suite reaches it through the SDKs' base-URL
variables, exactly as it would reach the real ones.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.request
from collections.abc import Iterator

import grpc
import httpx
import openai
import pytest
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from tests.conftest import FAILED_KEY
from tests.e2e.test_spark_runtime import run_scenario
from tests.fakes.providers import DEFAULT_JSON_REPLY, DEFAULT_REPLY, FakeProviderThread
from tests.support.http import api_error, sse_events, wait_for
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

BODY_LIMIT = 4 * 1024 * 1024
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(chunk_chars=4) as provider:
        yield provider


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {
        **fake.env(),
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "ak-test",
        "SPARK_LLM_KEEPALIVE_S": "0.2",
        "SPARK_LLM_BACKOFF_BASE_S": "0.01",
        "SPARK_LLM_MAX_MESSAGES": "8",
        "SPARK_EDGE_MAX_LLM_BODY_BYTES": str(BODY_LIMIT),
    }
    running = RunningSuite.start(tmp_path_factory.mktemp("suite-llm"), env)
    yield running
    running.stop()


@pytest.fixture
def http(suite: RunningSuite, fake: FakeProviderThread, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """An HTTP client on the edge; the fake's script is reset and the logs printed on failure."""
    fake.delay_s = fake.gap_s = 0.0
    with httpx.Client(base_url=suite.base_url, timeout=30.0) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


@pytest.fixture
def sdk(suite: RunningSuite, http: httpx.Client) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{suite.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


# --- the official OpenAI SDK ------------------------------------------------------------------------


def test_the_openai_sdk_gets_a_completion(sdk: openai.OpenAI, fake: FakeProviderThread) -> None:
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=100)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini" and completion.object == "chat.completion"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    sent = fake.requests[-1]
    assert sent.api == "openai" and sent.body["max_tokens"] == 100 and sent.headers["authorization"] == "Bearer sk-test"


def test_the_openai_sdk_streams_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="claude-3-haiku",
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert {c.model for c in chunks} == {"claude-haiku-4-5"}


def test_the_openai_sdk_lists_models(sdk: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in sdk.models.list()}
    assert models["gpt-4o-mini"] == "openai" and models["claude-3-sonnet"] == "anthropic"
    assert models["openai/gpt-4o"] == "openai"
    assert "glm-4.5v" not in models  # neither BigModel nor OpenRouter has a key


def test_the_sdk_sees_errors_as_api_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-9", messages=HELLO)  # type: ignore[arg-type]
    assert "available models" in caught.value.message


# --- the Spark runtime ------------------------------------------------------------------------------


def test_the_published_spark_runtime_llm_works_unmodified(suite: RunningSuite, fake: FakeProviderThread) -> None:
    before = len(fake.requests)
    seen = run_scenario(suite.base_url, "llm_scenario.mjs")
    assert seen["text"] == DEFAULT_REPLY
    assert seen["json"] == json.loads(DEFAULT_JSON_REPLY)
    assert seen["claude"] == DEFAULT_REPLY
    assert str(seen["error"]).startswith("LLM request failed: 400")
    assert "unknown model 'no-such-model'" in str(seen["error"])
    sent = fake.requests[before:]
    # The runtime's default `openai/gpt-4o` (a GitHub Models id) went to OpenAI's gpt-4o.
    assert [r.body["model"] for r in sent] == ["gpt-4o", "gpt-4o-mini", "claude-haiku-4-5"]
    assert sent[0].body["max_tokens"] == 1000 and sent[0].body["temperature"] == 1.0
    assert sent[1].body["response_format"] == {"type": "json_object"}
    assert sent[2].body["system"] == "You are a helpful assistant."


# --- "stream": true in the body ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "streams"),
    [
        ('{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}', True),
        ('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream" :\n true}', True),
        ('{"model":"gpt-4o-mini","stream":false,"messages":[{"role":"user","content":"hi"}]}', False),
        ('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"say \\"stream\\": true"}]}', False),
        ('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"{\\"stream\\":true}"}]}', False),
        ('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi","name":"stream"}]}', False),
        ('{"model":"gpt-4o-mini","response_format":{"type":"text","stream":true},"messages":[]}', False),
    ],
)
def test_the_edge_routes_on_the_top_level_stream_member_only(http: httpx.Client, body: str, streams: bool) -> None:
    response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    if streams:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert sse_events(response.text)[-1] == "[DONE]"
    else:
        assert response.headers["content-type"].startswith("application/json")
        assert response.status_code in (200, 400)  # the last body is rejected: no messages


@pytest.mark.parametrize("stream", [False, True])
def test_a_large_image_body_passes_the_edge(http: httpx.Client, fake: FakeProviderThread, stream: bool) -> None:
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)).decode()
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": image}}]
    body = {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": content}]}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert fake.requests[-1].has_image
    assert fake.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"] == image


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"model": "gpt-9", "messages": HELLO}).encode(), 400, "available models"),
        (json.dumps({"model": "glm-4.5v", "messages": HELLO}).encode(), 400, "BIGMODEL_API_KEY"),
        (
            json.dumps({"model": "gpt-4o", "messages": HELLO, "tools": []}).encode(),
            400,
            "tools: must be an array of 1 to 128 tools",
        ),
        (json.dumps({"messages": [{"role": "user", "content": "x" * 10_001}]}).encode(), 400, "10000 characters"),
        (json.dumps({"messages": HELLO * 9}).encode(), 400, "at most 8 messages"),
        (json.dumps({"messages": HELLO, "max_tokens": 10**9}).encode(), 400, "max_tokens"),
        (b"x" * (BODY_LIMIT + 1), 413, ""),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/_spark/llm"])
def test_bad_requests_get_a_json_4xx(http: httpx.Client, path: str, body: bytes, status: int, text: str) -> None:
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    api_error(response, status, text)


def test_the_responses_api_is_a_400_that_says_what_to_use(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"use POST /v1/chat/completions"):
        sdk.responses.create(model="gpt-4o-mini", input="Hello")


def test_an_unknown_query_parameter_is_a_400(http: httpx.Client) -> None:
    api_error(http.post("/v1/chat/completions?debug=1", json={"messages": HELLO}), 400, "debug")


def test_usage_needs_the_admin_token(http: httpx.Client) -> None:
    response = http.get("/v1/usage")
    assert response.status_code == 403 and response.json()["message"].startswith("admin routes are disabled")


# --- cache, fallbacks, streams ----------------------------------------------------------------------


def test_deterministic_requests_are_served_from_the_cache(http: httpx.Client, fake: FakeProviderThread) -> None:
    body = {"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "cache me"}]}
    before = len(fake.requests)
    first = http.post("/v1/chat/completions", json=body)
    second = http.post("/v1/chat/completions", json=body)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.json()["choices"] == second.json()["choices"]
    assert len(fake.requests) == before + 1
    streamed = http.post("/v1/chat/completions", json={**body, "stream": True})
    assert streamed.headers["x-cache"] == "hit" and len(fake.requests) == before + 1
    deltas = [json.loads(e)["choices"][0]["delta"].get("content", "") for e in sse_events(streamed.text)[:-1]]
    assert "".join(deltas) == DEFAULT_REPLY


def test_a_failing_provider_falls_back_to_the_next_model(http: httpx.Client, fake: FakeProviderThread) -> None:
    fake.fail_next(3, 503)
    response = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert response.status_code == 200
    assert response.headers["x-spark-provider"] == "anthropic"
    assert response.headers["x-spark-model"] == response.json()["model"] == "claude-haiku-4-5"
    plain = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert "x-spark-provider" not in plain.headers and "x-cache" not in plain.headers


def test_slow_streams_get_keepalive_comments(http: httpx.Client, fake: FakeProviderThread) -> None:
    fake.delay_s, fake.gap_s = 0.5, 0.5
    response = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": True, "messages": HELLO})
    body = response.text
    first_data = body.index("data: ")
    assert body.startswith(": keepalive\n\n")  # before the first token
    assert ": keepalive" in body[first_data:]  # and between tokens
    assert sse_events(body)[-1] == "[DONE]"


def test_a_provider_failure_mid_stream_ends_with_an_error_event(
    http: httpx.Client, sdk: openai.OpenAI, fake: FakeProviderThread
) -> None:
    fake.fail_mid_stream(1, after_deltas=2)
    response = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": True, "messages": HELLO})
    events = sse_events(response.text)
    assert events[-1] != "[DONE]"
    error = json.loads(events[-1])["error"]
    assert error["code"] == "unavailable" and "openai" in error["message"]
    fake.fail_mid_stream(1, after_deltas=2)
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_hangs_up_cancels_the_provider_call(
    suite: RunningSuite, fake: FakeProviderThread, stream: bool
) -> None:
    fake.delay_s, fake.gap_s = (0.0, 2.0) if stream else (5.0, 0.0)
    before = fake.disconnects
    body = {"model": "gpt-4o-mini", "stream": stream, "messages": HELLO}
    with httpx.Client(base_url=suite.base_url, timeout=httpx.Timeout(30.0, read=1.0)) as client:
        if stream:
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                assert next(response.iter_lines()).startswith("data: ")
        else:
            with pytest.raises(httpx.ReadTimeout):
                client.post("/v1/chat/completions", json=body)
    assert wait_for(lambda: fake.disconnects > before), "the provider never saw the connection close"


def test_llm_metrics_count_cache_lookups_and_tokens(suite: RunningSuite, http: httpx.Client) -> None:
    # The identity header is the edge's to set: a client's own is dropped, so usage cannot be pinned on others.
    http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO}, headers={"x-spark-user": "eve"})
    url = f"http://127.0.0.1:{suite.ports['llm_metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert 'llm_tokens_total{caller="owner",kind="completion",model="gpt-4o-mini",provider="openai"}' in text
    assert "llm_cache_lookups_total" in text and 'llm_breaker_state{provider="openai"}' in text
    assert 'caller="eve"' not in text


def test_no_request_field_or_header_chooses_whose_usage_a_typed_call_is(suite: RunningSuite) -> None:
    """The typed API once took `caller` (field 7) from the request: any key holder could charge anyone."""
    owner = 'llm_tokens_total{caller="owner",kind="completion",model="gpt-4o-mini",provider="openai"}'

    def metrics() -> dict[str, float]:
        url = f"http://127.0.0.1:{suite.ports['llm_metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        samples = (line.rpartition(" ") for line in lines if line and not line.startswith("#"))
        return {name: float(value) for name, _, value in samples}

    request = llm_pb2.GenerateContentRequest(
        model="gpt-4o-mini", messages=[llm_pb2.Message(role="user", parts=[llm_pb2.ContentPart(text="Hi")])]
    )
    request.MergeFromString(b"\x3a\x06victim")  # field 7 on the wire, as an old client would send it
    before = metrics().get(owner, 0.0)
    with grpc.insecure_channel(suite.edge_address) as channel:
        stub = llm_pb2_grpc.LlmServiceStub(channel)
        reply = stub.GenerateContent(request, metadata=(("x-spark-user", "victim"),), timeout=30)
    after = metrics()

    assert reply.text == DEFAULT_REPLY
    assert after[owner] == before + reply.usage.completion_tokens > before
    assert not [name for name in after if 'caller="victim"' in name]


def test_healthz_reports_the_provider_breakers(http: httpx.Client, fake: FakeProviderThread) -> None:
    llm = next(s for s in http.get("/healthz").json()["services"] if s["name"] == "llm")
    assert llm["details"] == {"breaker.openai": "closed", "breaker.anthropic": "closed"}
    # Five failed calls in a row (the default threshold) open OpenAI's breaker; fallbacks still serve.
    # Keep this test last in the module: the breaker stays open for 30 s.
    fake.fail_next(5, 500, api="openai")
    for _ in range(2):
        http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    health = http.get("/healthz")
    assert health.status_code == 200
    llm = next(s for s in health.json()["services"] if s["name"] == "llm")
    assert llm["details"]["breaker.openai"] == "open"
