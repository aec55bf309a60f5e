"""Entry point: python -m services.analytics [all|serve|relay|consume|migrate|export|backup].

`export --kind daily --format xlsx --from 2026-11-01 --to 2026-11-30 --out FILE` writes a report
straight from the database with a progress bar; `backup --out DIR` copies every analytics table
to DIR as CSV with a manifest.json of row counts.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from datetime import timedelta
from pathlib import Path

from mall.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from sqlalchemy import Engine
from tqdm import tqdm

from services.analytics import reports
from services.analytics.consumers import HANDLERS
from services.analytics.db import BACKUP_TABLES, SqlAnalyticsUnitOfWork
from services.analytics.grpc_api import AnalyticsServicer
from services.analytics.service import report_period
from services.common.config import ConfigError, Env, ServiceSettings, var_dir
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.errors import DomainError
from services.common.formats import REPORT_FORMATS, REPORT_KINDS
from services.common.grpc_server import registration
from services.common.runtime import ServiceApp, main

MIGRATIONS = Path(__file__).parent / "migrations"


def reports_dir(env: Env) -> Path:
    """ANALYTICS_REPORTS_DIR, default $MINIMALL_VAR/reports (var/reports): where export files are kept."""
    return Path(env.str("ANALYTICS_REPORTS_DIR", "") or var_dir(env) / "reports")


def report_retention(env: Env) -> timedelta:
    """ANALYTICS_REPORT_RETENTION_DAYS (7; fractions allowed): how long a done report's file is kept."""
    days = env.float("ANALYTICS_REPORT_RETENTION_DAYS", reports.REPORT_RETENTION / timedelta(days=1))
    if days <= 0:
        raise ConfigError("ANALYTICS_REPORT_RETENTION_DAYS must be more than 0")
    return timedelta(days=days)


def event_consumers(base: ServiceSettings, engine: Engine) -> list[EventConsumer]:
    """The consume role: facts and rollups from every event; no report files."""
    # batched (one transaction per poll): its handlers only insert facts and add to rollups, rows no request
    # path locks; the other services' consumers touch stock, balances and points, one event per transaction
    return [EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), base.kafka,
                          HANDLERS, batched=True)]


def build_app(base: ServiceSettings) -> ServiceApp:
    engine = make_engine(base.database_url, base.database_timeouts)
    uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
    env = Env()
    directory = reports_dir(env)
    servicer = AnalyticsServicer(uow, directory)
    # Reports aggregate months of rollups: their runner's statements may run DB_REPORT_STATEMENT_TIMEOUT_SECONDS, on an
    # engine of their own; the RPCs' (GetOverview...) stay under the gRPC deadline with DB_STATEMENT_TIMEOUT_SECONDS.
    report_uow = functools.partial(SqlAnalyticsUnitOfWork,
                                   make_engine(base.database_url, base.database_timeouts.for_reports()), "analytics")
    return ServiceApp(
        settings=base, engine=engine,
        registrations=[registration(analytics_pb2, analytics_pb2_grpc, "AnalyticsService", servicer)],
        consumers=event_consumers(base, engine),
        jobs={"reports": reports.ReportRunner(report_uow, directory, keep=report_retention(env)).job()},
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=REPORT_KINDS, default="daily", help="export: what to export")
    parser.add_argument("--format", choices=REPORT_FORMATS, default="csv", help="export: csv or xlsx")
    parser.add_argument("--from", dest="from_date", default="", help="export: first Asia/Shanghai day, YYYY-MM-DD")
    parser.add_argument("--to", dest="to_date", default="", help="export: last day (default: today)")
    parser.add_argument("--out", type=Path, help="export: the file to write; backup: the folder")


def export_command(settings: ServiceSettings, args: argparse.Namespace) -> int:
    if args.out is None:
        raise SystemExit("export needs --out FILE")
    try:
        period = report_period(args.from_date, args.to_date)
    except DomainError as exc:
        raise SystemExit(f"export: {exc.message}") from None
    engine = make_engine(settings.database_url, settings.database_timeouts.for_reports())
    uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
    with tqdm(unit="rows", desc=f"{args.kind} {period.first}..{period.last}", disable=None) as bar:
        def progress(done: int, expected: int) -> None:
            bar.total = expected
            bar.update(done - bar.n)
        rows = reports.export(uow(), kind=args.kind, format=args.format, period=period, path=args.out,
                              progress=progress)
    print(f"{rows} rows written to {args.out}", file=sys.stderr)
    return 0


def backup_command(settings: ServiceSettings, args: argparse.Namespace) -> int:
    if args.out is None:
        raise SystemExit("backup needs --out DIR")
    with tqdm(unit="rows", disable=None) as bar:
        def progress(table: str, done: int) -> None:
            if bar.desc != table:  # the next table: the bar starts again
                bar.reset()
                bar.set_description_str(table)
            bar.update(done - bar.n)
        manifest = reports.backup(make_engine(settings.database_url, settings.database_timeouts.for_reports()),
                                  BACKUP_TABLES, args.out, progress)
    print(json.dumps({name: t["rows"] for name, t in manifest["tables"].items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main("analytics", build_app, MIGRATIONS, commands={"export": export_command, "backup": backup_command},
                  add_arguments=add_arguments, consumers=event_consumers))
