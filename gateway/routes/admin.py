"""Admin API (staff roles only): analytics reports over Asia/Shanghai days."""

from __future__ import annotations

from flask import Blueprint
from google.protobuf.message import Message
from mall.analytics.v1 import analytics_pb2
from mall.analytics.v1.analytics_pb2_grpc import AnalyticsServiceStub
from pydantic import Field

from gateway.api import Query, Reply, operation, service
from services.common.auth import REPORT_READERS

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

DAY = "Asia/Shanghai day, YYYY-MM-DD"


# A day of the years analytics keeps (2000-2099); analytics checks it is a real day (2026-02-30 is 400 DATE_INVALID).
DAY_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class PeriodQuery(Query):
    from_: str | None = Field(None, alias="from", max_length=10, pattern=DAY_PATTERN,
                              description=DAY + " (default: 6 days before to; at most 366 days before it)")
    to: str | None = Field(None, max_length=10, pattern=DAY_PATTERN, description=DAY + " (default: today)")

    def dates(self) -> dict[str, str]:
        return {"from_date": self.from_ or "", "to_date": self.to or ""}


def _counts(model: type[Reply], message: Message) -> dict[str, int]:
    """The message's numbers for the model's fields: these replies name them as the analytics messages do."""
    return {name: getattr(message, name) for name in model.model_fields}


class Figures(Reply):
    """The shop's figures (services/analytics/README.md defines each one)."""

    page_views: int
    unique_visitors: int = Field(description="distinct devices")
    visits: int = Field(description="distinct sessions")
    new_users: int
    active_users: int = Field(description="distinct logged-in shoppers who did anything")
    orders: int = Field(description="orders placed")
    paid_orders: int
    paying_users: int
    gmv_fen: int = Field(description="gross: payable amount of the orders paid")
    refunds: int
    refund_fen: int
    net_gmv_fen: int = Field(description="gmv_fen - refund_fen")
    average_order_value_fen: int = Field(description="gmv_fen / paid_orders, rounded down")
    cancelled_orders: int
    recharges: int
    recharge_fen: int
    new_members: int
    withdrawals: int
    withdrawal_fen: int
    cart_additions: int
    product_views: int = Field(description="product pages opened by logged-in shoppers")


class DayFigures(Figures):
    """One day's figures."""

    date: str = Field(description=DAY)


class Overview(Figures):
    """Shop figures over a period (distinct counts distinct over the period) and per day."""

    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    days: list[DayFigures]


@bp.get("/analytics/overview")
@operation(summary="Shop figures over a period and per day (default: the last 7 days)", tag="admin",
           roles=REPORT_READERS, query=PeriodQuery, responses={200: Overview})
def analytics_overview(query: PeriodQuery) -> Overview:
    reply = service(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest(**query.dates()))
    return Overview(**{"from": reply.from_date}, to=reply.to_date, **_counts(Figures, reply.totals),
                    days=[DayFigures(date=d.date, **_counts(Figures, d.figures)) for d in reply.days])


TOP_PRODUCTS = 10


class Sales(Reply):
    paid_orders: int = Field(description="paid orders with at least one line here")
    quantity: int
    sales_fen: int = Field(description="sum of unit price x quantity of those lines")


class CategorySales(Sales):
    category_id: int


class BrandSales(Sales):
    brand_id: int = Field(description="0: products without a brand")


class PriceBandSales(Sales):
    min_fen: int = Field(description="unit price from (inclusive)")
    max_fen: int | None = Field(description="unit price below (exclusive); null for the top band")


class ProductSales(Sales):
    product_id: int


class Preferences(Reply):
    """Item sales of the orders paid in a period, by category, brand, unit price band, and the top products."""

    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    sales_fen: int
    by_category: list[CategorySales]
    by_brand: list[BrandSales]
    by_price_band: list[PriceBandSales]
    top_products: list[ProductSales] = Field(description=f"the {TOP_PRODUCTS} best-selling products")


@bp.get("/analytics/preferences")
@operation(summary="Purchase preferences: sales by category, brand, price band; top products", tag="admin",
           roles=REPORT_READERS, query=PeriodQuery, responses={200: Preferences})
