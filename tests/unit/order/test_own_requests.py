"""Separation of duties (on fakes): a staff member who shops too never decides on their own order, after-sales case
or wallet charge (OWN_REQUEST, 403, nothing changed); another staff member decides it as usual."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mall.order.v1 import after_sale_pb2

from services.common.auth import Caller, Role, caller_var
from services.common.errors import DomainError, ErrorKind, Forbidden
from services.order import aftersales, refunds, service
from services.order.domain import Order
from services.order.grpc_api import AfterSaleServicer
from tests.unit.order.conftest import NOW, Shop, paid_order
from tests.unit.order.test_aftersales import SETTINGS, FakeRefunder, ask, delivered
from tests.unit.order.test_wallet_payment import PAYABLE, unpaid
from tests.unit.order.test_wallet_reviews import BOB, left_for_staff, resolve

SHOPPER = 1  # a customer-service member's own account: they shop with it too
THEMSELVES = f"staff:{SHOPPER}"
COLLEAGUE = "staff:8"


def refused_as_own(decision: object) -> Forbidden:
    with pytest.raises(Forbidden) as refused:
        decision()  # type: ignore[operator]
    assert refused.value.code == "OWN_REQUEST"
    return refused.value


def steps(record: Order | aftersales.AfterSale) -> list[tuple[str, str]]:
    return [(step.status, step.actor) for step in record.history]


@pytest.mark.parametrize("approve", [True, False])
def test_staff_cannot_decide_their_own_after_sales_case_and_it_stays_requested(shop: Shop, approve: bool) -> None:
    order = delivered(shop, (101, 1), user_id=SHOPPER)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, user_id=SHOPPER)
    refunder = FakeRefunder()

    refused_as_own(lambda: aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=approve,
                                             reason="ok", actor=THEMSELVES, now=NOW + timedelta(days=4)))

    kept = aftersales.get_case(shop.uow, user_id=None, case_id=case.id or 0)
    assert (kept.status, steps(kept), kept.refund_no, refunder.calls) == (
        "REQUESTED", [("REQUESTED", f"user:{SHOPPER}")], "", [])
    assert (order.refunded_fen, shop.members.balance_refunds) == (0, {})


def test_another_staff_member_approves_the_case_and_the_refund_runs(shop: Shop) -> None:
    order = delivered(shop, (101, 1), user_id=SHOPPER)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, user_id=SHOPPER)
    engine = aftersales.EngineRefunder(None, shop.members)  # paid from the wallet: refunded at once

    done = aftersales.decide(lambda: shop.uow, engine, case_id=case.id, approve=True, reason="ok", actor=COLLEAGUE,
                             now=NOW + timedelta(days=4))

    assert (done.status, order.refunded_fen, sum(shop.members.balance_refunds.values())) == ("REFUNDED", 1999, 1999)


def test_the_servicer_takes_the_decider_from_the_callers_token(shop: Shop) -> None:
    order = delivered(shop, (101, 1), user_id=SHOPPER)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, user_id=SHOPPER)
    refunder = FakeRefunder()
    servicer = AfterSaleServicer(lambda: shop.uow, refunder, SETTINGS)
    token = caller_var.set(Caller(user_id=SHOPPER, roles=frozenset({Role.CUSTOMER_SERVICE}), token_id="t", token="x"))
    try:
        refused_as_own(lambda: servicer.DecideAfterSale(after_sale_pb2.DecideAfterSaleRequest(
            id=case.id or 0, approve=True, reason="ok"), None))  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (case.status, refunder.calls, order.refunded_fen) == ("REQUESTED", [], 0)


def test_staff_cannot_receive_the_return_of_their_own_case_so_no_refund_runs(shop: Shop) -> None:
    order = delivered(shop, (101, 1), user_id=SHOPPER)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, kind="return_refund", user_id=SHOPPER)
    refunder = FakeRefunder()
    aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=True, reason="send it", actor=COLLEAGUE)
    aftersales.submit_return_shipment(shop.uow, user_id=SHOPPER, case_id=case.id or 0, carrier="SF", tracking_no="R1")
    returned = len(shop.uow.published)

    refused_as_own(lambda: aftersales.receive_return(lambda: shop.uow, refunder, case_id=case.id, note="intact",
                                                     actor=THEMSELVES))

    kept = aftersales.get_case(shop.uow, user_id=None, case_id=case.id or 0)
    assert (kept.status, refunder.calls, len(shop.uow.published), order.refunded_fen) == (
        "RETURN_SHIPPED", [], returned, 0)
    received = aftersales.receive_return(lambda: shop.uow, refunder, case_id=case.id, note="intact", actor="staff:9")
    assert (received.status, len(refunder.calls)) == ("REFUNDED", 1)


def test_staff_cannot_retry_the_failed_refund_of_their_own_case_so_no_second_refund_starts(shop: Shop) -> None:
    # A colleague approved it; the refund was closed (say the shopper was paid another way, or WeChat Pay refused it):
    # a retry of a REFUND_FAILED case starts a new refund, paying out money as receiving does.
    order = delivered(shop, (101, 1), user_id=SHOPPER)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, user_id=SHOPPER)
    aftersales.decide(lambda: shop.uow, FakeRefunder(settle=False), case_id=case.id, approve=True, reason="ok",
                      actor=COLLEAGUE)
    refunder = FakeRefunder()

    refused_as_own(lambda: aftersales.retry_refund(lambda: shop.uow, refunder, case_id=case.id, actor=THEMSELVES))

    kept = aftersales.get_case(shop.uow, user_id=None, case_id=case.id or 0)
    assert (kept.status, steps(kept)[-1], refunder.calls) == ("REFUND_FAILED", ("REFUND_FAILED", "refund:RF1"), [])
    retried = aftersales.retry_refund(lambda: shop.uow, refunder, case_id=case.id, actor="staff:9")
    assert (retried.status, len(refunder.calls)) == ("REFUNDED", 1)


def test_staff_cannot_push_a_refund_of_their_own_order_along_by_its_number(shop: Shop) -> None:
    order = delivered(shop, (101, 1), user_id=SHOPPER)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, user_id=SHOPPER)
    shop.members.refund_error = DomainError("MEMBER_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)
    engine = aftersales.EngineRefunder(None, shop.members)
    aftersales.decide(lambda: shop.uow, engine, case_id=case.id, approve=True, reason="ok", actor=COLLEAGUE)
    shop.members.refund_error = None
    refund_no = aftersales.get_case(shop.uow, user_id=None, case_id=case.id or 0).refund_no

    refused_as_own(lambda: refunds.staff_retry_refund(lambda: shop.uow, None, shop.members, refund_no=refund_no,
                                                      actor=THEMSELVES))

    assert (shop.uow.refunds.get(refund_no).status, shop.members.balance_refunds) == ("PENDING", {})
    refunds.staff_retry_refund(lambda: shop.uow, None, shop.members, refund_no=refund_no, actor=COLLEAGUE)
    assert (shop.uow.refunds.get(refund_no).status, shop.members.balance_refunds) == ("SUCCESS", {refund_no: 1999})


@pytest.mark.parametrize("approve", [True, False])
def test_staff_cannot_review_the_cancellation_of_their_own_paid_order(shop: Shop, approve: bool) -> None:
    order = paid_order(shop, (101, 1), user_id=SHOPPER)
    service.cancel_order(shop.uow, user_id=SHOPPER, order_id=order.id or 0, reason="买错了", now=NOW)
    published = len(shop.uow.published)

    refused_as_own(lambda: refunds.review_cancellation(shop.uow, None, shop.members, order_id=order.id or 0,
                                                       approve=approve, reason="同意", actor=THEMSELVES, now=NOW))

    kept = service.get_order(shop.uow, user_id=None, order_id=order.id or 0)
    assert (kept.status, kept.refunded_fen, shop.uow.refunds.for_order(order.id or 0)) == ("CANCEL_REQUESTED", 0, [])
    assert (shop.members.balance_refunds, len(shop.uow.published)) == ({}, published)
    reviewed = refunds.review_cancellation(shop.uow, None, shop.members, order_id=order.id or 0, approve=True,
                                           reason="同意", actor=COLLEAGUE, now=NOW)
    assert (reviewed.status, reviewed.refunded_fen) == ("REFUNDED", 1999)


def test_staff_cannot_cancel_the_unshipped_units_of_their_own_order(shop: Shop) -> None:
    order = paid_order(shop, (101, 2), user_id=SHOPPER)
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="SF1",
                       lines={order.lines[0].id or 0: 1}, actor="staff:7", now=NOW)
    published = len(shop.uow.published)

    def cancel(actor: str) -> Order:
        return refunds.cancel_unshipped(shop.uow, None, shop.members, order_id=order.id or 0, reason="停产",
                                        shopper_reason="", actor=actor, idempotency_key=f"key-{actor}",
                                        request_fingerprint=b"stopped", now=NOW + timedelta(days=1))

    refused_as_own(lambda: cancel(THEMSELVES))

    kept = service.get_order(shop.uow, user_id=None, order_id=order.id or 0)
    assert (kept.status, kept.refunded_fen, shop.uow.refunds.for_order(order.id or 0)) == ("PAID", 0, [])
    assert (shop.members.balance_refunds, len(shop.uow.published)) == ({}, published)
    assert (cancel(COLLEAGUE).status, sum(shop.members.balance_refunds.values())) == ("SHIPPED", 1999)


@pytest.mark.parametrize("resolution", ["credit_back", "handled"])
def test_staff_cannot_resolve_a_charge_of_their_own_wallet(shop: Shop, resolution: str) -> None:
    review = left_for_staff(shop, unpaid(shop))  # BOB's wallet paid the order of user 1

    refused_as_own(lambda: resolve(shop, review, resolution, actor=f"staff:{BOB}"))

    kept = shop.uow.wallet_reviews.get(review.id or 0)
    assert kept is not None
    assert (kept.status, kept.resolved_by, shop.members.balance_refunds) == ("OPEN", "", {})
    resolved = resolve(shop, review, resolution, actor=COLLEAGUE)
    credited = {f"LATEW{review.order_no}": PAYABLE}  # back to BOB's wallet, in full
    assert (resolved.status, resolved.resolved_by, shop.members.balance_refunds) == {
        "credit_back": ("CREDITED", COLLEAGUE, credited), "handled": ("HANDLED", COLLEAGUE, {})}[resolution]


def test_staff_cannot_resolve_a_wallet_charge_for_their_own_order(shop: Shop) -> None:
    review = left_for_staff(shop, unpaid(shop))  # the order is user 1's

    refused_as_own(lambda: resolve(shop, review, "credit_back", actor=THEMSELVES))

    assert (review.status, shop.members.balance_refunds) == ("OPEN", {})
