"""The member service's money and points paths: ledger postings/s, member consumer events/s, and the latency
from an order being paid to its points being credited while checkout runs.

Three parts, each on fresh PostgreSQL databases of BENCH_POSTGRES_URL (dropped afterwards):

- ledger: BENCH_MEMBER_POSTINGS recharge credits, then as many balance payments, straight through the
  member service layer (`credit_recharge`, `pay_with_balance`: one double-entry posting each, with its
  row locks, idempotency key and outbox event) from BENCH_MEMBER_THREADS threads over
  BENCH_MEMBER_USERS users. Exact: every balance is what was credited minus what was paid, and
  `check_ledgers` finds no account that differs from the sum of its entries.
- consumer: BENCH_MEMBER_EVENTS `order-paid` events published through an outbox and relay to a dev broker,
  then consumed by the member service's own EventConsumer and handlers (spend, auto-join, points), timed
  from the end of the first poll's batch (the group join is the broker's, not the consumer's, time).
  Exact: one points posting per event.
- points latency: the platform as `make run` starts it (`RunningPlatform` of bench/auth.py); WeChat
  shoppers place buy-now orders at BENCH_MEMBER_RATE orders/s for BENCH_MEMBER_SECONDS, each paid through
  the gateway (POST /orders/{id}/pay) and the simulator's signed WeChat Pay notify. A poller watches the
  member database every 10 ms; the latency of an order is from its paid_at (order database) to the moment
  its points posting was first seen. Exact: every order paid, every order's points credited once.

The issue's target: points credited p99 < 1 s while checkout runs. Not run in CI (`make bench`).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from mall.events.v1.order_events_pb2 import OrderAmounts, OrderPaid
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from bench.auth import (
    ADMIN_PASSWORD,
    ADMIN_PHONE,
    RESULTS,
    ROOT,
    RunningPlatform,
    fresh_databases,
    postgres_server,
    service_databases,
)
from bench.checkout import _on_shelf, _post
from services.common import migrations
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.devbroker import DevBroker, create_topics
from services.common.events import TOPICS, timestamp
from services.common.outbox import OutboxRelay
from services.common.uow import SqlUnitOfWork
from services.member import service
from services.member.consumers import handlers
from services.member.db import SqlMemberUnitOfWork, ledger_postings, start_mappers
from services.member.domain import Account, Recharge
from services.order.db import orders
from services.user.domain import id_check_digit
from tools.simulator.client import SimulatorClient

PRICE_FEN = 10_000  # 100 yuan: the first paid order makes a shopper a member, so every order earns points


class _PhonesBound:
    """The consumer run's buyers all logged in by SMS: each has a phone (no user service runs for that run; its
    order-paid asks once per buyer, at their first order, before joining them)."""

    def has_phone(self, user_id: int) -> bool:
        return True


def main() -> None:
    server = postgres_server()
    postings = int(os.environ.get("BENCH_MEMBER_POSTINGS", "600"))
    users = int(os.environ.get("BENCH_MEMBER_USERS", "50"))
    threads = int(os.environ.get("BENCH_MEMBER_THREADS", "8"))
    events = int(os.environ.get("BENCH_MEMBER_EVENTS", "3000"))  # several polls of KAFKA_MAX_POLL_RECORDS (500)
    rate = float(os.environ.get("BENCH_MEMBER_RATE", "5"))
    seconds = float(os.environ.get("BENCH_MEMBER_SECONDS", "30"))
    shoppers = int(os.environ.get("BENCH_MEMBER_SHOPPERS", "20"))
    load_before = _uptime()

    ledger = _with_database(server, "ledger", lambda url: _ledger(url, postings, users, threads))
    consumer = _with_database(server, "consumer", lambda url: _consumer(url, events))
    latency = _points_latency(server, rate, seconds, shoppers)

    result = {
        "benchmark": "member",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": _uptime(), "shared": True},
        "database": "postgresql",
        "target": {"points_credited_p99_ms": 1000},
        "ledger": ledger, "consumer": consumer, "points_latency": latency,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "member.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"{'run':28} {'count':>7} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}  exact")
    rows = [("ledger: recharge credits", ledger["recharge"]), ("ledger: balance payments", ledger["payment"]),
            ("consumer: order-paid", consumer), ("checkout: order+pay+notify", latency["checkout"]),
            ("order paid -> points seen", latency["points"])]
    for name, run in rows:
        figures = [run.get(key) for key in ("per_second", "p50_ms", "p99_ms")]
        print(f"{name:28} {run['count']:>7} " + " ".join(f"{'-' if v is None else v:>8}" for v in figures)
              + f"  {run.get('exact', '')}")
    print(f"ledger exact: {ledger['exact']}; points target p99 < 1000 ms: "
          f"{'met' if latency['points'].get('p99_ms', 1e9) < 1000 else 'NOT met'}; asked {rate:g} orders/s")
    print(f"load average before {load_before}, after {result['machine']['load_after']} (shared machine)")
    print(f"written to {RESULTS / 'member.json'}")


# ---------------------------------------------------------------- ledger postings


def _ledger(url: str, count: int, users: int, threads: int) -> dict[str, Any]:
    start_mappers()
    engine = make_engine(url)
    uow = functools.partial(SqlMemberUnitOfWork, engine, "member")
    amount, price = 10_000, 100
    recharges = [_pending_recharge(uow(), user_id=1 + n % users, amount_fen=amount) for n in range(count)]

    def credit(n: int) -> float:
        started = time.perf_counter()
        service.credit_recharge(uow(), recharge_no=recharges[n].recharge_no, paid_fen=amount,
                                channel_txn_id=f"T{n}", channel="alipay")
        return (time.perf_counter() - started) * 1000

    def pay(n: int) -> float:
        started = time.perf_counter()
        service.pay_with_balance(uow(), user_id=1 + n % users, order_no=f"BENCH{n:08d}", amount_fen=price)
        return (time.perf_counter() - started) * 1000

    figures = {name: _timed(step, count, threads) for name, step in (("recharge", credit), ("payment", pay))}
    credited = Counter(1 + n % users for n in range(count))
    with uow() as tx:
        balances_exact = all(tx.ledger.balance(user, Account.AVAILABLE) == credited[user] * (amount - price)
                             for user in credited)
        mismatches = tx.ledger.check().mismatches
        tx.commit()
    engine.dispose()
    return {**figures, "users": users, "threads": threads, "exact": balances_exact and not mismatches}


def _pending_recharge(uow: SqlMemberUnitOfWork, *, user_id: int, amount_fen: int) -> Recharge:
    """A recharge awaiting payment, stored as `create_recharge` stores it (not timed): the run keeps many per user
    pending at once, more than a shopper may start (MAX_PENDING_RECHARGES)."""
    with uow:
        recharge = Recharge.create(user_id=user_id, amount_fen=amount_fen, channel="alipay", pending_recharges=0,
                                   now=datetime.now(UTC))
        uow.recharges.add(recharge)
        uow.commit()
    return recharge


def _timed(step: Callable[[int], float], count: int, threads: int) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(step, range(count)))
    return _figures(latencies, time.perf_counter() - started)


# ---------------------------------------------------------------- consumer


def _consumer(url: str, count: int) -> dict[str, Any]:
    start_mappers()
    with tempfile.TemporaryDirectory() as tmp, DevBroker() as broker:
        order_url = f"sqlite:///{tmp}/order.db"
        migrations.upgrade(order_url, ROOT / "services" / "order" / "migrations")
        order_db, member_db = make_engine(order_url), make_engine(url)
        # a whole poll's batch is applied between polls: room for it on a loaded machine, as in production
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, max_poll_interval_ms=300_000,
                              topic_prefix="bench-member-", request_timeout_ms=10_000)
        create_topics(broker.bootstrap_servers, [kafka.topic(t) for t in TOPICS])
        moment = timestamp(datetime.now(UTC))
        for first in range(0, count, 50):
            with SqlUnitOfWork(order_db, "order") as uow:
                for n in range(first, min(count, first + 50)):
                    uow.publish(OrderPaid(order_no=f"BENCH{n:08d}", user_id=1 + n % 200, paid_fen=PRICE_FEN,
                                          amounts=OrderAmounts(payable_fen=PRICE_FEN), created_at=moment,
                                          paid_at=moment, channel="wechat"), aggregate_id=f"BENCH{n:08d}")
                uow.commit()
        relay, published = OutboxRelay("order", order_db, kafka, batch_size=500), 0
        while published < count:
            published += relay.publish_pending()
        consumer = EventConsumer("member", functools.partial(SqlMemberUnitOfWork, member_db, "member"), kafka,
                                 handlers(_PhonesBound()))
        first = 0
        while first == 0:  # the group join (slow on tansu) is not the consumer's speed: time from the first batch
            first = consumer.poll_once(timeout_ms=500)
        started, consumed = time.perf_counter(), first
        while consumed < count:
            consumed += consumer.poll_once(timeout_ms=500)
        elapsed = time.perf_counter() - started
        consumer.close()
        with member_db.connect() as connection:
            credited = len(connection.execute(select(ledger_postings.c.id).where(
                ledger_postings.c.kind == "order_paid")).all())
        order_db.dispose()
        member_db.dispose()
    timed = count - first  # the events after the first poll's batch
    return {"count": count, "per_second": round(timed / elapsed, 1) if timed else None, "timed_events": timed,
            "exact": credited == count}


# ---------------------------------------------------------------- order paid -> points credited


def _points_latency(server: str, rate: float, seconds: float, shopper_count: int) -> dict[str, Any]:
    names = service_databases("member")
    with fresh_databases(server, names.values()):
        with tempfile.TemporaryDirectory() as var:
            running = RunningPlatform(server, names, Path(var))
            with running as api:
                sim = SimulatorClient(f"http://127.0.0.1:{running.env['SIMULATOR_PORT']}")
                admin = {"Authorization": "Bearer " + _post(api, "/auth/login/password",
                                                            {"phone": ADMIN_PHONE, "password": ADMIN_PASSWORD})[
                                                                "access_token"]}
                count = int(rate * seconds)
                _, sku_id = _on_shelf(api, admin, "会员积分压测", count + 10, price_fen=PRICE_FEN)
                with ThreadPoolExecutor(4) as pool:
                    shoppers = list(pool.map(lambda n: _wechat_shopper(api, sim, n), range(shopper_count)))
                watcher = _PointsWatcher(f"{server}/{names['member']}", f"{server}/{names['order']}")
                watcher.start()
                try:
                    checkout = _checkout(api, sim, sku_id, shoppers, count, rate)
                    paid_orders = checkout.pop("order_nos")
                    watcher.wait_for(set(paid_orders), timeout_seconds=60)
                finally:
                    watcher.stop()
    paid_at = watcher.paid_at  # filled by wait_for from the order database, below
    latencies = [(watcher.seen[no] - paid_at[no]) * 1000 for no in paid_orders if no in watcher.seen and no in paid_at]
    points = _figures(latencies, None) if latencies else {"count": 0}
    points["exact"] = (len(latencies) == len(paid_orders) == count and watcher.duplicates == 0)
    points["missing"] = len(paid_orders) - len(latencies)
    return {"asked_per_second": rate, "seconds": seconds, "shoppers": shopper_count, "checkout": checkout,
            "points": points}


def _wechat_shopper(api: str, sim: SimulatorClient, n: int) -> tuple[dict[str, str], int]:
    """A WeChat shopper (so WeChat Pay charges them), verified, with a phone bound, a member, with an address:
    (headers, address id)."""
    openid = f"o-bench-member-{uuid.uuid4().hex[:10]}"
    code = sim.wechat_login_code(openid)
    headers = {"Authorization": f"Bearer {_post(api, '/auth/login/wechat', {'code': code})['access_token']}"}
    first17 = f"110105{date(1980, 1, 1) + timedelta(days=n):%Y%m%d}123"
    _post(api, "/me/identity", {"real_name": "赵六", "id_number": first17 + id_check_digit(first17)}, headers)
    phone = f"136{n:08d}"  # membership is by phone number
    sent = _post(api, "/auth/sms-codes", {"phone": phone, "purpose": "bind"})
    _post(api, "/me/phone", {"phone": phone, "code": sent["dev_code"], "wechat_code": sim.wechat_login_code(openid)},
          headers)
    requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=headers, timeout=30)  # or by spend
    address = _post(api, "/me/addresses", {"receiver_name": "赵六", "receiver_phone": "13900001111", "province": "浙江省",
                                           "city": "杭州市", "district": "西湖区", "detail": "文三路 2 号",
                                           "is_default": True}, headers)
    return headers, address["id"]


def _checkout(api: str, sim: SimulatorClient, sku_id: int, shoppers: list[tuple[dict[str, str], int]], count: int,
              rate: float) -> dict[str, Any]:
    """`count` orders at `rate`/s, each created, prepaid and paid by the simulator's notify; latencies from due."""
    start = time.perf_counter() + 0.5

    def due_order(n: int) -> tuple[str, str, float]:
        due = start + n / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        headers, address_id = shoppers[n % len(shoppers)]
        try:
            order = _post(api, "/orders", {"sku_id": sku_id, "quantity": 1, "address_id": address_id},
                          {**headers, "Idempotency-Key": uuid.uuid4().hex})
            pay = _post(api, f"/orders/{order['id']}/pay", {"channel": "wechat"}, headers)
            notified = sim.wechatpay_pay(pay["out_trade_no"])
            outcome = "paid" if notified["notify_status"] == 200 else f"notify {notified['notify_status']}"
        except (RuntimeError, requests.RequestException) as exc:
            return "", type(exc).__name__, (time.perf_counter() - due) * 1000
        return order["order_no"], outcome, (time.perf_counter() - due) * 1000

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(due_order, range(count)))
    figures = _figures([ms for _, _, ms in results], time.perf_counter() - start)
    figures["outcomes"] = dict(Counter(outcome for _, outcome, _ in results))
    figures["exact"] = figures["outcomes"] == {"paid": count}
    figures["order_nos"] = [no for no, outcome, _ in results if outcome == "paid"]
    return figures


