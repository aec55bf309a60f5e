"""What an after-sales case's shopper sees of its history and what staff see: every step for both, the shopper in
their own words or the shop's fixed wording for them (never staff's notes, reject reasons typed for staff, the refund
engine's errors, or which staff member acted), staff every step as recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.errors import Conflict
from services.order import aftersales
from services.order.aftersales import CASE_TRANSITIONS, SHOPPER_WORDS, AfterSale, AfterSaleSettings, CaseStep
from tests.fakes import FakeRefundPayments
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.test_aftersales import FakeRefunder, abnormal_case, ask, delivered

STAFF_WORDS = ("老客户,同意", "疑似职业退货人,已拉黑", "外包装破损,已拍照存档")


def shopper_sees(case: AfterSale) -> list[tuple[str, str, str]]:
    return [(step.status, step.actor, step.reason) for step in case.shopper_history()]


def staff_see(case: AfterSale) -> list[tuple[str, str, str, bool, str]]:
    return [(step.status, step.actor, step.reason, step.shopper_visible, step.shopper_reason) for step in case.history]


def test_a_declined_request_shows_the_shopper_the_reason_written_for_them_never_the_staff_note_or_staff_id(
        shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})

    declined = aftersales.decide(lambda: shop.uow, FakeRefunder(), case_id=case.id, approve=False,
                                 reason=STAFF_WORDS[1], shopper_reason=" 商品已拆封使用,不支持仅退款 ", actor="staff:8")

    assert shopper_sees(declined) == [("REQUESTED", "user:1", "broken"),
                                      ("REJECTED", "staff", "request declined: 商品已拆封使用,不支持仅退款")]
    assert staff_see(declined)[-1] == ("REJECTED", "staff:8", STAFF_WORDS[1], True,
                                       "request declined: 商品已拆封使用,不支持仅退款")


def test_a_decision_without_words_for_the_shopper_shows_them_the_fixed_wording_alone(shop: Shop) -> None:
    order = delivered(shop, (101, 1), (102, 1))
    first, second = (ask(shop, order, {line.id: 1}, kind=kind) for line, kind in zip(
        order.lines, ("refund_only", "return_refund"), strict=True))
    uow = lambda: shop.uow  # noqa: E731

    rejected = aftersales.decide(uow, FakeRefunder(), case_id=first.id, approve=False, reason=STAFF_WORDS[1],
                                 actor="staff:8")
    approved = aftersales.decide(uow, FakeRefunder(), case_id=second.id, approve=True, reason=STAFF_WORDS[0],
                                 actor="staff:8")

    assert shopper_sees(rejected)[-1] == ("REJECTED", "staff", "request declined")
    assert shopper_sees(approved)[-1] == ("AWAITING_RETURN", "staff", "return approved: please send the goods back")


def test_a_return_received_whose_refund_failed_and_was_retried_shows_the_shopper_each_step_in_the_shops_words(
        shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1}, kind="return_refund")
    uow = lambda: shop.uow  # noqa: E731
    aftersales.decide(uow, FakeRefunder(), case_id=case.id, approve=True, reason=STAFF_WORDS[0], actor="staff:8")
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="ZTO", tracking_no="R1")
    with pytest.raises(Conflict):
        aftersales.receive_return(uow, FakeRefunder(fail=Conflict("REFUND_EXCEEDS_PAID", "too much")),
                                  case_id=case.id, note=STAFF_WORDS[2], actor="staff:9")

    done = aftersales.retry_refund(uow, FakeRefunder(), case_id=case.id, actor="staff:8")

    assert shopper_sees(done) == [
        ("REQUESTED", "user:1", "broken"), ("AWAITING_RETURN", "staff", "return approved: please send the goods back"),
        ("RETURN_SHIPPED", "user:1", "ZTO R1"), ("REFUNDING", "staff", "returned goods received"),
        ("REFUND_FAILED", "staff", "the refund did not go through: customer service will follow up"),
        ("REFUNDING", "staff", "refund started again"), ("REFUNDED", "refund:RF1", "refunded")]
    assert [(actor, reason) for _, actor, reason, _, _ in staff_see(done)] == [
        ("user:1", "broken"), ("staff:8", STAFF_WORDS[0]), ("user:1", "ZTO R1"), ("staff:9", STAFF_WORDS[2]),
        ("staff:9", "REFUND_EXCEEDS_PAID: too much"), ("staff:8", "refund again"), ("refund:RF1", "refunded")]


def test_a_refund_held_at_wechat_pay_tells_the_shopper_it_is_held_not_what_staff_should_do(shop: Shop) -> None:
    payments = FakeRefundPayments()
    _, case = abnormal_case(shop, payments)

    [*_, held] = staff_see(case)

    assert held[0] == "REFUND_ABNORMAL" and "close the refund" in held[2]
    assert shopper_sees(case)[-1] == ("REFUND_ABNORMAL", f"refund:{case.refund_no}",
                                      "the refund is held up at WeChat Pay: customer service is handling it")


def test_the_shoppers_own_words_and_those_written_for_them_are_shown_as_they_are(shop: Shop) -> None:
    order = delivered(shop, (101, 1), (102, 1))
    mine, late = (ask(shop, order, {line.id: 1}, kind="return_refund") for line in order.lines)
    uow = lambda: shop.uow  # noqa: E731
    aftersales.decide(uow, FakeRefunder(), case_id=late.id, approve=True, reason="ok", actor="staff:8", now=NOW)

    withdrawn = aftersales.withdraw_case(shop.uow, user_id=1, case_id=mine.id, reason="又想要了")
    aftersales.expire_returns(shop.uow, AfterSaleSettings(return_ship_days=7), now=NOW + timedelta(days=7))
    expired = aftersales.get_case(shop.uow, user_id=1, case_id=late.id)

    assert shopper_sees(withdrawn)[-1] == ("WITHDRAWN", "user:1", "又想要了")
    assert shopper_sees(expired)[-1] == ("WITHDRAWN", "system",
                                         "the goods were not sent back within 7 days of approval")


def test_a_step_recorded_without_its_audience_is_for_staff_only(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})
    case.history.append(CaseStep(status="REQUESTED", actor="staff:8", at=NOW, reason=STAFF_WORDS[0]))

    assert shopper_sees(case) == [("REQUESTED", "user:1", "broken")]
    assert len(staff_see(case)) == 2


def test_every_kind_of_step_has_a_wording_for_the_shopper_that_is_not_a_staff_note() -> None:
    actions = {action for _, action in CASE_TRANSITIONS}

    assert actions == set(SHOPPER_WORDS)
    assert all(words and "staff" not in words and "retry it" not in words for words in SHOPPER_WORDS.values())
