"""Keepalive ticks for long streams: proxies cut a connection that stays silent too long."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def with_keepalives(events: AsyncIterator[T], interval_s: float) -> AsyncIterator[T | None]:
    """Yields the events of `events`, and None whenever `interval_s` passes without one.

    The pending read survives the ticks (it is not restarted), and closing or
    cancelling this generator cancels it and closes `events`.
    """
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait((pending,), timeout=interval_s)
            if not done:
                yield None
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
