"""Transactional outbox: events are rows written with the business change, then relayed to Kafka."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from google.protobuf.message import Message
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from services.common import events
from services.common.config import KafkaSettings
from services.common.db import BigId, UTCDateTime, advisory_key, create_tables, utcnow
from services.common.kafka import close_producer, delivery_timeout_ms, make_producer
from services.common.liveness import DATABASE_CALL_SECONDS, LIVENESS_MARGIN_SECONDS, Clock, Heartbeat
from services.common.metrics import (
    OUTBOX_DEAD_LETTERED,
    OUTBOX_FAILURES,
    OUTBOX_OLDEST_PENDING_AGE,
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
)

log = logging.getLogger(__name__)

# Tables every service database has; each service's first migration creates them.
infra_metadata = MetaData()

outbox = Table(
    "outbox", infra_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("aggregate_id", String(128), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime, nullable=True),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL"),
          sqlite_where=text("published_at IS NULL")),
    Index("ix_outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL"),
          sqlite_where=text("published_at IS NOT NULL")),  # pruning's (LATER_INDEXES)
)

processed_events = Table(
    "processed_events", infra_metadata,
    Column("consumer", String(64), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("processed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    Index("ix_processed_events_processed_at", "processed_at"),  # pruning's (LATER_INDEXES)
)


dead_letters = Table(
    "dead_letters", infra_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("consumer", String(64), nullable=False),
    Column("topic", String(128), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=True),
    Column("reason", String(1000), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


def dead_letter_reason(reason: str) -> str:
    """`reason` as dead_letters.reason can hold it: 1000 characters at most, NUL (which PostgreSQL text refuses, and
    which a reason quoting an event's payload may carry) spelled out; else the dead letter itself would fail."""
    return reason.replace("\x00", "\\x00")[:1000]


# Built once: the columns come from the parameters (a statement built per event, and SQLAlchemy walking it for its
# cache key, cost more CPU than the INSERT's round trip).
_STAGE = outbox.insert()


def add_to_outbox(session: Session, payload: Message, *, producer: str, aggregate_id: str) -> str:
    """Stage the event `payload` (its type names the topic) in the caller's transaction; returns its event id."""
    envelope = events.new_envelope(payload, producer=producer, aggregate_id=aggregate_id)
    session.execute(_STAGE, {"event_id": envelope.event_id, "event_type": envelope.event_type,
                             "aggregate_id": aggregate_id, "envelope": events.encode(envelope), "created_at": utcnow()})
    return envelope.event_id


# What a row can never be sent as, however often it is tried: larger than a request may be (kafka-python's send()
# refuses it before any I/O). Retried, it would hold back every row behind it for ever. Not a topic the broker
# refuses: event types come from one registry, so that is the settings' fault (KAFKA_TOPIC_PREFIX) and would
# dead-letter every row; kafka-python reports it as a metadata timeout anyway, and the batch is retried.
UNSENDABLE = (MessageSizeTooLargeError,)
RELAY_DEAD_LETTERS = "outbox-relay"  # dead_letters.consumer of the rows the relay could not send


class OutboxRelay:
    """Publishes committed outbox rows in id order with acks=all, then marks them published.

    A crash between publishing and marking publishes those rows again on the next pass: delivery
    is at-least-once and consumers deduplicate by event id. No transaction is held open while
    the broker is waited on: rows are read, sent, then marked in a second short transaction.

    Several replicas may run a relay, but only one publishes at a time: on PostgreSQL the relay
    holding a session advisory lock per service leads, the others stand by and take over when
    its connection ends. Two relays publishing side by side would break per-aggregate order
    (order-paid overtaking order-created). A leader that fails `yield_after_failures` passes in
    a row (it cannot reach the broker, say) lets the lock go so that a healthier replica may
    lead. SQLite (dev) has one process per database file.

    A row that can never be sent (UNSENDABLE: larger than a request may be) does not hold the
    others back: it is copied, envelope and all, to dead_letters (consumer "outbox-relay",
    partition -1, offset = its outbox id) and marked published in the same transaction, logged at
    error and counted in mall_outbox_dead_lettered_total. Its aggregate's later events go on
    without it. Every other failure (broker down, timeouts) fails the whole batch, which is sent
    again from its first row, so nothing is marked before the broker acknowledged it.

    Every pass of the loop, idle, standing by or backing off, ends with `heartbeat.beat()`
    (services/common/liveness.py): /livez answers 503 once no pass has ended for
    liveness_bound_seconds().
    """

    def __init__(self, service: str, engine: Engine, kafka: KafkaSettings, *, batch_size: int = 200,
                 idle_seconds: float = 0.2, standby_seconds: float = 2.0, max_backoff_seconds: float = 10.0,
                 yield_after_failures: int = 5,
                 producer_factory: Callable[[KafkaSettings], KafkaProducer] = make_producer,
                 clock: Clock = time.monotonic) -> None:
        self.service = service
        self.engine = engine
        self.kafka = kafka
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.standby_seconds = standby_seconds  # how often a standby asks for the lock
        self.max_backoff_seconds = max_backoff_seconds
        self.yield_after_failures = yield_after_failures
        self.producer_factory = producer_factory
        self._producer: KafkaProducer | None = None
        self._leader: Connection | None = None
        self._lock_key = advisory_key(f"minimall-outbox:{service}")
        self._retake_after = 0.0  # monotonic time before which this relay does not ask for the lock
        self.heartbeat = Heartbeat("outbox-relay", self.liveness_bound_seconds(), clock=clock)
        # Every series exists at 0 from the start: a counter born at 1 shows no increase(), and OutboxEventsDeadLettered
        # would miss the first row dead-lettered.
        OUTBOX_FAILURES.labels(service)
        for event_type in events.TOPICS:
            OUTBOX_PUBLISHED.labels(service, kafka.topic(event_type))
            OUTBOX_DEAD_LETTERED.labels(service, kafka.topic(event_type))

    def liveness_bound_seconds(self) -> float:
        """The longest one pass of `run` takes while the loop works, whatever the broker and database do, plus
        LIVENESS_MARGIN_SECONDS: its longest wait (idle, standby or back-off), blocking on Kafka metadata (max_block_ms
        = the request timeout), the batch settling (delivery timeout + 1 s), closing a failed producer (1 s), and one
        database call on a dead connection (connect_timeout + tcp_user_timeout). 202 s with the defaults."""
        wait = max(self.idle_seconds, self.standby_seconds, self.max_backoff_seconds)
        kafka = (self.kafka.request_timeout_ms + delivery_timeout_ms(self.kafka)) / 1000 + 1 + 1
        return wait + kafka + DATABASE_CALL_SECONDS + LIVENESS_MARGIN_SECONDS

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set, backing off exponentially while the broker or database is down."""
        backoff = 0.0
        failures = 0
        while not stop.is_set():
            try:
                sent = self.publish_pending()
                backoff, failures = 0.0, 0
                if sent == 0:
                    leading = self._leader is not None or self.engine.dialect.name != "postgresql"
                    stop.wait(self.idle_seconds if leading else self.standby_seconds)
            except Exception:
                OUTBOX_FAILURES.labels(self.service).inc()
                failures += 1
                backoff = min(self.max_backoff_seconds, max(0.1, backoff * 2))
                log.warning("outbox relay failed; retrying in %.1fs", backoff, exc_info=True)
                self._reset_producer()
                if failures >= self.yield_after_failures and self._leader is not None:
                    self.release_leadership()
                    # Leave the lock to the standbys for a while, or we would likely take it back.
                    self._retake_after = time.monotonic() + 2 * self.standby_seconds
                    failures = 0
                stop.wait(backoff)
            self.heartbeat.beat()
        self.close()

    def close(self) -> None:
        """Stop the producer and give up leadership (a standby takes over within its standby_seconds)."""
        self._reset_producer()
        self.release_leadership()

    def release_leadership(self) -> None:
        if self._leader is not None:
            log.info("outbox relay of %s gives up the leadership", self.service)
            # Unlock first: the server frees a closed session's locks only once its backend has ended, and a
            # relay starting meanwhile would stand by. An invalidated connection has lost the lock already.
            if not self._leader.invalidated:
                try:
                    self._leader.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._lock_key})
                except SQLAlchemyError:
                    log.debug("outbox relay could not unlock; its connection is gone", exc_info=True)
            self._leader.close()
            self._leader = None
            # The next leader reports the backlog and its age; a standby's stale values would raise alerts.
            OUTBOX_PENDING.remove(self.service)
            OUTBOX_OLDEST_PENDING_AGE.remove(self.service)

    def is_leader(self) -> bool:
        """Hold (or try to take) this service's relay lock; True when this relay may publish."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._leader is not None:
            try:
                self._leader.exec_driver_sql("SELECT 1")
                return True
            except DBAPIError:  # the connection died, and the lock with it
                log.warning("outbox relay lost its leadership connection")
                self._leader.invalidate()
                self.release_leadership()
        if time.monotonic() < self._retake_after:
            return False
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.detach()  # closing it must end the session (and the lock), not pool it
        try:
            locked = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._lock_key}).scalar_one()
            if locked:
                # The lock outlives this relay until the *server* sees the connection is dead: have
                # it probe an idle or unresponsive client within a minute, not the OS's two hours.
                for setting in ("tcp_keepalives_idle = 30", "tcp_keepalives_interval = 10",
                                "tcp_keepalives_count = 3", "tcp_user_timeout = 60000"):
                    connection.exec_driver_sql(f"SET {setting}")
        except BaseException:
            connection.close()
            raise
        if not locked:
            connection.close()
            return False
        self._leader = connection
        log.info("outbox relay of %s is now the leader", self.service)
        return True

    def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published (0 when standing by)."""
        if not self.is_leader():
            return 0
        with self.engine.connect() as conn:
            pending, oldest = conn.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))).one()
            rows = conn.execute(
                select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.aggregate_id, outbox.c.envelope)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
            ).all() if pending else []
        # Before sending: an outage must show.
        OUTBOX_PENDING.labels(self.service).set(pending)
        OUTBOX_OLDEST_PENDING_AGE.labels(self.service).set(
            max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0)
        if not rows:
            return 0
        unsendable = self._send(rows)
        with self.engine.begin() as conn:
            self._dead_letter(conn, [row for row in rows if row.id in unsendable], unsendable)
            self._mark_published(conn, [row.id for row in rows])
        OUTBOX_PENDING.labels(self.service).set(max(0, pending - len(rows)))
        if pending <= len(rows):
            OUTBOX_OLDEST_PENDING_AGE.labels(self.service).set(0)
        return len(rows)

    def _send(self, rows: list) -> dict[int, str]:
        """Send `rows` in order and wait for the broker to acknowledge each; returns the UNSENDABLE ones (outbox id:
        why). Any other failure raises, and the batch is sent again from its first row."""
        producer = self._get_producer()
        unsendable: dict[int, str] = {}
        futures = []
        for row in rows:
            try:
                futures.append((row, producer.send(self.kafka.topic(row.event_type), key=row.aggregate_id.encode(),
                                                   value=row.envelope)))
            except UNSENDABLE as exc:
                unsendable[row.id] = str(exc)
        settle_seconds = delivery_timeout_ms(self.kafka) / 1000 + 1
        producer.flush(timeout=settle_seconds)
        for row, future in futures:
            future.get(timeout=settle_seconds)
            OUTBOX_PUBLISHED.labels(self.service, self.kafka.topic(row.event_type)).inc()
        return unsendable

    def _dead_letter(self, conn: Connection, rows: list, reasons: dict[int, str]) -> None:
        for row in rows:
            log.error("outbox relay of %s cannot send %s %s; moved to dead_letters: %s", self.service,
                      row.event_type, row.event_id, reasons[row.id], extra={"event_id": row.event_id})
            topic = self.kafka.topic(row.event_type)
            conn.execute(dead_letters.insert().values(
                consumer=RELAY_DEAD_LETTERS, topic=topic[:128], partition=-1,
                offset=row.id, event_id=row.event_id, reason=dead_letter_reason(reasons[row.id]),
                payload=row.envelope,
                created_at=utcnow()))
            OUTBOX_DEAD_LETTERED.labels(self.service, topic).inc()

    def _mark_published(self, conn: Connection, ids: list[int]) -> None:
        conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=utcnow()))

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self.producer_factory(self.kafka)
        return self._producer

    def _reset_producer(self) -> None:
        if self._producer is not None:
            close_producer(self._producer)
            self._producer = None


# Indexes of the infrastructure tables that a later revision of every service adds (the bookkeeping pruning ones,
# services.common.pruning.add_pruning_indexes): the revisions creating those tables leave them out.
LATER_INDEXES = frozenset({"ix_outbox_published_at", "ix_processed_events_processed_at", "ix_idempotency_keys_created_at"})


def create_infra_tables(op) -> None:  # type: ignore[no-untyped-def]
    """Create the outbox, processed-events and dead-letters tables; called by each service's first migration.

    Their shape is version 1. Changing either table needs a migration in every service and a
    frozen copy of the version-1 shape here, so that fresh databases still migrate step by step
    (an index added later: in LATER_INDEXES).
    """
    create_tables(op.get_bind(), [outbox, processed_events, dead_letters], leaving_out=LATER_INDEXES)
