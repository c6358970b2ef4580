"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

from services.llm.breaker import Breaker, BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.allow()
        assert permit is not None
        breaker.record(permit, False)


def test_opens_after_the_threshold_and_refuses_calls_while_open() -> None:
    clock, changes = Clock(), []
    breaker = Breaker(failure_threshold=3, open_s=10, clock=clock, on_change=changes.append)
    _fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    _fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN and breaker.allow() is None
    clock.now = 4
    assert breaker.retry_after_s() == 6
    assert changes == [BreakerState.OPEN]


def test_a_success_resets_the_count() -> None:
    breaker = Breaker(failure_threshold=2, open_s=10, clock=Clock())
    _fail(breaker, 1)
    permit = breaker.allow()
    assert permit is not None
    breaker.record(permit, True)
    _fail(breaker, 1)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_allows_one_trial_that_closes_or_reopens() -> None:
    clock = Clock()
    breaker = Breaker(failure_threshold=1, open_s=5, clock=clock)
    _fail(breaker, 1)
    clock.now = 5
    assert breaker.state is BreakerState.HALF_OPEN
    trial = breaker.allow()
    assert trial is not None and trial.trial
    assert breaker.allow() is None  # only one trial at a time
    breaker.record(trial, False)
    assert breaker.state is BreakerState.OPEN
    clock.now = 10
    trial = breaker.allow()
    assert trial is not None
    breaker.record(trial, True)
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


def test_a_cancelled_trial_frees_the_slot_without_a_verdict() -> None:
    clock = Clock()
    breaker = Breaker(failure_threshold=1, open_s=5, clock=clock)
    _fail(breaker, 1)
    clock.now = 6
    trial = breaker.allow()
    assert trial is not None
    breaker.record(trial, None)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is not None
