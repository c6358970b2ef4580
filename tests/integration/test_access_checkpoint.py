"""The in-process access check (services/access/checkpoint.py) over real gRPC: kv and access servers in keys
mode on one real store (SQLite and Redis), with the production interceptors, called as a client, the edge and
another service would call them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from spark.access.v1 import access_pb2, access_pb2_grpc
from spark.kv.v1 import kv_pb2, kv_pb2_grpc

from services.access.config import read_config as read_access_config
from services.access.internal import InternalToken
from services.access.keys import KeyStore
from services.access.policy import ROUTE_CLASSES
from services.access.server import build_server as build_access
from services.access.users import User
from services.common.errors import ERROR_DOMAIN
from services.common.identity import CLIENT_ADDRESS_HEADER, INTERNAL_HEADER
from services.common.server import RunningServer
from services.common.store import Store
from services.kv.config import read_config as read_kv_config
from services.kv.server import SERVICE_NAME as KV_SERVICE
from services.kv.server import build_server as build_kv
from tests.integration.conftest import StoreFactory

ADMIN_TOKEN = "checkpoint-admin-token"
INTERNAL_TOKEN = "checkpoint-internal-token-" + "0123456789abcdef" * 2
WRONG_INTERNAL_TOKEN = "not-the-internal-token-" + "fedcba9876543210" * 2
INTERNAL = InternalToken(INTERNAL_TOKEN)
ALICE = User("alice", "alice", "alice@example.com", "", False)
BOB = User("bob", "bob", "bob@example.com", "", False)
ADMIN = (("x-admin-token", ADMIN_TOKEN),)
Metadata = Sequence[tuple[str, str]]


@dataclass
class Suite:
    kv: kv_pb2_grpc.KvServiceStub
    access: access_pb2_grpc.AccessServiceStub
    health: health_pb2_grpc.HealthStub
    keys: KeyStore
    store: Store


Start = Callable[..., Awaitable[Suite]]


def _limits(*, per_user: int = 1000, per_address: int = 1000, failures: int = 30) -> str:
    """A limits file (services/access/policy.py) with the same limits for every route class. Daily windows:
    no window ends in the middle of a test (barring midnight UTC)."""
    tables = [
        f'[classes.{name}]\nper_user = {per_user}\nper_address = {per_address}\nwindow = "day"\n'
        for name in ROUTE_CLASSES
    ]
    return f"auth_failures_per_address = {failures}\n\n" + "\n".join(tables)


@pytest.fixture
async def start(store_factory: StoreFactory, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts a kv and an access server in keys mode on one store, as two processes of the suite would run."""
    running: list[RunningServer] = []
    channels: list[grpc.aio.Channel] = []

    async def start_suite(limits: str | None = None, **env: str) -> Suite:
        limits_path = tmp_path / f"limits-{len(running)}.toml"
        limits_path.write_text(limits or _limits(), encoding="utf-8")
        gate = {
            "SPARK_DATA_DIR": str(tmp_path),
            "SPARK_ACCESS_MODE": "keys",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "SPARK_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "SPARK_ACCESS_LIMITS": str(limits_path),
            # Keys are made by the test's own KeyStore, not through these servers: no cache to wait out.
            "SPARK_ACCESS_KEY_CACHE_S": "0",
            **env,
        }
        store = store_factory()
        kv = await build_kv(read_kv_config({**gate, "SPARK_KV_PORT": "0"}), store)
        running.append(kv)
        access = await build_access(read_access_config({**gate, "SPARK_ACCESS_PORT": "0"}), store)
        running.append(access)
        kv_channel = grpc.aio.insecure_channel(f"127.0.0.1:{kv.port}")
        access_channel = grpc.aio.insecure_channel(f"127.0.0.1:{access.port}")
        channels.extend((kv_channel, access_channel))
        return Suite(
            kv_pb2_grpc.KvServiceStub(kv_channel),
            access_pb2_grpc.AccessServiceStub(access_channel),
            health_pb2_grpc.HealthStub(kv_channel),
            KeyStore(store, cache_s=0),
            store,
        )

    yield start_suite
    for channel in channels:
        await channel.close()
    for server in running:
        await server.stop()


