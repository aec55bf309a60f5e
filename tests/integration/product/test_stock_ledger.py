"""The stock ledger (stock_movements): every path that changes a SKU's stock appends its movement in the same
transaction, and the movements always sum to the SKU's counts (PostgreSQL and SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderLine, OrderPaid, OrderReturned
from sqlalchemy import func, insert, select

from services.common import migrations
from services.common.db import make_engine
from services.common.errors import NotFound
from services.product import consumers, service
from services.product.db import brands, categories, products, reservations, skus, stock_movements
from services.product.domain import RESERVATION_TTL, OutOfStock, StockLine
from tests.fakes import FakeOrders
from tests.fixtures.postgres import migrations_dir
from tests.integration.product.conftest import T0, Shelf, UowFactory

pytestmark = pytest.mark.integration
EDITOR = 7
Row = tuple[str, int, int, int, str, int, str]  # kind, available, reserved, sold, reference, actor_id, reason


@pytest.fixture
def shelf(uow: UowFactory) -> Shelf:
    return Shelf(uow)


def ledger(shelf: Shelf, sku_id: int) -> list[Row]:
    """The SKU's movements, oldest first."""
    [offer] = service.get_skus(shelf.uow(), sku_ids=[sku_id])
    items, total = service.stock_movements(shelf.uow(), product_id=offer.product_id, sku_id=sku_id, limit=100)
    assert total == len(items)
    return [(m.kind, m.available, m.reserved, m.sold, m.reference, m.actor_id, m.reason) for m in reversed(items)]


def consume(shelf: Shelf, event: object) -> None:
    """Apply an event as the product consumer does: the handler inside one unit of work, then commit."""
    with shelf.uow() as u:
        consumers.HANDLERS[type(event)](u, event, EventEnvelope(event_id="e"))  # type: ignore[index]
        u.commit()


def balanced(shelf: Shelf) -> tuple[int, list[object]]:
    checked, unbalanced = service.check_stock_ledger(shelf.uow())
    return checked, list(unbalanced)


def test_a_new_product_opens_each_skus_ledger_with_its_initial_stock(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=10, colours=("黑", "白"))
    black, white = shelf.sku_ids(product_id)

    assert (ledger(shelf, black), ledger(shelf, white), balanced(shelf)) == (
        [("initial", 10, 0, 0, "admin:7", EDITOR, "")], [("initial", 10, 0, 0, "admin:7", EDITOR, "")], (2, []))


def test_a_sku_added_by_an_edit_opens_its_ledger_and_the_kept_one_gets_no_second_initial_row(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=10, status="draft")
    [black] = shelf.sku_ids(product_id)

    service.update_product(shelf.uow(), actor_id=8, product_id=product_id,
                           draft=shelf.draft("手机", stock=4, colours=("黑", "白")), version=1, now=T0)

    [_, white] = shelf.sku_ids(product_id)
    assert (ledger(shelf, black), ledger(shelf, white), balanced(shelf)) == (
        [("initial", 10, 0, 0, "admin:7", EDITOR, "")], [("initial", 4, 0, 0, "admin:8", 8, "")], (2, []))


def test_an_adjustment_records_its_actor_and_reason(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)

    service.adjust_stock(shelf.uow(), actor_id=9, product_id=product_id, sku_id=sku_id, delta=5, reason="补货")
    service.adjust_stock(shelf.uow(), actor_id=9, product_id=product_id, sku_id=sku_id, delta=-2, reason="破损")

    assert (ledger(shelf, sku_id)[1:], shelf.stock(product_id), balanced(shelf)) == (
        [("adjust", 5, 0, 0, "admin:9", 9, "补货"), ("adjust", -2, 0, 0, "admin:9", 9, "破损")], [13], (1, []))


def test_a_refused_adjustment_or_reservation_records_nothing(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=2)
    [sku_id] = shelf.sku_ids(product_id)

    with pytest.raises(OutOfStock):
        service.adjust_stock(shelf.uow(), actor_id=9, product_id=product_id, sku_id=sku_id, delta=-3)
    with pytest.raises(OutOfStock):
        service.reserve_stock(shelf.uow(), order_no="O1", lines=[StockLine(sku_id, 3)], now=T0)

    assert (ledger(shelf, sku_id), shelf.stock(product_id)) == ([("initial", 2, 0, 0, "admin:7", EDITOR, "")], [2])


def test_reserve_confirm_and_release_move_units_between_buckets_once_each(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)

    for order_no, units in (("PAID", 3), ("CANCELLED", 2)):
        service.reserve_stock(shelf.uow(), order_no=order_no, lines=[StockLine(sku_id, units)], now=T0)
        service.reserve_stock(shelf.uow(), order_no=order_no, lines=[StockLine(sku_id, units)], now=T0)  # replay
    for _ in range(2):  # each replayed: no second movement
        consume(shelf, OrderPaid(order_no="PAID"))
        service.release_reservation(shelf.uow(), order_no="CANCELLED")
        consume(shelf, OrderCancelled(order_no="CANCELLED", was_paid=False))

    assert (ledger(shelf, sku_id)[1:], balanced(shelf)) == ([
        ("reserve", -3, 3, 0, "PAID", 0, ""), ("reserve", -2, 2, 0, "CANCELLED", 0, ""),
        ("confirm", 0, -3, 3, "PAID", 0, ""), ("release", 2, -2, 0, "CANCELLED", 0, "")], (1, []))


