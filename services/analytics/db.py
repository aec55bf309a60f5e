"""Analytics tables (raw events, daily rollups, distinct sets) and the SQL unit of work."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from services.analytics.domain import (
    DONE,
    EXPIRED,
    LOOK_BACK_DAYS,
    QUEUED,
    RUNNING,
    Neighbours,
    Period,
    RawEvent,
    ReportJob,
)
from services.analytics.service import apply_rollups
from services.analytics.uow import AnalyticsUnitOfWork
from services.common.db import BigId, UTCDateTime, advisory_key, integer_sum
from services.common.events import TOPICS
from services.common.uow import SqlUnitOfWork

metadata = MetaData()

# The business events the ledger exports read (reports `orders` and `money`): few next to the page views, so they
# have indexes of their own, partial ones that cost nothing when a page view is kept.
ORDER_FOLLOW_UPS = ("order-paid", "order-cancelled", "order-refunded")
LEDGER_EVENTS = ("order-created", *ORDER_FOLLOW_UPS, "member-recharged", "member-withdrawn", "late-payment-received",
                 "late-payment-refunded", "member-plan-subscribed", "refund-paid-twice")
assert set(LEDGER_EVENTS) <= set(TOPICS)


def one_of(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """`column IN ('a', 'b')` with the values written out, as in a partial index's condition: a planner matches a
    query to such an index only when it can see that the query's values are among the index's (PostgreSQL's
    generic plan of a prepared statement cannot see bound parameters). For constants of this code only."""
    assert all(value.replace("-", "").isalnum() for value in values)
    return column.in_([literal_column(f"'{value}'") for value in values])


raw_events = Table(
    "raw_events", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("aggregate_id", String(128), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("day", Date, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_raw_events_day_type", "day", "event_type"),
    Index("ix_raw_events_day_id", "day", "event_id"),
    # A period's ledger events in time order (keyset pages), and an order's later events by its number.
    Index("ix_raw_events_ledger", "day", "occurred_at", "event_id",
          postgresql_where=one_of(column("event_type"), LEDGER_EVENTS),
          sqlite_where=one_of(column("event_type"), LEDGER_EVENTS)),
    Index("ix_raw_events_order_follow_ups", "aggregate_id",
          postgresql_where=one_of(column("event_type"), ORDER_FOLLOW_UPS),
          sqlite_where=one_of(column("event_type"), ORDER_FOLLOW_UPS)),
)

daily_counters = Table(
    "daily_counters", metadata,
    Column("day", Date, nullable=False),
    Column("metric", String(32), nullable=False),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "metric", name="pk_daily_counters"),
)

daily_breakdowns = Table(
    "daily_breakdowns", metadata,
    Column("dimension", String(16), nullable=False),
    Column("day", Date, nullable=False),
    Column("key", String(64), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("dimension", "day", "key", "metric", name="pk_daily_breakdowns"),
)

daily_members = Table(
    "daily_members", metadata,
    Column("kind", String(16), nullable=False),
    Column("day", Date, nullable=False),
    Column("member", String(160), nullable=False),
    PrimaryKeyConstraint("kind", "day", "member", name="pk_daily_members"),
    # A member's days in a set, for the arrivals (the day before and after a new one).
    Index("ix_daily_members_member", "kind", "member", "day"),
)

# Per range set and day, the members in it that day by the day each was last in it before (domain.NO_DAY_SEEN):
# a period's distinct members without reading its member-days (domain.RANGE_SETS, service.arrivals_of).
daily_arrivals = Table(
    "daily_arrivals", metadata,
    Column("kind", String(48), nullable=False),
    Column("day", Date, nullable=False),
    Column("last_seen", Date, nullable=False),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("kind", "day", "last_seen", name="pk_daily_arrivals"),
)

counted_facts = Table(
    "counted_facts", metadata,
    Column("kind", String(16), nullable=False),
    Column("key", String(64), nullable=False),
    Column("day", Date, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_counted_facts"),
)

report_jobs = Table(
    "report_jobs", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("format", String(8), nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("percent", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("file_name", String(128), nullable=False),
    Column("error", String(256), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("requested_by", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'expired')", name="ck_report_jobs_status"),
    CheckConstraint("percent BETWEEN 0 AND 100", name="ck_report_jobs_percent"),
    CheckConstraint("first_day <= last_day", name="ck_report_jobs_period"),
    Index("ix_report_jobs_status", "status", "id"),
    Index("ix_report_jobs_finished", "status", "finished_at"),
    Index("ix_report_jobs_requester", "requested_by", "id"),
)

# Who downloaded which export, when (reports.read_report): a download is a read of its file from offset 0, which is
# where the gateway, the one client of this service, starts each (migration 0012). Ids only.
report_downloads = Table(
    "report_downloads", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("report_id", BigInteger, ForeignKey("report_jobs.id"), nullable=False),
    Column("actor_id", BigInteger, nullable=False),
    Column("downloaded_at", UTCDateTime, nullable=False),
    Index("ix_report_downloads_report_id", "report_id", "id"),
    Index("ix_report_downloads_actor_at", "actor_id", "downloaded_at"),
)

# What `python -m services.analytics backup` copies: the raw events and everything built from them.
BACKUP_TABLES = (raw_events, daily_counters, daily_breakdowns, daily_members, daily_arrivals, counted_facts)


class SqlRollups:
    """The rollups in SQL; counters are upserts (value + n), so concurrent consumers never lose an increment."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._postgresql = session.get_bind().dialect.name == "postgresql"

    def add_raw_events(self, events: Sequence[RawEvent]) -> None:
        rows = [{"event_id": e.event_id, "event_type": e.event_type, "aggregate_id": e.aggregate_id[:128],
                 "occurred_at": e.occurred_at, "day": e.day, "payload": e.payload} for e in events]
        if rows:
            statement, params = self._insert(raw_events, sorted(rows, key=lambda row: row["event_id"]))
            self.session.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]), params)

    def claim_facts(self, facts: Mapping[tuple[str, str], date]) -> set[tuple[str, str]]:
        stored = {(kind, key[:64]): (kind, key) for kind, key in facts}
        rows = [{"kind": kind, "key": key, "day": facts[stored[kind, key]]} for kind, key in stored]
        return {stored[kind, key] for kind, key in self._new(counted_facts, ["kind", "key"], rows)}

    def add_members(self, members: Sequence[tuple[str, date, str]]) -> set[tuple[str, date, str]]:
        stored: dict[tuple[str, date, str], tuple[str, date, str]] = {}
        for kind, day, member in members:
            stored.setdefault((kind, day, member[:160]), (kind, day, member))
        rows = [{"kind": kind, "day": day, "member": member} for kind, day, member in stored]
        return {stored[key] for key in self._new(daily_members, ["kind", "day", "member"], rows)}

    def present_members(self, members: Sequence[tuple[str, date, str]]) -> set[tuple[str, date, str]]:
        wanted = set(members)
        found: set[tuple[str, date, str]] = set()
        for kind in {kind for kind, _, _ in wanted}:
            of_kind = [(day, member) for k, day, member in wanted if k == kind]
            rows = self.session.execute(select(daily_members.c.day, daily_members.c.member).where(
                daily_members.c.kind == kind, daily_members.c.day.in_({day for day, _ in of_kind}),
                daily_members.c.member.in_({member for _, member in of_kind})))
            found |= {(kind, day, member) for day, member in rows} & wanted
        return found

    def fact_days(self, kind: str, keys: Collection[str]) -> dict[str, date]:
        rows = self.session.execute(select(counted_facts.c.key, counted_facts.c.day).where(
            counted_facts.c.kind == kind, counted_facts.c.key.in_(list(keys))))
        return {key: day for key, day in rows}

    def add_counters(self, counters: Mapping[tuple[date, str], int]) -> None:
        self._add(daily_counters, ["day", "metric"],
                  [{"day": day, "metric": metric, "value": value} for (day, metric), value in counters.items()])

    def add_breakdowns(self, sums: Mapping[tuple[str, date, str, str], int]) -> None:
        truncated: dict[tuple[str, date, str, str], int] = {}
        for (dimension, day, key, metric), value in sums.items():
            truncated[dimension, day, key[:64], metric] = truncated.get((dimension, day, key[:64], metric), 0) + value
        self._add(daily_breakdowns, ["dimension", "day", "key", "metric"],
                  [{"dimension": d, "day": day, "key": k, "metric": m, "value": v}
                   for (d, day, k, m), v in truncated.items()])

    def counters(self, period: Period) -> dict[date, dict[str, int]]:
        found: dict[date, dict[str, int]] = {}
        for row in self.session.execute(select(daily_counters).where(
                daily_counters.c.day.between(period.first, period.last))):
            found.setdefault(row.day, {})[row.metric] = row.value
        return found

    def take_turns(self, members: Collection[str]) -> None:
        if not self._postgresql or not members:
            return
        # Transaction-scoped advisory locks on the members (db.serialize_on, for many at once), taken in one order
        # (no deadlock): a concurrent batch touching one of them waits here until this one commits, then reads
        # (READ COMMITTED). Two members sharing a key only wait for each other; a lock held already is taken again
        # at once (they stack until the transaction ends).
        keys = sorted({advisory_key(f"analytics-member:{member[:160]}") for member in members})
        self.session.execute(text(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY k) AS s"),
            {"keys": keys})

    def neighbour_days(self, members: Sequence[tuple[str, date, str]]) -> dict[tuple[str, date, str], Neighbours]:
        stored = {(kind, day, member[:160]): (kind, day, member) for kind, day, member in members}
        if not stored:
            return {}
        back, ahead = timedelta(days=LOOK_BACK_DAYS), timedelta(days=LOOK_BACK_DAYS)
        rows = [{"kind": kind, "member": member, "day": day, "lo": day - back, "hi": day + ahead}
                for kind, day, member in sorted(stored)]
        found: dict[tuple[str, date, str], Neighbours] = {}
        chunk = len(rows) if self._postgresql else 200  # SQLite: a compound SELECT of at most 500 terms
        for start in range(0, len(rows), chunk):
            wanted = self._rows_source(daily_members, rows[start:start + chunk],
                                       {"lo": daily_members.c.day.type, "hi": daily_members.c.day.type})
            same = and_(daily_members.c.kind == wanted.c.kind, daily_members.c.member == wanted.c.member)
            before = select(func.max(daily_members.c.day)).where(
                same, daily_members.c.day < wanted.c.day, daily_members.c.day >= wanted.c.lo).scalar_subquery()
            after = select(func.min(daily_members.c.day)).where(
                same, daily_members.c.day > wanted.c.day, daily_members.c.day <= wanted.c.hi).scalar_subquery()
            present = select(daily_members.c.day).where(same, daily_members.c.day == wanted.c.day).exists()
            for row in self.session.execute(select(wanted.c.kind, wanted.c.member, wanted.c.day, before, after,
                                                   present)):
                found[stored[row[0], row[2], row[1]]] = Neighbours(row[3], row[4], bool(row[5]))
        return found

    def add_arrivals(self, changes: Mapping[tuple[str, date, date], int]) -> None:
        self._add(daily_arrivals, ["kind", "day", "last_seen"],
                  [{"kind": kind, "day": day, "last_seen": seen, "value": n} for (kind, day, seen), n in changes.items()])

    def arrivals(self, sets: tuple[str, ...], period: Period) -> dict[str, dict[date | None, int]]:
        found: dict[str, dict[date | None, int]] = {s: {} for s in sets}
        a = daily_arrivals.c
        rows = self.session.execute(
            select(a.kind, a.day, integer_sum(a.value), integer_sum(case((a.last_seen < period.first, a.value), else_=0)))
            .where(a.kind.in_(sets), a.day.between(period.first, period.last)).group_by(a.kind, a.day))
        for kind, day, members, first_in_period in rows:
            found[kind][day] = members
            found[kind][None] = found[kind].get(None, 0) + first_in_period
        return found

    def distinct_members(self, kinds: tuple[str, ...], period: Period) -> dict[str, int]:
        """Distinct members over the period of each day set `kinds`, read from every member-day of the period:
        what the arrivals answer without that, kept to check them against (tests, and by hand)."""
        # One statement for every kind: a dashboard's overview is one round trip here, not four. GROUP BY, not
        # COUNT(DISTINCT): PostgreSQL hashes the (kind, member) pairs instead of sorting every member-day row
        # (half the time over 90 days of 1M events).
        pairs = (select(daily_members.c.kind).where(daily_members.c.kind.in_(kinds),
                                                   daily_members.c.day.between(period.first, period.last))
                 .group_by(daily_members.c.kind, daily_members.c.member).subquery())
        rows = self.session.execute(select(pairs.c.kind, func.count()).group_by(pairs.c.kind))
        return {kind: 0 for kind in kinds} | {kind: count for kind, count in rows}

    def breakdowns(self, dimensions: tuple[str, ...], period: Period) -> dict[str, dict[str, dict[str, int]]]:
        found: dict[str, dict[str, dict[str, int]]] = {dimension: {} for dimension in dimensions}
        rows = self.session.execute(
            select(daily_breakdowns.c.dimension, daily_breakdowns.c.key, daily_breakdowns.c.metric,
                   integer_sum(daily_breakdowns.c.value))
            .where(daily_breakdowns.c.dimension.in_(dimensions),
                   daily_breakdowns.c.day.between(period.first, period.last))
            .group_by(daily_breakdowns.c.dimension, daily_breakdowns.c.key, daily_breakdowns.c.metric))
        for dimension, key, metric, value in rows:
            found[dimension].setdefault(key, {})[metric] = value
        return found

    def step_profiles(self, kinds: tuple[str, ...], period: Period) -> dict[date | None, dict[frozenset[str], int]]:
        """How many members are in each combination of the day sets `kinds`, per day and (key None) over the period,
        read from every member-day of the period: the reference for the funnel from the arrivals."""
        # Each member's combination of sets as a bit mask (bit i: in kinds[i]), per day and over the period.
        in_range = and_(daily_members.c.kind.in_(kinds), daily_members.c.day.between(period.first, period.last))
        mask = sum(func.max(case((daily_members.c.kind == kind, 1 << i), else_=0)) for i, kind in enumerate(kinds))
        found: dict[date | None, dict[frozenset[str], int]] = {}
        for by_day in (True, False):
            keys = [daily_members.c.day, daily_members.c.member] if by_day else [daily_members.c.member]
            per_member = select(*keys[:-1], mask.label("mask")).where(in_range).group_by(*keys).subquery()
            outer_keys = [per_member.c.day] if by_day else []
            rows = self.session.execute(
                select(*outer_keys, per_member.c.mask, func.count()).group_by(*outer_keys, per_member.c.mask))
            for row in rows:
                day, bits, count = (row[0], row[1], row[2]) if by_day else (None, row[0], row[1])
                steps = frozenset(kind for i, kind in enumerate(kinds) if bits & (1 << i))
                found.setdefault(day, {})[steps] = count
        return found

    def raw_event_count(self, period: Period) -> int:
        return self.session.execute(select(func.count()).select_from(raw_events).where(
            raw_events.c.day.between(period.first, period.last))).scalar_one()

    def raw_events(self, period: Period, *, after: tuple[date, str] | None = None, limit: int) -> list[RawEvent]:
        # Keyset pages on (day, event_id) (index ix_raw_events_day_id): each page is a short read of its own.
        query = select(raw_events).where(raw_events.c.day.between(period.first, period.last))
        if after is not None:
            query = query.where(tuple_(raw_events.c.day, raw_events.c.event_id) > tuple_(*after))
        rows = self.session.execute(query.order_by(raw_events.c.day, raw_events.c.event_id).limit(limit))
        return [_raw(row) for row in rows]

    def ledger_event_count(self, period: Period, types: Sequence[str]) -> int:
        return self.session.execute(select(func.count()).select_from(raw_events).where(
            one_of(raw_events.c.event_type, types), raw_events.c.day.between(period.first, period.last))).scalar_one()

    def ledger_events(self, period: Period, types: Sequence[str], *, after: tuple[date, datetime, str] | None = None,
                      limit: int) -> list[RawEvent]:
        # Keyset pages on (day, occurred_at, event_id), index ix_raw_events_ledger (types: some of LEDGER_EVENTS).
        key = (raw_events.c.day, raw_events.c.occurred_at, raw_events.c.event_id)
        query = select(raw_events).where(one_of(raw_events.c.event_type, types),
                                         raw_events.c.day.between(period.first, period.last))
        if after is not None:
            query = query.where(tuple_(*key) > tuple_(*after))
        return [_raw(row) for row in self.session.execute(query.order_by(*key).limit(limit))]

    def order_follow_ups(self, order_nos: Collection[str]) -> list[RawEvent]:
        # Index ix_raw_events_order_follow_ups: the order service keys an order's events by its number.
        if not order_nos:
            return []
        rows = self.session.execute(select(raw_events).where(
            one_of(raw_events.c.event_type, ORDER_FOLLOW_UPS), raw_events.c.aggregate_id.in_(list(order_nos)))
            .order_by(raw_events.c.occurred_at, raw_events.c.event_id))
        return [_raw(row) for row in rows]

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
        """An INSERT of many rows in one short statement, and its parameters.

        PostgreSQL: INSERT .. SELECT unnest(array), .. with one array per column, whatever the number of rows.
        Elsewhere (SQLite in unit tests): executemany, which SQLAlchemy sends as multi-row VALUES. Not .values(rows):
        that compiles a new statement of thousands of parameters each time, which costs more than the database's
        work, and so does psycopg's parsing of such a statement.
        """
        if not self._postgresql:
            return sqlite.insert(table), rows
        names = list(rows[0])
        source = select(*(func.unnest(cast(bindparam(f"all_{name}", [row[name] for row in rows]),
                                           postgresql.ARRAY(table.c[name].type))) for name in names))
        return postgresql.insert(table).from_select(names, source), None

    def _rows_source(self, table: Table, rows: list[dict[str, Any]], types: Mapping[str, Any]) -> Any:
        """The rows (each with the same keys) as a subquery to select from: unnest(arrays) on PostgreSQL, a
        UNION ALL of one-row SELECTs elsewhere. A key that is not a column of `table` has its type in `types`."""
        names = list(rows[0])
        kinds = {name: types[name] if name in types else table.c[name].type for name in names}
        if self._postgresql:
            return select(*(func.unnest(cast(bindparam(f"rows_{name}", [row[name] for row in rows]),
                                             postgresql.ARRAY(kinds[name]))).label(name) for name in names)).subquery()
        return union_all(*(select(*(literal(row[name], kinds[name]).label(name) for name in names))
                           for row in rows)).subquery()

    def _new(self, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert the rows whose keys are not there yet; returns the keys of those inserted."""
        # RETURNING, not rowcount: psycopg reports -1 rows for INSERT .. ON CONFLICT DO NOTHING.
        # Rows sorted by key: concurrent transactions then lock keys in one order and do not deadlock.
        if not rows:
            return []
        statement, params = self._insert(table, sorted(rows, key=lambda row: tuple(str(row[k]) for k in keys)))
        found = self.session.execute(statement.on_conflict_do_nothing(index_elements=keys).returning(
            *(table.c[k] for k in keys)), params)
        return [tuple(row) for row in found]

    def _add(self, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
        """value += n for each row; rows sorted by key, so that concurrent transactions lock rows in one order
        and do not deadlock (and each key at most once, as one statement must)."""
        if not rows:
            return
        statement, params = self._insert(table, sorted(rows, key=lambda row: tuple(str(row[k]) for k in keys)))
        self.session.execute(statement.on_conflict_do_update(
            index_elements=keys, set_={"value": table.c.value + statement.excluded.value}), params)


class SqlReportJobs:
    """Report jobs; a runner claims the oldest queued one (or one whose runner stopped beating) under a row lock."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, kind: str, format: str, period: Period, requested_by: int, now: datetime) -> ReportJob:
        job_id = self.session.execute(report_jobs.insert().values(
            kind=kind, format=format, first_day=period.first, last_day=period.last, status=QUEUED, percent=0,
            rows=0, size_bytes=0, file_name="", error="", attempts=0, requested_by=requested_by,
            created_at=now).returning(report_jobs.c.id)).scalar_one()
        job = self.get(job_id)
        assert job is not None
        return job

    def under_way(self, requested_by: int) -> int:
        return self.session.execute(select(func.count()).select_from(report_jobs).where(
            report_jobs.c.requested_by == requested_by, report_jobs.c.status.in_((QUEUED, RUNNING)))).scalar_one()

    def of_requester(self, requested_by: int, kinds: Sequence[str], *, offset: int,
                     limit: int) -> tuple[list[ReportJob], int]:
        """A page of the jobs `requested_by` asked for, of `kinds`, newest first (ix_report_jobs_requester), and
        how many there are."""
        mine = (report_jobs.c.requested_by == requested_by) & report_jobs.c.kind.in_(kinds)
        rows = self.session.execute(select(report_jobs).where(mine).order_by(report_jobs.c.id.desc())
                                    .offset(offset).limit(limit)).all()
        total = self.session.execute(select(func.count()).select_from(report_jobs).where(mine)).scalar_one()
        return [_job(row) for row in rows], total

    def get(self, job_id: int) -> ReportJob | None:
        row = self.session.execute(select(report_jobs).where(report_jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def add_download(self, job_id: int, *, actor_id: int, now: datetime) -> None:
        self.session.execute(report_downloads.insert().values(report_id=job_id, actor_id=actor_id, downloaded_at=now))

    def downloads(self, job_id: int) -> list[tuple[int, datetime]]:
        return [(row.actor_id, row.downloaded_at) for row in self.session.execute(
            select(report_downloads.c.actor_id, report_downloads.c.downloaded_at)
            .where(report_downloads.c.report_id == job_id).order_by(report_downloads.c.id))]

    def claim(self, *, now: datetime, stale_before: datetime) -> ReportJob | None:
        claimable = (report_jobs.c.status == QUEUED) | (
            (report_jobs.c.status == RUNNING) & (report_jobs.c.heartbeat_at < stale_before))
        row = self.session.execute(select(report_jobs).where(claimable).order_by(report_jobs.c.id).limit(1)
                                   .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        self.session.execute(update(report_jobs).where(report_jobs.c.id == row.id).values(
            status=RUNNING, percent=0, rows=0, attempts=report_jobs.c.attempts + 1, heartbeat_at=now))
        return self.get(row.id)

    def update(self, job_id: int, **values: Any) -> None:
        self.session.execute(update(report_jobs).where(report_jobs.c.id == job_id).values(**values))

    def update_running(self, job_id: int, *, attempt: int | None, **values: Any) -> bool:
        running = (report_jobs.c.id == job_id) & (report_jobs.c.status == RUNNING)
        if attempt is not None:
            running &= report_jobs.c.attempts == attempt
        found = self.session.execute(update(report_jobs).where(running).values(**values).returning(report_jobs.c.id))
        return found.first() is not None

    def expire(self, *, finished_before: datetime) -> list[ReportJob]:
        rows = self.session.execute(select(report_jobs).where(
            report_jobs.c.status == DONE, report_jobs.c.finished_at < finished_before)
            .order_by(report_jobs.c.id).with_for_update(skip_locked=True)).all()
        if rows:
            self.session.execute(update(report_jobs).where(report_jobs.c.id.in_([row.id for row in rows]))
                                 .values(status=EXPIRED))
        return [_job(row) for row in rows]


    def files(self, job_ids: Collection[int]) -> dict[int, tuple[str, str]]:
        rows = self.session.execute(select(report_jobs.c.id, report_jobs.c.status, report_jobs.c.file_name)
                                    .where(report_jobs.c.id.in_(list(job_ids)))).all()
        return {row.id: (row.status, row.file_name) for row in rows}


def _raw(row: Any) -> RawEvent:
    return RawEvent(row.event_id, row.event_type, row.aggregate_id, row.occurred_at, row.day, row.payload)


def _job(row: Any) -> ReportJob:
    return ReportJob(id=row.id, kind=row.kind, format=row.format, period=Period(row.first_day, row.last_day),
                     status=row.status, percent=row.percent, rows=row.rows, size_bytes=row.size_bytes,
                     file_name=row.file_name, error=row.error, attempts=row.attempts, requested_by=row.requested_by,
                     created_at=row.created_at, finished_at=row.finished_at)


class SqlAnalyticsUnitOfWork(SqlUnitOfWork, AnalyticsUnitOfWork):
    rollups: SqlRollups
    reports: SqlReportJobs

    def __enter__(self) -> Self:
        super().__enter__()
        self.take_events()  # whatever a rolled-back use of this unit of work left
        self.rollups = SqlRollups(self.session)
        self.reports = SqlReportJobs(self.session)
        return self

    def commit(self) -> None:
        pending = self.take_events()
        if pending:
            self.rollups.add_raw_events([raw for raw, _ in pending])
            apply_rollups(self.rollups, [rollup for _, rollup in pending])
        super().commit()
