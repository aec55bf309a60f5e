"""AnalyticsService servicer; every RPC is for staff only."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from mall.analytics.v1 import analytics_pb2, analytics_pb2_grpc

from services.analytics import service
from services.analytics.db import AnalyticsUnitOfWork
from services.common.auth import require_caller


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, uow: Callable[[], AnalyticsUnitOfWork]) -> None:
        self.uow = uow

    def GetOverview(self, request: analytics_pb2.GetOverviewRequest,
                    context: grpc.ServicerContext) -> analytics_pb2.GetOverviewResponse:
        require_caller("admin", "operator")
        overview = service.get_overview(self.uow(), from_date=request.from_date, to_date=request.to_date)
        return analytics_pb2.GetOverviewResponse(
            from_date=overview.period.first.isoformat(), to_date=overview.period.last.isoformat(),
            new_users=overview.new_users,
            days=[analytics_pb2.DailyOverview(date=d.day.isoformat(), new_users=d.new_users) for d in overview.days],
        )
