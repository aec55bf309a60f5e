"""The order service's live settings: a value put in Consul's KV store applies to the next order, no restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.config import ConfigError, ServiceSettings
from services.common.runtime_config import RuntimeConfig
from services.order.config import OrderServiceSettings, follow_live_settings, live_tunables, with_live_values
from services.order.domain import FreightRule
from services.order.grpc_api import OrderServicer
from services.order.service import OrderSettings
from services.product.domain import RESERVATION_TTL
from tests.unit.common.test_liveness import FakeClock, Until
from tests.unit.order.conftest import Shop


class FakeKv:
    """Consul's KV read as py-consul's `kv.get(prefix, recurse=True, index=, wait=)` makes it: a blocking query."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.index = 1
        self.changed = threading.Condition()

    def put(self, key: str, value: bytes) -> None:
        with self.changed:
            self.data[key] = value
            self.index += 1
            self.changed.notify_all()

    def get(self, prefix: str, *, recurse: bool, index: str | None = None,
            wait: str | None = None) -> tuple[str, list[dict[str, Any]] | None]:
        with self.changed:
            if index is not None:
                self.changed.wait_for(lambda: self.index > int(index), timeout=0.5)
            entries = [{"Key": key, "Value": value} for key, value in sorted(self.data.items()) if key.startswith(prefix)]
            return str(self.index), entries or None


@pytest.fixture
def kv() -> FakeKv:
    return FakeKv()


@pytest.fixture
def servicer(shop: Shop, kv: FakeKv) -> Iterator[OrderServicer]:
    """The order servicer with its settings following the fake KV store, as build_app wires it."""
    servicer = OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)
    live = RuntimeConfig(SimpleNamespace(consul=SimpleNamespace(kv=kv)), "order",  # type: ignore[arg-type]
                         live_tunables(shop.settings))
    watch = follow_live_settings(live, shop.settings, lambda settings: setattr(servicer, "settings", settings))
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(stop,), daemon=True)
    thread.start()
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t"))
    yield servicer
    caller_var.reset(token)
    stop.set()
    thread.join(timeout=5)


def place_order(servicer: OrderServicer, key: str) -> order_pb2.Order:
    checkout = order_pb2.CheckoutRequest(sku_id=101, quantity=1, address_id=7)
    return servicer.SubmitOrder(order_pb2.SubmitOrderRequest(checkout=checkout, idempotency_key=key), None)  # type: ignore[arg-type]


def minutes_to_pay(order: order_pb2.Order) -> float:
    return (order.pay_deadline.ToSeconds() - order.created_at.ToSeconds()) / 60


def test_a_payment_timeout_put_in_consul_applies_to_the_next_order_without_a_restart(
        servicer: OrderServicer, kv: FakeKv) -> None:
    before = place_order(servicer, "k1")
    kv.put("minimall/order/payment_timeout_minutes", b"15")
    deadline = time.monotonic() + 10
    while servicer.settings.pay_minutes != 15 and time.monotonic() < deadline:
        time.sleep(0.02)
    after = place_order(servicer, "k2")

    assert (minutes_to_pay(before), minutes_to_pay(after)) == (30, 15)
    assert servicer.settings.notify_url == "https://mall.example/api/v1/payments/wechat/notify"  # the rest stays


def test_freight_put_in_consul_prices_the_next_preview_and_order_alike(servicer: OrderServicer, kv: FakeKv) -> None:
    """Freight was an environment value only: a carrier's new price or a free-shipping promotion needed a release."""
    checkout = order_pb2.CheckoutRequest(sku_id=101, quantity=1, address_id=7)
    before = place_order(servicer, "k1")
    kv.put("minimall/order/freight_fen", b"800")
    kv.put("minimall/order/free_freight_from_fen", b"1000000")
    deadline = time.monotonic() + 10
    while servicer.settings.freight.free_from_fen != 1_000_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    quoted = servicer.QuoteCheckout(checkout, None)  # type: ignore[arg-type]
    after = place_order(servicer, "k2")

    assert (before.amounts.freight_fen, quoted.amounts.freight_fen, after.amounts.freight_fen) == (0, 800, 800)
    assert after.amounts.payable_fen == quoted.amounts.payable_fen == before.amounts.payable_fen + 800


