"""Exports (A3): a report's rows by kind, CSV and XLSX written row by row, report jobs and their runner, backups.

Memory stays bounded whatever the size: rows come from iterators (raw events in keyset pages,
each read in a short transaction of its own), CSV is written as they come and XLSX through
openpyxl's write-only workbook, which streams each sheet to a temporary file. A file is written
as `<name>.part` and renamed when complete, so a download never sees half a file; the runner deletes the files
a crashed or taken-over attempt left (half written, or complete but not the job's) once their job is no longer running.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from openpyxl import Workbook
from sqlalchemy import Engine, Table, select

from services.analytics import ledgers, service
from services.analytics.domain import (
    DONE,
    EXPIRED,
    FAILED,
    FIGURES,
    QUEUED,
    RETENTION_DAYS,
    RUNNING,
    Period,
    ReportJob,
)
from services.analytics.uow import AnalyticsUnitOfWork
from services.common.db import snapshot, utcnow
from services.common.errors import Conflict, InvalidInput, NotFound, RateLimited
from services.common.formats import REPORT_FORMATS, REPORT_KINDS
from services.common.liveness import LIVENESS_MARGIN_SECONDS
from services.common.runtime import Job

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20            # a download travels from the service to the gateway in pieces this size
XLSX_MAX_ROWS = 1_048_576        # Excel's limit per sheet, header included: longer reports go on to another sheet
PROGRESS_EVERY = 1000            # rows between progress reports
EVENTS_PAGE = 2000               # raw events read at a time
HEARTBEAT_STALE = timedelta(minutes=5)  # a running job not heard from for this long is taken over by another runner
# A running attempt beats this often whatever it is doing (reading a slow page, saving a big XLSX, writing rows
# that do not move the percent): five beats to a take-over, so a few lost to a busy database take over no live one.
HEARTBEAT_EVERY = timedelta(minutes=1)
assert HEARTBEAT_EVERY * 3 <= HEARTBEAT_STALE
# ... but not for ever: an attempt that has written no row for this long (a read or a disk that hangs) stops beating,
# and another runner takes the job over. Far longer than anything an attempt does between two progress reports (a
# page of events, PROGRESS_EVERY rows, saving an XLSX of a million rows).
STALLED_AFTER = timedelta(minutes=30)
REPORT_RETENTION = timedelta(days=7)    # default of ANALYTICS_REPORT_RETENTION_DAYS: a done report's file is kept this long
EXPIRY_EVERY = timedelta(minutes=10)    # how often the runner looks for reports to expire
MAX_REPORTS_UNDER_WAY = 10              # queued or running reports one analyst may have at once

Progress = Callable[[int], None]  # rows written so far


@dataclass
class Report:
    """What a report holds: its columns, how many rows to expect (for the percent) and the rows, lazily."""

    columns: tuple[str, ...]
    expected_rows: int
    rows: Iterable[tuple[Any, ...]]


# The rows of each kind. Figures and steps are the admin API's, over the same period; "total" rows are the period's.

OVERVIEW_COLUMNS = (*FIGURES, "net_gmv_fen", "average_order_value_fen")
# Money that came in for orders that could not take it, and went back: no figure of the overview (neither sales nor
# their refunds), but finance ties the money ledger's late rows to them, day by day.
LATE_COLUMNS = ("late_payments", "late_payment_fen", "late_refunds", "late_refund_fen")
# Paid plans bought with the wallet: sales, but not of goods (no order, no GMV); the money ledger's
# plan_subscription rows add up to plan_subscription_fen day by day.
PLAN_COLUMNS = ("plan_subscriptions", "plan_subscription_fen")
# Closed refunds WeChat Pay paid after another refund had paid the same units or money: out twice, for finance to
# recover; not refunds of sales (refund_fen and net GMV do not move). The money ledger's refund_paid_twice rows.
TWICE_COLUMNS = ("refunds_paid_twice", "refund_paid_twice_fen")
DAILY_COLUMNS = (*OVERVIEW_COLUMNS, *LATE_COLUMNS, *PLAN_COLUMNS, *TWICE_COLUMNS)
FUNNEL_COLUMNS = ("viewed", "added_to_cart", "ordered", "paid")


def _daily(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    found = service.get_overview(uow, from_date=period.first.isoformat(), to_date=period.last.isoformat())
    rows = [(d.day.isoformat(), *(d.figures[name] for name in DAILY_COLUMNS)) for d in found.days]
    rows.append(("total", *(found.totals[name] for name in DAILY_COLUMNS)))
    return Report(("date", *DAILY_COLUMNS), len(rows), rows)


def _funnel(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    found = service.get_funnel(uow, from_date=period.first.isoformat(), to_date=period.last.isoformat())
    rows = [(day.isoformat(), *(getattr(steps, name) for name in FUNNEL_COLUMNS)) for day, steps in found.days]
    rows.append(("total", *(getattr(found.totals, name) for name in FUNNEL_COLUMNS)))
    return Report(("date", *FUNNEL_COLUMNS), len(rows), rows)


def _retention(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    found = service.get_retention(uow, from_date=period.first.isoformat(), to_date=period.last.isoformat())
    rows = [(c.day.isoformat(), c.new_users, *(c.retained[n] for n in RETENTION_DAYS),
             *(c.rates[n] for n in RETENTION_DAYS)) for c in found.cohorts]
    columns = ("date", "new_users", *(f"d{n}" for n in RETENTION_DAYS), *(f"d{n}_rate" for n in RETENTION_DAYS))
    return Report(columns, len(rows), rows)


def _regions(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    found = service.get_regional_distribution(uow, from_date=period.first.isoformat(), to_date=period.last.isoformat())
    rows = [(r.province, r.paid_orders, r.gmv_fen, r.gmv_share, r.page_views) for r in found.provinces]
    return Report(("province", "paid_orders", "gmv_fen", "gmv_share", "page_views"), len(rows), rows)


def _preferences(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    found = service.get_purchase_preferences(uow, from_date=period.first.isoformat(), to_date=period.last.isoformat(),
                                             top=service.MAX_TOP_PRODUCTS)
    groups = (("category", found.by_category), ("brand", found.by_brand), ("price_band", found.by_price_band),
              ("product", found.top_products))
    rows = [(dimension, s.key, s.paid_orders, s.quantity, s.sales_fen) for dimension, sales in groups for s in sales]
    return Report(("dimension", "key", "paid_orders", "quantity", "sales_fen"), len(rows), rows)


def _events(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    with uow:
        expected = uow.rollups.raw_event_count(period)

    def rows() -> Iterator[tuple[Any, ...]]:
        # Page by page, each in a short transaction of its own: no long read holds up the consumers
        # (on SQLite every transaction takes the write lock), and one page at a time is in memory.
        after = None
        while True:
            with uow:
                page = uow.rollups.raw_events(period, after=after, limit=EVENTS_PAGE)
            for event in page:
                yield (event.event_id, event.event_type, event.day.isoformat(), event.occurred_at.isoformat(),
                       event.aggregate_id, payload_json(event.event_type, event.payload))
            if len(page) < EVENTS_PAGE:
                return
            after = (page[-1].day, page[-1].event_id)
    return Report(("event_id", "event_type", "date", "occurred_at", "aggregate_id", "payload"), expected, rows())


def _orders(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    with uow:
        expected = uow.rollups.ledger_event_count(period, ledgers.ORDER_CREATED)
    return Report(ledgers.ORDER_COLUMNS, expected, ledgers.order_rows(uow, period))


def _money(uow: AnalyticsUnitOfWork, period: Period) -> Report:
    with uow:
        expected = uow.rollups.ledger_event_count(period, ledgers.MONEY_EVENTS)
    return Report(ledgers.MONEY_COLUMNS, expected, ledgers.money_rows(uow, period))


def payload_json(event_type: str, payload: bytes) -> str:
    """An event's payload as compact JSON (protobuf's JSON mapping), or base64 for a type this code does not know."""
    message_type = ledgers.MESSAGE_TYPES.get(event_type)
    if message_type is None:
        return base64.b64encode(payload).decode()
    message = message_type.FromString(payload)
    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True)


KINDS: dict[str, Callable[[AnalyticsUnitOfWork, Period], Report]] = {
    "daily": _daily, "funnel": _funnel, "retention": _retention, "regions": _regions,
    "preferences": _preferences, "events": _events, "orders": _orders, "money": _money,
}
assert tuple(KINDS) == REPORT_KINDS


# Writers

# The full-width signs too (＝ ＋ － ＠, U+FF1D, U+FF0B, U+FF0D, U+FF20): Excel set up for Chinese or Japanese input
# turns a leading full-width sign into its ASCII one, so "＝HYPERLINK(...)" may run as "=HYPERLINK(...)" would.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cells(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as a spreadsheet may take it: text that a spreadsheet would run as a formula (a province or
    device id a shopper typed as "=HYPERLINK(...)") gets a leading apostrophe, and stays text."""
    return tuple("'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
                 for value in row)


