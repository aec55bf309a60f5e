"""What checkout's catalogue lookup costs the product service on PostgreSQL: one SELECT of the SKUs, whatever it
asks for, and one of the category tree (each SKU's category path, which coupons limited to a category match on)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.product import service
from services.product.db import SqlProductUnitOfWork, start_mappers
from services.product.domain import OutOfStock, StockLine
from tests.fixtures.statements import statements
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration


def test_get_skus_reads_the_skus_with_their_products_columns_in_one_select_and_the_tree_in_another(service_engine: Callable[[str], Engine]) -> None:
    start_mappers()
    engine = service_engine("product")
    uow: UowFactory = functools.partial(SqlProductUnitOfWork, engine, "product")
    shelf = Shelf(uow)
    phone, kettle = shelf.product("手机", colours=("黑", "白")), shelf.product("电水壶")
    wanted = shelf.sku_ids(phone) + shelf.sku_ids(kettle)

    with statements(engine) as sent:
        offers = service.get_skus(uow(), sku_ids=wanted)

    assert sent == ["SELECT skus", "SELECT categories"]  # joined to products: no product entities, no other SKUs
    assert [(offer.sku.id, offer.product_id) for offer in offers] == [(wanted[0], phone), (wanted[1], phone),
                                                                     (wanted[2], kettle)]


def test_a_reservation_is_a_fixed_number_of_statements_and_answers_its_snapshot_from_one_select_once_held(
        service_engine: Callable[[str], Engine]) -> None:
    start_mappers()
    engine = service_engine("product")
    uow: UowFactory = functools.partial(SqlProductUnitOfWork, engine, "product")
    shelf = Shelf(uow)
    phone, kettle = shelf.product("手机", colours=("黑", "白")), shelf.product("电水壶")
    wanted = shelf.sku_ids(phone)[:1] + shelf.sku_ids(kettle)

    with statements(engine) as sent:
        held = service.reserve_stock(uow(), order_no="O1", lines=[StockLine(sku_id, 1) for sku_id in wanted])

    # the order's lock, replay check and release mark (released_orders: a reservation after its order's release
    # holds nothing; a lookup by key before any row lock, so no hot row is held longer); the first read of both SKUs in one SELECT (no GetSkus call beside it),
    # which refuses a short or off-sale SKU before any row lock, and their category paths (read before any row lock
    # too: they never lengthen the time a hot SKU's row is held); per line its conditional UPDATE and ledger row;
    # then, the rows held, the snapshot answered read again in one SELECT (a hot row held one round trip longer, the
    # price of a sound answer: an UPDATE that waited for a staff edit re-checks the SKU row only, so the edit's price
    # and shelf are seen by a new statement alone; the tree is not read again); the reservations
    assert sent == ["SELECT pg_advisory_xact_lock", "SELECT stock_reservations", "SELECT released_orders",
                    "SELECT skus", "SELECT categories", "UPDATE skus", "INSERT stock_movements", "UPDATE skus", "INSERT stock_movements", "SELECT skus",
                    "INSERT stock_reservations", "INSERT stock_reservations"]
    assert [(offer.sku.id, offer.sku.stock, offer.on_sale) for offer in held.offers] == [
        (wanted[0], 49, True), (wanted[1], 49, True)]


def test_a_sold_out_sku_is_refused_from_the_read_without_touching_its_row(
        service_engine: Callable[[str], Engine]) -> None:
    start_mappers()
    engine = service_engine("product")
    uow: UowFactory = functools.partial(SqlProductUnitOfWork, engine, "product")
    shelf = Shelf(uow)
    [sku_id] = shelf.sku_ids(shelf.product("秒杀手机", stock=1))
    service.reserve_stock(uow(), order_no="WINNER", lines=[StockLine(sku_id, 1)])

    with statements(engine) as sent, pytest.raises(OutOfStock) as refused:
        service.reserve_stock(uow(), order_no="LOSER", lines=[StockLine(sku_id, 1)])

    # a flash sale's losers read and leave: no UPDATE waiting on the row the winners hold
    assert (refused.value.code, [s for s in sent if s != "ROLLBACK"]) == (
        "OUT_OF_STOCK", ["SELECT pg_advisory_xact_lock", "SELECT stock_reservations", "SELECT released_orders",
                         "SELECT skus", "SELECT categories"])
