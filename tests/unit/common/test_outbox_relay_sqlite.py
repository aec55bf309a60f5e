"""The relay on SQLite (make run's default): it must not hold the write lock while it waits on the broker."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata
from mall.events.v1.user_events_pb2 import UserRegistered
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select, update

from services.common.config import KafkaSettings
from services.common.events import TOPICS
from services.common.metrics import OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING
from services.common.outbox import OutboxRelay, dead_letters, outbox
from services.common.uow import SqlUnitOfWork

SETTINGS = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=1000, topic_prefix="",
                         request_timeout_ms=1000)


class WriteWhileSending(OutboxRelay):
    """Stands in for a slow broker: while 'sending', another process tries to write."""

    def __init__(self, *args, database: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.database = database
        self.sent: list[str] = []
        self.writes_while_sending: list[str] = []

    def _send(self, rows: list) -> dict[int, str]:  # type: ignore[type-arg]
        other_process = sqlite3.connect(self.database, timeout=0.2, isolation_level=None)
        try:
            other_process.execute("BEGIN IMMEDIATE")  # raises 'database is locked' if the relay holds it
            other_process.execute("ROLLBACK")
            self.writes_while_sending.append("ok")
        finally:
            other_process.close()
        self.sent.extend(row.event_type for row in rows)
        return {}


def test_other_writers_are_not_blocked_while_the_relay_sends(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    with SqlUnitOfWork(engine, "user") as uow:
        uow.publish(UserRegistered(user_id=1, channel="sms"), aggregate_id="1")
        uow.commit()
    relay = WriteWhileSending("user", engine, SETTINGS, database=engine.url.database or "")

    assert relay.publish_pending() == 1

    assert (relay.sent, relay.writes_while_sending) == (["user-registered"], ["ok"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.published_at.is_(None))).scalar_one() == 0


class BrokerDown(OutboxRelay):
    def _send(self, rows: list) -> dict[int, str]:  # type: ignore[type-arg]
        raise KafkaTimeoutError("simulated: no broker")


def test_the_backlog_gauge_shows_the_backlog_while_the_broker_is_down(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    with SqlUnitOfWork(engine, "user") as uow:
        for n in range(3):
            uow.publish(UserRegistered(user_id=n, channel="sms"), aggregate_id=str(n))
        uow.commit()
    OUTBOX_PENDING.labels("user").set(0)

    with pytest.raises(KafkaTimeoutError):
        BrokerDown("user", engine, SETTINGS).publish_pending()

    assert OUTBOX_PENDING.labels("user")._value.get() == 3


class FakeProducer:
    """Acks every record at once except those it was told are too large: send() refuses them, as kafka-python's
    client-side size check does."""

    def __init__(self, too_large: frozenset[bytes] = frozenset(), unacked: frozenset[bytes] = frozenset()) -> None:
        self.too_large, self.unacked = too_large, unacked  # unacked: the delivery times out, as with a broker gone
        self.sent: list[bytes] = []

    def send(self, topic: str, *, key: bytes, value: bytes) -> FutureRecordMetadata:
        if key in self.too_large:
            raise MessageSizeTooLargeError("simulated: the message is larger than max_request_size")
        produced = FutureProduceResult(TopicPartition(topic, 0))
        future = FutureRecordMetadata(produced, 0, -1, None, len(key), len(value), -1)
        if key in self.unacked:
            produced.failure(KafkaTimeoutError("simulated: expired before the broker acknowledged it"))
        else:
            self.sent.append(key)
            produced.success((len(self.sent) - 1, -1, None))
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def register(engine: Engine, user_ids: range) -> list[str]:
    with SqlUnitOfWork(engine, "user") as uow:
        event_ids = [uow.publish(UserRegistered(user_id=n, channel="sms"), aggregate_id=str(n)) for n in user_ids]
        uow.commit()
    return event_ids


def test_a_row_too_large_to_send_is_dead_lettered_and_the_rows_behind_it_are_published(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    event_ids = register(engine, range(3))
    producer = FakeProducer(too_large=frozenset({b"1"}))
    relay = OutboxRelay("user", engine, SETTINGS, producer_factory=lambda _: producer)  # type: ignore[arg-type,return-value]

    assert relay.publish_pending() == 3

    assert producer.sent == [b"0", b"2"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.published_at.is_(None))).scalar_one() == 0
        kept = conn.execute(select(dead_letters.c.consumer, dead_letters.c.topic, dead_letters.c.event_id,
                                   dead_letters.c.payload)).one()
        envelope = conn.execute(select(outbox.c.envelope).where(outbox.c.event_id == event_ids[1])).scalar_one()
    assert kept == ("outbox-relay", "user-registered", event_ids[1], envelope)  # kept whole, for a replay


def test_a_row_too_large_to_send_does_not_block_the_next_pass(sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    register(engine, range(2))
    producer = FakeProducer(too_large=frozenset({b"0"}))
    relay = OutboxRelay("user", engine, SETTINGS, producer_factory=lambda _: producer)  # type: ignore[arg-type,return-value]
    relay.publish_pending()
    register(engine, range(2, 3))  # written after the row too large was met

    assert relay.publish_pending() == 1

    assert producer.sent == [b"1", b"2"]


def test_the_age_of_the_oldest_unsent_event_shows_while_the_broker_is_down(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    register(engine, range(2))
    with engine.begin() as conn:  # the first event has waited ten minutes
        conn.execute(update(outbox).where(outbox.c.id == select(func.min(outbox.c.id)).scalar_subquery())
                     .values(created_at=datetime.now(UTC) - timedelta(minutes=10)))
    OUTBOX_OLDEST_PENDING_AGE.labels("user").set(0)

    with pytest.raises(KafkaTimeoutError):
        BrokerDown("user", engine, SETTINGS).publish_pending()

    assert 600 <= OUTBOX_OLDEST_PENDING_AGE.labels("user")._value.get() < 660


def test_the_age_of_the_oldest_unsent_event_is_zero_once_all_are_sent(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    register(engine, range(2))
    OUTBOX_OLDEST_PENDING_AGE.labels("user").set(99)
    relay = OutboxRelay("user", engine, SETTINGS, producer_factory=lambda _: FakeProducer())  # type: ignore[arg-type,return-value]

    relay.publish_pending()

    assert OUTBOX_OLDEST_PENDING_AGE.labels("user")._value.get() == 0


def test_a_batch_the_broker_acknowledged_only_in_part_is_not_marked_and_is_sent_again_in_order(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    register(engine, range(3))
    producer = FakeProducer(unacked=frozenset({b"1"}))
    relay = OutboxRelay("user", engine, SETTINGS, producer_factory=lambda _: producer)  # type: ignore[arg-type,return-value]

    with pytest.raises(KafkaTimeoutError):
        relay.publish_pending()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.published_at.is_(None))).scalar_one() == 3
    producer.unacked = frozenset()

    assert relay.publish_pending() == 3

    assert producer.sent == [b"0", b"2", b"0", b"1", b"2"]  # at least once, each pass in id order


PREFIXED = dataclasses.replace(SETTINGS, topic_prefix="staging-")


def test_a_new_relay_exports_its_dead_letter_counter_at_zero_for_every_topic(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    # A counter series born at 1 shows no increase(): OutboxEventsDeadLettered would miss the first row.
    OutboxRelay("fresh", sqlite_service_engine("user"), PREFIXED)

    assert {topic: REGISTRY.get_sample_value("mall_outbox_dead_lettered_total",
                                             {"service": "fresh", "topic": f"staging-{topic}"})
            for topic in TOPICS} == dict.fromkeys(TOPICS, 0.0)


def test_the_relay_counts_what_it_publishes_by_kafka_topic_as_consumers_count_what_they_read(
        sqlite_service_engine: Callable[[str], Engine]) -> None:
    engine = sqlite_service_engine("user")
    register(engine, range(2))
    relay = OutboxRelay("counted", engine, PREFIXED,
                        producer_factory=lambda _: FakeProducer())  # type: ignore[arg-type,return-value]

    assert relay.publish_pending() == 2

    assert REGISTRY.get_sample_value("mall_outbox_published_total",
                                     {"service": "counted", "topic": "staging-user-registered"}) == 2
