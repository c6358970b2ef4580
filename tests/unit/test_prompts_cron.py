"""Cron expressions: parsing, the next run time, and the loop that runs a job on schedule."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.prompts.cron import MAX_SLEEP_S, CronSchedule, run_on_schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # The default backup schedule.
        ("0 3 * * *", "2026-11-22T20:00Z", "2026-11-23T03:00Z"),
        # Strictly later, with seconds ignored.
        ("0 3 * * *", "2026-11-23T03:00Z", "2026-11-24T03:00Z"),
        ("0 3 * * *", "2026-11-23T03:00:59.999Z", "2026-11-24T03:00Z"),
        ("0 3 * * *", "2026-11-23T02:59:59.999Z", "2026-11-23T03:00Z"),
        ("* * * * *", "2026-11-22T20:00:30.5Z", "2026-11-22T20:01Z"),
        # Steps, ranges, lists.
        ("*/15 * * * *", "2026-11-22T20:07Z", "2026-11-22T20:15Z"),
        ("*/15 * * * *", "2026-11-22T23:45Z", "2026-11-23T00:00Z"),
        ("10-50/20 * * * *", "2026-11-22T20:30Z", "2026-11-22T20:50Z"),
        ("10-50/20 * * * *", "2026-11-22T20:50Z", "2026-11-22T21:10Z"),
        ("5/20 * * * *", "2026-11-22T20:45Z", "2026-11-22T21:05Z"),
        ("0 8,12,18 * * *", "2026-11-22T12:00Z", "2026-11-22T18:00Z"),
        ("0 */6 * * *", "2026-11-22T19:00Z", "2026-11-23T00:00Z"),
        ("15 9-17/4 * * *", "2026-11-22T13:15Z", "2026-11-22T17:15Z"),
        # Month and year ends.
        ("59 23 31 12 *", "2026-06-01T00:00Z", "2026-12-31T23:59Z"),
        ("0 0 1 1 *", "2026-12-31T23:59Z", "2027-01-01T00:00Z"),
        ("0 0 31 * *", "2026-04-01T00:00Z", "2026-05-31T00:00Z"),
        ("0 0 30 * *", "2027-01-31T00:00Z", "2027-03-30T00:00Z"),
        ("0 0 28-31 2 *", "2026-02-27T01:00Z", "2026-02-28T00:00Z"),
        # Leap days, including the skipped one in 2100.
        ("0 0 29 2 *", "2026-03-01T00:00Z", "2028-02-29T00:00Z"),
        ("0 0 29 2 *", "2028-02-28T12:00Z", "2028-02-29T00:00Z"),
        ("0 0 29 2 *", "2096-03-01T00:00Z", "2104-02-29T00:00Z"),
        # Day of week: 0 and 7 are Sunday; names in any case.
        ("0 9 * * 1-5", "2026-11-20T10:00Z", "2026-11-23T09:00Z"),
        ("30 6 * * MON-fri", "2026-11-21T00:00Z", "2026-11-23T06:30Z"),
        ("0 0 * * 0", "2026-11-20T00:00Z", "2026-11-22T00:00Z"),
        ("0 0 * * 7", "2026-11-20T00:00Z", "2026-11-22T00:00Z"),
        ("0 0 * * sun", "2026-11-20T00:00Z", "2026-11-22T00:00Z"),
        ("0 0 * * 5-7", "2026-11-21T00:00Z", "2026-11-22T00:00Z"),
        ("0 0 1 jan,JUL *", "2026-02-01T00:00Z", "2026-07-01T00:00Z"),
        ("0 0 1 mar-may/2 *", "2026-03-02T00:00Z", "2026-05-01T00:00Z"),
        # Both day fields restricted: either one matching is enough.
        ("0 0 13 * 5", "2026-11-01T00:00Z", "2026-11-06T00:00Z"),
        ("0 0 13 * 1", "2026-11-10T00:00Z", "2026-11-13T00:00Z"),
        ("0 0 13 * 1", "2026-11-13T00:00Z", "2026-11-16T00:00Z"),
        ("0 0 1-7 * 0", "2026-11-02T00:00Z", "2026-11-03T00:00Z"),
        ("0 0 30 2 1", "2026-11-22T00:00Z", "2027-02-01T00:00Z"),
        # A field starting with `*` is unrestricted (Vixie cron), so this is "and": the first Sunday.
        ("0 0 1-7 * */7", "2026-11-02T00:00Z", "2026-12-06T00:00Z"),
        # The rarest date an accepted expression can ask for: Feb 29 on a Sunday.
        ("0 0 29 2 */7", "2088-03-01T00:00Z", "2128-02-29T00:00Z"),
        # Other time zones in, UTC out.
        ("0 21 * * *", "2026-11-22T23:30+03:00", "2026-11-22T21:00Z"),
    ],
)
def test_next_after(expression: str, after: str, expected: str) -> None:
    result = CronSchedule.parse(expression).next_after(at(after))
    assert result == at(expected)
    assert result.tzinfo is UTC


def test_next_after_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronSchedule.parse("* * * * *").next_after(datetime(2026, 11, 22, 20, 0))


def test_a_schedule_that_never_matches_gives_up() -> None:
    # `parse` refuses such expressions; only a hand-built schedule can get here.
    everything = CronSchedule.parse("0 0 * * *")
    impossible = CronSchedule(
        expression="0 0 31 2 *",
        minutes=everything.minutes,
        hours=everything.hours,
        days=frozenset({31}),
        months=frozenset({2}),
        weekdays=everything.weekdays,
        days_restricted=True,
        weekdays_restricted=False,
    )
    with pytest.raises(ValueError, match="matches no time"):
        impossible.next_after(at("2026-01-01T00:00Z"))


def test_parsed_fields() -> None:
    schedule = CronSchedule.parse("1,2 3-5 */10 jan-mar/2 mon,7")
    assert schedule.minutes == {1, 2}
    assert schedule.hours == {3, 4, 5}
    assert schedule.days == {1, 11, 21, 31}
    assert schedule.months == {1, 3}
    assert schedule.weekdays == {0, 1}
    assert (schedule.days_restricted, schedule.weekdays_restricted) == (False, True)


def test_str_is_the_normalized_expression_and_parses_back() -> None:
    schedule = CronSchedule.parse("  0   3 *\t* *  ")
    assert str(schedule) == "0 3 * * *"
    assert CronSchedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("61 * * * *", "minute"),
        ("* * *", "expression"),
        ("", "expression"),
        ("* * * * * *", "expression"),
        ("a b c d e", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * 32 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * foo *", "month"),
        ("* * * * 8", "day-of-week"),
        ("* * * * mon-sun", "day-of-week"),
        ("* * * * jan", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("*/x * * * *", "minute"),
        ("*/ * * * *", "minute"),
        ("5-1 * * * *", "minute"),
        ("1,,2 * * * *", "minute"),
        ("-1 * * * *", "minute"),
        ("1-2-3 * * * *", "minute"),
        ("\u0661 * * * *", "minute"),
        ("0 0 30 2 *", "day-of-month"),
        ("0 0 31 4,6,9,11 *", "day-of-month"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        CronSchedule.parse(expression)
    error = caught.value
    assert error.reason == "INVALID_CRON"
    assert error.metadata == {"cron_field": field}
    assert [violation.field for violation in error.violations] == [field]
    assert field in error.message


def _day_matches(schedule: CronSchedule, day: date) -> bool:
    """The definition of a matching day, written independently of the implementation."""
    in_days = day.day in schedule.days and day.month in schedule.months
    in_weekdays = int(day.strftime("%w")) in schedule.weekdays and day.month in schedule.months
    if schedule.days_restricted and schedule.weekdays_restricted:
        return in_days or in_weekdays
    return in_days and in_weekdays


def _matches(schedule: CronSchedule, moment: datetime) -> bool:
    return moment.minute in schedule.minutes and moment.hour in schedule.hours and _day_matches(schedule, moment.date())


MINUTES = st.one_of(
    st.just("*"),
    st.integers(0, 59).map(str),
    st.tuples(st.integers(0, 59), st.integers(0, 59)).map(lambda pair: f"{min(pair)}-{max(pair)}"),
    st.lists(st.integers(0, 59).map(str), min_size=1, max_size=3).map(",".join),
    st.tuples(st.sampled_from(["*", "10-40", "7"]), st.integers(1, 70)).map(lambda pair: f"{pair[0]}/{pair[1]}"),
)


@settings(database=None, max_examples=200, deadline=None)
@given(
    expression=st.tuples(
        MINUTES,
        st.one_of(st.just("*"), st.integers(0, 23).map(str), st.just("*/5"), st.just("22-23")),
        st.one_of(st.just("*"), st.integers(1, 31).map(str), st.just("15-31/4"), st.just("*/10")),
        st.one_of(st.just("*"), st.integers(1, 12).map(str), st.just("2,4"), st.just("feb")),
        st.one_of(st.just("*"), st.integers(0, 7).map(str), st.just("mon-wed"), st.just("*/3")),
    ).map(" ".join),
    start=st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
)
def test_next_after_is_the_first_matching_minute(expression: str, start: datetime) -> None:
    try:
        schedule = CronSchedule.parse(expression)
    except InvalidArgument:
        reject()  # Days no month in the expression has.
    result = schedule.next_after(start)
    first = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert result >= first
    assert result.second == result.microsecond == 0
    assert _matches(schedule, result)
    # No minute from `first` on matches before `result`: check whole days, then minutes of the last one.
    day_ = first.date()
    while day_ < result.date():
        if _day_matches(schedule, day_):
            earliest = first.time() if day_ == first.date() else time(0, 0)
            assert all(time(h, m) < earliest for h in schedule.hours for m in schedule.minutes)
        day_ += timedelta(days=1)
    moment = max(first, datetime.combine(result.date(), time(0, 0), UTC))
    while moment < result:
        assert not _matches(schedule, moment)
        moment += timedelta(minutes=1)


class FakeTime:
    """A clock and a sleep that advances it, recording every sleep."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.jumps: dict[int, datetime] = {}

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        # The wall clock may jump while asleep: `jumps` maps a sleep's index to the time after it.
        self.now = self.jumps.get(len(self.sleeps), self.now)
        await asyncio.sleep(0)


