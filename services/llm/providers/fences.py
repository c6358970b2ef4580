"""Markdown code fences removed from a model's JSON answer, whole or as it streams.

Claude, asked for JSON without a JSON mode, tends to answer in a ```json fence; apps `JSON.parse` the
text, so the gateway takes the fence off. Only a fence that opens the answer counts: text that does not
start with one passes through unchanged, closing backticks and all.
"""

from __future__ import annotations

import re

# The opening fence line: leading whitespace, three backticks, a language tag such as `json`, the newline.
# The tag's characters are limited so that a stream can tell early that text is not a fence.
_OPEN = re.compile(r"[ \t\r\n]*```[A-Za-z0-9_+.\-]*[ \t]*\r?\n")
# What the start of a stream may look like while it can still become an opening fence line.
_OPEN_SO_FAR = re.compile(r"[ \t\r\n]*(?:`{0,3}|```[A-Za-z0-9_+.\-]*[ \t]*\r?)")
_WHITESPACE = " \t\r\n"
_FENCE = "```"


def strip_fences(text: str) -> str:
    """`text` without a leading fence line and, after one, without a closing fence at the end."""
    opening = _OPEN.match(text)
    if opening is None:
        return text
    body = text[opening.end() :]
    trimmed = body.rstrip(_WHITESPACE)
    if not trimmed.endswith(_FENCE):
        # An unclosed fence, as when max_tokens cut the answer short.
        return body
    return trimmed[: -len(_FENCE)].rstrip(_WHITESPACE)


def _closing_start(text: str) -> int:
    """Where the longest suffix of `text` that may be, or grow into, the closing fence begins.

    That suffix is whitespace, then up to three backticks, then (after all three) whitespace again.
    """
    end = len(text)
    i = end
    while i > 0 and text[i - 1] in _WHITESPACE:
        i -= 1
    ticks = 0
    while ticks < len(_FENCE) and i - ticks > 0 and text[i - ticks - 1] == "`":
        ticks += 1
    # Fewer than three backticks followed by whitespace can no longer become a fence.
    if ticks == len(_FENCE) or (ticks and i == end):
        i -= ticks
        while i > 0 and text[i - 1] in _WHITESPACE:
            i -= 1
    return i


class FenceStripper:
    """`strip_fences` for a stream: the outputs of `feed` and then `finish` concatenate to
    `strip_fences` of the concatenated inputs, however the text is split.

    It holds back only what is still undecided: the start of the stream until it is known whether a
    fence opens it, and inside a fence the trailing whitespace and backticks that may yet close it.
    """

    def __init__(self) -> None:
        self._pending = ""
        # None until the start of the stream is decided; then whether it opened with a fence.
        self._fenced: bool | None = None

    def feed(self, text: str) -> str:
        """The part of the stream so far that is decided, and not yet returned."""
        if self._fenced is False:
            return text
        if self._fenced is None:
            self._pending += text
            opening = _OPEN.match(self._pending)
            if opening is None:
                if _OPEN_SO_FAR.fullmatch(self._pending):
                    return ""
                self._fenced = False
                return self._take(len(self._pending))
            self._fenced = True
            text = self._pending[opening.end() :]
            self._pending = ""
        pending = self._pending + text
        self._pending = pending
        return self._take(_closing_start(pending))

    def finish(self) -> str:
        """The rest, once the stream has ended."""
        rest = self._take(len(self._pending))
        if self._fenced and _FENCE in rest:
            # Only a complete closing fence (and the whitespace around it) is ever left over.
            return ""
        return rest

    def _take(self, size: int) -> str:
        taken, self._pending = self._pending[:size], self._pending[size:]
        return taken
