"""Server-Sent Events framing, as the OpenAI-protocol providers send their streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = "[DONE]"


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each event, multi-line data joined with newlines, until `data: [DONE]` or the end.

    Comments (`: keepalive`) and other fields (`event:`, `id:`, `retry:`) are skipped.
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                event = "\n".join(data)
                data = []
                if event == DONE:
                    return
                yield event
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data and (event := "\n".join(data)) != DONE:
        yield event
