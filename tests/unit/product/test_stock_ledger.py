"""Stock ledger rules without a database: how each kind of movement moves units, when a SKU balances."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mall.events.v1.order_events_pb2 import OrderLine, OrderReturned

from services.common.events import InvalidEvent
from services.product import service
from services.product.domain import Brand, Category, MovementKind, StockBalance, StockLine, StockMovement
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.product import test_use_cases as use_cases

AT = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    uow = FakeProductUnitOfWork()
    uow.categories.add(Category("数码"))
    uow.categories.add(Category("手机", parent_id=1))  # use_cases.draft() sells in category 2, brand 1
    uow.brands.add(Brand("华为"))
    return uow


@pytest.mark.parametrize(("kind", "buckets"), [
    (MovementKind.INITIAL, (5, 0, 0)), (MovementKind.ADJUST, (5, 0, 0)), (MovementKind.RESERVE, (-5, 5, 0)),
    (MovementKind.CONFIRM, (0, -5, 5)), (MovementKind.RELEASE, (5, -5, 0)), (MovementKind.EXPIRE, (5, -5, 0)),
    (MovementKind.CANCEL_PAID, (5, 0, -5)), (MovementKind.RETURN, (5, 0, -5))])
def test_each_kind_moves_units_between_the_buckets_it_names(kind: MovementKind, buckets: tuple[int, int, int]) -> None:
    movement = StockMovement.of(kind, 1, 5, AT)
    assert (movement.kind, (movement.available, movement.reserved, movement.sold)) == (str(kind), buckets)


def test_a_write_off_is_a_negative_adjustment_and_keeps_its_reason_without_nul() -> None:
    movement = StockMovement.of(MovementKind.ADJUST, 1, -3, AT, actor_id=9, reason="破\x00损" + "x" * 300)
    assert (movement.available, movement.actor_id, len(movement.reason), movement.reason[:2]) == (-3, 9, 200, "破损")


def test_a_sku_balances_only_when_every_bucket_and_the_total_agree_with_its_ledger() -> None:
    good = StockBalance(1, available=6, reserved=2, sold=2, ledger_available=6, ledger_reserved=2, ledger_sold=2,
                        supplied=10)
    assert good.balanced
    assert not StockBalance(1, 7, 2, 2, 6, 2, 2, 10).balanced       # a bucket differs
    assert not StockBalance(1, 6, 2, 2, 6, 2, 2, 9).balanced        # the buckets agree, the supply does not


def test_the_in_memory_ledger_balances_after_a_reservation_is_paid(uow: FakeProductUnitOfWork) -> None:
    product_id = use_cases.on_sale(uow)
    black, _ = use_cases.sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=use_cases.T0)
    with uow:  # the order-paid consumer's transaction
        service.confirm_held_stock(uow, order_no="O1")
        uow.commit()

    assert ([m.kind for m in uow.stock.ledger], service.check_stock_ledger(uow)) == (
        ["initial", "initial", "reserve", "confirm"], (2, []))


def test_a_returned_line_of_no_units_records_nothing_and_negative_units_are_dead_lettered(
        uow: FakeProductUnitOfWork) -> None:
    product_id = use_cases.on_sale(uow)
    black, white = use_cases.sku_ids(uow, product_id)

    use_cases.consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[
        OrderLine(sku_id=black, quantity=0), OrderLine(sku_id=white, quantity=1)]))
    with pytest.raises(InvalidEvent, match="STOCK_LINE_INVALID"):
        use_cases.consume(uow, OrderReturned(order_no="O2", case_no="AS2", lines=[OrderLine(sku_id=black, quantity=-1)]))

    assert [(m.kind, m.sku_id, m.reference) for m in uow.stock.ledger[2:]] == [("return", white, "AS1")]
