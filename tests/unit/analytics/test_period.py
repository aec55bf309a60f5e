"""Report periods: defaults, limits and bad input; the overview's totals."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.analytics.domain import DailyFigures, Figures, Period, period_totals
from services.common.errors import InvalidInput

TODAY = date(2026, 11, 26)


def refusal(from_date: str, to_date: str) -> tuple[str, dict]:
    with pytest.raises(InvalidInput) as raised:
        Period.parse(from_date, to_date, today=TODAY)
    return raised.value.code, raised.value.details


def test_no_dates_means_the_last_seven_days_ending_today() -> None:
    assert Period.parse("", "", today=TODAY) == Period(date(2026, 11, 20), date(2026, 11, 26))


def test_only_to_means_the_seven_days_ending_then() -> None:
    assert Period.parse("", "2026-10-31", today=TODAY) == Period(date(2026, 10, 25), date(2026, 10, 31))


def test_only_from_means_from_then_until_today() -> None:
    assert Period.parse("2026-11-01", "", today=TODAY) == Period(date(2026, 11, 1), TODAY)


def test_both_dates_are_taken_as_given() -> None:
    assert Period.parse("2026-01-01", "2026-01-31", today=TODAY) == Period(date(2026, 1, 1), date(2026, 1, 31))


def test_a_single_day_is_a_period() -> None:
    assert Period.parse("2026-11-26", "2026-11-26", today=TODAY).days() == [TODAY]


def test_from_after_to_is_refused() -> None:
    assert refusal("2026-11-27", "2026-11-26") == ("PERIOD_INVALID", {"from": "after to"})


def test_from_after_today_without_to_is_refused() -> None:
    assert refusal("2026-11-27", "") == ("PERIOD_INVALID", {"from": "after to"})


def test_366_days_is_the_longest_period() -> None:
    period = Period.parse("2024-01-01", "2024-12-31", today=TODAY)  # a leap year

    assert len(period.days()) == 366


def test_367_days_is_too_long() -> None:
    assert refusal("2024-01-01", "2025-01-01") == ("PERIOD_TOO_LONG", {"from": "too early"})


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-02-30", "26-11-2026", "2026/11/26", " "])
def test_bad_from_date_is_refused_naming_from(bad: str) -> None:
    assert refusal(bad, "2026-11-26") == ("DATE_INVALID", {"from": "invalid"})


@pytest.mark.parametrize("bad", ["tomorrow", "2026-11-31", "11/26/2026"])
def test_bad_to_date_is_refused_naming_to(bad: str) -> None:
    assert refusal("2026-11-01", bad) == ("DATE_INVALID", {"to": "invalid"})


@pytest.mark.parametrize(("from_date", "to_date", "field"), [
    ("", "0001-01-03", "to"), ("0001-01-01", "2026-01-02", "from"), ("1999-12-31", "2000-01-06", "from"),
    ("2099-12-31", "2100-01-01", "to"), ("", "9999-12-31", "to"), ("9999-12-31", "", "from")])
def test_dates_outside_2000_to_2099_are_refused_naming_the_field(from_date: str, to_date: str, field: str) -> None:
    assert refusal(from_date, to_date) == ("DATE_OUT_OF_RANGE", {field: "out of range"})


def test_the_first_and_last_allowed_days_are_accepted() -> None:
    assert (Period.parse("2000-01-01", "2000-01-07", today=TODAY).first,
            Period.parse("2099-12-25", "2099-12-31", today=TODAY).last) == (date(2000, 1, 1), date(2099, 12, 31))


@given(from_date=st.one_of(st.just(""), st.dates().map(date.isoformat)),
       to_date=st.one_of(st.just(""), st.dates().map(date.isoformat)))
def test_any_pair_of_dates_gives_a_period_or_a_refusal_never_a_crash(from_date: str, to_date: str) -> None:
    try:
        period = Period.parse(from_date, to_date, today=TODAY)
    except InvalidInput:
        return
    assert 1 <= len(period.days()) <= 366


def test_days_lists_every_day_in_order_both_ends_included() -> None:
    assert Period(date(2026, 2, 27), date(2026, 3, 2)).days() == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


@given(first=st.dates(min_value=date(2000, 1, 1), max_value=date(2098, 12, 31)),
       length=st.integers(min_value=1, max_value=366))
def test_any_accepted_period_has_consecutive_days_from_first_to_last(first: date, length: int) -> None:
    last = first + timedelta(days=length - 1)

    days = Period.parse(first.isoformat(), last.isoformat(), today=TODAY).days()

    assert (len(days), days[0], days[-1]) == (length, first, last)
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))


def test_period_totals_sum_the_days_but_take_distinct_figures_as_given() -> None:
    days = [DailyFigures(date(2026, 11, 24), Figures({"new_users": 3, "unique_visitors": 5})),
            DailyFigures(date(2026, 11, 25), Figures({})),
            DailyFigures(date(2026, 11, 26), Figures({"new_users": 4, "unique_visitors": 2}))]

    totals = period_totals(days, {"unique_visitors": 6})

    assert (totals["new_users"], totals["unique_visitors"]) == (7, 6)


def test_net_gmv_and_average_order_value_derive_from_the_counters() -> None:
    figures = Figures({"gmv_fen": 10001, "paid_orders": 2, "refund_fen": 1})

    assert (figures["net_gmv_fen"], figures["average_order_value_fen"], Figures({})["average_order_value_fen"]) == (
        10000, 5000, 0)


@pytest.mark.parametrize(("from_date", "to_date", "field"), [
    ("1999-12-31", "2000-01-01", "from"), ("2099-12-31", "2100-01-01", "to"), ("", "0001-01-03", "to")])
def test_days_outside_2000_to_2099_are_refused(from_date: str, to_date: str, field: str) -> None:
    assert refusal(from_date, to_date) == ("DATE_OUT_OF_RANGE", {field: "out of range"})