def write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]], progress: Progress, *,
              as_text: bool = True) -> int:
    """UTF-8 with a byte order mark (so that Excel reads Chinese names right); None is an empty cell. `as_text`:
    text a spreadsheet would run gets its leading apostrophe (`cells`); off for a backup, a copy of the data."""
    count = 0
    with path.open("w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(cells(row) if as_text else row)
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count)
    progress(count)
    return count


def write_xlsx(path: Path, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]], progress: Progress,
               *, sheet: str = "report", max_rows: int = XLSX_MAX_ROWS) -> int:
    """A write-only workbook: rows go to disk as they come; past a sheet's limit the rows go on in `sheet-2`, ..."""
    workbook = Workbook(write_only=True)
    count, sheets, current = 0, 0, None
    for row in rows:
        if current is None or count % (max_rows - 1) == 0:
            sheets += 1
            current = workbook.create_sheet(sheet if sheets == 1 else f"{sheet}-{sheets}")
            current.append(columns)
        current.append(cells(row))
        count += 1
        if count % PROGRESS_EVERY == 0:
            progress(count)
    if current is None:
        workbook.create_sheet(sheet).append(columns)
    workbook.save(path)
    progress(count)
    return count


WRITERS = {"csv": write_csv, "xlsx": write_xlsx}


