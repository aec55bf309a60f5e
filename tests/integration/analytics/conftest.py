"""The analytics integration tests' database: a clean, migrated analytics database and units of work on it."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.analytics.db import SqlAnalyticsUnitOfWork


@pytest.fixture
def analytics_db(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("analytics")


@pytest.fixture
def uow(analytics_db: Engine) -> Callable[[], SqlAnalyticsUnitOfWork]:
    return functools.partial(SqlAnalyticsUnitOfWork, analytics_db, "analytics")
