"""Analytics domain: shop days, report periods, what each event adds to the rollups, the reports. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.common.errors import InvalidInput

MAX_PERIOD_DAYS = 366
# Report days the shop can have data for (and date arithmetic stays far from date.min / date.max).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
DEFAULT_PERIOD_DAYS = 7

# Page views from POST /track (the batch size, shared with the gateway, is in services/common/formats.py)
# A device clock may lag (views queued while offline) or run a little fast; past these bounds
# the view is counted at the time the gateway received it instead.
CLIENT_TIME_MAX_AGE = timedelta(hours=24)
CLIENT_TIME_MAX_AHEAD = timedelta(minutes=5)

# Price bands of a line's unit price, lower bounds in fen (¥0-50, 50-100, 100-200, 200-500, 500-1000, 1000+).
PRICE_BANDS_FEN = (0, 5_000, 10_000, 20_000, 50_000, 100_000)


def plausible_view_time(client_ts: datetime | None, received_at: datetime) -> datetime:
    """When a page view counts: the device's time when plausible, else when the gateway received it."""
    if client_ts is None or not received_at - CLIENT_TIME_MAX_AGE <= client_ts <= received_at + CLIENT_TIME_MAX_AHEAD:
        return received_at
    return client_ts


def price_band(price_fen: int) -> tuple[int, int]:
    """The band (lower bound, upper bound exclusive; 0 = none) of a unit price."""
    lower = max(bound for bound in PRICE_BANDS_FEN if bound <= max(price_fen, 0))
    index = PRICE_BANDS_FEN.index(lower)
    return lower, PRICE_BANDS_FEN[index + 1] if index + 1 < len(PRICE_BANDS_FEN) else 0


