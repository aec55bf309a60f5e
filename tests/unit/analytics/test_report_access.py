"""Who may export which report through AnalyticsService: the money ledger (shoppers' wallets) is for admin and
finance only, whoever asked for the job; the other reports, the orders ledger among them, for every report reader."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mall.analytics.v1 import analytics_pb2
from sqlalchemy import Engine

from services.analytics import reports
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.analytics.grpc_api import AnalyticsServicer
from services.common.auth import Caller, caller_var
from services.common.errors import Conflict, Forbidden, NotFound
from tests.unit.analytics.conftest import run_reports

MONEY = analytics_pb2.CreateReportRequest(kind="money", format="csv", from_date="2026-11-20", to_date="2026-11-21")


@pytest.fixture
def servicer(sqlite_service_engine: Callable[[str], Engine], tmp_path: Path) -> AnalyticsServicer:
    return AnalyticsServicer(functools.partial(SqlAnalyticsUnitOfWork, sqlite_service_engine("analytics"), "analytics"),
                             tmp_path)


@pytest.fixture
def as_role() -> Iterator[Callable[[str], None]]:
    tokens = []

    def set_caller(role: str) -> None:
        tokens.append(caller_var.set(Caller(user_id=len(tokens) + 40, roles=frozenset({role}), token_id=role)))

    yield set_caller
    for token in reversed(tokens):
        caller_var.reset(token)


@pytest.mark.parametrize("kind", ["money", "events"])  # the raw events hold the member events the money ledger lists
def test_an_operator_may_not_export_the_money_ledger_or_the_raw_events(servicer: AnalyticsServicer, as_role,
                                                                       kind: str) -> None:
    as_role("operator")

    with pytest.raises(Forbidden) as refused:
        servicer.CreateReport(analytics_pb2.CreateReportRequest(  # type: ignore[arg-type]
            kind=kind, format="csv", from_date="2026-11-20", to_date="2026-11-21"), None)

    assert refused.value.code == "FORBIDDEN"
    with pytest.raises(NotFound):
        reports.get_report(servicer.uow(), 1)


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_admin_and_finance_export_the_money_ledger(servicer: AnalyticsServicer, as_role, role: str) -> None:
    as_role(role)

    assert servicer.CreateReport(MONEY, None).kind == "money"  # type: ignore[arg-type]


def test_an_operator_may_not_follow_or_download_a_money_export_finance_asked_for(servicer: AnalyticsServicer,
                                                                                 as_role) -> None:
    as_role("finance")
    job = servicer.CreateReport(MONEY, None)  # type: ignore[arg-type]
    run_reports(reports.ReportRunner(servicer.uow, servicer.reports_dir))
    as_role("operator")

    with pytest.raises(Forbidden):
        servicer.GetReport(analytics_pb2.GetReportRequest(id=job.id), None)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        servicer.GetReportChunk(analytics_pb2.GetReportChunkRequest(id=job.id), None)  # type: ignore[arg-type]


def test_each_download_is_recorded_with_who_made_it_and_when_and_its_later_pieces_are_not(
        servicer: AnalyticsServicer, as_role, caplog: pytest.LogCaptureFixture) -> None:
    as_role("finance")  # user 40
    job = servicer.CreateReport(MONEY, None)  # type: ignore[arg-type]
    run_reports(reports.ReportRunner(servicer.uow, servicer.reports_dir))
    as_role("admin")  # user 41: another staff member's export, by its id

    with caplog.at_level(logging.INFO, logger="services.analytics.reports"):
        for offset in (0, 1, 0):  # a download, a later piece of it, a second download
            servicer.GetReportChunk(analytics_pb2.GetReportChunkRequest(id=job.id, offset=offset), None)  # type: ignore[arg-type]

    with servicer.uow() as uow:
        downloads = uow.reports.downloads(job.id)
    assert [actor for actor, _ in downloads] == [41, 41]
    assert all(at.tzinfo is not None for _, at in downloads)
    assert [r.getMessage() for r in caplog.records if "downloaded" in r.getMessage()] == [
        f"report {job.id} (money, asked for by 40) downloaded by 41"] * 2


def test_a_refused_download_is_not_recorded(servicer: AnalyticsServicer, as_role) -> None:
    as_role("finance")
    job = servicer.CreateReport(MONEY, None)  # type: ignore[arg-type]

    with pytest.raises(Conflict):  # not run yet
        servicer.GetReportChunk(analytics_pb2.GetReportChunkRequest(id=job.id), None)  # type: ignore[arg-type]

    with servicer.uow() as uow:
        assert uow.reports.downloads(job.id) == []


def test_an_operator_exports_the_orders_ledger_as_they_read_any_order(servicer: AnalyticsServicer, as_role) -> None:
    as_role("operator")

    job = servicer.CreateReport(analytics_pb2.CreateReportRequest(  # type: ignore[arg-type]
        kind="orders", format="csv", from_date="2026-11-20", to_date="2026-11-21"), None)

    assert servicer.GetReport(analytics_pb2.GetReportRequest(id=job.id), None).kind == "orders"  # type: ignore[arg-type]


def listed(servicer: AnalyticsServicer, offset: int = 0, limit: int = 0) -> tuple[list[tuple[int, str]], int]:
    reply = servicer.ListReports(analytics_pb2.ListReportsRequest(offset=offset, limit=limit), None)  # type: ignore[arg-type]
    return [(report.id, report.kind) for report in reply.reports], reply.total


def as_user(user_id: int, role: str) -> None:
    caller_var.set(Caller(user_id=user_id, roles=frozenset({role}), token_id=f"{user_id}{role}"))


def test_each_staff_member_lists_their_own_jobs_newest_first_of_the_kinds_they_may_still_read(
        servicer: AnalyticsServicer) -> None:
    token = caller_var.set(None)
    try:
        as_user(40, "finance")
        money = servicer.CreateReport(MONEY, None).id  # type: ignore[arg-type]
        daily = [servicer.CreateReport(analytics_pb2.CreateReportRequest(  # type: ignore[arg-type]
            kind="daily", format="csv", from_date="2026-11-20", to_date="2026-11-21"), None).id for _ in range(3)]
        as_user(41, "operator")
        theirs = servicer.CreateReport(analytics_pb2.CreateReportRequest(  # type: ignore[arg-type]
            kind="orders", format="xlsx", from_date="2026-11-20", to_date="2026-11-21"), None).id

        as_user(40, "finance")
        finance_sees, second_page = listed(servicer), listed(servicer, offset=2, limit=2)
        as_user(41, "operator")
        operator_sees = listed(servicer)
        as_user(40, "operator")  # finance's member moved to operations: their money export is no longer theirs to read
        moved_sees = listed(servicer)
    finally:
        caller_var.reset(token)

    assert finance_sees == ([(daily[2], "daily"), (daily[1], "daily"), (daily[0], "daily"), (money, "money")], 4)
    assert second_page == ([(daily[0], "daily"), (money, "money")], 4)
    assert operator_sees == ([(theirs, "orders")], 1)
    assert moved_sees == ([(job, "daily") for job in reversed(daily)], 3)


def test_a_shopper_lists_no_reports(servicer: AnalyticsServicer, as_role) -> None:
    as_role("")

    with pytest.raises(Forbidden):
        listed(servicer)
