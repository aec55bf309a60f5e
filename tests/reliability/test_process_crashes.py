"""Processes SIGKILLed at the worst moment: the event is still applied exactly once after a restart.

The relay dies after the broker took its batch but before the rows are marked published; the
consumer dies after its transaction committed but before the offset is. Both are real child
processes (tests/reliability/crashing.py) killed by a real SIGKILL.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select

from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.events import decode
from services.common.outbox import OutboxRelay, processed_events
from tests.fixtures.kafka import read_topic
from tests.fixtures.outbox import consume_until, new_users_counted, register_users, unpublished
from tests.fixtures.platform import ROOT
from tests.fixtures.postgres import wait_until_advisory_locks_released

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def run_until_killed(role: str, engine: Engine, kafka: KafkaSettings) -> int:
    url = engine.url.render_as_string(hide_password=False)
    process = subprocess.run([sys.executable, "-m", "tests.reliability.crashing", role, url,
                              kafka.bootstrap_servers, kafka.topic_prefix], cwd=ROOT, timeout=120,
                             capture_output=True)
    return process.returncode


def test_a_relay_killed_between_send_and_mark_publishes_again_and_the_consumer_applies_once(
        user_db: Engine, analytics_db: Engine, kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    event_ids = register_users(user_db, 3)

    assert run_until_killed("relay", user_db, kafka_settings) == -signal.SIGKILL
    assert unpublished(user_db) == 3  # sent, never marked
    wait_until_advisory_locks_released(user_db)  # until then a new relay stands by, as in production: its next round
    assert relays().publish_pending() == 3  # the restarted relay sends them again

    records = read_topic(kafka_settings, "user-registered", until=lambda rs: len(rs) >= 6)
    assert sorted(decode(r.value).event_id for r in records) == sorted(event_ids * 2)
    consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, analytics_db, "analytics"),
                             kafka_settings, HANDLERS)
    applied = [consumer.handle(record) for record in records]
    consumer.close()
    assert (applied.count(True), applied.count(False)) == (3, 3)
    assert new_users_counted(analytics_db) == 3


def test_a_consumer_killed_between_its_commit_and_its_offset_commit_applies_the_event_once_after_restart(
        user_db: Engine, analytics_db: Engine, kafka_settings: KafkaSettings,
        relays: Callable[..., OutboxRelay]) -> None:
    register_users(user_db, 1)
    assert relays().publish_pending() == 1

    assert run_until_killed("consumer", analytics_db, kafka_settings) == -signal.SIGKILL
    assert new_users_counted(analytics_db) == 1  # its transaction had committed

    restarted = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, analytics_db, "analytics"),
                              kafka_settings, HANDLERS)
    outcomes: list[bool] = []
    handle = restarted.handle
    restarted.handle = lambda record: outcomes.append(handle(record)) or outcomes[-1]  # type: ignore[method-assign]
    consume_until(restarted, lambda: len(outcomes) >= 1)
    restarted.close()

    assert outcomes == [False]  # redelivered (the offset was never committed), recognised, skipped
    assert new_users_counted(analytics_db) == 1
    with analytics_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(processed_events)).scalar_one() == 1