def _bearer(secret: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {secret}"),)


def _refusal(caught: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[grpc.StatusCode, str]:
    """The refused call's status code and the reason of its google.rpc.ErrorInfo."""
    error = caught.value
    status = rpc_status.from_call(error)
    assert status is not None, "the refusal carries no google.rpc.Status details"
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details), "no ErrorInfo in the details"
    assert info.domain == ERROR_DOMAIN
    return error.code(), info.reason


async def _get(suite: Suite, key: str, metadata: Metadata) -> str | None:
    """The value of `key` read with `metadata`, None when it is absent."""
    try:
        reply = await suite.kv.GetEntry(kv_pb2.GetEntryRequest(key=key), metadata=metadata)
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return str(reply.entry.value)


async def _user_id(suite: Suite, metadata: Metadata) -> str:
    return str((await suite.access.GetUser(access_pb2.GetUserRequest(), metadata=metadata)).id)


async def test_a_call_without_a_valid_key_is_refused_before_its_handler_runs(start: Start) -> None:
    suite = await start()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"))
    assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.kv.SetEntry(
            kv_pb2.SetEntryRequest(key="k", value="2"), metadata=_bearer("spk_0000000000000000_" + "a" * 43)
        )
    assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    _, secret = await suite.keys.create(ALICE, "")
    assert await _get(suite, "k", _bearer(secret)) is None


async def test_a_call_with_a_key_is_served_as_the_keys_user(start: Start) -> None:
    suite = await start()
    _, secret = await suite.keys.create(ALICE, "")
    await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"), metadata=_bearer(secret))
    assert await _get(suite, "k", (("x-api-key", secret),)) == "1"
    assert await _user_id(suite, _bearer(secret)) == "alice"


async def test_x_spark_user_without_the_internal_token_is_ignored(start: Start) -> None:
    suite = await start()
    _, alice = await suite.keys.create(ALICE, "")
    await suite.keys.create(BOB, "")
    for claims in ((("x-spark-user", "bob"),), (("x-spark-user", "bob"), (CLIENT_ADDRESS_HEADER, "203.0.113.9"))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"), metadata=claims)
        assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _user_id(suite, claims)
        assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
        assert await _user_id(suite, (*_bearer(alice), *claims)) == "alice"
    assert await _get(suite, "k", _bearer(alice)) is None


async def test_the_internal_token_admits_a_call_as_the_user_it_names_or_as_the_suite(start: Start) -> None:
    suite = await start()
    await suite.keys.create(BOB, "")
    # A service calling another for its caller: no key, the caller named next to the token.
    assert await _user_id(suite, INTERNAL.on_behalf_of("bob")) == "bob"
    await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"), metadata=INTERNAL.on_behalf_of("someone"))
    _, alice = await suite.keys.create(ALICE, "")
    assert await _get(suite, "k", _bearer(alice)) == "1"
    # For itself: admin methods included, without the admin token.
    listed = await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=INTERNAL.as_suite())
    assert {key.user.id for key in listed.keys} == {"alice", "bob"}


async def test_a_wrong_internal_token_is_not_trusted(start: Start) -> None:
    suite = await start()
    _, alice = await suite.keys.create(ALICE, "")
    await suite.keys.create(BOB, "")
    forged = ((INTERNAL_HEADER, WRONG_INTERNAL_TOKEN), ("x-spark-user", "bob"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"), metadata=forged)
    assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=forged)
    assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "ADMIN_TOKEN_INVALID")
    assert await _user_id(suite, (*_bearer(alice), *forged)) == "alice"
    assert await _get(suite, "k", _bearer(alice)) is None


async def test_a_call_the_edge_forwards_is_checked_as_the_clients_own(start: Start) -> None:
    """With the token and a client address the call is a client's, forwarded: its own key decides, and the
    x-spark-user a client slipped past the edge names no one."""
    suite = await start()
    _, alice = await suite.keys.create(ALICE, "")
    forwarded = (*INTERNAL.as_suite(), (CLIENT_ADDRESS_HEADER, "203.0.113.9"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _user_id(suite, (*forwarded, ("x-spark-user", "bob")))
    assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=forwarded)
    assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "ADMIN_TOKEN_INVALID")
    assert await _user_id(suite, (*forwarded, ("x-spark-user", "bob"), *_bearer(alice))) == "alice"


async def test_an_admin_method_needs_the_admin_token(start: Start) -> None:
    suite = await start()
    record, alice = await suite.keys.create(ALICE, "")
    for metadata in ((), _bearer(alice), (("x-admin-token", ADMIN_TOKEN + "x"),)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=metadata)
        assert _refusal(caught) == (grpc.StatusCode.UNAUTHENTICATED, "ADMIN_TOKEN_INVALID"), metadata
    listed = await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=ADMIN)
    assert [key.id for key in listed.keys] == [record.id]


