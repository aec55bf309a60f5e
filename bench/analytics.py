"""Analytics: consumer ingestion (events/s), dashboard query latency over millions of events (p50/p99), export RSS.

On fresh PostgreSQL databases of BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432,
dropped afterwards) and a tansu broker of its own. Scale with:
- BENCH_ANALYTICS_INGEST (20,000): a mix of page views, cart additions, orders placed and paid, consumed by one
  EventConsumer (batches of KAFKA_MAX_POLL_RECORDS, default 500) through the broker, and handed to the same
  consumer's handle_batch() without it (the issue's target: >= 5,000 events/s per consumer process);
- BENCH_ANALYTICS_EVENTS (1,000,000; the issue's figure is 10,000,000): synthetic raw events over 90 days COPYed
  into raw_events, with the daily rollups they make generated alongside (see load_events); the dashboard's
  reports are then timed BENCH_ANALYTICS_QUERIES (100) times each (target: p99 < 100 ms with 10M events);
- BENCH_EXPORT_ROWS (50,000): about that many of those raw events (the most recent whole days) exported as CSV
  and XLSX, each in a process of its own whose peak RSS is reported (target: < 200 MB for 1M rows).
"""

from __future__ import annotations

import contextlib
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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError
from mall.events.v1.order_events_pb2 import CartItemAdded, OrderAmounts, OrderCreated, OrderLine, OrderPaid
from mall.events.v1.tracking_events_pb2 import PageViewed
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, func, select

from bench.auth import fresh_databases, postgres_server
from services.analytics import reports, service
from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.analytics.domain import (
    ACTIVE_USER,
    CART_USER,
    DISTINCT_FIGURES,
    FUNNEL,
    FUNNEL_SETS,
    ORDER_USER,
    PAYER,
    RANGE_SETS,
    REGISTRATION,
    RETENTION_DAYS,
    VIEWER,
    VISIT,
    VISITOR,
    Period,
    funnel_steps,
    last_seen,
    price_band,
    retained_counter,
)
from services.common import migrations
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.devbroker import DevBroker, create_topics
from services.common.events import TOPICS, encode, new_envelope, timestamp
from services.common.formats import shop_day, shop_day_start
from services.common.kafka import make_producer
from services.common.outbox import processed_events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIGRATIONS = ROOT / "services" / "analytics" / "migrations"
ROLLUP_DAYS = 90
PROVINCES = ("广东省", "浙江省", "江苏省", "上海市", "北京市", "四川省", "湖北省", "山东省", "福建省", "河南省")


