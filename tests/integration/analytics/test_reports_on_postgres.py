"""Exports on PostgreSQL: two runners never take the same job, and an events export pages through by (day, id)."""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.analytics import reports
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.db import utcnow
from tests.fixtures.analytics_stream import D1, D2, stream
from tests.unit.analytics.conftest import consume

pytestmark = pytest.mark.integration


@pytest.fixture
def uow(service_engine: Callable[[str], Engine]) -> Callable[[], SqlAnalyticsUnitOfWork]:
    return functools.partial(SqlAnalyticsUnitOfWork, service_engine("analytics"), "analytics")


def test_a_job_claimed_by_one_runner_is_skipped_by_another(uow) -> None:
    first = reports.create_report(uow(), kind="daily", format="csv", from_date="", to_date="", requested_by=1)
    second = reports.create_report(uow(), kind="daily", format="csv", from_date="", to_date="", requested_by=1)
    now = utcnow()
    with uow() as one, uow() as other:
        claimed = one.reports.claim(now=now, stale_before=now - reports.HEARTBEAT_STALE)
        next_claimed = other.reports.claim(now=now, stale_before=now - reports.HEARTBEAT_STALE)  # the first is locked
        one.commit()
        other.commit()
    assert (claimed.id, next_claimed.id) == (first.id, second.id)


def test_an_events_export_job_pages_through_every_event(uow, tmp_path: Path, monkeypatch) -> None:
    delivered = stream()
    consume(uow(), delivered)  # type: ignore[arg-type]
    monkeypatch.setattr(reports, "EVENTS_PAGE", 4)
    job = reports.create_report(uow(), kind="events", format="csv", from_date=D1.isoformat(), to_date=D2.isoformat(),
                                requested_by=1)

    reports.ReportRunner(uow, tmp_path).run_pending()

    done = reports.get_report(uow(), job.id)
    with (tmp_path / done.file_name).open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))[1:]
    assert (done.status, done.rows) == ("done", len({e.event_id for e in delivered}))
    assert sorted(row[0] for row in rows) == sorted({e.event_id for e in delivered})
