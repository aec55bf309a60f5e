"""An after-sales refund staff closed (ABNORMAL at WeChat Pay) that WeChat Pay pays after all: its units count as
refunded again, so after-sales cannot claim and refund them a second time (on fakes, exact units and fen)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from mall.events.v1.order_events_pb2 import RefundPaidTwice

from services.common.errors import Conflict
from services.common.events import timestamp
from services.common.order_steps import StepKind
from services.order import aftersales, refunds
from services.order.domain import Order, RefundStatus
from tests.fakes import FakeRefundPayments
from tests.fixtures.metrics import CounterDeltas
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.test_aftersales import ask, delivered

LATER = NOW + timedelta(days=5)


def wechat_order(shop: Shop) -> Order:
    """3 x 1999 = 5997 fen, shipped and delivered, paid through WeChat Pay."""
    order = delivered(shop, (101, 3))
    order.pay_channel = "wechat"
    return order


def engine(payments: FakeRefundPayments, shop: Shop) -> aftersales.EngineRefunder:
    return aftersales.EngineRefunder(payments, shop.members)


def closed_case(shop: Shop, payments: FakeRefundPayments, order: Order, units: int) -> aftersales.AfterSale:
    """A refund-only case of `units` units, approved; WeChat Pay holds its refund ABNORMAL, and staff close it."""
    case = ask(shop, order, {order.lines[0].id or 0: units})
    payments.status = "ABNORMAL"
    aftersales.decide(lambda: shop.uow, engine(payments, shop), case_id=case.id or 0, approve=True, reason="ok",
                      actor="staff:8")
    refunds.close_refund(shop.uow, payments, refund_no=case.refund_no, reason="卡已注销", actor="staff:1", now=NOW)
    payments.status = "PROCESSING"
    return case


def paid_after_all(shop: Shop, payments: FakeRefundPayments, refund_no: str) -> None:
    """WeChat Pay's notify that the refund was paid (completed there after all), sent three times."""
    payments.notice = replace(payments.asked[refund_no], status="SUCCESS")
    for _ in range(3):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}",
                                     now=LATER)


def refunded(shop: Shop) -> list[tuple[str, int]]:
    return [(event.payload.refund_no, event.payload.amount_fen) for event in shop.uow.published
            if event.event_type == "order-refunded"]


def paid_twice(shop: Shop) -> list[tuple[str, RefundPaidTwice]]:
    return [(event.aggregate_id, event.payload) for event in shop.uow.published
            if event.event_type == "refund-paid-twice"]


def counts(order: Order) -> tuple[int, int, int]:
    line = order.lines[0]
    return order.refunded_fen, line.refunded_quantity, line.refunded_fen


