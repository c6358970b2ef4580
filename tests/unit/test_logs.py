"""One JSON line per record, with the trace id of the current span."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from services.common.logs import JsonFormatter


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("spark.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_record_is_one_json_line_with_extras() -> None:
    line = JsonFormatter("kv").format(_record("stored %s", "key", key_count=3, path=object()))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "stored key"
    assert entry["service"] == "kv"
    assert entry["level"] == "info"
    assert entry["key_count"] == 3
    assert "trace_id" not in entry


def test_lines_inside_a_span_carry_its_trace_id() -> None:
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("work") as span:
        entry = json.loads(JsonFormatter("kv").format(_record("inside")))
    context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
    provider.shutdown()
