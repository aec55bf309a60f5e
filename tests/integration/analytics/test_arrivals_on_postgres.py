"""daily_arrivals on PostgreSQL: the period's distinct members and funnel equal those of the member-days, for any
additions, for consumers adding days of the same members at once, and after migrating data already there."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, insert, text

from services.analytics.db import SqlAnalyticsUnitOfWork, daily_members
from services.common import migrations
from services.common.db import make_engine
from tests.fixtures.analytics_members import KINDS, START, add, batches, mismatches
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

pytestmark = pytest.mark.integration


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_arrivals_answer_as_the_member_days_for_any_additions(analytics_db: Engine, uow, batches) -> None:
    with analytics_db.begin() as conn:
        conn.execute(text("TRUNCATE daily_members, daily_arrivals, daily_counters"))

    for batch in batches:
        add(uow, batch)

    assert mismatches(uow, batches) == []


def test_consumers_adding_days_of_the_same_members_at_once_keep_the_arrivals_exact(uow) -> None:
    # Every worker adds days (near and a year apart) of the same four members in every set, in its own order.
    workers = 4
    additions = [(kind, offset, member) for kind in KINDS for offset in (0, 1, 3, 6, 370) for member in "1234"]
    plans = []
    for worker in range(workers):
        mine = additions[worker::workers] + random.Random(worker).sample(additions, 20)  # some days twice
        random.Random(100 + worker).shuffle(mine)
        plans.append([mine[start:start + 9] for start in range(0, len(mine), 9)])
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(plan: list[list[tuple[str, int, str]]]) -> None:
        barrier.wait()
        try:
            for batch in plan:
                add(uow, batch)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert mismatches(uow, [batch for plan in plans for batch in plan]) == []


@pytest.fixture
def database_before_arrivals() -> Iterator[str]:
    """A database of its own at revision 0005 (before daily_arrivals)."""
    name = session_database_name("it", "arrivals")
    url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("analytics"), "0005")
    yield url
    drop_databases([name])


def test_the_migration_builds_arrivals_answering_as_the_member_days_already_there(database_before_arrivals: str) -> None:
    rng = random.Random(6)
    picked = [(rng.choice(KINDS), rng.choice((0, 1, 2, 5, 9, 364, 365, 366, 367, 370, 730)), str(rng.randrange(8)))
              for _ in range(400)]
    engine = make_engine(database_before_arrivals)
    with engine.begin() as conn:
        conn.execute(insert(daily_members), [{"kind": kind, "day": START + timedelta(days=offset),
                                              "member": member} for kind, offset, member in set(picked)])

    migrations.upgrade(database_before_arrivals, migrations_dir("analytics"))

    new_uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
    try:
        assert mismatches(new_uow, [picked]) == []
    finally:
        engine.dispose()
