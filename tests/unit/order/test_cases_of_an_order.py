"""The shopper's after-sales cases of one order (ListAfterSales with order_id): exact pages of that order's cases,
newest first, and nothing of another shopper's order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from mall.order.v1 import after_sale_pb2

from services.common.auth import Caller, caller_var
from services.order import aftersales
from services.order.grpc_api import AfterSaleServicer
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.test_aftersales import SETTINGS, FakeRefunder, ask, delivered

CONTEXT: Any = None  # the servicer does not read it


@pytest.fixture
def alice(shop: Shop) -> Iterator[AfterSaleServicer]:
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t"))
    yield AfterSaleServicer(lambda: shop.uow, FakeRefunder(), SETTINGS)
    caller_var.reset(token)


def test_my_cases_of_one_order_come_in_exact_pages_newest_first(shop: Shop, alice: AfterSaleServicer) -> None:
    order = delivered(shop, (101, 2), (102, 3))
    other = delivered(shop, (102, 1), key="other")
    first, second = (line.id or 0 for line in order.lines)
    withdrawn = ask(shop, order, {first: 1}, now=NOW + timedelta(days=3))
    aftersales.withdraw_case(shop.uow, user_id=1, case_id=withdrawn.id or 0, now=NOW + timedelta(days=3, hours=1))
    again = ask(shop, order, {first: 2}, now=NOW + timedelta(days=3, hours=2))
    elsewhere = ask(shop, other, {other.lines[0].id or 0: 1}, now=NOW + timedelta(days=3, hours=3))
    newest = ask(shop, order, {second: 1}, now=NOW + timedelta(days=3, hours=4))

    pages = [alice.ListAfterSales(after_sale_pb2.ListAfterSalesRequest(order_id=order.id, offset=offset, limit=2),
                                  CONTEXT) for offset in (0, 2, 4)]
    everything = alice.ListAfterSales(after_sale_pb2.ListAfterSalesRequest(limit=10), CONTEXT)

    assert [([case.id for case in page.cases], page.total) for page in pages] == [
        ([newest.id, again.id], 3), ([withdrawn.id], 3), ([], 3)]
    assert ([case.id for case in everything.cases], everything.total) == (
        [newest.id, elsewhere.id, again.id, withdrawn.id], 4)


def test_another_shoppers_order_finds_none_of_their_cases(shop: Shop, alice: AfterSaleServicer) -> None:
    bobs = delivered(shop, (101, 1), user_id=2, key="bob")
    ask(shop, bobs, {bobs.lines[0].id or 0: 1}, user_id=2)

    found = alice.ListAfterSales(after_sale_pb2.ListAfterSalesRequest(order_id=bobs.id, limit=10), CONTEXT)

    assert (list(found.cases), found.total) == ([], 0)
