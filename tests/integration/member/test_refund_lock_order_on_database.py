"""A refund giving points back (cancel-unshipped) and any other transaction on the same shopper's member record, on
PostgreSQL: the refund locks the member record before the shopper's points account and points debt, as order-paid,
a plan purchase and a signup do, so applied at the same moment one waits for the other instead of the two deadlocking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from mall.events.v1.order_events_pb2 import OrderPaid, OrderRefunded
from sqlalchemy import Engine, text

from services.common.db import advisory_key
from services.common.events import timestamp
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.member.order_events import deliver
from tests.integration.member.pausing import PausingLedger
from tests.integration.member.test_member_grpc import fund

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 303


def paid_order_holding_points(uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """Alice, silver with 1,200 points (earned at normal on O0), paid O1 (4,200 fen) with 300 of them, earning 50."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, OrderPaid(order_no="O0", user_id=ALICE, paid_fen=120_000, paid_at=timestamp(NOW)), "e-0")
    service.lock_points(uow(), user_id=ALICE, order_no="O1", points=300, payable_fen=4_500, now=NOW)
    deliver(uow, OrderPaid(order_no="O1", user_id=ALICE, paid_fen=4_200, paid_at=timestamp(NOW)), "e-1")


# Half of O1 could not be supplied: 2,100 fen and the 150 points spent on it come back.
HALF_UNSUPPLIED = OrderRefunded(order_no="O1", refund_no="RF1", amount_fen=2_100, points_returned=150,
                                refunded_at=timestamp(NOW))


def test_a_refund_giving_points_back_waits_for_the_member_record_before_it_locks_the_shoppers_points(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    paid_order_holding_points(uow)
    errors: list[BaseException] = []

    def refunded() -> None:
        try:
            deliver(uow, HALF_UNSUPPLIED, "e-2")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with engine.connect() as other:  # order-paid of another order, a plan purchase, a signup: the member record first
        other.execute(text("SELECT 1 FROM members WHERE user_id = :user FOR UPDATE"), {"user": ALICE})
        racing = threading.Thread(target=refunded)
        racing.start()
        wait_until_blocked(engine, racing)
        # What those lock next, the points account and the points debt: free, as the refund waits for the member.
        points_free = other.execute(text("SELECT count(*) FROM (SELECT 1 FROM ledger_accounts WHERE user_id = :user "
                                         "AND account = 'points' FOR UPDATE SKIP LOCKED) AS accounts"),
                                    {"user": ALICE}).scalar_one()
        debt_free = other.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                  {"key": advisory_key(f"points-owed:{ALICE}")}).scalar_one()
        other.rollback()
    racing.join(timeout=60)

    assert (points_free, debt_free, errors) == (1, True, [])
    with uow() as tx:  # 1,200 - 300 held and spent + 50 earned + 150 given back - 25 of the earned taken back
        assert tx.ledger.balance(ALICE, Account.POINTS) == 1_075
    assert service.check_ledgers(uow())[1] == []


def test_a_refund_giving_points_back_and_a_plan_bought_at_the_same_moment_both_go_through(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    """The purchase holds the member record and the wallet when the refund comes; it then reads the points debt
    (the member's summary). Before, the refund held that debt and the points account and waited for the member
    record: DeadlockDetected, and one of the two failed."""
    paid_order_holding_points(uow)
    fund(uow, ALICE, 10_000)
    reached, go = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    buying = start_thread(results, "plan", lambda: service.subscribe_plan(
        PausingLedger(engine, "post", reached, go), user_id=ALICE, plan_id=1, idempotency_key="k1",
        now=NOW).balance_fen)
    assert reached.wait(60)  # paid for: the member record and the wallet locked
    refunding = start_thread(results, "refund", lambda: deliver(uow, HALF_UNSUPPLIED, "e-2"))
    wait_until_blocked(engine, refunding)
    go.set()
    buying.join(60)
    refunding.join(60)

    assert results == {"plan": 10_000 - 1_500, "refund": None}
    with uow() as tx:
        assert tx.ledger.balance(ALICE, Account.POINTS) == 1_075
    assert service.check_ledgers(uow())[1] == []