@dataclass(frozen=True)
class Period:
    """Whole shop (Asia/Shanghai) days, both ends included."""

    first: date
    last: date

    @classmethod
    def parse(cls, from_date: str, to_date: str, *, today: date) -> Period:
        """From "YYYY-MM-DD" strings; missing ends default to the last 7 days up to today."""
        last = _parse_day("to", to_date) if to_date else today
        first = _parse_day("from", from_date) if from_date else last - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        if first > last:
            raise InvalidInput("PERIOD_INVALID", "from must not be after to", details={"from": "after to"})
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise InvalidInput("PERIOD_TOO_LONG", f"a period spans at most {MAX_PERIOD_DAYS} days",
                               details={"from": "too early"})
        return cls(first, last)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def _parse_day(field_name: str, value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("DATE_INVALID", f"{field_name} must be a date like 2026-11-26",
                           details={field_name: "invalid"}) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput("DATE_OUT_OF_RANGE", f"{field_name} must be between {FIRST_DAY} and {LAST_DAY}",
                           details={field_name: "out of range"})
    return day


# What one event adds to the rollups

# Kinds of per-day distinct sets: a member is counted once per day (and once per period when asked).
VISITOR = "visitor"          # device ids
VISIT = "visit"              # device id / session id
ACTIVE_USER = "active_user"  # user ids of shoppers who did something
VIEWER = "viewer"            # user ids of logged-in shoppers who viewed a page or a product (funnel step 1)
CART_USER = "cart_user"      # funnel step 2
ORDER_USER = "order_user"    # funnel step 3
PAYER = "payer"              # funnel step 4; also the paying users
FUNNEL = (VIEWER, CART_USER, ORDER_USER, PAYER)
# The fact of a registration (key: user id); its day is the user's cohort.
REGISTRATION = "user"
# Retention: a cohort's shoppers active again N days after registering, counted on the cohort's day.
RETENTION_DAYS = (1, 7, 30)


def retained_counter(days_after: int) -> str:
    return f"retained_d{days_after}"


# Distinct sets behind figures: a period's figure is the distinct members over the whole period.
DISTINCT_FIGURES = {"unique_visitors": VISITOR, "visits": VISIT, "active_users": ACTIVE_USER, "paying_users": PAYER}


# Distinct members over a range of days, without reading every member-day of the range: per set and day, how
# many members "arrived" (were in the set that day) and the day each was last in the set before it (NO_DAY_SEEN:
# not in the 365 days before, which no period of MAX_PERIOD_DAYS can reach back to). The distinct members of a
# period are exactly those arriving in it whose previous day is before it: sum(members) over first <= day <= last,
# last_seen < first. Reading that costs days x distinct last-seen days (<= 366), whatever the number of members.
NO_DAY_SEEN = date(1970, 1, 1)
LOOK_BACK_DAYS = MAX_PERIOD_DAYS - 1
# The funnel needs members in several sets at once over a period (viewed and added to cart): those follow from the
# sizes of the sets' unions (inclusion-exclusion), so every union of funnel steps is a set of its own, named
# "viewer+cart_user" (steps in FUNNEL order): a member is in it on a day when it is in any of those steps that day.
FUNNEL_SETS = tuple("+".join(k for i, k in enumerate(FUNNEL) if bits & (1 << i)) for bits in range(1, 1 << len(FUNNEL)))
RANGE_SETS = (VISITOR, VISIT, ACTIVE_USER, *FUNNEL_SETS)


def sets_of(kind: str) -> tuple[str, ...]:
    """The range sets a member of the day set `kind` is in, that day."""
    return tuple(s for s in FUNNEL_SETS if kind in s.split("+")) if kind in FUNNEL else (kind,)


def last_seen(day: date | None, on: date) -> date:
    """What an arrival on `on` records as the day before it: NO_DAY_SEEN when none, or too long ago to matter."""
    return day if day is not None and day >= on - timedelta(days=LOOK_BACK_DAYS) else NO_DAY_SEEN


@dataclass(frozen=True)
class Neighbours:
    """Around a day, a member's days in a set (after the batch's additions): the last before, the first after
    (each only within LOOK_BACK_DAYS), and whether the day itself is in it."""

    before: date | None
    after: date | None
    present: bool


def arrival_changes(new_days: Mapping[date, Neighbours]) -> dict[tuple[date, date], int]:
    """What a member's new days in a set change in its arrivals, as (day, last_seen) -> +n / -n.

    Each new day arrives after the day before it; the first old day after a run of new days now arrives after the
    run's last day instead of after the old day before the run (found by walking the run back)."""
    changes: dict[tuple[date, date], int] = {}

    def add(day: date, before: date | None, n: int) -> None:
        key = (day, last_seen(before, day))
        changes[key] = changes.get(key, 0) + n

    for day, around in new_days.items():
        add(day, around.before, 1)
        following = around.after
        if following is None or following in new_days:
            continue
        old_before = around.before
        while old_before is not None and old_before in new_days:
            old_before = new_days[old_before].before
        add(following, old_before, -1)
        add(following, day, 1)
    return {key: n for key, n in changes.items() if n}


def union_neighbours(kinds: tuple[str, ...], day: date, around: Mapping[str, Neighbours],
                     new: Mapping[str, bool]) -> tuple[Neighbours, bool]:
    """A union set's neighbours of `day` from those of its kinds, and whether the day is new in the union (in one of
    the kinds only since this batch)."""
    befores = [around[k].before for k in kinds if around[k].before is not None]
    afters = [around[k].after for k in kinds if around[k].after is not None]
    present = any(around[k].present for k in kinds)
    was_there = any(around[k].present and not new[k] for k in kinds)
    return (Neighbours(max(befores, default=None), min(afters, default=None), present),
            present and not was_there)


def _steps_named(bits: int) -> str:
    return "+".join(k for i, k in enumerate(FUNNEL) if bits & (1 << i))


_EVERY_STEP = (1 << len(FUNNEL)) - 1
# Möbius inversion over the subsets of steps: exactly(S) = sum over T within S of (-1)^|S - T| within(T).
_INVERSION = {steps: [(sub, -1 if bin(steps & ~sub).count("1") % 2 else 1) for sub in range(_EVERY_STEP + 1)
                      if sub & ~steps == 0] for steps in range(1, _EVERY_STEP + 1)}
_PROFILES = {steps: frozenset(_steps_named(steps).split("+")) for steps in range(1, _EVERY_STEP + 1)}


def funnel_profiles(sizes: Mapping[str, int]) -> dict[frozenset[str], int]:
    """How many members took exactly each combination of funnel steps, from the sizes of every union of steps:
    the members within steps T (in none of the others) are all of them less the union of the others."""
    if not any(sizes.values()):
        return {}
    unions = [0] + [sizes.get(_steps_named(bits), 0) for bits in range(1, _EVERY_STEP + 1)]
    within = [unions[_EVERY_STEP] - unions[_EVERY_STEP & ~bits] for bits in range(_EVERY_STEP + 1)]
    profiles: dict[frozenset[str], int] = {}
    for steps, terms in _INVERSION.items():
        exactly = sum(sign * within[sub] for sub, sign in terms)
        if exactly:
            profiles[_PROFILES[steps]] = exactly
    return profiles


@dataclass(frozen=True)
class Member:
    """A member of a day's distinct set, and the counters to add when it is new that day."""

    kind: str
    member: str
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Breakdown:
    """Counters added under a key of a dimension (category, brand, price_band, product, province, region)."""

    dimension: str
    key: str
    counters: Mapping[str, int]


@dataclass(frozen=True)
class Rollup:
    """What one event adds to its shop day.

    `fact` names the business fact the event reports (("order_paid", order_no)); the rollup
    applies only the first time the fact is seen, whatever its event id, so that a re-published
    event counts once. Facts and distinct sets make the result independent of arrival order.
    """

    day: date
    fact: tuple[str, str] | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    members: tuple[Member, ...] = ()
    breakdowns: tuple[Breakdown, ...] = ()


def active(user_id: int, *also: str) -> tuple[Member, ...]:
    """The members a shopper's action adds: the day's active users, and funnel steps `also`."""
    if not user_id:
        return ()
    return (Member(ACTIVE_USER, str(user_id), {"active_users": 1}),
            *(Member(kind, str(user_id), {"paying_users": 1} if kind == PAYER else {}) for kind in also))


@dataclass(frozen=True)
class SoldLine:
    product_id: int
    category_id: int
    brand_id: int
    quantity: int
    price_fen: int


def sales_breakdowns(lines: list[SoldLine]) -> tuple[Breakdown, ...]:
    """Item sales of one paid order by category, brand, price band and product; each key counts the order once."""
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for line in lines:
        keys = (("category", str(line.category_id)), ("brand", str(line.brand_id)),
                ("price_band", str(price_band(line.price_fen)[0])), ("product", str(line.product_id)))
        for key in keys:
            sums = totals.setdefault(key, {"paid_orders": 1, "quantity": 0, "sales_fen": 0})
            sums["quantity"] += line.quantity
            sums["sales_fen"] += line.quantity * line.price_fen
    return tuple(Breakdown(dimension, key, sums) for (dimension, key), sums in totals.items())


# Reports

FIGURES = ("page_views", "unique_visitors", "visits", "new_users", "active_users", "orders", "paid_orders",
           "paying_users", "gmv_fen", "refunds", "refund_fen", "cancelled_orders", "recharges", "recharge_fen",
           "new_members", "withdrawals", "withdrawal_fen", "cart_additions", "product_views")


@dataclass(frozen=True)
class Figures:
    """The shop's figures over a day or a period; counters missing from the rollups are 0."""

    counters: Mapping[str, int]

    def __getitem__(self, name: str) -> int:
        if name == "net_gmv_fen":
            return self["gmv_fen"] - self["refund_fen"]
        if name == "average_order_value_fen":
            return self["gmv_fen"] // self["paid_orders"] if self["paid_orders"] else 0
        return self.counters.get(name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: self[name] for name in (*FIGURES, "net_gmv_fen", "average_order_value_fen")}


@dataclass(frozen=True)
class DailyFigures:
    day: date
    figures: Figures


@dataclass(frozen=True)
class Overview:
    period: Period
    totals: Figures
    days: list[DailyFigures]


def period_totals(days: list[DailyFigures], distinct: Mapping[str, int]) -> Figures:
    """Sums of the daily counters, except the distinct figures, which are distinct over the period."""
    sums: dict[str, int] = {}
    for day in days:
        for name, value in day.figures.counters.items():
            sums[name] = sums.get(name, 0) + value
    return Figures({**sums, **distinct})


@dataclass(frozen=True)
class Sales:
    key: str
    paid_orders: int
    quantity: int
    sales_fen: int
    max_fen: int = 0


def ranked_sales(sums: Mapping[str, Mapping[str, int]], limit: int | None = None) -> list[Sales]:
    """Sales by key, highest sales first (ties by key, so the order is stable)."""
    rows = [Sales(key, v.get("paid_orders", 0), v.get("quantity", 0), v.get("sales_fen", 0)) for key, v in sums.items()]
    rows.sort(key=lambda s: (-s.sales_fen, -s.paid_orders, s.key))
    return rows if limit is None else rows[:limit]


def price_band_sales(sums: Mapping[str, Mapping[str, int]]) -> list[Sales]:
    """Every price band, lowest first, with zeros where nothing sold."""
    rows = []
    for lower in PRICE_BANDS_FEN:
        v = sums.get(str(lower), {})
        rows.append(Sales(str(lower), v.get("paid_orders", 0), v.get("quantity", 0), v.get("sales_fen", 0),
                          max_fen=price_band(lower)[1]))
    return rows


@dataclass(frozen=True)
class Preferences:
    period: Period
    sales_fen: int
    by_category: list[Sales]
    by_brand: list[Sales]
    by_price_band: list[Sales]
    top_products: list[Sales]


@dataclass(frozen=True)
class Region:
    province: str
    paid_orders: int
    gmv_fen: int
    gmv_share: float
    page_views: int


@dataclass(frozen=True)
class Regions:
    period: Period
    gmv_fen: int
    provinces: list[Region]


def regions(period: Period, by_province: Mapping[str, Mapping[str, int]],
            views_by_region: Mapping[str, Mapping[str, int]]) -> Regions:
    """Orders and GMV by shipping province with each one's share of GMV, and page views by visitor region."""
    gmv = sum(v.get("gmv_fen", 0) for v in by_province.values())
    rows = [Region(province, by_province.get(province, {}).get("paid_orders", 0),
                   by_province.get(province, {}).get("gmv_fen", 0),
                   round(by_province.get(province, {}).get("gmv_fen", 0) / gmv, 4) if gmv else 0.0,
                   views_by_region.get(province, {}).get("page_views", 0))
            for province in {*by_province, *views_by_region}]
    rows.sort(key=lambda r: (-r.gmv_fen, -r.page_views, r.province))
    return Regions(period, gmv, rows)


@dataclass(frozen=True)
class FunnelSteps:
    viewed: int = 0
    added_to_cart: int = 0
    ordered: int = 0
    paid: int = 0


def funnel_steps(profiles: Mapping[frozenset[str], int]) -> FunnelSteps:
    """Shoppers at each step, from how many shoppers took each combination of steps.

    A shopper counts at a step only having taken every step before it in the same period: paying
    without a view in the period (a view the day before a period starts) is not a conversion of it.
    """
    reached = [sum(n for steps, n in profiles.items() if set(FUNNEL[:i + 1]) <= steps) for i in range(len(FUNNEL))]
    return FunnelSteps(*reached)


@dataclass(frozen=True)
class Funnel:
    period: Period
    totals: FunnelSteps
    days: list[tuple[date, FunnelSteps]]


@dataclass(frozen=True)
class Cohort:
    """Shoppers who registered on `day`, and how many of them were active N days later.

    A rate is None while day + N has not ended yet (today included): it is not known yet; and on a day nobody
    registered (no cohort: 0 of 0 is no rate, not a rate of 0).
    """

    day: date
    new_users: int
    retained: Mapping[int, int]
    rates: Mapping[int, float | None]


def cohort(day: date, counters: Mapping[str, int], today: date) -> Cohort:
    size = counters.get("new_users", 0)
    retained = {n: counters.get(retained_counter(n), 0) for n in RETENTION_DAYS}
    rates = {n: round(retained[n] / size, 4) if size and day + timedelta(days=n) < today else None
             for n in RETENTION_DAYS}
    return Cohort(day, size, retained, rates)


@dataclass(frozen=True)
class Retention:
    period: Period
    cohorts: list[Cohort]


# Exports (A3): report jobs and the raw events an export of kind "events" lists

# The kinds and formats are in services/common/formats.py (REPORT_KINDS, REPORT_FORMATS), shared with the gateway.
# expired: a done report whose file was deleted after the retention period (reports.expire_reports)
QUEUED, RUNNING, DONE, FAILED, EXPIRED = "queued", "running", "done", "failed", "expired"


@dataclass(frozen=True)
class ReportJob:
    """An export asked for: queued, then running (percent 0-99), then done (100, a file) or failed (an error)."""

    id: int
    kind: str
    format: str
    period: Period
    status: str
    percent: int
    rows: int
    size_bytes: int
    file_name: str
    error: str
    attempts: int
    requested_by: int
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RawEvent:
    event_id: str
    event_type: str
    aggregate_id: str
    occurred_at: datetime
    day: date
    payload: bytes
