"""EventConsumer's offset handling against a scripted Kafka consumer (the real broker is in integration)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, LogTruncationError, NoOffsetForPartitionError, OffsetOutOfRangeError
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.product_events_pb2 import ProductViewed
from mall.events.v1.user_events_pb2 import UserRegistered
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from services.analytics.consumers import on_user_registered
from services.analytics.db import SqlAnalyticsUnitOfWork, daily_counters
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer, HandlerFailed
from services.common.events import encode, new_envelope, timestamp
from services.common.outbox import dead_letters
from tests.fixtures.kafka import Delivered, ScriptedConsumer, batch
from tests.fixtures.metrics import CounterDeltas

SETTINGS = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=1000, topic_prefix="",
                         request_timeout_ms=1000)
TOPIC = SETTINGS.topic("user-registered")


def registration(user_id: int, partition: int, offset: int) -> Delivered:
    envelope = new_envelope(UserRegistered(user_id=user_id, channel="sms",
                                           registered_at=timestamp(datetime(2026, 11, 26, tzinfo=UTC))),
                            producer="user", aggregate_id=str(user_id))
    return Delivered(TOPIC, partition, offset, encode(envelope))


def counted(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(daily_counters.c.value), 0))
                            .where(daily_counters.c.metric == "new_users")).scalar_one()


@pytest.fixture
def analytics_db(sqlite_service_engine: Callable[[str], Engine]) -> Engine:
    return sqlite_service_engine("analytics")


def consumer_for(engine: Engine, scripted: ScriptedConsumer,
                 fail_user_ids: set[int]) -> EventConsumer[SqlAnalyticsUnitOfWork]:
    def handler(uow: SqlAnalyticsUnitOfWork, event: UserRegistered, envelope: EventEnvelope) -> None:
        if event.user_id in fail_user_ids:
            raise RuntimeError("database hiccup")
        on_user_registered(uow, event, envelope)

    return EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), SETTINGS,
                         {UserRegistered: handler}, batched=True,
                         consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]


def test_a_failure_rewinds_only_its_partition_and_the_others_carry_on(analytics_db: Engine) -> None:
    p0 = [registration(1, 0, 10), registration(2, 0, 11), registration(3, 0, 12)]
    p1 = [registration(4, 1, 20), registration(5, 1, 21)]
    p2 = [registration(6, 2, 30)]
    scripted = ScriptedConsumer([batch(*p0, *p1, *p2)])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids={2})

    with pytest.raises(HandlerFailed, match="@11"):
        consumer.poll_once()

    assert scripted.seeks == [(0, 11)]  # user 2 and what follows it come again
    assert scripted.commits == [(0, 11), (1, 22), (2, 31)]
    assert counted(analytics_db) == 4  # users 1, 4, 5, 6


def test_a_partition_that_keeps_failing_does_not_stall_the_others(analytics_db: Engine) -> None:
    stuck = registration(1, 0, 10)
    polls = [batch(stuck, registration(10 + n, 1, 20 + n)) for n in range(3)]
    scripted = ScriptedConsumer(polls)
    consumer = consumer_for(analytics_db, scripted, fail_user_ids={1})

    for _ in range(3):
        with pytest.raises(HandlerFailed):
            consumer.poll_once()

    assert scripted.commits == [(1, 21), (1, 22), (1, 23)]
    assert counted(analytics_db) == 3


def test_records_redelivered_after_a_failure_are_each_applied_once(analytics_db: Engine) -> None:
    user1, user2, user4 = registration(1, 0, 10), registration(2, 0, 11), registration(4, 1, 20)
    # The second poll delivers user 2 again (rewound) and user 4 again, as after a crash between
    # its transaction and its offset commit.
    scripted = ScriptedConsumer([batch(user1, user2, user4), batch(user2, user4)])
    fail_once = {2}
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=fail_once)

    with pytest.raises(HandlerFailed):
        consumer.poll_once()
    fail_once.clear()

    assert consumer.poll_once() == 2
    assert scripted.commits == [(0, 11), (1, 21), (0, 12), (1, 21)]
    assert counted(analytics_db) == 3


def counting(engine: Engine, opened: list[int]) -> Callable[[], SqlAnalyticsUnitOfWork]:
    def uow() -> SqlAnalyticsUnitOfWork:
        opened.append(1)
        return SqlAnalyticsUnitOfWork(engine, "analytics")
    return uow


def test_a_batched_consumer_applies_a_poll_in_one_unit_of_work_and_one_offset_commit(analytics_db: Engine) -> None:
    scripted = ScriptedConsumer([batch(registration(1, 0, 10), registration(2, 0, 11), registration(3, 1, 20))])
    opened: list[int] = []
    consumer = EventConsumer("analytics", counting(analytics_db, opened), SETTINGS,
                             {UserRegistered: on_user_registered}, batched=True,
                             consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    assert consumer.poll_once() == 3

    assert len(opened) == 1
    assert scripted.commits == [(0, 12), (1, 21)]
    assert counted(analytics_db) == 3


def test_a_consumer_not_declared_batched_applies_each_record_in_its_own_unit_of_work(analytics_db: Engine) -> None:
    scripted = ScriptedConsumer([batch(registration(1, 0, 10), registration(2, 0, 11), registration(3, 1, 20))])
    opened: list[int] = []
    consumer = EventConsumer("analytics", counting(analytics_db, opened), SETTINGS,
                             {UserRegistered: on_user_registered},
                             consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    assert consumer.poll_once() == 3

    assert len(opened) == 3  # one transaction per event: no row lock outlives its own event
    assert scripted.commits == [(0, 12), (1, 21)]  # still one offset commit per poll
    assert counted(analytics_db) == 3


def test_an_event_twice_in_one_batch_is_applied_once(analytics_db: Engine) -> None:
    first = registration(1, 0, 10)
    again = Delivered(first.topic, 0, 11, first.value)  # the same envelope, republished
    scripted = ScriptedConsumer([batch(first, again, registration(2, 0, 12))])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    assert consumer.handle_batch(scripted.polls[0][TopicPartition(TOPIC, 0)]) == [True, False, True]
    assert counted(analytics_db) == 2


def test_a_batch_with_a_failing_record_changes_nothing_and_is_handled_one_by_one(analytics_db: Engine) -> None:
    records = [registration(1, 0, 10), registration(2, 0, 11)]
    consumer = consumer_for(analytics_db, ScriptedConsumer([]), fail_user_ids={2})

    assert consumer.handle_batch(records) is None
    assert counted(analytics_db) == 0  # user 1's effects were rolled back with the batch


def test_a_record_that_does_not_decode_sends_its_batch_one_by_one_and_is_dead_lettered_once(
        analytics_db: Engine) -> None:
    poison = Delivered(TOPIC, 0, 11, b"\xff\x00 not protobuf")
    scripted = ScriptedConsumer([batch(registration(1, 0, 10), poison, registration(2, 0, 12))])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    assert consumer.poll_once() == 3

    assert scripted.commits == [(0, 13)]
    assert counted(analytics_db) == 2
    with analytics_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dead_letters)).scalar_one() == 1


# Offsets the group has none of, or that the log no longer holds (make_consumer: auto_offset_reset="none")

def dead_letter_rows(engine: Engine) -> list[tuple[str, int, int, str | None, str]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(  # type: ignore[misc]
            dead_letters.c.topic, dead_letters.c.partition, dead_letters.c.offset, dead_letters.c.event_id,
            dead_letters.c.reason).order_by(dead_letters.c.id))]


def test_a_partition_the_group_never_committed_on_is_read_from_its_beginning(analytics_db: Engine) -> None:
    no_offset = NoOffsetForPartitionError({TopicPartition(TOPIC, 1), TopicPartition(TOPIC, 0)})
    scripted = ScriptedConsumer([no_offset, batch(registration(1, 0, 0), registration(2, 1, 0))])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    assert consumer.poll_once() == 0
    assert consumer.poll_once() == 2

    assert (scripted.seeks_to_beginning, scripted.seeks) == ([0, 1], [])
    assert scripted.commits == [(0, 1), (1, 1)]
    assert counted(analytics_db) == 2


def test_records_deleted_by_retention_before_they_were_read_are_recorded_counted_and_the_partition_goes_on(
        analytics_db: Engine) -> None:
    # The group committed offset 10 of partition 0; retention has since deleted offsets 10-14.
    out_of_range = OffsetOutOfRangeError({TopicPartition(TOPIC, 0): 10})
    scripted = ScriptedConsumer([out_of_range, batch(registration(1, 0, 15))], log_starts={0: 15})
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())
    deltas = CounterDeltas()

    assert consumer.poll_once() == 0
    assert (scripted.seeks, scripted.commits) == ([(0, 15)], [(0, 15)])
    assert consumer.poll_once() == 1

    assert dead_letter_rows(analytics_db) == [
        (TOPIC, 0, 10, None, f"offset out of range: records 10..14 of {TOPIC}/0 were deleted from the log (retention) "
                             "before consumer analytics read them; resumed at 15")]
    assert deltas() == {
        f'mall_consumer_offset_out_of_range_total{{consumer="analytics",topic="{TOPIC}"}}': 1,
        f'mall_events_consumed_total{{consumer="analytics",outcome="applied",topic="{TOPIC}"}}': 1}
    assert scripted.commits == [(0, 15), (0, 16)]
    assert counted(analytics_db) == 1


class CommitFailsOnce(ScriptedConsumer):
    """The first offset commit fails (the group rebalanced, the coordinator moved): run() reconnects and the
    committed offset is still the old one."""

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if not getattr(self, "failed_once", False):
            self.failed_once = True
            raise CommitFailedError("the group rebalanced")
        super().commit(offsets)


def lost_range_whose_commit_failed(analytics_db: Engine) -> tuple[CommitFailsOnce, Any]:
    """Records 10..14 deleted before the consumer read them, met twice from offset 10; the first time the dead letter
    is written but the offset commit (to 15) fails. The scripted consumer and the consumer, before the second time."""
    def out_of_range() -> OffsetOutOfRangeError:
        return OffsetOutOfRangeError({TopicPartition(TOPIC, 0): 10})
    scripted = CommitFailsOnce([out_of_range(), out_of_range()], log_starts={0: 15})
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())
    with pytest.raises(CommitFailedError):
        consumer.poll_once()
    return scripted, consumer


def test_a_lost_range_met_again_after_its_offset_commit_failed_is_recorded_once(analytics_db: Engine) -> None:
    scripted, consumer = lost_range_whose_commit_failed(analytics_db)

    assert consumer.poll_once() == 0  # the same range again, from the same committed offset

    assert [row[:4] for row in dead_letter_rows(analytics_db)] == [(TOPIC, 0, 10, None)]
    assert scripted.commits == [(0, 15)]


def test_a_log_truncation_moves_back_only_the_partitions_this_member_still_owns(analytics_db: Engine) -> None:
    mine, gone = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    truncated = LogTruncationError({mine: OffsetAndMetadata(7, "", 3), gone: OffsetAndMetadata(4, "", 3)})
    scripted = ScriptedConsumer([truncated], owned={mine})
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    assert consumer.poll_once() == 0

    assert (scripted.seeks, scripted.seeks_to_beginning) == ([(0, 7)], [])


def test_an_offset_past_the_end_of_a_recreated_log_reads_the_log_again_from_its_start(analytics_db: Engine) -> None:
    out_of_range = OffsetOutOfRangeError({TopicPartition(TOPIC, 0): 1000})
    scripted = ScriptedConsumer([out_of_range, batch(registration(1, 0, 0))], log_starts={0: 0})
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())
    deltas = CounterDeltas()

    assert consumer.poll_once() == 0
    assert consumer.poll_once() == 1

    assert (scripted.seeks, scripted.commits) == ([(0, 0)], [(0, 0), (0, 1)])
    assert dead_letter_rows(analytics_db) == []  # nothing was skipped
    assert deltas()[f'mall_consumer_offset_out_of_range_total{{consumer="analytics",topic="{TOPIC}"}}'] == 1
    assert counted(analytics_db) == 1


# A crash between the dead letter's commit and the offset commit delivers the poison record again

def test_a_poison_record_redelivered_after_its_offset_commit_failed_is_dead_lettered_once(analytics_db: Engine) -> None:
    poison = Delivered(TOPIC, 0, 7, b"\xff\x00 not protobuf")
    scripted = ScriptedConsumer([batch(poison), batch(poison)])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    consumer.poll_once()  # dead-lettered; say the process died before the commit reached the broker
    consumer.poll_once()  # the group delivers the same record again

    assert [row[:3] for row in dead_letter_rows(analytics_db)] == [(TOPIC, 0, 7)]


def registration_dated_before_the_shop(user_id: int, partition: int, offset: int) -> tuple[Delivered, str]:
    """A user-registered the analytics handler finds invalid (dated outside the shop's years), and its event id."""
    envelope = new_envelope(UserRegistered(user_id=user_id, channel="sms",
                                           registered_at=timestamp(datetime(1990, 1, 1, tzinfo=UTC))),
                            producer="user", aggregate_id=str(user_id))
    return Delivered(TOPIC, partition, offset, encode(envelope)), envelope.event_id


def test_another_poison_event_at_an_offset_a_recreated_topic_reuses_gets_a_dead_letter_of_its_own(
        analytics_db: Engine) -> None:
    (old, old_event_id), (new, new_event_id) = (registration_dated_before_the_shop(1, 0, 5),
                                                registration_dated_before_the_shop(2, 0, 5))
    recreated = OffsetOutOfRangeError({TopicPartition(TOPIC, 0): 900})  # the committed 6 is past the new log's end
    scripted = ScriptedConsumer([batch(old), recreated, batch(new)], log_starts={0: 0})
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    for _ in range(3):
        consumer.poll_once()

    assert [row[:4] for row in dead_letter_rows(analytics_db)] == [(TOPIC, 0, 5, old_event_id),
                                                                   (TOPIC, 0, 5, new_event_id)]
    assert scripted.commits == [(0, 6), (0, 0), (0, 6)]


def test_other_bytes_that_are_no_event_at_an_offset_met_before_get_a_dead_letter_of_their_own(
        analytics_db: Engine) -> None:
    old, new = Delivered(TOPIC, 0, 5, b"\xff\x00 not protobuf"), Delivered(TOPIC, 0, 5, b"\xff\x01 not protobuf either")
    truncated = LogTruncationError({TopicPartition(TOPIC, 0): OffsetAndMetadata(5, "", 3)})  # the log rolled back to 5
    scripted = ScriptedConsumer([batch(old), truncated, batch(new), batch(new)], owned={TopicPartition(TOPIC, 0)})
    consumer = consumer_for(analytics_db, scripted, fail_user_ids=set())

    for _ in range(4):  # the last delivers `new` again, as after a lost offset commit
        consumer.poll_once()

    with analytics_db.connect() as conn:
        assert list(conn.execute(select(dead_letters.c.offset, dead_letters.c.payload).order_by(dead_letters.c.id))) == [
            (5, old.value), (5, new.value)]


def test_a_lost_range_that_grew_before_the_retry_is_recorded_again_with_its_full_extent(analytics_db: Engine) -> None:
    scripted, consumer = lost_range_whose_commit_failed(analytics_db)
    scripted.log_starts[0] = 20  # retention deleted offsets 15-19 too before the retry

    assert consumer.poll_once() == 0

    assert [row[2:] for row in dead_letter_rows(analytics_db)] == [
        (10, None, f"offset out of range: records 10..14 of {TOPIC}/0 were deleted from the log (retention) "
                   "before consumer analytics read them; resumed at 15"),
        (10, None, f"offset out of range: records 10..19 of {TOPIC}/0 were deleted from the log (retention) "
                   "before consumer analytics read them; resumed at 20")]
    assert scripted.commits == [(0, 20)]


def test_an_event_the_handler_finds_invalid_redelivered_is_dead_lettered_once(analytics_db: Engine) -> None:
    # dated outside the shop's years: the analytics handler raises InvalidEvent
    envelope = new_envelope(UserRegistered(user_id=5, channel="sms",
                                           registered_at=timestamp(datetime(1990, 1, 1, tzinfo=UTC))),
                            producer="user", aggregate_id="5")
    record = Delivered(TOPIC, 1, 3, encode(envelope))
    consumer = consumer_for(analytics_db, ScriptedConsumer([batch(record), batch(record)]), fail_user_ids=set())

    consumer.poll_once()
    consumer.poll_once()

    assert [row[:4] for row in dead_letter_rows(analytics_db)] == [(TOPIC, 1, 3, envelope.event_id)]


# Schema evolution: a newer producer's fields are ignored by an older consumer, not a reason to dead-letter

def newer_field(data: bytes) -> bytes:
    """`data` with field 99 (length-delimited), which no message of this version declares, appended."""
    return data + bytes([(99 << 3 | 2) & 0x7F | 0x80, (99 << 3 | 2) >> 7, 5]) + b"newer"


def test_an_event_whose_envelope_and_payload_carry_fields_of_a_newer_version_is_applied(analytics_db: Engine) -> None:
    envelope = new_envelope(UserRegistered(user_id=8, channel="sms",
                                           registered_at=timestamp(datetime(2026, 11, 26, tzinfo=UTC))),
                            producer="user", aggregate_id="8")
    envelope.payload = newer_field(envelope.payload)
    record = Delivered(TOPIC, 0, 0, newer_field(encode(envelope)))
    consumer = consumer_for(analytics_db, ScriptedConsumer([batch(record)]), fail_user_ids=set())

    assert consumer.poll_once() == 1

    assert counted(analytics_db) == 1
    assert dead_letter_rows(analytics_db) == []


# A rebalance (or an eviction for exceeding max_poll_interval_ms) between the DB commit and the offset commit

class CommitRefusedOnce(ScriptedConsumer):
    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if not getattr(self, "refused", False):
            self.refused = True
            raise CommitFailedError("simulated: the group rebalanced while the poll was being handled")
        super().commit(offsets)


@pytest.mark.parametrize("batched", [True, False])
def test_records_whose_offset_commit_a_rebalance_refused_are_applied_once_when_delivered_again(
        analytics_db: Engine, batched: bool) -> None:
    records = [registration(1, 0, 10), registration(2, 0, 11), registration(3, 1, 20)]
    scripted = CommitRefusedOnce([batch(*records), batch(*records)])
    consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, analytics_db, "analytics"),
                             SETTINGS, {UserRegistered: on_user_registered}, batched=batched,
                             consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]
    with pytest.raises(CommitFailedError):
        consumer.poll_once()

    assert consumer.poll_once() == 3  # handled: skipped as duplicates

    assert scripted.commits == [(0, 12), (1, 21)]
    assert counted(analytics_db) == 3


