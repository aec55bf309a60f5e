"""skip_locked on PostgreSQL: a job's query passes over the rows another transaction holds and locks the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, select
from sqlalchemy.orm import Session

from services.common.db import skip_locked

pytestmark = pytest.mark.integration

jobs = Table("skip_locked_jobs", MetaData(), Column("id", Integer, primary_key=True))


@pytest.fixture
def engine(service_engine: Callable[[str], Engine]) -> Iterator[Engine]:
    engine = service_engine("member")
    jobs.create(engine)
    with engine.begin() as connection:
        connection.execute(jobs.insert(), [{"id": 1}, {"id": 2}, {"id": 3}])
    yield engine
    jobs.drop(engine)


def test_rows_another_transaction_holds_are_skipped_and_the_rest_locked(engine: Engine) -> None:
    with Session(engine) as first, Session(engine) as second, Session(engine) as third:
        held = first.execute(skip_locked(first, select(jobs.c.id).where(jobs.c.id == 2))).scalars().all()
        taken = second.execute(skip_locked(second, select(jobs.c.id).order_by(jobs.c.id))).scalars().all()
        left = third.execute(skip_locked(third, select(jobs.c.id).order_by(jobs.c.id))).scalars().all()

    assert (held, taken, left) == ([2], [1, 3], [])
