"""How many SQL statements a refund's end costs on PostgreSQL when no refund of its order waits for it (a refund paid
after its close while open refunds held its amounts: nearly no order has one): none to look for such a refund.

A count, not a timing: it fails when every refund that ends reads its order's refunds (and their lines) again to
decide the ones waiting for it (`refunds._decide_waiting`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from services.order import refunds
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, RefundStatus
from tests.fakes import FakeMembers, FakeRefundPayments
from tests.fixtures.statements import statements
from tests.integration.order.test_refunds import paid

pytestmark = pytest.mark.integration

Uow = Callable[[], SqlOrderUnitOfWork]
NOW = datetime(2026, 12, 7, 3, tzinfo=UTC)

# The refund locked (with its lines), then its order (with its lines, history and parcels); the refund's new status.
LOCKED = ["SELECT refunds", "SELECT refund_lines", "SELECT orders", "SELECT order_lines", "SELECT order_transitions",
          "SELECT shipments", "UPDATE refunds"]


def ended(uow: Uow, engine: Engine, order_no: str, status: RefundStatus) -> list[str]:
    """The statements WeChat Pay's answer `status` costs for the one refund (PENDING) of an order paid 4000 fen."""
    order_id = paid(uow, order_no, OrderLine(101, 10, "茶", "", 1000, 4))
    refund = refunds.start_refund(uow(), FakeRefundPayments(), FakeMembers(), order_id=order_id, items=[],
                                  reason="r", actor="staff:9", source="cancel", now=NOW)
    with statements(engine) as sent:
        assert refunds.settle_refund(uow(), refund_no=refund.refund_no, status=status, actor="wechatpay",
                                     now=NOW).status == status
    return sent


def test_a_refund_closed_with_none_waiting_only_gives_its_amounts_back(pg_uow: Uow, pg_engine: Engine) -> None:
    sent = ended(pg_uow, pg_engine, "RES-CLOSED", RefundStatus.CLOSED)

    # the amounts given back, and the order's and its lines' refunded amounts read back: no read of its refunds
    assert sorted(sent) == sorted([*LOCKED, "UPDATE orders", "UPDATE order_lines", "SELECT orders",
                                   "SELECT order_lines"])


def test_a_refund_paid_with_none_waiting_reads_its_order_s_refunds_once(pg_uow: Uow, pg_engine: Engine) -> None:
    sent = ended(pg_uow, pg_engine, "RES-SUCCESS", RefundStatus.SUCCESS)

    # order-refunded, and the order's paid refunds added up (is it refunded in full?): once
    assert sorted(sent) == sorted([*LOCKED, "INSERT outbox", "SELECT refunds", "SELECT refund_lines"])
