"""Idempotent event consumer: apply each event once, in the same transaction as its dedup record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from mall.events.v1.envelope_pb2 import EventEnvelope
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from services.common import events
from services.common.config import KafkaSettings
from services.common.db import utcnow
from services.common.kafka import make_consumer
from services.common.logs import request_id_var
from services.common.metrics import CONSUMER_FAILURES, EVENTS_CONSUMED
from services.common.outbox import dead_letters, processed_events
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
    """Why a record is dead-lettered: the driver's own first line for a DataError (not SQLAlchemy's text, which
    repeats the statement and every parameter), the InvalidEvent's message otherwise."""
    if isinstance(exc, DataError):
        return "the database refuses the event's data: " + (str(exc.orig).splitlines() or [""])[0]
    return str(exc)


class HandlerFailed(Exception):
    """A handler failed for a reason that may pass; the record will be delivered again."""


class EventConsumer(Generic[U]):
    """Consumes the event types of `handlers` ({payload message type: handler}) as consumer group `name`.

    What one poll returns (up to KafkaSettings.max_poll_records records) is applied in one unit of
    work (`uow()`): the (name, event_id) rows of its new events go into processed_events, the handlers
    run in order (an event seen before, in an earlier batch or earlier in this one, is skipped), one
    DB commit; only then are the offsets committed, in one call. A crash in between redelivers the
    records, and the processed_events keys turn the replay into a no-op.

    When anything in a batch fails (a handler raises, a record does not decode, a concurrent
    consumer inserted a key first) the batch is rolled back and its records are handled one by one,
    each in a unit of work of its own, as a batch of one always is: that isolates the failing record.

    A handler that fails is retried from the same offset with backoff, the consumer kept (no
    rebalance). A record that can never be applied (not an envelope, a payload that does not
    parse, an event on the wrong topic, one the handler finds invalid or whose data the database
    refuses: NEVER_APPLICABLE) goes to the dead_letters table, with its bytes, and the partition
    moves on: one poison message must not stop the shop.
    """

    def __init__(self, name: str, uow: Callable[[], U], kafka: KafkaSettings,
                 handlers: Mapping[type[Message], Handler[U]], *,
                 max_backoff_seconds: float = 10.0,
                 consumer_factory: Callable[[KafkaSettings, str, list[str]], KafkaConsumer] = make_consumer) -> None:
        self.name = name
        self.uow = uow
        self.kafka = kafka
        self._routes = {events.event_type_of(message_type): (message_type, handler)
                        for message_type, handler in handlers.items()}
        # Stay well inside max_poll_interval_ms, or the group would evict us while we wait.
        self.max_backoff_seconds = min(max_backoff_seconds, kafka.max_poll_interval_ms / 2000)
        self.consumer_factory = consumer_factory
        self._topics = {kafka.topic(event_type): event_type for event_type in self._routes}
        self._consumer: KafkaConsumer | None = None

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; back off on handler failures, reconnect on broker failures."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self.poll_once()
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
        self.close()

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Handle what one poll returns; returns how many records were handled (applied or skipped).

        Offsets are committed once per poll, after the records' own transaction(s): a crash in
        between only redelivers records whose effects processed_events already holds. A handler
        failure rewinds its partition to the failing record (the next poll delivers it again) and the
        other partitions carry on; HandlerFailed is raised after all of them.
        """
        consumer = self._get_consumer()
        polled = consumer.poll(timeout_ms=timeout_ms)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        if len(records) > 1 and self.handle_batch(records) is not None:
            self._commit_offsets(consumer, {partition: batch[-1].offset + 1 for partition, batch in polled.items()})
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
                    if failure is None:
                        failure = HandlerFailed(f"{record.topic}@{record.offset}: {exc!r}")
                        failure.__cause__ = exc
                    break
                offsets[partition] = record.offset + 1
                handled += 1
        if offsets:
            self._commit_offsets(consumer, offsets)
        if failure is not None:
            raise failure
        return handled

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
        with self.uow() as uow:
            uow.session.execute(dead_letters.insert().values(
                consumer=self.name, topic=record.topic, partition=record.partition, offset=record.offset,
                event_id=envelope.event_id if envelope else None, reason=reason[:1000],
                payload=record.value if isinstance(record.value, bytes) else b"", created_at=utcnow()))
            uow.commit()

    def _commit_offsets(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        """The next offset to read of each partition, in one commit."""
        consumer.commit({partition: OffsetAndMetadata(offset, "", -1) for partition, offset in offsets.items()})

    def _get_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = self.consumer_factory(self.kafka, self.name, list(self._topics))
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:
                log.debug("closing a failed consumer", exc_info=True)
            self._consumer = None