def test_the_sweep_records_an_expiry_not_a_cancellation(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    service.reserve_stock(shelf.uow(), order_no="OLD", lines=[StockLine(sku_id, 2)], now=T0)

    service.release_expired_reservations(shelf.uow, FakeOrders(), now=T0 + RESERVATION_TTL + timedelta(seconds=1))

    assert (ledger(shelf, sku_id)[1:], balanced(shelf)) == (
        [("reserve", -2, 2, 0, "OLD", 0, ""), ("expire", 2, -2, 0, "OLD", 0, "")], (1, []))


def test_the_ledger_tells_each_skus_last_movement_for_an_order(shelf: Shelf) -> None:
    """What tells a reservation the sweep put back on sale from one a cancellation released (both once RELEASED)."""
    product_id = shelf.product("手机", stock=10, colours=("黑", "白", "红"))
    black, white, red = shelf.sku_ids(product_id)
    service.reserve_stock(shelf.uow(), order_no="SWEPT", lines=[StockLine(black, 1), StockLine(white, 1)], now=T0)
    service.release_expired_reservations(shelf.uow, FakeOrders(), now=T0 + RESERVATION_TTL + timedelta(seconds=1))
    service.reserve_stock(shelf.uow(), order_no="CANCELLED", lines=[StockLine(black, 2)], now=T0)
    consume(shelf, OrderCancelled(order_no="CANCELLED", was_paid=False))

    with shelf.uow() as u:
        swept, cancelled = u.stock.last_kinds("SWEPT", {black, white, red}), u.stock.last_kinds("CANCELLED", {black})

    assert (swept, cancelled) == ({black: "expire", white: "expire"}, {black: "release"})


def test_a_paid_cancellation_and_an_after_sales_return_take_units_out_of_sold(shelf: Shelf) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    for order_no in ("CANCELLED", "RETURNED"):
        service.reserve_stock(shelf.uow(), order_no=order_no, lines=[StockLine(sku_id, 3)], now=T0)
        consume(shelf, OrderPaid(order_no=order_no))

    consume(shelf, OrderCancelled(order_no="CANCELLED", was_paid=True))
    consume(shelf, OrderCancelled(order_no="CANCELLED", was_paid=True))  # republished: nothing more
    consume(shelf, OrderReturned(order_no="RETURNED", case_no="AS1", lines=[OrderLine(sku_id=sku_id, quantity=2)]))

    product = service.get_admin_product(shelf.uow(), product_id=product_id).product
    assert (ledger(shelf, sku_id)[5:], product.skus[0].stock, product.skus[0].sales, product.sales,
            balanced(shelf)) == (
        [("cancel_paid", 3, 0, -3, "CANCELLED", 0, ""), ("return", 2, 0, -2, "AS1", 0, "")], 9, 1, 1, (1, []))


def test_a_sku_changed_behind_the_services_back_is_unbalanced(shelf: Shelf, uow: UowFactory) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    service.reserve_stock(shelf.uow(), order_no="O1", lines=[StockLine(sku_id, 4)], now=T0)
    with uow() as u:  # a reservation row cancelled by hand: its units are neither reserved nor back on sale
        u.session.execute(reservations.update().where(reservations.c.order_no == "O1").values(status="RELEASED"))
        u.commit()

    checked, [unbalanced] = service.check_stock_ledger(shelf.uow())

    assert (checked, unbalanced.describe()) == (1, f"sku {sku_id}: available 6 + reserved 0 + sold 0 = 6, initial + "
                                                   "adjustments 10; the ledger says available 6, reserved 4, sold 0")


def test_staff_page_through_a_skus_ledger_newest_first_and_only_under_its_own_product(shelf: Shelf) -> None:
    phone, cup = shelf.product("手机", stock=10), shelf.product("保温杯", stock=10)
    [sku_id] = shelf.sku_ids(phone)
    for delta in (1, 2, 3):
        service.adjust_stock(shelf.uow(), actor_id=9, product_id=phone, sku_id=sku_id, delta=delta)

    page, total = service.stock_movements(shelf.uow(), product_id=phone, sku_id=sku_id, offset=1, limit=2)
    with pytest.raises(NotFound) as elsewhere:
        service.stock_movements(shelf.uow(), product_id=cup, sku_id=sku_id)

    assert ([(m.kind, m.available) for m in page], total, elsewhere.value.code) == (
        [("adjust", 2), ("adjust", 1)], 4, "SKU_NOT_FOUND")


def test_skus_from_before_the_ledger_open_it_with_their_balance(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'product.db'}"
    migrations.upgrade(url, migrations_dir("product"), "0005")
    engine = make_engine(url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(categories).values(id=1, name="杯", icon="", sort=0))
        conn.execute(insert(brands).values(id=1, name="象印", logo=""))
        conn.execute(insert(products).values(id=1, name="保温杯", category_id=1, brand_id=1, images=[], params=[],
                                             specs=[], status="APPROVED", on_shelf=True, price_fen=100,
                                             created_at=now, updated_at=now))
        conn.execute(insert(skus).values(id=7, product_id=1, spec={}, spec_key="", price_fen=100, stock=5, sales=3))
        conn.execute(insert(reservations), [
            {"order_no": o, "sku_id": 7, "quantity": q, "status": s, "created_at": now, "expires_at": now}
            for o, q, s in (("O1", 2, "RESERVED"), ("O2", 3, "CONFIRMED"), ("O3", 4, "RELEASED"))])

    migrations.upgrade(url, migrations_dir("product"))

    with engine.connect() as conn:
        opening = conn.execute(select(stock_movements.c.sku_id, stock_movements.c.kind, stock_movements.c.available,
                                      stock_movements.c.reserved, stock_movements.c.sold)).all()
        count = conn.execute(select(func.count()).select_from(stock_movements)).scalar_one()
    engine.dispose()
    assert (count, [tuple(row) for row in opening]) == (1, [(7, "opening", 5, 2, 3)])
