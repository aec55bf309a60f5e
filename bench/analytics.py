"""Analytics: consumer ingestion (events/s), dashboard query latency over a large rollup (p50/p99), export peak RSS.

On a fresh PostgreSQL database of BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432,
dropped afterwards) and a tansu broker of its own. Scale with:
- BENCH_ANALYTICS_EVENTS (3,000): a mix of page views, cart additions, orders placed and paid, consumed by one
  EventConsumer process through the broker, and handed to the same consumer's handle() without it (the
  issue's target: >= 5,000 events/s per consumer process);
- BENCH_ANALYTICS_VISITORS (1,000): distinct visitors per day in a synthetic 90-day rollup (every distinct set
  and breakdown filled in proportion), on which the dashboard's reports are timed BENCH_ANALYTICS_QUERIES (30)
  times each (target: p99 < 100 ms with 10M events' worth);
- BENCH_EXPORT_ROWS (50,000): raw events exported as CSV and XLSX, each in a process of its own whose peak RSS
  is reported (target: < 200 MB for 1M rows).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError
from mall.events.v1.order_events_pb2 import CartItemAdded, OrderAmounts, OrderCreated, OrderLine, OrderPaid
from mall.events.v1.tracking_events_pb2 import PageViewed
from sqlalchemy import Engine, Table, func, select

from bench.auth import _on_server
from services.analytics import reports, service
from services.analytics.consumers import HANDLERS
from services.analytics.db import (
    SqlAnalyticsUnitOfWork,
    daily_breakdowns,
    daily_counters,
    daily_members,
    raw_events,
)
from services.analytics.domain import FIGURES, FUNNEL, PRICE_BANDS_FEN, Period, shop_day
from services.common import migrations
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.devbroker import DevBroker, create_topics
from services.common.events import TOPICS, encode, new_envelope, timestamp
from services.common.kafka import make_producer
from services.common.outbox import processed_events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIGRATIONS = ROOT / "services" / "analytics" / "migrations"
ROLLUP_DAYS = 90
PROVINCES = ("广东省", "浙江省", "江苏省", "上海市", "北京市", "四川省", "湖北省", "山东省", "福建省", "河南省")


def main() -> None:
    server = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
    events = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "3000"))
    visitors = int(os.environ.get("BENCH_ANALYTICS_VISITORS", "1000"))
    queries = int(os.environ.get("BENCH_ANALYTICS_QUERIES", "30"))
    export_rows = int(os.environ.get("BENCH_EXPORT_ROWS", "50000"))
    names = {"ingest": f"bench_analytics_ingest_{os.getpid()}", "rollup": f"bench_analytics_rollup_{os.getpid()}"}
    _on_server(server, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names.values()),
               *(f'CREATE DATABASE "{n}"' for n in names.values()))
    try:
        engines = {}
        for key, name in names.items():
            migrations.upgrade(f"{server}/{name}", MIGRATIONS)
            engines[key] = make_engine(f"{server}/{name}")
        ingestion = ingest(engines["ingest"], events)
        build_rollup(engines["rollup"], visitors)
        latencies = time_reports(engines["rollup"], queries)
        add_raw_events(engines["rollup"], export_rows)
        exports = {fmt: export_in_child(f"{server}/{names['rollup']}", fmt) for fmt in ("csv", "xlsx")}
        for engine in engines.values():
            engine.dispose()
    finally:
        _on_server(server, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names.values()))

    result = {
        "benchmark": "analytics",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "database": "postgresql",
        "ingestion": ingestion,
        "rollup": {"days": ROLLUP_DAYS, "visitors_per_day": visitors, "queries_per_report": queries},
        "reports_ms": latencies,
        "exports": exports,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "analytics.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    for path, figures in ingestion.items():
        print(f"{'consumer events/s, ' + path:32} {figures['events_per_second']:>10}   ({figures['events']} events)")
    for name, figures in latencies.items():
        print(f"{name:32} p50 {figures['p50']:>7} ms   p99 {figures['p99']:>7} ms")
    for fmt, figures in exports.items():
        print(f"{'export ' + fmt:32} {figures['rows']:>10} rows {figures['seconds']:>7} s   peak RSS "
              f"{figures['peak_rss_mb']:>6} MB (+{figures['growth_mb']} MB over the process at rest)")
    print(f"written to {RESULTS / 'analytics.json'}")


# Ingestion: synthetic business events through a real broker and one EventConsumer

def synthetic_events(count: int, now: datetime, tag: str = "") -> Iterator[Message]:
    rng = random.Random(7)
    for n in range(count):
        user = rng.randrange(1, 2000)
        kind = n % 10
        if kind < 7:
            view = PageViewed(device_id=f"dev-{user:06d}", session_id=f"s{n // 50}", user_id=user if n % 2 else 0,
                              page="pages/product/detail", region=rng.choice(PROVINCES))
            for stamp in (view.client_ts, view.received_at, view.viewed_at):
                stamp.CopyFrom(timestamp(now))
            yield view
        elif kind == 7:
            yield CartItemAdded(user_id=user, sku_id=10, product_id=1, quantity=1, price_fen=4000,
                                added_at=timestamp(now))
        else:
            lines = [OrderLine(sku_id=10, product_id=rng.randrange(1, 500), category_id=rng.randrange(1, 50),
                               brand_id=rng.randrange(0, 30), quantity=1, price_fen=rng.choice((990, 4900, 25000)))]
            money = OrderAmounts(items_total_fen=lines[0].price_fen, payable_fen=lines[0].price_fen)
            common = {"order_no": f"O{tag}{n // 10}", "user_id": user, "lines": lines, "amounts": money,
                      "province": rng.choice(PROVINCES)}
            yield (OrderCreated(**common, created_at=timestamp(now)) if kind == 8
                   else OrderPaid(**common, paid_at=timestamp(now), channel="wechat", paid_fen=money.payable_fen))


def ingest(engine: Engine, count: int) -> dict[str, Any]:
    """Events/s of one consumer process: through the broker, and the same path without it (decode, dedupe,
    handler, commit per event), which is what a consumer process can do once Kafka is not the limit."""
    return {"broker": through_broker(engine, count), "handlers_only": through_handlers(engine, count)}


def through_handlers(engine: Engine, count: int) -> dict[str, Any]:
    # Never connected: records are handed over directly.
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", max_poll_interval_ms=1000, topic_prefix="bench-",
                          request_timeout_ms=1000)
    consumer = EventConsumer("analytics-direct", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"),
                             kafka, HANDLERS)
    records = []
    for offset, event in enumerate(synthetic_events(count, datetime.now(UTC), tag="direct-")):
        envelope = new_envelope(event, producer="bench", aggregate_id="bench")
        records.append(ConsumerRecord(kafka.topic(envelope.event_type), 0, -1, offset, 0, 0, None, encode(envelope),
                                      [], None, -1, -1, -1))
    started = time.perf_counter()
    for record in records:
        consumer.handle(record)
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": round(seconds, 2), "events_per_second": round(count / seconds)}


def through_broker(engine: Engine, count: int) -> dict[str, Any]:
    with DevBroker() as broker:
        # tansu lets a member join only after the rebalance timeout (= max poll interval): short, yet long
        # enough for a batch on a busy machine.
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, max_poll_interval_ms=10_000,
                              topic_prefix="bench-", request_timeout_ms=10_000)
        create_topics(broker.bootstrap_servers, [kafka.topic(t) for t in TOPICS])
        producer = make_producer(kafka)
        for event in synthetic_events(count, datetime.now(UTC)):
            envelope = new_envelope(event, producer="bench", aggregate_id="bench")
            producer.send(kafka.topic(envelope.event_type), key=envelope.aggregate_id.encode(), value=encode(envelope))
        producer.flush(timeout=60)
        producer.close()
        consumer = EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), kafka,
                                 HANDLERS)
        # The clock starts once the first events are in: joining the group (tansu: a rebalance timeout) is not
        # ingestion, and those first events are not counted. Progress is read from processed_events, so a
        # rebalance on a busy machine (records delivered again, skipped as duplicates) changes nothing.
        while not processed(engine):
            poll(consumer)
        first = processed(engine)
        started = time.perf_counter()
        while processed(engine) < count:
            poll(consumer)
        seconds = time.perf_counter() - started
        consumer.close()
    timed = count - first
    return {"events": timed, "seconds": round(seconds, 2), "events_per_second": round(timed / seconds) if timed else 0}


def processed(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(processed_events)).scalar_one()


def poll(consumer: EventConsumer) -> None:
    try:
        consumer.poll_once(timeout_ms=500)
    except CommitFailedError:  # the group rebalanced: the records come again and are skipped
        pass


# The dashboard's reports over a large synthetic rollup

def build_rollup(engine: Engine, visitors: int) -> None:
    """ROLLUP_DAYS days ending today, each with `visitors` devices out of a pool of 5x that, and what they did."""
    rng = random.Random(11)
    today = shop_day(datetime.now(UTC))
    days = [today - timedelta(days=n) for n in range(ROLLUP_DAYS)]
    shoppers = max(1, visitors // 2)
    counters = [{"day": d, "metric": m, "value": rng.randrange(1, 100_000)} for d in days for m in FIGURES]
    _insert(engine, daily_counters, iter(counters))

    def members() -> Iterator[dict[str, Any]]:
        for day in days:
            for device in rng.sample(range(visitors * 5), visitors):
                yield {"kind": "visitor", "day": day, "member": f"dev-{device}"}
                yield {"kind": "visit", "day": day, "member": f"dev-{device}/s{day.toordinal()}"}
            active = rng.sample(range(shoppers * 5), shoppers)
            for user in active:
                yield {"kind": "active_user", "day": day, "member": str(user)}
            for step, kind in enumerate(FUNNEL):  # each step a narrower slice of the active shoppers
                for user in active[:len(active) // (step + 1)]:
                    yield {"kind": kind, "day": day, "member": str(user)}
    _insert(engine, daily_members, members())

    def breakdowns() -> Iterator[dict[str, Any]]:
        keys = {"category": range(1, 51), "brand": range(0, 30), "product": range(1, 501),
                "price_band": PRICE_BANDS_FEN, "province": PROVINCES, "region": PROVINCES}
        metrics = {"province": ("paid_orders", "gmv_fen"), "region": ("page_views",)}
        for day in days:
            for dimension, values in keys.items():
                for key in values:
                    for metric in metrics.get(dimension, ("paid_orders", "quantity", "sales_fen")):
                        yield {"dimension": dimension, "day": day, "key": str(key), "metric": metric,
                               "value": rng.randrange(1, 10_000)}
    _insert(engine, daily_breakdowns, breakdowns())


def _insert(engine: Engine, table: Table, rows: Iterator[dict[str, Any]], batch: int = 5000) -> None:
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == batch:
                conn.execute(table.insert(), chunk)
                chunk = []
        if chunk:
            conn.execute(table.insert(), chunk)


def time_reports(engine: Engine, queries: int) -> dict[str, dict[str, float]]:
    uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
    today = shop_day(datetime.now(UTC))
    last = {n: {"from_date": (today - timedelta(days=n - 1)).isoformat(), "to_date": today.isoformat()}
            for n in (7, 30, 90)}
    reports_to_time: dict[str, Callable[[], object]] = {
        "overview 7 days": lambda: service.get_overview(uow(), **last[7]),
        "overview 30 days": lambda: service.get_overview(uow(), **last[30]),
        "overview 90 days": lambda: service.get_overview(uow(), **last[90]),
        "funnel 30 days": lambda: service.get_funnel(uow(), **last[30]),
        "preferences 30 days": lambda: service.get_purchase_preferences(uow(), **last[30]),
        "regions 30 days": lambda: service.get_regional_distribution(uow(), **last[30]),
        "retention 30 days": lambda: service.get_retention(uow(), **last[30]),
    }
    found = {}
    for name, run in reports_to_time.items():
        run()  # warm the connection pool and the cache
        samples = []
        for _ in range(queries):
            started = time.perf_counter()
            run()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        found[name] = {"p50": round(statistics.median(samples), 1),
                       "p99": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1)}
    return found


# Exports: raw events of the last 30 days, written by a process of its own

def add_raw_events(engine: Engine, count: int) -> None:
    now = datetime.now(UTC)
    payload = PageViewed(device_id="dev-000001", session_id="s1", user_id=1, page="pages/index/index",
                         region="广东省").SerializeToString()

    def rows() -> Iterator[dict[str, Any]]:
        for n in range(count):
            moment = now - timedelta(minutes=n * 30 * 24 * 60 // max(count, 1))
            yield {"event_id": f"{n:08d}-0000-4000-8000-000000000000", "event_type": "page-viewed",
                   "aggregate_id": "dev-000001", "occurred_at": moment, "day": shop_day(moment), "payload": payload}
    _insert(engine, raw_events, rows())


def export_in_child(url: str, fmt: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-m", "bench.analytics", "export", url, fmt, f"{tmp}/export.{fmt}"],
                             cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def export_child(url: str, fmt: str, path: str) -> None:
    """Runs in the child: one events export of the last 30 days; prints rows, time and peak RSS as JSON."""
    engine = make_engine(url)
    today = shop_day(datetime.now(UTC))
    period = Period(today - timedelta(days=30), today)
    at_rest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    rows = reports.export(SqlAnalyticsUnitOfWork(engine, "analytics"), kind="events", format=fmt, period=period,
                          path=Path(path))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows": rows, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024, 1),
                      "growth_mb": round((peak - at_rest) / 1024, 1), "file_mb": round(Path(path).stat().st_size / 2**20, 1)}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        export_child(*sys.argv[2:5])
    else:
        main()