class Stop(BaseException):
    """Ends a `run_on_schedule` loop from inside a job, as nothing but cancellation otherwise does."""


async def test_runs_the_job_at_each_scheduled_time() -> None:
    time = FakeTime(at("2026-11-22T20:00:00Z"))
    runs: list[datetime] = []

    async def job() -> None:
        runs.append(time.clock())
        if len(runs) == 3:
            raise Stop

    with pytest.raises(Stop):
        await run_on_schedule(CronSchedule.parse("0 3 * * *"), job, clock=time.clock, sleep=time.sleep)
    assert runs == [at("2026-11-23T03:00Z"), at("2026-11-24T03:00Z"), at("2026-11-25T03:00Z")]
    assert all(0 < seconds <= MAX_SLEEP_S for seconds in time.sleeps)


async def test_a_failing_job_is_logged_and_the_schedule_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime(at("2026-11-22T20:00:30Z"))
    runs: list[datetime] = []

    async def job() -> None:
        runs.append(time.clock())
        if len(runs) == 1:
            raise RuntimeError("backup failed")
        raise Stop

    with caplog.at_level(logging.ERROR, logger="services.prompts.cron"), pytest.raises(Stop):
        await run_on_schedule(CronSchedule.parse("*/10 * * * *"), job, clock=time.clock, sleep=time.sleep)
    assert runs == [at("2026-11-22T20:10Z"), at("2026-11-22T20:20Z")]
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "*/10 * * * *" in record.getMessage()


