"""Analytics on PostgreSQL: the synthetic stream through a real broker and EventConsumer, and POST /track's outbox."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from kafka.errors import CommitFailedError
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.tracking_events_pb2 import PageViewed
from sqlalchemy import Engine, func, select

from services.analytics import service
from services.analytics.consumers import HANDLERS, page_viewed
from services.analytics.db import SqlAnalyticsUnitOfWork, daily_members, raw_events
from services.analytics.domain import FunnelSteps, Region
from services.analytics.service import PageViewInput, apply_rollups
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.events import EVENT_TYPES, encode, timestamp, unpack
from services.common.kafka import make_producer
from services.common.outbox import OutboxRelay, processed_events
from tests.fixtures.analytics_stream import (
    D1,
    D2,
    EXPECTED_D1,
    EXPECTED_D2,
    EXPECTED_TOTALS,
    at,
    cart_added,
    page_view,
    registered,
    stream,
)
from tests.fixtures.kafka import Delivered
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.unit.analytics.conftest import consume as consume_events

pytestmark = pytest.mark.integration

PERIOD = {"from_date": D1.isoformat(), "to_date": D2.isoformat()}


def send(settings: KafkaSettings, envelopes: list[EventEnvelope]) -> None:
    producer = make_producer(settings)
    for envelope in envelopes:
        producer.send(settings.topic(envelope.event_type), key=envelope.aggregate_id.encode(), value=encode(envelope))
    producer.flush(timeout=10)
    producer.close()


def processed(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(processed_events)).scalar_one()


def consume(consumer: EventConsumer, done: Callable[[], bool], timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not done():
        assert time.monotonic() < deadline, "the consumer did not catch up in time"
        try:
            consumer.poll_once(timeout_ms=200)
        except CommitFailedError:
            # On a busy machine a batch can outlast the session and the group rebalances: the batch's
            # records come again and are skipped as duplicates, as in production (EventConsumer.run).
            pass
    consumer.close()


@pytest.fixture
def kafka_settings(kafka_settings: KafkaSettings) -> KafkaSettings:
    """Room for a whole poll of these events on a busy machine (the default 1 s is meant for a few records);
    tansu then takes up to this long for a consumer to join its group."""
    return dataclasses.replace(kafka_settings, max_poll_interval_ms=4000)


@pytest.fixture
def events() -> list[EventEnvelope]:
    return stream()


@pytest.fixture
def counted(analytics_db: Engine, uow: Callable[[], SqlAnalyticsUnitOfWork], kafka_settings: KafkaSettings,
            events: list[EventEnvelope]) -> Callable[[], SqlAnalyticsUnitOfWork]:
    """The stream published to the broker and consumed by the analytics EventConsumer until every event id is in."""
    send(kafka_settings, events)
    consume(EventConsumer("analytics", uow, kafka_settings, HANDLERS, batched=True),
            lambda: processed(analytics_db) == len({e.event_id for e in events}))
    return uow


def test_the_stream_through_the_broker_gives_the_known_daily_figures(counted) -> None:
    overview = service.get_overview(counted(), **PERIOD)

    assert [(d.day, d.figures.as_dict()) for d in overview.days] == [(D1, EXPECTED_D1), (D2, EXPECTED_D2)]
    assert overview.totals.as_dict() == EXPECTED_TOTALS


def test_the_stream_through_the_broker_gives_the_known_regions_and_funnel(counted) -> None:
    regions = service.get_regional_distribution(counted(), **PERIOD)
    funnel = service.get_funnel(counted(), **PERIOD)

    assert regions.provinces == [Region("广东省", 1, 30000, 0.6667, 0), Region("浙江省", 2, 15000, 0.3333, 2),
                                 Region("", 0, 0, 0.0, 7)]
    assert (funnel.totals, funnel.days) == (FunnelSteps(3, 1, 1, 1), [(D1, FunnelSteps(2, 1, 1, 1)),
                                                                       (D2, FunnelSteps(2, 0, 0, 0))])


def test_the_stream_through_the_broker_gives_the_known_preferences(counted) -> None:
    found = service.get_purchase_preferences(counted(), **PERIOD, top=3)

    assert (found.sales_fen, [(s.key, s.paid_orders, s.quantity, s.sales_fen) for s in found.top_products]) == (
        44500, [("12", 1, 1, 30000), ("10", 2, 3, 12000), ("11", 1, 1, 2500)])
    assert [(s.key, s.sales_fen) for s in found.by_category] == [("1", 42000), ("2", 2500)]


def test_the_stream_delivered_again_changes_nothing(analytics_db: Engine, counted, kafka_settings: KafkaSettings,
                                                   events: list[EventEnvelope]) -> None:
    marker = registered(99, at(D2, 12))  # sent last: once it is counted, every redelivery before it was handled

    send(kafka_settings, [*events, marker])
    consume(EventConsumer("analytics", counted, kafka_settings, HANDLERS, batched=True),
            lambda: processed(analytics_db) == len({e.event_id for e in events}) + 1)

    assert service.get_overview(counted(), **PERIOD).totals.as_dict() == {**EXPECTED_TOTALS, "new_users": 4, "active_users": 4}
    with analytics_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(raw_events)).scalar_one() == len(
            {e.event_id for e in events}) + 1


def test_concurrent_consumers_of_one_day_lose_no_increment(analytics_db: Engine,
                                                           uow: Callable[[], SqlAnalyticsUnitOfWork]) -> None:
    workers, views_each = 4, 25
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def add_views(worker: int) -> None:
        barrier.wait()
        try:
            for n in range(views_each):
                with uow() as unit:
                    apply_rollups(unit.rollups, [page_viewed(view(f"dev-{worker}-{n}"), EventEnvelope())])
                    unit.commit()
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=add_views, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    totals = service.get_overview(uow(), **PERIOD).totals
    assert (errors, totals["page_views"], totals["unique_visitors"]) == ([], workers * views_each, workers * views_each)


def view(device: str) -> PageViewed:
    event = PageViewed(device_id=device, session_id="s1")
    event.viewed_at.CopyFrom(timestamp(at(D1, 12)))
    return event


def test_tracked_page_views_go_through_the_outbox_and_are_counted(
        analytics_db: Engine, uow: Callable[[], SqlAnalyticsUnitOfWork], kafka_settings: KafkaSettings) -> None:
    received = at(D2, 12)
    views = [PageViewInput("s9", "pages/index/index", "", at(D2, 11, 59), "江苏省"),
             PageViewInput("s9", "pages/product/detail", "pages/index/index", datetime(2020, 1, 1, tzinfo=UTC), ""),
             PageViewInput("s9", "pages/cart/cart", "", None, "")]

    accepted = service.track_page_views(uow(), device_id="dev-track-1", user_id=5, views=views, now=received)
    relay = OutboxRelay("analytics", analytics_db, kafka_settings)
    try:
        assert relay.publish_pending() == 3
    finally:
        relay.close()
    consume(EventConsumer("analytics", uow, kafka_settings, HANDLERS, batched=True), lambda: processed(analytics_db) == 3)

    days = service.get_overview(uow(), **PERIOD).days
    assert accepted == 3
    assert [(d.day, d.figures["page_views"], d.figures["unique_visitors"], d.figures["visits"],
             d.figures["active_users"]) for d in days] == [(D1, 0, 0, 0, 0), (D2, 3, 1, 1, 1)]
    with analytics_db.connect() as conn:
        assert conn.execute(select(daily_members.c.member).where(daily_members.c.kind == "viewer")).scalars().all() == ["5"]


def test_the_stream_through_the_broker_gives_the_known_retention(counted) -> None:
    found = service.get_retention(counted(), **PERIOD, today=D2 + timedelta(days=40))

    assert [(c.day, c.new_users, c.retained, c.rates[1]) for c in found.cohorts] == [
        (D1, 2, {1: 2, 7: 0, 30: 0}, 1.0), (D2, 1, {1: 0, 7: 0, 30: 0}, 0.0)]


@pytest.mark.parametrize("batch_size", [7, 500])
def test_batches_with_every_event_twice_in_any_order_give_the_known_figures_and_cohorts(
        analytics_db: Engine, uow: Callable[[], SqlAnalyticsUnitOfWork], kafka_settings: KafkaSettings,
        batch_size: int) -> None:
    # User 9's activity 7 and 30 days after registering arrives before the registration, in another batch or in its own.
    late = [page_view("dev-9", "s1", at(D1 + timedelta(days=7), 12), user_id=9),
            cart_added(9, at(D1 + timedelta(days=30), 12), 10), registered(9, at(D1, 8))]
    events = [*stream(), *late]
    records = [Delivered(kafka_settings.topic(e.event_type), 0, n, encode(e)) for n, e in enumerate(events * 2)]
    random.Random(batch_size).shuffle(records)
    consumer = EventConsumer("analytics", uow, kafka_settings, HANDLERS, batched=True)

    outcomes = [consumer.handle_batch(records[start:start + batch_size])
                for start in range(0, len(records), batch_size)]

    assert all(batch is not None for batch in outcomes)
    assert sum(sum(batch or []) for batch in outcomes) == len({e.event_id for e in events})  # each once
    totals = service.get_overview(uow(), **PERIOD).totals.as_dict()
    assert totals == {**EXPECTED_TOTALS, "new_users": EXPECTED_TOTALS["new_users"] + 1,
                      "active_users": EXPECTED_TOTALS["active_users"] + 1}  # user 9
    cohorts = service.get_retention(uow(), **PERIOD, today=D1 + timedelta(days=60)).cohorts
    assert [(c.day, c.new_users, dict(c.retained)) for c in cohorts] == [
        (D1, 3, {1: 2, 7: 1, 30: 1}), (D2, 1, {1: 0, 7: 0, 30: 0})]


@pytest.mark.parametrize("first", ["registration", "activity"])
def test_a_registration_and_the_next_days_activity_consumed_at_once_count_its_retention_once(
        analytics_db: Engine, uow: Callable[[], SqlAnalyticsUnitOfWork], first: str) -> None:
    # Two consumers (two partitions: user-registered, page-viewed) apply the two events at the same moment: the one
    # applied second must see the other, whichever it is, however their reads and commits interleave.
    registration, next_day = registered(8, at(D1, 8)), page_view("dev-8-phone", "s1", at(D2, 12), user_id=8)
    held_event, racing_event = (registration, next_day) if first == "registration" else (next_day, registration)
    results: dict[str, object] = {}
    with uow() as held:
        message_type = next(t for t, name in EVENT_TYPES.items() if name == held_event.event_type)
        HANDLERS[message_type](held, unpack(held_event, message_type), held_event)
        pending = held.take_events()
        held.rollups.add_raw_events([raw for raw, _ in pending])
        apply_rollups(held.rollups, [rollup for _, rollup in pending])  # applied, not committed yet
        racing = start_thread(results, "racing", lambda: consume_events(uow(), [racing_event]))
        wait_until_blocked(analytics_db, racing)
        held.commit()
    racing.join()

    assert results == {"racing": None}
    cohort = service.get_retention(uow(), from_date=D1.isoformat(), to_date=D1.isoformat(),
                                   today=D1 + timedelta(days=40)).cohorts[0]
    assert (cohort.new_users, dict(cohort.retained)) == (1, {1: 1, 7: 0, 30: 0})
