"""A clock the test moves by hand, for code that takes `clock=` (breakers, limiters, budgets, caches)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ManualClock(Generic[T]):
    """Answers `now` until the test sets it: waiting out a breaker or a TTL costs no sleep."""

    def __init__(self, now: T) -> None:
        self.now = now

    def __call__(self) -> T:
        return self.now
