"""The outbox relay and the idempotent consumer against PostgreSQL and a real broker."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaConnectionError
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, func, select, text

from services.analytics.consumers import HANDLERS, on_user_registered
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer, HandlerFailed
from services.common.devbroker import DevBroker, free_port
from services.common.events import decode, encode, new_envelope, timestamp
from services.common.kafka import make_producer
from services.common.metrics import OUTBOX_FAILURES, OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING
from services.common.outbox import OutboxRelay, dead_letters, outbox, processed_events
from services.common.uow import SqlUnitOfWork
from tests.fixtures.kafka import Delivered, kafka_settings_for, read_topic
from tests.fixtures.outbox import consume_until, new_users_counted, register_users, unpublished
from tests.fixtures.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 26)


class SimulatedCrash(BaseException):
    """Stands for the process dying at a precise point (BaseException: nothing may swallow it)."""


def test_rows_of_a_rolled_back_transaction_are_never_published(
        user_db: Engine, kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 2, commit=False)
    marker = register_users(user_db, 1)[0]

    published = relays().publish_pending()

    records = read_topic(kafka_settings, "user-registered", until=lambda rs: any(
        decode(r.value).event_id == marker for r in rs))
    assert published == 1
    assert [decode(r.value).event_id for r in records] == [marker]
    assert unpublished(user_db) == 0


def test_committed_rows_are_published_once_with_their_envelope(
        user_db: Engine, kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay]) -> None:
    event_ids = register_users(user_db, 3)
    relay = relays()

    assert relay.publish_pending() == 3
    assert relay.publish_pending() == 0

    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= 3)
    assert sorted(decode(r.value).event_id for r in records) == sorted(event_ids)
    assert {r.key for r in records} == {b"0", b"1", b"2"}
    assert all(decode(r.value).producer == "user" for r in records)
    assert unpublished(user_db) == 0


def test_a_row_larger_than_a_request_may_be_is_dead_lettered_and_the_rows_behind_it_reach_the_broker(
        user_db: Engine, kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay]) -> None:
    before = register_users(user_db, 1)
    with SqlUnitOfWork(user_db, "user") as uow:  # kafka-python's default max_request_size is 1 MiB
        too_large = uow.publish(UserRegistered(user_id=1, channel="x" * 1_100_000), aggregate_id="1")
        uow.commit()
    after = register_users(user_db, 1, first_id=2)
    relay = relays()

    assert relay.publish_pending() == 3

    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= 2)
    assert [decode(r.value).event_id for r in records] == before + after
    with user_db.connect() as conn:
        assert conn.execute(select(dead_letters.c.consumer, dead_letters.c.event_id)).all() == [
            ("outbox-relay", too_large)]
    assert unpublished(user_db) == 0


class CrashBeforeMarking(OutboxRelay):
    def _mark_published(self, conn, ids):  # type: ignore[no-untyped-def]
        raise SimulatedCrash


def test_relay_killed_after_publishing_republishes_and_the_consumer_applies_once(
        user_db: Engine, analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    event_id = register_users(user_db, 1)[0]
    crashing = relays(CrashBeforeMarking)
    with pytest.raises(SimulatedCrash):
        crashing.publish_pending()
    crashing.close()  # the process is gone, and its database connection with it
    assert unpublished(user_db) == 1  # the mark never committed

    assert relays().publish_pending() == 1
    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= 2)
    assert [decode(r.value).event_id for r in records] == [event_id, event_id]

    consumer = EventConsumer("analytics", analytics_uow, kafka_settings, HANDLERS)
    outcomes = [consumer.handle(record) for record in records]

    assert outcomes == [True, False]
    assert new_users_counted(analytics_db) == 1


class CrashBeforeOffsetCommit(EventConsumer):
    def _commit_offsets(self, consumer, offsets):  # type: ignore[no-untyped-def]
        raise SimulatedCrash


class RecordingConsumer(EventConsumer):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.outcomes: list[bool] = []

    def handle(self, record):  # type: ignore[no-untyped-def]
        outcome = super().handle(record)
        self.outcomes.append(outcome)
        return outcome

    def handle_batch(self, records):  # type: ignore[no-untyped-def]
        outcomes = super().handle_batch(records)
        self.outcomes.extend(outcomes or [])  # None: handled one by one next, through handle()
        return outcomes


def test_consumer_killed_after_its_db_commit_applies_the_event_once_on_redelivery(
        user_db: Engine, analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 1)
    relays().publish_pending()
    crashing = CrashBeforeOffsetCommit("analytics", analytics_uow, kafka_settings, HANDLERS)
    with pytest.raises(SimulatedCrash):
        consume_until(crashing, lambda: False)
    crashing.close()
    assert new_users_counted(analytics_db) == 1

    restarted = RecordingConsumer("analytics", analytics_uow, kafka_settings, HANDLERS)
    consume_until(restarted, lambda: len(restarted.outcomes) >= 1)
    restarted.close()

    assert restarted.outcomes == [False]  # redelivered, recognised, skipped
    assert new_users_counted(analytics_db) == 1
    with analytics_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(processed_events)).scalar_one() == 1


def test_a_new_group_reads_every_retained_event_though_its_kafka_client_never_resets_an_offset(
        user_db: Engine, analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay], caplog: pytest.LogCaptureFixture) -> None:
    # auto_offset_reset="none": kafka-python would jump an out-of-range offset to the log's start silently; the
    # consumer decides instead (tests/unit/common/test_consumer.py injects the errors: tansu never deletes records,
    # and serves nothing for an offset past the log's end rather than OFFSET_OUT_OF_RANGE).
    register_users(user_db, 2)
    relays().publish_pending()
    consumer = EventConsumer("analytics", analytics_uow, kafka_settings, HANDLERS)

    with caplog.at_level(logging.INFO, logger="services.common.consumer"):
        consume_until(consumer, lambda: new_users_counted(analytics_db) == 2)

    assert consumer._get_consumer().config["auto_offset_reset"] == "none"
    assert "no committed offset on" in caplog.text  # the group's partitions were read from their beginning
    consumer.close()


def test_consumer_commits_offsets_so_a_restart_does_not_replay(
        user_db: Engine, analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    relay = relays()
    register_users(user_db, 2)
    relay.publish_pending()
    first = RecordingConsumer("analytics", analytics_uow, kafka_settings, HANDLERS)
    consume_until(first, lambda: len(first.outcomes) >= 2)
    first.close()
    register_users(user_db, 1, first_id=2)
    relay.publish_pending()

    second = RecordingConsumer("analytics", analytics_uow, kafka_settings, HANDLERS)
    consume_until(second, lambda: len(second.outcomes) >= 1)
    second.close()

    assert first.outcomes == [True, True]
    assert second.outcomes == [True]
    assert new_users_counted(analytics_db) == 3


def test_a_failing_handler_is_retried_from_the_same_offset_without_skipping(
        user_db: Engine, analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 1)
    relays().publish_pending()
    calls = []

    def flaky(uow: SqlAnalyticsUnitOfWork, event: UserRegistered, envelope: EventEnvelope) -> None:
        calls.append(envelope.event_id)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        on_user_registered(uow, event, envelope)

    consumer = EventConsumer("analytics", analytics_uow, kafka_settings, {UserRegistered: flaky})
    with pytest.raises(HandlerFailed):
        consume_until(consumer, lambda: False)
    kafka_client = consumer._consumer
    consume_until(consumer, lambda: new_users_counted(analytics_db) == 1)

    assert consumer._consumer is kafka_client  # retried in place: no reconnect, no group rebalance
    consumer.close()
    assert len(calls) == 2 and calls[0] == calls[1]
    with analytics_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(processed_events)).scalar_one() == 1


def delivered(settings: KafkaSettings, user_id: int) -> Delivered:
    envelope = new_envelope(UserRegistered(user_id=user_id, channel="sms",
                                           registered_at=timestamp(datetime(2026, 11, 26, 8, tzinfo=UTC))),
                            producer="user", aggregate_id=str(user_id))
    return Delivered(settings.topic("user-registered"), 0, user_id, encode(envelope))


def outbox_and_processed(engine: Engine) -> tuple[list[tuple[str, str]], list[str]]:
    """(event type, producer) of each outbox row, and the processed event ids."""
    with engine.connect() as conn:
        rows = [(decode(envelope).event_type, decode(envelope).producer)
                for envelope in conn.execute(select(outbox.c.envelope)).scalars()]
        return rows, list(conn.execute(select(processed_events.c.event_id)).scalars())


def republishing(fail: bool) -> Callable[[SqlAnalyticsUnitOfWork, UserRegistered, EventEnvelope], None]:
    """A handler that counts the registration and publishes an event, then fails if told to."""
    def handler(uow: SqlAnalyticsUnitOfWork, event: UserRegistered, envelope: EventEnvelope) -> None:
        on_user_registered(uow, event, envelope)
        uow.publish(UserRegistered(user_id=event.user_id, channel="echo"), aggregate_id=str(event.user_id))
        if fail:
            raise RuntimeError("database hiccup after publishing")
    return handler


def test_an_event_a_handler_publishes_commits_with_the_dedup_record_and_only_once(
        analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork], kafka_settings: KafkaSettings) -> None:
    consumer = EventConsumer("analytics", analytics_uow, kafka_settings, {UserRegistered: republishing(fail=False)})
    record = delivered(kafka_settings, 7)

    outcomes = [consumer.handle(record), consumer.handle(record)]  # the second is a redelivery

    assert outcomes == [True, False]
    assert outbox_and_processed(analytics_db) == ([("user-registered", "analytics")], [decode(record.value).event_id])
    assert new_users_counted(analytics_db) == 1


def test_an_event_a_failing_handler_published_is_rolled_back_with_the_dedup_record(
        analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork], kafka_settings: KafkaSettings) -> None:
    consumer = EventConsumer("analytics", analytics_uow, kafka_settings, {UserRegistered: republishing(fail=True)})

    with pytest.raises(RuntimeError, match="after publishing"):
        consumer.handle(delivered(kafka_settings, 7))

    assert outbox_and_processed(analytics_db) == ([], [])
    assert new_users_counted(analytics_db) == 0


def send_raw(settings: KafkaSettings, event_type: str, value: bytes | None) -> None:
    producer = make_producer(settings)
    producer.send(settings.topic(event_type), key=b"0", value=value).get(timeout=10)
    producer.close()


@pytest.mark.parametrize("poison", [b"\xff\x00 not protobuf", None, "wrong payload"],
                         ids=["not-an-envelope", "tombstone", "payload-of-another-type"])
def test_a_poison_record_is_dead_lettered_and_the_partition_moves_on(
        user_db: Engine, analytics_db: Engine, analytics_uow: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay], poison: bytes | None | str) -> None:
    if poison == "wrong payload":
        envelope = new_envelope(UserRegistered(user_id=0), producer="user", aggregate_id="0")
        envelope.payload = b"\xff\xff\xff"  # no UserRegistered parses from this
        poison = encode(envelope)
    send_raw(kafka_settings, "user-registered", poison)
    register_users(user_db, 1)
    relays().publish_pending()
    consumer = RecordingConsumer("analytics", analytics_uow, kafka_settings, HANDLERS)

    consume_until(consumer, lambda: len(consumer.outcomes) >= 2)
    consumer.close()

    assert consumer.outcomes == [False, True]
    assert new_users_counted(analytics_db) == 1
    with analytics_db.connect() as conn:
        letter = conn.execute(select(dead_letters)).one()
    assert (letter.consumer, letter.topic, letter.offset) == ("analytics", kafka_settings.topic("user-registered"), 0)
    assert letter.payload == (poison or b"")


@dataclass
class Outage:
    """A broker of the test's own (so an outage disturbs no other test) and a way to take it away."""

    settings: KafkaSettings
    begin: Callable[[], None]
    end: Callable[[], None]


