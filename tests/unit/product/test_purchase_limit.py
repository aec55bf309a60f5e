"""A product's purchase limit (限购, max_per_shopper): staff set it 0..999 on create and edit, the audit log records
it, and it travels with the SKUs checkout reads (GetSkus, ReserveStock's snapshot) and the shopper's detail page."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.common.errors import InvalidInput
from services.product import service
from services.product.domain import MAX_PER_SHOPPER, Brand, Category, StockLine
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.product.test_use_cases import EDITOR, T0, draft, on_sale, sku_ids


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    uow = FakeProductUnitOfWork()
    uow.categories.add(Category("数码"))
    uow.categories.add(Category("手机", parent_id=1))
    uow.brands.add(Brand("华为"))
    return uow


@pytest.mark.parametrize("limit", [-1, MAX_PER_SHOPPER + 1])
def test_a_limit_outside_0_to_999_is_refused(uow: FakeProductUnitOfWork, limit: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.create_product(uow, actor_id=EDITOR, draft=replace(draft(), max_per_shopper=limit), now=T0)

    assert refused.value.details == {"max_per_shopper": "0 (no limit) to 999"}


def test_a_new_product_has_no_limit_unless_staff_set_one(uow: FakeProductUnitOfWork) -> None:
    plain = service.create_product(uow, actor_id=EDITOR, draft=draft(), now=T0).product
    limited = service.create_product(uow, actor_id=EDITOR, draft=replace(draft("限量款"), max_per_shopper=2),
                                     now=T0).product

    assert (plain.max_per_shopper, limited.max_per_shopper) == (0, 2)


def test_an_edit_of_the_limit_is_in_the_audit_log(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    version = uow.products.items[product_id].version

    service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=replace(draft(), max_per_shopper=5),
                           version=version, now=T0)

    [entry, *_] = service.audit_log(uow, product_id=product_id)[0]
    assert (entry.action, entry.before["max_per_shopper"], entry.after["max_per_shopper"]) == ("update", 0, 5)  # type: ignore[index]


def test_checkout_reads_the_limit_with_the_skus(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    uow.products.items[product_id].max_per_shopper = 2
    black, white = sku_ids(uow, product_id)

    offers = service.get_skus(uow, sku_ids=[black, white])
    reserved = service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 1)], now=T0)
    detail = service.view_product(uow, product_id=product_id)

    assert [offer.max_per_shopper for offer in [*offers, *reserved.offers]] == [2, 2, 2]
    assert detail.product.max_per_shopper == 2
