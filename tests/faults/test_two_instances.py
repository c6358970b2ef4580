"""Two instances of every service on one Redis: shared state stays one truth whichever instance answers.

Two whole suites (each its own launcher, edge and one process of every
service) share one REDIS_URL, as two machines of a deployment would. With
two edges a test chooses which instance serves each request, so "written
through one, read through the other" is certain rather than left to the load
balancer (tests/e2e runs several workers behind one edge, where it is not).
Checked across instances: KV values byte for byte and the set-if-absent race,
prompt ids and the one default per (namespace, language) under concurrent
creates and changes, one rate-limit counter per user, and one LLM response
cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.test_access_http import SPARK_LIMIT, limits_file
from tests.fakes.providers import FakeProviderThread
from tests.faults.conftest import ADMIN_TOKEN
from tests.support.http import json_error
from tests.support.redis_server import RedisServer
from tests.support.suite import SERVICES, RunningSuite

pytestmark = [pytest.mark.faults, pytest.mark.redis]

ADMIN = {"X-Admin-Token": ADMIN_TOKEN}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread() as provider:
        yield provider


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, fake: FakeProviderThread) -> Iterator[tuple[RunningSuite, ...]]:
    """Suites A and B on one Redis of their own, started side by side; each runs one process of every service."""
    directory = tmp_path_factory.mktemp("two-instances")
    with RedisServer(directory / "redis") as redis:
        env = {
            **fake.env(),
            "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_API_KEY": "ak-test",
            "REDIS_URL": redis.url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "SPARK_ACCESS_LIMITS": str(limits_file(directory)),
            "SPARK_KV_WORKERS": "1",
        }
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(RunningSuite.start, directory / name, env) for name in ("a", "b")]
        suites = tuple(future.result() for future in starting if future.exception() is None)
        try:
            if len(suites) < len(starting):
                raise next(error for future in starting if (error := future.exception()) is not None)
            yield suites
        finally:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(RunningSuite.stop, suites))


@pytest.fixture
def edges(pair: tuple[RunningSuite, ...], show_logs: list[RunningSuite]) -> Iterator[tuple[httpx.Client, ...]]:
    """A client on each suite's edge; both suites' logs are printed if the test fails."""
    show_logs.extend(pair)
    with contextlib.ExitStack() as stack:
        yield tuple(stack.enter_context(httpx.Client(base_url=s.base_url, timeout=30.0)) for s in pair)


def concurrently(
    pair: tuple[RunningSuite, ...], calls: list[tuple[int, str, str, dict[str, Any]]]
) -> list[httpx.Response]:
    """Each (suite index, method, path, httpx arguments) sent at once from its own thread; the responses in order."""

    def send(call: tuple[int, str, str, dict[str, Any]]) -> httpx.Response:
        index, method, path, arguments = call
        with httpx.Client(base_url=pair[index].base_url, timeout=30.0) as client:
            return client.request(method, path, **arguments)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(send, calls))


def test_every_service_runs_once_in_each_suite(pair: tuple[RunningSuite, ...], edges: tuple[httpx.Client, ...]) -> None:
    """Two instances of every service in all, each pair behind its own edge, all healthy."""
    for suite, edge in zip(pair, edges, strict=True):
        assert set(suite.child_pids()) == {*SERVICES, "edge"}
        assert edge.get("/healthz").status_code == 200


def test_kv_values_and_the_set_if_absent_race_agree_across_instances(
    pair: tuple[RunningSuite, ...], edges: tuple[httpx.Client, ...]
) -> None:
    """Forty values written through both edges at once read back the same through either; sixteen
    concurrent set-if-absent writes through both edges have exactly one winner, whose value both serve."""
    values = {f"k{i}/é {i}": f'{{"n": {i}, "text": "значение {i}"}}' for i in range(40)}
    writes = [
        (i % 2, "POST", f"/_spark/kv/{quote(key, safe='')}?collection=pair", {"content": value.encode()})
        for i, (key, value) in enumerate(values.items())
    ]
    assert [r.status_code for r in concurrently(pair, writes)] == [200] * len(writes)
    for edge in edges:
        listing = edge.get("/_spark/db/collections/pair").json()
        assert {item["key"]: item["value"] for item in listing} == values
    for i, (key, value) in enumerate(list(values.items())[:6]):
        response = edges[1 - i % 2].get(f"/_spark/kv/{quote(key, safe='')}?collection=pair")
        assert response.content == value.encode(), (key, response.text)

    initial = [
        (i % 2, "POST", "/_spark/kv/first", {"content": str(i), "headers": {"X-Spark-Initial": "true"}})
        for i in range(16)
    ]
    outcomes = [r.json() for r in concurrently(pair, initial)]
    winners = [i for i, outcome in enumerate(outcomes) if outcome.get("written")]
    assert len(winners) == 1, outcomes
    for edge in edges:
        assert edge.get("/_spark/kv/first").content == str(winners[0]).encode()


def test_prompt_ids_and_per_language_defaults_hold_across_instances(
    pair: tuple[RunningSuite, ...], edges: tuple[httpx.Client, ...]
) -> None:
    """Thirty prompts created at once through both edges, each asking to be its language's default: distinct
    ids, exactly one default per language, the same one through either edge; a default changed through one
    edge is what the other serves next, although it had the old one cached."""
    namespace = "two-instances"
    creates = []
    for i in range(30):
        body = {"namespace": namespace, "name": f"p{i}", "lang": "ru" if i % 3 == 0 else "en", "text": "t"}
        creates.append((i % 2, "POST", "/v1/prompts", {"json": {**body, "make_default": True}, "headers": ADMIN}))
    created = [r.json() for r in concurrently(pair, creates)]
    assert all("id" in prompt for prompt in created), created
    ids = [prompt["id"] for prompt in created]
    assert len(set(ids)) == len(ids)

    def defaults(edge: httpx.Client, lang: str) -> list[int]:
        listed = edge.get("/v1/prompts", params={"namespace": namespace, "lang": lang, "limit": 100}).json()
        return [p["id"] for p in listed["items"] if p["is_default"]]

    def default_id(edge: httpx.Client, lang: str) -> int:
        return int(edge.get("/v1/prompts/default", params={"namespace": namespace, "lang": lang}).json()["id"])

    served: dict[str, int] = {}
    for lang in ("en", "ru"):
        found = {tuple(defaults(edge, lang)) for edge in edges}
        assert len(found) == 1 and len(next(iter(found))) == 1, (lang, found)
        (served[lang],) = next(iter(found))
        assert [default_id(edge, lang) for edge in edges] == [served[lang]] * 2

    other = next(p["id"] for p in created if p["lang"] == "en" and p["id"] != served["en"])
    assert edges[0].put(f"/v1/prompts/{other}/default", headers=ADMIN).status_code == 200
    for edge in (edges[1], edges[0]):
        assert (default_id(edge, "en"), default_id(edge, "ru")) == (other, served["ru"])
        assert defaults(edge, "en") == [other]


def test_one_rate_limit_counter_per_user_across_access_instances(
    pair: tuple[RunningSuite, ...], edges: tuple[httpx.Client, ...]
) -> None:
    """The `spark` class allows the user 25 requests a day: 40 sent at once through both edges admit exactly 25."""
    calls = [(i % 2, "GET", "/_spark/user", {}) for i in range(SPARK_LIMIT + 15)]
    responses = concurrently(pair, calls)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == SPARK_LIMIT and statuses.count(429) == 15, statuses
    limited = next(r for r in responses if r.status_code == 429)
    assert json_error(limited, 429, "")["details"][0]["reason"] == "RATE_LIMITED"
    for index, edge in enumerate(edges):
        assert edge.get("/_spark/user").status_code == 429, index


def test_the_llm_response_cache_is_shared_across_instances(
    edges: tuple[httpx.Client, ...], fake: FakeProviderThread
) -> None:
    """A deterministic completion asked through one edge is answered from the cache through the other."""
    for n, (first, second) in enumerate((edges, edges[::-1])):
        body = {"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": f"cache {n}"}]}
        before = len(fake.requests)
        miss = first.post("/v1/chat/completions", json=body)
        hit = second.post("/v1/chat/completions", json=body)
        assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit"), (miss.text, hit.text)
        assert hit.json()["choices"] == miss.json()["choices"]
        assert len(fake.requests) == before + 1
