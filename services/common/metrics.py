"""Prometheus metrics shared by every process, and the /metrics HTTP endpoint."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_HANDLED = Counter("mall_grpc_server_handled_total", "gRPC calls handled, by final status.",
                      ["service", "method", "code"])
RPC_LATENCY = Histogram("mall_grpc_server_handling_seconds", "gRPC handling time.", ["service", "method"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
OUTBOX_PENDING = Gauge("mall_outbox_pending_events", "Outbox rows not yet published.", ["service"])
OUTBOX_PUBLISHED = Counter("mall_outbox_published_total", "Events the relay published.", ["service", "topic"])
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "mall_outbox_oldest_pending_age_seconds",
    "How long the oldest outbox row not yet published has waited (0 when none waits): the relay's lag.", ["service"])
OUTBOX_DEAD_LETTERED = Counter(
    "mall_outbox_dead_lettered_total",
    "Outbox rows the relay can never send (larger than a request may be), moved to dead_letters.", ["service", "topic"])
OUTBOX_FAILURES = Counter("mall_outbox_publish_failures_total", "Relay batches that failed to publish.", ["service"])
EVENTS_CONSUMED = Counter("mall_events_consumed_total", "Events consumed, by outcome (applied|duplicate|dead_lettered).",
                          ["consumer", "topic", "outcome"])
CONSUMER_FAILURES = Counter("mall_consumer_failures_total", "Event handler failures (retried).",
                            ["consumer", "topic"])
CONSUMER_OFFSET_OUT_OF_RANGE = Counter(
    "mall_consumer_offset_out_of_range_total",
    "Times a consumer group's offset was no longer in its partition's log (records deleted by retention unread, "
    "or the log truncated); the consumer resumed at the log's start and recorded the gap in dead_letters.",
    ["consumer", "topic"])

ROWS_PRUNED = Counter(
    "mall_bookkeeping_rows_pruned_total",
    "Bookkeeping rows deleted once past their retention (outbox, processed_events, idempotency_keys).",
    ["service", "table"])


def serve_metrics(port: int) -> None:
    """Expose /metrics on `port` (0 = not exposed, e.g. when another process of the pod does)."""
    if port:
        start_http_server(port)