def export(uow: AnalyticsUnitOfWork, *, kind: str, format: str, period: Period, path: Path,
           progress: Callable[[int, int], None] = lambda done, expected: None) -> int:
    """Write the report `kind` over `period` to `path` (through path.part); the number of rows written."""
    partial = path.with_name(path.name + ".part")
    report = KINDS[kind](uow, period)
    try:
        rows = WRITERS[format](partial, report.columns, report.rows, lambda done: progress(done, report.expected_rows))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return rows


# Report jobs: the use cases behind the admin API

def check_request(kind: str, format: str) -> None:
    if kind not in REPORT_KINDS:
        raise InvalidInput("REPORT_KIND_INVALID", f"kind is one of {', '.join(REPORT_KINDS)}", details={"kind": "invalid"})
    if format not in REPORT_FORMATS:
        raise InvalidInput("REPORT_FORMAT_INVALID", "format is csv or xlsx", details={"format": "invalid"})


def create_report(uow: AnalyticsUnitOfWork, *, kind: str, format: str, from_date: str, to_date: str,
                  requested_by: int, today: date | None = None) -> ReportJob:
    """Queue an export; the job runner writes it."""
    check_request(kind, format)
    period = service.report_period(from_date, to_date, today)
    with uow:
        # Each may read a year of raw events and keeps a file for days. A soft limit: two asked at the same moment
        # may both pass it.
        under_way = uow.reports.under_way(requested_by)
        if under_way >= MAX_REPORTS_UNDER_WAY:
            raise RateLimited("REPORTS_UNDER_WAY", f"at most {MAX_REPORTS_UNDER_WAY} reports queued or running at "
                              "once; ask again when one is done", details={"under_way": under_way, "retry_after": 60})
        job = uow.reports.add(kind=kind, format=format, period=period, requested_by=requested_by, now=utcnow())
        uow.commit()
    return job


def list_reports(uow: AnalyticsUnitOfWork, *, requested_by: int, kinds: Sequence[str], offset: int,
                 limit: int) -> tuple[list[ReportJob], int]:
    """The jobs `requested_by` asked for, of `kinds` (those they may read), newest first, and how many."""
    with uow:
        found = uow.reports.of_requester(requested_by, kinds, offset=offset, limit=limit)
        uow.commit()
    return found