def analytics_preferences(query: PeriodQuery) -> Preferences:
    reply = service(AnalyticsServiceStub).GetPurchasePreferences(
        analytics_pb2.GetPurchasePreferencesRequest(**query.dates(), top=TOP_PRODUCTS))
    return Preferences(
        **{"from": reply.from_date}, to=reply.to_date, sales_fen=reply.sales_fen,
        by_category=[CategorySales(category_id=int(s.key), **_counts(Sales, s)) for s in reply.by_category],
        by_brand=[BrandSales(brand_id=int(s.key), **_counts(Sales, s)) for s in reply.by_brand],
        by_price_band=[PriceBandSales(min_fen=int(s.key), max_fen=s.max_fen or None, **_counts(Sales, s))
                       for s in reply.by_price_band],
        top_products=[ProductSales(product_id=int(s.key), **_counts(Sales, s)) for s in reply.top_products])


class Province(Reply):
    province: str = Field(description='"" when unknown')
    paid_orders: int
    gmv_fen: int
    gmv_share: float = Field(description="share of the period's GMV, 0..1")
    page_views: int = Field(description="page views of visitors from this province")


class Regions(Reply):
    """Orders and GMV by shipping province, page views by visitor region."""

    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    gmv_fen: int
    provinces: list[Province]


@bp.get("/analytics/regions")
@operation(summary="Regional distribution: paid orders, GMV and page views by province", tag="admin",
           roles=REPORT_READERS, query=PeriodQuery, responses={200: Regions})
def analytics_regions(query: PeriodQuery) -> Regions:
    reply = service(AnalyticsServiceStub).GetRegionalDistribution(
        analytics_pb2.GetRegionalDistributionRequest(**query.dates()))
    return Regions(**{"from": reply.from_date}, to=reply.to_date, gmv_fen=reply.gmv_fen, provinces=[
        Province(province=r.province, paid_orders=r.paid_orders, gmv_fen=r.gmv_fen, gmv_share=r.gmv_share,
                 page_views=r.page_views) for r in reply.provinces])


class FunnelSteps(Reply):
    """Distinct shoppers at each step; a step counts only shoppers who took the steps before it."""

    viewed: int
    added_to_cart: int
    ordered: int
    paid: int


class DayFunnel(FunnelSteps):
    """One day's funnel."""

    date: str = Field(description=DAY)


class Funnel(FunnelSteps):
    """The funnel view -> cart -> order -> paid over a period, and each day on its own."""

    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    days: list[DayFunnel]


@bp.get("/analytics/funnel")
@operation(summary="Conversion funnel: viewed, added to cart, ordered, paid", tag="admin",
           roles=REPORT_READERS, query=PeriodQuery, responses={200: Funnel})
def analytics_funnel(query: PeriodQuery) -> Funnel:
    reply = service(AnalyticsServiceStub).GetFunnel(analytics_pb2.GetFunnelRequest(**query.dates()))
    return Funnel(**{"from": reply.from_date}, to=reply.to_date, **_counts(FunnelSteps, reply.totals),
                  days=[DayFunnel(date=d.date, **_counts(FunnelSteps, d.steps)) for d in reply.days])


class CohortOut(Reply):
    date: str = Field(description=DAY + ": the registration day")
    new_users: int
    d1: int = Field(description="of them, active again the next day")
    d7: int
    d30: int
    d1_rate: float | None = Field(description="d1 / new_users; null until that day has ended, and on a day "
                                                "nobody registered (new_users 0)")
    d7_rate: float | None
    d30_rate: float | None


class Retention(Reply):
    """Cohorts by registration day with their D1 / D7 / D30 retention."""

    from_: str = Field(alias="from", description=DAY)
    to: str = Field(description=DAY)
    cohorts: list[CohortOut]


@bp.get("/analytics/retention")
@operation(summary="Retention: cohorts by registration day, active again after 1, 7, 30 days", tag="admin",
           roles=REPORT_READERS, query=PeriodQuery, responses={200: Retention})
def analytics_retention(query: PeriodQuery) -> Retention:
    reply = service(AnalyticsServiceStub).GetRetention(analytics_pb2.GetRetentionRequest(**query.dates()))
    return Retention(**{"from": reply.from_date}, to=reply.to_date, cohorts=[CohortOut(
        date=c.date, new_users=c.new_users, d1=c.d1, d7=c.d7, d30=c.d30,
        **{f"{n}_rate": getattr(c, f"{n}_rate") if c.HasField(f"{n}_rate") else None for n in ("d1", "d7", "d30")})
        for c in reply.cohorts])
