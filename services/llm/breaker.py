"""A circuit breaker per provider: closed -> open after N failures in a row -> one half-open trial -> closed.

While open, calls are refused at once (the gateway moves to the next model)
instead of waiting on a provider that is down.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave for one call to go out; `trial` when it is the half-open state's single trial."""

    trial: bool


class Breaker:
    def __init__(
        self,
        *,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._threshold = failure_threshold
        self._open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after_s(self) -> float:
        """Seconds until an open breaker lets a trial through; 0 when it is not open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_s - (self._clock() - self._opened_at))

    def allow(self) -> Permit | None:
        """A permit if a call may go out now (in half-open state, the single trial); None if not.

        Every permit must be handed back to `record` exactly once.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(trial=False)
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return Permit(trial=True)
        return None

    def record(self, permit: Permit, success: bool | None) -> None:
        """The outcome of a permitted call: True, False (the provider failed), None (no verdict, e.g. cancelled)."""
        if permit.trial:
            self._trial_running = False
        if success is None:
            return
        if success:
            self._failures = 0
            self._set(BreakerState.CLOSED)
            return
        self._failures += 1
        if permit.trial or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
