"""The refund engine on fakes: reservation limits, channels, settlement once, listeners, the fallback job."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from services.common.db import utcnow
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.common.wechatpay import NotifyRejected, WechatPayApiError, WechatPayError, WechatPayUnavailable
from services.common.wechatpay import Refund as ChannelRefund
from services.order import __main__ as order_process
from services.order import refunds, service
from services.order.domain import Order, Refund, RefundItem, line_refund_fen, paid_shares
from services.order.service import CheckoutInput
from services.order.uow import OrderUnitOfWork
from tests.fakes import CuedRefunds, FakeRefundPayments, LostAnswerRefunds
from tests.fixtures.metrics import CounterDeltas
from tests.unit.order.conftest import NOW, Shop


@pytest.fixture
def payments() -> FakeRefundPayments:
    return FakeRefundPayments()


@pytest.fixture(autouse=True)
def no_listeners() -> Iterator[None]:
    saved = dict(refunds.SETTLED_LISTENERS)
    yield
    refunds.SETTLED_LISTENERS.clear()
    refunds.SETTLED_LISTENERS.update(saved)


def paid_order(shop: Shop, *, channel: str = "wechat", coupon_fen: int = 0) -> Order:
    """2 x 1999 + 1 x 500 = 4498 in goods, paid in full through `channel`."""
    shop.members.coupon_fen = coupon_fen
    first = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=2, now=NOW)
    second = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=102, quantity=1, now=NOW)
    request = CheckoutInput(cart_item_ids=(first.item.id or 0, second.item.id or 0), address_id=7,
                            coupon_id=9 if coupon_fen else 0)
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings,
                                 user_id=1, request=request, note="", idempotency_key="k",
                                 request_fingerprint=b"k", now=NOW)
    return service.mark_paid(shop.uow, order_no=order.order_no, channel=channel, out_trade_no=order.order_no,
                             paid_fen=order.payable_fen, actor="wechatpay", now=NOW)


def start(shop: Shop, payments: FakeRefundPayments | None, order: Order, items: list[RefundItem] | None = None,
          source: str = "after_sale:1") -> Refund:
    return refunds.start_refund(shop.uow, payments, shop.members, order_id=order.id or 0, items=items or [],
                                reason="质量问题", actor="staff:9", source=source, now=NOW)


def settle(shop: Shop, refund: Refund, status: str = "SUCCESS") -> Refund:
    return refunds.settle_refund(shop.uow, refund_no=refund.refund_no, status=refunds.RefundStatus(status),
                                 actor="wechatpay", now=NOW)


def events(shop: Shop, event_type: str = "order-refunded") -> list[object]:
    return [event.payload for event in shop.uow.published if event.event_type == event_type]


def test_paid_shares_split_the_discounted_goods_over_the_lines_and_add_up_exactly(shop: Shop) -> None:
    order = paid_order(shop, coupon_fen=1001)
    first, second = order.lines
    # 4498 goods - 1001 coupon = 3497: 3497 * 3998 // 4498 = 3108 for the first line, 389 left for the second.
    assert paid_shares(order) == {first.id: 3108, second.id: 389}
    assert line_refund_fen(order, first.id or 0, 1) == 1554
    with pytest.raises(NotFound):
        line_refund_fen(order, 999_999, 1)


def test_a_whole_order_wechat_refund_reserves_everything_and_ends_once_on_success(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    order.apply("request_cancel", actor="user:1", now=NOW, shopper_reason="")
    order.apply("approve_cancel", actor="staff:9", now=NOW, shopper_reason="")

    refund = start(shop, payments, order, source="cancel")

    assert (refund.status, refund.amount_fen, order.refunded_fen) == ("PENDING", 4498, 4498)
    assert [(line.quantity, line.amount_fen) for line in refund.lines] == [(2, 3998), (1, 500)]
    assert payments.asked[refund.refund_no].refund_fen == 4498
    with pytest.raises(Conflict) as nothing_left:
        start(shop, payments, order)
    assert nothing_left.value.code == "REFUND_NOTHING_LEFT"

    settle(shop, refund)
    settle(shop, refund)  # a replayed notify
    settle(shop, refund, "CLOSED")  # a late, contradicting one

    assert (refund.status, order.status, order.refunded_fen) == ("SUCCESS", "REFUNDED", 4498)
    [event] = events(shop)
    assert (event.amount_fen, [(line.sku_id, line.quantity) for line in event.lines]) == (4498, [(101, 2), (102, 1)])
    assert (order.history[-1].status, order.history[-1].actor) == ("REFUNDED", "wechatpay")


def test_a_partial_refund_by_line_keeps_the_order_state_and_never_passes_the_line(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    first = order.lines[0]
    one_unit = line_refund_fen(order, first.id or 0, 1)

    refund = start(shop, payments, order, [RefundItem(first.id or 0, 1, one_unit)])
    settle(shop, refund)

    assert (order.status, order.refunded_fen, first.refunded_quantity, first.refunded_fen) == ("PAID", 1999, 1, 1999)
    [event] = events(shop)
    assert [(line.sku_id, line.quantity, line.price_fen) for line in event.lines] == [(101, 1, 1999)]
    for too_much in ([RefundItem(first.id or 0, 1, 2000)], [RefundItem(first.id or 0, 2, 1999)]):
        with pytest.raises(Conflict) as exceeded:
            start(shop, payments, order, too_much)
        assert exceeded.value.code == "REFUND_EXCEEDS_PAID"
    assert (order.refunded_fen, first.refunded_quantity, len(shop.uow.refunds.refunds)) == (1999, 1, 1)


def test_a_closed_refund_gives_its_amount_back_so_it_can_be_refunded_again(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    closed = start(shop, payments, order)
    settle(shop, closed, "CLOSED")
    assert (closed.status, order.refunded_fen, [line.refunded_quantity for line in order.lines]) == ("CLOSED", 0,
                                                                                                  [0, 0])
    assert events(shop) == []
    again = start(shop, payments, order)
    assert (again.amount_fen, order.refunded_fen) == (4498, 4498)


# -- ABNORMAL: WeChat Pay could not pay it back (the card is gone); the merchant may still complete it there --

def abnormal(shop: Shop, payments: FakeRefundPayments, order: Order, source: str = "after_sale:1") -> Refund:
    refund = start(shop, payments, order, source=source)
    payments.notice = replace(payments.asked[refund.refund_no], status="ABNORMAL")
    return refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")


def test_an_abnormal_refund_keeps_its_amount_reserved_so_no_second_refund_can_start(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    first = order.lines[0]

    refund = abnormal(shop, payments, order)

    assert (refund.status, order.refunded_fen, first.refunded_quantity, first.refunded_fen) == (
        "ABNORMAL", 4498, 2, 3998)
    assert (order.history[-1].status, order.history[-1].actor) == ("PAID", "wechatpay")
    assert refund.refund_no in order.history[-1].reason and "ABNORMAL" in order.history[-1].reason
    with pytest.raises(Conflict) as nothing_left:
        start(shop, payments, order)
    with pytest.raises(Conflict) as exceeded:
        start(shop, payments, order, [RefundItem(first.id or 0, 1, 1999)])
    assert (nothing_left.value.code, exceeded.value.code) == ("REFUND_NOTHING_LEFT", "REFUND_EXCEEDS_PAID")
    assert (len(shop.uow.refunds.refunds), events(shop)) == (1, [])


def test_an_abnormal_refund_the_merchant_completes_at_wechat_pay_succeeds_once_by_its_notify(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)
    payments.notice = replace(payments.notice, status="SUCCESS")

    for _ in range(2):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")

    assert (refund.status, order.refunded_fen, len(events(shop))) == ("SUCCESS", 4498, 1)


def test_staff_retry_an_abnormal_refund_under_the_same_refund_number(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)

    payments.status = "ABNORMAL"  # not fixed at WeChat Pay yet
    still = refunds.retry_refund(shop.uow, payments, shop.members, refund_no=refund.refund_no, actor="staff:9",
                                 now=NOW)
    assert (still.status, order.refunded_fen) == ("ABNORMAL", 4498)
    payments.status = "PROCESSING"  # fixed: WeChat Pay pays it again
    again = refunds.retry_refund(shop.uow, payments, shop.members, refund_no=refund.refund_no, actor="staff:9",
                                 now=NOW)
    assert (again.status, order.refunded_fen) == ("PENDING", 4498)
    payments.status = "SUCCESS"
    done = refunds.retry_refund(shop.uow, payments, shop.members, refund_no=refund.refund_no, actor="staff:9",
                                now=NOW)

    assert (done.status, len(events(shop)), list(payments.asked)) == ("SUCCESS", 1, [refund.refund_no])


def close(shop: Shop, payments: FakeRefundPayments | None, refund_no: str, reason: str = "卡已注销,线下转账") -> Order:
    return refunds.close_refund(shop.uow, payments, refund_no=refund_no, reason=reason, actor="staff:1", now=NOW)


@pytest.mark.parametrize("at_wechat_pay", ["ABNORMAL", "CLOSED"])
def test_staff_close_an_abnormal_refund_with_a_reason_which_frees_its_amount_for_a_new_refund(
        shop: Shop, payments: FakeRefundPayments, at_wechat_pay: str) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)
    payments.status = at_wechat_pay  # what WeChat Pay says now

    closed = close(shop, payments, refund.refund_no)

    assert (refund.status, refund.settled_at, closed.refunded_fen, [line.refunded_fen for line in closed.lines]) == (
        "CLOSED", NOW, 0, [0, 0])
    audit = closed.history[-1]
    assert (audit.status, audit.actor, audit.at) == ("PAID", "staff:1", NOW)
    assert refund.refund_no in audit.reason and "卡已注销,线下转账" in audit.reason
    again = start(shop, payments, order)
    assert (again.amount_fen, again.refund_no != refund.refund_no, events(shop)) == (4498, True, [])


def test_only_an_abnormal_refund_is_closed_by_staff_and_always_with_a_reason(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    pending = start(shop, payments, order)
    with pytest.raises(Conflict) as under_way:
        close(shop, payments, pending.refund_no)
    assert (under_way.value.code, under_way.value.details) == ("REFUND_STATE_CONFLICT",
                                                               {"status": "PENDING", "action": "close"})
    settle(shop, pending, "ABNORMAL")
    with pytest.raises(InvalidInput) as no_reason:
        close(shop, payments, pending.refund_no, reason="  ")
    assert no_reason.value.code == "REFUND_CLOSE_REASON_REQUIRED"
    for unknown in ("RF0000", "RF\x00'", pending.refund_no + "0"):
        with pytest.raises(NotFound):
            close(shop, payments, unknown)
    assert (pending.status, order.refunded_fen) == ("ABNORMAL", 4498)


def test_closing_a_refund_wechat_pay_paid_meanwhile_settles_it_as_paid_instead(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)
    payments.status = "SUCCESS"  # the merchant completed it in the merchant console; its notify was lost

    with pytest.raises(Conflict) as paid:
        close(shop, payments, refund.refund_no)

    assert paid.value.details == {"status": "SUCCESS", "action": "close"}
    assert (refund.status, order.refunded_fen, len(events(shop))) == ("SUCCESS", 4498, 1)


def test_a_refund_is_not_closed_while_wechat_pay_cannot_be_asked_about_it(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)
    payments.error = WechatPayUnavailable("no answer")

    with pytest.raises(DomainError) as unavailable:
        close(shop, payments, refund.refund_no)

    assert (unavailable.value.code, unavailable.value.kind) == ("PAYMENT_CHANNEL_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert (refund.status, order.refunded_fen) == ("ABNORMAL", 4498)


@pytest.mark.parametrize("error", [WechatPayUnavailable("no answer"), WechatPayApiError(403, "NO_AUTH", "无权限")],
                         ids=["no answer", "refused"])
def test_staff_retrying_an_abnormal_refund_wechat_pay_cannot_be_asked_about_get_a_503_and_nothing_changes(
        shop: Shop, payments: FakeRefundPayments, error: WechatPayError) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)
    steps = len(order.history)
    payments.error = error

    with pytest.raises(DomainError) as unavailable:
        refunds.retry_refund(shop.uow, payments, shop.members, refund_no=refund.refund_no, actor="staff:9", now=NOW)

    assert (unavailable.value.code, unavailable.value.kind) == ("PAYMENT_CHANNEL_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert unavailable.value.details == ({"channel_code": "NO_AUTH"} if isinstance(error, WechatPayApiError) else {})
    assert (refund.status, refund.settled_at, order.refunded_fen, len(order.history), events(shop)) == (
        "ABNORMAL", None, 4498, steps, [])


def test_a_refund_wechat_pay_never_got_and_refuses_when_sent_again_is_left_pending_with_a_503(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    payments.error = WechatPayUnavailable("no answer")
    lost = start(shop, payments, order)  # WeChat Pay never got it: the retry sends it again
    payments.error = None
    refusing = RefusingRefunds()

    with pytest.raises(DomainError) as unavailable:
        refunds.retry_refund(shop.uow, refusing, shop.members, refund_no=lost.refund_no, actor="staff:9", now=NOW)

    assert (unavailable.value.code, unavailable.value.details) == ("PAYMENT_CHANNEL_UNAVAILABLE",
                                                                   {"channel_code": "NOT_ENOUGH"})
    assert (lost.status, order.refunded_fen, refusing.sent, events(shop)) == ("PENDING", 4498, [lost.refund_no], [])


@dataclass
class RefusingRefunds(FakeRefundPayments):
    """WeChat Pay knowing no refund and refusing every one it is sent (the merchant's balance is short)."""

    sent: list[str] = field(default_factory=list)

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        self.sent.append(out_refund_no)
        raise WechatPayApiError(403, "NOT_ENOUGH", "余额不足")


def lost_refund(shop: Shop, payments: FakeRefundPayments, order: Order) -> Refund:
    """A refund whose call got no answer: WeChat Pay never received it (PENDING, for the fallback job)."""
    payments.error = WechatPayUnavailable("no answer")
    lost = start(shop, payments, order)
    payments.error = None
    return lost


def test_the_fallback_job_makes_a_refund_wechat_pay_refuses_when_sent_again_abnormal_once_it_is_stuck(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    lost = lost_refund(shop, payments, order)
    refusing = RefusingRefunds()
    steps = len(order.history)

    for minutes in (10, 59):  # refused, but not PENDING an hour yet: asked again next round
        refunds.reconcile_refunds(lambda: shop.uow, refusing, shop.members, now=NOW + timedelta(minutes=minutes),
                                  stuck_seconds=3600)
        assert (lost.status, len(order.history)) == ("PENDING", steps)
    later = NOW + timedelta(minutes=61)
    refunds.reconcile_refunds(lambda: shop.uow, refusing, shop.members, now=later, stuck_seconds=3600)
    refunds.reconcile_refunds(lambda: shop.uow, refusing, shop.members, now=later, stuck_seconds=3600)

    assert (lost.status, lost.updated_at, lost.settled_at, order.refunded_fen, order.status, events(shop)) == (
        "ABNORMAL", later, None, 4498, "PAID", [])
    assert refusing.sent == [lost.refund_no] * 3  # ABNORMAL: the job no longer sends it
    assert [(step.actor, step.reason) for step in order.history[steps:]] == [
        ("reconciliation", refunds.resend_refused_note(lost, "NOT_ENOUGH"))]
    assert "(NOT_ENOUGH): 4498 fen held" in order.history[-1].reason


def test_the_fallback_job_leaves_a_stuck_refund_pending_when_wechat_pay_refuses_only_the_query(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    lost = lost_refund(shop, payments, order)
    payments.error = WechatPayApiError(403, "NO_AUTH", "无权限")  # our side's problem, not this refund's

    refunds.reconcile_refunds(lambda: shop.uow, payments, shop.members, now=NOW + timedelta(hours=2),
                              stuck_seconds=3600)

    assert (lost.status, order.refunded_fen, payments.asked) == ("PENDING", 4498, {})


def test_staff_close_a_refund_wechat_pay_refused_when_sent_again_since_wechat_pay_holds_none(
        shop: Shop, payments: FakeRefundPayments) -> None:
    heard: list[str] = []
    refunds.SETTLED_LISTENERS["after_sale"] = lambda uow, refund, now: heard.append(refund.status)
    order = paid_order(shop)
    lost = lost_refund(shop, payments, order)
    refusing = RefusingRefunds()
    refunds.reconcile_refunds(lambda: shop.uow, refusing, shop.members, now=NOW + timedelta(hours=2),
                              stuck_seconds=3600)

    closed = close(shop, refusing, lost.refund_no, reason="商户余额不足,已线下转账")

    assert (lost.status, closed.refunded_fen, [line.refunded_fen for line in closed.lines]) == ("CLOSED", 0, [0, 0])
    assert (heard, refusing.sent, events(shop)) == (["ABNORMAL", "CLOSED"], [lost.refund_no], [])
    assert closed.history[-1].reason == f"refund {lost.refund_no} closed (4498 fen freed): 商户余额不足,已线下转账"


def test_staff_retry_a_refund_made_abnormal_after_the_merchant_fixed_what_wechat_pay_refused(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    lost = lost_refund(shop, payments, order)
    refunds.reconcile_refunds(lambda: shop.uow, RefusingRefunds(), shop.members, now=NOW + timedelta(hours=2),
                              stuck_seconds=3600)
    assert lost.status == "ABNORMAL"

    again = refunds.retry_refund(shop.uow, payments, shop.members, refund_no=lost.refund_no, actor="staff:9",
                                 now=NOW + timedelta(hours=3))

    assert (again.status, order.refunded_fen, list(payments.asked)) == ("PENDING", 4498, [lost.refund_no])


def refused_when_sent_again(shop: Shop, payments: FakeRefundPayments, order: Order) -> Refund:
    """An ABNORMAL refund WeChat Pay holds nothing of (RESOURCE_NOT_EXISTS): lost, then refused when sent again."""
    lost = lost_refund(shop, payments, order)
    refunds.reconcile_refunds(lambda: shop.uow, RefusingRefunds(), shop.members, now=NOW + timedelta(hours=2),
                              stuck_seconds=3600)
    assert lost.status == "ABNORMAL"
    return lost


@dataclass
class Meanwhile:
    """An action run in another thread until it ends or waits for a refund's row lock (`start`)."""

    thread: threading.Thread
    outcome: list[object]  # what it returned or raised, once it ended

    @classmethod
    def start(cls, shop: Shop, action: Callable[[], object]) -> Meanwhile:
        signal = shop.uow.refunds.row_locks.waiting
        signal.clear()
        outcome: list[object] = []

        def run() -> None:
            try:
                outcome.append(action())
            except Exception as exc:  # the outcome the test asserts on
                outcome.append(exc)
            finally:
                signal.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert signal.wait(10), "the other action neither ended nor waited for a lock"
        return cls(thread, outcome)

    def result(self) -> object:
        self.thread.join(10)
        [outcome] = self.outcome
        return outcome


def test_a_close_racing_a_retry_that_sends_the_refund_again_waits_and_frees_nothing_wechat_pay_will_pay(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = refused_when_sent_again(shop, payments, order)
    channel = CuedRefunds(on="refund")  # the retry asked (RESOURCE_NOT_EXISTS) and is sending it again: staff close
    closing: list[Meanwhile] = []
    channel.meanwhile = lambda: closing.append(Meanwhile.start(shop, lambda: close(shop, channel, refund.refund_no)))

    retried = refunds.retry_refund(shop.uow, channel, shop.members, refund_no=refund.refund_no, actor="staff:9",
                                   now=NOW)

    conflict = closing[0].result()
    assert isinstance(conflict, Conflict)
    assert (conflict.code, conflict.details) == ("REFUND_STATE_CONFLICT", {"status": "PENDING", "action": "close"})
    assert (retried.status, order.refunded_fen, list(channel.asked)) == ("PENDING", 4498, [refund.refund_no])
    channel.notice = replace(channel.asked[refund.refund_no], status="SUCCESS")  # WeChat Pay pays it: once
    refunds.handle_refund_notify(shop.uow, channel, headers={"Wechatpay-Signature": "good"}, body=b"{}")
    assert (refund.status, order.refunded_fen, len(events(shop))) == ("SUCCESS", 4498, 1)
    assert refunds.paid_after_close_note(refund) not in [step.reason for step in order.history]


def test_a_retry_racing_a_close_waits_for_it_and_sends_nothing_once_the_refund_is_closed(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = refused_when_sent_again(shop, payments, order)
    channel = CuedRefunds(on="query")  # the close is asking WeChat Pay (RESOURCE_NOT_EXISTS): staff retry
    retrying: list[Meanwhile] = []
    channel.meanwhile = lambda: retrying.append(Meanwhile.start(shop, lambda: refunds.retry_refund(
        shop.uow, channel, shop.members, refund_no=refund.refund_no, actor="staff:9", now=NOW)))

    closed = close(shop, channel, refund.refund_no)

    assert retrying[0].result() is refund  # returned as it is, CLOSED: never sent again
    assert (refund.status, closed.refunded_fen, channel.asked) == ("CLOSED", 0, {})


# -- a refund sent and its answer lost: WeChat Pay may still pay it, so it is in flight (PENDING), not closable --

RETRIED = NOW + timedelta(hours=3)


def resent_answer_lost(shop: Shop, payments: FakeRefundPayments, order: Order) -> tuple[Refund, LostAnswerRefunds]:
    """An ABNORMAL refund WeChat Pay holds nothing of, retried by staff: sent again, the answer lost (a 503)."""
    refund = refused_when_sent_again(shop, payments, order)
    channel = LostAnswerRefunds(lost_sends=1)
    with pytest.raises(DomainError) as sent:
        refunds.retry_refund(shop.uow, channel, shop.members, refund_no=refund.refund_no, actor="staff:9",
                             now=RETRIED)
    assert refund.status == "PENDING"  # sent: WeChat Pay may pay it
    assert (sent.value.code, sent.value.kind) == ("PAYMENT_CHANNEL_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert sent.value.details == {"refund_no": refund.refund_no, "status": "PENDING"}
    assert "sent" in sent.value.message and "nothing was changed" not in sent.value.message
    return refund, channel


def test_a_retry_whose_resend_answer_is_lost_leaves_the_refund_pending_so_staff_cannot_close_it(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    steps = len(order.history) + 1  # resent_answer_lost makes it ABNORMAL first (one step)

    refund, channel = resent_answer_lost(shop, payments, order)

    assert (refund.status, refund.updated_at, refund.settled_at, order.refunded_fen, channel.sent) == (
        "PENDING", RETRIED, None, 4498, [refund.refund_no])
    assert [(step.actor, step.reason, step.shopper_visible) for step in order.history[steps:]] == [
        ("staff:9", refunds.answer_lost_note(refund), False)]
    with pytest.raises(Conflict) as in_flight:
        close(shop, channel, refund.refund_no)  # WeChat Pay has not processed it yet: RESOURCE_NOT_EXISTS
    assert (in_flight.value.code, in_flight.value.details) == ("REFUND_STATE_CONFLICT",
                                                               {"status": "PENDING", "action": "close"})
    assert (refund.status, order.refunded_fen, events(shop)) == ("PENDING", 4498, [])
    with pytest.raises(Conflict) as still_reserved:
        start(shop, payments, order)
    assert still_reserved.value.code == "REFUND_NOTHING_LEFT"


def test_a_refund_whose_resend_answer_was_lost_is_settled_once_by_the_fallback_job_when_wechat_pay_pays_it(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund, channel = resent_answer_lost(shop, payments, order)
    channel.status = "SUCCESS"
    channel.process()  # WeChat Pay paid it after all; its notify was lost

    for minutes in (10, 20):
        refunds.reconcile_refunds(lambda: shop.uow, channel, shop.members, now=RETRIED + timedelta(minutes=minutes))

    assert (refund.status, refund.settled_at, order.refunded_fen, channel.sent) == (
        "SUCCESS", RETRIED + timedelta(minutes=10), 4498, [refund.refund_no])
    [event] = events(shop)
    assert (event.refund_no, event.amount_fen, [(line.sku_id, line.quantity) for line in event.lines]) == (
        refund.refund_no, 4498, [(101, 2), (102, 1)])
    assert [line.refunded_fen for line in order.lines] == [3998, 500]
    assert refunds.paid_after_close_note(refund) not in [step.reason for step in order.history]


def test_a_retry_whose_query_answer_is_lost_sends_nothing_and_changes_nothing(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = refused_when_sent_again(shop, payments, order)
    before = (refund.status, refund.updated_at, len(order.history))
    channel = LostAnswerRefunds(lost_queries=1)

    with pytest.raises(DomainError) as unavailable:
        refunds.retry_refund(shop.uow, channel, shop.members, refund_no=refund.refund_no, actor="staff:9",
                             now=RETRIED)

    assert (unavailable.value.code, unavailable.value.details) == ("PAYMENT_CHANNEL_UNAVAILABLE", {})
    assert "nothing was changed" in unavailable.value.message
    assert ((refund.status, refund.updated_at, len(order.history)), channel.sent, events(shop)) == (before, [], [])
    close(shop, channel, refund.refund_no)  # nothing was sent, so WeChat Pay cannot pay it: staff may close it
    assert (refund.status, order.refunded_fen) == ("CLOSED", 0)


def test_a_first_send_whose_answer_is_lost_leaves_the_refund_pending_for_the_fallback_job_without_an_error(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    steps = len(order.history)
    channel = LostAnswerRefunds(lost_sends=1, status="SUCCESS")

    refund = start(shop, channel, order)
    assert (refund.status, order.refunded_fen, len(order.history)) == ("PENDING", 4498, steps)
    channel.process()
    refunds.reconcile_refunds(lambda: shop.uow, channel, shop.members, now=NOW + timedelta(minutes=10))

    assert (refund.status, channel.sent, len(events(shop))) == ("SUCCESS", [refund.refund_no], 1)


def stuck_gauges() -> tuple[float | None, float | None]:
    return (REGISTRY.get_sample_value("mall_refunds_pending_stuck"),
            REGISTRY.get_sample_value("mall_refunds_pending_stuck_oldest_seconds"))


def test_the_stuck_refund_gauges_count_refunds_pending_past_the_threshold_and_age_the_oldest(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    first, second = order.lines
    payments.error = WechatPayUnavailable("no answer")
    older = start(shop, payments, order, [RefundItem(first.id or 0, 2, 3998)])  # PENDING since NOW
    newer = refunds.start_refund(shop.uow, payments, shop.members, order_id=order.id or 0,
                                 items=[RefundItem(second.id or 0, 1, 500)], reason="质量问题", actor="staff:9",
                                 source="after_sale:2", now=NOW + timedelta(minutes=30))

    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(minutes=59), stuck_seconds=3600)
    assert stuck_gauges() == (0, 0)
    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(hours=2), stuck_seconds=3600)
    assert stuck_gauges() == (2, 2 * 3600)

    settle(shop, older)
    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(hours=2), stuck_seconds=3600)
    assert stuck_gauges() == (1, 90 * 60)
    refunds.settle_refund(shop.uow, refund_no=newer.refund_no, status=refunds.RefundStatus.ABNORMAL,
                          actor="wechatpay", now=NOW + timedelta(hours=2))
    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(hours=2), stuck_seconds=3600)
    assert (stuck_gauges(), abnormal_gauges()) == ((0, 0), (1, 0))


def test_the_serve_roles_abnormal_refunds_job_exports_the_stuck_refund_gauges_with_its_threshold(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    payments.error = WechatPayUnavailable("no answer")
    refunds.start_refund(shop.uow, payments, shop.members, order_id=order.id or 0, items=[], reason="质量问题",
                         actor="staff:9", source="cancel", now=utcnow() - timedelta(hours=3))

    order_process.abnormal_refunds(lambda: shop.uow, 60, 4 * 3600)(OneRound())  # type: ignore[arg-type]
    assert stuck_gauges() == (0, 0)
    order_process.abnormal_refunds(lambda: shop.uow, 60, 2 * 3600)(OneRound())  # type: ignore[arg-type]
    count, oldest = stuck_gauges()
    assert count == 1 and oldest is not None and 3 * 3600 <= oldest < 3 * 3600 + 60


def test_a_closed_refund_wechat_pay_pays_after_all_is_recorded_for_finance_and_counted_once(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = abnormal(shop, payments, order)
    payments.status = "ABNORMAL"
    close(shop, payments, refund.refund_no)  # staff closed it while WeChat Pay still said ABNORMAL
    payments.status = "PROCESSING"
    second = start(shop, payments, order)
    settle(shop, second)  # the shopper is paid by the second refund
    deltas = CounterDeltas()

    payments.notice = replace(payments.asked[refund.refund_no], status="SUCCESS")  # completed at WeChat Pay after all
    for _ in range(3):  # WeChat Pay repeats a notify until it is answered
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}", now=NOW)

    assert (refund.status, order.status, order.refunded_fen, len(events(shop))) == ("CLOSED", "PAID", 4498, 1)
    [audit] = [step for step in order.history if step.reason == refunds.paid_after_close_note(refund)]
    assert (audit.actor, audit.at, audit.status) == ("wechatpay", NOW, "PAID")
    assert f"refund {refund.refund_no} " in audit.reason and "4498 fen" in audit.reason
    assert deltas() == {"mall_refunds_paid_after_close_total": 1}


def test_a_cancellation_refund_paid_after_its_close_is_the_orders_refund_when_nothing_refunded_it_since(
        shop: Shop, payments: FakeRefundPayments) -> None:
    """Nothing refunded the order after staff closed its cancellation's refund: WeChat Pay paying it is the order's
    refund, counted as a paid refund is (every line's units and fen, order-refunded) and the order REFUNDED."""
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="买错了", now=NOW)
    payments.status = "ABNORMAL"
    review(shop, payments, order, True, "同意")
    [refund] = shop.uow.refunds.for_order(order.id or 0)
    close(shop, payments, refund.refund_no)
    assert (order.status, order.refunded_fen, [line.refunded_quantity for line in order.lines]) == (
        "REFUNDING", 0, [0, 0])

    payments.notice = replace(payments.asked[refund.refund_no], status="SUCCESS")
    later = NOW + timedelta(hours=1)
    for _ in range(2):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}",
                                     now=later)

    assert (refund.status, refund.paid_after_close_at, order.status, order.refunded_fen) == (
        "CLOSED", later, "REFUNDED", 4498)
    assert [(line.refunded_quantity, line.refunded_fen) for line in order.lines] == [(2, 3998), (1, 500)]
    [event] = events(shop)
    assert (event.refund_no, event.amount_fen, [(line.sku_id, line.quantity) for line in event.lines]) == (
        refund.refund_no, 4498, [(101, 2), (102, 1)])
    assert [(step.status, step.actor, step.at, step.reason, step.shopper_reason) for step in order.history[-1:]] == [
        ("REFUNDED", "wechatpay", later, f"refund {refund.refund_no}: 4498 fen", "refunded in full")]
    with pytest.raises(Conflict) as again:
        review(shop, payments, order, True, "再退")
    assert (again.value.code, len(shop.uow.refunds.refunds)) == ("ORDER_STATE_CONFLICT", 1)


def test_a_cancellation_refund_paid_after_its_close_once_approving_again_refunded_the_order_counts_nothing_twice(
        shop: Shop, payments: FakeRefundPayments) -> None:
    """Staff closed the cancellation's ABNORMAL refund and approved it again: the second refund holds the order's
    money, so WeChat Pay paying the first after all cannot count yet and leaves the order REFUNDING, undecided; the
    second refund's SUCCESS makes it REFUNDED, one order-refunded in all, and the first paid twice (finance's)."""
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="买错了", now=NOW)
    payments.status = "ABNORMAL"
    review(shop, payments, order, True, "同意")
    [first] = shop.uow.refunds.for_order(order.id or 0)
    close(shop, payments, first.refund_no)
    payments.status = "PROCESSING"
    review(shop, payments, order, True, "再退")
    [_, second] = shop.uow.refunds.for_order(order.id or 0)
    assert (order.status, order.refunded_fen, second.status, second.amount_fen) == ("REFUNDING", 4498, "PENDING", 4498)

    payments.notice = replace(payments.asked[first.refund_no], status="SUCCESS")
    for _ in range(2):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}", now=NOW)

    assert (first.status, first.paid_after_close_at, order.status, order.refunded_fen, events(shop)) == (
        "CLOSED", NOW, "REFUNDING", 4498, [])
    assert order.history[-1].reason == (f"refund {first.refund_no} was closed here but WeChat Pay paid it: 4498 fen "
                                        f"wait for open refund {second.refund_no}: counted if it closes, refunded "
                                        "twice if it is paid")
    settle(shop, second)
    assert (order.status, order.refunded_fen, [event.refund_no for event in events(shop)]) == (
        "REFUNDED", 4498, [second.refund_no])
    assert [(step.status, step.actor, step.reason) for step in order.history[-2:]] == [
        ("REFUNDED", "wechatpay", f"refund {second.refund_no}: 4498 fen"),
        ("REFUNDED", "wechatpay", f"refund {first.refund_no} was closed here but WeChat Pay paid it: 4498 fen may have "
         "been refunded twice; finance must check")]


def abnormal_gauges() -> tuple[float | None, float | None]:
    return (REGISTRY.get_sample_value("mall_refunds_abnormal"),
            REGISTRY.get_sample_value("mall_refunds_abnormal_oldest_seconds"))


def test_the_abnormal_refund_gauges_count_them_and_age_the_one_abnormal_longest(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    first, second = order.lines
    older = start(shop, payments, order, [RefundItem(first.id or 0, 2, 3998)])
    newer = start(shop, payments, order, [RefundItem(second.id or 0, 1, 500)])
    refunds.settle_refund(shop.uow, refund_no=older.refund_no, status=refunds.RefundStatus.ABNORMAL, actor="wechatpay",
                          now=NOW)
    refunds.settle_refund(shop.uow, refund_no=newer.refund_no, status=refunds.RefundStatus.ABNORMAL, actor="wechatpay",
                          now=NOW + timedelta(hours=1))

    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(hours=3))
    assert abnormal_gauges() == (2, 3 * 3600)

    payments.status = "ABNORMAL"
    close(shop, payments, older.refund_no)
    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(hours=3))
    assert abnormal_gauges() == (1, 2 * 3600)

    payments.status = "SUCCESS"
    refunds.retry_refund(shop.uow, payments, shop.members, refund_no=newer.refund_no, actor="staff:9", now=NOW)
    refunds.watch_abnormal_refunds(shop.uow, now=NOW + timedelta(hours=3))
    assert abnormal_gauges() == (0, 0)


class OneRound:
    """A stop event for a job: not set for its first wait, set from the second on (the job runs once)."""

    def __init__(self) -> None:
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return self.waits > 1


def test_the_serve_roles_abnormal_refunds_job_exports_the_gauges_each_interval(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = start(shop, payments, order)
    refunds.settle_refund(shop.uow, refund_no=refund.refund_no, status=refunds.RefundStatus.ABNORMAL, actor="wechatpay",
                          now=utcnow() - timedelta(days=2))

    order_process.abnormal_refunds(lambda: shop.uow, 60)(OneRound())  # type: ignore[arg-type]

    count, oldest = abnormal_gauges()
    assert count == 1 and oldest is not None and 2 * 86400 <= oldest < 2 * 86400 + 60


def test_the_sources_listener_hears_a_refund_go_abnormal_and_then_end(
        shop: Shop, payments: FakeRefundPayments) -> None:
    heard: list[str] = []
    refunds.SETTLED_LISTENERS["after_sale"] = lambda uow, refund, now: heard.append(refund.status)
    order = paid_order(shop)
    refund = abnormal(shop, payments, order, source="after_sale:12")
    payments.status = "ABNORMAL"
    close(shop, payments, refund.refund_no)
    assert heard == ["ABNORMAL", "CLOSED"]


def test_a_balance_payment_is_refunded_to_the_wallet_at_once_and_once(shop: Shop) -> None:
    shop.members.balance_fen = 10_000
    order = service.get_order(shop.uow, user_id=1, order_id=paid_order(shop, channel="balance").id or 0)
    order.pay_channel = "balance"
    refund = start(shop, None, order)
    assert (refund.status, shop.members.balance_fen, shop.members.balance_refunds) == (
        "SUCCESS", 14_498, {refund.refund_no: 4498})
    assert len(events(shop)) == 1


def test_a_wallet_refund_the_member_service_refuses_is_closed_and_one_it_cannot_answer_waits(shop: Shop) -> None:
    order = paid_order(shop, channel="balance")
    shop.members.refund_error = DomainError("FORBIDDEN", "no", kind=ErrorKind.FORBIDDEN)
    with pytest.raises(DomainError):
        start(shop, None, order)
    assert (shop.uow.refunds.refunds[0].status, order.refunded_fen) == ("CLOSED", 0)

    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    waiting = start(shop, None, order)
    assert (waiting.status, order.refunded_fen) == ("PENDING", 4498)
    shop.members.refund_error = None
    refunds.retry_refund(shop.uow, None, shop.members, refund_no=waiting.refund_no, actor="staff:9", now=NOW)
    refunds.retry_refund(shop.uow, None, shop.members, refund_no=waiting.refund_no, actor="staff:9", now=NOW)
    assert (waiting.status, shop.members.balance_fen, len(events(shop))) == ("SUCCESS", 4498, 1)


def test_a_wallet_refund_the_member_service_refuses_when_asked_again_is_abnormal_and_staff_can_close_it(
        shop: Shop) -> None:
    order = paid_order(shop, channel="balance")
    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    waiting = start(shop, None, order)
    shop.members.refund_error = DomainError("REFUND_EXCEEDS_PAYMENT", "more than paid",
                                            kind=ErrorKind.BUSINESS_RULE)

    assert refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=NOW + timedelta(minutes=10)) == 1

    assert (waiting.status, order.refunded_fen) == ("ABNORMAL", 4498)
    assert "REFUND_EXCEEDS_PAYMENT" in order.history[-1].reason and waiting.refund_no in order.history[-1].reason
    closed = close(shop, None, waiting.refund_no)
    assert (waiting.status, closed.refunded_fen, shop.members.balance_fen, events(shop)) == ("CLOSED", 0, 0, [])


def test_a_wallet_refund_the_member_service_cannot_answer_when_asked_again_stays_pending(shop: Shop) -> None:
    order = paid_order(shop, channel="balance")
    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    waiting = start(shop, None, order)

    with pytest.raises(DomainError):
        refunds.retry_refund(shop.uow, None, shop.members, refund_no=waiting.refund_no, actor="staff:9", now=NOW)

    assert (waiting.status, order.refunded_fen) == ("PENDING", 4498)


def test_the_fallback_job_refunds_a_waiting_wallet_refund_once(shop: Shop) -> None:
    order = paid_order(shop, channel="balance")
    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    waiting = start(shop, None, order)
    later = NOW + timedelta(minutes=10)
    assert refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=later) == 0  # still down
    assert (waiting.status, shop.members.balance_fen) == ("PENDING", 0)

    shop.members.refund_error = None
    assert refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=NOW) == 0  # too young yet
    assert refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=later) == 1
    assert refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=later) == 0
    assert (waiting.status, shop.members.balance_fen, shop.members.balance_refunds, len(events(shop))) == (
        "SUCCESS", 4498, {waiting.refund_no: 4498}, 1)


