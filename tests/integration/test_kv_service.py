"""The kv service over real gRPC, on both store backends, with the production interceptors."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from services.common.server import RunningServer
from services.common.store import RedisStore, Store
from services.kv.config import read_config
from services.kv.server import SERVICE_NAME, build_server
from tests.support.redis_server import RedisServer

LIMIT = 64 * 1024


@dataclass
class Kv:
    stub: kv_pb2_grpc.KvServiceStub
    channel: grpc.aio.Channel
    running: RunningServer


@pytest_asyncio.fixture
async def kv(store: Store) -> AsyncIterator[Kv]:
    config = read_config({"SPARK_KV_PORT": "0", "SPARK_KV_METRICS_PORT": "0", "SPARK_KV_MAX_VALUE_BYTES": str(LIMIT)})
    running = await build_server(config, store)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Kv(kv_pb2_grpc.KvServiceStub(channel), channel, running)
    finally:
        await channel.close()
        await running.stop()


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status details"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo in the details")


async def test_set_then_get_returns_value_and_versionstamp(kv: Kv) -> None:
    written = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(collection="c", key="k", value='{"a": 1}'))
    assert len(written.versionstamp) == 20
    got = await kv.stub.GetEntry(kv_pb2.GetEntryRequest(collection="c", key="k"))
    assert (got.entry.value, got.entry.versionstamp, got.entry.key) == ('{"a": 1}', written.versionstamp, "k")
    assert not got.entry.HasField("expire_time")
    later = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(collection="c", key="k", value="2"))
    assert later.versionstamp > written.versionstamp


async def test_check_and_set_refuses_a_stale_versionstamp(kv: Kv) -> None:
    first = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="cas", value="1"))
    second = await kv.stub.SetEntry(
        kv_pb2.SetEntryRequest(key="cas", value="2", expected_versionstamp=first.versionstamp)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="cas", value="3", expected_versionstamp=first.versionstamp))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    info = error_info(raised.value)
    assert info.reason == "VERSIONSTAMP_MISMATCH"
    assert info.metadata["current_versionstamp"] == second.versionstamp
    assert (await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key="cas"))).entry.value == "2"


async def test_only_if_absent_and_conditional_delete(kv: Kv) -> None:
    created = await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="once", value="1", only_if_absent=True))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="once", value="2", only_if_absent=True))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.DeleteEntry(kv_pb2.DeleteEntryRequest(key="once", expected_versionstamp="0" * 20))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    deleted = await kv.stub.DeleteEntry(
        kv_pb2.DeleteEntryRequest(key="once", expected_versionstamp=created.versionstamp)
    )
    assert deleted.deleted is True
    assert (await kv.stub.DeleteEntry(kv_pb2.DeleteEntryRequest(key="once"))).deleted is False


async def test_entries_expire_after_their_ttl(kv: Kv) -> None:
    ttl = duration_pb2.Duration()
    ttl.FromMilliseconds(300)
    await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="brief", value="1", ttl=ttl))
    got = await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key="brief"))
    assert got.entry.HasField("expire_time")
    await asyncio.sleep(0.5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key="brief"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await kv.stub.ListEntries(kv_pb2.ListEntriesRequest(prefix="brief"))
    assert list(listed.entries) == []


async def test_list_entries_pages_through_a_prefix(kv: Kv) -> None:
    for i in range(25):
        await kv.stub.SetEntry(kv_pb2.SetEntryRequest(collection="p", key=f"user/{i:02d}", value=str(i)))
    await kv.stub.SetEntry(kv_pb2.SetEntryRequest(collection="p", key="other", value="0"))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await kv.stub.ListEntries(
            kv_pb2.ListEntriesRequest(collection="p", prefix="user/", page_size=10, page_token=token, keys_only=True)
        )
        pages += 1
        seen += [entry.key for entry in page.entries]
        assert all(entry.value == "" for entry in page.entries)
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"user/{i:02d}" for i in range(25)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.ListEntries(kv_pb2.ListEntriesRequest(collection="p", prefix="other", page_token=token or "x"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.ListEntries(kv_pb2.ListEntriesRequest(collection="p", page_size=1001))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_spark_rpcs_honour_the_initial_header(kv: Kv) -> None:
    body = kv_pb2.SetSparkValueRequest(key="s", body={"content_type": "text/plain", "data": b'"a"'})
    assert (await kv.stub.SetSparkValue(body, metadata=(("x-spark-initial", "true"),))).written is True
    again = kv_pb2.SetSparkValueRequest(key="s", body={"content_type": "text/plain", "data": b'"b"'})
    assert (await kv.stub.SetSparkValue(again, metadata=(("x-spark-initial", "true"),))).written is False
    got = await kv.stub.GetSparkValue(kv_pb2.GetSparkValueRequest(key="s"))
    assert (got.data, got.content_type) == (b'"a"', "application/json; charset=utf-8")
    keys = await kv.stub.ListSparkKeys(kv_pb2.ListSparkKeysRequest())
    assert keys.data == b'["s"]'


async def test_bad_values_are_refused_with_details(kv: Kv) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="big", value='"' + "x" * LIMIT + '"'))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "VALUE_TOO_LARGE"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="bad", value="{nope"))
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "value"
    for key in ("big", "bad"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key=key))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key=""))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_hundred_concurrent_writers_lose_nothing(kv: Kv) -> None:
    async def write(i: int) -> None:
        await kv.stub.SetEntry(kv_pb2.SetEntryRequest(collection="w", key=f"k{i:03d}", value=f'{{"i": {i}}}'))

    await asyncio.gather(*(write(i) for i in range(100)))
    page = await kv.stub.ListEntries(kv_pb2.ListEntriesRequest(collection="w", page_size=1000))
    assert [(e.key, e.value) for e in page.entries] == [(f"k{i:03d}", f'{{"i": {i}}}') for i in range(100)]


async def test_a_hundred_concurrent_check_and_set_increments_count_to_a_hundred(kv: Kv) -> None:
    await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="counter", value="0"))

    async def increment() -> int:
        attempts = 0
        while True:
            attempts += 1
            current = (await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key="counter"))).entry
            try:
                await kv.stub.SetEntry(
                    kv_pb2.SetEntryRequest(
                        key="counter", value=str(int(current.value) + 1), expected_versionstamp=current.versionstamp
                    )
                )
                return attempts
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.ABORTED

    attempts = await asyncio.gather(*(increment() for _ in range(100)))
    assert (await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key="counter"))).entry.value == "100"
    assert sum(attempts) > 100, "no conflict happened: the test did not exercise check-and-set"


async def test_health_and_reflection(kv: Kv) -> None:
    health = health_pb2_grpc.HealthStub(kv.channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(kv.channel)
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for reply in replies for s in reply.list_services_response.service]
    assert SERVICE_NAME in names
    assert "grpc.health.v1.Health" in names


async def test_metrics_count_requests_by_method_and_code(kv: Kv) -> None:
    await kv.stub.SetEntry(kv_pb2.SetEntryRequest(key="m", value="1"))
    with pytest.raises(grpc.aio.AioRpcError):
        await kv.stub.GetEntry(kv_pb2.GetEntryRequest(key="missing"))
    endpoint = kv.running.metrics_endpoint
    assert endpoint is not None
    url = f"http://127.0.0.1:{endpoint.port}/metrics"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(scrape)
    service = f'grpc_service="{SERVICE_NAME}"'
    assert f'grpc_server_handled_total{{grpc_code="NOT_FOUND",grpc_method="GetEntry",{service}}} 1.0' in text
    assert f'grpc_server_handled_total{{grpc_code="OK",grpc_method="SetEntry",{service}}} 1.0' in text
    assert f'grpc_server_handling_seconds_count{{grpc_method="SetEntry",{service}}} 1.0' in text


async def test_graceful_stop_announces_not_serving_first(kv: Kv) -> None:
    watch = health_pb2_grpc.HealthStub(kv.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.ensure_future(kv.running.stop())
    second = await asyncio.wait_for(watch.read(), 5)
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    await stopping


async def test_a_store_outage_is_unavailable_with_a_retry_hint(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as redis:
        store = RedisStore(redis.url, prefix="{outage}:")
        config = read_config({"SPARK_KV_PORT": "0"})
        running = await build_server(config, store)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = kv_pb2_grpc.KvServiceStub(channel)
                await stub.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"))
                redis.stop()
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.GetEntry(kv_pb2.GetEntryRequest(key="k"), timeout=10)
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
                assert raised.value.details() == "the data store is unavailable; retry shortly"
                assert error_info(raised.value).reason == "STORE_UNAVAILABLE"
                redis.start()
                got = await stub.GetEntry(kv_pb2.GetEntryRequest(key="k"), timeout=10)
                assert got.entry.value == "1"
        finally:
            await running.stop()
            await store.close()
