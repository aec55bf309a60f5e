"""The analytics unit of work in memory, and a consumer loop over it that skips event ids seen before."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope

from services.analytics.consumers import HANDLERS
from services.analytics.domain import Breakdown, Period
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

    def add_raw_event(self, *, event_id: str, event_type: str, aggregate_id: str, occurred_at: datetime,
                      day: date, payload: bytes) -> None:
        self.raw.setdefault(event_id, (event_type, day))

    def claim_fact(self, kind: str, key: str, day: date) -> bool:
        if (kind, key) in self.facts:
            return False
        self.facts[kind, key] = day
        return True

    def add_member(self, kind: str, day: date, member: str) -> bool:
        if (kind, day, member) in self.members:
            return False
        self.members.add((kind, day, member))
        return True

    def has_member(self, kind: str, day: date, member: str) -> bool:
        return (kind, day, member) in self.members

    def fact_day(self, kind: str, key: str) -> date | None:
        return self.facts.get((kind, key))

    def add_counters(self, day: date, counters: Mapping[str, int]) -> None:
        for metric, value in counters.items():
            self.daily[day, metric] = self.daily.get((day, metric), 0) + value

    def add_breakdowns(self, day: date, breakdowns: Iterable[Breakdown]) -> None:
        for dimension, key, metric, value in ((b.dimension, b.key, m, v) for b in breakdowns
                                              for m, v in b.counters.items()):
            self.sums[dimension, day, key, metric] = self.sums.get((dimension, day, key, metric), 0) + value

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


@pytest.fixture
def uow() -> FakeAnalyticsUnitOfWork:
    return FakeAnalyticsUnitOfWork()


def consume(uow: FakeAnalyticsUnitOfWork, envelopes: Iterable[EventEnvelope], processed: set[str] | None = None) -> None:
    """What EventConsumer does with each event, in memory: skip an event id seen before, else apply it and commit."""
    processed = set() if processed is None else processed
    for envelope in envelopes:
        if envelope.event_id in processed:
            continue
        processed.add(envelope.event_id)
        message_type = next(t for t, name in events.EVENT_TYPES.items() if name == envelope.event_type)
        with uow:
            HANDLERS[message_type](uow, events.unpack(envelope, message_type), envelope)
            uow.commit()
