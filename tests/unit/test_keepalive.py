"""Keepalive ticks between slow events, and clean cancellation of the pending read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.common.keepalive import with_keepalives


async def test_ticks_while_the_source_is_silent_and_passes_events_through() -> None:
    async def slow() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.25)
        yield "b"

    seen = [event async for event in with_keepalives(slow(), 0.05)]
    assert seen[0] == "a" and seen[-1] == "b"
    assert 2 <= seen.count(None) <= 6
    assert [e for e in seen if e is not None] == ["a", "b"]


async def test_closing_cancels_the_pending_read_and_closes_the_source() -> None:
    state = {"closed": False, "cancelled": False}

    async def forever() -> AsyncIterator[str]:
        try:
            yield "first"
            await asyncio.sleep(3600)
            yield "never"
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        finally:
            state["closed"] = True

    events = with_keepalives(forever(), 0.01)
    assert await anext(events) == "first"
    assert await anext(events) is None
    await events.aclose()
    assert state == {"closed": True, "cancelled": True}
