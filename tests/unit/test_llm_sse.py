"""The SSE framing the OpenAI-protocol providers stream in."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.llm.providers.sse import sse_data


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.split("\n"):
        yield line


async def _data(text: str) -> list[str]:
    return [event async for event in sse_data(_lines(text))]


async def test_events_comments_fields_and_done() -> None:
    text = ': keepalive\n\ndata: {"a":1}\n\nevent: x\nid: 7\ndata:{"b":2}\n\ndata: [DONE]\n\ndata: {"after":true}\n\n'
    assert await _data(text) == ['{"a":1}', '{"b":2}']


async def test_multi_line_data_is_joined_and_a_last_event_without_a_blank_line_counts() -> None:
    assert await _data("data: line one\ndata: line two\n\ndata: tail") == ["line one\nline two", "tail"]


async def test_a_stream_cut_before_done_just_ends() -> None:
    assert await _data('data: {"a":1}\n\n') == ['{"a":1}']
