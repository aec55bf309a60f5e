"""Exports on PostgreSQL: two runners never take the same job, an events export pages through by (day, id), and the
ledger exports page through their own indexes."""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from openpyxl import load_workbook
from psycopg import sql
from sqlalchemy import Connection, Engine, event, func, select

from services.analytics import ledgers, reports
from services.analytics.db import BACKUP_TABLES, SqlAnalyticsUnitOfWork
from services.analytics.domain import Period
from services.common.db import utcnow
from tests.fixtures.analytics_ledgers import MONEY, ORDERS, shop
from tests.fixtures.analytics_stream import D1, D2, O3, O3_LINES, at, order_paid, stream
from tests.unit.analytics.conftest import consume, run_reports

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("analytics")


@pytest.fixture
def uow(engine: Engine) -> Callable[[], SqlAnalyticsUnitOfWork]:
    return functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")


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

    run_reports(reports.ReportRunner(uow, tmp_path))

    done = reports.get_report(uow(), job.id)
    with (tmp_path / done.file_name).open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))[1:]
    assert (done.status, done.rows) == ("done", len({e.event_id for e in delivered}))
    assert sorted(row[0] for row in rows) == sorted({e.event_id for e in delivered})


def read(path: Path) -> list[tuple[object, ...]]:
    if path.suffix == ".xlsx":
        sheet = load_workbook(path, read_only=True)["report"]
        return [tuple(row) for row in sheet.iter_rows(values_only=True)]
    with path.open(encoding="utf-8-sig", newline="") as file:
        return [tuple(row) for row in csv.reader(file)]


def as_csv(row: tuple[object, ...]) -> tuple[str, ...]:
    return tuple("" if value is None else str(value) for value in row)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_order_and_money_ledgers_export_as_jobs_in_either_format(uow, tmp_path: Path, monkeypatch, fmt) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]
    monkeypatch.setattr(ledgers, "PAGE", 2)
    jobs = {kind: reports.create_report(uow(), kind=kind, format=fmt, from_date=D1.isoformat(),
                                        to_date=D2.isoformat(), requested_by=1) for kind in ("orders", "money")}

    assert run_reports(reports.ReportRunner(uow, tmp_path)) == 2

    done = {kind: reports.get_report(uow(), job.id) for kind, job in jobs.items()}
    orders, money = (read(tmp_path / done[kind].file_name) for kind in ("orders", "money"))
    expected_orders, expected_money = (ORDERS, MONEY) if fmt == "xlsx" else (
        [as_csv(row) for row in ORDERS], [as_csv(row) for row in MONEY])
    assert [(job.status, job.rows) for job in done.values()] == [("done", len(ORDERS)), ("done", len(MONEY))]
    assert orders == [ledgers.ORDER_COLUMNS, *expected_orders]
    assert (money[0], [row[:-1] for row in money[1:]]) == (ledgers.MONEY_COLUMNS, expected_money)


def generic_plan(conn: Connection, statement: str, parameters: dict[str, object]) -> str:
    """The plan of `statement` that knows nothing of its parameters' values: what a statement psycopg prepared (it
    does after five runs) may get from PostgreSQL's plan cache. Such a plan can use a partial index only when the
    query's own text shows it stays within the index's condition."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda found: f"${names.index(found[1]) + 1}", statement)
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE ledger_query AS {numbered}")
    values = ", ".join(sql.Literal(parameters[name]).as_string(conn.connection.driver_connection) for name in names)
    try:
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE ledger_query({values})"))
    finally:
        conn.exec_driver_sql("DEALLOCATE ledger_query")


def test_the_ledger_queries_use_their_partial_indexes(engine, uow) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]
    statements: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "FROM raw_events" in statement and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", keep)
    try:
        list(ledgers.order_rows(uow(), Period(D1, D2)))
        list(ledgers.money_rows(uow(), Period(D1, D2)))
    finally:
        event.remove(engine, "before_cursor_execute", keep)

    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # a table this small would be read whole anyway
        plans = [generic_plan(conn, statement, parameters) for statement, parameters in statements]
    assert len(plans) >= 3
    assert all("ix_raw_events_ledger" in plan or "ix_raw_events_order_follow_ups" in plan for plan in plans), plans
    assert any("ix_raw_events_order_follow_ups" in plan for plan in plans)


def test_leftover_part_files_go_once_their_job_ended_and_a_running_jobs_stay(uow, tmp_path: Path) -> None:
    ended, running = (reports.create_report(uow(), kind="daily", format="xlsx", from_date=D1.isoformat(),
                                            to_date=D2.isoformat(), requested_by=1) for _ in range(2))
    with uow() as unit:
        unit.reports.update(ended.id, status="failed")
        unit.reports.update(running.id, status="running")
        unit.commit()
    for job in (ended, running):
        (tmp_path / (reports.file_name(job) + ".part")).write_text("half a report")

    assert reports.remove_leftover_files(uow(), tmp_path) == 1

    assert [path.name for path in tmp_path.iterdir()] == [reports.file_name(running) + ".part"]


def test_a_complete_file_of_an_ended_job_goes_unless_it_is_the_done_jobs_own(uow, tmp_path: Path) -> None:
    done, failed = (reports.create_report(uow(), kind="daily", format="csv", from_date=D1.isoformat(),
                                          to_date=D2.isoformat(), requested_by=1) for _ in range(2))
    own, crashed = reports.file_name(replace(done, attempts=2)), reports.file_name(done)
    with uow() as unit:
        unit.reports.update(done.id, status="done", attempts=2, file_name=own)
        unit.reports.update(failed.id, status="failed")
        unit.commit()
    for name in (own, crashed, reports.file_name(failed)):
        (tmp_path / name).write_text("a whole report")

    assert reports.remove_leftover_files(uow(), tmp_path) == 2

    assert [path.name for path in tmp_path.iterdir()] == [own]


def test_a_backup_is_one_snapshot_so_an_event_consumed_between_table_copies_is_wholly_out(engine, uow,
                                                                                            tmp_path: Path) -> None:
    consume(uow(), stream())
    with engine.connect() as conn:
        before = {table.name: conn.scalar(select(func.count()).select_from(table)) for table in BACKUP_TABLES}
    late = order_paid("LATE1", 77, at(D2, 20), O3_LINES, O3, "上海市")  # a raw event, counters and a counted fact

    def consume_after_the_first_table(table: str, rows: int) -> None:
        if table == BACKUP_TABLES[0].name and not late_consumed:
            consume(uow(), [late])
            late_consumed.append(late)

    late_consumed: list[object] = []
    manifest = reports.backup(engine, BACKUP_TABLES, tmp_path / "backup", consume_after_the_first_table)

    assert late_consumed == [late]
    assert {name: found["rows"] for name, found in manifest["tables"].items()} == before
