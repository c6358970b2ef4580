"""Server-Sent Events framing: the reader the OpenAI-protocol providers' streams go through
(`services.llm.providers.sse`), and the writers of the suite's own streams (`services.common.sse`,
`services.llm.openai_wire.ChunkWriter`).

The input is a response body as a provider streams it.

- The reader yields strings, never `[DONE]`, and nothing after it.
- Round trip: the events it read, framed again as `data:` lines, read back as the same events.
- Writers: a JSON value framed by `sse.event` reads back as the one event that decodes to it; the chunks
  `ChunkWriter` frames for text split at NULs carry that text, in order, followed by a finish chunk and
  `[DONE]`; keep-alive comments are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from services.common import sse
from services.llm.openai_wire import ChunkWriter
from services.llm.providers.sse import DONE, sse_data, sse_lines


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    # Two pieces, so that line ends split across network reads are exercised too.
    middle = len(body) // 2
    yield body[:middle]
    yield body[middle:]


async def _events(body: bytes) -> list[str]:
    return [event async for event in sse_data(sse_lines(_chunks(body)))]


def read(body: bytes) -> list[str]:
    """The data of each event in an SSE body, as the providers read it."""
    # Nothing here waits on I/O, so the coroutine finishes in one step: no event loop needed (ten times faster).
    reading = _events(body)
    try:
        reading.send(None)
    except StopIteration as finished:
        events: list[str] = finished.value
        return events
    reading.close()
    raise AssertionError("reading an in-memory body suspended")


def frame(event: str) -> bytes:
    return "".join(f"data: {line}\n" for line in event.split("\n")).encode() + b"\n"


def _check_reader(data: bytes) -> None:
    events = read(data)
    assert all(isinstance(event, str) and event != DONE for event in events)
    framed = b"".join(frame(event) for event in events)
    assert read(framed) == events, (events, framed)
    assert read(framed + sse.DONE + data) == events


def _check_writers(data: bytes) -> None:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        events = read(sse.KEEPALIVE + sse.event(payload) + sse.KEEPALIVE)
        assert len(events) == 1 and orjson.loads(events[0]) == payload
    text = data.decode("utf-8", "replace")
    writer = ChunkWriter("chatcmpl-1", 1, text[:16], include_usage=False)
    deltas = text.split("\x00")
    body = writer.start() + b"".join(writer.delta(delta) for delta in deltas) + writer.finish("stop", None)
    chunks = [orjson.loads(event) for event in read(body + b"data: {}\n\n")]
    assert [chunk["choices"][0]["delta"].get("content") for chunk in chunks] == ["", *deltas, None]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def TestOneInput(data: bytes) -> None:
    _check_reader(data)
    _check_writers(data)