def test_a_case_opened_on_the_units_of_a_closed_refund_cannot_be_approved_once_wechat_pay_pays_that_refund(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    line = order.lines[0].id or 0
    first = closed_case(shop, payments, order, units=2)
    aftersales.decide(lambda: shop.uow, engine(payments, shop), case_id=first.id or 0, approve=False,
                      reason="refund it offline", actor="staff:8")  # REFUND_FAILED -> REJECTED: the line is free
    second = ask(shop, order, {line: 2})  # the closed refund's units were claimable again
    assert (counts(order), second.refund_fen, aftersales.claimable_units(order, shop.uow.refunds.for_order(order.id))
            ) == ((0, 0, 0), 3998, {line: 3})
    deltas = CounterDeltas()

    paid_after_all(shop, payments, first.refund_no)

    assert counts(order) == (3998, 2, 3998)  # counted as refunded again, once
    # the rejected case stays REJECTED (closed cases never move: README, Refunds); the order shows the refund paid
    assert aftersales.get_case(shop.uow, user_id=None, case_id=first.id or 0).status == "REJECTED"
    assert aftersales.claimable_units(order, shop.uow.refunds.for_order(order.id)) == {line: 1}
    assert refunded(shop) == [(first.refund_no, 3998)]
    assert deltas() == {"mall_refunds_paid_after_close_total": 1}
    [closed] = shop.uow.refunds.for_order(order.id or 0)
    assert (closed.refund_no, closed.status, closed.paid_after_close_at) == (first.refund_no, "CLOSED", LATER)
    notes = [step.reason for step in order.history if not step.shopper_visible]
    assert refunds.paid_after_close_note(closed, counted=True) in notes
    assert [note for note in notes if second.case_no in note] == [
        f"after-sales case {second.case_no} claims units refund {first.refund_no} refunded after its close "
        f"(left by line: {{{line}: 1}}): it cannot be approved or refunded; reject it"]

    with pytest.raises(Conflict) as refused:
        aftersales.decide(lambda: shop.uow, engine(payments, shop), case_id=second.id or 0, approve=True,
                          reason="ok", actor="staff:8")
    assert (refused.value.code, refused.value.details) == ("AFTER_SALE_QUANTITY_INVALID", {"line_id": line, "left": 1})
    assert (second.status, list(payments.asked), counts(order)) == ("REQUESTED", [first.refund_no], (3998, 2, 3998))

    # staff reject it; the one unit never refunded may still be claimed, and takes exactly what is left of the line
    aftersales.decide(lambda: shop.uow, engine(payments, shop), case_id=second.id or 0, approve=False,
                      reason="already refunded", actor="staff:8")
    with pytest.raises(Conflict) as too_many:
        ask(shop, order, {line: 2})
    assert too_many.value.details == {"line_id": line, "left": 1}
    third = ask(shop, order, {line: 1})
    payments.status = "SUCCESS"
    done = aftersales.decide(lambda: shop.uow, engine(payments, shop), case_id=third.id or 0, approve=True,
                             reason="ok", actor="staff:8")
    assert (done.status, third.refund_fen, counts(order)) == ("REFUNDED", 1999, (5997, 3, 5997))
    assert refunded(shop) == [(first.refund_no, 3998), (done.refund_no, 1999)]
    # every unit refunded by after-sales leaves a delivered order COMPLETED, the refund paid after its close among
    # them, as paid refunds do: the state machine's "refunded" step is a cancellation's (REFUNDING) only
    assert (order.status, order.history[-1].status) == ("COMPLETED", "COMPLETED")


def test_a_failed_case_whose_closed_refund_wechat_pay_pays_is_refunded_by_it_and_cannot_be_retried(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    case = closed_case(shop, payments, order, units=2)
    first = case.refund_no
    assert (case.status, counts(order)) == ("REFUND_FAILED", (0, 0, 0))

    paid_after_all(shop, payments, first)

    assert (case.status, case.is_open, case.refund_no, case.history[-1].actor) == (
        "REFUNDED", False, first, f"refund:{first}")
    assert (counts(order), refunded(shop)) == ((3998, 2, 3998), [(first, 3998)])
    with pytest.raises(Conflict) as retried:
        aftersales.retry_refund(lambda: shop.uow, engine(payments, shop), case_id=case.id or 0, actor="staff:8")
    assert (retried.value.code, list(payments.asked)) == ("AFTER_SALE_STATE_CONFLICT", [first])


def test_a_failed_case_on_units_another_closed_refund_was_paid_for_is_not_retried(shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    line = order.lines[0].id or 0
    first = closed_case(shop, payments, order, units=2)
    aftersales.decide(lambda: shop.uow, engine(payments, shop), case_id=first.id or 0, approve=False,
                      reason="refund it offline", actor="staff:8")
    second = closed_case(shop, payments, order, units=2)  # the same units, its refund closed too: REFUND_FAILED

    paid_after_all(shop, payments, first.refund_no)

    with pytest.raises(Conflict) as refused:
        aftersales.retry_refund(lambda: shop.uow, engine(payments, shop), case_id=second.id or 0, actor="staff:8")
    assert (refused.value.code, refused.value.details) == ("AFTER_SALE_QUANTITY_INVALID", {"line_id": line, "left": 1})
    assert (second.status, list(payments.asked), counts(order)) == (
        "REFUND_FAILED", [first.refund_no, second.refund_no], (3998, 2, 3998))


def test_a_closed_refund_paid_after_a_second_refund_of_its_units_is_recorded_and_leaves_nothing_claimable(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    line = order.lines[0].id or 0
    case = closed_case(shop, payments, order, units=2)
    first = case.refund_no
    payments.status = "SUCCESS"
    again = aftersales.retry_refund(lambda: shop.uow, engine(payments, shop), case_id=case.id or 0, actor="staff:8")
    assert (again.status, counts(order)) == ("REFUNDED", (3998, 2, 3998))

    paid_after_all(shop, payments, first)  # the shopper has 7996 fen back for 2 units

    assert aftersales.claimable_units(order, shop.uow.refunds.for_order(order.id)) == {line: 0}
    with pytest.raises(Conflict) as nothing_left:
        ask(shop, order, {line: 1})
    assert nothing_left.value.details == {"line_id": line, "left": 0}
    [closed] = [refund for refund in shop.uow.refunds.for_order(order.id or 0) if refund.refund_no == first]
    assert (closed.status, closed.paid_after_close_at, counts(order)) == ("CLOSED", LATER, (3998, 2, 3998))
    assert refunded(shop) == [(again.refund_no, 3998)]  # it cannot be counted twice: finance recovers it
    assert refunds.paid_after_close_note(closed) in [step.reason for step in order.history]


def test_a_closed_refund_paid_after_a_second_refund_of_its_units_publishes_refund_paid_twice_once(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    first = closed_case(shop, payments, order, units=2)
    closed = first.refund_no
    payments.status = "SUCCESS"
    aftersales.retry_refund(lambda: shop.uow, engine(payments, shop), case_id=first.id or 0, actor="staff:8")

    paid_after_all(shop, payments, closed)  # heard three times

    assert paid_twice(shop) == [(order.order_no, RefundPaidTwice(
        order_no=order.order_no, user_id=order.user_id, refund_no=closed, amount_fen=3998, channel="wechat",
        paid_at=timestamp(LATER)))]


def test_a_closed_refund_paid_after_its_case_was_refunded_again_is_counted_and_noted_as_paid_twice(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = delivered(shop, (101, 4))  # 4 x 1999 = 7996 fen: a second 2-unit refund still fits the line
    order.pay_channel = "wechat"
    line = order.lines[0].id or 0
    case = closed_case(shop, payments, order, units=2)
    first = case.refund_no
    payments.status = "SUCCESS"
    again = aftersales.retry_refund(lambda: shop.uow, engine(payments, shop), case_id=case.id or 0, actor="staff:8")

    paid_after_all(shop, payments, first)

    assert (again.status, counts(order), refunded(shop)) == (
        "REFUNDED", (7996, 4, 7996), [(again.refund_no, 3998), (first, 3998)])
    assert paid_twice(shop) == []  # counted again: its order-refunded is the money ledger's outflow
    assert aftersales.claimable_units(order, shop.uow.refunds.for_order(order.id)) == {line: 0}
    assert [step.reason for step in order.history if case.case_no in step.reason] == [
        f"after-sales case {case.case_no} was refunded by {first} after its close and by {again.refund_no} too: "
        "paid twice; finance must check"]


def test_a_closed_refund_a_previous_release_recorded_paid_is_marked_at_its_step_and_its_case_refunded_once(
        shop: Shop) -> None:
    """Order 0017's rollout: a pod of the previous release hears WeChat Pay's notify after 0017's backfill ran and
    records only its step (it knows no paid_after_close_at). A replay reaching a new pod marks the refund at the
    step's time, so its units are not claimable again, and its failed case is refunded by it; the step, the count
    and the amounts are not recorded again."""
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    line = order.lines[0].id or 0
    case = closed_case(shop, payments, order, units=2)
    [closed] = shop.uow.refunds.for_order(order.id or 0)
    noted_at = NOW + timedelta(days=4)
    order.record_step(kind=StepKind.REFUND_NOTE, actor="wechatpay", now=noted_at,
                      reason=refunds.paid_after_close_note(closed), shopper=False)
    assert aftersales.claimable_units(order, shop.uow.refunds.for_order(order.id or 0)) == {line: 3}
    deltas = CounterDeltas()

    paid_after_all(shop, payments, case.refund_no)

    [closed] = shop.uow.refunds.for_order(order.id or 0)
    assert (closed.status, closed.paid_after_close_at) == ("CLOSED", noted_at)
    assert aftersales.claimable_units(order, shop.uow.refunds.for_order(order.id or 0)) == {line: 1}
    assert (case.status, case.refund_no) == ("REFUNDED", closed.refund_no)
    assert (counts(order), refunded(shop), deltas()) == ((0, 0, 0), [], {})
    assert [step.reason for step in order.history if closed.refund_no in step.reason
            and "was closed here" in step.reason] == [refunds.paid_after_close_note(closed)]
    with pytest.raises(Conflict) as claimed:
        ask(shop, order, {line: 2})
    assert claimed.value.details == {"line_id": line, "left": 1}


def test_a_retried_refund_that_closes_after_the_closed_one_was_paid_leaves_the_case_refunded_by_that_one(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = wechat_order(shop)
    case = closed_case(shop, payments, order, units=3)
    first = case.refund_no
    again = aftersales.retry_refund(lambda: shop.uow, engine(payments, shop), case_id=case.id or 0, actor="staff:8")
    paid_after_all(shop, payments, first)  # waits: the retried refund holds its 5997 fen

    refunds.settle_refund(shop.uow, refund_no=again.refund_no, status=RefundStatus.CLOSED, actor="wechatpay",
                          now=LATER)

    done = aftersales.get_case(shop.uow, user_id=1, case_id=case.id or 0)
    assert (done.status, done.refund_no, counts(order), refunded(shop)) == (
        "REFUNDED", first, (5997, 3, 5997), [(first, 5997)])
    assert [(step.status, step.actor) for step in done.history][-2:] == [
        ("REFUNDING", "staff:8"), ("REFUNDED", f"refund:{first}")]
    assert [step.reason for step in order.history if "paid twice" in step.reason] == []  # paid once, by the first