def test_the_consumer_group_carries_the_topic_prefix_so_environments_sharing_a_broker_never_share_a_group(
        analytics_db: Engine) -> None:
    asked: list[tuple[str, list[str]]] = []

    def factory(kafka: KafkaSettings, group_id: str, topics: list[str]) -> ScriptedConsumer:
        asked.append((group_id, topics))
        return ScriptedConsumer([])

    staging = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=1000, topic_prefix="staging-",
                            request_timeout_ms=1000)
    consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, analytics_db, "analytics"),
                             staging, {UserRegistered: on_user_registered},
                             consumer_factory=factory)  # type: ignore[arg-type]

    consumer.poll_once()

    assert asked == [("staging-analytics", ["staging-user-registered"])]


# Retry back-off

class StopAfterWaits:
    """Stands in for run()'s stop event: records each back-off waited, and is set after `waits` of them."""

    def __init__(self, waits: int) -> None:
        self.waited: list[float] = []
        self.left = waits

    def is_set(self) -> bool:
        return self.left <= 0

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.left -= 1
        return self.is_set()


def test_the_back_off_keeps_growing_while_a_record_keeps_failing_though_other_partitions_move_on(
        analytics_db: Engine) -> None:
    stuck = registration(1, 0, 10)
    scripted = ScriptedConsumer([batch(stuck, registration(2, 1, 20)), batch(registration(3, 1, 21)),
                                 batch(stuck), batch(stuck)])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids={1})
    stop = StopAfterWaits(3)

    consumer.run(stop)  # type: ignore[arg-type]

    assert stop.waited == [0.1, 0.2, 0.4]  # not back to 0.1 because partition 1 had a poll without failure
    assert counted(analytics_db) == 2


