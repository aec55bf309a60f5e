"""Analytics use cases: applying an event's rollup, the tracking intake, and the admin reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mall.events.v1.tracking_events_pb2 import PageViewed

from services.analytics.domain import (
    ACTIVE_USER,
    DISTINCT_FIGURES,
    FUNNEL,
    REGISTRATION,
    RETENTION_DAYS,
    DailyFigures,
    Figures,
    Funnel,
    Overview,
    Period,
    Preferences,
    Regions,
    Retention,
    Rollup,
    cohort,
    funnel_steps,
    period_totals,
    plausible_view_time,
    price_band_sales,
    ranked_sales,
    regions,
    retained_counter,
    shop_day,
)
from services.analytics.uow import AnalyticsUnitOfWork, RollupRepository
from services.common.db import utcnow
from services.common.errors import InvalidInput
from services.common.events import timestamp
from services.common.formats import MAX_PAGE_VIEWS_PER_BATCH

DEFAULT_TOP_PRODUCTS = 10
MAX_TOP_PRODUCTS = 100


def apply_rollup(rollups: RollupRepository, rollup: Rollup) -> bool:
    """Add what one event adds to the rollups; False (and nothing added) when its fact was counted before."""
    if rollup.fact is not None and not rollups.claim_fact(*rollup.fact, rollup.day):
        return False
    counters = dict(rollup.counters)
    if rollup.fact is not None and rollup.fact[0] == REGISTRATION:
        # Activity that arrived before the registration: retention counts it now.
        for n in RETENTION_DAYS:
            if rollups.has_member(ACTIVE_USER, rollup.day + timedelta(days=n), rollup.fact[1]):
                counters[retained_counter(n)] = counters.get(retained_counter(n), 0) + 1
    for member in rollup.members:
        if rollups.add_member(member.kind, rollup.day, member.member):
            for name, value in member.counters.items():
                counters[name] = counters.get(name, 0) + value
            if member.kind == ACTIVE_USER:
                _count_retention(rollups, member.member, rollup.day)
    if counters:
        rollups.add_counters(rollup.day, counters)
    if rollup.breakdowns:
        rollups.add_breakdowns(rollup.day, rollup.breakdowns)
    return True


def _count_retention(rollups: RollupRepository, user_id: str, active_day: date) -> None:
    """A shopper active N days after registering adds to the cohort's retained_dN (each pair once: the later
    of the registration and the activity to arrive counts it)."""
    registered = rollups.fact_day(REGISTRATION, user_id)
    if registered is not None and (active_day - registered).days in RETENTION_DAYS:
        rollups.add_counters(registered, {retained_counter((active_day - registered).days): 1})


@dataclass(frozen=True)
class PageViewInput:
    session_id: str
    page: str
    referrer: str
    client_ts: datetime | None
    region: str


def track_page_views(uow: AnalyticsUnitOfWork, *, device_id: str, user_id: int, views: list[PageViewInput],
                     now: datetime | None = None) -> int:
    """Accept a batch of page views: each becomes a page-viewed event in the outbox, all in one transaction."""
    if not device_id:
        raise InvalidInput("DEVICE_ID_REQUIRED", "a device id is required", details={"device_id": "required"})
    if not views or len(views) > MAX_PAGE_VIEWS_PER_BATCH:
        raise InvalidInput("BATCH_SIZE_INVALID", f"send 1 to {MAX_PAGE_VIEWS_PER_BATCH} page views at a time",
                           details={"events": "size"})
    received_at = now or utcnow()
    with uow:
        for view in views:
            event = PageViewed(device_id=device_id, session_id=view.session_id, user_id=user_id, page=view.page,
                               referrer=view.referrer, region=view.region)
            if view.client_ts is not None:
                event.client_ts.CopyFrom(timestamp(view.client_ts))
            event.received_at.CopyFrom(timestamp(received_at))
            event.viewed_at.CopyFrom(timestamp(plausible_view_time(view.client_ts, received_at)))
            uow.publish(event, aggregate_id=device_id)
        uow.commit()
    return len(views)


def report_period(from_date: str, to_date: str, today: date | None = None) -> Period:
    """The period asked for; missing ends default to the last 7 days up to today (a Shanghai day)."""
    return Period.parse(from_date, to_date, today=today or shop_day(utcnow()))


def get_overview(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str, today: date | None = None) -> Overview:
    """Figures per shop day over the period (default: the last 7 days) and for the whole period."""
    period = report_period(from_date, to_date, today)
    with uow:
        counters = uow.rollups.counters(period)
        days = [DailyFigures(day, Figures(counters.get(day, {}))) for day in period.days()]
        members = uow.rollups.distinct_members(tuple(DISTINCT_FIGURES.values()), period)
        distinct = {name: members[kind] for name, kind in DISTINCT_FIGURES.items()}
    return Overview(period=period, totals=period_totals(days, distinct), days=days)


def get_purchase_preferences(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str, top: int = 0,
                             today: date | None = None) -> Preferences:
    """Item sales of paid orders by category, brand, price band, and the top products."""
    if not 0 <= top <= MAX_TOP_PRODUCTS:
        raise InvalidInput("TOP_INVALID", f"top is 1 to {MAX_TOP_PRODUCTS}", details={"top": "out of range"})
    period = report_period(from_date, to_date, today)
    with uow:
        sums = uow.rollups.breakdowns(("category", "brand", "price_band", "product"), period)
    return Preferences(
        period=period, sales_fen=sum(v.get("sales_fen", 0) for v in sums["price_band"].values()),
        by_category=ranked_sales(sums["category"]), by_brand=ranked_sales(sums["brand"]),
        by_price_band=price_band_sales(sums["price_band"]),
        top_products=ranked_sales(sums["product"], top or DEFAULT_TOP_PRODUCTS))


def get_regional_distribution(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str,
                              today: date | None = None) -> Regions:
    """Paid orders and GMV by shipping province (with shares), page views by visitor region."""
    period = report_period(from_date, to_date, today)
    with uow:
        sums = uow.rollups.breakdowns(("province", "region"), period)
    return regions(period, sums["province"], sums["region"])


def get_funnel(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str, today: date | None = None) -> Funnel:
    """Shoppers who viewed, then added to cart, then ordered, then paid: per day and over the period."""
    period = report_period(from_date, to_date, today)
    with uow:
        profiles = uow.rollups.step_profiles(FUNNEL, period)
    return Funnel(period=period, totals=funnel_steps(profiles.get(None, {})),
                  days=[(day, funnel_steps(profiles.get(day, {}))) for day in period.days()])


def get_retention(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str, today: date | None = None) -> Retention:
    """Cohorts by registration day over the period, with their D1 / D7 / D30 retention."""
    today = today or shop_day(utcnow())
    period = report_period(from_date, to_date, today)
    with uow:
        counters = uow.rollups.counters(period)
    return Retention(period=period, cohorts=[cohort(day, counters.get(day, {}), today) for day in period.days()])
