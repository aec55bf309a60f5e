"""Analytics tables (daily rollups) and its unit of work."""

from __future__ import annotations

from datetime import date
from typing import Self

from sqlalchemy import Column, Date, Integer, MetaData, Table, select, update
from sqlalchemy.orm import Session

from services.analytics.domain import DailyFigures, Period
from services.common.uow import SqlUnitOfWork

metadata = MetaData()

daily_stats = Table(
    "daily_stats", metadata,
    Column("day", Date, primary_key=True),
    Column("new_users", Integer, nullable=False, default=0),
)


class DailyStats:
    """One row of counters per UTC day."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_new_user(self, day: date) -> None:
        changed = self.session.execute(
            update(daily_stats).where(daily_stats.c.day == day).values(new_users=daily_stats.c.new_users + 1)
        ).rowcount
        if not changed:
            # A concurrent insert of the same day fails the transaction; the consumer retries it.
            self.session.execute(daily_stats.insert().values(day=day, new_users=1))

    def for_period(self, period: Period) -> list[DailyFigures]:
        rows = {row.day: row for row in self.session.execute(
            select(daily_stats).where(daily_stats.c.day.between(period.first, period.last)))}
        return [DailyFigures(day=d, new_users=rows[d].new_users if d in rows else 0) for d in period.days()]


class AnalyticsUnitOfWork(SqlUnitOfWork):
    stats: DailyStats

    def __enter__(self) -> Self:
        super().__enter__()
        self.stats = DailyStats(self.session)
        return self
