"""The relay on SQLite (make run's default): it must not hold the write lock while it waits on the broker."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from kafka.errors import KafkaTimeoutError
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, func, select

from services.common.config import KafkaSettings
from services.common.metrics import OUTBOX_PENDING
from services.common.outbox import OutboxRelay, outbox
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

    def _send(self, rows: list) -> None:  # type: ignore[type-arg]
        other_process = sqlite3.connect(self.database, timeout=0.2, isolation_level=None)
        try:
            other_process.execute("BEGIN IMMEDIATE")  # raises 'database is locked' if the relay holds it
            other_process.execute("ROLLBACK")
            self.writes_while_sending.append("ok")
        finally:
            other_process.close()
        self.sent.extend(row.event_type for row in rows)


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
    def _send(self, rows: list) -> None:  # type: ignore[type-arg]
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
