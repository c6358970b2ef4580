"""Five-field cron expressions (minute hour day-of-month month day-of-week), evaluated in UTC.

The syntax is Vixie cron's: `*`, numbers, ranges `a-b`, lists `a,b`, steps
`*/n`, `a-b/n` and `a/n` (from `a` to the field's maximum), month and weekday
names (`jan`, `mon`, case-insensitive), and day-of-week 0-7 where both 0 and
7 are Sunday. When both day-of-month and day-of-week are restricted, a day
matches if either does; as in Vixie cron, a field is unrestricted when it
starts with `*` (so `*/2` in day-of-week still means "and").
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from services.common.errors import FieldViolation, InvalidArgument

logger = logging.getLogger(__name__)

# Every expression `parse` accepts matches within this: the rarest day it can ask for
# is Feb 29 on a Sunday (`0 0 29 2 */7`, see below), up to 40 years away around 2100.
SEARCH_LIMIT = timedelta(days=50 * 366)
# Sleeping in short chunks notices wall-clock jumps; cancellation interrupts any sleep anyway.
MAX_SLEEP_S = 60.0

_MONTH_NAMES = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_WEEKDAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# The longest each month can be, leap years included.
_MAX_MONTH_DAYS = {month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in range(1, 13)}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 7, _WEEKDAY_NAMES),
)


class _FieldError(ValueError):
    pass


def _value(spec: _Field, text: str) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names[lowered]
    if not text.isascii() or not text.isdigit():
        raise _FieldError(f"{text!r} is not a number" + (" or a name" if spec.names else ""))
    number = int(text)
    if not spec.low <= number <= spec.high:
        raise _FieldError(f"{number} is out of range {spec.low}-{spec.high}")
    return number


def _parse_field(spec: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) == 0:
                raise _FieldError(f"step {step_text!r} in {part!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(spec, first), _value(spec, last)
            if low > high:
                raise _FieldError(f"range {base!r} runs backwards")
        else:
            low = _value(spec, base)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _invalid(expression: str, field: str, problem: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid cron expression {expression!r}: {field}: {problem}",
        reason="INVALID_CRON",
        metadata={"cron_field": field},
        violations=(FieldViolation(field, problem),),
    )


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed expression: the allowed values of each field (day-of-week 0-6, Sunday 0)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Raises `InvalidArgument` (reason `INVALID_CRON`) naming the offending field."""
        texts = expr.split()
        if len(texts) != len(_FIELDS):
            raise _invalid(expr, "expression", f"has {len(texts)} fields, expected 5 (minute hour day month weekday)")
        parsed: list[frozenset[int]] = []
        for spec, text in zip(_FIELDS, texts, strict=True):
            try:
                parsed.append(_parse_field(spec, text))
            except _FieldError as error:
                raise _invalid(expr, spec.name, str(error)) from None
        minutes, hours, days, months, weekdays = parsed
        schedule = cls(
            expression=" ".join(texts),
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=frozenset(day % 7 for day in weekdays),
            days_restricted=not texts[2].startswith("*"),
            weekdays_restricted=not texts[4].startswith("*"),
        )
        if (
            schedule.days_restricted
            and not schedule.weekdays_restricted
            and not any(day <= _MAX_MONTH_DAYS[month] for month in months for day in days)
        ):
            raise _invalid(expr, "day-of-month", "no month in the expression has any of these days")
        return schedule

    def __str__(self) -> str:
        return self.expression

    def _day_matches(self, day: date) -> bool:
        in_days = day.day in self.days
        # date.weekday() counts from Monday = 0; cron counts from Sunday = 0.
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after `moment` (timezone-aware), in UTC with seconds zeroed.

        Raises ValueError if nothing matches within `SEARCH_LIMIT` (only possible for
        schedules built without `parse`, which refuses expressions that never match).
        """
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        start = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        day = start.date()
        last_day = day + SEARCH_LIMIT
        while day <= last_day:
            if day.month not in self.months:
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                continue
            if self._day_matches(day):
                earliest = start.time() if day == start.date() else time(0, 0)
                for hour in hours:
                    if hour < earliest.hour:
                        continue
                    for minute in minutes:
                        if (hour, minute) >= (earliest.hour, earliest.minute):
                            return datetime.combine(day, time(hour, minute), tzinfo=UTC)
            day += timedelta(days=1)
        raise ValueError(f"cron expression {self.expression!r} matches no time before {last_day}")


async def run_on_schedule(
    schedule: CronSchedule,
    job: Callable[[], Awaitable[None]],
    *,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Runs `job` at every time the schedule names, until the task is cancelled.

    A run whose time passed while the clock jumped (or the previous run took
    long) happens once, not once per missed time. A failing job is logged and
    the schedule goes on. Cancellation propagates as `CancelledError`, also
    out of a running job.
    """
    last_due: datetime | None = None
    while True:
        now = clock()
        # A clock that steps back must not repeat a run that already happened.
        due = schedule.next_after(now if last_due is None else max(now, last_due))
        while (remaining := (due - clock()).total_seconds()) > 0:
            await sleep(min(remaining, MAX_SLEEP_S))
        last_due = due
        try:
            await job()
        except Exception:
            logger.exception("scheduled job failed (schedule %s, due %s)", schedule, due.isoformat())