def test_defaults_come_from_the_environment_and_every_setting_applies(tmp_path: Path) -> None:
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(b"public")
    base = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "test"})
    tunables = live_tunables(OrderServiceSettings.from_env(base, {
        "ORDER_PAY_MINUTES": "45", "ORDER_FREIGHT_FEN": "600", "ORDER_FREE_FREIGHT_FROM_FEN": "9900",
        "ORDER_AUTO_CONFIRM_DAYS": "14", "ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS": "20",
        "ORDER_MAX_UNPAID_PER_USER": "8"}).orders)

    assert {name: (t.default, t.minimum, t.maximum) for name, t in tunables.items()} == {
        "payment_timeout_minutes": (45, 5, 60), "auto_confirm_days": (14, 1, 60),
        "auto_confirm_max_pause_days": (20, 0, 60), "freight_fen": (600, 0, 100_000),
        "free_freight_from_fen": (9900, 0, 100_000_000), "max_unpaid_orders_per_user": (8, 1, 10_000)}
    assert with_live_values(OrderSettings(), {"payment_timeout_minutes": 10, "auto_confirm_days": 3,
                                              "auto_confirm_max_pause_days": 0, "max_unpaid_orders_per_user": 2}) == \
        OrderSettings(pay_minutes=10, auto_confirm_days=3, auto_confirm_max_pause_days=0, max_unpaid_orders=2)
    assert with_live_values(OrderSettings(freight=FreightRule(flat_fen=600, free_from_fen=9900)),
                            {"free_freight_from_fen": 0}) == OrderSettings(freight=FreightRule(flat_fen=600))


def test_no_payment_window_outlasts_the_stock_reservation_of_its_order(tmp_path: Path) -> None:
    # The product service releases a reservation RESERVATION_TTL after it was made, whatever the order's deadline:
    # an order still payable then is paid for units sold to someone else (its order-paid dead-lettered, the SKU
    # oversold). The longest window, from Consul or the environment, leaves an hour for order-paid to get there.
    longest = live_tunables(OrderSettings())["payment_timeout_minutes"].maximum
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(b"public")
    base = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "test"})

    assert timedelta(minutes=longest) + timedelta(hours=1) <= RESERVATION_TTL
    with pytest.raises(ConfigError, match="^ORDER_PAY_MINUTES must be 5 to 60, got '180'$"):
        OrderServiceSettings.from_env(base, {"ORDER_PAY_MINUTES": "180"})


@pytest.mark.parametrize(("name", "raw", "bounds"), [
    ("ORDER_AUTO_CONFIRM_DAYS", "0", "1 to 60"), ("ORDER_AUTO_CONFIRM_DAYS", "61", "1 to 60"),
    ("ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS", "-1", "0 to 60"), ("ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS", "61", "0 to 60"),
    ("ORDER_AFTER_SALE_DAYS", "-7", "0 to 365"), ("ORDER_AFTER_SALE_DAYS", "99999999", "0 to 365"),
    ("ORDER_RETURN_SHIP_DAYS", "0", "1 to 60"), ("ORDER_RETURN_SHIP_DAYS", "61", "1 to 60"),
    ("ORDER_FREIGHT_FEN", "-600", "0 to 100000"), ("ORDER_FREE_FREIGHT_FROM_FEN", "-1", "0 to 100000000"),
    ("ORDER_REFUND_STUCK_SECONDS", "599", "600 to 604800"), ("ORDER_REFUND_STUCK_SECONDS", "604801", "600 to 604800")])
def test_days_and_freight_out_of_their_bounds_stop_the_service_at_start(
        tmp_path: Path, name: str, raw: str, bounds: str) -> None:
    # 0 auto-confirm days completed every order as it shipped (its after-sales days running while in transit),
    # which Consul's bounds refuse; negative after-sales days shut after-sales, huge ones overflowed the date sums.
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(b"public")
    base = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "test"})

    with pytest.raises(ConfigError, match=f"^{name} must be {bounds}, got '{raw}'$"):
        OrderServiceSettings.from_env(base, {name: raw})


def test_without_consul_the_watch_reads_nothing_and_only_waits_for_stop_beating_as_it_waits() -> None:
    live = RuntimeConfig(SimpleNamespace(consul=None), "order", live_tunables(OrderSettings()))  # type: ignore[arg-type]
    reads: list[str | None] = []
    refresh = live.refresh
    live.refresh = lambda *, wait=None: reads.append(wait) or refresh(wait=wait)  # type: ignore[method-assign]
    clock, beats = FakeClock(), []
    stop = Until(clock, lambda: len(beats) == 3)

    live.watch(stop, lambda: beats.append(clock.now))  # type: ignore[arg-type]

    # before the fix this loop re-read without waiting, spinning a core
    assert (reads, stop.waited, beats) == ([], [30.0] * 4, [1030.0, 1060.0, 1090.0])
