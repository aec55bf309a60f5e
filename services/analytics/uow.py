"""What the analytics use cases need from storage: the rollups repository and the analytics unit of work."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Protocol

from services.analytics.domain import Breakdown, Period, RawEvent, ReportJob
from services.common.uow import UnitOfWork


class RollupRepository(Protocol):
    """Raw events and the daily rollups built from them; reports read only the rollups."""

    def add_raw_event(self, *, event_id: str, event_type: str, aggregate_id: str, occurred_at: datetime,
                      day: date, payload: bytes) -> None:
        """Keep an applied event as it came (its payload bytes), for rebuilding rollups and exports."""

    def claim_fact(self, kind: str, key: str, day: date) -> bool:
        """Record the fact (kind, key); False when it was recorded before."""

    def add_member(self, kind: str, day: date, member: str) -> bool:
        """Add `member` to the day's distinct set `kind`; False when it was in it already."""

    def has_member(self, kind: str, day: date, member: str) -> bool: ...

    def fact_day(self, kind: str, key: str) -> date | None:
        """The day of the fact (kind, key), None when not recorded."""

    def add_counters(self, day: date, counters: Mapping[str, int]) -> None: ...

    def add_breakdowns(self, day: date, breakdowns: Iterable[Breakdown]) -> None: ...

    def counters(self, period: Period) -> dict[date, dict[str, int]]:
        """The days of the period that have counters, with them."""

    def distinct_members(self, kinds: tuple[str, ...], period: Period) -> dict[str, int]:
        """Distinct members over the period of each of the sets `kinds`."""

    def breakdowns(self, dimensions: tuple[str, ...], period: Period) -> dict[str, dict[str, dict[str, int]]]:
        """Each dimension's counters summed over the period, by key."""

    def step_profiles(self, kinds: tuple[str, ...], period: Period) -> dict[date | None, dict[frozenset[str], int]]:
        """How many members are in each combination of the sets `kinds`: per day, and (key None) over the period."""

    def raw_event_count(self, period: Period) -> int: ...

    def raw_events(self, period: Period, *, after: tuple[date, str] | None = None, limit: int) -> list[RawEvent]:
        """Up to `limit` raw events of the period's days by (day, event id), those after `after` only."""


class ReportJobRepository(Protocol):
    def add(self, *, kind: str, format: str, period: Period, requested_by: int, now: datetime) -> ReportJob: ...

    def get(self, job_id: int) -> ReportJob | None: ...

    def claim(self, *, now: datetime, stale_before: datetime) -> ReportJob | None:
        """Mark the oldest queued job (or a running one whose last heartbeat is before `stale_before`) running."""

    def update(self, job_id: int, **values: Any) -> None: ...


class AnalyticsUnitOfWork(UnitOfWork):
    """The analytics service's unit of work; its repositories are set on entering it."""

    rollups: RollupRepository
    reports: ReportJobRepository
