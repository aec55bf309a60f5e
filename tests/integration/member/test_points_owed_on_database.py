"""Points a refund cannot take back because the shopper holds them for an unpaid order, on PostgreSQL: they are owed
and taken when the hold is released, also when the refund and the cancellation are applied at once by two
consumers (either first)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded
from sqlalchemy import Engine

from services.common.events import timestamp
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account
from tests.integration.member.order_events import OrderEvent, deliver, deliver_at_once

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 303
REFUNDED = OrderRefunded(order_no="OA", user_id=ALICE, refund_no="RFA", amount_fen=120_000,
                         refunded_at=timestamp(NOW))
CANCELLED = OrderCancelled(order_no="OB", user_id=ALICE, was_paid=False, cancelled_at=timestamp(NOW))


@pytest.fixture
def shopper(uow: Callable[[], SqlMemberUnitOfWork]) -> Callable[[], SqlMemberUnitOfWork]:
    """ALICE earned 1,200 points on OA (paid 1,200 yuan, at normal) and holds them all for unpaid OB."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, OrderPaid(order_no="OA", user_id=ALICE, paid_fen=120_000, paid_at=timestamp(NOW)), "e-0")
    service.lock_points(uow(), user_id=ALICE, order_no="OB", points=1_200, payable_fen=2_400, now=NOW)
    return uow


def points(uow: Callable[[], SqlMemberUnitOfWork]) -> tuple[int, int, dict[str, int]]:
    with uow() as tx:
        return (tx.ledger.balance(ALICE, Account.POINTS), tx.ledger.balance(ALICE, Account.POINTS_LOCKED),
                tx.points.owed(ALICE))


def test_points_a_refund_finds_held_are_owed_and_taken_when_the_hold_is_released(
        shopper: Callable[[], SqlMemberUnitOfWork]) -> None:
    deliver(shopper, REFUNDED, "e-1")
    owed = points(shopper)
    deliver(shopper, CANCELLED, "e-2")
    deliver(shopper, CANCELLED, "e-3")

    assert owed == (0, 1_200, {"order_refunded": 1_200})
    assert points(shopper) == (0, 0, {})
    assert service.check_ledgers(shopper())[1] == []


@pytest.mark.parametrize(("first", "second"), [(REFUNDED, CANCELLED), (CANCELLED, REFUNDED)],
                         ids=["refund-first", "cancel-first"])
def test_a_refund_and_the_release_of_the_hold_applied_at_once_leave_nothing_of_the_earned_points(
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine, first: OrderEvent, second: OrderEvent) -> None:
    errors = deliver_at_once(shopper, engine, first, second)

    assert errors == []
    assert points(shopper) == (0, 0, {})
    assert service.check_ledgers(shopper())[1] == []
