"""AnalyticsService servicer: the reports are for staff only; the tracking intake is public."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import grpc
from mall.analytics.v1 import analytics_pb2, analytics_pb2_grpc

from services.analytics import reports, service
from services.analytics.domain import Figures, FunnelSteps, ReportJob, Sales
from services.analytics.uow import AnalyticsUnitOfWork
from services.common.auth import REPORT_READERS, caller_var, report_readers, require_caller
from services.common.events import timestamp
from services.common.formats import REPORT_KINDS
from services.common.grpc_server import page


def figures_pb(figures: Figures) -> analytics_pb2.Figures:
    return analytics_pb2.Figures(**figures.as_dict())


def sales_pb(rows: list[Sales]) -> list[analytics_pb2.Sales]:
    return [analytics_pb2.Sales(key=s.key, paid_orders=s.paid_orders, quantity=s.quantity, sales_fen=s.sales_fen,
                                max_fen=s.max_fen) for s in rows]


def steps_pb(steps: FunnelSteps) -> analytics_pb2.FunnelSteps:
    return analytics_pb2.FunnelSteps(viewed=steps.viewed, added_to_cart=steps.added_to_cart, ordered=steps.ordered,
                                     paid=steps.paid)


def report_pb(job: ReportJob) -> analytics_pb2.Report:
    report = analytics_pb2.Report(
        id=job.id, kind=job.kind, format=job.format, from_date=job.period.first.isoformat(),
        to_date=job.period.last.isoformat(), status=job.status, percent=job.percent, rows=job.rows,
        size_bytes=job.size_bytes, file_name=job.file_name, error=job.error, created_at=timestamp(job.created_at))
    if job.finished_at is not None:
        report.finished_at.CopyFrom(timestamp(job.finished_at))
    return report


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, uow: Callable[[], AnalyticsUnitOfWork], reports_dir: Path = Path("var/reports")) -> None:
        self.uow = uow
        self.reports_dir = reports_dir

    def GetOverview(self, request: analytics_pb2.GetOverviewRequest,
                    context: grpc.ServicerContext) -> analytics_pb2.GetOverviewResponse:
        require_caller(*REPORT_READERS)
        overview = service.get_overview(self.uow(), from_date=request.from_date, to_date=request.to_date)
        return analytics_pb2.GetOverviewResponse(
            from_date=overview.period.first.isoformat(), to_date=overview.period.last.isoformat(),
            totals=figures_pb(overview.totals),
            days=[analytics_pb2.DailyOverview(date=d.day.isoformat(), figures=figures_pb(d.figures))
                  for d in overview.days],
        )

    def GetPurchasePreferences(self, request: analytics_pb2.GetPurchasePreferencesRequest,
                               context: grpc.ServicerContext) -> analytics_pb2.GetPurchasePreferencesResponse:
        require_caller(*REPORT_READERS)
        found = service.get_purchase_preferences(self.uow(), from_date=request.from_date, to_date=request.to_date,
                                                 top=request.top)
        return analytics_pb2.GetPurchasePreferencesResponse(
            from_date=found.period.first.isoformat(), to_date=found.period.last.isoformat(),
            sales_fen=found.sales_fen, by_category=sales_pb(found.by_category), by_brand=sales_pb(found.by_brand),
            by_price_band=sales_pb(found.by_price_band), top_products=sales_pb(found.top_products))

    def GetRegionalDistribution(self, request: analytics_pb2.GetRegionalDistributionRequest,
                                context: grpc.ServicerContext) -> analytics_pb2.GetRegionalDistributionResponse:
        require_caller(*REPORT_READERS)
        found = service.get_regional_distribution(self.uow(), from_date=request.from_date, to_date=request.to_date)
        return analytics_pb2.GetRegionalDistributionResponse(
            from_date=found.period.first.isoformat(), to_date=found.period.last.isoformat(), gmv_fen=found.gmv_fen,
            provinces=[analytics_pb2.Region(province=r.province, paid_orders=r.paid_orders, gmv_fen=r.gmv_fen,
                                            gmv_share=r.gmv_share, page_views=r.page_views) for r in found.provinces])

    def GetFunnel(self, request: analytics_pb2.GetFunnelRequest,
                  context: grpc.ServicerContext) -> analytics_pb2.GetFunnelResponse:
        require_caller(*REPORT_READERS)
        found = service.get_funnel(self.uow(), from_date=request.from_date, to_date=request.to_date)
        return analytics_pb2.GetFunnelResponse(
            from_date=found.period.first.isoformat(), to_date=found.period.last.isoformat(),
            totals=steps_pb(found.totals),
            days=[analytics_pb2.DailyFunnel(date=day.isoformat(), steps=steps_pb(steps)) for day, steps in found.days])

    def GetRetention(self, request: analytics_pb2.GetRetentionRequest,
                     context: grpc.ServicerContext) -> analytics_pb2.GetRetentionResponse:
        require_caller(*REPORT_READERS)
        found = service.get_retention(self.uow(), from_date=request.from_date, to_date=request.to_date)
        return analytics_pb2.GetRetentionResponse(
            from_date=found.period.first.isoformat(), to_date=found.period.last.isoformat(),
            cohorts=[analytics_pb2.Cohort(
                date=c.day.isoformat(), new_users=c.new_users, d1=c.retained[1], d7=c.retained[7], d30=c.retained[30],
                d1_rate=c.rates[1], d7_rate=c.rates[7], d30_rate=c.rates[30]) for c in found.cohorts])

    def TrackPageViews(self, request: analytics_pb2.TrackPageViewsRequest,
                       context: grpc.ServicerContext) -> analytics_pb2.TrackPageViewsResponse:
        # Public: anonymous visitors are tracked too; a logged-in shopper is known only by a verified token.
        caller = caller_var.get()
        views = [service.PageViewInput(
            session_id=v.session_id, page=v.page, referrer=v.referrer, region=v.region,
            client_ts=v.client_ts.ToDatetime(tzinfo=UTC) if v.HasField("client_ts") else None) for v in request.views]
        accepted = service.track_page_views(self.uow(), device_id=request.device_id, user_id=caller.user_id if caller else 0,
                                            views=views)
        return analytics_pb2.TrackPageViewsResponse(accepted=accepted)

    def CreateReport(self, request: analytics_pb2.CreateReportRequest,
                     context: grpc.ServicerContext) -> analytics_pb2.Report:
        caller = require_caller(*report_readers(request.kind))
        return report_pb(reports.create_report(self.uow(), kind=request.kind, format=request.format,
                                                from_date=request.from_date, to_date=request.to_date,
                                                requested_by=caller.user_id))

    def GetReport(self, request: analytics_pb2.GetReportRequest, context: grpc.ServicerContext) -> analytics_pb2.Report:
        require_caller(*REPORT_READERS)
        job = reports.get_report(self.uow(), request.id)
        require_caller(*report_readers(job.kind))  # whoever asked for it: a job's file is anyone's who may read it
        return report_pb(job)

    def ListReports(self, request: analytics_pb2.ListReportsRequest,
                    context: grpc.ServicerContext) -> analytics_pb2.ListReportsResponse:
        caller = require_caller(*REPORT_READERS)
        kinds = [kind for kind in REPORT_KINDS if caller.has_any_role(*report_readers(kind))]
        jobs, total = reports.list_reports(self.uow(), requested_by=caller.user_id, kinds=kinds, **page(request))
        return analytics_pb2.ListReportsResponse(reports=[report_pb(job) for job in jobs], total=total)

    def GetReportChunk(self, request: analytics_pb2.GetReportChunkRequest,
                       context: grpc.ServicerContext) -> analytics_pb2.GetReportChunkResponse:
        caller = require_caller(*REPORT_READERS)
        require_caller(*report_readers(reports.get_report(self.uow(), request.id).kind))
        job, data = reports.read_report(self.uow(), self.reports_dir, request.id, request.offset,
                                        actor_id=caller.user_id)
        return analytics_pb2.GetReportChunkResponse(report=report_pb(job), data=data)
