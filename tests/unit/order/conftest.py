"""Order unit fixtures: the in-memory unit of work and in-memory neighbours (catalogue, stock, member, user)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.order import service
from services.order.domain import Order
from services.order.service import CheckoutInput, OrderSettings
from tests.fakes import HOME, FakeCatalog, FakeMembers, FakeOrderUnitOfWork, FakeStock, FakeUsers

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
__all__ = ["HOME", "NOW", "Shop", "late_money", "paid_order"]


@dataclass
class Shop:
    uow: FakeOrderUnitOfWork
    catalog: FakeCatalog
    stock: FakeStock
    members: FakeMembers
    users: FakeUsers
    settings: OrderSettings


@pytest.fixture
def shop() -> Shop:
    catalog = FakeCatalog()
    catalog.put(101, price_fen=1999)
    catalog.put(102, price_fen=500)
    return Shop(FakeOrderUnitOfWork(), catalog, FakeStock(catalog, {101: 10, 102: 100}), FakeMembers(), FakeUsers(),
                OrderSettings(pay_minutes=30, notify_url="https://mall.example/api/v1/payments/wechat/notify"))


def paid_order(shop: Shop, *items: tuple[int, int], user_id: int = 1, key: str = "paid") -> Order:
    """An order of (sku_id, quantity) lines (product 10), placed through the cart and paid from the balance."""
    ids = tuple(service.add_cart_item(shop.uow, shop.catalog, user_id=user_id, sku_id=sku_id,
                                      quantity=quantity, now=NOW).item.id or 0 for sku_id, quantity in items)
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings,
                                 user_id=user_id, request=CheckoutInput(cart_item_ids=ids, address_id=7 + user_id - 1),
                                 note="", idempotency_key=key, request_fingerprint=repr(ids).encode(), now=NOW)
    return service.mark_paid(shop.uow, order_no=order.order_no, channel="balance", out_trade_no=order.order_no,
                             paid_fen=order.payable_fen, actor=f"user:{user_id}", now=NOW)


def late_money(shop: Shop) -> list[tuple[str, str, str, int, str, str]]:
    """The late payments and their refunds published: (event type, order_no, channel, amount_fen, refund_no, reason;
    "" for a refund)."""
    return [(event.event_type, event.payload.order_no, event.payload.channel, event.payload.amount_fen,
             event.payload.refund_no, getattr(event.payload, "reason", ""))
            for event in shop.uow.published if event.event_type.startswith("late-payment-")]
