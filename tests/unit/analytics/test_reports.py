"""Exports (A3) on the SQLite database `make run` uses: file contents, job states, backups, the CLI."""

from __future__ import annotations

import base64
import csv
import dataclasses
import functools
import json
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from openpyxl import load_workbook
from sqlalchemy import Engine, func, select

from services.analytics import reports
from services.analytics.__main__ import MIGRATIONS, add_arguments, build_app, export_command, report_retention
from services.analytics.db import BACKUP_TABLES, SqlAnalyticsUnitOfWork, raw_events
from services.analytics.domain import FIGURES, Period, ReportJob
from services.common.config import ConfigError, Env
from services.common.db import utcnow
from services.common.errors import Conflict, InvalidInput, NotFound, RateLimited
from services.common.runtime import main
from tests.fixtures.analytics_stream import D1, D2, EXPECTED_D1, EXPECTED_D2, EXPECTED_TOTALS, at, page_view, stream
from tests.fixtures.keys import JwtKeys
from tests.unit.analytics.conftest import consume, run_reports

PERIOD = Period(D1, D2)
COLUMNS = ["date", *FIGURES, "net_gmv_fen", "average_order_value_fen", *reports.LATE_COLUMNS, "plan_subscriptions",
           "plan_subscription_fen", "refunds_paid_twice", "refund_paid_twice_fen"]
# The stream has no late payments, plans or refunds paid twice.
NO_LATE_PAYMENTS = dict.fromkeys((*reports.LATE_COLUMNS, *reports.PLAN_COLUMNS, *reports.TWICE_COLUMNS), 0)
DAILY_ROWS = [[D1.isoformat(), *({**EXPECTED_D1, **NO_LATE_PAYMENTS}[c] for c in COLUMNS[1:])],
              [D2.isoformat(), *({**EXPECTED_D2, **NO_LATE_PAYMENTS}[c] for c in COLUMNS[1:])],
              ["total", *({**EXPECTED_TOTALS, **NO_LATE_PAYMENTS}[c] for c in COLUMNS[1:])]]


@pytest.fixture
def engine(sqlite_service_engine: Callable[[str], Engine]) -> Engine:
    return sqlite_service_engine("analytics")


@pytest.fixture
def uow(engine: Engine) -> Callable[[], SqlAnalyticsUnitOfWork]:
    return functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")


@pytest.fixture
def delivered() -> list[EventEnvelope]:
    return stream()


@pytest.fixture
def counted(uow: Callable[[], SqlAnalyticsUnitOfWork], delivered) -> Callable[[], SqlAnalyticsUnitOfWork]:
    consume(uow(), delivered)  # type: ignore[arg-type]
    return uow


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def read_xlsx(path: Path) -> dict[str, list[list[object]]]:
    workbook = load_workbook(path, read_only=True)
    return {sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)] for sheet in workbook.worksheets}


def test_daily_csv_has_each_days_figures_and_the_periods(counted, tmp_path: Path) -> None:
    rows = reports.export(counted(), kind="daily", format="csv", period=PERIOD, path=tmp_path / "daily.csv")

    assert rows == 3
    assert read_csv(tmp_path / "daily.csv") == [COLUMNS, *([str(v) for v in row] for row in DAILY_ROWS)]
    assert (tmp_path / "daily.csv").read_bytes().startswith(b"\xef\xbb\xbfdate,page_views,")  # Excel reads UTF-8
    assert not (tmp_path / "daily.csv.part").exists()


def test_daily_xlsx_reads_back_with_the_same_numbers(counted, tmp_path: Path) -> None:
    reports.export(counted(), kind="daily", format="xlsx", period=PERIOD, path=tmp_path / "daily.xlsx")

    assert read_xlsx(tmp_path / "daily.xlsx") == {"report": [COLUMNS, *DAILY_ROWS]}