@pytest.fixture(params=["paused", "connections-cut"])
def outage(request: pytest.FixtureRequest) -> Iterator[Outage]:
    if request.param == "paused":  # the broker hangs: requests time out
        with DevBroker() as own:
            pid = own.process.pid
            yield Outage(kafka_settings_for(own), lambda: os.kill(pid, signal.SIGSTOP),
                         lambda: os.kill(pid, signal.SIGCONT))
            os.kill(pid, signal.SIGCONT)  # never leave it stopped, whatever happened
    else:  # as if it restarted: connections drop, new ones are refused until it is back
        proxy_port = free_port()
        with DevBroker(advertised_port=proxy_port) as own:
            proxy = TcpProxy(own.port, proxy_port).start()
            yield Outage(kafka_settings_for(own), proxy.cut, proxy.restore)
            proxy.stop()


def test_relay_keeps_working_across_a_broker_outage_with_nothing_lost(
        user_db: Engine, outage: Outage, relays: Callable[..., OutboxRelay]) -> None:
    settings = outage.settings
    relay = relays(settings=settings, idle_seconds=0.05, max_backoff_seconds=0.5)
    stop = threading.Event()
    worker = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    before = register_users(user_db, 3)
    worker.start()
    try:
        read_topic(settings, "user-registered", until=lambda rs: len(rs) >= 3)
        failures_before = OUTBOX_FAILURES.labels("user")._value.get()

        outage.begin()
        during = register_users(user_db, 4)
        deadline = time.monotonic() + 30
        while OUTBOX_FAILURES.labels("user")._value.get() == failures_before:  # the relay noticed the outage
            assert time.monotonic() < deadline, "relay never saw the outage"
            time.sleep(0.05)
        assert unpublished(user_db) == 4
        outage.end()

        records = read_topic(settings, "user-registered",
                             until=lambda rs: set(before + during) <= {decode(r.value).event_id for r in rs})
        # Requests the paused broker had buffered may land and still count as failed for the relay,
        # which then publishes them again (at-least-once); it must end with every row marked.
        deadline = time.monotonic() + 30
        while unpublished(user_db):
            assert time.monotonic() < deadline, "relay did not mark the rows published after the outage"
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=15)
    assert {decode(r.value).event_id for r in records} == set(before + during)


