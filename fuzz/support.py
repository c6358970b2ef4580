"""What several targets share."""

from __future__ import annotations

import asyncio
import atexit


def event_loop() -> asyncio.AbstractEventLoop:
    """A loop to run a target's async code on, reused for every input and closed when the process exits."""
    loop = asyncio.new_event_loop()
    atexit.register(_close, loop)
    return loop


def _close(loop: asyncio.AbstractEventLoop) -> None:
    # Async generators that an error cut short are closed by tasks that still need a turn of the loop.
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
