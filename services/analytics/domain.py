"""Analytics domain: report periods and the overview figures. Pure; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from services.common.errors import InvalidInput

MAX_PERIOD_DAYS = 366
DEFAULT_PERIOD_DAYS = 7
# Reports cover days the shop can have data for; the bounds also keep date arithmetic (a default
# `from` a week before `to`) far from date.min and date.max.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2100, 12, 31)


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    first: date
    last: date

    @classmethod
    def parse(cls, from_date: str, to_date: str, *, today: date) -> Period:
        """From "YYYY-MM-DD" strings; missing ends default to the last 7 days up to today."""
        last = _parse_day("to", to_date) if to_date else today
        first = _parse_day("from", from_date) if from_date else last - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        if first > last:
            raise InvalidInput("PERIOD_INVALID", "from must not be after to", details={"from": "after to"})
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise InvalidInput("PERIOD_TOO_LONG", f"a period spans at most {MAX_PERIOD_DAYS} days",
                               details={"from": "too early"})
        return cls(first, last)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def _parse_day(field: str, value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("DATE_INVALID", f"{field} must be a date like 2026-11-26",
                           details={field: "invalid"}) from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise InvalidInput("DATE_OUT_OF_RANGE", f"{field} must lie between {EARLIEST_DAY} and {LATEST_DAY}",
                           details={field: "out of range"})
    return day


@dataclass(frozen=True)
class DailyFigures:
    day: date
    new_users: int


@dataclass(frozen=True)
class Overview:
    period: Period
    days: list[DailyFigures]

    @property
    def new_users(self) -> int:
        return sum(d.new_users for d in self.days)