class _PointsWatcher:
    """Polls the member database every 10 ms for new order_paid points postings: when each was first seen."""

    def __init__(self, member_url: str, order_url: str) -> None:
        self.member_url, self.order_url = member_url, order_url
        self.seen: dict[str, float] = {}
        self.paid_at: dict[str, float] = {}
        self.duplicates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="points-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        engine, last = create_engine(self.member_url, poolclass=NullPool), 0
        with engine.connect() as connection:
            while not self._stop.is_set():
                rows = connection.execute(select(ledger_postings.c.id, ledger_postings.c.reference).where(
                    ledger_postings.c.kind == "order_paid", ledger_postings.c.id > last)
                    .order_by(ledger_postings.c.id)).all()
                connection.commit()
                now = time.time()
                for row in rows:
                    self.duplicates += row.reference in self.seen
                    self.seen.setdefault(row.reference, now)
                    last = row.id
                self._stop.wait(0.01)

    def wait_for(self, order_nos: set[str], timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not order_nos <= self.seen.keys() and time.monotonic() < deadline:
            time.sleep(0.1)
        with create_engine(self.order_url, poolclass=NullPool).connect() as connection:
            for row in connection.execute(select(orders.c.order_no, orders.c.paid_at).where(
                    orders.c.order_no.in_(order_nos))):
                if row.paid_at is not None:
                    self.paid_at[row.order_no] = row.paid_at.timestamp()


# ---------------------------------------------------------------- helpers


def _with_database(server: str, part: str, run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    name = f"bench_member_{part}_{os.getpid()}"
    with fresh_databases(server, [name]):
        migrations.upgrade(f"{server}/{name}", ROOT / "services" / "member" / "migrations")
        return run(f"{server}/{name}")


def _figures(latencies_ms: list[float], seconds: float | None) -> dict[str, Any]:
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive") if len(latencies_ms) > 1 else [
        latencies_ms[0]] * 99
    figures: dict[str, Any] = {"count": len(latencies_ms), "p50_ms": round(cuts[49], 1), "p99_ms": round(cuts[98], 1),
                               "max_ms": round(max(latencies_ms), 1)}
    if seconds:
        figures["per_second"] = round(len(latencies_ms) / seconds, 1)
    return figures


def _uptime() -> str:
    """The load averages `uptime` reports (the machine is shared: they say how busy it was)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
