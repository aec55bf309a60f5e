"""Idempotent event consumer: apply each event once, in one transaction with its dedup record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from mall.events.v1.envelope_pb2 import EventEnvelope
from sqlalchemy.exc import IntegrityError
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


class HandlerFailed(Exception):
    """A handler failed for a reason that may pass; the record will be delivered again."""


class EventConsumer(Generic[U]):
    """Consumes the event types of `handlers` ({payload message type: handler}) as consumer group `name`.

    For each record: one unit of work (`uow()`) inserts (name, event_id) into processed_events
    and runs the handler; only after it commits is the offset committed. A crash in between redelivers
    the record, and the processed_events key turns the replay into a no-op.

    A handler that fails is retried from the same offset with backoff, the consumer kept (no
    rebalance). A record that can never be applied (not an envelope, a payload that does not
    parse, an event on the wrong topic) goes to the dead_letters table, with its bytes, and the
    partition moves on: one poison message must not stop the shop.
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

        Offsets are committed once per partition batch, after the records' own transactions: a
        crash in between only redelivers records whose effects processed_events already holds.
        A handler failure rewinds its partition to the failing record (the next poll delivers it
        again) and the other partitions carry on; HandlerFailed is raised after all of them.
        """
        consumer = self._get_consumer()
        handled = 0
        failure: HandlerFailed | None = None
        for partition, records in consumer.poll(timeout_ms=timeout_ms).items():
            done = None
            for record in records:
                try:
                    self.handle(record)
                except Exception as exc:
                    CONSUMER_FAILURES.labels(self.name, record.topic).inc()
                    consumer.seek(partition, record.offset)
                    if failure is None:
                        failure = HandlerFailed(f"{record.topic}@{record.offset}: {exc!r}")
                        failure.__cause__ = exc
                    break
                done = record.offset
                handled += 1
            if done is not None:
                self._commit_offset(consumer, partition, done + 1)
        if failure is not None:
            raise failure
        return handled

    def handle(self, record: ConsumerRecord) -> bool:
        """Apply one record; False when it was a duplicate or dead-lettered (and so changed nothing else)."""
        try:
            envelope = events.decode(record.value)
            route = self._routes.get(envelope.event_type)
            if route is None or self._topics.get(record.topic) != envelope.event_type:
                raise events.InvalidEvent(f"event type {envelope.event_type!r} does not belong on {record.topic}")
        except events.InvalidEvent as exc:
            self._dead_letter(record, None, str(exc))
            return False
        message_type, handler = route
        token = request_id_var.set(envelope.request_id)
        try:
            applied = self._apply(envelope, events.unpack(envelope, message_type), handler)
        except events.InvalidEvent as exc:
            self._dead_letter(record, envelope, str(exc))
            return False
        finally:
            request_id_var.reset(token)
        EVENTS_CONSUMED.labels(self.name, record.topic, "applied" if applied else "duplicate").inc()
        return applied

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
        found = session.execute(processed_events.select().where(
            processed_events.c.consumer == self.name, processed_events.c.event_id == event_id)).first()
        return found is not None

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

    def _commit_offset(self, consumer: KafkaConsumer, partition: TopicPartition, offset: int) -> None:
        consumer.commit({partition: OffsetAndMetadata(offset, "", -1)})

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
