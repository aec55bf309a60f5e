"""The shared EventConsumer on PostgreSQL, whose column lengths SQLite does not enforce (scripted Kafka, no broker)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, func, select

from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.events import InvalidEvent, encode, new_envelope, timestamp
from services.common.outbox import dead_letters, processed_events
from tests.fixtures.kafka import Delivered, ScriptedConsumer, batch

pytestmark = pytest.mark.integration

SETTINGS = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=1000, topic_prefix="",
                         request_timeout_ms=1000)


def registration(user_id: int, offset: int, *, event_id: str | None = None) -> Delivered:
    envelope = new_envelope(UserRegistered(user_id=user_id, channel="sms",
                                           registered_at=timestamp(datetime(2026, 11, 26, tzinfo=UTC))),
                            producer="user", aggregate_id=str(user_id))
    if event_id is not None:
        envelope.event_id = event_id
    return Delivered(SETTINGS.topic("user-registered"), 0, offset, encode(envelope))


def test_an_event_id_in_braces_is_dead_lettered_and_the_partition_moves_on(
        service_engine: Callable[[str], Engine]) -> None:
    engine = service_engine("analytics")
    braced = registration(1, 10, event_id="{12345678-1234-5678-1234-567812345678}")
    scripted = ScriptedConsumer([batch(braced, registration(2, 11))])
    consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), SETTINGS,
                             HANDLERS, consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    assert consumer.poll_once() == 2

    assert scripted.commits == [(0, 12)]
    with engine.connect() as conn:
        assert conn.execute(select(dead_letters.c.offset, dead_letters.c.event_id)).all() == [(10, None)]
        assert conn.execute(select(func.count()).select_from(processed_events)).scalar_one() == 1


def test_an_invalid_event_whose_reason_quotes_a_nul_from_its_payload_is_dead_lettered(
        service_engine: Callable[[str], Engine]) -> None:
    engine = service_engine("analytics")

    def refuse_channel(uow: SqlAnalyticsUnitOfWork, event: UserRegistered, envelope: EventEnvelope) -> None:
        raise InvalidEvent(f"unknown channel {event.channel}")  # a handler quoting what it refuses

    envelope = new_envelope(UserRegistered(user_id=3, channel="sms\x00"), producer="user", aggregate_id="3")
    record = Delivered(SETTINGS.topic("user-registered"), 0, 5, encode(envelope))
    scripted = ScriptedConsumer([batch(record)])
    consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), SETTINGS,
                             {UserRegistered: refuse_channel},
                             consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    assert consumer.poll_once() == 1

    assert scripted.commits == [(0, 6)]
    with engine.connect() as conn:
        assert conn.execute(select(dead_letters.c.event_id, dead_letters.c.reason)).all() == [
            (envelope.event_id, "unknown channel sms\\x00")]


def test_bytes_that_are_no_event_are_matched_by_their_bytes_when_delivered_again_or_replaced_at_their_offset(
        service_engine: Callable[[str], Engine]) -> None:
    # bytea compared on PostgreSQL: the same record redelivered (its offset commit lost) is one dead letter, other
    # bytes at that offset (a recreated topic) another
    engine = service_engine("analytics")
    topic = SETTINGS.topic("user-registered")
    old, new = Delivered(topic, 0, 5, b"\xff\x00 not protobuf"), Delivered(topic, 0, 5, b"\xff\x01 nor this")
    scripted = ScriptedConsumer([batch(old), batch(old), batch(new), batch(new)])
    consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), SETTINGS,
                             HANDLERS, consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    for _ in range(4):
        assert consumer.poll_once() == 1

    with engine.connect() as conn:
        assert conn.execute(select(dead_letters.c.offset, dead_letters.c.payload).order_by(dead_letters.c.id)).all() == [
            (5, old.value), (5, new.value)]
