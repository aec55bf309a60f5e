"""kafka-python clients configured one way for every process."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer

from services.common.config import KafkaSettings

log = logging.getLogger(__name__)


def make_producer(settings: KafkaSettings) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and keeps per-partition order on retry.

    Retries are bounded by time, not count: every send is settled (delivered or failed) within
    `delivery_timeout_ms(settings)`, so a caller that waits that long never abandons a record
    still in flight.
    """
    return KafkaProducer(
        **settings.client_options(),
        acks="all",
        max_in_flight_requests_per_connection=1,
        request_timeout_ms=settings.request_timeout_ms,
        delivery_timeout_ms=delivery_timeout_ms(settings),
        max_block_ms=settings.request_timeout_ms,
        linger_ms=LINGER_MS,
    )


LINGER_MS = 5


def delivery_timeout_ms(settings: KafkaSettings) -> int:
    return 2 * settings.request_timeout_ms + LINGER_MS


def close_producer(producer: KafkaProducer, timeout_seconds: float = 1.0) -> None:
    """Close a producer even when records are stuck in it.

    kafka-python 3.0's close() flushes first and raises on timeout before it stops its sender
    thread, which would leave that thread retrying (and publishing late) in the background.
    """
    try:
        producer.close(timeout=timeout_seconds)
    except Exception:
        log.debug("producer did not close cleanly; forcing its sender down", exc_info=True)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
        producer._closed = True  # so its __del__ does not try (and fail) again


def make_consumer(settings: KafkaSettings, group_id: str, topics: Iterable[str]) -> KafkaConsumer:
    """A consumer in `group_id` that never commits on its own: the runner commits after its DB work.

    It never moves its position on its own either (auto_offset_reset="none"): poll() raises
    NoOffsetForPartitionError for a partition the group has no committed offset on, and
    OffsetOutOfRangeError when the committed offset is no longer in the log (retention deleted the
    records before the group read them); EventConsumer decides what to do with each, so records
    are never skipped without a trace. With "earliest" kafka-python jumped to the log's new start
    and only logged it at info.

    Its poll() waits at least POLL_WAIT_FLOOR_SECONDS per pass, so it does not spin while the broker hangs.
    """
    max_poll = settings.max_poll_interval_ms
    session_timeout = consumer_session_timeout_ms(settings)
    consumer = KafkaConsumer(
        *topics,
        **settings.client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="none",
        max_poll_interval_ms=max_poll,
        session_timeout_ms=session_timeout,
        heartbeat_interval_ms=max(100, session_timeout // 3),
        request_timeout_ms=consumer_request_timeout_ms(settings),
        max_poll_records=settings.max_poll_records,
    )
    return wait_between_polls(consumer)


def consumer_session_timeout_ms(settings: KafkaSettings) -> int:
    return min(10_000, settings.max_poll_interval_ms)


def consumer_request_timeout_ms(settings: KafkaSettings) -> int:
    """A consumer's request timeout: longer than its session timeout, as kafka-python requires."""
    return max(settings.request_timeout_ms, consumer_session_timeout_ms(settings) + 1000)


# kafka-python 3.0.12 busy-loops while a heartbeat goes unanswered (issue 14). KafkaConsumer._poll_once
# waits for fetch responses at most ConsumerCoordinator.time_to_next_poll() (consumer/group.py:861-866),
# the time to the next heartbeat counted from when the last one was *sent* (coordinator/heartbeat.py:53-60).
# When the broker accepts TCP but never answers (hung or SIGSTOPped broker, a partition without RST), the
# heartbeat stays in flight for request_timeout_ms (coordinator/base.py:1014-1018); once
# heartbeat_interval_ms has passed, time_to_next_poll() is 0 and poll() loops through _poll_once with a
# 0 ms wait -- about 2000 passes a second, each two round trips to the IO thread (coordinator.poll and
# Fetcher.send_fetches) -- until the heartbeat times out. No setting avoids it: retry_backoff_ms only
# applies when nothing is in flight and the wait is > 0 (group.py:867-873), and a request timeout short
# enough to cut the loop would cut every request. The heartbeat runs on the IO thread's own timer and
# these consumers never auto-commit, so the foreground loses nothing by waiting at least this long per
# pass; the wait still ends as soon as a fetch response arrives. The Java client had the same bug
# (KAFKA-21031). Only time_to_next_poll's one caller (group.py:863) sees the floor.
POLL_WAIT_FLOOR_SECONDS = 0.1


def wait_between_polls(consumer: KafkaConsumer, floor_seconds: float = POLL_WAIT_FLOOR_SECONDS) -> KafkaConsumer:
    """Make `consumer.poll()` wait at least `floor_seconds` per pass for fetch responses (see above)."""
    coordinator = getattr(consumer, "_coordinator", None)
    time_to_next_poll = getattr(coordinator, "time_to_next_poll", None)
    if time_to_next_poll is None:
        log.warning("kafka-python has no ConsumerCoordinator.time_to_next_poll: consumers may busy-loop "
                    "while the broker hangs (issue 14)")
        return consumer

    def floored() -> float:
        return max(floor_seconds, time_to_next_poll())

    coordinator.time_to_next_poll = floored
    return consumer
