"""Group consumers keep waiting for fetch responses while a heartbeat goes unanswered (issue 14).

kafka-python 3.0.12's KafkaConsumer.poll waits per pass at most ConsumerCoordinator.time_to_next_poll(),
which is 0 from heartbeat_interval_ms after a heartbeat was sent until that heartbeat is answered or
times out: against a hung broker, poll() spun ~2000 passes a second. services.common.kafka floors it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer
from kafka.coordinator.base import MemberState

from services.common import kafka
from services.common.config import KafkaSettings
from services.common.devbroker import free_port


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaConsumer]:
    """A real group consumer from make_consumer, with nothing listening at its bootstrap address.

    api_version is given so the constructor does not try to reach the broker to learn it.
    """
    monkeypatch.setattr(kafka, "KafkaConsumer", functools.partial(KafkaConsumer, api_version=(2, 8)))
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", max_poll_interval_ms=1000,
                             topic_prefix="", request_timeout_ms=30_000)
    made = kafka.make_consumer(settings, "analytics", ["order-paid"])
    yield made
    made.close(autocommit=False)


def heartbeat_sent(consumer: KafkaConsumer, seconds_ago: float) -> None:
    """Put the consumer in a stable group whose last heartbeat left `seconds_ago` and is unanswered."""
    coordinator = consumer._coordinator
    coordinator.state = MemberState.STABLE
    coordinator.heartbeat.last_reset = coordinator.heartbeat.last_send = time.monotonic() - seconds_ago


def test_a_consumer_whose_heartbeat_is_unanswered_still_waits_between_polls(consumer: KafkaConsumer) -> None:
    heartbeat_sent(consumer, seconds_ago=20.0)  # heartbeat_interval_ms is 333 here

    library_wait = type(consumer._coordinator).time_to_next_poll(consumer._coordinator)
    assert library_wait == 0  # kafka-python's own answer: poll() would not wait at all
    assert consumer._coordinator.time_to_next_poll() == kafka.POLL_WAIT_FLOOR_SECONDS


def test_a_heartbeat_due_later_than_the_floor_keeps_its_own_wait(consumer: KafkaConsumer) -> None:
    heartbeat_sent(consumer, seconds_ago=0.0)

    library_wait = type(consumer._coordinator).time_to_next_poll(consumer._coordinator)
    floored_wait = consumer._coordinator.time_to_next_poll()

    assert library_wait > kafka.POLL_WAIT_FLOOR_SECONDS
    assert library_wait >= floored_wait > kafka.POLL_WAIT_FLOOR_SECONDS  # the clock moved on in between


def test_a_consumer_without_the_hook_is_returned_unchanged_and_the_gap_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    not_kafka_python_3 = object()

    with caplog.at_level(logging.WARNING, logger="services.common.kafka"):
        assert kafka.wait_between_polls(not_kafka_python_3) is not_kafka_python_3  # type: ignore[arg-type]

    assert "issue 14" in caplog.text