def test_wechat_pay_refusing_closes_the_refund_and_no_answer_leaves_it_for_the_fallback_job(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    payments.error = WechatPayApiError(403, "NOT_ENOUGH", "余额不足")
    with pytest.raises(Conflict) as refused:
        start(shop, payments, order)
    assert (refused.value.code, order.refunded_fen) == ("REFUND_REFUSED", 0)

    payments.error = WechatPayUnavailable("no answer")
    lost = start(shop, payments, order)
    assert lost.status == "PENDING" and payments.asked == {}
    payments.error = None
    later = NOW + timedelta(minutes=10)
    assert refunds.reconcile_refunds(lambda: shop.uow, payments, shop.members, now=NOW) == 0  # too young yet
    assert refunds.reconcile_refunds(lambda: shop.uow, payments, shop.members, now=later) == 0  # asked again
    assert lost.status == "PENDING" and lost.refund_no in payments.asked
    payments.status = "SUCCESS"
    assert refunds.reconcile_refunds(lambda: shop.uow, payments, shop.members, now=later) == 1
    assert (lost.status, lost.channel_refund_id, len(events(shop))) == ("SUCCESS", f"wx-{lost.refund_no}", 1)


def test_a_verified_notify_settles_once_and_a_forged_or_mismatched_one_changes_nothing(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    refund = start(shop, payments, order)
    notice = replace(payments.asked[refund.refund_no], status="SUCCESS")

    payments.notice = replace(notice, refund_fen=1)
    with pytest.raises(NotifyRejected):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")
    payments.notice = notice
    with pytest.raises(NotifyRejected):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "forged"}, body=b"{}")
    assert (refund.status, events(shop)) == ("PENDING", [])

    for _ in range(3):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")
    assert (refund.status, len(events(shop))) == ("SUCCESS", 1)
    payments.notice = replace(notice, out_refund_no="unknown")
    with pytest.raises(NotifyRejected):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")


