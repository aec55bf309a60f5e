"""The refund engine's row locks on PostgreSQL, taken in one order on every path (services/order/refunds.py, Locks):
a holder refund ending while WeChat Pay replays the notify of the closed refund paid after all that waits for it.
Taking the waiting refund's row before its order's (the replay), while the holder's end took the order's and then
updates the waiting refund, deadlocked: one of them was rolled back with DeadlockDetected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Self

import pytest
from sqlalchemy import Engine

from services.order import refunds, service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import RefundStatus
from tests.fakes import FakeRefundPayments
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.order.test_refund_paid_after_close_db import amounts, paid_twice_events, refunded_events
from tests.integration.order.test_refund_paid_while_held_db import closed_then_held, waiting

pytestmark = pytest.mark.integration

Uow = Callable[[], SqlOrderUnitOfWork]
NOW = datetime(2026, 12, 7, 4, tzinfo=UTC)


class BeforeOrderLock(SqlOrderUnitOfWork):
    """A unit of work that runs `meanwhile` once, just before it first takes an order's row lock."""

    def __init__(self, engine: Engine, meanwhile: Callable[[], object]) -> None:
        super().__init__(engine, "order")
        self.meanwhile: list[Callable[[], object]] = [meanwhile]

    def __enter__(self) -> Self:
        super().__enter__()
        get = self.orders.get

        def get_order(order_id: int, *, lock: bool = False) -> Any:
            if lock and self.meanwhile:
                self.meanwhile.pop()()
            return get(order_id, lock=lock)
        self.orders.get = get_order  # type: ignore[method-assign]
        return self


def test_a_holder_ending_while_the_waiting_refund_s_notify_is_replayed_decides_it_once_without_a_deadlock(
        pg_uow: Uow, pg_engine: Engine) -> None:
    holder_payments = FakeRefundPayments()
    order_id, first, second, payments = closed_then_held(pg_uow, "R-LOCKS", holder_payments)
    assert waiting(pg_uow, first)
    results: dict[str, object] = {}
    holder: list[Any] = []

    def holder_paid() -> None:  # WeChat Pay pays the holder, just as the replayed notify is about to lock the order
        holder.append(start_thread(results, "holder", lambda: refunds.settle_refund(
            pg_uow(), refund_no=second, status=RefundStatus.SUCCESS, actor="wechatpay", now=NOW).status))
        wait_until_blocked(pg_engine, holder[0])  # it ended, or it waits for a row the replay holds

    payments.notice = replace(payments.asked[first], status="SUCCESS")
    replay = start_thread(results, "replay", lambda: refunds.handle_refund_notify(
        BeforeOrderLock(pg_engine, holder_paid), payments, headers={"Wechatpay-Signature": "good"}, body=b"{}",
        now=NOW).status)
    replay.join()
    holder[0].join()

    order = service.get_order(pg_uow(), user_id=None, order_id=order_id)
    assert results == {"holder": "SUCCESS", "replay": "CLOSED"}
    # the holder paid the same 4000 fen: the first was paid twice, booked once
    assert (amounts(pg_uow, order_id), paid_twice_events(pg_uow), refunded_events(pg_uow), order.status,
            waiting(pg_uow, first)) == ((4000, [(4, 4000)]), [(first, 4000)], 1, "REFUNDED", False)
