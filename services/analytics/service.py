"""Analytics use cases: the admin overview."""

from __future__ import annotations

from datetime import date

from services.analytics.db import AnalyticsUnitOfWork
from services.analytics.domain import Overview, Period
from services.common.db import utcnow


def get_overview(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str, today: date | None = None) -> Overview:
    """Figures per UTC day over the period (default: the last 7 days)."""
    period = Period.parse(from_date, to_date, today=today or utcnow().date())
    with uow:
        return Overview(period=period, days=uow.stats.for_period(period))
