"""Background work that runs every few seconds for as long as a server lives, and once more when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(interval_s: float, action: Callable[[], Awaitable[None]]) -> None:
    """Awaits `action` every `interval_s` until cancelled, then once more (shielded) so nothing pending is lost."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            await action()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(action())


def start(interval_s: float, action: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Starts `every` as a task; returns the closer that cancels it and waits for its last run."""
    task = asyncio.ensure_future(every(interval_s, action))

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