def test_a_failure_after_the_failing_partition_was_taken_away_backs_off_from_the_start(analytics_db: Engine) -> None:
    """Partition 0 fails three times, then a rebalance gives it to another member; partition 1's records apply, until
    one fails once: a fresh failure, retried after the shortest wait, not the longest the old one had reached."""
    stuck = registration(1, 0, 10)
    scripted = ScriptedConsumer([batch(stuck), batch(stuck), batch(stuck), batch(registration(2, 1, 20)),
                                 batch(registration(3, 1, 21)), batch(registration(4, 1, 22))])
    consumer = consumer_for(analytics_db, scripted, fail_user_ids={1, 4})
    stop = StopAfterWaits(4)

    consumer.run(stop)  # type: ignore[arg-type]

    assert stop.waited == [0.1, 0.2, 0.4, 0.1]


# A counter series born at 1 shows no increase(): the "any one is too many" alerts would miss the first event.

def test_a_new_consumer_exports_its_dead_letter_and_lost_range_counters_at_zero_for_each_topic() -> None:
    prefixed = dataclasses.replace(SETTINGS, topic_prefix="staging-")

    EventConsumer("fresh", lambda: None, prefixed,  # type: ignore[arg-type,return-value]
                  {UserRegistered: lambda *_: None, ProductViewed: lambda *_: None})

    series = {(metric, topic): REGISTRY.get_sample_value(metric, {"consumer": "fresh", "topic": topic, **labels})
              for topic in ("staging-user-registered", "staging-product-viewed")
              for metric, labels in (("mall_events_consumed_total", {"outcome": "dead_lettered"}),
                                     ("mall_consumer_offset_out_of_range_total", {}))}
    assert set(series.values()) == {0.0}
