"""The vision API through the real edge: JSON and multipart in, JSON and SSE out, prompts resolved by the
prompts service and models called through the llm service, against a local provider speaking OpenAI's
protocol (BigModel and OpenAI point at it)."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import FAILED_KEY
from tests.fakes.providers import FakeProviderThread
from tests.support.http import json_error, sse_events, wait_for
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

TOKEN = "vision-admin"
ADMIN = {"X-Admin-Token": TOKEN}
IMAGE_LIMIT = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
PNG_B64 = base64.b64encode(PNG).decode()
REPLY = "System: internal note\nA cat on a mat.\nDebug: trace\nIt is sleeping."
CLEANED = "A cat on a mat.\n\nIt is sleeping."


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(reply=REPLY, chunk_chars=5) as provider:
        yield provider


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "BIGMODEL_API_KEY": "bk-test",
        "BIGMODEL_BASE_URL": fake.openai_base_url,
        "ADMIN_TOKEN": TOKEN,
        "SPARK_KV_WORKERS": "1",
        "SPARK_VISION_KEEPALIVE_S": "0.2",
        "SPARK_VISION_MAX_IMAGE_BYTES": str(IMAGE_LIMIT),
        "SPARK_LLM_BACKOFF_BASE_S": "0.01",
    }
    running = RunningSuite.start(tmp_path_factory.mktemp("suite-vision"), env)
    yield running
    running.stop()


@pytest.fixture
def http(suite: RunningSuite, fake: FakeProviderThread, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    fake.reply, fake.delay_s, fake.gap_s = REPLY, 0.0, 0.0
    with httpx.Client(base_url=suite.base_url, timeout=30.0) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


def test_json_analysis_with_the_default_model(http: httpx.Client, fake: FakeProviderThread) -> None:
    response = http.post("/v1/vision/analyze", json={"prompt": "Describe it.", "image_base64": PNG_B64})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == CLEANED
    assert (body["model"], body["provider"], body["prompt_id"]) == ("gpt-4o-mini", "openai", 0)
    assert body["usage"]["total_tokens"] > 0 and body["latency_ms"] > 0
    sent = fake.requests[-1].body["messages"][0]["content"]
    assert sent[0] == {"type": "text", "text": "Describe it."}
    assert sent[1]["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"


def test_a_provider_without_a_model_uses_its_vision_model(http: httpx.Client, fake: FakeProviderThread) -> None:
    response = http.post(
        "/v1/vision/analyze", json={"provider": "bigmodel", "prompt": "Describe it.", "image_base64": PNG_B64}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["model"], response.json()["provider"]) == ("glm-4.5v", "bigmodel")
    assert fake.requests[-1].body["model"] == "glm-4.5v"
    assert fake.requests[-1].headers["authorization"] == "Bearer bk-test"


def test_multipart_upload(http: httpx.Client, fake: FakeProviderThread) -> None:
    response = http.post(
        "/v1/vision/analyze",
        data={"prompt": "Что на картинке?", "model": "glm-4.5v", "max_tokens": "50"},
        files={"image": ("cat.png", PNG, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    sent = fake.requests[-1].body
    assert sent["max_tokens"] == 50 and sent["messages"][0]["content"][0]["text"] == "Что на картинке?"
    assert fake.requests[-1].has_image


def test_prompts_come_from_the_registry_by_id_and_by_default(http: httpx.Client, fake: FakeProviderThread) -> None:
    created = http.post(
        "/v1/prompts",
        json={"namespace": "shop", "name": "item", "lang": "ru", "text": "Опиши {{subject}}.", "make_default": True},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    prompt_id = created.json()["id"]
    by_id = http.post(
        "/v1/vision/analyze",
        json={"prompt_id": prompt_id, "variables": {"subject": "кота"}, "image_base64": PNG_B64},
    )
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["prompt_id"] == prompt_id
    assert fake.requests[-1].body["messages"][0]["content"][0]["text"] == "Опиши кота."
    by_default = http.post(
        "/v1/vision/analyze",
        json={"namespace": "shop", "lang": "ru", "variables": {"subject": "товар"}, "image_base64": PNG_B64},
    )
    assert by_default.json()["prompt_id"] == prompt_id
    assert fake.requests[-1].body["messages"][0]["content"][0]["text"] == "Опиши товар."
    missing = http.post("/v1/vision/analyze", json={"namespace": "nowhere", "image_base64": PNG_B64})
    json_error(missing, 404, "the default prompt of namespace 'nowhere' and lang 'en'")
    json_error(http.post("/v1/vision/analyze", json={"prompt_id": 999_999, "image_base64": PNG_B64}), 404, "prompt_id")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"prompt": "x", "image_base64": "not base64!!"}, 400, "base64"),
        ({"prompt": "x", "image_base64": base64.b64encode(b"GIF42a nope").decode()}, 400, "JPEG"),
        ({"prompt": "x", "image_url": "file:///etc/passwd"}, 400, "image_url"),
        ({"prompt": "x", "image_base64": base64.b64encode(PNG + bytes(IMAGE_LIMIT)).decode()}, 413, "image"),
        ({"prompt": "x", "image_base64": PNG_B64, "colour": "red"}, 400, "colour"),
        ({"prompt": "x", "image_base64": PNG_B64, "image_url": "https://example.com/a.png"}, 400, "exactly one"),
        ({"prompt": "x"}, 400, "exactly one"),
        ({"prompt": "x", "image_base64": PNG_B64, "model": "gpt-9"}, 400, "unknown model"),
        ({"prompt": "x", "image_base64": PNG_B64, "provider": "anthropic"}, 400, "ANTHROPIC_API_KEY"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/vision/analyze", "/v1/vision/stream"])
def test_bad_requests_get_json_4xx(
    http: httpx.Client, path: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    json_error(http.post(path, json=body), status, fragment)


def test_malformed_bodies(http: httpx.Client) -> None:
    json_body = {"content-type": "application/json"}
    json_error(http.post("/v1/vision/analyze", content=b"{oops", headers=json_body), 400, "JSON")
    json_error(http.post("/v1/vision/analyze", content=b"x", headers={"content-type": "text/csv"}), 400, "content type")
    broken = b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n'
    json_error(
        http.post("/v1/vision/analyze", content=broken, headers={"content-type": "multipart/form-data; boundary=b"}),
        400,
        "",
    )


def test_a_stream_of_cleaned_deltas_then_usage_then_done(http: httpx.Client) -> None:
    response = http.post("/v1/vision/stream", json={"prompt": "Describe it.", "image_base64": PNG_B64})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert (final["model"], final["finish_reason"]) == ("gpt-4o-mini", "stop")
    assert final["usage"]["completion_tokens"] > 0 and final["prompt_id"] == 0
    deltas = [json.loads(e)["delta"] for e in events[:-2]]
    assert "".join(deltas) == CLEANED


def test_slow_models_get_keepalives_and_failures_an_error_event(http: httpx.Client, fake: FakeProviderThread) -> None:
    fake.delay_s, fake.gap_s = 0.5, 0.3
    body = {"prompt": "Describe it.", "image_base64": PNG_B64}
    slow = http.post("/v1/vision/stream", json=body).text
    assert slow.startswith(": keepalive\n\n") and sse_events(slow)[-1] == "[DONE]"
    fake.delay_s = fake.gap_s = 0.0
    fake.reply = "line one\nline two\nline three\n" * 3
    fake.fail_mid_stream(1, after_deltas=4)
    events = sse_events(http.post("/v1/vision/stream", json=body).text)
    assert events[-1] != "[DONE]"
    assert json.loads(events[-1])["error"]["code"] == "unavailable"
    assert any("delta" in json.loads(e) for e in events[:-1])


def test_a_client_that_hangs_up_cancels_the_provider_call(suite: RunningSuite, fake: FakeProviderThread) -> None:
    fake.gap_s = 2.0
    fake.reply = "first line\n" * 10
    before = fake.disconnects
    body = {"prompt": "Describe it.", "image_base64": PNG_B64}
    with (
        httpx.Client(base_url=suite.base_url, timeout=30.0) as client,
        client.stream("POST", "/v1/vision/stream", json=body) as response,
    ):
        assert any(line.startswith("data: ") for line in response.iter_lines())
    assert wait_for(lambda: fake.disconnects > before), "the provider never saw the connection close"


def test_fetching_is_off_by_default_and_refuses_private_addresses_when_on(
    tmp_path: Any, fake: FakeProviderThread
) -> None:
    """With SPARK_VISION_FETCH_IMAGES on, the vision service fetches http(s) images itself, and never from
    loopback, private or metadata addresses (SSRF): the local server below must see no connection."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    suite = RunningSuite.start(
        tmp_path, {"OPENAI_API_KEY": "sk-test", **fake.env(), "SPARK_VISION_FETCH_IMAGES": "true"}
    )
    try:
        with httpx.Client(base_url=suite.base_url, timeout=30.0) as client:
            url = f"http://127.0.0.1:{server.server_address[1]}/cat.png"
            body = json_error(client.post("/v1/vision/analyze", json={"prompt": "x", "image_url": url}), 400, "")
            assert body["details"][-1]["reason"] == "IMAGE_URL_NOT_ALLOWED", body
            for address in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1/a.png", "http://[::1]/a.png"):
                response = client.post("/v1/vision/analyze", json={"prompt": "x", "image_url": address})
                assert response.status_code == 400, response.text
    finally:
        suite.stop()
        server.shutdown()
        server.server_close()
    assert hits == []