def test_regions_and_funnel_exports_hold_the_reports_rows(counted, tmp_path: Path) -> None:
    reports.export(counted(), kind="regions", format="xlsx", period=PERIOD, path=tmp_path / "regions.xlsx")
    reports.export(counted(), kind="funnel", format="csv", period=PERIOD, path=tmp_path / "funnel.csv")

    regions = read_xlsx(tmp_path / "regions.xlsx")["report"]
    assert regions == [["province", "paid_orders", "gmv_fen", "gmv_share", "page_views"],
                       ["广东省", 1, 30000, 0.6667, 0], ["浙江省", 2, 15000, 0.3333, 2], [None, 0, 0, 0, 7]]
    assert read_csv(tmp_path / "funnel.csv") == [
        ["date", "viewed", "added_to_cart", "ordered", "paid"],
        [D1.isoformat(), "2", "1", "1", "1"], [D2.isoformat(), "2", "0", "0", "0"], ["total", "3", "1", "1", "1"]]


def test_an_events_export_lists_each_raw_event_once_with_its_payload_as_json(counted, delivered, tmp_path,
                                                                           monkeypatch) -> None:
    monkeypatch.setattr(reports, "EVENTS_PAGE", 4)  # read in several pages
    reports.export(counted(), kind="events", format="csv", period=PERIOD, path=tmp_path / "events.csv")

    header, *rows = read_csv(tmp_path / "events.csv")
    events = {e.event_id for e in delivered}
    assert header == ["event_id", "event_type", "date", "occurred_at", "aggregate_id", "payload"]
    assert sorted(row[0] for row in rows) == sorted(events)  # the delivered-twice events once each
    assert [(row[2], row[0]) for row in rows] == sorted((row[2], row[0]) for row in rows)  # by day, then id
    refund = next(row for row in rows if row[1] == "order-refunded")
    assert (refund[2], refund[4], json.loads(refund[5])) == (D2.isoformat(), "O1", {
        "order_no": "O1", "user_id": "1", "refund_no": "R1", "amount_fen": "2500", "channel": "wechat",
        "refunded_at": "2026-11-21T07:00:00Z"})


def test_a_long_xlsx_goes_on_in_further_sheets_each_with_the_header(tmp_path: Path) -> None:
    seen: list[int] = []
    rows = reports.write_xlsx(tmp_path / "long.xlsx", ("n",), ((n,) for n in range(5)), seen.append, max_rows=3)

    assert (rows, seen[-1]) == (5, 5)
    assert read_xlsx(tmp_path / "long.xlsx") == {"report": [["n"], [0], [1]], "report-2": [["n"], [2], [3]],
                                                 "report-3": [["n"], [4]]}


@pytest.mark.parametrize("write", [reports.write_csv, reports.write_xlsx])
def test_text_a_spreadsheet_would_run_as_a_formula_stays_text(write, tmp_path: Path) -> None:
    path = tmp_path / ("report.csv" if write is reports.write_csv else "report.xlsx")
    write(path, ("province", "n"), [("=HYPERLINK(\"http://x\")", -1), ("@SUM(A1)", 2), ("广东省", 3)], lambda _: None)

    rows = read_csv(path) if write is reports.write_csv else read_xlsx(path)["report"]
    assert [list(map(str, row)) for row in rows] == [["province", "n"], ["'=HYPERLINK(\"http://x\")", "-1"],
                                                     ["'@SUM(A1)", "2"], ["广东省", "3"]]


