"""Server-Sent Events framing, as the OpenAI-protocol providers send their streams."""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator

DONE = "[DONE]"
# The only line ends of an event stream. `str.splitlines` (and so httpx's `aiter_lines`) also breaks at
# U+2028, U+2029 and U+0085, which JSON carries unescaped inside strings: a delta holding one would be cut.
_LINE_END = re.compile(r"\r\n|\r|\n")


async def sse_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of a UTF-8 event stream as its bytes arrive, without their line ends."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        # A CR at the end may be the first half of a CRLF.
        complete = len(pending) - 1 if pending.endswith("\r") else len(pending)
        *lines, rest = _LINE_END.split(pending[:complete])
        pending = rest + pending[complete:]
        for line in lines:
            yield line
    *lines, rest = _LINE_END.split(pending + decoder.decode(b"", final=True))
    for line in lines:
        yield line
    if rest:
        yield rest


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