def test_the_sources_listener_hears_of_the_end_once_in_the_settling_transaction(
        shop: Shop, payments: FakeRefundPayments) -> None:
    heard: list[tuple[str, str]] = []

    def finish_case(uow: OrderUnitOfWork, refund: Refund, now: object) -> None:
        heard.append((refund.source, refund.status))

    refunds.SETTLED_LISTENERS["after_sale"] = finish_case
    order = paid_order(shop)
    refund = start(shop, payments, order, source="after_sale:12")
    settle(shop, refund)
    settle(shop, refund)
    with pytest.raises(Conflict):
        start(shop, payments, order, [], source="cancel")  # nothing left: no refund, nothing heard
    assert heard == [("after_sale:12", "SUCCESS")]


def test_an_unpaid_order_cannot_be_refunded(shop: Shop, payments: FakeRefundPayments) -> None:
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings,
                                 user_id=1, request=CheckoutInput(sku_id=101, quantity=1,
                                                                  address_id=7),
                                 note="", idempotency_key="u", request_fingerprint=b"u", now=NOW)
    with pytest.raises(Conflict) as refused:
        start(shop, payments, order)
    assert refused.value.details == {"status": "PENDING_PAYMENT", "action": "refund"}


def review(shop: Shop, payments: FakeRefundPayments | None, order: Order, approve: bool, reason: str = "") -> Order:
    return refunds.review_cancellation(shop.uow, payments, shop.members, order_id=order.id or 0, approve=approve,
                                       reason=reason, actor="staff:9", now=NOW)