@pytest.mark.parametrize("write", [reports.write_csv, reports.write_xlsx])
def test_text_starting_with_a_full_width_formula_sign_stays_text_too(write, tmp_path: Path) -> None:
    path = tmp_path / ("report.csv" if write is reports.write_csv else "report.xlsx")
    typed = ["\uff1dHYPERLINK(\"http://x\")", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", "\uff08\uff1d\uff09"]
    write(path, ("province",), [(value,) for value in typed], lambda _: None)

    rows = read_csv(path) if write is reports.write_csv else read_xlsx(path)["report"]
    assert rows == [["province"], ["'＝HYPERLINK(\"http://x\")"], ["'＋1"], ["'－1"], ["'＠SUM(A1)"], ["（＝）"]]


def test_a_report_job_goes_from_queued_to_done_and_its_file_reads_back_in_pieces(counted, tmp_path, monkeypatch) -> None:
    job = reports.create_report(counted(), kind="daily", format="csv", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)
    assert (job.status, job.percent, job.rows, job.requested_by, job.finished_at) == ("queued", 0, 0, 7, None)
    with pytest.raises(Conflict) as not_ready:
        reports.read_report(counted(), tmp_path, job.id, 0, actor_id=40)
    assert not_ready.value.code == "REPORT_NOT_READY"

    assert run_reports(reports.ReportRunner(counted, tmp_path)) == 1

    done = reports.get_report(counted(), job.id)
    written = (tmp_path / done.file_name).read_bytes()
    assert (done.status, done.percent, done.rows, done.size_bytes, done.attempts, done.error) == (
        "done", 100, 3, len(written), 1, "")
    assert done.file_name == f"{job.id}-daily-2026-11-20-2026-11-21.csv" and done.finished_at is not None
    monkeypatch.setattr(reports, "CHUNK_BYTES", 100)
    pieces = [reports.read_report(counted(), tmp_path, job.id, offset, actor_id=40)[1]
              for offset in range(0, len(written) + 100, 100)]
    assert (b"".join(pieces), pieces[-1]) == (written, b"")


def test_the_runner_reports_progress_as_it_goes(counted, delivered, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(reports, "PROGRESS_EVERY", 1)
    job = reports.create_report(counted(), kind="events", format="xlsx", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)
    seen: list[tuple[str, int]] = []
    original = reports.ReportRunner._save

    def spy(self, running: ReportJob, **values: object) -> bool:  # type: ignore[no-untyped-def]
        saved = original(self, running, **values)
        now = reports.get_report(counted(), running.id)
        seen.append((now.status, now.percent))
        return saved
    monkeypatch.setattr(reports.ReportRunner, "_save", spy)

    reports.ReportRunner(counted, tmp_path).run_one()

    events = len({e.event_id for e in delivered})
    assert seen[0] == ("running", 100 // events) and seen[-1] == ("done", 100)
    assert [p for _, p in seen] == sorted(p for _, p in seen) and len(seen) > 10
    assert all(p <= 99 for status, p in seen if status == "running")
    assert reports.get_report(counted(), job.id).rows == events


def test_a_job_that_cannot_write_its_file_fails_with_its_number_not_the_exceptions_text(counted, tmp_path: Path,
                                                                                       caplog) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    job = reports.create_report(counted(), kind="daily", format="csv", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)

    with caplog.at_level(logging.ERROR, logger=reports.__name__):
        run_reports(reports.ReportRunner(counted, tmp_path / "taken"))

    failed = reports.get_report(counted(), job.id)
    assert (failed.status, failed.finished_at is not None) == ("failed", True)
    assert failed.error == (f"report {job.id} could not be made; ask for it again, and if it fails again give its "
                            f"number {job.id} to the shop's engineers")
    [logged] = caplog.records
    assert logged.getMessage() == f"report {job.id} (daily, attempt 1) failed"
    assert logged.exc_info[0] is FileExistsError and str(tmp_path) in str(logged.exc_info[1])


def test_a_running_job_whose_runner_went_silent_is_taken_over(counted) -> None:
    job = reports.create_report(counted(), kind="daily", format="csv", from_date="", to_date="", requested_by=7)
    now = utcnow()
    with counted() as uow:
        assert uow.reports.claim(now=now, stale_before=now - reports.HEARTBEAT_STALE).id == job.id
        uow.commit()
    with counted() as uow:
        assert uow.reports.claim(now=now, stale_before=now - reports.HEARTBEAT_STALE) is None  # still beating
        later = now + reports.HEARTBEAT_STALE + timedelta(seconds=1)
        taken = uow.reports.claim(now=later, stale_before=later - reports.HEARTBEAT_STALE)
    assert (taken.id, taken.status, taken.attempts) == (job.id, "running", 2)


def pausing_after_a_row(paused: threading.Event, resume: threading.Event) -> Callable[..., reports.Report]:
    """The daily report, whose rows stop after the first until `resume` is set (`paused` tells they did): the first
    time it is made (runner A's attempt), not the next (B's)."""
    daily, calls = reports.KINDS["daily"], []

    def kind(uow, period):  # type: ignore[no-untyped-def]
        report = daily(uow, period)
        calls.append(period)
        if len(calls) > 1:
            return report

        def rows():  # type: ignore[no-untyped-def]
            them = iter(report.rows)
            yield next(them)
            paused.set()
            resume.wait(30)
            yield from them
        return dataclasses.replace(report, rows=rows())
    return kind


def test_a_runner_taken_over_while_still_writing_neither_spoils_nor_fails_the_report(counted, tmp_path,
                                                                                   monkeypatch) -> None:
    # Runner A goes silent mid-file (a long XLSX save, a stalled disk) for longer than HEARTBEAT_STALE: runner B
    # takes the job over and writes it to the end; then A wakes up and finishes too.
    job = reports.create_report(counted(), kind="daily", format="csv", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)
    paused, resume = threading.Event(), threading.Event()
    monkeypatch.setitem(reports.KINDS, "daily", pausing_after_a_row(paused, resume))
    files = tmp_path / "reports"
    runner = reports.ReportRunner(counted, files)
    silent = threading.Thread(target=runner.run_one)
    silent.start()
    assert paused.wait(30)
    later = utcnow() + reports.HEARTBEAT_STALE + timedelta(seconds=1)
    monkeypatch.setattr(reports, "utcnow", lambda: later)
    assert runner.run_one()  # B
    resume.set()
    silent.join()

    done = reports.get_report(counted(), job.id)
    assert (done.status, done.attempts, done.error) == ("done", 2, "")
    assert read_csv(files / done.file_name) == [COLUMNS, *([str(v) for v in row] for row in DAILY_ROWS)]
    assert done.size_bytes == (files / done.file_name).stat().st_size
    assert [path.name for path in files.iterdir()] == [done.file_name]  # the other attempt's file removed


def test_a_live_runner_whose_percent_stays_put_beats_on_and_is_not_taken_over(counted, tmp_path, monkeypatch) -> None:
    # Runner A writes on for longer than HEARTBEAT_STALE without moving the percent (rows past the count expected, a
    # long XLSX save): its heartbeat, not its progress, keeps the job its own.
    job = reports.create_report(counted(), kind="daily", format="csv", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)
    paused, resume = threading.Event(), threading.Event()
    later = utcnow() + reports.HEARTBEAT_STALE + timedelta(seconds=1)
    beat_later, save = threading.Event(), reports.ReportRunner._save

    def spy(self, running: ReportJob, **values: object) -> bool:  # type: ignore[no-untyped-def]
        saved = save(self, running, **values)
        if saved and values == {"heartbeat_at": later}:
            beat_later.set()
        return saved
    monkeypatch.setitem(reports.KINDS, "daily", pausing_after_a_row(paused, resume))
    monkeypatch.setattr(reports.ReportRunner, "_save", spy)
    files = tmp_path / "reports"
    runner = reports.ReportRunner(counted, files, heartbeat_every=timedelta(milliseconds=10))
    writing = threading.Thread(target=runner.run_one)
    writing.start()
    try:
        assert paused.wait(30)
        monkeypatch.setattr(reports, "utcnow", lambda: later)
        assert beat_later.wait(10)

        assert not runner.run_one()  # B finds nothing to take over
    finally:
        resume.set()
        writing.join()

    done = reports.get_report(counted(), job.id)
    assert (done.status, done.attempts, done.rows, done.percent) == ("done", 1, 3, 100)
    assert [path.name for path in files.iterdir()] == [done.file_name]


class Said(logging.Handler):
    """Sets `event` when a record's message starts with `words`."""

    def __init__(self, words: str) -> None:
        super().__init__()
        self.words, self.event = words, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.words):
            self.event.set()


def test_a_runner_that_wrote_no_row_for_too_long_stops_beating_and_is_taken_over(counted, tmp_path,
                                                                                  monkeypatch) -> None:
    job = reports.create_report(counted(), kind="daily", format="csv", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)
    paused, resume = threading.Event(), threading.Event()
    monkeypatch.setitem(reports.KINDS, "daily", pausing_after_a_row(paused, resume))
    stalled = Said(f"report {job.id} (attempt 1) wrote no row for 0:00:00: no more heartbeats")
    logging.getLogger(reports.__name__).addHandler(stalled)
    files = tmp_path / "reports"
    runner = reports.ReportRunner(counted, files, heartbeat_every=timedelta(milliseconds=10),
                                  stalled_after=timedelta(0))
    writing = threading.Thread(target=runner.run_one)
    writing.start()
    try:
        assert paused.wait(30) and stalled.event.wait(10)
        later = utcnow() + reports.HEARTBEAT_STALE + timedelta(seconds=1)
        monkeypatch.setattr(reports, "utcnow", lambda: later)

        assert runner.run_one()  # B takes it over, and ends it
    finally:
        resume.set()
        writing.join()
        logging.getLogger(reports.__name__).removeHandler(stalled)

    done = reports.get_report(counted(), job.id)
    assert (done.status, done.attempts, done.rows) == ("done", 2, 3)
    assert [path.name for path in files.iterdir()] == [done.file_name]


@pytest.mark.parametrize(("kind", "fmt", "code"), [("payroll", "csv", "REPORT_KIND_INVALID"),
                                                   ("daily", "pdf", "REPORT_FORMAT_INVALID")])
def test_unknown_kinds_and_formats_are_refused(uow, kind: str, fmt: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        reports.create_report(uow(), kind=kind, format=fmt, from_date="", to_date="", requested_by=7)
    assert refused.value.code == code


def test_an_analyst_has_at_most_ten_reports_under_way_at_once(uow) -> None:
    # Each export may read a year of raw events and keeps a file for days: one account cannot queue without end.
    def ask(requested_by: int) -> ReportJob:
        return reports.create_report(uow(), kind="events", format="xlsx", from_date="2026-01-01",
                                     to_date="2026-12-31", requested_by=requested_by)

    mine = [ask(7) for _ in range(reports.MAX_REPORTS_UNDER_WAY)]
    with pytest.raises(RateLimited) as refused:
        ask(7)
    others = ask(8)  # another analyst's are counted apart
    with uow() as unit:  # one of user 7's is done: room for the next
        unit.reports.update(mine[0].id, status="done")
        unit.commit()
    again = ask(7)

    assert (refused.value.code, refused.value.details) == ("REPORTS_UNDER_WAY", {"under_way": 10, "retry_after": 60})
    assert (others.status, again.status, again.id) == ("queued", "queued", others.id + 1)


def test_an_unknown_report_is_not_found(uow) -> None:
    with pytest.raises(NotFound):
        reports.get_report(uow(), 404)


def test_a_backup_has_every_analytics_table_and_a_manifest_of_row_counts(counted, delivered, engine, tmp_path) -> None:
    manifest = reports.backup(engine, BACKUP_TABLES, tmp_path / "backup")

    with engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in BACKUP_TABLES}
        payloads = dict(conn.execute(select(raw_events.c.event_id, raw_events.c.payload)).all())
    assert json.loads((tmp_path / "backup" / "manifest.json").read_text())["tables"] == manifest["tables"]
    assert {name: t["rows"] for name, t in manifest["tables"].items()} == counts
    assert counts["raw_events"] == len({e.event_id for e in delivered}) and counts["daily_counters"] > 0
    header, *rows = read_csv(tmp_path / "backup" / "raw_events.csv")
    assert header == ["event_id", "event_type", "aggregate_id", "occurred_at", "day", "payload"]
    assert {row[0]: base64.b64decode(row[5]) for row in rows} == payloads
    assert len(read_csv(tmp_path / "backup" / "daily_counters.csv")) == counts["daily_counters"] + 1


def test_a_backup_keeps_text_a_spreadsheet_would_run_as_it_is_in_the_table(uow, engine, tmp_path) -> None:
    # A device id may start with "-" (the gateway allows [A-Za-z0-9._:-]) and a region is free text: a report's
    # file writes such text with a leading apostrophe, but a backup is the table's copy and must keep it as it is.
    consume(uow(), [page_view("-dev12345", "-s1", at(D1, 9), region="=HYPERLINK(1)")])  # type: ignore[arg-type]

    reports.backup(engine, BACKUP_TABLES, tmp_path / "backup")

    header, *rows = read_csv(tmp_path / "backup" / "raw_events.csv")
    assert [row[header.index("aggregate_id")] for row in rows] == ["-dev12345"]
    header, *rows = read_csv(tmp_path / "backup" / "daily_members.csv")
    assert sorted(row[header.index("member")] for row in rows) == ["-dev12345", "-dev12345/-s1"]
    header, *rows = read_csv(tmp_path / "backup" / "daily_breakdowns.csv")
    assert {row[header.index("key")] for row in rows} == {"=HYPERLINK(1)"}


def test_the_cli_exports_a_report_to_a_file(counted, engine, tmp_path: Path, jwt_keys: JwtKeys, monkeypatch) -> None:
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(jwt_keys.public_path))
    commands = {"export": export_command}
    argv = ["export", "--kind", "daily", "--format", "xlsx", "--from", D1.isoformat(), "--to", D2.isoformat(),
            "--out", str(tmp_path / "cli.xlsx")]

    assert main("analytics", build_app, MIGRATIONS, argv=argv, commands=commands, add_arguments=add_arguments) == 0

    assert read_xlsx(tmp_path / "cli.xlsx") == {"report": [COLUMNS, *DAILY_ROWS]}


def done_report(uow: Callable[[], SqlAnalyticsUnitOfWork], directory: Path, finished_days_ago: float) -> ReportJob:
    job = reports.create_report(uow(), kind="daily", format="csv", from_date=D1.isoformat(), to_date=D2.isoformat(),
                                requested_by=7)
    reports.ReportRunner(uow, directory).run_one()
    with uow() as unit:
        unit.reports.update(job.id, finished_at=utcnow() - timedelta(days=finished_days_ago))
        unit.commit()
    return reports.get_report(uow(), job.id)


def test_reports_done_before_the_retention_period_are_expired_and_their_files_deleted(counted, tmp_path) -> None:
    old, recent = done_report(counted, tmp_path, 7.1), done_report(counted, tmp_path, 6.9)

    assert reports.expire_reports(counted(), tmp_path, keep=timedelta(days=7)) == 1

    assert [reports.get_report(counted(), job.id).status for job in (old, recent)] == ["expired", "done"]
    assert [(tmp_path / job.file_name).exists() for job in (old, recent)] == [False, True]
    assert reports.expire_reports(counted(), tmp_path, keep=timedelta(days=7)) == 0  # nothing twice


def test_downloading_an_expired_report_is_refused_as_expired(counted, tmp_path) -> None:
    job = done_report(counted, tmp_path, 8)
    reports.expire_reports(counted(), tmp_path, keep=timedelta(days=7))

    with pytest.raises(NotFound) as gone:
        reports.read_report(counted(), tmp_path, job.id, 0, actor_id=40)

    assert gone.value.code == "REPORT_EXPIRED"


class StopAfterFirstPass(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_the_job_runner_expires_old_reports_as_it_runs(counted, tmp_path) -> None:
    old = done_report(counted, tmp_path, 2)

    reports.ReportRunner(counted, tmp_path, keep=timedelta(days=1)).run(StopAfterFirstPass())

    assert reports.get_report(counted(), old.id).status == "expired"
    assert not (tmp_path / old.file_name).exists()


def test_an_attempt_that_fails_mid_file_leaves_no_part_file_behind(counted, tmp_path, monkeypatch) -> None:
    job = reports.create_report(counted(), kind="daily", format="csv", from_date=D1.isoformat(),
                                to_date=D2.isoformat(), requested_by=7)
    daily = reports.KINDS["daily"]

    def fails_after_a_row(uow, period):  # type: ignore[no-untyped-def]
        report = daily(uow, period)

        def rows():  # type: ignore[no-untyped-def]
            yield next(iter(report.rows))
            raise OSError("the database went away")
        return dataclasses.replace(report, rows=rows())
    monkeypatch.setitem(reports.KINDS, "daily", fails_after_a_row)
    files = tmp_path / "reports"

    reports.ReportRunner(counted, files).run_one()

    assert reports.get_report(counted(), job.id).status == "failed"
    assert list(files.iterdir()) == []


def job_in(uow: Callable[[], SqlAnalyticsUnitOfWork], status: str, format: str = "csv") -> ReportJob:
    job = reports.create_report(uow(), kind="daily", format=format, from_date=D1.isoformat(), to_date=D2.isoformat(),
                                requested_by=7)
    own = reports.file_name(dataclasses.replace(job, attempts=2)) if status in ("done", "expired") else ""
    with uow() as unit:
        unit.reports.update(job.id, status=status, attempts=2, file_name=own)
        unit.commit()
    return reports.get_report(uow(), job.id)


def file_of(job: ReportJob, attempt: int) -> str:
    return reports.file_name(dataclasses.replace(job, attempts=attempt))


def part_of(job: ReportJob, attempt: int) -> str:
    return file_of(job, attempt) + ".part"


def test_part_files_of_reports_no_longer_running_are_removed_and_those_of_running_ones_kept(counted, tmp_path) -> None:
    done, failed, expired, running = (job_in(counted, status, fmt) for status, fmt in (
        ("done", "csv"), ("failed", "csv"), ("expired", "xlsx"), ("running", "xlsx")))
    left = [part_of(done, 1), part_of(failed, 2), part_of(expired, 1)]
    kept = [part_of(running, 1), part_of(running, 2), "999-daily-2026-11-20-2026-11-21.csv.part", "notes.part",
            reports.file_name(done)]
    for name in (*left, *kept):
        (tmp_path / name).write_text("half a report")

    assert reports.remove_leftover_files(counted(), tmp_path) == 3

    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("analytics.db")) == sorted(kept)
    assert reports.remove_leftover_files(counted(), tmp_path) == 0


def test_complete_files_no_job_points_at_are_removed_once_their_job_ended_and_a_running_jobs_kept(
        counted, tmp_path) -> None:
    done, failed, expired, running, queued = (job_in(counted, status) for status in (
        "done", "failed", "expired", "running", "queued"))
    left = [file_of(done, 1),  # attempt 1 crashed between its rename and its "done" save; attempt 2 made it done
            file_of(failed, 1), file_of(failed, 2),  # renamed, then the job failed (taken over, and that one failed)
            file_of(expired, 2)]  # expire_reports crashed between marking the job expired and deleting its file
    kept = [file_of(done, 2),  # the file done points at: downloads read it
            file_of(running, 1), file_of(running, 2),  # renamed, its "done" save (or a faster attempt's) to come
            file_of(queued, 1),  # a job of a restored database; it will be written again
            "999-daily-2026-11-20-2026-11-21.csv", "notes.csv"]  # no job of this database's: not its to judge
    for name in (*left, *kept):
        (tmp_path / name).write_text("a whole report")

    assert reports.remove_leftover_files(counted(), tmp_path) == 4

    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("analytics.db")) == sorted(kept)
    assert reports.read_report(counted(), tmp_path, done.id, 0, actor_id=40)[1] == b"a whole report"