async def test_past_its_rate_limit_a_caller_gets_resource_exhausted_with_the_limit_headers(start: Start) -> None:
    suite = await start(_limits(per_user=2))
    _, alice = await suite.keys.create(ALICE, "")
    _, bob = await suite.keys.create(BOB, "")
    for value in "12":
        call = suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value=value), metadata=_bearer(alice))
        await call
        # An admitted call says nothing of its limit: sending headers is a gRPC operation of its own.
        assert not [k for k, _ in await call.initial_metadata() if k.startswith("x-ratelimit")]
    call = suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="3"), metadata=_bearer(alice))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert _refusal(caught) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    headers = dict(await call.initial_metadata())
    assert headers["x-ratelimit-limit"] == '2, 2;w=86400;name="kv"'
    assert headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(headers["retry-after"]) <= 86400
    assert headers["x-ratelimit-reset"] == headers["retry-after"]
    # Each user has a limit of their own; a service calling for alice was counted where the call entered.
    await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="4"), metadata=_bearer(bob))
    await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="5"), metadata=INTERNAL.on_behalf_of("alice"))
    assert await _get(suite, "k", INTERNAL.as_suite()) == "5"


async def test_behind_a_trusted_proxy_each_forwarded_client_is_its_own_address_and_only_then(start: Start) -> None:
    """Every client of a reverse proxy reaches the edge from the proxy's address; with the proxy trusted, one
    client guessing keys is shut out alone. A direct caller cannot choose its address."""
    suite = await start(_limits(failures=2), SPARK_TRUSTED_PROXIES="10.0.0.0/24")
    wrong = _bearer("spk_0000000000000000_" + "b" * 43)

    def via_proxy(client: str) -> Metadata:
        # The edge names its peer (the proxy); Envoy's own X-Forwarded-For entry is the last.
        forwarded = ((CLIENT_ADDRESS_HEADER, "10.0.0.5"), ("x-forwarded-for", f"{client},10.0.0.5"))
        return (*INTERNAL.as_suite(), *forwarded, *wrong)

    async def reason(metadata: Metadata) -> str:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.kv.GetEntry(kv_pb2.GetEntryRequest(key="k"), metadata=metadata)
        return _refusal(caught)[1]

    assert [await reason(via_proxy("203.0.113.1")) for _ in range(3)] == ["API_KEY_INVALID"] * 2 + ["AUTH_FAILURES"]
    assert await reason(via_proxy("203.0.113.2")) == "API_KEY_INVALID"
    # Straight from a client, the forwarding headers are its own claims: its address is its peer's.
    direct = ((CLIENT_ADDRESS_HEADER, "203.0.113.3"), ("x-forwarded-for", "203.0.113.3,10.0.0.5"), *wrong)
    assert [await reason(direct) for _ in range(3)] == ["API_KEY_INVALID"] * 2 + ["AUTH_FAILURES"]
    assert await reason(((CLIENT_ADDRESS_HEADER, "203.0.113.4"), *wrong)) == "AUTH_FAILURES"
    assert await reason(via_proxy("203.0.113.3")) == "API_KEY_INVALID"


async def test_a_method_that_demands_a_nonce_is_refused_without_one_as_http_428(start: Start) -> None:
    suite = await start(SPARK_ACCESS_NONCE_ROUTES="ListApiKeys")
    call = suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert _refusal(caught) == (grpc.StatusCode.FAILED_PRECONDITION, "NONCE_REQUIRED")
    assert dict(await call.initial_metadata())["x-http-status"] == "428"
    nonce = (*ADMIN, ("x-nonce", "nonce-00000001"))
    await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=nonce)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.access.ListApiKeys(access_pb2.ListApiKeysRequest(), metadata=nonce)
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    # Other methods do not demand one.
    await suite.kv.SetEntry(kv_pb2.SetEntryRequest(key="k", value="1"), metadata=INTERNAL.as_suite())


async def test_a_check_the_store_cannot_answer_is_unavailable_with_retry_after(start: Start) -> None:
    suite = await start()
    _, alice = await suite.keys.create(ALICE, "")
    await suite.store.close()
    call = suite.kv.GetEntry(kv_pb2.GetEntryRequest(key="k"), metadata=_bearer(alice))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert _refusal(caught) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
    assert dict(await call.initial_metadata())["retry-after"] == "1"


async def test_grpc_health_is_open_without_a_credential(start: Start) -> None:
    suite = await start()
    for service in ("", KV_SERVICE):
        reply = await suite.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.kv.GetEntry(kv_pb2.GetEntryRequest(key="k"))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
