"""PostgreSQL drops a consumer's connection mid-flow: every event is still applied exactly once.

A running consumer (EventConsumer.run, in a thread, as a service runs it) applies six user-registered events
into the analytics database, one batch per poll (`batched`, as analytics runs) or one transaction per record (as
the other services run). Two faults, each at the worst moment:

- the answer to its COMMIT is lost (a proxy between it and PostgreSQL delivers the COMMIT, throws the answer away
  and drops the connection): the events and their processed_events keys are in the database, the consumer saw an
  error and commits no offset. It must recognise every redelivered record as done, apply none twice, and move on;
- every connection of the analytics database is ended by the server (pg_terminate_backend, as a PostgreSQL
  restart or a failover ends them) while a handler is halfway through the batch: the batch's writes must vanish
  with its processed_events keys, and the records be applied again, each once, on new connections.

Exact outcomes: 6 new users counted, 6 processed_events rows, and the offsets committed at each partition's end.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import TopicPartition
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.pool import NullPool

from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.outbox import OutboxRelay, processed_events
from tests.fixtures.kafka import read_topic
from tests.fixtures.outbox import new_users_counted, register_users
from tests.fixtures.tcp_proxy import POSTGRES_COMMIT, AnswerLosingProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

EVENTS = 6


class WatchedConsumer(EventConsumer):
    """An EventConsumer that records what it decided: how many records each poll brought, each record's outcome
    (True applied, False found done already), and the offsets it committed. `first` keeps each record's first
    outcome: a consumer the group dropped on a busy machine (poll interval exceeded, its offset commit refused)
    gets records again it had applied, and finding those done is right; finding one done before it was ever
    applied is a half-committed transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polls: list[int] = []
        self.outcomes: list[bool] = []
        self.first: dict[tuple[int, int], bool] = {}
        self.committed: dict[TopicPartition, int] = {}

    def _poll(self, consumer, timeout_ms):  # type: ignore[no-untyped-def]
        polled = super()._poll(consumer, timeout_ms)
        if polled:
            self.polls.append(sum(len(batch) for batch in polled.values()))
        return polled

    def handle(self, record):  # type: ignore[no-untyped-def]
        outcome = super().handle(record)
        self.outcomes.append(outcome)
        self.first.setdefault((record.partition, record.offset), outcome)
        return outcome

    def handle_batch(self, records):  # type: ignore[no-untyped-def]
        outcomes = super().handle_batch(records)
        self.outcomes.extend(outcomes or [])  # None: handled one by one next, through handle()
        for record, outcome in zip(records, outcomes or [], strict=False):
            self.first.setdefault((record.partition, record.offset), outcome)
        return outcomes

    def _commit_offsets(self, consumer, offsets):  # type: ignore[no-untyped-def]
        super()._commit_offsets(consumer, offsets)
        self.committed.update(offsets)


@pytest.fixture
def look(analytics_db: Engine) -> Iterator[Engine]:
    """The test's own connections to the analytics database, one per look: none left for the faults to end."""
    engine = create_engine(analytics_db.url, poolclass=NullPool)
    yield engine
    engine.dispose()


def published(user_db: Engine, kafka_settings: KafkaSettings, relays: Callable[..., OutboxRelay]) -> dict[
        TopicPartition, int]:
    """EVENTS user-registered events on the broker; each partition's end offset (what a caught-up group commits)."""
    register_users(user_db, EVENTS)
    assert relays().publish_pending() == EVENTS
    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= EVENTS)
    ends: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        ends[partition] = max(ends.get(partition, 0), record.offset + 1)
    return ends


def processed(look: Engine) -> int:
    with look.connect() as conn:
        return conn.execute(select(func.count()).select_from(processed_events)).scalar_one()


def run_until(consumer: WatchedConsumer, done: Callable[[], bool], timeout_seconds: float = 45) -> None:
    """Run the consumer as a service does (its own loop, its own retries and back-off) until `done()`."""
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + timeout_seconds
        while not done():
            assert worker.is_alive(), "the consumer's loop ended"
            assert time.monotonic() < deadline, (
                f"the consumer did not catch up: outcomes {consumer.outcomes}, committed {consumer.committed}")
            time.sleep(0.05)  # polling an eventual outcome, with a deadline
    finally:
        stop.set()
        worker.join(timeout=15)
    assert not worker.is_alive()


@pytest.mark.parametrize("batched", [True, False], ids=["one-transaction-per-poll", "one-transaction-per-record"])
def test_a_consumer_whose_commit_answer_is_lost_applies_every_event_once_and_commits_its_offsets(
        batched: bool, user_db: Engine, analytics_db: Engine, look: Engine, kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    ends = published(user_db, kafka_settings, relays)
    proxy = AnswerLosingProxy(analytics_db.url.port or 5432).start()
    engine = make_engine(analytics_db.url.set(port=proxy.port).render_as_string(hide_password=False))
    consumer = WatchedConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"),
                               kafka_settings, HANDLERS, batched=batched, max_backoff_seconds=0.2)
    proxy.lose_answer_to(POSTGRES_COMMIT)  # the first COMMIT: the first poll's batch, or its first record
    try:
        run_until(consumer, lambda: consumer.committed == ends)
    finally:
        engine.dispose()
        proxy.stop()

    assert proxy.answers_lost == 1
    assert (new_users_counted(look), processed(look)) == (EVENTS, EVENTS)
    # What the lost COMMIT held (the first poll's records in one batch, else one record) is found done when handled
    # again, each record once; the rest is applied, once each.
    in_lost_commit = consumer.polls[0] if batched and consumer.polls[0] > 1 else 1
    first = list(consumer.first.values())
    assert (first.count(False), first.count(True), consumer.outcomes.count(True)) == (
        in_lost_commit, EVENTS - in_lost_commit, EVENTS - in_lost_commit)


def end_every_connection(look: Engine) -> int:
    """What a PostgreSQL restart does to a service: the server ends every session of its database (ours excepted,
    which asks); returns how many it ended, having waited until each is gone."""
    with look.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()


@pytest.mark.parametrize("batched", [True, False], ids=["one-transaction-per-poll", "one-transaction-per-record"])
def test_connections_ended_by_the_server_halfway_through_a_batch_lose_nothing_and_apply_nothing_twice(
        batched: bool, user_db: Engine, analytics_db: Engine, look: Engine, kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    ends = published(user_db, kafka_settings, relays)
    engine = make_engine(analytics_db.url.render_as_string(hide_password=False))
    calls: list[str] = []
    ended: list[int] = []
    on_user_registered = HANDLERS[UserRegistered]

    def ending_mid_batch(uow, payload, envelope):  # type: ignore[no-untyped-def]
        calls.append(envelope.event_id)
        if len(calls) == 3:  # the third event, halfway through: this handler's connection is ended too
            ended.append(end_every_connection(look))
        on_user_registered(uow, payload, envelope)

    consumer = WatchedConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"),
                               kafka_settings, {**HANDLERS, UserRegistered: ending_mid_batch}, batched=batched,
                               max_backoff_seconds=0.2)
    try:
        run_until(consumer, lambda: consumer.committed == ends)
    finally:
        engine.dispose()

    assert len(ended) == 1 and ended[0] >= 1
    assert (new_users_counted(look), processed(look)) == (EVENTS, EVENTS)
    # Nothing the dropped transaction wrote survived it: every record was applied (True) exactly once, none found
    # done by a half-committed batch before it was applied.
    assert (consumer.outcomes.count(True), list(consumer.first.values())) == (EVENTS, [True] * EVENTS)
