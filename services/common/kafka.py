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
    """A consumer in `group_id` that never commits on its own: the runner commits after its DB work."""
    max_poll = settings.max_poll_interval_ms
    session_timeout = min(10_000, max_poll)
    return KafkaConsumer(
        *topics,
        **settings.client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=max_poll,
        session_timeout_ms=session_timeout,
        heartbeat_interval_ms=max(100, session_timeout // 3),
        request_timeout_ms=max(settings.request_timeout_ms, session_timeout + 1000),
        max_poll_records=settings.max_poll_records,
    )
