"""Retention cohorts: shoppers active again 1, 7 and 30 days after registering, whatever order events arrive in."""

from __future__ import annotations

import random
from datetime import date, timedelta

from services.analytics import service
from services.analytics.domain import Cohort
from tests.fixtures.analytics_stream import D1, D2, at, cart_added, page_view, registered, stream
from tests.unit.analytics.conftest import FakeAnalyticsUnitOfWork, consume

LATER = D1 + timedelta(days=60)


def cohorts(uow: FakeAnalyticsUnitOfWork, first: date = D1, last: date = D2, today: date = LATER) -> list[Cohort]:
    return service.get_retention(uow, from_date=first.isoformat(), to_date=last.isoformat(), today=today).cohorts


def test_the_stream_gives_each_registration_days_cohort_and_its_d1(uow: FakeAnalyticsUnitOfWork) -> None:
    consume(uow, stream())

    assert cohorts(uow) == [
        Cohort(D1, new_users=2, retained={1: 2, 7: 0, 30: 0}, rates={1: 1.0, 7: 0.0, 30: 0.0}),
        Cohort(D2, new_users=1, retained={1: 0, 7: 0, 30: 0}, rates={1: 0.0, 7: 0.0, 30: 0.0})]


def test_activity_arriving_before_the_registration_is_counted_when_it_arrives(uow: FakeAnalyticsUnitOfWork) -> None:
    consume(uow, [page_view("dev-9", "s1", at(D1 + timedelta(days=7), 12), user_id=9),
                  cart_added(9, at(D1 + timedelta(days=30), 12), 10),
                  registered(9, at(D1, 8))])

    assert cohorts(uow, D1, D1)[0].retained == {1: 0, 7: 1, 30: 1}


def test_a_shopper_active_several_times_on_the_day_counts_once(uow: FakeAnalyticsUnitOfWork) -> None:
    day_after = D1 + timedelta(days=1)
    consume(uow, [registered(9, at(D1, 8)), page_view("dev-9", "s1", at(day_after, 9), user_id=9),
                  page_view("dev-9", "s2", at(day_after, 20), user_id=9), cart_added(9, at(day_after, 21), 10)])

    assert cohorts(uow, D1, D1)[0].retained[1] == 1


def test_any_arrival_order_gives_the_same_cohorts(uow: FakeAnalyticsUnitOfWork) -> None:
    events = [*stream(), page_view("dev-B", "s7", at(D1 + timedelta(days=7), 9), user_id=2),
              page_view("dev-A", "s30", at(D2 + timedelta(days=30), 9), user_id=3)]
    random.Random(30).shuffle(events)

    consume(uow, events)

    assert [(c.day, c.retained) for c in cohorts(uow)] == [(D1, {1: 2, 7: 1, 30: 0}), (D2, {1: 0, 7: 0, 30: 1})]


def test_a_rate_is_unknown_until_its_day_has_ended(uow: FakeAnalyticsUnitOfWork) -> None:
    consume(uow, stream())

    assert cohorts(uow, D1, D1, today=D1 + timedelta(days=7))[0].rates == {1: 1.0, 7: None, 30: None}


def test_a_day_nobody_registered_on_has_no_rate_rather_than_zero(uow: FakeAnalyticsUnitOfWork) -> None:
    consume(uow, stream())
    nobody = D2 + timedelta(days=1)

    found = cohorts(uow, nobody, nobody)

    assert found == [Cohort(nobody, new_users=0, retained={1: 0, 7: 0, 30: 0}, rates={1: None, 7: None, 30: None})]
