"""Admin API (staff): exports of the analytics reports and ledgers as CSV or XLSX files, made by a background job."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from flask import Blueprint, Response, g
from mall.analytics.v1 import analytics_pb2
from mall.analytics.v1.analytics_pb2_grpc import AnalyticsServiceStub
from pydantic import Field

from gateway.api import Body, FileReply, Page, PageQuery, Reply, operation, service
from gateway.errors import ApiError
from gateway.routes.admin import DAY, DAY_PATTERN
from services.common.auth import REPORT_READERS, WALLET_REPORT_READERS, WALLET_REPORTS, report_readers
from services.common.formats import REPORT_CONTENT_TYPES, REPORT_FORMATS, REPORT_KINDS

bp = Blueprint("admin_reports", __name__, url_prefix="/api/v1/admin")

ReportKind = Literal[REPORT_KINDS]  # type: ignore[valid-type]
ReportFormat = Literal[REPORT_FORMATS]  # type: ignore[valid-type]


class ReportRequest(Body):
    kind: ReportKind = Field(description="daily (figures per day), funnel (per day), retention (cohorts), regions, "
                                         "preferences (category, brand, price band, top 100 products), events (raw), "
                                         "orders (one row per order placed: amounts, payment, cancellation, refunds, "
                                         "state), money (one signed row per payment, refund, recharge, withdrawal, late payment and "
                                         "its refund, paid plan bought with the wallet, refund paid twice); "
                                         "columns in services/analytics/README.md")
    format: ReportFormat
    from_: str = Field(alias="from", max_length=10, pattern=DAY_PATTERN, description=DAY)
    to: str = Field(max_length=10, pattern=DAY_PATTERN, description=DAY + " (at most 366 days after from)")


class ReportOut(Reply):
    """An export job: queued, running (percent 0-99), done (percent 100; the file can be downloaded) or failed."""

    id: int
    kind: str
    format: str
    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    status: Literal["queued", "running", "done", "failed", "expired"]
    percent: int = Field(ge=0, le=100)
    rows: int = Field(description="rows written so far (the header row not counted)")
    size_bytes: int = Field(description="the file's size once done, else 0")
    error: str | None = Field(description="once failed, a fixed message with the report's number (what went wrong "
                                           "is in the analytics service's log under it); null otherwise")
    created_at: datetime
    finished_at: datetime | None
    file_url: str | None = Field(description="where to download the file once done")

    @classmethod
    def from_proto(cls, report: analytics_pb2.Report) -> ReportOut:
        return cls(id=report.id, kind=report.kind, format=report.format, **{"from": report.from_date},
                   to=report.to_date, status=report.status, percent=report.percent, rows=report.rows,
                   size_bytes=report.size_bytes, error=report.error or None,
                   created_at=report.created_at.ToDatetime(tzinfo=UTC),
                   finished_at=report.finished_at.ToDatetime(tzinfo=UTC) if report.HasField("finished_at") else None,
                   file_url=f"/api/v1/admin/reports/{report.id}/file" if report.status == "done" else None)


class ReportFile(FileReply):
    """The report's file (CSV in UTF-8 with a byte order mark, or XLSX)."""

    media_types = tuple(REPORT_CONTENT_TYPES.values())


WALLET_KINDS_RULE = (f"Kinds {', '.join(WALLET_REPORTS)} carry shoppers' wallets (recharges, withdrawals, balances): "
                     f"only {', '.join(WALLET_REPORT_READERS)} export, follow and download them, 403 FORBIDDEN for the "
                     "others.")


def may_read(kind: str) -> None:
    """403 FORBIDDEN, as for a route's roles, when the caller may not read reports of `kind` (the analytics service
    refuses them too)."""
    if not g.caller.has_any_role(*report_readers(kind)):
        raise ApiError(403, "FORBIDDEN", "your account may not do this")


@bp.post("/reports")
@operation(summary="Export a report over a period as CSV or XLSX (a job; follow it with GET /admin/reports/{report_id})",
           tag="admin", roles=REPORT_READERS, body=ReportRequest, responses={202: ReportOut},
           description=WALLET_KINDS_RULE)
def create_report(body: ReportRequest) -> tuple[ReportOut, int]:
    may_read(body.kind)
    reply = service(AnalyticsServiceStub).CreateReport(analytics_pb2.CreateReportRequest(
        kind=body.kind, format=body.format, from_date=body.from_, to_date=body.to))
    return ReportOut.from_proto(reply), 202


@bp.get("/reports")
@operation(summary="My export jobs, newest first", tag="admin", roles=REPORT_READERS, query=PageQuery,
           responses={200: Page[ReportOut]},
           description="The jobs the caller asked for (a closed console tab loses none), of the kinds they may still "
                       "read; " + WALLET_KINDS_RULE)
def list_reports(query: PageQuery) -> Page[ReportOut]:
    reply = service(AnalyticsServiceStub).ListReports(analytics_pb2.ListReportsRequest(
        offset=query.offset, limit=query.page_size))
    return Page[ReportOut].of([ReportOut.from_proto(report) for report in reply.reports], query, reply.total)


@bp.get("/reports/<id:report_id>")
@operation(summary="An export job's status and progress", tag="admin", roles=REPORT_READERS, responses={200: ReportOut},
           description=WALLET_KINDS_RULE)
def get_report(report_id: int) -> ReportOut:
    report = service(AnalyticsServiceStub).GetReport(analytics_pb2.GetReportRequest(id=report_id))
    may_read(report.kind)
    return ReportOut.from_proto(report)


@bp.get("/reports/<id:report_id>/file")
@operation(summary="Download a done export (409 until it is done)", tag="admin", roles=REPORT_READERS,
           responses={200: ReportFile},
           description="409 REPORT_NOT_READY until the job is done; 410 REPORT_EXPIRED once its file was deleted, "
                       "ANALYTICS_REPORT_RETENTION_DAYS (7) after it was done (the job then reads `expired`). "
                       + WALLET_KINDS_RULE)
def report_file(report_id: int) -> Response:
    """Streamed: the analytics service hands the file over 1 MiB at a time, and each piece goes out as it comes."""
    stub = service(AnalyticsServiceStub)
    first = stub.GetReportChunk(analytics_pb2.GetReportChunkRequest(id=report_id, offset=0))
    may_read(first.report.kind)
    size = first.report.size_bytes
    # The pieces after the first are asked for while the response is sent, after the view has returned:
    # in a copy of this request's context, so that they carry its caller and request id.
    context = contextvars.copy_context()

    def pieces() -> Iterator[bytes]:
        data, offset = first.data, 0
        while data:
            yield data
            offset += len(data)
            if offset >= size:
                return
            data = context.run(stub.GetReportChunk, analytics_pb2.GetReportChunkRequest(id=report_id, offset=offset)).data

    return Response(pieces(), content_type=REPORT_CONTENT_TYPES[first.report.format], headers={
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{first.report.file_name}"'})
