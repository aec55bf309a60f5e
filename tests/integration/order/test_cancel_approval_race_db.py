"""Two staff approving the same cancellation request at once, on PostgreSQL: the first approval refunds the order, the
second is a 409 ORDER_STATE_CONFLICT with the order's state. The approval used to commit before its refund was
reserved, so the second approver found a REFUNDING order with nothing reserved and refunded it "anew": one of the two
got 409 REFUND_NOTHING_LEFT, sometimes the one whose approval went through. (From a reviewer's finding.) For an order
paid from the wallet the second approver then took the first's PENDING refund for one the member service had not
answered and asked the member service again itself: 200 for both (the credit idempotent by refund number)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from services.common.errors import DomainError
from services.order import refunds, service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine
from tests.fakes import FakeMembers, FakeRefundPayments
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.order.test_order_grpc import ALICE
from tests.integration.order.test_refund_paid_while_held_db import listed
from tests.integration.order.test_refunds import STAFF, paid, refunded

pytestmark = pytest.mark.integration

Uow = Callable[[], SqlOrderUnitOfWork]
NOW = datetime(2026, 12, 7, 5, tzinfo=UTC)


class PausingCommit(SqlOrderUnitOfWork):
    """A unit of work that runs `before` just before its first commit (the order's row still locked) and `after` just
    after it (nothing held)."""

    def __init__(self, engine: Engine, *, before: Callable[[], object] = lambda: None,
                 after: Callable[[], object] = lambda: None) -> None:
        super().__init__(engine, "order")
        self.pauses: list[Callable[[], object]] | None = [before, after]

    def commit(self) -> None:
        before, after = self.pauses or (lambda: None, lambda: None)
        self.pauses = None
        before()
        super().commit()
        after()


def requested(uow: Uow, order_no: str, channel: str = "wechat") -> int:
    """4 x 1000 fen paid through `channel`, its cancellation requested by the shopper."""
    order_id = paid(uow, order_no, OrderLine(101, 10, "茶", "", 1000, 4), channel=channel)
    service.cancel_order(uow(), user_id=ALICE, order_id=order_id, reason="买错了", now=NOW)
    return order_id


def approve(uow: SqlOrderUnitOfWork, order_id: int, staff: int, members: FakeMembers | None = None) -> str:
    return refunds.review_cancellation(uow, FakeRefundPayments(), members or FakeMembers(), order_id=order_id,
                                       approve=True, reason="同意", actor=f"staff:{staff}", now=NOW).status


def second_approval(pg_uow: Uow, order_id: int, refused: list[DomainError],
                    members: FakeMembers | None = None) -> Callable[[], object]:
    def run() -> object:
        try:
            return approve(pg_uow(), order_id, STAFF + 1, members)
        except DomainError as exc:
            refused.append(exc)
            raise
    return run


def test_a_second_approval_between_the_first_s_commit_and_its_refund_is_a_state_conflict_and_the_first_refunds(
        pg_uow: Uow, pg_engine: Engine) -> None:
    order_id = requested(pg_uow, "C-RACE-1")
    results: dict[str, object] = {}
    refused: list[DomainError] = []
    first_committed, second_done = threading.Event(), threading.Event()

    def between() -> None:  # the first approver's transaction committed; the second runs all its way meanwhile
        first_committed.set()
        assert second_done.wait(30)

    first = start_thread(results, "first", lambda: approve(PausingCommit(pg_engine, after=between), order_id, STAFF))
    assert first_committed.wait(30)
    second = start_thread(results, "second", second_approval(pg_uow, order_id, refused))
    second.join()
    second_done.set()
    first.join()

    assert results == {"first": "REFUNDING", "second": "ORDER_STATE_CONFLICT"}
    assert refused[0].details == {"status": "REFUNDING", "action": "approve_cancel"}
    assert [status for _, status in listed(pg_uow, order_id)] == ["PENDING"]
    assert refunded(pg_engine, order_id) == (4000, [(4, 4000)])


def test_a_second_approval_waiting_for_the_first_s_lock_is_a_state_conflict_and_the_first_refunds(
        pg_uow: Uow, pg_engine: Engine) -> None:
    order_id = requested(pg_uow, "C-RACE-2")
    results: dict[str, object] = {}
    refused: list[DomainError] = []
    second: list[threading.Thread] = []

    def second_waits() -> None:  # the first approver holds the order's row: the second waits for it
        second.append(start_thread(results, "second", second_approval(pg_uow, order_id, refused)))
        wait_until_blocked(pg_engine, second[0])

    first = start_thread(results, "first", lambda: approve(PausingCommit(pg_engine, before=second_waits), order_id,
                                                           STAFF))
    first.join()
    second[0].join()

    assert results == {"first": "REFUNDING", "second": "ORDER_STATE_CONFLICT"}
    assert refused[0].details == {"status": "REFUNDING", "action": "approve_cancel"}
    assert [status for _, status in listed(pg_uow, order_id)] == ["PENDING"]
    assert refunded(pg_engine, order_id) == (4000, [(4, 4000)])


def wallet() -> FakeMembers:
    """Alice's wallet, empty: what the cancellation's refund credits is all it holds."""
    return FakeMembers(user_id=ALICE)


def assert_one_wallet_refund(pg_uow: Uow, pg_engine: Engine, order_id: int, results: dict[str, object],
                             refused: list[DomainError], members: FakeMembers) -> None:
    """The first approval refunded the 4,000 fen to the wallet, asked once; the second was told the order's state."""
    assert results == {"first": "REFUNDED", "second": "ORDER_STATE_CONFLICT"}
    assert refused[0].details == {"status": "REFUNDING", "action": "approve_cancel"}
    [(refund_no, status)] = listed(pg_uow, order_id)
    assert (status, members.refund_asks) == ("SUCCESS", [refund_no])
    assert (members.balance_fen, members.balance_refunds) == (4000, {refund_no: 4000})
    assert refunded(pg_engine, order_id) == (4000, [(4, 4000)])


def test_a_second_approval_of_a_wallet_paid_order_between_the_first_s_commit_and_its_refund_is_a_state_conflict(
        pg_uow: Uow, pg_engine: Engine) -> None:
    order_id = requested(pg_uow, "C-RACE-3", channel="balance")
    members = wallet()
    results: dict[str, object] = {}
    refused: list[DomainError] = []
    first_committed, second_done = threading.Event(), threading.Event()

    def between() -> None:  # the first approver's refund is reserved, PENDING, the member service not asked yet
        first_committed.set()
        assert second_done.wait(30)

    first = start_thread(results, "first", lambda: approve(PausingCommit(pg_engine, after=between), order_id, STAFF,
                                                           members))
    assert first_committed.wait(30)
    second = start_thread(results, "second", second_approval(pg_uow, order_id, refused, members))
    second.join()
    second_done.set()
    first.join()

    assert_one_wallet_refund(pg_uow, pg_engine, order_id, results, refused, members)


def test_a_second_approval_of_a_wallet_paid_order_waiting_for_the_first_s_lock_is_a_state_conflict(
        pg_uow: Uow, pg_engine: Engine) -> None:
    order_id = requested(pg_uow, "C-RACE-4", channel="balance")
    members = wallet()
    results: dict[str, object] = {}
    refused: list[DomainError] = []
    second: list[threading.Thread] = []

    def second_waits() -> None:  # the first approver holds the order's row: the second waits for it
        second.append(start_thread(results, "second", second_approval(pg_uow, order_id, refused, members)))
        wait_until_blocked(pg_engine, second[0])

    def second_done() -> None:  # the second reads the order before the first asks the member service
        second[0].join()

    first = start_thread(results, "first", lambda: approve(
        PausingCommit(pg_engine, before=second_waits, after=second_done), order_id, STAFF, members))
    first.join()

    assert_one_wallet_refund(pg_uow, pg_engine, order_id, results, refused, members)
