"""Points a refund cannot take back because the shopper holds them for an unpaid order, on PostgreSQL: they are owed
and taken when the hold is released, also when the refund and the cancellation are applied at once by two
consumers (either first)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded
from sqlalchemy import Engine

from services.common.events import timestamp
from services.member import consumers, service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account
from tests.fixtures.postgres import wait_until_blocked

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 303
REFUNDED = OrderRefunded(order_no="OA", user_id=ALICE, refund_no="RFA", amount_fen=100_000,
                         refunded_at=timestamp(NOW))
CANCELLED = OrderCancelled(order_no="OB", user_id=ALICE, was_paid=False, cancelled_at=timestamp(NOW))
Event = OrderPaid | OrderRefunded | OrderCancelled


def apply(tx: SqlMemberUnitOfWork, event: Event, event_id: str) -> None:
    consumers.HANDLERS[type(event)](tx, event, EventEnvelope(event_id=event_id))  # type: ignore[index]


def deliver(uow: Callable[[], SqlMemberUnitOfWork], event: Event, event_id: str) -> None:
    with uow() as tx:
        apply(tx, event, event_id)
        tx.commit()


@pytest.fixture
def shopper(uow: Callable[[], SqlMemberUnitOfWork]) -> Callable[[], SqlMemberUnitOfWork]:
    """ALICE earned 1,200 points on OA (paid 1,000 yuan) and holds them all for unpaid OB."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, OrderPaid(order_no="OA", user_id=ALICE, paid_fen=100_000, paid_at=timestamp(NOW)), "e-0")
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
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine, first: Event, second: Event) -> None:
    errors: list[BaseException] = []

    def other_consumer() -> None:
        try:
            deliver(shopper, second, "e-2")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with shopper() as tx:
        apply(tx, first, "e-1")  # applied, not committed yet: the other consumer must wait for it
        racing = threading.Thread(target=other_consumer)
        racing.start()
        wait_until_blocked(engine, racing)
        tx.commit()
    racing.join(timeout=60)

    assert errors == []
    assert points(shopper) == (0, 0, {})
    assert service.check_ledgers(shopper())[1] == []
