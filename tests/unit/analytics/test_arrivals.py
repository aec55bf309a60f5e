"""The period's distinct members and funnel from daily_arrivals equal those counted from every member-day."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, delete, insert, select

from services.analytics.db import SqlAnalyticsUnitOfWork, daily_arrivals, daily_counters, daily_members
from services.analytics.domain import NO_DAY_SEEN, Neighbours, arrival_changes, funnel_profiles
from services.common import migrations
from services.common.db import make_engine
from tests.fixtures.analytics_members import START, add, batches, mismatches
from tests.fixtures.postgres import migrations_dir
from tests.unit.analytics.conftest import FakeAnalyticsUnitOfWork

D = [START + timedelta(days=n) for n in range(10)]


def test_a_first_day_arrives_from_nowhere_and_moves_the_next_days_arrival() -> None:
    # Days D0 and D5 were there; D2 is new: it arrives after D0, and D5 now arrives after D2 instead of D0.
    assert arrival_changes({D[2]: Neighbours(D[0], D[5], True)}) == {(D[2], D[0]): 1, (D[5], D[0]): -1, (D[5], D[2]): 1}
    assert arrival_changes({D[2]: Neighbours(None, None, True)}) == {(D[2], NO_DAY_SEEN): 1}


def test_a_run_of_new_days_moves_the_following_old_day_from_the_day_before_the_run() -> None:
    new = {D[2]: Neighbours(D[0], D[3], True), D[3]: Neighbours(D[2], D[7], True)}

    assert arrival_changes(new) == {(D[2], D[0]): 1, (D[3], D[2]): 1, (D[7], D[0]): -1, (D[7], D[3]): 1}


def test_a_day_more_than_365_days_back_counts_as_never_seen() -> None:
    far = D[0] - timedelta(days=365)

    assert arrival_changes({D[0]: Neighbours(far, None, True)}) == {(D[0], far): 1}
    assert arrival_changes({D[1]: Neighbours(far, None, True)}) == {(D[1], NO_DAY_SEEN): 1}


def test_funnel_profiles_follow_from_the_sizes_of_the_unions_of_steps() -> None:
    # Member a: viewer and payer; b: viewer only; c: cart_user and order_user.
    members = {"a": {"viewer", "payer"}, "b": {"viewer"}, "c": {"cart_user", "order_user"}}
    unions = {"+".join(k for k in ("viewer", "cart_user", "order_user", "payer") if k in ks): 0
              for ks in _subsets()}
    for name in unions:
        unions[name] = sum(1 for steps in members.values() if steps & set(name.split("+")))

    assert funnel_profiles(unions) == {frozenset({"viewer", "payer"}): 1, frozenset({"viewer"}): 1,
                                       frozenset({"cart_user", "order_user"}): 1}


def _subsets() -> list[set[str]]:
    steps = ("viewer", "cart_user", "order_user", "payer")
    return [{k for i, k in enumerate(steps) if bits & (1 << i)} for bits in range(1, 16)]


@settings(max_examples=60, deadline=None)
@given(batches=batches)
def test_in_memory_arrivals_answer_as_the_member_days_for_any_additions(batches) -> None:
    uow = FakeAnalyticsUnitOfWork()

    for batch in batches:
        add(lambda: uow, batch)

    assert mismatches(lambda: uow, batches) == []


@pytest.fixture
def sqlite_engine(sqlite_service_engine: Callable[[str], Engine]) -> Engine:
    return sqlite_service_engine("analytics")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_sqlite_arrivals_answer_as_the_member_days_for_any_additions(sqlite_engine: Engine, batches) -> None:
    with sqlite_engine.begin() as conn:
        for table in (daily_members, daily_arrivals, daily_counters):
            conn.execute(delete(table))
    new_uow = functools.partial(SqlAnalyticsUnitOfWork, sqlite_engine, "analytics")

    for batch in batches:
        add(new_uow, batch)

    assert mismatches(new_uow, batches) == []


def test_the_migration_builds_the_arrivals_of_the_member_days_already_there(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'analytics'}.db"
    migrations.upgrade(url, migrations_dir("analytics"), "0005")
    days = [date(2025, 1, 1), date(2025, 1, 3), date(2026, 1, 3), date(2026, 1, 4)]  # (2025-01-01: 367 days back)
    rows = [{"kind": kind, "day": day, "member": member} for kind, member, picked in (
        ("visitor", "dev-1", days), ("visitor", "dev-2", days[1:2]), ("viewer", "1", days[:2]),
        ("payer", "1", days[1:3]), ("cart_user", "2", days[3:]))
        for day in picked]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(daily_members), rows)

    migrations.upgrade(url, migrations_dir("analytics"))

    with engine.connect() as conn:
        found = {tuple(row) for row in conn.execute(select(daily_arrivals).where(
            daily_arrivals.c.kind.in_(("visitor", "viewer+payer", "cart_user+payer"))))}
    engine.dispose()
    assert found == {
        ("visitor", days[0], NO_DAY_SEEN, 1), ("visitor", days[1], days[0], 1), ("visitor", days[1], NO_DAY_SEEN, 1),
        ("visitor", days[2], days[1], 1),  # 365 days after 2025-01-03: a 366-day period holds both
        ("visitor", days[3], days[2], 1),
        ("viewer+payer", days[0], NO_DAY_SEEN, 1), ("viewer+payer", days[1], days[0], 1),
        ("viewer+payer", days[2], days[1], 1),
        ("cart_user+payer", days[1], NO_DAY_SEEN, 1), ("cart_user+payer", days[2], days[1], 1),
        ("cart_user+payer", days[3], NO_DAY_SEEN, 1)}  # user 2