def test_only_one_relay_publishes_and_a_standby_takes_over_when_it_stops(
        user_db: Engine, kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay]) -> None:
    leader, standby = relays(), relays()
    first = register_users(user_db, 2)

    assert (leader.publish_pending(), standby.publish_pending()) == (2, 0)
    second = register_users(user_db, 1)
    assert standby.publish_pending() == 0
    leader.close()

    assert standby.publish_pending() == 1
    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= 3)
    assert sorted(decode(r.value).event_id for r in records) == sorted(first + second)


def test_the_backlog_gauge_shows_what_is_left_after_a_batch(
        user_db: Engine, relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 5)
    relay = relays(batch_size=2)

    relay.publish_pending()
    after_one_batch = OUTBOX_PENDING.labels("user")._value.get()
    relay.publish_pending()
    relay.publish_pending()

    assert (after_one_batch, OUTBOX_PENDING.labels("user")._value.get()) == (3, 0)


def broker_unreachable(settings: KafkaSettings) -> KafkaProducer:
    raise KafkaConnectionError("simulated: this replica cannot reach the broker")


def test_a_leader_that_keeps_failing_yields_to_a_standby(
        user_db: Engine, kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay]) -> None:
    stuck = relays(producer_factory=broker_unreachable, yield_after_failures=3, max_backoff_seconds=0.05)
    healthy = relays(standby_seconds=0.05)
    assert stuck.is_leader() and not healthy.is_leader()
    event_ids = register_users(user_db, 2)
    stop = threading.Event()
    worker = threading.Thread(target=stuck.run, args=(stop,))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not healthy.is_leader():  # the stuck leader lets go after three failed passes
            assert time.monotonic() < deadline, "the failing leader never gave up the lock"
            time.sleep(0.05)
        assert healthy.publish_pending() == 2
    finally:
        stop.set()
        worker.join(timeout=15)
    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= 2)
    assert sorted(decode(r.value).event_id for r in records) == sorted(event_ids)
    assert unpublished(user_db) == 0


