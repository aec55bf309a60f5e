"""An event whose data PostgreSQL refuses is dead-lettered by the analytics EventConsumer; its partition moves on."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from kafka.errors import CommitFailedError
from mall.events.v1.tracking_events_pb2 import PageViewed
from sqlalchemy import Engine, func, select

from services.analytics import service
from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer, HandlerFailed
from services.common.events import timestamp
from services.common.metrics import EVENTS_CONSUMED
from services.common.outbox import OutboxRelay, dead_letters, outbox, processed_events

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)  # 12:00 on 2026-12-06 in Shanghai
DEVICE = "dev-nul-region-1"  # the key of both events: one partition, the NUL one first


def rows(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def test_a_page_view_with_a_nul_region_is_dead_lettered_and_the_next_view_on_its_partition_is_counted(
        analytics_db: Engine, uow: Callable[[], SqlAnalyticsUnitOfWork], kafka_settings: KafkaSettings) -> None:
    # TrackPageViews refuses such a region now; an event staged before that (or by another producer) still comes.
    with uow() as staging:
        for page, region in (("pages/index/index", "广东\x00省"), ("pages/cart/cart", "广东省")):
            view = PageViewed(device_id=DEVICE, session_id="s1", user_id=0, page=page, region=region)
            view.received_at.CopyFrom(timestamp(RECEIVED))
            view.viewed_at.CopyFrom(timestamp(RECEIVED))
            staging.publish(view, aggregate_id=DEVICE)
        staging.commit()
    with analytics_db.connect() as conn:
        nul_event_id, good_event_id = conn.execute(select(outbox.c.event_id).order_by(outbox.c.id)).scalars().all()
    relay = OutboxRelay("analytics", analytics_db, kafka_settings)
    try:
        assert relay.publish_pending() == 2
    finally:
        relay.close()
    dead_lettered = EVENTS_CONSUMED.labels("analytics", kafka_settings.topic("page-viewed"), "dead_lettered")
    before = dead_lettered._value.get()
    consumer = EventConsumer("analytics", uow, kafka_settings, HANDLERS)

    deadline = time.monotonic() + 60
    while rows(analytics_db, processed_events) + rows(analytics_db, dead_letters) < 2:
        assert time.monotonic() < deadline, "the partition did not move past the NUL event"
        try:
            consumer.poll_once(timeout_ms=200)
        except HandlerFailed:
            pass  # retried from the same offset, as EventConsumer.run does
        except CommitFailedError:
            pass  # a rebalance on a busy machine: the records come again (test_analytics_on_postgres.consume)
    consumer.close()

    with analytics_db.connect() as conn:
        letter = conn.execute(select(dead_letters)).one()
        applied = conn.execute(select(processed_events.c.event_id)).scalars().all()
    day = service.get_overview(uow(), from_date="2026-12-06", to_date="2026-12-06").days[0]
    assert (letter.topic, letter.event_id, letter.reason) == (
        kafka_settings.topic("page-viewed"), nul_event_id,
        "the database refuses the event's data: PostgreSQL text fields cannot contain NUL (0x00) bytes")
    assert (applied, day.figures["page_views"], dead_lettered._value.get() - before) == ([good_event_id], 1, 1)
