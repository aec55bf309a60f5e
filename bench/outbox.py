"""Throughput of the event path: outbox writes, relay publishing, idempotent consumption.

Uses SQLite files in a temporary folder unless BENCH_USER_DATABASE_URL / BENCH_ANALYTICS_DATABASE_URL
name (empty, disposable) databases, and a tansu broker of its own. BENCH_EVENTS sets the volume.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mall.events.v1.user_events_pb2 import UserRegistered

from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common import migrations
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.devbroker import DevBroker, create_topics
from services.common.events import TOPICS, timestamp
from services.common.outbox import OutboxRelay
from services.common.uow import SqlUnitOfWork

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    events = int(os.environ.get("BENCH_EVENTS", "5000"))
    per_transaction = 50
    with tempfile.TemporaryDirectory() as tmp, DevBroker() as broker:
        user_url = os.environ.get("BENCH_USER_DATABASE_URL", f"sqlite:///{tmp}/user.db")
        analytics_url = os.environ.get("BENCH_ANALYTICS_DATABASE_URL", f"sqlite:///{tmp}/analytics.db")
        migrations.upgrade(user_url, ROOT / "services" / "user" / "migrations")
        migrations.upgrade(analytics_url, ROOT / "services" / "analytics" / "migrations")
        user_db, analytics_db = make_engine(user_url), make_engine(analytics_url)
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, max_poll_interval_ms=1000,
                              topic_prefix="bench-", request_timeout_ms=10_000)
        create_topics(broker.bootstrap_servers, [kafka.topic(t) for t in TOPICS])

        started = time.perf_counter()
        moment = timestamp(datetime.now(UTC))
        for first in range(0, events, per_transaction):
            with SqlUnitOfWork(user_db, "user") as uow:
                for n in range(first, min(events, first + per_transaction)):
                    uow.publish(UserRegistered(user_id=n, channel="sms", registered_at=moment), aggregate_id=str(n))
                uow.commit()
        write_seconds = time.perf_counter() - started

        relay = OutboxRelay("user", user_db, kafka, batch_size=500)
        started = time.perf_counter()
        published = 0
        while published < events:
            published += relay.publish_pending()
        relay_seconds = time.perf_counter() - started

        analytics_uow = functools.partial(SqlAnalyticsUnitOfWork, analytics_db, "analytics")
        consumer = EventConsumer("analytics", analytics_uow, kafka, HANDLERS, batched=True)
        consumer.poll_once(timeout_ms=100)  # join the group before timing
        started = time.perf_counter()
        consumed = 0
        while consumed < events:
            consumed += consumer.poll_once(timeout_ms=500)
        consume_seconds = time.perf_counter() - started
        consumer.close()

    result = {
        "benchmark": "outbox",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "databases": {"user": user_url.split("://")[0], "analytics": analytics_url.split("://")[0]},
        "events": events,
        "outbox_writes_per_second": round(events / write_seconds),
        "relay_events_per_second": round(events / relay_seconds),
        "consumer_events_per_second": round(events / consume_seconds),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "outbox.json").write_text(json.dumps(result, indent=2))
    for key in ("outbox_writes_per_second", "relay_events_per_second", "consumer_events_per_second"):
        print(f"{key:32} {result[key]:>8}")
    print(f"written to {RESULTS / 'outbox.json'}")
