"""order-paid and order-cancelled of one order, on PostgreSQL: both lock the order's points hold before the shopper's
points account, so applied at the same moment one waits for the other instead of the two deadlocking."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from mall.events.v1.order_events_pb2 import OrderPaid
from sqlalchemy import Engine, text

from services.common.events import timestamp
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account, HoldStatus
from tests.fixtures.postgres import wait_until_blocked
from tests.integration.member.order_events import deliver

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 202


def test_an_order_paid_waits_for_its_hold_before_it_locks_the_shoppers_points(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, OrderPaid(order_no="O0", user_id=ALICE, paid_fen=100_000, paid_at=timestamp(NOW)), "e-0")
    service.lock_points(uow(), user_id=ALICE, order_no="O1", points=300, payable_fen=4_500, now=NOW)
    with uow() as tx:
        earned_before = tx.ledger.balance(ALICE, Account.POINTS)
    errors: list[BaseException] = []

    def order_paid() -> None:
        try:
            deliver(uow, OrderPaid(order_no="O1", user_id=ALICE, paid_fen=4_500, paid_at=timestamp(NOW)), "e-1")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with engine.connect() as cancelling:  # an order-cancelled of O1 holding its hold, as it does first
        cancelling.execute(text("SELECT 1 FROM points_holds WHERE order_no = 'O1' FOR UPDATE"))
        racing = threading.Thread(target=order_paid)
        racing.start()
        wait_until_blocked(engine, racing)
        # What order-cancelled locks next: free, since order-paid waits for the hold before it credits points.
        locked = cancelling.execute(text("SELECT count(*) FROM (SELECT 1 FROM ledger_accounts WHERE user_id = :user "
                                         "FOR UPDATE NOWAIT) AS accounts"), {"user": ALICE}).scalar_one()
        cancelling.rollback()
    racing.join(timeout=60)

    assert (locked, errors) == (2, [])  # the spendable and the held points accounts
    with uow() as tx:
        hold = tx.points.hold("O1")
        assert hold is not None and hold.status == HoldStatus.USED
        assert tx.ledger.balance(ALICE, Account.POINTS_LOCKED) == 0
        # O0's 1,000 yuan at normal: 1,000 points, 300 of them held for O1; then O1's 45 yuan at silver (x1.2): 54
        assert (earned_before, tx.ledger.balance(ALICE, Account.POINTS)) == (700, 754)
    assert service.check_ledgers(uow())[1] == []
