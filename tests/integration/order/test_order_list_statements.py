"""A page of a shopper's orders on PostgreSQL costs the same statements for 2 orders or 20: their lines, history,
parcels, parcels' lines and the lines' open after-sales cases each in one read for the page, not one per order (a
count, not a timing)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, new_order, price
from services.order.uow import OrderSearch
from tests.fakes import HOME
from tests.fixtures.statements import statements

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
ALICE = 1


def shipped_orders(uow: Callable[[], SqlOrderUnitOfWork], count: int, first: int) -> None:
    """`count` of Alice's orders of two lines each, paid and shipped: a history of three steps and a parcel."""
    for n in range(first, first + count):
        order = new_order(user_id=ALICE, order_no=f"L{n}", address=HOME, amounts=price(3000),
                          lines=[OrderLine(101, 10, "手机", "", 1000, 1), OrderLine(102, 10, "耳机", "", 1000, 2)],
                          now=NOW + timedelta(minutes=n), pay_minutes=30)
        with uow() as work:
            work.orders.add(order)
            work.commit()
        service.mark_paid(uow(), order_no=order.order_no, channel="balance", out_trade_no=order.order_no,
                          paid_fen=order.payable_fen, actor="test", now=NOW)
        service.ship_order(uow(), order_id=order.id or 0, carrier="SF", tracking_no=order.order_no, lines=None,
                           actor="staff:7", now=NOW)


def test_a_page_of_my_orders_costs_the_same_statements_for_two_orders_or_twenty(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    page = OrderSearch(user_id=ALICE, limit=100)  # staff's search reads the same way, without the user condition
    shipped_orders(pg_uow, 2, 0)
    with statements(pg_engine) as for_two:
        two = service.search_orders(pg_uow(), page)
    shipped_orders(pg_uow, 18, 2)
    with statements(pg_engine) as for_twenty:
        twenty = service.search_orders(pg_uow(), page)

    assert (len(two.orders), len(twenty.orders), twenty.total) == (2, 20, 20)
    assert for_two == for_twenty
    # the count and the page; then, in the order SQLAlchemy picks, each relationship's one read for the page; then the
    # page's open after-sales cases
    assert sorted(for_twenty) == ["SELECT after_sale_lines", "SELECT order_lines", "SELECT order_transitions",
                                  "SELECT orders", "SELECT orders", "SELECT shipment_lines", "SELECT shipments"]
    assert {(len(o.lines), len(o.history), len(o.shipments), len(o.shipments[0].lines)) for o in twenty.orders} == {
        (2, 3, 1, 2)}
