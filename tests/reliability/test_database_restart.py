"""PostgreSQL "restarts" every second while shoppers order and pay: nothing is lost, nothing happens twice.

What a restart (or a failover) does to the services is end every session they hold: the server terminates them
(pg_terminate_backend), whatever each was doing: a request's transaction, a relay between sending a batch and
marking it published (and the leader lock its session held), a consumer halfway through an event, a job's round.
The shared test server itself is never restarted. The shopper does what the app does with a 503: tries again, the
same request with the same Idempotency-Key; WeChat Pay sends a notify again until it is answered 200.

Afterwards, exactly: one order per key, each PAID, one order-paid event each, applied once by product, member and
analytics; the SKU's sales equal the orders; and the audit (stock ledger, outboxes, order-paid consumed) is clean.
Any answer other than success or 503 fails the test.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from services.common.outbox import outbox, processed_events
from services.order.db import orders
from services.product.db import reservations, skus
from tests.fixtures.platform import Platform
from tests.fixtures.shop import product_on_shelf, verified_wechat_shopper
from tools.audit import audit, report
from tools.simulator.client import SimulatorClient

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.long]

STREAM_SECONDS = 20
RESTART_EVERY_SECONDS = 1.0
PRICE_FEN = 1500
STOCK = 1000  # more than the stream can sell, so that no answer is OUT_OF_STOCK
RETRY_SECONDS = 60  # how long one step is tried again while it answers 503


def query(url: str, statement, **params):  # type: ignore[no-untyped-def]
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(statement, params).all()
    finally:
        engine.dispose()


class Restarts:
    """Ends every session of the platform's databases every RESTART_EVERY_SECONDS, in a thread, until stopped."""

    def __init__(self, platform: Platform) -> None:
        self.url = platform.database_urls["order"]  # any of them: the server ends sessions of every database
        self.names = [make_url(url).database for url in platform.database_urls.values()]
        self.count = 0
        self.sessions_ended = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.failure: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.wait(RESTART_EVERY_SECONDS):
                [(ended,)] = query(self.url, text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                    "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"), names=self.names)
                self.sessions_ended += ended
                self.count += 1
        except BaseException as exc:  # reported when the restarts stop
            self.failure = exc

    def __enter__(self) -> Restarts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.failure is None, self.failure


def until_answered(url: str, body: dict[str, object], headers: dict[str, str], refused: list[str], *,
                   ok: int = 200) -> requests.Response:
    """POST `body` to `url`, and again (the same request) while it answers 503, recorded in `refused`; any other
    answer but `ok` fails the test."""
    deadline = time.monotonic() + RETRY_SECONDS
    while (answer := requests.post(url, json=body, headers=headers, timeout=30)).status_code == 503:
        refused.append(answer.json()["error"]["code"])
        assert time.monotonic() < deadline, f"still 503 after {RETRY_SECONDS}s: {answer.text}"
        time.sleep(0.1)  # a client's pause before trying again, not a wait for an outcome
    assert answer.status_code == ok, answer.text
    return answer


def notify_until_answered(platform: Platform, out_trade_no: str, refused: list[str]) -> None:
    """The shopper pays once; WeChat Pay sends the notify again (the simulator resends it) until it gets 200."""
    simulator = SimulatorClient(platform.simulator_url, timeout_seconds=30)
    deadline = time.monotonic() + RETRY_SECONDS
    while (status := simulator.wechatpay_pay(out_trade_no)["notify_status"]) != 200:
        assert status == 503, f"the notify was answered {status}\n{platform.log_tail(60)}"
        refused.append("notify")
        assert time.monotonic() < deadline, "the notify was never answered 200"
        time.sleep(0.1)


def test_orders_and_payments_while_the_database_restarts_every_second_lose_nothing_and_do_nothing_twice(
        platform: Platform) -> None:
    product_id, sku_id = product_on_shelf(platform, stock=STOCK, price_fen=PRICE_FEN)
    shopper, address_id = verified_wechat_shopper(platform)
    refused: list[str] = []
    order_nos: list[str] = []

    with Restarts(platform) as restarts:
        ends = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < ends:
            order = until_answered(f"{platform.api}/orders",
                                   {"sku_id": sku_id, "quantity": 1, "address_id": address_id},
                                   {**shopper, "Idempotency-Key": uuid.uuid4().hex}, refused, ok=201).json()
            pay = until_answered(f"{platform.api}/orders/{order['id']}/pay", {"channel": "wechat"}, shopper,
                                 refused).json()
            notify_until_answered(platform, pay["out_trade_no"], refused)
            order_nos.append(order["order_no"])

    print(f"{len(order_nos)} orders through {restarts.count} restarts ({restarts.sessions_ended} sessions ended); "
          f"503s retried: {len(refused)} {sorted(set(refused))}")
    assert restarts.count >= 5 and restarts.sessions_ended > 0 and order_nos
    for consumer in ("product", "member", "analytics"):
        platform.wait_until_consumed("order-paid", consumer, timeout_seconds=120)

    paid = len(order_nos)
    urls = platform.database_urls
    [(user_id,)] = query(urls["order"], select(orders.c.user_id).where(orders.c.order_no == order_nos[0]))
    placed = query(urls["order"], select(orders.c.order_no, orders.c.status).where(orders.c.user_id == user_id))
    assert sorted(placed) == sorted((order_no, "PAID") for order_no in order_nos)  # one order per key, no stray
    events = [event_id for (event_id,) in query(urls["order"], select(outbox.c.event_id).where(
        outbox.c.event_type == "order-paid", outbox.c.aggregate_id.in_(order_nos)))]
    assert len(events) == paid
    for consumer in ("product", "member", "analytics"):
        [(applied,)] = query(urls[consumer], select(func.count()).select_from(processed_events).where(
            processed_events.c.consumer == consumer, processed_events.c.event_id.in_(events)))
        assert applied == paid, consumer
    [(stock, sales)] = query(urls["product"], select(skus.c.stock, skus.c.sales).where(skus.c.id == sku_id))
    held = {"CONFIRMED": 0, "RESERVED": 0, "EXPIRED": 0, "RELEASED": 0}
    for status, order_no, quantity in query(urls["product"], select(
            reservations.c.status, reservations.c.order_no, reservations.c.quantity).where(reservations.c.sku_id == sku_id)):
        held[status] += quantity
        # A try that failed released its units (RELEASED), or, when the database could not tell whether its order
        # was committed, keeps them RESERVED until they lapse (submit_order): either way it never made an order.
        assert (order_no in order_nos) == (status == "CONFIRMED"), (order_no, status)
    assert (sales, held["CONFIRMED"], held["EXPIRED"]) == (paid, paid, 0)
    assert stock == STOCK - paid - held["RESERVED"]
    assert requests.get(f"{platform.api}/products/{product_id}", timeout=10).json()["sales"] == paid
    checks = audit(urls)
    assert all(check.mismatches == [] for check in checks), report(checks)
