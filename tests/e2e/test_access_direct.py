"""Calls straight to a service's own port are checked as the edge's are, and no header a client sends
makes it someone else.

The suite runs in keys mode with its internal token set here, so that a test can show the token's
effect next to its absence: a call without a credential is refused and changes nothing; a call with a
key is that key's user, whatever `x-spark-user`, `x-spark-internal` or `x-spark-client-address` it
carries, through the edge (HTTP and native gRPC) or not; only the suite's own token makes `x-spark-user`
count. Usage recorded by the llm service, read back through /v1/usage, shows whose a completion was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from spark.access.v1 import access_pb2, access_pb2_grpc
from spark.kv.v1 import kv_pb2, kv_pb2_grpc
from spark.llm.v1 import llm_pb2, llm_pb2_grpc

from tests.e2e.test_access_http import ADMIN, keyed_environment, new_key, refused
from tests.fakes.providers import DEFAULT_REPLY, FakeProviderThread
from tests.support.http import wait_for
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

INTERNAL_TOKEN = "e2e-internal-token-" + "0123456789abcdef" * 2
WRONG_INTERNAL = "e2e-internal-token-" + "fedcba9876543210" * 2
# What a client may try in order to pass for someone else, or for the edge.
FORGED = (("x-spark-user", "victim"), ("x-spark-internal", WRONG_INTERNAL), ("x-spark-client-address", "203.0.113.9"))
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def suite(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, fake: FakeProviderThread
) -> Iterator[RunningSuite]:
    directory = tmp_path_factory.mktemp("direct")
    env = {
        **keyed_environment(directory, f"{redis_server.url.rsplit('/', 1)[0]}/15"),
        **fake.env(),
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "ak-test",
        "SPARK_INTERNAL_TOKEN": INTERNAL_TOKEN,
    }
    running = RunningSuite.start(directory / "suite", env)
    yield running
    running.stop()


@pytest.fixture
def edge(http: httpx.Client) -> httpx.Client:
    """tests/e2e/conftest.py's client, on this module's suite."""
    return http


def channel_to(suite: RunningSuite, service: str) -> grpc.Channel:
    """A channel to the service's own port (its first process), not through the edge."""
    return grpc.insecure_channel(f"127.0.0.1:{suite.ports[service]}")


def reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None, error
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details), status
    return str(info.reason)


