"""The analytics unit of work in memory, a consumer loop over it that skips event ids seen before, a report pass."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Self

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope

from services.analytics.consumers import HANDLERS
from services.analytics.domain import LOOK_BACK_DAYS, Neighbours, Period, RawEvent
from services.analytics.reports import ReportRunner
from services.analytics.service import apply_rollups
from services.analytics.uow import AnalyticsUnitOfWork
from services.common import events
from tests.fakes import FakeUnitOfWork


class FakeRollups:
    def __init__(self) -> None:
        self.raw: dict[str, tuple[str, date]] = {}
        self.facts: dict[tuple[str, str], date] = {}
        self.members: set[tuple[str, date, str]] = set()
        self.daily: dict[tuple[date, str], int] = {}
        self.sums: dict[tuple[str, date, str, str], int] = {}
        self.arrived: dict[tuple[str, date, date], int] = {}

    def add_raw_events(self, events: Sequence[RawEvent]) -> None:
        for event in events:
            self.raw.setdefault(event.event_id, (event.event_type, event.day))

    def claim_facts(self, facts: Mapping[tuple[str, str], date]) -> set[tuple[str, str]]:
        new = {fact for fact in facts if fact not in self.facts}
        self.facts.update({fact: facts[fact] for fact in new})
        return new

    def add_members(self, members: Sequence[tuple[str, date, str]]) -> set[tuple[str, date, str]]:
        new = set(members) - self.members
        self.members |= new
        return new

    def present_members(self, members: Sequence[tuple[str, date, str]]) -> set[tuple[str, date, str]]:
        return set(members) & self.members

    def fact_days(self, kind: str, keys: Collection[str]) -> dict[str, date]:
        return {key: self.facts[kind, key] for key in keys if (kind, key) in self.facts}

    def add_counters(self, counters: Mapping[tuple[date, str], int]) -> None:
        for key, value in counters.items():
            self.daily[key] = self.daily.get(key, 0) + value

    def add_breakdowns(self, sums: Mapping[tuple[str, date, str, str], int]) -> None:
        for key, value in sums.items():
            self.sums[key] = self.sums.get(key, 0) + value

    def take_turns(self, members: Collection[str]) -> None:
        pass  # one unit of work at a time in memory

    def neighbour_days(self, members: Sequence[tuple[str, date, str]]) -> dict[tuple[str, date, str], Neighbours]:
        found = {}
        for kind, day, member in members:
            days = {d for k, d, m in self.members if k == kind and m == member}
            reach = timedelta(days=LOOK_BACK_DAYS)
            found[kind, day, member] = Neighbours(max((d for d in days if day - reach <= d < day), default=None),
                                                  min((d for d in days if day < d <= day + reach), default=None),
                                                  day in days)
        return found

    def add_arrivals(self, changes: Mapping[tuple[str, date, date], int]) -> None:
        for key, value in changes.items():
            self.arrived[key] = self.arrived.get(key, 0) + value

    def arrivals(self, sets: tuple[str, ...], period: Period) -> dict[str, dict[date | None, int]]:
        found: dict[str, dict[date | None, int]] = {s: {} for s in sets}
        for (kind, day, seen), value in self.arrived.items():
            if kind in found and period.first <= day <= period.last:
                found[kind][day] = found[kind].get(day, 0) + value
                found[kind][None] = found[kind].get(None, 0) + (value if seen < period.first else 0)
        return found

    def counters(self, period: Period) -> dict[date, dict[str, int]]:
        found: dict[date, dict[str, int]] = {}
        for (day, metric), value in self.daily.items():
            if period.first <= day <= period.last:
                found.setdefault(day, {})[metric] = value
        return found

    def distinct_members(self, kinds: tuple[str, ...], period: Period) -> dict[str, int]:
        return {kind: len({m for k, day, m in self.members if k == kind and period.first <= day <= period.last})
                for kind in kinds}

    def breakdowns(self, dimensions: tuple[str, ...], period: Period) -> dict[str, dict[str, dict[str, int]]]:
        found: dict[str, dict[str, dict[str, int]]] = {dimension: {} for dimension in dimensions}
        for (dim, day, key, metric), value in self.sums.items():
            if dim in found and period.first <= day <= period.last:
                found[dim].setdefault(key, {})[metric] = found[dim].get(key, {}).get(metric, 0) + value
        return found

    def step_profiles(self, kinds: tuple[str, ...], period: Period) -> dict[date | None, dict[frozenset[str], int]]:
        steps: dict[tuple[date | None, str], set[str]] = {}
        for kind, day, member in self.members:
            if kind in kinds and period.first <= day <= period.last:
                steps.setdefault((day, member), set()).add(kind)
                steps.setdefault((None, member), set()).add(kind)
        found: dict[date | None, dict[frozenset[str], int]] = {}
        for (day, _), taken in steps.items():
            profile = found.setdefault(day, {})
            profile[frozenset(taken)] = profile.get(frozenset(taken), 0) + 1
        return found


class FakeAnalyticsUnitOfWork(FakeUnitOfWork, AnalyticsUnitOfWork):
    rollups: FakeRollups

    def __init__(self) -> None:
        super().__init__()
        self.rollups = FakeRollups()

    def __enter__(self) -> Self:
        self.take_events()
        return super().__enter__()

    def commit(self) -> None:
        pending = self.take_events()
        self.rollups.add_raw_events([raw for raw, _ in pending])
        apply_rollups(self.rollups, [rollup for _, rollup in pending])
        super().commit()


@pytest.fixture
def uow() -> FakeAnalyticsUnitOfWork:
    return FakeAnalyticsUnitOfWork()


def consume(uow: FakeAnalyticsUnitOfWork, envelopes: Iterable[EventEnvelope], processed: set[str] | None = None,
            batch_size: int = 1) -> None:
    """What EventConsumer does with each poll of `batch_size` events, in memory: skip an event id seen before
    (in an earlier batch or earlier in this one), apply the others in order, commit once."""
    processed = set() if processed is None else processed
    envelopes = list(envelopes)
    for start in range(0, len(envelopes), batch_size):
        with uow:
            for envelope in envelopes[start:start + batch_size]:
                if envelope.event_id in processed:
                    continue
                processed.add(envelope.event_id)
                message_type = next(t for t, name in events.EVENT_TYPES.items() if name == envelope.event_type)
                HANDLERS[message_type](uow, events.unpack(envelope, message_type), envelope)
            uow.commit()


def run_reports(runner: ReportRunner) -> int:
    """Run every claimable report job now, as one pass of ReportRunner.run does between its polls; how many ran."""
    ran = 0
    while runner.run_one():
        ran += 1
    return ran
