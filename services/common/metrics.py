"""Prometheus metrics shared by every process, and the /metrics HTTP endpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

RPC_HANDLED = Counter("mall_grpc_server_handled_total", "gRPC calls handled, by final status.",
                      ["service", "method", "code"])
RPC_LATENCY = Histogram("mall_grpc_server_handling_seconds", "gRPC handling time.", ["service", "method"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
OUTBOX_PENDING = Gauge("mall_outbox_pending_events", "Outbox rows not yet published.", ["service"])
# `topic` of the event metrics is always the Kafka topic, KAFKA_TOPIC_PREFIX included (what consumers read, what
# dead_letters.topic and the kafka-exporter name): published and consumed series of one topic match.
OUTBOX_PUBLISHED = Counter("mall_outbox_published_total", "Events the relay published, by Kafka topic (prefix included).",
                           ["service", "topic"])
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "mall_outbox_oldest_pending_age_seconds",
    "How long the oldest outbox row not yet published has waited (0 when none waits): the relay's lag.", ["service"])
OUTBOX_DEAD_LETTERED = Counter(
    "mall_outbox_dead_lettered_total",
    "Outbox rows the relay can never send (larger than a request may be), moved to dead_letters.", ["service", "topic"])
OUTBOX_FAILURES = Counter("mall_outbox_publish_failures_total", "Relay batches that failed to publish.", ["service"])
CONSUMED_OUTCOMES = ("applied", "duplicate", "dead_lettered")
EVENTS_CONSUMED = Counter("mall_events_consumed_total",
                          "Events consumed, by Kafka topic (prefix included) and outcome (applied|duplicate|dead_lettered).",
                          ["consumer", "topic", "outcome"])
CONSUMER_FAILURES = Counter("mall_consumer_failures_total", "Event handler failures (retried).",
                            ["consumer", "topic"])
CONSUMER_OFFSET_OUT_OF_RANGE = Counter(
    "mall_consumer_offset_out_of_range_total",
    "Times a consumer group's offset was no longer in its partition's log (records deleted by retention unread, "
    "or the log truncated); the consumer resumed at the log's start and recorded the gap in dead_letters.",
    ["consumer", "topic"])
LOOP_BEAT_AGE = Gauge(
    "mall_loop_beat_age_seconds",
    "Seconds since a relay or consumer loop, or a serve-role job (loop=\"job-<name>\"), last completed an iteration "
    "(idle polls, back-off waits and failed rounds included); /livez answers 503 once it passes the loop's bound "
    "(services/common/liveness.py).", ["loop"])

DB_STATEMENTS_CANCELLED = Counter(
    "mall_db_statements_cancelled_total",
    "Statements PostgreSQL cut short because a session timeout ran out (DB_LOCK_TIMEOUT_SECONDS, "
    "DB_STATEMENT_TIMEOUT_SECONDS, DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS), by reason; their transactions were rolled "
    "back and retried (RPCs answered DATABASE_BUSY).", ["reason"])

ROWS_PRUNED = Counter(
    "mall_bookkeeping_rows_pruned_total",
    "Bookkeeping rows deleted once past their retention (outbox, processed_events, idempotency_keys).",
    ["service", "table"])


# An answer of the metrics port other than the metrics: path -> () -> (HTTP status, plain-text body).
Route = Callable[[], tuple[int, str]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the overridden signature
        """Probes and scrapes every few seconds: not worth a log line each."""


def metrics_app(routes: Mapping[str, Route] | None = None) -> Callable:
    """The WSGI app of the metrics port: `routes` by exact path, the Prometheus metrics on every other path."""
    metrics = make_wsgi_app()
    routes = dict(routes or {})

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return metrics(environ, start_response)
        status, body = route()
        reasons = {200: "OK", 503: "Service Unavailable"}
        start_response(f"{status} {reasons.get(status, '')}".rstrip(),
                       [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
        return [body.encode()]
    return app


def serve_metrics(port: int, routes: Mapping[str, Route] | None = None) -> WSGIServer | None:
    """Expose /metrics (and `routes`, e.g. /livez) on `port` (0 = not exposed, e.g. when another process of the pod
    does), as prometheus_client's start_http_server did, on every IPv4 address, from a daemon thread."""
    if not port:
        return None
    server = make_server("0.0.0.0", port, metrics_app(routes), ThreadingWSGIServer,  # noqa: S104 - probes, scrapes
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
