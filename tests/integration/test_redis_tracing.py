"""Redis commands traced: a RedisStore with a tracer provider, on a real redis-server.

Each store operation inside a span (as a handler runs inside its RPC's server
span) must leave CLIENT spans under that span, in its trace, and no key or
value anywhere in the spans.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.asyncio import Redis

from services.common.store import Delete, RedisStore, Set, open_store
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

SPACE = "kv:traced"
# Distinctive enough that finding them in a span cannot be a coincidence.
SECRET_KEY = "key-" + uuid.uuid4().hex
SECRET_VALUE = b'{"password":"value-' + uuid.uuid4().hex.encode() + b'"}'
COUNTER_KEY = "counter-" + uuid.uuid4().hex


@dataclass
class Traced:
    store: RedisStore
    provider: TracerProvider
    exporter: InMemorySpanExporter


@pytest_asyncio.fixture
async def traced(redis_server: RedisServer) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = RedisStore(redis_server.url, prefix="{trace-" + uuid.uuid4().hex + "}:", tracer_provider=provider)
    try:
        yield Traced(store, provider, exporter)
    finally:
        await store.close()
        provider.shutdown()


def strings_in(span: ReadableSpan) -> list[str]:
    """Every name and attribute value of the span and its events, as text."""
    found = [span.name]
    attribute_sets = [span.attributes or {}, *(event.attributes or {} for event in span.events)]
    for attributes in attribute_sets:
        for value in attributes.values():
            found.extend(str(item) for item in (value if isinstance(value, (list, tuple)) else [value]))
    return found


async def test_each_operation_is_a_client_span_under_the_current_span(traced: Traced) -> None:
    store = traced.store
    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "ping": store.ping,
        "set": lambda: store.commit([], [Set(SPACE, SECRET_KEY, SECRET_VALUE)]),
        "get": lambda: store.get(SPACE, SECRET_KEY),
        "list": lambda: store.list(SPACE),
        "increment": lambda: store.increment(SPACE, COUNTER_KEY, 5),
        "delete": lambda: store.commit([], [Delete(SPACE, SECRET_KEY)]),
    }
    tracer = traced.provider.get_tracer(__name__)
    parents = {}
    for name, operation in operations.items():
        with tracer.start_as_current_span(f"rpc {name}", kind=SpanKind.SERVER) as parent:
            await operation()
        parents[name] = parent.get_span_context()

    spans = [span for span in traced.exporter.get_finished_spans() if span.kind is SpanKind.CLIENT]
    for name, parent in parents.items():
        children = [span for span in spans if span.parent is not None and span.parent.span_id == parent.span_id]
        assert children, f"{name}: no Redis span under its enclosing span"
        for span in children:
            assert span.context.trace_id == parent.trace_id, name
            assert (span.attributes or {}).get("db.system") == "redis", (name, span.attributes)
    assert all(span.parent is not None for span in spans), "a Redis span escaped its enclosing span"
    by_parent = {name: {s.name for s in spans if s.parent.span_id == p.span_id} for name, p in parents.items()}
    assert "PING" in by_parent["ping"] and "EVALSHA" in by_parent["set"], by_parent
    assert "ZRANGEBYLEX" in by_parent["list"], by_parent

    for span in spans:
        statement = (span.attributes or {}).get("db.statement")
        # The command name, then one `?` per argument: "EVALSHA ? ? ?", "SCRIPT LOAD ?".
        assert isinstance(statement, str) and statement.startswith(span.name), (span.name, statement)
        assert set(statement.removeprefix(span.name).split()) <= {"?"}, (span.name, statement)
        for text in strings_in(span):
            assert SECRET_KEY not in text and SECRET_VALUE.decode() not in text, (span.name, text)
            assert COUNTER_KEY not in text, (span.name, text)


async def test_a_failed_command_is_an_error_span_without_the_arguments(traced: Traced) -> None:
    await traced.store.commit([], [Set(SPACE, COUNTER_KEY, SECRET_VALUE)])
    traced.exporter.clear()
    with traced.provider.get_tracer(__name__).start_as_current_span("rpc increment"), pytest.raises(ValueError):
        await traced.store.increment(SPACE, COUNTER_KEY, 1)
    failed = [s for s in traced.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT and not s.status.is_ok]
    assert failed and all(span.status.status_code is StatusCode.ERROR for span in failed)
    for span in failed:
        for text in strings_in(span):
            assert SECRET_VALUE.decode() not in text and COUNTER_KEY not in text, (span.name, text)


async def test_only_the_given_client_is_instrumented(traced: Traced, redis_server: RedisServer, tmp_path: Path) -> None:
    """No class-wide monkeypatching: other clients and a store opened without a provider make no spans."""
    assert not hasattr(Redis.execute_command, "__wrapped__")
    untraced = open_store(redis_server.url, tmp_path)
    other = Redis.from_url(redis_server.url)
    try:
        with traced.provider.get_tracer(__name__).start_as_current_span("rpc"):
            await untraced.ping()
            await other.ping()
    finally:
        await untraced.close()
        await other.aclose()
    assert [s.name for s in traced.exporter.get_finished_spans()] == ["rpc"]


async def test_open_store_passes_the_provider_to_redis(
    traced: Traced, redis_server: RedisServer, tmp_path: Path
) -> None:
    store = open_store(redis_server.url, tmp_path, tracer_provider=traced.provider)
    try:
        await store.ping()
    finally:
        await store.close()
    assert [s.name for s in traced.exporter.get_finished_spans()] == ["PING"]
