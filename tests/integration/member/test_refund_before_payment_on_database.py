"""An order's refund read before its order-paid (two topics), on PostgreSQL: the refund waits for the payment and is
then taken back once, also when the two events are applied at the same moment by two consumers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.order_events_pb2 import OrderPaid, OrderRefunded
from sqlalchemy import Engine, func, select

from services.common.events import InvalidEvent, timestamp
from services.member import service
from services.member.db import SqlMemberUnitOfWork, pending_reversals
from services.member.domain import Account
from tests.integration.member.order_events import deliver, deliver_at_once

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 101
PAID = OrderPaid(order_no="O1", user_id=ALICE, paid_fen=20_000, paid_at=timestamp(NOW))
REFUNDED = OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=20_000,
                         refunded_at=timestamp(NOW + timedelta(days=1)))


@pytest.fixture
def shopper(uow: Callable[[], SqlMemberUnitOfWork]) -> Callable[[], SqlMemberUnitOfWork]:
    """ALICE, a member with 900 yuan of spend and 900 points; O1 (200 yuan) earns 200 at normal and would
    make her silver."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, OrderPaid(order_no="O0", user_id=ALICE, paid_fen=90_000, paid_at=timestamp(NOW)), "e-0")
    return uow


def state(uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> tuple[int, int, int, list[object]]:
    """Points, spend, pending reversals left, and the points entries of O1 and its refund (oldest first)."""
    with engine.connect() as conn:
        pending = conn.execute(select(func.count()).select_from(pending_reversals)).scalar_one()
    entries, _ = service.points_entries(uow(), user_id=ALICE, offset=0, limit=20)
    with uow() as tx:
        points = tx.ledger.balance(ALICE, Account.POINTS)
    return (points, service.get_member(uow(), user_id=ALICE, now=NOW).member.total_spend_fen, pending,
            [(entry.kind, entry.amount) for entry in reversed(entries) if entry.reference in ("O1", "RF1")])


AS_IF_PAID_THEN_REFUNDED = (900, 90_000, 0, [("order_paid", 200), ("order_refunded", -200)])


def test_a_refund_read_before_its_order_paid_is_taken_back_when_the_payment_is_read(
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    deliver(shopper, REFUNDED, "e-2")
    deliver(shopper, REFUNDED, "e-3")  # published again
    with engine.connect() as conn:
        waiting = conn.execute(select(pending_reversals.c.refund_no, pending_reversals.c.amount_fen)).all()

    deliver(shopper, PAID, "e-1")
    deliver(shopper, PAID, "e-4")
    deliver(shopper, REFUNDED, "e-5")

    assert [tuple(row) for row in waiting] == [("RF1", 20_000)]
    assert state(shopper, engine) == AS_IF_PAID_THEN_REFUNDED
    assert service.check_ledgers(shopper())[1] == []


@pytest.mark.parametrize(("first", "second"), [(REFUNDED, PAID), (PAID, REFUNDED)], ids=["refund-first", "paid-first"])
def test_order_paid_and_its_refund_applied_at_once_by_two_consumers_still_take_the_refund_back(
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine, first: OrderPaid | OrderRefunded,
        second: OrderPaid | OrderRefunded) -> None:
    errors = deliver_at_once(shopper, engine, first, second)

    assert errors == []
    assert state(shopper, engine) == AS_IF_PAID_THEN_REFUNDED


def test_a_refund_delivered_again_with_other_points_returned_is_dead_lettered_but_one_recorded_before_is_not(
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    deliver(shopper, PAID, "e-1")
    deliver(shopper, REFUNDED, "e-2")
    with shopper() as tx:  # what an older version recorded: the order number and amount only
        tx.run_once(scope="order-refunded", key="RF0", request=b"O1:5000", execute=lambda: b"applied")
        tx.commit()
    changed = OrderRefunded()
    changed.CopyFrom(REFUNDED)
    changed.points_returned = 30

    with pytest.raises(InvalidEvent, match="IDEMPOTENCY_KEY_REUSED"):
        deliver(shopper, changed, "e-3")
    deliver(shopper, OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF0", amount_fen=5_000,
                                   refunded_at=timestamp(NOW)), "e-4")

    assert state(shopper, engine) == AS_IF_PAID_THEN_REFUNDED
