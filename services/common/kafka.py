"""kafka-python clients configured one way for every process."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer

from services.common.config import KafkaSettings


def make_producer(settings: KafkaSettings) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and keeps per-partition order on retry."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        acks="all",
        retries=5,
        max_in_flight_requests_per_connection=1,
        request_timeout_ms=settings.request_timeout_ms,
        max_block_ms=settings.request_timeout_ms,
        linger_ms=5,
    )


def make_consumer(settings: KafkaSettings, group_id: str, topics: Iterable[str]) -> KafkaConsumer:
    """A consumer in `group_id` that never commits on its own: the runner commits after its DB work."""
    max_poll = settings.max_poll_interval_ms
    session_timeout = min(10_000, max_poll)
    return KafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers.split(","),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=max_poll,
        session_timeout_ms=session_timeout,
        heartbeat_interval_ms=max(100, session_timeout // 3),
        request_timeout_ms=max(settings.request_timeout_ms, session_timeout + 1000),
        max_poll_records=100,
    )
