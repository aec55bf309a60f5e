"""Analytics use cases: applying an event's rollup, the tracking intake, and the admin reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mall.events.v1.tracking_events_pb2 import PageViewed

from services.analytics.domain import (
    ACTIVE_USER,
    DISTINCT_FIGURES,
    FUNNEL,
    FUNNEL_SETS,
    REGISTRATION,
    RETENTION_DAYS,
    DailyFigures,
    Figures,
    Funnel,
    FunnelSteps,
    Neighbours,
    Overview,
    Period,
    Preferences,
    Regions,
    Retention,
    Rollup,
    arrival_changes,
    cohort,
    funnel_profiles,
    funnel_steps,
    period_totals,
    plausible_view_time,
    price_band_sales,
    ranked_sales,
    regions,
    retained_counter,
    sets_of,
    union_neighbours,
)
from services.analytics.uow import AnalyticsUnitOfWork, RollupRepository
from services.common import formats
from services.common.db import utcnow
from services.common.errors import InvalidInput
from services.common.events import timestamp
from services.common.formats import MAX_PAGE_VIEWS_PER_BATCH, shop_day
from services.common.logs import mask_pii

DEFAULT_TOP_PRODUCTS = 10
MAX_TOP_PRODUCTS = 100


def apply_rollups(rollups: RollupRepository, batch: Sequence[Rollup]) -> int:
    """Add what a batch of events adds to the rollups, exactly as adding them one by one in order would, in a
    few statements whatever the batch size (a consumer's whole poll). Returns how many rollups applied.

    A rollup whose fact was counted before (in an earlier batch, or earlier in this one) adds nothing. A day's
    member counts its counters the first time it joins the day's set. Retention: a pair (registration,
    activity N days later) counts once, when the later of the two arrives: a registration new in this batch
    counts the activity already there (this batch's included), a new activity counts an earlier registration.
    A member new in a day's set also changes the arrivals of the range sets it is in (arrivals_of).
    """
    facts: dict[tuple[str, str], date] = {}
    for rollup in batch:
        if rollup.fact is not None:
            facts.setdefault(rollup.fact, rollup.day)
    claimed = rollups.claim_facts(facts) if facts else set()
    applying: list[Rollup] = []
    for rollup in batch:
        if rollup.fact is None:
            applying.append(rollup)
        elif rollup.fact in claimed:
            claimed.discard(rollup.fact)  # a second event of the same fact, later in the batch, adds nothing
            applying.append(rollup)
    counters: dict[tuple[date, str], int] = {}

    def count(day: date, values: Mapping[str, int]) -> None:
        for name, value in values.items():
            counters[day, name] = counters.get((day, name), 0) + value

    members: dict[tuple[str, date, str], Mapping[str, int]] = {}
    sums: dict[tuple[str, date, str, str], int] = {}
    for rollup in applying:
        count(rollup.day, rollup.counters)
        for member in rollup.members:
            members.setdefault((member.kind, rollup.day, member.member), member.counters)
        for b in rollup.breakdowns:
            for name, value in b.counters.items():
                sums[b.dimension, rollup.day, b.key, name] = sums.get((b.dimension, rollup.day, b.key, name), 0) + value
    joined = rollups.add_members(list(members)) if members else set()
    for key in joined:
        count(key[1], members[key])
    registrations = {rollup.fact[1]: rollup.day for rollup in applying
                     if rollup.fact is not None and rollup.fact[0] == REGISTRATION}
    # Before reading what other batches wrote of these members: a registration and its shopper's activity applied
    # at once in two batches would each miss the other's uncommitted rows, and the retention pair neither count.
    # Every member this batch reads or moves the arrivals of, in one go (arrivals_of's are among them).
    rollups.take_turns({member for _, _, member in joined} | set(registrations))
    if registrations:
        # Activity that arrived before the registration (or with it): retention counts it now.
        wanted = [(ACTIVE_USER, day + timedelta(days=n), user) for user, day in registrations.items()
                  for n in RETENTION_DAYS]
        for _, active_day, user in rollups.present_members(wanted):
            count(registrations[user], {retained_counter((active_day - registrations[user]).days): 1})
    active_later = [(day, user) for kind, day, user in joined if kind == ACTIVE_USER and user not in registrations]
    if active_later:
        registered = rollups.fact_days(REGISTRATION, {user for _, user in active_later})
        for day, user in active_later:
            cohort_day = registered.get(user)
            if cohort_day is not None and (day - cohort_day).days in RETENTION_DAYS:
                count(cohort_day, {retained_counter((day - cohort_day).days): 1})
    arrivals = arrivals_of(rollups, joined) if joined else {}
    if counters:
        rollups.add_counters(counters)
    if sums:
        rollups.add_breakdowns(sums)
    if arrivals:
        rollups.add_arrivals(arrivals)
    return len(applying)


def arrivals_of(rollups: RollupRepository, joined: set[tuple[str, date, str]]) -> dict[tuple[str, date, date], int]:
    """What the members new in their day's set change in the arrivals of the range sets (domain.RANGE_SETS)."""
    wanted = {(kind, day, member) for joined_kind, day, member in joined
              for kind in (FUNNEL if joined_kind in FUNNEL else (joined_kind,))}
    around = rollups.neighbour_days(sorted(wanted))
    new_days: dict[tuple[str, str], dict[date, Neighbours]] = {}
    for joined_kind, day, member in joined:
        for range_set in sets_of(joined_kind):
            kinds = tuple(range_set.split("+"))
            if len(kinds) == 1:
                new_days.setdefault((range_set, member), {})[day] = around[range_set, day, member]
                continue
            union, new = union_neighbours(kinds, day, {k: around[k, day, member] for k in kinds},
                                          {k: (k, day, member) in joined for k in kinds})
            if new:
                new_days.setdefault((range_set, member), {})[day] = union
    changes: dict[tuple[str, date, date], int] = {}
    for (range_set, _), days in new_days.items():
        for (day, seen), n in arrival_changes(days).items():
            changes[range_set, day, seen] = changes.get((range_set, day, seen), 0) + n
    return {key: n for key, n in changes.items() if n}


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
    # A region is kept by its province's full name, as addresses (hence orders) name it: free text, or short and full
    # names side by side, would give the regions report a row per spelling, none matching a province's orders.
    regions = [formats.province_full_name(view.region) if view.region else "" for view in views]
    unknown = {f"views.{i}.region": f"must be {formats.PROVINCE_RULE}, or empty"
               for i, region in enumerate(regions) if region is None}
    if unknown:
        raise InvalidInput("REGION_INVALID", "a region is not a province", details=unknown)
    received_at = now or utcnow()
    with uow:
        for view, region in zip(views, regions, strict=True):
            # Page paths carry query strings: a phone or ID number in one is masked before it is kept.
            event = PageViewed(device_id=device_id, session_id=view.session_id, user_id=user_id,
                               page=mask_pii(view.page), referrer=mask_pii(view.referrer), region=region)
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
        members = uow.rollups.arrivals(tuple(DISTINCT_FIGURES.values()), period)
        distinct = {name: members[kind].get(None, 0) for name, kind in DISTINCT_FIGURES.items()}
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
        sizes = uow.rollups.arrivals(FUNNEL_SETS, period)

    def steps(day: date | None) -> FunnelSteps:
        return funnel_steps(funnel_profiles({s: sizes[s].get(day, 0) for s in FUNNEL_SETS}))

    return Funnel(period=period, totals=steps(None), days=[(day, steps(day)) for day in period.days()])


def get_retention(uow: AnalyticsUnitOfWork, *, from_date: str, to_date: str, today: date | None = None) -> Retention:
    """Cohorts by registration day over the period, with their D1 / D7 / D30 retention."""
    today = today or shop_day(utcnow())
    period = report_period(from_date, to_date, today)
    with uow:
        counters = uow.rollups.counters(period)
    return Retention(period=period, cohorts=[cohort(day, counters.get(day, {}), today) for day in period.days()])