def main() -> None:
    server = postgres_server()
    ingest_count = int(os.environ.get("BENCH_ANALYTICS_INGEST", "20000"))
    events = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "1000000"))
    queries = int(os.environ.get("BENCH_ANALYTICS_QUERIES", "100"))
    export_rows = int(os.environ.get("BENCH_EXPORT_ROWS", "50000"))
    names = {"ingest": f"bench_analytics_ingest_{os.getpid()}", "rollup": f"bench_analytics_rollup_{os.getpid()}"}
    with fresh_databases(server, names.values()):
        engines = {}
        for key, name in names.items():
            migrations.upgrade(f"{server}/{name}", MIGRATIONS)
            engines[key] = make_engine(f"{server}/{name}")
        ingestion = ingest(engines["ingest"], ingest_count)
        loaded = load_events(engines["rollup"], events)
        latencies = time_reports(engines["rollup"], queries)
        checked = check_against_member_days(engines["rollup"])
        export_days = min(ROLLUP_DAYS, -(-export_rows * ROLLUP_DAYS // max(events, 1)))
        exports = {fmt: export_in_child(f"{server}/{names['rollup']}", fmt, export_days) for fmt in ("csv", "xlsx")}
        for engine in engines.values():
            engine.dispose()

    result = {
        "benchmark": "analytics",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "database": "postgresql",
        "ingestion": ingestion,
        "loaded": loaded,
        "queries_per_report": queries,
        "reports_ms": latencies,
        "checked_against_member_days": checked,
        "exports": exports,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "analytics.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"{'loaded':32} {loaded['raw_events']:>10} raw events, {loaded['member_rows']} member rows, "
          f"{loaded['breakdown_rows']} breakdown rows, {loaded['arrival_rows']} arrival rows in {loaded['seconds']} s")
    for path, figures in ingestion.items():
        print(f"{'consumer events/s, ' + path:32} {figures['events_per_second']:>10}   ({figures['events']} events; "
              f"{figures['events_per_cpu_second']} per CPU second of the consumer process)")
    for name, figures in latencies.items():
        print(f"{name:32} p50 {figures['p50']:>7} ms   p99 {figures['p99']:>7} ms")
    for name, figures in checked.items():
        print(f"{name + ' = member-day count':32} {'same':>10}   (counted from the member-days once: "
              f"{figures['member_days_ms']} ms)")
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
    handlers, one commit per batch of max_poll_records), which is what a consumer process can do once Kafka is
    not the limit."""
    return {"broker": through_broker(engine, count), "handlers_only": through_handlers(engine, count)}


def through_handlers(engine: Engine, count: int) -> dict[str, Any]:
    # Never connected: records are handed over directly.
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", max_poll_interval_ms=1000, topic_prefix="bench-",
                          request_timeout_ms=1000)
    consumer = EventConsumer("analytics-direct", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"),
                             kafka, HANDLERS, batched=True)
    records = []
    for offset, event in enumerate(synthetic_events(count, datetime.now(UTC), tag="direct-")):
        envelope = new_envelope(event, producer="bench", aggregate_id="bench")
        records.append(ConsumerRecord(kafka.topic(envelope.event_type), 0, -1, offset, 0, 0, None, encode(envelope),
                                      [], None, -1, -1, -1))
    batch = kafka.max_poll_records
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(records), batch):
        if consumer.handle_batch(records[start:start + batch]) is None:
            raise RuntimeError("a batch of the benchmark failed")
    return _rates(count, time.perf_counter() - started, time.process_time() - cpu)


def _rates(events: int, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    # On a shared machine wall-clock rates say more about the neighbours than about the consumer: the CPU time
    # of this process (its Python work; PostgreSQL's own work is not in it) tells what one core would give.
    return {"events": events, "seconds": round(seconds, 2), "events_per_second": round(events / seconds) if seconds else 0,
            "cpu_seconds": round(cpu_seconds, 2), "events_per_cpu_second": round(events / cpu_seconds) if cpu_seconds else 0}


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
                                 HANDLERS, batched=True)
        # The clock starts once the first events are in: joining the group (tansu: a rebalance timeout) is not
        # ingestion, and those first events are not counted. Progress is read from processed_events, so a
        # rebalance on a busy machine (records delivered again, skipped as duplicates) changes nothing.
        while not processed(engine):
            poll(consumer)
        first = processed(engine)
        started, cpu = time.perf_counter(), time.process_time()
        while processed(engine) < count:
            poll(consumer)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        consumer.close()
    return _rates(count - first, seconds, cpu_seconds)


def processed(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(processed_events)).scalar_one()


def poll(consumer: EventConsumer) -> None:
    try:
        consumer.poll_once(timeout_ms=500)
    except CommitFailedError:  # the group rebalanced: the records come again and are skipped
        pass


# The dashboard's reports over millions of synthetic events

def load_events(engine: Engine, count: int) -> dict[str, Any]:
    """`count` synthetic events over the ROLLUP_DAYS shop days ending today, COPYed into raw_events, and the rollups
    they make (counters, distinct sets, breakdowns, facts), COPYed too. See SyntheticShop."""
    started = time.perf_counter()
    today = shop_day(datetime.now(UTC))
    per_day = max(1, count // ROLLUP_DAYS)
    shop = SyntheticShop(visitors_per_day=max(2, per_day // 8))
    raw_count = member_rows = 0
    arrivals = Arrivals()
    with _copy(engine) as copy:
        for index in range(ROLLUP_DAYS):
            day = today - timedelta(days=ROLLUP_DAYS - 1 - index)
            raw, facts, members = shop.day(index, day, per_day + (count - per_day * ROLLUP_DAYS if day == today else 0))
            copy("raw_events (event_id, event_type, aggregate_id, occurred_at, day, payload)", raw)
            copy("counted_facts (kind, key, day)", facts)
            copy("daily_members (kind, day, member)",
                 [f"{kind}\t{day}\t{member}\n" for kind, found in members.items() for member in found])
            arrivals.add_day(day, members)
            raw_count += len(raw)
            member_rows += sum(len(found) for found in members.values())
        copy("daily_counters (day, metric, value)", [f"{d}\t{m}\t{v}\n" for (d, m), v in shop.counters.items()])
        copy("daily_arrivals (kind, day, last_seen, value)",
             [f"{k}\t{d}\t{seen}\t{v}\n" for (k, d, seen), v in arrivals.counts.items()])
        copy("daily_breakdowns (dimension, day, key, metric, value)",
             [f"{dim}\t{d}\t{k}\t{m}\t{v}\n" for (dim, d, k, m), v in shop.breakdowns.items()])
    with engine.connect() as conn:  # as autovacuum would, long before anyone opens the dashboard
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return {"raw_events": raw_count, "days": ROLLUP_DAYS, "member_rows": member_rows,
            "breakdown_rows": len(shop.breakdowns), "arrival_rows": len(arrivals.counts),
            "seconds": round(time.perf_counter() - started, 1)}


class Arrivals:
    """daily_arrivals of the days' distinct sets, as the consumer keeps them (service.arrivals_of), for days given in
    order: per range set (domain.RANGE_SETS) a member arriving on a day counts under the last day it was in the set."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, date, date]] = Counter()
        self.last: dict[str, dict[str, date]] = {s: {} for s in RANGE_SETS}
        self.funnel_bits = {s: sum(1 << FUNNEL.index(k) for k in s.split("+")) for s in FUNNEL_SETS}

    def add_day(self, day: date, members: dict[str, set[str]]) -> None:
        for kind in (VISITOR, VISIT, ACTIVE_USER):
            self._arrive(kind, day, members[kind])
        steps: dict[str, int] = {}
        for i, kind in enumerate(FUNNEL):
            for member in members[kind]:
                steps[member] = steps.get(member, 0) | (1 << i)
        for range_set, bits in self.funnel_bits.items():
            self._arrive(range_set, day, [member for member, taken in steps.items() if taken & bits])

    def _arrive(self, range_set: str, day: date, members: Iterable[str]) -> None:
        last, counts = self.last[range_set], self.counts
        for member in members:
            counts[range_set, day, last_seen(last.get(member), day)] += 1
            last[member] = day


class SyntheticShop:
    """Days of synthetic events as raw_events COPY lines, with the rollups they make.

    The rollups are generated here, with the definitions the consumer applies (services.analytics.domain), not by
    consuming the events: 10M events through a consumer would take an hour on this machine. Per day, 70% page views
    by a sample of a device pool 4x the day's visitors (every other device logged in as a user, one or two sessions
    a day), 10% cart additions, 10% orders placed, 10% paid, by the day's logged-in visitors; a user seen for the
    first time registers that day (one user-registered event more), which drives retention (d1 / d7 / d30).
    """

    def __init__(self, visitors_per_day: int) -> None:
        self.rng = random.Random(11)
        self.visitors_per_day = visitors_per_day
        self.counters: Counter[tuple[date, str]] = Counter()
        self.breakdowns: Counter[tuple[str, date, str, str]] = Counter()
        self.registered: dict[int, date] = {}
        self.orders = 0
        self.payloads = {kind: "\\\\x" + message.SerializeToString().hex() for kind, message in {
            "page-viewed": PageViewed(device_id="dev-000001", session_id="s1", user_id=1,
                                      page="pages/product/detail", region=PROVINCES[0]),
            "cart-item-added": CartItemAdded(user_id=1, sku_id=10, product_id=1, quantity=1, price_fen=4000),
            "order-created": OrderCreated(order_no="O1", user_id=1, province=PROVINCES[0]),
            "order-paid": OrderPaid(order_no="O1", user_id=1, province=PROVINCES[0], paid_fen=4900),
            "user-registered": UserRegistered(user_id=1, channel="sms")}.items()}

    def day(self, index: int, day: date, count: int) -> tuple[list[str], list[str], dict[str, set[str]]]:
        """The day's raw event lines, counted-fact lines and distinct sets; counters and breakdowns accumulate."""
        self._day, self._count, self._raw, self._facts = day, count, [], []
        self._index = index
        self._midnight = shop_day_start(day)
        self._members: dict[str, set[str]] = {kind: set() for kind in (VISITOR, VISIT, ACTIVE_USER, *FUNNEL)}
        rng, counters = self.rng, self.counters
        devices = rng.sample(range(self.visitors_per_day * 4), self.visitors_per_day)
        shoppers = [device + 1 for device in devices if device % 2 == 0] or [1]
        for n in range(count):
            kind = n % 10
            if kind < 7:
                device = devices[rng.randrange(len(devices))]
                self._members[VISITOR].add(f"dev-{device}")
                self._members[VISIT].add(f"dev-{device}/s{device % 2 + rng.randrange(2)}")
                counters[day, "page_views"] += 1
                self.breakdowns["region", day, PROVINCES[device % len(PROVINCES)], "page_views"] += 1
                if device % 2 == 0:
                    self._activity(device + 1, VIEWER)
                self._event("page-viewed", n, f"dev-{device}")
                continue
            user = shoppers[rng.randrange(len(shoppers))]
            if kind == 7:
                counters[day, "cart_additions"] += 1
                self._activity(user, CART_USER)
                self._event("cart-item-added", n, str(user))
            elif kind == 8:
                self.orders += 1
                counters[day, "orders"] += 1
                self._activity(user, ORDER_USER)
                self._facts.append(f"order_created\tO{self.orders}\t{day}\n")
                self._event("order-created", n, f"O{self.orders}")
            else:
                self._paid(user, n)
        for name, kind in DISTINCT_FIGURES.items():
            counters[day, name] += len(self._members[kind])
        return self._raw, self._facts, self._members

    def _paid(self, user: int, n: int) -> None:
        day, price = self._day, self.rng.choice((990, 4900, 25000))
        self.counters[day, "paid_orders"] += 1
        self.counters[day, "gmv_fen"] += price
        self._activity(user, PAYER)
        self._facts.append(f"order_paid\tO{self.orders}\t{day}\n")
        for dimension, key in (("category", self.rng.randrange(1, 51)), ("brand", self.rng.randrange(0, 30)),
                               ("price_band", price_band(price)[0]), ("product", self.rng.randrange(1, 501))):
            for metric, value in (("paid_orders", 1), ("quantity", 1), ("sales_fen", price)):
                self.breakdowns[dimension, day, str(key), metric] += value
        province = PROVINCES[user % len(PROVINCES)]
        self.breakdowns["province", day, province, "paid_orders"] += 1
        self.breakdowns["province", day, province, "gmv_fen"] += price
        self._event("order-paid", n, f"O{self.orders}")

    def _activity(self, user: int, step: str) -> None:
        day = self._day
        if user not in self.registered:
            self.registered[user] = day
            self.counters[day, "new_users"] += 1
            self._facts.append(f"{REGISTRATION}\t{user}\t{day}\n")
            self._event("user-registered", self._count + user, str(user))
        if str(user) not in self._members[ACTIVE_USER]:
            self._members[ACTIVE_USER].add(str(user))
            since = (day - self.registered[user]).days
            if since in RETENTION_DAYS:
                self.counters[self.registered[user], retained_counter(since)] += 1
        self._members[step].add(str(user))

    def _event(self, kind: str, n: int, aggregate: str) -> None:
        # Event ids in (day, id) order, as the indexes have them: COPY appends to every B-tree.
        moment = (self._midnight + timedelta(seconds=n % (self._count + 1) * 86_000 // (self._count + 1))).isoformat()
        self._raw.append(f"{self._index:08x}-{n >> 16:04x}-4000-8000-{n & 0xFFFF:012x}\t{kind}\t{aggregate}\t"
                         f"{moment}\t{self._day}\t{self.payloads[kind]}\n")


@contextlib.contextmanager
def _copy(engine: Engine) -> Iterator[Callable[[str, list[str]], None]]:
    """copy(table_and_columns, lines): COPY text-format lines in, on one connection, committed at the end."""
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None

        def copy(target: str, lines: list[str]) -> None:
            with driver.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as stream:
                for start in range(0, len(lines), 10_000):
                    stream.write("".join(lines[start:start + 10_000]))

        yield copy
        connection.commit()
    finally:
        connection.close()


def time_reports(engine: Engine, queries: int) -> dict[str, dict[str, float]]:
    uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
    today = shop_day(datetime.now(UTC))
    last = {n: {"from_date": (today - timedelta(days=n - 1)).isoformat(), "to_date": today.isoformat()}
            for n in (7, 30, 90)}
    reports_to_time: dict[str, Callable[[], object]] = {
        "overview 7 days": lambda: service.get_overview(uow(), **last[7]),
        "overview 30 days": lambda: service.get_overview(uow(), **last[30]),
        "overview 90 days": lambda: service.get_overview(uow(), **last[90]),
        "funnel 7 days": lambda: service.get_funnel(uow(), **last[7]),
        "funnel 30 days": lambda: service.get_funnel(uow(), **last[30]),
        "funnel 90 days": lambda: service.get_funnel(uow(), **last[90]),
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


def check_against_member_days(engine: Engine) -> dict[str, dict[str, float]]:
    """The overview's distinct figures and the funnel (from daily_arrivals) against the same counted from every
    member-day of the period (the path they replace), once per period; a difference stops the benchmark."""
    today = shop_day(datetime.now(UTC))
    found = {}
    for n in (7, 30, 90):
        period = Period(today - timedelta(days=n - 1), today)
        span = {"from_date": period.first.isoformat(), "to_date": period.last.isoformat()}
        uow = SqlAnalyticsUnitOfWork(engine, "analytics")
        totals = service.get_overview(uow, **span).totals
        funnel = service.get_funnel(uow, **span)
        with uow:
            started = time.perf_counter()
            distinct = uow.rollups.distinct_members(tuple(DISTINCT_FIGURES.values()), period)
            profiles = uow.rollups.step_profiles(FUNNEL, period)
            seconds = time.perf_counter() - started
        reference = ({name: distinct[kind] for name, kind in DISTINCT_FIGURES.items()}, funnel_steps(profiles.get(None, {})),
                     [(day, funnel_steps(profiles.get(day, {}))) for day in period.days()])
        fast = ({name: totals[name] for name in DISTINCT_FIGURES}, funnel.totals, funnel.days)
        if fast != reference:
            raise RuntimeError(f"{n} days: the arrivals say {fast}, the member-days {reference}")
        found[f"overview and funnel {n} days"] = {"member_days_ms": round(seconds * 1000, 1)}
    return found


# Exports: raw events of the most recent days, written by a process of its own

def export_in_child(url: str, fmt: str, days: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-m", "bench.analytics", "export", url, fmt, f"{tmp}/export.{fmt}",
                              str(days)],
                             cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def export_child(url: str, fmt: str, path: str, days: str) -> None:
    """Runs in the child: one events export of the last `days` days; prints rows, time and peak RSS as JSON."""
    engine = make_engine(url)
    today = shop_day(datetime.now(UTC))
    period = Period(today - timedelta(days=int(days) - 1), today)
    at_rest = peak_rss_kib()
    started = time.perf_counter()
    rows = reports.export(SqlAnalyticsUnitOfWork(engine, "analytics"), kind="events", format=fmt, period=period,
                          path=Path(path))
    seconds = time.perf_counter() - started
    peak = peak_rss_kib()
    print(json.dumps({"rows": rows, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024, 1),
                      "growth_mb": round((peak - at_rest) / 1024, 1), "file_mb": round(Path(path).stat().st_size / 2**20, 1)}))


def peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: a child started by fork and exec
    inherits in it the peak of the parent it was forked from (here the bench, hundreds of MB after a large load)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: KiB on Linux anyway, bytes on macOS


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        export_child(*sys.argv[2:6])
    else:
        main()
