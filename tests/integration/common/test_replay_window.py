"""A dead-letter replay publishes a new copy of an event, which Kafka may deliver for its retention and the rest of a
segment again: every consumer that applied the original must remember it that long (config.redelivery_days)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from mall.events.v1.order_events_pb2 import OrderPaid
from sqlalchemy import Engine, func, select

from services.common import events
from services.common.config import PruneSettings, redelivery_days
from services.common.db import utcnow
from services.common.deadletters import Refused, replay
from services.common.outbox import dead_letters, processed_events
from services.common.pruning import prune

pytestmark = pytest.mark.integration

NOW = utcnow()
SETTINGS = PruneSettings()  # processed 30, topic 7: a copy may come for 15 days, so republish_days is 15


def applied_and_dead_lettered(engine: Engine, occurred: datetime) -> tuple[str, int]:
    """Consumer "points" applied the event when it occurred; consumer "member" dead-lettered it."""
    envelope = events.new_envelope(OrderPaid(order_no="O1", user_id=7, paid_fen=1200), producer="order",
                                   aggregate_id="O1", occurred_at=occurred)
    with engine.begin() as conn:
        conn.execute(processed_events.insert().values(consumer="points", event_id=envelope.event_id,
                                                      event_type="order-paid", processed_at=occurred))
        letter = conn.execute(dead_letters.insert().values(
            consumer="member", topic="order-paid", partition=0, offset=5, event_id=envelope.event_id,
            reason="invalid", payload=events.encode(envelope), created_at=occurred).returning(
            dead_letters.c.id)).scalar_one()
    return envelope.event_id, letter


def remembered(engine: Engine, event_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(processed_events).where(
            processed_events.c.event_id == event_id)).scalar_one()


def test_an_event_replayed_at_the_limit_is_remembered_until_kafka_can_no_longer_deliver_its_copy(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("member")
    event_id, letter = applied_and_dead_lettered(engine, NOW - timedelta(days=SETTINGS.republish_days, hours=-1))

    replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW)
    prune(engine, "member", SETTINGS, now=NOW + timedelta(days=redelivery_days(SETTINGS.topic_retention_days)))

    assert (SETTINGS.republish_days, remembered(engine, event_id)) == (15, 1)


def test_an_event_too_old_for_its_copy_to_be_recognised_is_not_replayed(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("member")
    _, letter = applied_and_dead_lettered(engine, NOW - timedelta(days=16))

    with pytest.raises(Refused, match="more than 15 days ago"):
        replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW)
