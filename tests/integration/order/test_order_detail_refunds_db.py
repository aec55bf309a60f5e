"""An order's detail on PostgreSQL (and SQLite): its refunds, oldest first, a late payment's too, read with the
order in one transaction and a fixed number of statements however many refunds it has."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from services.common.errors import NotFound
from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, Refund
from tests.fixtures.statements import statements
from tests.integration.order.test_refunds import paid

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINE, OTHER = "20261206000000000000aaaaaaaa", "20261206000000000000bbbbbbbb"


def store(uow: Callable[[], SqlOrderUnitOfWork], order_id: int, refund_no: str, status: str, source: str,
          amount_fen: int, started: int, points_returned: int = 0) -> None:
    with uow() as tx:
        tx.refunds.add(Refund(refund_no=refund_no, order_id=order_id, source=source, status=status,
                              amount_fen=amount_fen, channel="wechat", reason="staff's words", actor="staff:7",
                              created_at=NOW - started * HOUR, updated_at=NOW - started * HOUR,
                              points_returned=points_returned))
        tx.commit()


def test_the_detail_lists_the_orders_refunds_oldest_first_a_late_payments_too_and_no_others(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    mine = paid(uow, MINE, OrderLine(101, 10, "茶", "", 1000, 5))
    other = paid(uow, OTHER, OrderLine(102, 11, "杯", "", 800, 5))
    store(uow, mine, "RF00000000000000000001abcdef01", "SUCCESS", "cancel_unshipped", 1000, 3, points_returned=60)
    store(uow, other, "RF00000000000000000002abcdef02", "SUCCESS", "cancel", 800, 2)
    store(uow, mine, "LATE" + MINE, "PENDING", "late_payment", 5000, 1)

    detail = service.get_order_detail(uow(), user_id=None, order_id=mine)

    assert [(refund.refund_no, refund.status, refund.source, refund.amount_fen, refund.points_returned)
            for refund in detail.refunds] == [
        ("RF00000000000000000001abcdef01", "SUCCESS", "cancel_unshipped", 1000, 60),
        ("LATE" + MINE, "PENDING", "late_payment", 5000, 0)]


def test_another_shoppers_order_is_not_found(uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    mine = paid(uow, MINE, OrderLine(101, 10, "茶", "", 1000, 5))
    store(uow, mine, "RF00000000000000000001abcdef01", "SUCCESS", "cancel", 1000, 3)

    with pytest.raises(NotFound):
        service.get_order_detail(uow(), user_id=999, order_id=mine)


def test_the_refunds_cost_the_same_statements_whether_there_are_one_or_five(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    one = paid(pg_uow, MINE, OrderLine(101, 10, "茶", "", 1000, 5))
    five = paid(pg_uow, OTHER, OrderLine(102, 11, "杯", "", 800, 5))
    store(pg_uow, one, "RF00000000000000000001abcdef01", "SUCCESS", "cancel", 100, 9)
    for number in range(2, 7):
        store(pg_uow, five, f"RF{number:020d}abcdef{number:02d}", "PENDING", f"after_sale:{number}", 100, 9 - number)

    with statements(pg_engine) as for_one:
        service.get_order_detail(pg_uow(), user_id=None, order_id=one)
    with statements(pg_engine) as for_five:
        service.get_order_detail(pg_uow(), user_id=None, order_id=five)

    assert for_one == for_five
    assert [sent for sent in for_five if sent.startswith("SELECT refund")] == ["SELECT refunds", "SELECT refund_lines"]
