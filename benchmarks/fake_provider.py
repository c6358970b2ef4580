"""`python -m benchmarks.fake_provider`: the tests' fake LLM provider in a process of its own.

Benchmarks run it apart from the load tool and the suite so that its CPU is
measured on its own and no GIL is shared. It prints `FAKE_PROVIDER_URL <url>`
once it listens, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import uvloop

from tests.fakes.providers import FakeProvider

READY_PREFIX = "FAKE_PROVIDER_URL "


async def _serve(fake: FakeProvider) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with fake.serving():
        sys.stdout.write(f"{READY_PREFIX}{fake.url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between streamed deltas")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the first byte")
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--reply", default="Hello from the fake")
    args = parser.parse_args(argv)
    fake = FakeProvider(reply=args.reply, delay_s=args.delay, gap_s=args.gap, chunk_chars=args.chunk_chars)
    # The fake keeps every request for tests to inspect; a benchmark sends millions.
    fake.requests = _Discard()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(fake))
    return 0


class _Discard(list):  # type: ignore[type-arg]
    """A list that forgets what is appended."""

    def append(self, item: object) -> None:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