def test_a_relay_that_stops_leading_stops_reporting_the_backlog(
        user_db: Engine, relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 3)
    relay = relays(batch_size=1)
    relay.publish_pending()
    assert OUTBOX_PENDING.labels("user")._value.get() == 2

    relay.release_leadership()

    assert ("user",) not in OUTBOX_PENDING._metrics


def test_a_relay_that_stops_leading_stops_reporting_its_lag(user_db: Engine, relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 3)
    relay = relays(batch_size=1)
    relay.publish_pending()
    assert ("user",) in OUTBOX_OLDEST_PENDING_AGE._metrics

    relay.release_leadership()

    assert ("user",) not in OUTBOX_OLDEST_PENDING_AGE._metrics  # the next leader reports it; a stale age would alert


def test_the_leader_session_asks_the_server_to_notice_a_dead_relay_within_a_minute(
        relays: Callable[..., OutboxRelay]) -> None:
    relay = relays()

    assert relay.is_leader()

    leader = relay._leader
    assert leader is not None
    settings = {name: leader.exec_driver_sql(f"SHOW {name}").scalar_one() for name in (
        "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")}
    assert settings == {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10",
                        "tcp_keepalives_count": "3", "tcp_user_timeout": "60000"}


def test_a_leader_whose_connection_died_notices_and_stands_by(
        user_db: Engine, relays: Callable[..., OutboxRelay]) -> None:
    first, second = relays(), relays()
    assert first.is_leader() and first._leader is not None
    backend = first._leader.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with user_db.connect() as conn:  # wait=5000: returns once the backend is gone
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": backend}).scalar_one()

    assert second.is_leader()  # the server freed the lock with the session
    assert not first.is_leader()
    assert first._leader is None
