"""Wallet charges that cannot pay their order (on fakes): the wallet reconciliation leaves them for staff instead of
asking about them for ever, the order's history says so, and staff credit one back or mark it handled, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from services.order import service, wallet_reviews
from services.order.domain import Order
from services.order.grpc_api import OrderServicer
from services.order.ports import WalletCharge
from services.order.wallet_reviews import WalletReview
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.test_wallet_payment import DOWN, PAYABLE, SETTLED, pay, pay_unanswered, reconcile, unpaid

BOB = 2


def charged_by(shop: Shop, order: Order, *, user_id: int = BOB, amount_fen: int = PAYABLE) -> None:
    """The order's wallet payment answer was lost; the member service says `user_id`'s wallet paid `amount_fen`."""
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    shop.members.pay_answer_lost = None
    shop.members.user_id = user_id
    shop.members.balance_payments = [(order.order_no, amount_fen)]


def left_for_staff(shop: Shop, order: Order, **charge: int) -> WalletReview:
    charged_by(shop, order, **charge)
    assert reconcile(shop, NOW + SETTLED) == 1
    review = shop.uow.wallet_reviews.for_order(order.id or 0)
    assert review is not None
    return review


def resolve(shop: Shop, review: WalletReview, resolution: str, reason: str = "核实后处理",
            actor: str = "staff:9") -> WalletReview:
    return wallet_reviews.resolve_review(shop.uow, shop.members, review_id=review.id or 0, resolution=resolution,
                                         reason=reason, actor=actor, now=NOW + timedelta(hours=1))


def test_another_users_charge_is_left_for_staff_once_and_the_timeout_then_cancels_the_unpaid_order(
        shop: Shop) -> None:
    order = unpaid(shop)
    charged_by(shop, order)

    rounds = [reconcile(shop, NOW + SETTLED) for _ in range(2)]
    expired = service.expire_orders(shop.uow, now=order.pay_deadline)

    review = shop.uow.wallet_reviews.for_order(order.id or 0)
    assert (rounds, expired, order.status, order.wallet_attempt_at, shop.members.queried) == (
        [1, 0], 1, "CANCELLED", None, [order.order_no])
    assert review == WalletReview(order_id=order.id or 0, order_no=order.order_no, user_id=BOB, amount_fen=PAYABLE,
                                  order_user_id=1, payable_fen=PAYABLE, problem="OTHER_USERS_WALLET", status="OPEN",
                                  flagged_at=NOW + SETTLED, id=1)
    assert [(step.actor, step.reason) for step in order.history][1] == (
        "reconciliation", f"wallet charge of {PAYABLE} fen by user {BOB} cannot pay this order (OTHER_USERS_WALLET): "
                          "left for staff")
    assert shop.members.balance_refunds == {}  # the money waits for staff


def test_a_charge_of_another_amount_is_left_for_staff_with_the_reason(shop: Shop) -> None:
    order = unpaid(shop)

    review = left_for_staff(shop, order, user_id=1, amount_fen=PAYABLE - 1)

    assert (review.problem, review.user_id, review.amount_fen, review.payable_fen, order.status) == (
        "PAYMENT_AMOUNT_MISMATCH", 1, PAYABLE - 1, PAYABLE, "PENDING_PAYMENT")


def test_charges_left_for_staff_no_longer_fill_the_batch_so_a_newer_lost_answer_is_resolved(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = [unpaid(shop, key=f"stuck{n}") for n in range(2)]
    mine = unpaid(shop, key="mine")
    shop.members.balance_fen, shop.members.pay_answer_lost = 3 * PAYABLE, DOWN
    for n, order in enumerate([*stuck, mine]):  # the stuck ones are the oldest attempts
        pay_unanswered(shop, order, now=NOW + timedelta(seconds=n))
    charges = {order.order_no: WalletCharge(BOB, PAYABLE) for order in stuck} | {mine.order_no: WalletCharge(1, PAYABLE)}
    monkeypatch.setattr(shop.members, "void_balance_payment", charges.get)

    rounds = [service.reconcile_wallet_payments(lambda: shop.uow, shop.members, now=NOW + timedelta(minutes=1),
                                                batch=2) for _ in range(2)]

    assert (rounds, mine.status, [order.wallet_attempt_at for order in stuck]) == ([2, 1], "PAID", [None, None])
    assert shop.uow.wallet_reviews.count_open() == 2


def test_the_shopper_cannot_pay_from_the_wallet_an_order_whose_charge_is_with_staff(shop: Shop) -> None:
    order = unpaid(shop)
    left_for_staff(shop, order)
    shop.members.user_id = 1

    with pytest.raises(Conflict) as refused:
        pay(shop, order, now=NOW + timedelta(minutes=1))

    assert (refused.value.code, order.status, order.wallet_attempt_at) == (
        "WALLET_PAYMENT_UNDER_REVIEW", "PENDING_PAYMENT", None)
    assert shop.members.balance_payments == [(order.order_no, PAYABLE)]  # nothing more was asked of the wallet


def test_staff_credit_the_charge_back_to_the_wallet_it_came_from_once(shop: Shop) -> None:
    order = unpaid(shop)
    review = left_for_staff(shop, order)
    refund_no = f"LATEW{order.order_no}"
    refunded = []
    credit = shop.members.refund_to_balance
    shop.members.refund_to_balance = lambda *args: (refunded.append(args), credit(*args))[1]  # type: ignore[method-assign]

    first = resolve(shop, review, "credit_back", reason="不是本人订单")
    again = resolve(shop, review, "credit_back", reason="再点一次")

    assert (first.status, first.refund_no, first.resolved_by, first.note, first.resolved_at) == (
        "CREDITED", refund_no, "staff:9", "不是本人订单", NOW + timedelta(hours=1))
    assert again is not None and again.note == "不是本人订单"
    assert refunded == [(refund_no, order.order_no, BOB, PAYABLE)]  # once, to Bob's wallet
    assert shop.members.balance_refunds == {refund_no: PAYABLE}
    assert [(step.actor, step.reason) for step in order.history if step.actor.startswith("staff")] == [
        ("staff:9", f"wallet charge of {PAYABLE} fen by user {BOB} credited back ({refund_no}): 不是本人订单")]
    with pytest.raises(Conflict) as resolved:
        resolve(shop, review, "handled")
    assert (resolved.value.code, resolved.value.details) == ("WALLET_REVIEW_RESOLVED", {"status": "CREDITED"})


def test_staff_mark_a_charge_handled_with_why_and_nothing_is_credited(shop: Shop) -> None:
    order = unpaid(shop)
    review = left_for_staff(shop, order)

    handled = resolve(shop, review, "handled", reason="已线下退款给用户2", actor="staff:5")

    assert (handled.status, handled.refund_no, handled.resolved_by, shop.members.balance_refunds) == (
        "HANDLED", "", "staff:5", {})
    assert order.history[-1].actor == "staff:5" and order.history[-1].reason == (
        f"wallet charge of {PAYABLE} fen by user {BOB} marked handled: 已线下退款给用户2")
    with pytest.raises(Conflict):
        resolve(shop, review, "credit_back")
    assert shop.members.balance_refunds == {} and shop.uow.wallet_reviews.count_open() == 0


def test_a_credit_back_the_member_service_does_not_take_changes_nothing(shop: Shop) -> None:
    order = unpaid(shop)
    review = left_for_staff(shop, order)
    steps = len(order.history)
    shop.members.refund_error = DOWN

    with pytest.raises(DomainError) as down:
        resolve(shop, review, "credit_back")

    assert (down.value.code, review.status, len(order.history), shop.uow.wallet_reviews.count_open()) == (
        "MEMBER_UNAVAILABLE", "OPEN", steps, 1)


@pytest.mark.parametrize(("resolution", "reason", "code"), [("credit_back", "  ", "WALLET_REVIEW_REASON_REQUIRED"),
                                                            ("refund", "why", "RESOLUTION_INVALID")])
def test_a_resolution_needs_a_known_kind_and_a_reason(shop: Shop, resolution: str, reason: str, code: str) -> None:
    review = left_for_staff(shop, unpaid(shop))

    with pytest.raises(InvalidInput) as refused:
        resolve(shop, review, resolution, reason=reason)

    assert (refused.value.code, review.status, shop.members.balance_refunds) == (code, "OPEN", {})


def test_an_unknown_review_is_not_found(shop: Shop) -> None:
    with pytest.raises(NotFound) as missing:
        wallet_reviews.resolve_review(shop.uow, shop.members, review_id=99, resolution="handled", reason="?",
                                      actor="staff:9")
    assert missing.value.code == "WALLET_REVIEW_NOT_FOUND"


def test_reviews_are_listed_oldest_first_by_status(shop: Shop) -> None:
    first, second = (left_for_staff(shop, unpaid(shop, key=key)) for key in ("a", "b"))
    resolve(shop, first, "handled")

    assert wallet_reviews.list_reviews(shop.uow, status="", offset=0, limit=10) == ([first, second], 2)
    assert wallet_reviews.list_reviews(shop.uow, status="OPEN", offset=0, limit=10) == ([second], 1)
    with pytest.raises(InvalidInput):
        wallet_reviews.list_reviews(shop.uow, status="open", offset=0, limit=10)


@pytest.mark.parametrize("role", ["customer_service", "operator", ""])
def test_only_finance_and_admins_may_resolve_a_review_through_the_servicer(shop: Shop, role: str) -> None:
    review = left_for_staff(shop, unpaid(shop))
    servicer = OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)
    token = caller_var.set(Caller(user_id=8, roles=frozenset(filter(None, [role])), token_id="t", token="x"))
    try:
        with pytest.raises(Forbidden):
            servicer.ResolveWalletReview(order_pb2.ResolveWalletReviewRequest(
                id=review.id or 0, resolution="credit_back", reason="?"), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)
    assert (review.status, shop.members.balance_refunds) == ("OPEN", {})


def test_the_payment_backlog_counts_overdue_unpaid_orders_by_what_they_wait_for_and_charges_for_staff(
        shop: Shop) -> None:
    left_for_staff(shop, unpaid(shop, key="a"))  # its order, unpaid, waits for nothing now
    waiting_wallet, waiting_wechat, young = (unpaid(shop, key=key) for key in "bcd")
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, waiting_wallet)
    waiting_wechat.prepaid_at = NOW
    young.pay_deadline = NOW + timedelta(hours=1)
    overdue = waiting_wallet.pay_deadline + service.OVERDUE

    backlog = service.payment_backlog(shop.uow, now=overdue)

    assert backlog == service.PaymentBacklog({"wallet": 1, "wechat": 1, "none": 1}, 1)
    assert service.payment_backlog(shop.uow, now=overdue - timedelta(seconds=1)).unpaid_overdue == {}