def failed(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def bearer(secret: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {secret}")


def usage_of(edge: httpx.Client, caller: str) -> int:
    """How many completions the llm service recorded for `caller`, read through the edge."""
    response = edge.get("/v1/usage", params={"caller": caller}, headers={"x-admin-token": ADMIN})
    assert response.status_code == 200, response.text
    return sum(int(record["requests"]) for record in response.json()["records"])


def generate(
    stub: llm_pb2_grpc.LlmServiceStub, metadata: tuple[tuple[str, str], ...]
) -> llm_pb2.GenerateContentResponse:
    request = llm_pb2.GenerateContentRequest(
        model=MODEL, messages=[llm_pb2.Message(role="user", parts=[llm_pb2.ContentPart(text=uuid.uuid4().hex)])]
    )
    reply: llm_pb2.GenerateContentResponse = stub.GenerateContent(request, metadata=metadata, timeout=30)
    return reply


def test_a_direct_kv_call_needs_a_key_and_then_sees_what_the_edge_sees(suite: RunningSuite, edge: httpx.Client) -> None:
    secret, _ = new_key(edge, "direct-kv")
    key = f"direct-{uuid.uuid4().hex}"
    body = httpbody_pb2.HttpBody(content_type="application/json", data=b'{"from":"direct"}')
    write = kv_pb2.SetSparkValueRequest(key=key, body=body)
    with channel_to(suite, "kv") as channel:
        stub = kv_pb2_grpc.KvServiceStub(channel)
        for metadata in ((), FORGED, (("x-spark-internal", WRONG_INTERNAL), ("x-spark-user", "direct-kv"))):
            error = failed(lambda m=metadata: stub.SetSparkValue(write, metadata=m, timeout=10))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
            assert reason(error) == "API_KEY_MISSING"
        assert edge.get(f"/_spark/kv/{key}", headers={"x-api-key": secret}).status_code == 404
        wrong = failed(lambda: stub.SetSparkValue(write, metadata=(bearer("not-a-key"),), timeout=10))
        assert (wrong.code(), reason(wrong)) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")

        assert stub.SetSparkValue(write, metadata=(bearer(secret),), timeout=10).written
        through_edge = edge.get(f"/_spark/kv/{key}", headers={"x-api-key": secret})
        assert (through_edge.status_code, through_edge.content) == (200, b'{"from":"direct"}')
        rewritten = edge.put(f"/_spark/kv/{key}", headers={"x-api-key": secret}, content=b'{"from":"edge"}')
        assert rewritten.status_code == 200, rewritten.text
        read = stub.GetSparkValue(kv_pb2.GetSparkValueRequest(key=key), metadata=(bearer(secret),), timeout=10)
        assert read.data == b'{"from":"edge"}'
        keys = stub.ListSparkKeys(kv_pb2.ListSparkKeysRequest(), metadata=(bearer(secret),), timeout=10)
        assert keys.data == edge.get("/_spark/kv", headers={"x-api-key": secret}).content


def test_a_direct_call_with_the_suites_token_needs_no_key(suite: RunningSuite, edge: httpx.Client) -> None:
    """The positive control of the tests below: `x-spark-user` does count next to the right token."""
    new_key(edge, "insider")
    with channel_to(suite, "access") as channel:
        stub = access_pb2_grpc.AccessServiceStub(channel)
        user = stub.GetUser(
            access_pb2.GetUserRequest(),
            metadata=(("x-spark-internal", INTERNAL_TOKEN), ("x-spark-user", "insider")),
            timeout=10,
        )
    assert user.id == "insider"


def test_forged_identity_headers_through_the_edge_change_nobody(suite: RunningSuite, edge: httpx.Client) -> None:
    secret, _ = new_key(edge, "forger", email="forger@example.com")
    for credential in ({"authorization": f"Bearer {secret}"}, {"x-api-key": secret}):
        response = edge.get("/_spark/user", headers={**credential, **dict(FORGED)})
        assert response.status_code == 200, response.text
        assert response.json()["id"] == "forger"
    # Not even the suite's own token passes the edge: the edge replaces it and the client's address.
    response = edge.get("/_spark/user", headers={"x-spark-internal": INTERNAL_TOKEN, "x-spark-user": "victim"})
    refused(response, 401, "API_KEY_MISSING")
    with grpc.insecure_channel(suite.edge_address) as channel:
        stub = access_pb2_grpc.AccessServiceStub(channel)
        user = stub.GetUser(access_pb2.GetUserRequest(), metadata=(("x-api-key", secret), *FORGED), timeout=10)
        assert user.id == "forger"
        token = (("x-spark-internal", INTERNAL_TOKEN), ("x-spark-user", "victim"))
        error = failed(lambda: stub.GetUser(access_pb2.GetUserRequest(), metadata=token, timeout=10))
        assert (error.code(), reason(error)) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")


def test_a_forged_client_address_does_not_move_an_anonymous_caller(edge: httpx.Client) -> None:
    """An anonymous caller's nonces are remembered per client address: the same nonce from another address
    the client names itself is still a replay, since the edge names the address it accepted."""
    nonce = f"forged-address-{uuid.uuid4().hex}"
    first = edge.get("/about", headers={"x-nonce": nonce, "x-spark-client-address": "203.0.113.10"})
    assert first.status_code == 200, first.text
    again = edge.get("/about", headers={"x-nonce": nonce, "x-spark-client-address": "203.0.113.11"})
    refused(again, 409, "NONCE_REPLAYED")


def test_a_completion_with_a_forged_user_is_the_keys_users_usage(edge: httpx.Client, fake: FakeProviderThread) -> None:
    secret, _ = new_key(edge, "payer")
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    before = usage_of(edge, "payer")
    body = {"model": MODEL, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    forged = {**dict(FORGED), "x-spark-user": victim}
    response = edge.post("/v1/chat/completions", json=body, headers={"x-api-key": secret, **forged})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert wait_for(lambda: usage_of(edge, "payer") == before + 1, timeout_s=30.0), "the completion was not recorded"
    assert usage_of(edge, victim) == 0


def test_a_direct_llm_call_with_a_forged_user_is_the_keys_users_usage(suite: RunningSuite, edge: httpx.Client) -> None:
    secret, _ = new_key(edge, "direct-payer")
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    forged = tuple((name, victim if name == "x-spark-user" else value) for name, value in FORGED)
    with channel_to(suite, "llm") as channel:
        stub = llm_pb2_grpc.LlmServiceStub(channel)
        error = failed(lambda: generate(stub, forged))
        assert (error.code(), reason(error)) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
        before = usage_of(edge, "direct-payer")
        assert generate(stub, (bearer(secret), *forged)).text == DEFAULT_REPLY
        assert wait_for(lambda: usage_of(edge, "direct-payer") == before + 1, timeout_s=30.0)
        assert usage_of(edge, victim) == 0
        # With the suite's own token the same header does name whose call it is.
        generate(stub, (("x-spark-internal", INTERNAL_TOKEN), ("x-spark-user", victim)))
        assert wait_for(lambda: usage_of(edge, victim) == 1, timeout_s=30.0)