def test_an_approved_cancellation_refunds_the_whole_order_and_releases_its_stock_by_event(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="买错了", now=NOW)

    reviewed = review(shop, payments, order, True, "同意")

    assert (reviewed.status, reviewed.refunded_fen) == ("REFUNDING", 4498)
    assert [(step.status, step.actor, step.reason) for step in reviewed.history[-2:]] == [
        ("CANCEL_REQUESTED", "user:1", "买错了"), ("REFUNDING", "staff:9", "同意")]
    [cancelled] = events(shop, "order-cancelled")
    assert (cancelled.was_paid, cancelled.cancelled_by, [line.quantity for line in cancelled.lines]) == (
        True, "staff", [2, 1])
    [refund] = shop.uow.refunds.refunds
    assert (refund.source, refund.amount_fen, refund.reason) == ("cancel", 4498, "同意")
    with pytest.raises(Conflict) as again:
        review(shop, payments, order, True)  # its refund is under way
    assert again.value.details == {"status": "REFUNDING", "action": "approve_cancel"}
    settle(shop, refund)
    assert (order.status, len(events(shop)), len(events(shop, "order-cancelled"))) == ("REFUNDED", 1, 1)


def test_a_rejected_cancellation_is_paid_again_with_the_reason_and_nothing_refunded(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    with pytest.raises(Conflict):
        review(shop, payments, order, False)  # nobody asked to cancel
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="不要了", now=NOW)
    rejected = review(shop, payments, order, False, "已打包")
    assert (rejected.status, rejected.history[-1].reason, rejected.refunded_fen) == ("PAID", "已打包", 0)
    assert events(shop, "order-cancelled") == [] and shop.uow.refunds.refunds == []


