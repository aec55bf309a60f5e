"""Idempotent event consumer: apply each event once, in the same transaction as its dedup record."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import LogTruncationError, NoOffsetForPartitionError, OffsetOutOfRangeError
from mall.events.v1.envelope_pb2 import EventEnvelope
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from services.common import events
from services.common.config import KafkaSettings
from services.common.db import refused_data, utcnow
from services.common.kafka import consumer_request_timeout_ms, make_consumer
from services.common.liveness import LIVENESS_MARGIN_SECONDS, Clock, Heartbeat
from services.common.logs import request_id_var
from services.common.metrics import (
    CONSUMED_OUTCOMES,
    CONSUMER_FAILURES,
    CONSUMER_OFFSET_OUT_OF_RANGE,
    EVENTS_CONSUMED,
)
from services.common.outbox import dead_letter_reason, dead_letters, processed_events
from services.common.uow import SqlUnitOfWork

log = logging.getLogger(__name__)

U = TypeVar("U", bound=SqlUnitOfWork)

# handler(uow, payload, envelope) applies one event, its payload already parsed as the message
# type it is registered for, in the unit of work that also records the event as processed: it may
# publish events (they commit with it) and must not commit. It raises events.InvalidEvent for an
# event it can never apply (that event is dead-lettered) and any other exception for a failure
# worth retrying.
Handler = Callable[[U, Any, EventEnvelope], None]

# What delivering the same record again can only repeat, so it is dead-lettered rather than retried for ever (which
# would stop its partition): an event the handler calls invalid, or data the database refuses (a DataError, SQLSTATE
# class 22: NUL in text, a number out of range, text too long), the same statement with the same values every time.
# A database that is down or busy (OperationalError) is not one of them: that passes.
NEVER_APPLICABLE = (events.InvalidEvent, DataError)


def never_applicable_reason(exc: Exception) -> str:
    """Why a record is dead-lettered: what the database refused for a DataError, the InvalidEvent's message
    otherwise."""
    if isinstance(exc, DataError):
        return "the database refuses the event's data: " + refused_data(exc)
    return str(exc)


POLL_TIMEOUT_MS = 500  # how long EventConsumer.run's poll waits for records


class HandlerFailed(Exception):
    """A handler failed for a reason that may pass; the record will be delivered again."""


class EventConsumer(Generic[U]):
    """Consumes the event types of `handlers` ({payload message type: handler}) as consumer group `name`.

    Each record is applied in a unit of work of its own (`uow()`): its (name, event_id) row goes into
    processed_events and its handler runs, one DB commit. Once the records of a poll (up to
    KafkaSettings.max_poll_records) are applied, their offsets are committed, in one call. A crash in
    between redelivers the records, and the processed_events keys turn the replay into a no-op.

    `batched=True` applies what one poll returns in ONE unit of work instead: the new events' keys go
    into processed_events, the handlers run in order (an event seen before, in an earlier batch or
    earlier in this one, is skipped), one DB commit. Only for handlers whose writes no request path
    locks (analytics: facts and rollups): the batch holds every row lock it takes until its commit,
    taken in event order, so a handler updating rows a gRPC call also locks (stock, balances, points,
    coupons) would make that call wait for the whole batch, or deadlock with it when the two lock the
    same rows in a different order (a checkout reserving SKUs [a, b] while a batch confirms b, then a).
    When anything in a batch fails (a handler raises, a record does not decode, a concurrent
    consumer inserted a key first) the batch is rolled back and its records are handled one by one,
    each in a unit of work of its own: that isolates the failing record.

    A handler that fails is retried from the same offset with backoff, the consumer kept (no
    rebalance); the backoff keeps doubling (to max_backoff_seconds) until that record is applied,
    whatever the other partitions do meanwhile. A record that can never be applied (not an envelope, a payload that does not
    parse, an event on the wrong topic, one the handler finds invalid or whose data the database
    refuses: NEVER_APPLICABLE) goes to the dead_letters table, with its bytes, and the partition
    moves on: one poison message must not stop the shop.

    A new group starts at the beginning of each partition's log. A group whose committed offset is
    no longer in the log (the records were deleted by retention before it read them: a record that
    kept failing, or a consumer down, for longer than the topic keeps events) resumes at the log's
    start, and the gap is not skipped silently: logged at error, counted in
    mall_consumer_offset_out_of_range_total (an alert) and recorded in dead_letters with the range of
    offsets lost. Stopping the partition instead would not bring those records back, and would let
    the ones after them expire too while it waits.
    """

    def __init__(self, name: str, uow: Callable[[], U], kafka: KafkaSettings,
                 handlers: Mapping[type[Message], Handler[U]], *, batched: bool = False,
                 max_backoff_seconds: float = 10.0,
                 consumer_factory: Callable[[KafkaSettings, str, list[str]], KafkaConsumer] = make_consumer,
                 clock: Clock = time.monotonic) -> None:
        self.name = name
        self.uow = uow
        self.kafka = kafka
        self.batched = batched
        self._routes = {events.event_type_of(message_type): (message_type, handler)
                        for message_type, handler in handlers.items()}
        # Stay well inside max_poll_interval_ms, or the group would evict us while we wait.
        self.max_backoff_seconds = min(max_backoff_seconds, kafka.max_poll_interval_ms / 2000)
        self.consumer_factory = consumer_factory
        self._topics = {kafka.topic(event_type): event_type for event_type in self._routes}
        # Every series exists at 0 from the start: a counter born at 1 shows no increase(), and the "any one is too
        # many" alerts (EventsDeadLettered, ConsumerOffsetOutOfRange) would miss the first event.
        for topic in self._topics:
            for outcome in CONSUMED_OUTCOMES:
                EVENTS_CONSUMED.labels(name, topic, outcome)
            CONSUMER_FAILURES.labels(name, topic)
            CONSUMER_OFFSET_OUT_OF_RANGE.labels(name, topic)
        self._consumer: KafkaConsumer | None = None
        # Partitions rewound to a record that failed: the back-off keeps growing until that record is applied, not
        # merely until a poll that happened to bring only other partitions' records.
        self._failing: set[TopicPartition] = set()
        self.heartbeat = Heartbeat(f"consumer-{name}", self.liveness_bound_seconds(), clock=clock)

    def liveness_bound_seconds(self) -> float:
        """The longest one pass of `run` takes while the loop works, plus LIVENESS_MARGIN_SECONDS: the poll
        (POLL_TIMEOUT_MS), handling what it returned (at most max_poll_interval_ms, or the group evicts this
        member anyway), the offset commit or closing a failed consumer (its request timeout, at least the session
        timeout + 1 s: make_consumer) and the back-off. 370.5 s with the defaults."""
        kafka = self.kafka
        return ((POLL_TIMEOUT_MS + kafka.max_poll_interval_ms + consumer_request_timeout_ms(kafka)) / 1000
                + self.max_backoff_seconds
                + LIVENESS_MARGIN_SECONDS)

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; back off on handler failures, reconnect on broker failures."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self.poll_once()
                if not self._failing:
                    backoff = 0.0
            except HandlerFailed:
                backoff = min(self.max_backoff_seconds, max(0.1, backoff * 2))
                log.warning("consumer %s: handler failed; retrying in %.1fs", self.name, backoff, exc_info=True)
                stop.wait(backoff)
            except Exception:
                backoff = min(self.max_backoff_seconds, max(0.1, backoff * 2))
                log.warning("consumer %s failed; reconnecting in %.1fs", self.name, backoff, exc_info=True)
                self.close()
                stop.wait(backoff)
            self.heartbeat.beat()
        self.close()

    def poll_once(self, timeout_ms: int = POLL_TIMEOUT_MS) -> int:
        """Handle what one poll returns; returns how many records were handled (applied or skipped).

        Offsets are committed once per poll, after the records' own transactions (the batch's one when
        `batched`): a crash in between only redelivers records whose effects processed_events already
        holds. A handler failure rewinds its partition to the failing record (the next poll delivers it
        again) and the other partitions carry on; HandlerFailed is raised after all of them.
        """
        consumer = self._get_consumer()
        self._failing.intersection_update(consumer.assignment())  # a failing partition a rebalance took away
        polled = self._poll(consumer, timeout_ms)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        if self.batched and len(records) > 1 and self.handle_batch(records) is not None:
            self._commit_offsets(consumer, {partition: batch[-1].offset + 1 for partition, batch in polled.items()})
            self._failing.difference_update(polled)
            return len(records)
        handled = 0
        failure: HandlerFailed | None = None
        offsets: dict[TopicPartition, int] = {}
        for partition, batch in polled.items():
            for record in batch:
                try:
                    self.handle(record)
                except Exception as exc:
                    CONSUMER_FAILURES.labels(self.name, record.topic).inc()
                    consumer.seek(partition, record.offset)
                    self._failing.add(partition)
                    if failure is None:
                        failure = HandlerFailed(f"{record.topic}@{record.offset}: {exc!r}")
                        failure.__cause__ = exc
                    break
                offsets[partition] = record.offset + 1
                self._failing.discard(partition)
                handled += 1
        if offsets:
            self._commit_offsets(consumer, offsets)
        if failure is not None:
            raise failure
        return handled

    def _poll(self, consumer: KafkaConsumer, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """consumer.poll(), settling the positions make_consumer leaves to us (auto_offset_reset="none").

        When a partition needs a position (none committed, or the committed one out of range) this poll
        returns nothing and sets it; the next poll reads from there.
        """
        try:
            return consumer.poll(timeout_ms=timeout_ms)
        except NoOffsetForPartitionError as exc:
            partitions = sorted(exc.args[0])
            log.info("consumer %s: no committed offset on %s; reading from the beginning", self.name,
                     ", ".join(f"{tp.topic}/{tp.partition}" for tp in partitions))
            consumer.seek_to_beginning(*partitions)
        except OffsetOutOfRangeError as exc:
            self._resume_out_of_range(consumer, exc.args[0])
        except LogTruncationError as exc:
            # An unclean leader election rolled the log back under our position: read again from where it diverged
            # (or its start), as the "earliest" policy did; what is read again, processed_events skips.
            log.warning("consumer %s: %s; reading again from where the log diverged", self.name, exc)
            owned = consumer.assignment()  # kafka-python keeps the error across a rebalance: seek only our own
            for partition, divergent in exc.divergent_offsets.items():
                if partition not in owned:
                    continue
                if divergent is None:
                    consumer.seek_to_beginning(partition)
                else:
                    consumer.seek(partition, divergent.offset)
        return {}

    def _resume_out_of_range(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        """Move each partition whose position is out of its log's range to the log's start, leaving a trace.

        Before the start (retention deleted records this group never read): the lost range goes into
        dead_letters. Past the end (the log was truncated or the topic recreated): nothing was skipped,
        the records there now are read. Both are counted and logged at error: neither should happen.
        """
        starts = consumer.beginning_offsets(list(offsets))
        for partition, offset in offsets.items():
            start = starts[partition]
            where = f"{partition.topic}/{partition.partition}"
            if start > offset:
                reason = (f"offset out of range: records {offset}..{start - 1} of {where} were deleted from the log "
                          f"(retention) before consumer {self.name} read them; resumed at {start}")
                log.error("consumer %s: %s", self.name, reason)
                self._record_lost_range(partition, offset, reason)
            else:
                log.error("consumer %s: committed offset %d of %s is past the log's end (log truncated or topic "
                          "recreated); reading again from the log's start, %d", self.name, offset, where, start)
            self._commit_offsets(consumer, {partition: start})  # a restart must not report the same range again
            consumer.seek(partition, start)
            CONSUMER_OFFSET_OUT_OF_RANGE.labels(self.name, partition.topic).inc()

    def _record_lost_range(self, partition: TopicPartition, first_offset: int, reason: str) -> None:
        """One dead_letters row per lost range (no event id, no bytes): a retry after the offset commit failed
        (rebalance, coordinator moved, process killed), or another replica taking the partition over, meets the
        same range again and finds it recorded. The reason names the range, so it tells them apart: when retention
        deleted more records before the retry (the same first offset, a later resume point), the wider range gets a
        row of its own rather than the first row understating what was lost."""
        self._dead_letter_once(partition.topic, partition.partition, first_offset, None, reason, b"",
                               dead_letters.c.event_id.is_(None),
                               dead_letters.c.reason == dead_letter_reason(reason))

    def handle_batch(self, records: Sequence[ConsumerRecord]) -> list[bool] | None:
        """Apply `records` in one unit of work; per record, False when it was a duplicate.

        None (and nothing changed) when the batch could not be applied as a whole: a record that
        does not decode, or any failure while applying; the caller then handles them one by one.
        """
        try:
            decoded = [self._decode(record) for record in records]
        except events.InvalidEvent:
            return None
        first_seen: dict[str, int] = {}
        for index, (envelope, _, _) in enumerate(decoded):
            first_seen.setdefault(envelope.event_id, index)
        try:
            with self.uow() as uow:
                seen = self._processed(uow.session, list(first_seen))
                new = [index for event_id, index in first_seen.items() if event_id not in seen]
                if new:
                    now = utcnow()
                    uow.session.execute(processed_events.insert(), [
                        {"consumer": self.name, "event_id": decoded[i][0].event_id,
                         "event_type": decoded[i][0].event_type, "processed_at": now} for i in new])
                for index in new:
                    envelope, payload, handler = decoded[index]
                    token = request_id_var.set(envelope.request_id)
                    try:
                        handler(uow, payload, envelope)
                    finally:
                        request_id_var.reset(token)
                uow.commit()
        except Exception:
            log.info("consumer %s: a batch of %d failed; handling its records one by one", self.name, len(records),
                     exc_info=True)
            return None
        applied = set(new)
        for index, record in enumerate(records):
            EVENTS_CONSUMED.labels(self.name, record.topic, "applied" if index in applied else "duplicate").inc()
        return [index in applied for index in range(len(records))]

    def handle(self, record: ConsumerRecord) -> bool:
        """Apply one record; False when it was a duplicate or dead-lettered (and so changed nothing else)."""
        try:
            envelope = events.decode(record.value)
        except events.InvalidEvent as exc:
            self._dead_letter(record, None, str(exc))
            return False
        token = request_id_var.set(envelope.request_id)
        try:
            _, payload, handler = self._decode(record, envelope)
            applied = self._apply(envelope, payload, handler)
        except NEVER_APPLICABLE as exc:
            self._dead_letter(record, envelope, never_applicable_reason(exc))
            return False
        finally:
            request_id_var.reset(token)
        EVENTS_CONSUMED.labels(self.name, record.topic, "applied" if applied else "duplicate").inc()
        return applied

    def _decode(self, record: ConsumerRecord,
                envelope: EventEnvelope | None = None) -> tuple[EventEnvelope, Message, Handler[U]]:
        """The record's envelope, payload and handler; InvalidEvent when it can never be applied."""
        envelope = envelope if envelope is not None else events.decode(record.value)
        route = self._routes.get(envelope.event_type)
        if route is None or self._topics.get(record.topic) != envelope.event_type:
            raise events.InvalidEvent(f"event type {envelope.event_type!r} does not belong on {record.topic}")
        message_type, handler = route
        return envelope, events.unpack(envelope, message_type), handler

    def _apply(self, envelope: EventEnvelope, payload: Message, handler: Handler[U]) -> bool:
        with self.uow() as uow:
            try:
                uow.session.execute(processed_events.insert().values(
                    consumer=self.name, event_id=envelope.event_id, event_type=envelope.event_type,
                    processed_at=utcnow()))
                handler(uow, payload, envelope)
                uow.commit()
            except IntegrityError:
                uow.rollback()
                if self._already_processed(uow.session, envelope.event_id):
                    return False
                raise
        return True

    def _already_processed(self, session: Session, event_id: str) -> bool:
        return bool(self._processed(session, [event_id]))

    def _processed(self, session: Session, event_ids: list[str]) -> set[str]:
        """Those of `event_ids` this consumer has applied before."""
        return set(session.execute(select(processed_events.c.event_id).where(
            processed_events.c.consumer == self.name, processed_events.c.event_id.in_(event_ids))).scalars())

    def _dead_letter(self, record: ConsumerRecord, envelope: EventEnvelope | None, reason: str) -> None:
        EVENTS_CONSUMED.labels(self.name, record.topic, "dead_lettered").inc()
        log.error("dead-lettering %s@%d/%d: %s", record.topic, record.partition, record.offset, reason,
                  extra={"event_id": envelope.event_id if envelope else None})
        # The offset commit comes after this one: a crash, a failed commit or a rebalance in between delivers the
        # record again, and it must not be dead-lettered (and replayed from there) twice. The same record, not merely
        # the same offset: a recreated topic or a truncated log (_poll) puts other records at offsets met before, and
        # a different poison record there needs a dead letter of its own, or it is committed past and lost. Its event
        # id says which record it is; bytes that are no event, those bytes and what was wrong with them.
        event_id = envelope.event_id if envelope else None
        payload = record.value if isinstance(record.value, bytes) else b""
        same_record = (dead_letters.c.event_id == event_id if event_id is not None else
                       and_(dead_letters.c.event_id.is_(None), dead_letters.c.payload == payload,
                            dead_letters.c.reason == dead_letter_reason(reason)))
        self._dead_letter_once(record.topic, record.partition, record.offset, event_id, reason, payload, same_record)

    def _dead_letter_once(self, topic: str, partition: int, offset: int, event_id: str | None, reason: str,
                          payload: bytes, *also: ColumnElement[bool]) -> None:
        """A dead_letters row for this consumer's (topic, partition, offset), unless one matching it and `also` (what
        the row is of: the record, the lost range) is there already, in a transaction of its own."""
        where = and_((dead_letters.c.consumer == self.name), (dead_letters.c.topic == topic),
                     (dead_letters.c.partition == partition), (dead_letters.c.offset == offset), *also)
        with self.uow() as uow:
            if uow.session.execute(select(dead_letters.c.id).where(where).limit(1)).first() is None:
                uow.session.execute(dead_letters.insert().values(
                    consumer=self.name, topic=topic, partition=partition, offset=offset, event_id=event_id,
                    reason=dead_letter_reason(reason), payload=payload, created_at=utcnow()))
            uow.commit()

    def _commit_offsets(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        """The next offset to read of each partition, in one commit."""
        consumer.commit({partition: OffsetAndMetadata(offset, "", -1) for partition, offset in offsets.items()})

    def _get_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = self.consumer_factory(self.kafka, self.kafka.group(self.name), list(self._topics))
        return self._consumer

    def close(self) -> None:
        self._failing.clear()  # a new member's partitions start afresh
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:
                log.debug("closing a failed consumer", exc_info=True)
            self._consumer = None
