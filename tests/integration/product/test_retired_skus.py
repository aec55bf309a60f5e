"""Retired SKUs holding stock are shown to staff apart from the SKUs an edit form sends back, never to shoppers: those
retired with stock before edits refused it (product migration 0007), and those given units back since."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from services.common.errors import Conflict
from services.product import service
from services.product.db import skus
from services.product.domain import StockLine
from services.product.grpc_api import product_message
from tests.integration.product.conftest import Shelf, UowFactory, confirm_paid

pytestmark = pytest.mark.integration


def replies(shelf: Shelf, product_id: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """(id, stock) of the staff reply's SKUs and retired SKUs, and how many retired SKUs a shopper's reply shows."""
    view = service.get_admin_product(shelf.uow(), product_id=product_id)
    staff, shopper = product_message(view, staff=True), product_message(view, staff=False)
    return ([(s.id, s.stock) for s in staff.skus], [(s.id, s.stock) for s in staff.retired_skus],
            len(shopper.retired_skus))


def test_a_sku_retired_with_stock_before_0007_is_shown_to_staff_who_write_it_off(uow: UowFactory) -> None:
    shelf = Shelf(uow)
    phone = shelf.product("手机", colours=("黑", "白"), stock=5)
    black, white = shelf.sku_ids(phone)
    with uow() as tx:  # what an edit leaving 白 out did before SKU_HAS_STOCK
        tx.session.execute(update(skus).where(skus.c.id == white).values(active=False))
        tx.commit()

    assert replies(shelf, phone) == ([(black, 5)], [(white, 5)], 0)  # main: 白's 5 units on no admin page

    with pytest.raises(Conflict, match="retired"):
        service.adjust_stock(uow(), actor_id=7, product_id=phone, sku_id=white, delta=1)
    service.adjust_stock(uow(), actor_id=7, product_id=phone, sku_id=white, delta=-5, reason="下架清点")
    assert replies(shelf, phone) == ([(black, 5)], [], 0)
    assert service.check_stock_ledger(uow()) == (2, [])


def test_units_returned_to_a_sku_retired_since_are_shown_and_an_edit_sending_skus_back_keeps_it_retired(
        uow: UowFactory) -> None:
    shelf = Shelf(uow)
    phone = shelf.product("手机", colours=("黑", "白"), stock=5)
    black, white = shelf.sku_ids(phone)
    service.reserve_stock(uow(), order_no="O1", lines=[StockLine(white, 2)])
    confirm_paid(uow(), "O1")
    service.adjust_stock(uow(), actor_id=7, product_id=phone, sku_id=white, delta=-3, reason="清仓")
    service.update_product(uow(), actor_id=7, product_id=phone, version=1, draft=shelf.draft("手机", colours=("黑",)))
    with uow() as tx:  # the buyer of O1 sends the two 白 back: after-sales restocks them
        service.restock_return(tx, case_no="AS1", order_no="O1", lines=[StockLine(white, 2)])
        tx.commit()

    assert replies(shelf, phone) == ([(black, 5)], [(white, 2)], 0)

    service.audit_product(uow(), actor_id=1, product_id=phone, approve=False, reason="图片不清")
    service.update_product(uow(), actor_id=7, product_id=phone, version=2, draft=shelf.draft("手机", colours=("黑",)))
    assert replies(shelf, phone) == ([(black, 5)], [(white, 2)], 0)
    assert service.check_stock_ledger(uow()) == (2, [])