def get_report(uow: AnalyticsUnitOfWork, job_id: int) -> ReportJob:
    with uow:
        job = uow.reports.get(job_id)
    if job is None:
        raise NotFound("REPORT_NOT_FOUND", "no such report")
    return job


def read_report(uow: AnalyticsUnitOfWork, directory: Path, job_id: int, offset: int, *, actor_id: int,
                now: datetime | None = None) -> tuple[ReportJob, bytes]:
    """The job and up to CHUNK_BYTES of its file from `offset` (b"" at the end); 409 until the job is done. A read
    from offset 0 is a download, recorded with who made it (report_downloads): any report reader may download any
    job of a kind they may read, so this is what says who took a file home."""
    job = get_report(uow, job_id)
    if job.status == EXPIRED:
        raise NotFound("REPORT_EXPIRED", "the report's file was deleted after the retention period; ask for it again",
                       details={"finished_at": job.finished_at.isoformat() if job.finished_at else None})
    if job.status != DONE:
        raise Conflict("REPORT_NOT_READY", f"the report is {job.status}, not done")
    if offset < 0:
        raise InvalidInput("OFFSET_INVALID", "offset must not be negative", details={"offset": "negative"})
    try:
        with (directory / job.file_name).open("rb") as file:
            file.seek(offset)
            data = file.read(CHUNK_BYTES)
    except FileNotFoundError:
        raise NotFound("REPORT_FILE_GONE", "the report's file is no longer there; ask for it again") from None
    if offset == 0:
        with uow:
            uow.reports.add_download(job_id, actor_id=actor_id, now=now or utcnow())
            uow.commit()
        log.info("report %s (%s, asked for by %s) downloaded by %s", job_id, job.kind, job.requested_by, actor_id)
    return job, data


def expire_reports(uow: AnalyticsUnitOfWork, directory: Path, *, keep: timedelta = REPORT_RETENTION,
                   now: datetime | None = None) -> int:
    """Mark done reports that finished more than `keep` ago expired and delete their files; how many expired.

    The rows are marked first (and committed): a crash before a file is deleted leaves a file nobody can download,
    never a done report without its file.
    """
    with uow:
        jobs = uow.reports.expire(finished_before=(now or utcnow()) - keep)
        uow.commit()
    for job in jobs:
        if job.file_name:
            (directory / job.file_name).unlink(missing_ok=True)
    if jobs:
        log.info("expired %d reports finished more than %s ago", len(jobs), keep)
    return len(jobs)


# A report job's file, complete or being written (`file_name`): its job's id comes first.
JOB_FILE = re.compile(r"(?P<job_id>[0-9]+)-[a-z]+-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{4}-[0-9]{2}-[0-9]{2}(-try[0-9]+)?"
                      r"\.(csv|xlsx)(?P<part>\.part)?")


def remove_leftover_files(uow: AnalyticsUnitOfWork, directory: Path) -> int:
    """Delete the files of jobs no longer running (done, failed or expired) that no download can reach: every `.part`,
    and every complete file but a done job's own (its `file_name`); how many.

    A `.part` is what an attempt that crashed, or was taken over and then lost the race, left half written. A complete
    file nobody points at is left by an attempt that crashed between its rename and its "done" save (the job is then
    taken over, and ends done with the next attempt's file, or failed), by an attempt that lost the race and crashed
    before deleting its file, or by expire_reports crashing between marking jobs expired and deleting their files.
    A job ends for good, so no attempt of it can use such a file any more: one still at work finds it gone, fails,
    and saves nothing (the job is not its to end), or, having renamed its file, finds the job ended and deletes it.

    A queued or running job's files are all kept, complete ones too: an attempt renames its file before it saves the
    job done, and an older attempt, taken over, may still be the first to finish. Files of no job of this database
    are left alone: a job's row is committed before any file of it is written and rows are never deleted, so such a
    file is not this database's (a directory shared with another one, a database restored from an older backup).
    """
    if not directory.is_dir():  # no report written yet
        return 0
    found_files = {path: int(found["job_id"]) for path in directory.iterdir()
                   if (found := JOB_FILE.fullmatch(path.name))}
    if not found_files:
        return 0
    with uow:
        jobs = uow.reports.files(set(found_files.values()))
    removed = 0
    for path, job_id in sorted(found_files.items()):
        status, kept = jobs.get(job_id, (RUNNING, ""))
        if status in (QUEUED, RUNNING) or (status == DONE and path.name == kept):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("removed %d leftover files of reports no longer running", removed)
    return removed


