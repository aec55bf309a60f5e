"""What the analytics use cases need from storage: the rollups repository and the analytics unit of work."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from services.analytics.domain import Neighbours, Period, RawEvent, ReportJob, Rollup
from services.common.uow import UnitOfWork


class RollupRepository(Protocol):
    """Raw events and the daily rollups built from them; reports read only the rollups."""

    def add_raw_events(self, events: Sequence[RawEvent]) -> None:
        """Keep applied events as they came (their payload bytes), for rebuilding rollups and exports."""

    def claim_facts(self, facts: Mapping[tuple[str, str], date]) -> set[tuple[str, str]]:
        """Record the facts (kind, key) with their day; returns those not recorded before."""

    def add_members(self, members: Sequence[tuple[str, date, str]]) -> set[tuple[str, date, str]]:
        """Add each (kind, day, member) to the day's distinct set `kind`; returns those not in it before."""

    def present_members(self, members: Sequence[tuple[str, date, str]]) -> set[tuple[str, date, str]]:
        """Those of `members` that are in their day's set."""

    def fact_days(self, kind: str, keys: Collection[str]) -> dict[str, date]:
        """The day of each recorded fact (kind, key) of `keys`; keys not recorded are left out."""

    def add_counters(self, counters: Mapping[tuple[date, str], int]) -> None:
        """Add to the (day, metric) counters."""

    def add_breakdowns(self, sums: Mapping[tuple[str, date, str, str], int]) -> None:
        """Add to the (dimension, day, key, metric) counters."""

    def counters(self, period: Period) -> dict[date, dict[str, int]]:
        """The days of the period that have counters, with them."""

    def take_turns(self, members: Collection[str]) -> None:
        """Concurrent batches touching one of `members` take turns from here to their commit: the second one's reads
        see what the first one wrote (retention pairs, arrivals). All of a batch's members at once (no deadlock)."""

    def neighbour_days(self, members: Sequence[tuple[str, date, str]]) -> dict[tuple[str, date, str], Neighbours]:
        """Around each (kind, day, member): the member's days in the day sets `kind` (this batch's additions
        included). Concurrent batches touching one member must not both read before either commits: the caller has
        taken their turns first (take_turns: apply_rollups does), held up to the commit (the arrivals read and written
        depend on it)."""

    def add_arrivals(self, changes: Mapping[tuple[str, date, date], int]) -> None:
        """Add to the (range set, day, last_seen) arrivals (domain.NO_DAY_SEEN)."""

    def arrivals(self, sets: tuple[str, ...], period: Period) -> dict[str, dict[date | None, int]]:
        """Each range set's members per day of the period, and (key None) its distinct members over the period."""

    def breakdowns(self, dimensions: tuple[str, ...], period: Period) -> dict[str, dict[str, dict[str, int]]]:
        """Each dimension's counters summed over the period, by key."""

    def raw_event_count(self, period: Period) -> int: ...

    def raw_events(self, period: Period, *, after: tuple[date, str] | None = None, limit: int) -> list[RawEvent]:
        """Up to `limit` raw events of the period's days by (day, event id), those after `after` only."""

    def ledger_event_count(self, period: Period, types: Sequence[str]) -> int:
        """How many raw events of `types` (some of db.LEDGER_EVENTS) the period's days have."""

    def ledger_events(self, period: Period, types: Sequence[str], *, after: tuple[date, datetime, str] | None = None,
                      limit: int) -> list[RawEvent]:
        """Up to `limit` raw events of `types` (some of db.LEDGER_EVENTS) of the period's days by (day, occurred_at,
        event id), those after `after` only."""

    def order_follow_ups(self, order_nos: Collection[str]) -> list[RawEvent]:
        """The order-paid, order-cancelled and order-refunded events of these orders (by their aggregate id, the
        order number), whatever their day, by occurred_at then event id."""


class ReportJobRepository(Protocol):
    def add(self, *, kind: str, format: str, period: Period, requested_by: int, now: datetime) -> ReportJob: ...

    def under_way(self, requested_by: int) -> int:
        """How many of the analyst's jobs are queued or running."""

    def get(self, job_id: int) -> ReportJob | None: ...

    def add_download(self, job_id: int, *, actor_id: int, now: datetime) -> None:
        """Record that `actor_id` downloaded the job's file."""

    def downloads(self, job_id: int) -> list[tuple[int, datetime]]:
        """Who downloaded the job's file and when, oldest first."""

    def claim(self, *, now: datetime, stale_before: datetime) -> ReportJob | None:
        """Mark the oldest queued job (or a running one whose last heartbeat is before `stale_before`) running."""

    def update(self, job_id: int, **values: Any) -> None: ...

    def update_running(self, job_id: int, *, attempt: int | None, **values: Any) -> bool:
        """`update` a job still running (and, given `attempt`, still in that attempt: not taken over since);
        whether it was."""

    def expire(self, *, finished_before: datetime) -> list[ReportJob]:
        """Mark the done jobs that finished before `finished_before` expired; returns them (as they were)."""

    def files(self, job_ids: Collection[int]) -> dict[int, tuple[str, str]]:
        """The status and file name ("" until done) of each of the jobs that exist."""


class AnalyticsUnitOfWork(UnitOfWork):
    """The analytics service's unit of work; its repositories are set on entering it."""

    rollups: RollupRepository
    reports: ReportJobRepository

    def add_event(self, raw: RawEvent, rollup: Rollup) -> None:
        """Keep `raw` and add `rollup` when this unit of work commits: those of a consumer's whole batch together,
        in a few statements (service.apply_rollups). Implementations call `take_events()` in `commit()`."""
        self.__dict__.setdefault("_pending_events", []).append((raw, rollup))

    def take_events(self) -> list[tuple[RawEvent, Rollup]]:
        return self.__dict__.pop("_pending_events", [])
