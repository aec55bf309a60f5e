"""Idempotent event consumer: apply each event once, in one transaction with its dedup record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from mall.events.v1.envelope_pb2 import EventEnvelope
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import events
from services.common.config import KafkaSettings
from services.common.db import utcnow
from services.common.kafka import make_consumer
from services.common.logs import request_id_var
from services.common.metrics import CONSUMER_FAILURES, EVENTS_CONSUMED
from services.common.outbox import processed_events

log = logging.getLogger(__name__)

# A handler applies one event inside the caller's transaction; it must not commit.
Handler = Callable[[Session, EventEnvelope], None]


class EventConsumer:
    """Consumes `handlers`' event types as consumer group `name`.

    For each record: one DB transaction inserts (name, event_id) into processed_events and runs
    the handler; only after it commits is the offset committed. A crash in between redelivers
    the record, and the processed_events key turns the replay into a no-op. A failing handler
    is retried (with backoff) from the same offset, so nothing is skipped.
    """

    def __init__(self, name: str, engine: Engine, kafka: KafkaSettings, handlers: Mapping[str, Handler], *,
                 max_backoff_seconds: float = 10.0,
                 consumer_factory: Callable[[KafkaSettings, str, list[str]], KafkaConsumer] = make_consumer) -> None:
        self.name = name
        self.engine = engine
        self.kafka = kafka
        self.handlers = dict(handlers)
        self.max_backoff_seconds = max_backoff_seconds
        self.consumer_factory = consumer_factory
        self._topics = {kafka.topic(event_type): event_type for event_type in self.handlers}
        self._consumer: KafkaConsumer | None = None

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, reconnecting with backoff while the broker is down."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self.poll_once()
                backoff = 0.0
            except Exception:
                backoff = min(self.max_backoff_seconds, max(0.1, backoff * 2))
                log.warning("consumer %s failed; retrying in %.1fs", self.name, backoff, exc_info=True)
                self.close()
                stop.wait(backoff)
        self.close()

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Handle what one poll returns; returns how many records were handled (applied or skipped).

        Offsets are committed once per partition batch, after the records' own transactions: a
        crash in between only redelivers records whose effects processed_events already holds.
        """
        consumer = self._get_consumer()
        handled = 0
        for partition, records in consumer.poll(timeout_ms=timeout_ms).items():
            done = None
            try:
                for record in records:
                    try:
                        self.handle(record)
                    except Exception:
                        CONSUMER_FAILURES.labels(self.name, record.topic).inc()
                        # Rewind so the next poll redelivers this record and everything after it.
                        consumer.seek(partition, record.offset)
                        raise
                    done = record.offset
                    handled += 1
            finally:
                if done is not None:
                    self._commit_offset(consumer, partition, done + 1)
        return handled

    def handle(self, record: ConsumerRecord) -> bool:
        """Apply one record; False when it was a duplicate or unusable (and so changed nothing)."""
        try:
            envelope = events.decode(record.value)
        except events.InvalidEvent:
            EVENTS_CONSUMED.labels(self.name, record.topic, "invalid").inc()
            log.error("skipping an undecodable record", extra={"topic": record.topic, "offset": record.offset},
                      exc_info=True)
            return False
        handler = self.handlers.get(envelope.event_type)
        if handler is None or self._topics.get(record.topic) != envelope.event_type:
            EVENTS_CONSUMED.labels(self.name, record.topic, "invalid").inc()
            log.error("skipping event %s of type %s found on topic %s", envelope.event_id, envelope.event_type,
                      record.topic)
            return False
        token = request_id_var.set(envelope.request_id)
        try:
            applied = self._apply(envelope, handler)
        finally:
            request_id_var.reset(token)
        EVENTS_CONSUMED.labels(self.name, record.topic, "applied" if applied else "duplicate").inc()
        return applied

    def _apply(self, envelope: EventEnvelope, handler: Handler) -> bool:
        with Session(self.engine) as session:
            try:
                with session.begin():
                    session.execute(processed_events.insert().values(
                        consumer=self.name, event_id=envelope.event_id, event_type=envelope.event_type,
                        processed_at=utcnow()))
                    handler(session, envelope)
            except IntegrityError:
                if self._already_processed(session, envelope.event_id):
                    return False
                raise
        return True

    def _already_processed(self, session: Session, event_id: str) -> bool:
        found = session.execute(processed_events.select().where(
            processed_events.c.consumer == self.name, processed_events.c.event_id == event_id)).first()
        return found is not None

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
