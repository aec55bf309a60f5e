"""One phone SKU on sale with some units reserved for order O1, and how to read its stock and sales: the shelf the
product service's event-ordering and late-payment tests share."""

from __future__ import annotations

from datetime import UTC, datetime

from services.product import service
from services.product.domain import Brand, Category, ProductDraft, SkuDraft, StockLine
from tests.product_fakes import FakeProductUnitOfWork

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def shop() -> FakeProductUnitOfWork:
    uow = FakeProductUnitOfWork()
    uow.categories.add(Category("手机"))
    uow.brands.add(Brand("华为"))
    return uow


def sku_reserved_for_o1(uow: FakeProductUnitOfWork, *, stock: int, reserved: int = 3) -> int:
    """A SKU on sale with `stock` units, `reserved` of them reserved for order O1 at T0; its id."""
    draft = ProductDraft(name="华为 Mate 60", category_id=1, brand_id=1, specs=(("颜色", ("黑",)),),
                         skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=549_900, stock=stock),))
    product_id = service.create_product(uow, actor_id=7, draft=draft, now=T0).product.id
    assert product_id is not None
    service.submit_product(uow, actor_id=7, product_id=product_id, now=T0)
    service.audit_product(uow, actor_id=1, product_id=product_id, approve=True, now=T0)
    service.set_shelf(uow, actor_id=7, product_id=product_id, on_shelf=True, now=T0)
    sku_id = uow.products.items[product_id].skus[0].id
    assert sku_id is not None
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(sku_id, reserved)], now=T0)
    return sku_id


def counts(uow: FakeProductUnitOfWork, sku_id: int) -> tuple[int, int, int, list[str]]:
    """The SKU's stock and sales, its product's sales, and O1's reservation statuses."""
    product, found = uow.products.sku(sku_id)  # type: ignore[misc]
    return found.stock, found.sales, product.sales, [r.status for r in uow.reservations.of_order("O1")]
