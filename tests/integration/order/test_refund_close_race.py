"""Closing an ABNORMAL refund while it is retried, on PostgreSQL: the refund's row lock serialises them, and a re-send
whose answer is lost leaves the refund PENDING, so the refund is never both CLOSED with its amount freed and sent again
to be paid by WeChat Pay."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from services.common.errors import Conflict, DomainError, ErrorKind
from services.common.outbox import outbox
from services.common.wechatpay import WechatPayUnavailable
from services.order import db, refunds
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, RefundItem
from tests.fakes import CuedRefunds, FakeMembers, FakeRefundPayments, LostAnswerRefunds, first_call_followed_by
from tests.integration.order.test_refunds import RefusingResend, paid, refunded

pytestmark = pytest.mark.integration

NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)
LATER = NOON + timedelta(hours=2)


def refused_when_sent_again(uow: Callable[[], SqlOrderUnitOfWork]) -> tuple[int, str]:
    """An order paid 4000 fen and its refund, ABNORMAL, that WeChat Pay holds nothing of (RESOURCE_NOT_EXISTS):
    the first call got no answer, and the fallback job's re-send was refused (`_refused_abnormal`)."""
    order_id = paid(uow, "R-CLOSERACE", OrderLine(101, 10, "茶", "", 1000, 4))
    refund = refunds.start_refund(uow(), FakeRefundPayments(error=WechatPayUnavailable("no answer")), FakeMembers(),
                                  order_id=order_id, items=[], reason="r", actor="staff:9", source="cancel", now=NOON)
    refunds.reconcile_refunds(uow, RefusingResend(), FakeMembers(), now=LATER, stuck_seconds=3600)
    assert status(uow().engine) == "ABNORMAL"
    return order_id, refund.refund_no


def status(engine: Engine) -> str:
    with engine.connect() as connection:
        return connection.execute(select(db.refunds.c.status)).scalar_one()


def meanwhile(engine: Engine, action: Callable[[], object]) -> Callable[[], object]:
    """Start `action` in another thread and wait until it ends or waits for a row lock in this test's database;
    the returned function joins it and answers what it returned or raised."""
    outcome: list[object] = []
    ended = threading.Event()

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as exc:  # the outcome the test asserts on
            outcome.append(exc)
        finally:
            ended.set()

    threading.Thread(target=run, daemon=True).start()
    waiting = (select(func.count()).select_from(text("pg_stat_activity"))
               .where(text("datname = current_database() AND wait_event_type = 'Lock'")))
    with engine.connect() as connection:
        for _ in range(1000):  # checks the condition every 10 ms, for 10 s at most
            if ended.wait(0.01) or connection.execute(waiting).scalar_one():
                break
            connection.rollback()
        else:
            pytest.fail("the other action neither ended nor waited for a lock")

    def result() -> object:
        assert ended.wait(10)
        [answer] = outcome
        return answer

    return result


