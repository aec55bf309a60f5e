"""Admin API (staff roles only): analytics for now."""

from __future__ import annotations

from flask import Blueprint
from mall.analytics.v1 import analytics_pb2
from mall.analytics.v1.analytics_pb2_grpc import AnalyticsServiceStub
from pydantic import Field

from gateway.api import Query, Reply, operation, service
from services.common.auth import Role

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

DAY = "UTC day, YYYY-MM-DD"


class PeriodQuery(Query):
    from_: str | None = Field(None, alias="from", max_length=10, description=DAY + " (default: 6 days before to)")
    to: str | None = Field(None, max_length=10, description=DAY + " (default: today)")


class DayFigures(Reply):
    date: str = Field(description=DAY)
    new_users: int


class Overview(Reply):
    """Shop figures over a period."""

    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    new_users: int
    days: list[DayFigures]


@bp.get("/analytics/overview")
@operation(summary="Shop figures per UTC day over a period (default: the last 7 days)", tag="admin",
           roles=(Role.ADMIN, Role.OPERATOR), query=PeriodQuery, responses={200: Overview})
def analytics_overview(query: PeriodQuery) -> Overview:
    reply = service(AnalyticsServiceStub).GetOverview(
        analytics_pb2.GetOverviewRequest(from_date=query.from_ or "", to_date=query.to or ""))
    return Overview(**{"from": reply.from_date}, to=reply.to_date, new_users=reply.new_users,
                    days=[DayFigures(date=d.date, new_users=d.new_users) for d in reply.days])