def test_a_reports_directory_not_made_yet_has_nothing_left_over(counted, tmp_path) -> None:
    job_in(counted, "failed")

    assert reports.remove_leftover_files(counted(), tmp_path / "reports") == 0


def test_the_job_runner_removes_leftover_part_files_as_it_runs(counted, tmp_path) -> None:
    failed = job_in(counted, "failed")
    (tmp_path / part_of(failed, 1)).write_text("half a report")

    reports.ReportRunner(counted, tmp_path).run(StopAfterFirstPass())

    assert not (tmp_path / part_of(failed, 1)).exists()


@pytest.mark.parametrize(("value", "kept"), [("", timedelta(days=7)), ("0.5", timedelta(hours=12))])
def test_the_retention_period_comes_from_the_environment(value: str, kept: timedelta) -> None:
    assert report_retention(Env({"ANALYTICS_REPORT_RETENTION_DAYS": value})) == kept


@pytest.mark.parametrize("value", ["0", "-1", "a week"])
def test_a_retention_period_that_would_expire_reports_at_once_is_refused(value: str) -> None:
    with pytest.raises(ConfigError):
        report_retention(Env({"ANALYTICS_REPORT_RETENTION_DAYS": value}))


def test_a_day_nobody_registered_on_exports_empty_retention_rates(counted, tmp_path: Path) -> None:
    nobody = D2 + timedelta(days=1)

    reports.export(counted(), kind="retention", format="csv", period=Period(nobody, nobody),
                   path=tmp_path / "retention.csv")

    assert read_csv(tmp_path / "retention.csv")[1] == [nobody.isoformat(), "0", "0", "0", "0", "", "", ""]