def failure_message(job_id: int) -> str:
    """What an analyst is told of a failed report: the same words whatever went wrong. The exception's own text
    (a file path, a database host, a query) goes to the service's log only, under the report's number."""
    return f"report {job_id} could not be made; ask for it again, and if it fails again give its number {job_id} to " \
           "the shop's engineers"


def file_name(job: ReportJob) -> str:
    """The job's file; an attempt after the first (a runner took the job over) writes one of its own, `-try<n>`."""
    retry = f"-try{job.attempts}" if job.attempts > 1 else ""
    return f"{job.id}-{job.kind}-{job.period.first.isoformat()}-{job.period.last.isoformat()}{retry}.{job.format}"


class ReportRunner:
    """The job runner of the serve role: claims queued report jobs one at a time and writes their files.

    A job's row is its state. Progress (percent, rows) is saved as it goes; while an attempt runs, it also beats
    every `heartbeat_every` (HEARTBEAT_EVERY), progress or not, as long as it wrote a row within `stalled_after`;
    so only a job whose runner died, froze or hangs mid-way goes HEARTBEAT_STALE without a beat and is taken over. Every
    EXPIRY_EVERY it also deletes the files of reports done more than `keep` ago (expire_reports).
    """

    def __init__(self, uow: Callable[[], AnalyticsUnitOfWork], directory: Path, *, poll_seconds: float = 1.0,
                 keep: timedelta = REPORT_RETENTION, heartbeat_every: timedelta = HEARTBEAT_EVERY,
                 stalled_after: timedelta = STALLED_AFTER) -> None:
        self.uow = uow
        self.directory = directory
        self.poll_seconds = poll_seconds
        self.keep = keep
        self.heartbeat_every = heartbeat_every
        self.stalled_after = stalled_after

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
        """Run jobs until `stop` is set, calling `beat()` after each pass and each report, and as a report's rows
        are written (liveness_bound_seconds)."""
        next_expiry = time.monotonic()
        while not stop.is_set():
            try:
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + EXPIRY_EVERY.total_seconds()
                    expire_reports(self.uow(), self.directory, keep=self.keep)
                    remove_leftover_files(self.uow(), self.directory)
                while not stop.is_set() and self.run_one(beat):
                    beat()
            except Exception:
                log.exception("report job runner failed; retrying in %.0f s", self.poll_seconds)
            stop.wait(self.poll_seconds)
            beat()

    def liveness_bound_seconds(self) -> float:
        """The longest between two beats of `run` while it works, plus LIVENESS_MARGIN_SECONDS: the poll wait, then
        the rows of a report, which a live attempt writes at least every `stalled_after` (one silent that long is
        stalled: no more heartbeats, and another runner takes it over). 1831 s with the defaults."""
        return self.poll_seconds + self.stalled_after.total_seconds() + LIVENESS_MARGIN_SECONDS

    def job(self) -> Job:
        """The serve role's job (ServiceApp.jobs)."""
        return Job(self.run, self.liveness_bound_seconds())

    def run_one(self, beat: Callable[[], None] = lambda: None) -> bool:
        now = utcnow()
        with self.uow() as uow:
            job = uow.reports.claim(now=now, stale_before=now - HEARTBEAT_STALE)
            uow.commit()
        if job is None:
            return False
        # A file of this attempt's own: a runner taken over while still writing (silent past HEARTBEAT_STALE)
        # never writes into, renames or removes the file of the attempt that took over, nor it into this one's.
        name = file_name(job)
        try:
            with self._beating(job) as moved:
                self.directory.mkdir(parents=True, exist_ok=True)
                rows = export(self.uow(), kind=job.kind, format=job.format, period=job.period,
                              path=self.directory / name, progress=self._progress(job, moved, beat))
                size = (self.directory / name).stat().st_size
        except Exception:
            log.exception("report %d (%s, attempt %d) failed", job.id, job.kind, job.attempts)
            # Only while it is this attempt's: another one taken over since may still finish it.
            self._save(job, status=FAILED, error=failure_message(job.id), finished_at=utcnow())
        else:
            # The first attempt to finish makes it done, whichever it is; a later one's file is not needed.
            if not self._save(job, any_attempt=True, status=DONE, percent=100, rows=rows, size_bytes=size,
                              file_name=name, finished_at=utcnow()):
                log.warning("report %d was finished by another attempt; dropping this one's file", job.id)
                (self.directory / name).unlink(missing_ok=True)
        return True

    @contextlib.contextmanager
    def _beating(self, job: ReportJob) -> Iterator[Callable[[], None]]:
        """Beat for `job`'s attempt every `heartbeat_every` until the block ends, as long as the attempt calls the
        callable given (rows written) at least every `stalled_after`: the percent alone may stay put for longer
        than HEARTBEAT_STALE (rows past the count expected, a long silent XLSX save) on a live attempt."""
        ended, last_moved = threading.Event(), [time.monotonic()]

        def moved() -> None:
            last_moved[0] = time.monotonic()

        def beat() -> None:
            while not ended.wait(self.heartbeat_every.total_seconds()):
                if time.monotonic() - last_moved[0] > self.stalled_after.total_seconds():
                    log.error("report %d (attempt %d) wrote no row for %s: no more heartbeats, another runner will "
                              "take it over", job.id, job.attempts, self.stalled_after)
                    return
                try:
                    if not self._save(job, heartbeat_at=utcnow()):
                        return  # taken over: the attempt that took it over beats for it now
                except Exception:
                    log.warning("report %d: a heartbeat was not saved", job.id, exc_info=True)

        beating = threading.Thread(target=beat, name=f"report-{job.id}-heartbeat", daemon=True)
        beating.start()
        try:
            yield moved
        finally:
            ended.set()
            beating.join()

    def _progress(self, job: ReportJob, moved: Callable[[], None],
                  beat: Callable[[], None]) -> Callable[[int, int], None]:
        last = [-1]

        def report(done: int, expected: int) -> None:
            moved()
            beat()
            percent = min(99, done * 100 // expected) if expected else 0
            if percent != last[0]:
                last[0] = percent
                self._save(job, percent=percent, rows=done, heartbeat_at=utcnow())
        return report

    def _save(self, job: ReportJob, *, any_attempt: bool = False, **values: Any) -> bool:
        """Save a running job's progress or end; False (nothing saved) when it is no longer running, or (unless
        `any_attempt`) no longer `job`'s attempt: another runner took it over."""
        with self.uow() as uow:
            saved = uow.reports.update_running(job.id, attempt=None if any_attempt else job.attempts, **values)
            uow.commit()
        return saved


# Backup: every analytics table as CSV, with a manifest

def backup(engine: Engine, tables: Iterable[Table], directory: Path,
           progress: Callable[[str, int], None] = lambda table, rows: None) -> dict[str, Any]:
    """One CSV per table (binary columns in base64, times ISO 8601) and manifest.json with each table's row count.
    Every value as the table holds it: a device id or region starting with "-" or "=" gets no apostrophe here.

    The tables are copied in one snapshot (consumers keep running): copied each as of its own moment, counted_facts
    (copied last) could hold facts whose counters the earlier copies lack, and a restore would skip them as counted."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"created_at": utcnow().isoformat(), "tables": {}}
    with snapshot(engine) as conn:
        for table in tables:
            columns = tuple(column.name for column in table.columns)
            ordered = select(table).order_by(*table.primary_key.columns)
            rows = (tuple(_cell(value) for value in row)
                    for row in conn.execution_options(stream_results=True, yield_per=2000).execute(ordered))
            path = directory / f"{table.name}.csv"
            count = write_csv(path, columns, rows, lambda done, name=table.name: progress(name, done), as_text=False)
            manifest["tables"][table.name] = {"file": path.name, "columns": list(columns), "rows": count}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