async def test_a_forward_clock_jump_runs_a_missed_time_once() -> None:
    time = FakeTime(at("2026-11-22T10:00:30Z"))
    time.jumps[1] = at("2026-11-22T13:20:00Z")
    runs: list[datetime] = []

    async def job() -> None:
        runs.append(time.clock())
        if len(runs) == 2:
            raise Stop

    with pytest.raises(Stop):
        await run_on_schedule(CronSchedule.parse("0 * * * *"), job, clock=time.clock, sleep=time.sleep)
    assert runs == [at("2026-11-22T13:20Z"), at("2026-11-22T14:00Z")]


async def test_a_backward_clock_jump_does_not_repeat_a_run() -> None:
    time = FakeTime(at("2026-11-22T02:58:00Z"))
    runs: list[datetime] = []

    async def job() -> None:
        runs.append(time.clock())
        if len(runs) == 1:
            time.now = at("2026-11-22T02:59:00Z")
        else:
            raise Stop

    with pytest.raises(Stop):
        await run_on_schedule(CronSchedule.parse("0 3 * * *"), job, clock=time.clock, sleep=time.sleep)
    assert runs == [at("2026-11-22T03:00Z"), at("2026-11-23T03:00Z")]


async def test_a_backward_clock_jump_while_asleep_waits_longer() -> None:
    time = FakeTime(at("2026-11-22T02:59:00Z"))
    time.jumps[1] = at("2026-11-22T02:00:00Z")
    runs: list[datetime] = []

    async def job() -> None:
        runs.append(time.clock())
        raise Stop

    with pytest.raises(Stop):
        await run_on_schedule(CronSchedule.parse("0 3 * * *"), job, clock=time.clock, sleep=time.sleep)
    assert runs == [at("2026-11-22T03:00Z")]
    assert sum(time.sleeps) == pytest.approx(60 + 3600)


async def test_cancellation_stops_the_loop_while_it_waits() -> None:
    started = asyncio.Event()
    runs: list[datetime] = []

    async def forever(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    async def job() -> None:
        runs.append(datetime.now(UTC))

    task = asyncio.create_task(run_on_schedule(CronSchedule.parse("* * * * *"), job, sleep=forever))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert runs == []


async def test_cancellation_propagates_out_of_a_running_job(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime(at("2026-11-22T20:00:00Z"))
    running = asyncio.Event()

    async def job() -> None:
        running.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(
        run_on_schedule(CronSchedule.parse("* * * * *"), job, clock=time.clock, sleep=time.sleep)
    )
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert caplog.records == []