def test_approving_again_after_a_refused_refund_starts_it_anew_without_cancelling_twice(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    payments.error = WechatPayApiError(403, "NOT_ENOUGH", "商户余额不足")
    with pytest.raises(Conflict):
        review(shop, payments, order, True)
    assert (order.status, order.refunded_fen) == ("REFUNDING", 0)
    payments.error = None
    review(shop, payments, order, True)
    assert [refund.status for refund in shop.uow.refunds.refunds] == ["CLOSED", "PENDING"]
    assert (order.refunded_fen, len(events(shop, "order-cancelled"))) == (4498, 1)


def test_approving_again_while_a_wallet_refund_is_pending_is_a_state_conflict_that_asks_the_member_service_nothing(
        shop: Shop) -> None:
    order = paid_order(shop, channel="balance")
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    assert review(shop, None, order, True).status == "REFUNDING"
    shop.members.refund_error = None
    [refund] = shop.uow.refunds.refunds

    with pytest.raises(Conflict) as again:  # PENDING is under way: another approval's call may be crediting it now
        review(shop, None, order, True)

    assert (again.value.code, again.value.details) == (
        "ORDER_STATE_CONFLICT", {"status": "REFUNDING", "action": "approve_cancel"})
    assert (shop.members.refund_asks, shop.members.balance_fen) == ([refund.refund_no], 0)
    refunds.retry_refund(shop.uow, None, shop.members, refund_no=refund.refund_no, actor="staff:9", now=NOW)
    assert (order.status, refund.status, shop.members.balance_refunds) == (
        "REFUNDED", "SUCCESS", {refund.refund_no: 4498})
    assert (len(events(shop, "order-cancelled")), len(events(shop))) == (1, 1)


def test_approving_again_retries_a_wallet_refund_the_member_service_refused_when_asked_again(shop: Shop) -> None:
    order = paid_order(shop, channel="balance")
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    review(shop, None, order, True)
    shop.members.refund_error = DomainError("REFUND_EXCEEDS_PAYMENT", "more than paid", kind=ErrorKind.BUSINESS_RULE)
    assert refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=NOW + timedelta(minutes=10)) == 1
    [refund] = shop.uow.refunds.refunds
    assert refund.status == "ABNORMAL"
    shop.members.refund_error = None

    assert review(shop, None, order, True).status == "REFUNDED"

    assert (refund.status, shop.members.balance_refunds) == ("SUCCESS", {refund.refund_no: 4498})
    assert (len(events(shop, "order-cancelled")), len(events(shop))) == (1, 1)


def test_approving_again_asks_wechat_pay_about_an_abnormal_cancel_refund_under_the_same_number(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    payments.status = "ABNORMAL"
    assert review(shop, payments, order, True).status == "REFUNDING"
    [refund] = shop.uow.refunds.refunds
    assert (refund.status, order.refunded_fen) == ("ABNORMAL", 4498)

    assert review(shop, payments, order, True).status == "REFUNDING"  # not fixed yet: still the one refund
    payments.status = "SUCCESS"
    assert review(shop, payments, order, True).status == "REFUNDED"

    assert ([r.status for r in shop.uow.refunds.refunds], list(payments.asked)) == (["SUCCESS"], [refund.refund_no])
    assert (len(events(shop, "order-cancelled")), len(events(shop))) == (1, 1)
