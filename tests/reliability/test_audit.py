"""`make audit` (tools/audit.py): it finds what it looks for, and the platform after the battery has nothing to find."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from services.common.outbox import outbox
from services.member.db import coupon_templates, coupons
from services.product import service
from services.product.db import SqlProductUnitOfWork, brands, categories, products, skus, start_mappers, stock_movements
from services.product.domain import StockLine
from tests.fixtures.platform import Platform
from tests.integration.product.conftest import Shelf, confirm_paid
from tools.audit import audit, check_coupons, check_outboxes, check_stock, report

NOW = datetime(2026, 12, 6, 8, tzinfo=UTC)


@pytest.mark.integration
def test_the_audit_reports_a_sku_sold_without_confirmed_units_and_an_event_left_unsent(
        service_engine: Callable[[str], Engine]) -> None:
    product, member, order = service_engine("product"), service_engine("member"), service_engine("order")
    with product.begin() as conn:
        conn.execute(insert(categories).values(id=1, name="杯", icon="", sort=0))
        conn.execute(insert(brands).values(id=1, name="象印", logo=""))
        conn.execute(insert(products).values(id=1, name="保温杯", category_id=1, brand_id=1, images=[], params=[],
                                             specs=[], status="APPROVED", on_shelf=True, price_fen=100,
                                             created_at=NOW, updated_at=NOW))
        conn.execute(insert(skus).values(id=7, product_id=1, spec={}, spec_key="", price_fen=100, stock=5, sales=3))
        conn.execute(insert(stock_movements), [  # a ledger that agrees with the columns: only the sales check fails
            {"sku_id": 7, "product_id": 1, "kind": kind, "available": a, "reserved": r, "sold": s, "at": NOW}
            for kind, a, r, s in (("initial", 8, 0, 0), ("reserve", -3, 3, 0), ("confirm", 0, -3, 3))])
        conn.execute(insert(outbox).values(event_id="e-1", event_type="product-viewed", aggregate_id="1",
                                           envelope=b"", created_at=NOW - timedelta(minutes=5)))
    with member.begin() as conn:
        conn.execute(insert(coupon_templates).values(
            id=1, name="满100减10", kind="fixed", amount_fen=1000, percent_off=0, threshold_fen=10000, cap_fen=0,
            total=10, issued=1, per_user_limit=1, valid_from=NOW, valid_to=NOW + timedelta(days=7), created_at=NOW))
        conn.execute(insert(coupons).values(template_id=1, user_id=9, status="locked", order_no="NO-1",
                                            claimed_at=NOW))

    stock, unsent, locked = check_stock(product, NOW), check_outboxes({"product": product}, NOW), \
        check_coupons(member, order)

    assert stock.mismatches == ["sku 7: sales 3 but its orders' stock movements sold 0 units not returned or cancelled"]
    assert unsent.mismatches == ["product: 1 product-viewed event(s) unsent for over a minute"]
    assert locked.mismatches == ["order NO-1: coupon locked but the order is not awaiting payment"]


@pytest.mark.integration
def test_the_audit_reports_a_sku_whose_sales_went_below_zero(service_engine: Callable[[str], Engine]) -> None:
    """Units returned that were never sold (a return of a reservation the sweep had expired, before the fix): the
    ledger agrees with the columns, so only this check sees it."""
    product = service_engine("product")
    with product.begin() as conn:
        conn.execute(insert(categories).values(id=1, name="杯", icon="", sort=0))
        conn.execute(insert(brands).values(id=1, name="象印", logo=""))
        conn.execute(insert(products).values(id=1, name="保温杯", category_id=1, brand_id=1, images=[], params=[],
                                             specs=[], status="APPROVED", on_shelf=True, price_fen=100,
                                             created_at=NOW, updated_at=NOW, sales=-3))
        conn.execute(insert(skus).values(id=7, product_id=1, spec={}, spec_key="", price_fen=100, stock=13, sales=-3))
        conn.execute(insert(stock_movements), [
            {"sku_id": 7, "product_id": 1, "kind": kind, "available": a, "reserved": r, "sold": s, "at": NOW}
            for kind, a, r, s in (("initial", 10, 0, 0), ("return", 3, 0, -3))])

    stock = check_stock(product, NOW)

    assert stock.mismatches == ["sku 7: sales -3 below zero"]


@pytest.mark.integration
def test_goods_returned_after_a_sale_audit_clean_and_a_sale_behind_the_ledger_does_not(
        service_engine: Callable[[str], Engine]) -> None:
    """A return takes units off the sales while their reservation stays CONFIRMED (they were sold): 3 sold, 1
    returned is 2 sales, not a mismatch; one sale more than that is."""
    product = service_engine("product")
    start_mappers()
    shelf = Shelf(functools.partial(SqlProductUnitOfWork, product, "product"))
    [sku_id] = shelf.sku_ids(shelf.product("保温杯", stock=10))
    service.reserve_stock(shelf.uow(), order_no="O-1", lines=[StockLine(sku_id, 3)], now=NOW)
    confirm_paid(shelf.uow(), "O-1")
    with shelf.uow() as uow:
        service.restock_return(uow, order_no="O-1", case_no="AS-1", lines=[StockLine(sku_id, 1)], now=NOW)
        uow.commit()
    returned = check_stock(product, NOW)
    with product.begin() as conn:  # a sale that bypassed the product service (its ledger is wrong too)
        conn.execute(update(skus).where(skus.c.id == sku_id).values(sales=skus.c.sales + 1))

    oversold = check_stock(product, NOW)

    assert (returned.checked, returned.mismatches) == (1, [])
    assert f"sku {sku_id}: sales 3 but its orders' stock movements sold 2 units not returned or cancelled" in oversold.mismatches


@pytest.mark.integration
def test_the_audit_reports_a_sku_whose_stock_was_changed_behind_the_ledger(
        service_engine: Callable[[str], Engine]) -> None:
    product = service_engine("product")
    start_mappers()
    shelf = Shelf(functools.partial(SqlProductUnitOfWork, product, "product"))
    [corrupted, intact] = [shelf.sku_ids(shelf.product(name, stock=10))[0] for name in ("保温杯", "饭盒")]
    for sku_id in (corrupted, intact):
        service.reserve_stock(shelf.uow(), order_no=f"O-{sku_id}", lines=[StockLine(sku_id, 3)], now=NOW)
        confirm_paid(shelf.uow(), f"O-{sku_id}")
    clean = check_stock(product, NOW)
    with product.begin() as conn:  # a write that bypassed the product service: 4 units appear from nowhere
        conn.execute(update(skus).where(skus.c.id == corrupted).values(stock=skus.c.stock + 4))

    corrupt = check_stock(product, NOW)

    assert (clean.checked, clean.mismatches) == (2, [])
    assert (corrupt.checked, corrupt.mismatches) == (2, [
        f"sku {corrupted}: available 11 + reserved 0 + sold 3 = 14, initial + adjustments 10; "
        "the ledger says available 7, reserved 0, sold 3"])


def paid(shelf: Shelf, sku_id: int) -> None:
    confirm_paid(shelf.uow(), "O-1")


def returned_one(shelf: Shelf, sku_id: int) -> None:
    with shelf.uow() as uow:
        service.restock_return(uow, order_no="O-1", case_no="AS-1", lines=[StockLine(sku_id, 1)], now=NOW)
        uow.commit()


def cancelled_paid(shelf: Shelf, sku_id: int) -> None:
    with shelf.uow() as uow:
        service.release_paid_stock(uow, order_no="O-1", now=NOW)
        uow.commit()


def cancelled_unpaid(shelf: Shelf, sku_id: int) -> None:
    service.release_reservation(shelf.uow(), order_no="O-1")


ORDER_EVENTS: dict[str, Callable[[Shelf, int], None]] = {
    "paid": paid, "returned 1": returned_one, "cancelled paid": cancelled_paid, "cancelled unpaid": cancelled_unpaid}


def order_of_three(product: Engine, events: tuple[str, ...]) -> tuple[int, int]:
    """(product_id, sku_id) of a SKU of 10 units whose order O-1 reserved 3 and then met `events`, in that order
    (as the product consumer applies them: an order-returned may come before its order-paid, another topic)."""
    start_mappers()
    shelf = Shelf(functools.partial(SqlProductUnitOfWork, product, "product"))
    product_id = shelf.product("保温杯", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    service.reserve_stock(shelf.uow(), order_no="O-1", lines=[StockLine(sku_id, 3)], now=NOW)
    for event in events:
        ORDER_EVENTS[event](shelf, sku_id)
    return product_id, sku_id


def stock_and_sales(product: Engine, sku_id: int) -> tuple[int, int]:
    with product.connect() as conn:
        row = conn.execute(select(skus.c.stock, skus.c.sales).where(skus.c.id == sku_id)).one()
    return row.stock, row.sales


@pytest.mark.integration
@pytest.mark.parametrize(("events", "stock", "sales"), [
    (("paid", "returned 1", "cancelled paid"), 10, 0),  # main: "sales 0 but -1 units confirmed and not returned"
    (("returned 1", "paid"), 8, 2),
    (("returned 1", "cancelled unpaid"), 10, 0),
    (("returned 1", "paid", "cancelled paid"), 10, 0),  # main: the same
    (("paid", "cancelled paid"), 10, 0),
], ids=lambda value: " then ".join(value) if isinstance(value, tuple) else str(value))
def test_an_order_audits_clean_whatever_its_payment_return_and_cancellation_were(
        service_engine: Callable[[str], Engine], events: tuple[str, ...], stock: int, sales: int) -> None:
    product = service_engine("product")
    _, sku_id = order_of_three(product, events)

    audited = check_stock(product, NOW)

    assert stock_and_sales(product, sku_id) == (stock, sales)
    assert (audited.checked, audited.mismatches) == (1, [])


@pytest.mark.integration
def test_a_sales_counter_changed_behind_the_ledger_after_a_partial_return_and_paid_cancellation_is_reported(
        service_engine: Callable[[str], Engine]) -> None:
    product = service_engine("product")
    _, sku_id = order_of_three(product, ("paid", "returned 1", "cancelled paid"))
    with product.begin() as conn:  # a sale that bypassed the product service
        conn.execute(update(skus).where(skus.c.id == sku_id).values(sales=skus.c.sales + 1))

    audited = check_stock(product, NOW)

    assert (audited.checked, audited.mismatches) == (1, [
        f"sku {sku_id}: sales 1 but its orders' stock movements sold 0 units not returned or cancelled",
        f"sku {sku_id}: available 10 + reserved 0 + sold 1 = 11, initial + adjustments 10; "
        "the ledger says available 10, reserved 0, sold 0"])


@pytest.mark.integration
def test_a_stock_value_changed_behind_the_ledger_after_an_early_return_and_payment_is_reported(
        service_engine: Callable[[str], Engine]) -> None:
    product = service_engine("product")
    _, sku_id = order_of_three(product, ("returned 1", "paid"))
    with product.begin() as conn:  # a unit lost by a write that bypassed the product service
        conn.execute(update(skus).where(skus.c.id == sku_id).values(stock=skus.c.stock - 1))

    audited = check_stock(product, NOW)

    assert (audited.checked, audited.mismatches) == (1, [
        f"sku {sku_id}: available 7 + reserved 0 + sold 2 = 9, initial + adjustments 10; "
        "the ledger says available 8, reserved 0, sold 2"])


@pytest.mark.e2e
@pytest.mark.reliability
def test_the_platform_audits_clean_after_its_tests(platform: Platform) -> None:
    for consumer in ("product", "member", "analytics"):
        platform.wait_until_consumed("order-paid", consumer, timeout_seconds=120)
    checks = audit(platform.database_urls)
    assert all(check.mismatches == [] for check in checks), report(checks)
    assert {check.name for check in checks} == {"stock", "coupons", "ledgers", "order-paid consumed", "outbox"}
