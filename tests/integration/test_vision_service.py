"""The vision service over real gRPC, calling real prompts and llm servers (on SQLite) that call a local
provider speaking OpenAI's protocol."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.api import httpbody_pb2
from spark.llm.v1 import llm_pb2, llm_pb2_grpc
from spark.vision.v1 import vision_pb2, vision_pb2_grpc

from services.access.keys import KeyStore
from services.access.users import User
from services.common.server import RunningServer
from services.common.store import SqliteStore, Store
from services.llm.config import read_config as read_llm_config
from services.llm.server import build_server as build_llm
from services.prompts.config import read_config as read_prompts_config
from services.prompts.server import build_server as build_prompts
from services.vision.config import read_config as read_vision_config
from services.vision.server import build_server as build_vision
from tests.fakes.providers import FakeProvider, running_fake

PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
IMAGE_LIMIT = 4096


@dataclass
class Vision:
    stub: vision_pb2_grpc.VisionServiceStub
    prompts: RunningServer
    fake: FakeProvider
    llm: llm_pb2_grpc.LlmServiceStub
    store: Store


ADMIN = (("x-admin-token", "s3cret"),)
# Shared by the three services, as the launcher shares it: vision calls the others for its caller with it.
INTERNAL_TOKEN = "vision-internal-token-" + "0123456789abcdef" * 2


@pytest.fixture
async def vision(tmp_path: Path) -> AsyncIterator[Vision]:
    async with running_fake(reply="Hello\nfrom the fake\n") as fake:
        store = SqliteStore(tmp_path / "spark.db")
        quiet = {"SPARK_DATA_DIR": str(tmp_path), "SPARK_INTERNAL_TOKEN": INTERNAL_TOKEN}
        prompts = await build_prompts(
            read_prompts_config(
                {
                    **quiet,
                    "SPARK_PROMPTS_PORT": "0",
                    "SPARK_PROMPTS_METRICS_PORT": "-1",
                    "SPARK_PROMPTS_BACKUP_CRON": "off",
                }
            ),
            store,
        )
        llm = await build_llm(
            read_llm_config(
                {
                    **quiet,
                    "SPARK_LLM_PORT": "0",
                    "SPARK_LLM_METRICS_PORT": "-1",
                    "OPENAI_API_KEY": "sk",
                    "ADMIN_TOKEN": ADMIN[0][1],
                    **fake.env(),
                }
            ),
            store,
        )
        server = await build_vision(
            read_vision_config(
                {
                    **quiet,
                    "SPARK_VISION_PORT": "0",
                    "SPARK_VISION_METRICS_PORT": "-1",
                    "SPARK_VISION_MAX_IMAGE_BYTES": str(IMAGE_LIMIT),
                    "SPARK_PROMPTS_ADDRESSES": f"127.0.0.1:{prompts.port}",
                    "SPARK_LLM_ADDRESSES": f"127.0.0.1:{llm.port}",
                }
            ),
            store,
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        llm_channel = grpc.aio.insecure_channel(f"127.0.0.1:{llm.port}")
        try:
            yield Vision(
                vision_pb2_grpc.VisionServiceStub(channel),
                prompts,
                fake,
                llm_pb2_grpc.LlmServiceStub(llm_channel),
                store,
            )
        finally:
            await channel.close()
            await llm_channel.close()
            for running in (server, llm, prompts):
                await running.stop()
            await store.close()


def _body(**fields: object) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(fields).encode())


async def test_analyze_returns_the_answer_and_where_it_came_from(vision: Vision) -> None:
    reply = await vision.stub.Analyze(vision_pb2.AnalyzeRequest(body=_body(prompt="Hi", image_base64=PNG_B64)))
    assert (reply.text, reply.model, reply.provider, reply.prompt_id) == (
        "Hello\nfrom the fake",
        "gpt-4o-mini",
        "openai",
        0,
    )
    assert reply.usage.total_tokens > 0 and reply.latency_ms > 0


async def test_usage_is_counted_against_the_user_vision_calls_for(vision: Vision) -> None:
    # Development mode serves callers without a key as the owner, and a key of ours as its user.
    _, secret = await KeyStore(vision.store, cache_s=0).create(User("ada", "ada"), "")
    ada = (("authorization", f"Bearer {secret}"),)
    await vision.stub.Analyze(vision_pb2.AnalyzeRequest(body=_body(prompt="Hi", image_base64=PNG_B64)), metadata=ada)
    request = vision_pb2.StreamAnalyzeRequest(body=_body(prompt="Hi", image_base64=PNG_B64))
    assert [frame async for frame in vision.stub.StreamAnalyze(request, metadata=ada)]

    usage = await vision.llm.GetUsage(llm_pb2.GetUsageRequest(), metadata=ADMIN)

    assert [(r.caller, r.requests) for r in usage.records] == [("ada", 2)]


async def test_stream_frames_are_server_sent_events(vision: Vision) -> None:
    request = vision_pb2.StreamAnalyzeRequest(body=_body(prompt="Hi", image_base64=PNG_B64))
    frames = [message async for message in vision.stub.StreamAnalyze(request)]
    assert {f.content_type for f in frames} == {"text/event-stream"}
    events = [e.removeprefix("data: ") for f in frames for e in f.data.decode().split("\n\n") if e]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["finish_reason"] == "stop"
    assert "".join(json.loads(e)["delta"] for e in events[:-2]) == "Hello\nfrom the fake"


async def test_an_oversized_image_is_invalid_with_http_413(vision: Vision) -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(IMAGE_LIMIT)).decode()
    call = vision.stub.Analyze(vision_pb2.AnalyzeRequest(body=_body(prompt="Hi", image_base64=big)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert dict(await call.initial_metadata())["x-http-status"] == "413"


async def test_a_peer_that_is_down_is_a_503_that_names_no_address(vision: Vision) -> None:
    await vision.prompts.stop()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vision.stub.Analyze(vision_pb2.AnalyzeRequest(body=_body(prompt="Hi", image_base64=PNG_B64)), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "the prompts service is unavailable; retry shortly"