def test_a_close_racing_a_retry_that_sends_the_refund_again_waits_and_frees_nothing_wechat_pay_will_pay(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id, refund_no = refused_when_sent_again(pg_uow)
    channel = CuedRefunds(on="refund")  # the retry asked (RESOURCE_NOT_EXISTS), is sending it again: staff close
    closing: list[Callable[[], object]] = []
    channel.meanwhile = lambda: closing.append(meanwhile(pg_engine, lambda: refunds.close_refund(
        pg_uow(), channel, refund_no=refund_no, reason="已线下转账", actor="staff:1", now=LATER)))

    retried = refunds.retry_refund(pg_uow(), channel, FakeMembers(), refund_no=refund_no, actor="staff:9", now=LATER)

    conflict = closing[0]()
    assert isinstance(conflict, Conflict)
    assert (conflict.code, conflict.details) == ("REFUND_STATE_CONFLICT", {"status": "PENDING", "action": "close"})
    assert (retried.status, status(pg_engine), list(channel.asked)) == ("PENDING", "PENDING", [refund_no])
    assert refunded(pg_engine, order_id) == (4000, [(4, 4000)])  # still reserved: WeChat Pay is paying it
    refunds.settle_refund(pg_uow(), refund_no=refund_no, status=refunds.RefundStatus.SUCCESS, actor="wechatpay",
                          now=LATER)  # WeChat Pay paid it: the one outcome
    assert (status(pg_engine), refunded(pg_engine, order_id)) == ("SUCCESS", (4000, [(4, 4000)]))


def test_a_retry_racing_a_close_waits_for_it_and_sends_nothing_once_the_refund_is_closed(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id, refund_no = refused_when_sent_again(pg_uow)
    channel = CuedRefunds(on="query")  # the close is asking WeChat Pay (RESOURCE_NOT_EXISTS): staff retry
    retrying: list[Callable[[], object]] = []
    channel.meanwhile = lambda: retrying.append(meanwhile(pg_engine, lambda: refunds.retry_refund(
        pg_uow(), channel, FakeMembers(), refund_no=refund_no, actor="staff:9", now=LATER)))

    refunds.close_refund(pg_uow(), channel, refund_no=refund_no, reason="已线下转账", actor="staff:1", now=LATER)

    retried = retrying[0]()
    assert getattr(retried, "status", retried) == "CLOSED"  # answered as it is: never sent again
    assert (status(pg_engine), channel.asked) == ("CLOSED", {})
    assert refunded(pg_engine, order_id) == (0, [(0, 0)])  # freed: nothing can be paid


def test_a_retry_whose_resend_answer_is_lost_leaves_the_refund_pending_unclosable_until_the_job_settles_it_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id, refund_no = refused_when_sent_again(pg_uow)
    channel = LostAnswerRefunds(lost_sends=1, status="SUCCESS")  # WeChat Pay gets the re-send; the answer is lost

    with pytest.raises(DomainError) as sent:
        refunds.retry_refund(pg_uow(), channel, FakeMembers(), refund_no=refund_no, actor="staff:9", now=LATER)
    assert status(pg_engine) == "PENDING"  # committed: the 503 did not roll it back
    assert (sent.value.code, sent.value.details) == ("PAYMENT_CHANNEL_UNAVAILABLE",
                                                     {"refund_no": refund_no, "status": "PENDING"})
    with pytest.raises(Conflict) as in_flight:  # WeChat Pay has not processed it yet: RESOURCE_NOT_EXISTS
        refunds.close_refund(pg_uow(), channel, refund_no=refund_no, reason="已线下转账", actor="staff:1", now=LATER)
    assert in_flight.value.details == {"status": "PENDING", "action": "close"}
    assert refunded(pg_engine, order_id) == (4000, [(4, 4000)])

    channel.process()  # WeChat Pay pays it; its notify is lost
    for minutes in (10, 20):
        refunds.reconcile_refunds(pg_uow, channel, FakeMembers(), now=LATER + timedelta(minutes=minutes))

    assert (status(pg_engine), refunded(pg_engine, order_id), channel.sent) == ("SUCCESS", (4000, [(4, 4000)]),
                                                                                [refund_no])
    with pg_engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(outbox).where(
            outbox.c.event_type == "order-refunded")).scalar_one() == 1


def test_a_close_racing_a_wallet_retry_waits_for_it_and_frees_nothing_the_wallet_was_credited(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    """A wallet refund the member service refused (ABNORMAL), fixed there: staff retry it, and while RefundToBalance
    credits the wallet another staff member closes it. The close waits for the retry's row lock and finds it paid, so
    the refund is never CLOSED with its amount freed while the wallet holds the money."""
    order_id = paid(pg_uow, "R-WALLETRACE", OrderLine(101, 10, "茶", "", 1000, 4), channel="balance")
    members = FakeMembers(refund_error=DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE))
    refund = refunds.start_refund(pg_uow(), None, members, order_id=order_id, items=[], reason="r", actor="staff:9",
                                  source="cancel", now=NOON)
    members.refund_error = DomainError("REFUND_EXCEEDS_PAYMENT", "more than paid", kind=ErrorKind.BUSINESS_RULE)
    refunds.reconcile_refunds(pg_uow, None, members, now=LATER)
    assert status(pg_engine) == "ABNORMAL"
    members.refund_error = None  # fixed at the member service
    closing: list[Callable[[], object]] = []
    members.refund_to_balance = first_call_followed_by(  # type: ignore[method-assign]
        members.refund_to_balance, lambda: closing.append(meanwhile(pg_engine, lambda: refunds.close_refund(
            pg_uow(), None, refund_no=refund.refund_no, reason="已线下转账", actor="staff:1", now=LATER))))

    retried = refunds.retry_refund(pg_uow(), None, members, refund_no=refund.refund_no, actor="staff:9", now=LATER)

    conflict = closing[0]()
    assert isinstance(conflict, Conflict)
    assert (conflict.code, conflict.details) == ("REFUND_STATE_CONFLICT", {"status": "SUCCESS", "action": "close"})
    assert (retried.status, status(pg_engine), members.balance_fen) == ("SUCCESS", "SUCCESS", 4000)
    assert refunded(pg_engine, order_id) == (4000, [(4, 4000)])


def test_a_wallet_retry_whose_answer_is_lost_is_pending_so_staff_cannot_close_what_the_wallet_may_hold(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    """An ABNORMAL wallet refund retried by staff: RefundToBalance credits the wallet but the deadline passes first
    (MEMBER_UNAVAILABLE). The refund is PENDING, committed, so a close is a 409 and its amount stays reserved: a
    second refund of the unit cannot credit the wallet again. The fallback job then settles it once."""
    order_id = paid(pg_uow, "R-WLOST", OrderLine(101, 10, "茶", "", 1000, 4), channel="balance")
    with pg_uow() as tx:
        line_id = tx.orders.get(order_id).lines[0].id or 0
    unavailable = DomainError("MEMBER_UNAVAILABLE", "deadline exceeded", kind=ErrorKind.UNAVAILABLE)
    members = FakeMembers(refund_error=unavailable)
    refund = refunds.start_refund(pg_uow(), None, members, order_id=order_id, items=[RefundItem(line_id, 1, 1000)],
                                  reason="r", actor="staff:9", source="after_sale:1", now=NOON)
    members.refund_error = DomainError("BALANCE_PAYMENT_NOT_FOUND", "not yet", kind=ErrorKind.NOT_FOUND)
    refunds.reconcile_refunds(pg_uow, None, members, now=LATER)
    assert status(pg_engine) == "ABNORMAL"
    members.refund_error = None
    credit = members.refund_to_balance

    def credited_answer_lost(*args: object) -> None:
        credit(*args)  # type: ignore[arg-type]
        raise unavailable

    members.refund_to_balance = credited_answer_lost  # type: ignore[method-assign]
    with pytest.raises(DomainError) as lost:
        refunds.retry_refund(pg_uow(), None, members, refund_no=refund.refund_no, actor="staff:9", now=LATER)
    assert (lost.value.code, status(pg_engine), members.balance_fen) == ("MEMBER_UNAVAILABLE", "PENDING", 1000)

    members.refund_to_balance = credit  # type: ignore[method-assign]
    with pytest.raises(Conflict) as closing:
        refunds.close_refund(pg_uow(), None, refund_no=refund.refund_no, reason="已线下转账", actor="staff:1", now=LATER)
    assert closing.value.details == {"status": "PENDING", "action": "close"}
    assert refunded(pg_engine, order_id) == (1000, [(1, 1000)])  # still reserved: no second refund of the unit

    refunds.reconcile_refunds(pg_uow, None, members, now=LATER + timedelta(minutes=10))
    assert (status(pg_engine), members.balance_fen, refunded(pg_engine, order_id)) == ("SUCCESS", 1000,
                                                                                        (1000, [(1, 1000)]))
