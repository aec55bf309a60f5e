"""Wallet charges the wallet reconciliation cannot settle (another user's wallet paid for the order, or another
amount), left for staff: kept for audit, listed, and resolved once - credited back or marked handled - with who
and why in the order's history."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from services.common.auth import refuse_own
from services.common.db import utcnow
from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.formats import staff_user_id
from services.common.order_steps import StepKind
from services.order.domain import Order, plain
from services.order.ports import Members, WalletCharge
from services.order.uow import OrderUnitOfWork

OTHER_USERS_WALLET = "OTHER_USERS_WALLET"  # the problem when the wallet charged is not the order's shopper's
RESOLUTIONS = ("credit_back", "handled")


class ReviewStatus(enum.StrEnum):
    OPEN = "OPEN"          # waiting for staff
    CREDITED = "CREDITED"  # staff had the charge credited back to the wallet it came from
    HANDLED = "HANDLED"    # staff settled it another way, and said how


@dataclass
class WalletReview:
    """A wallet charge for an order that cannot settle it: whose wallet paid how much, and what the order expected.
    One per order (the member service takes one wallet charge per order number)."""

    order_id: int
    order_no: str
    user_id: int  # whose wallet was charged
    amount_fen: int
    order_user_id: int
    payable_fen: int
    problem: str  # OTHER_USERS_WALLET, PAYMENT_AMOUNT_MISMATCH, or the code that refused settling it
    status: str
    flagged_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str = ""
    note: str = ""
    refund_no: str = ""  # CREDITED: the wallet refund that returned the charge
    id: int | None = None


def credit_back_no(order_no: str) -> str:
    """The refund number that returns an order's wallet charge, whoever asks (refund_late_wallet_payment too): the
    member service credits one number once, so the charge cannot come back twice."""
    return f"LATEW{order_no}"[:64]


def leave_for_staff(uow: OrderUnitOfWork, *, order_no: str, attempt_at: datetime, charge: WalletCharge, problem: str,
                    now: datetime) -> bool:
    """The wallet attempt started at `attempt_at` charged `charge`, which cannot settle the order: it becomes a review
    for staff, noted in the order's history, and the attempt is resolved (it leaves the reconciliation's batches;
    the payment timeout may cancel the unpaid order, which this charge never paid). Under the order row's lock, so
    replicas record it once. False when a newer attempt started meanwhile (it is asked about on its own)."""
    with uow:
        order = uow.orders.by_order_no(order_no, lock=True)
        if order is None or order.id is None or order.wallet_attempt_at != attempt_at:
            uow.commit()
            return False
        order.wallet_attempt_at = None
        if uow.wallet_reviews.for_order(order.id) is None:
            uow.wallet_reviews.add(WalletReview(
                order_id=order.id, order_no=order_no, user_id=charge.user_id, amount_fen=charge.amount_fen,
                order_user_id=order.user_id, payable_fen=order.payable_fen, problem=problem,
                status=ReviewStatus.OPEN.value, flagged_at=now))
            order.record_step(kind=StepKind.PAYMENT_NOTE, actor="reconciliation", now=now,
                              reason=f"wallet charge of {charge.amount_fen} fen by user {charge.user_id} cannot pay "
                                     f"this order ({problem}): left for staff", shopper=False)
        uow.commit()
    return True


def wallet_payment_under_review(order: Order) -> Conflict:
    return Conflict("WALLET_PAYMENT_UNDER_REVIEW", "a wallet charge of this order is with customer service; "
                    "pay with WeChat Pay", details={"status": order.status})


def list_reviews(uow: OrderUnitOfWork, *, status: str, offset: int, limit: int) -> tuple[list[WalletReview], int]:
    """Reviews in `status` ("" = any), oldest first, and how many there are."""
    if status and status not in ReviewStatus.__members__:
        raise InvalidInput("STATUS_INVALID", "unknown review status", details={"status": "invalid"})
    with uow:
        found = uow.wallet_reviews.search(status=status, offset=offset, limit=limit)
        uow.commit()
    return found


def resolve_review(uow: OrderUnitOfWork, members: Members, *, review_id: int, resolution: str, reason: str,
                   actor: str, now: datetime | None = None) -> WalletReview:
    """Staff resolve an OPEN review, once: `credit_back` has the member service credit the charge to the wallet it
    came from (refund `credit_back_no`, once however often asked), `handled` records that it was settled another
    way. Who and why go into the review and the order's history. The same resolution again answers the review as
    it is; another one is WALLET_REVIEW_RESOLVED (409). A credit back the member service does not take changes
    nothing here (its error is answered, e.g. 503). Never by a staff member whose own wallet was charged or whose
    own order it is (`actor` is "staff:<id>"): OWN_REQUEST (403), nothing credited or recorded."""
    now = now or utcnow()
    why = plain(reason, 255)
    if resolution not in RESOLUTIONS:
        raise InvalidInput("RESOLUTION_INVALID", "resolution must be credit_back or handled",
                           details={"resolution": "invalid"})
    if not why:
        raise InvalidInput("WALLET_REVIEW_REASON_REQUIRED", "say why", details={"reason": "1-255 characters"})
    target = ReviewStatus.CREDITED if resolution == "credit_back" else ReviewStatus.HANDLED
    with uow:
        review = uow.wallet_reviews.get(review_id)
        uow.commit()
    if review is None:
        raise NotFound("WALLET_REVIEW_NOT_FOUND", "no such wallet review")
    for owner in (review.user_id, review.order_user_id):
        refuse_own(staff_user_id(actor), owner)
    if review.status != ReviewStatus.OPEN:
        return _resolved(review, target)
    refund_no = ""
    if target == ReviewStatus.CREDITED:
        refund_no = credit_back_no(review.order_no)
        members.refund_to_balance(refund_no, review.order_no, review.user_id, review.amount_fen)
    with uow:
        order = uow.orders.get(review.order_id, lock=True)  # one resolution of the order's review at a time
        review = uow.wallet_reviews.get(review_id)
        assert order is not None and review is not None  # neither is ever deleted
        # A credit made while another resolution won is recorded all the same: the money went back.
        if review.status == ReviewStatus.OPEN or (refund_no and review.status != ReviewStatus.CREDITED):
            _resolve(order, review, target, refund_no=refund_no, why=why, actor=actor, now=now)
            if refund_no:
                _publish_credit_back(uow, order, review, now)
            uow.commit()
            return review
        uow.commit()
    return _resolved(review, target)


# What late-payment-received says of a wallet charge staff reviewed: it could not pay the order (another user's
# wallet, another amount), whatever the order's state (services/analytics/README.md, the money ledger).
REVIEWED_CHARGE = "cannot_pay"


def _publish_credit_back(uow: OrderUnitOfWork, order: Order, review: WalletReview, now: datetime) -> None:
    """A reviewed charge credited back reaches the money ledger as a wallet late payment does (refund_late_wallet_
    payment): the charge and its credit back, both known only now, to the wallet that paid; once, with the review's
    one change to CREDITED. Neither is order-paid nor order-refunded: it never paid the order."""
    from services.order import service  # service builds on this module: imported when a credit back needs it
    service.publish_wallet_credit_back(uow, order, amount_fen=review.amount_fen, refund_no=review.refund_no, now=now,
                                       user_id=review.user_id, reason=REVIEWED_CHARGE)


def _resolved(review: WalletReview, target: ReviewStatus) -> WalletReview:
    if review.status != target:
        raise Conflict("WALLET_REVIEW_RESOLVED", f"this review is already {review.status}",
                       details={"status": review.status})
    return review


def _resolve(order: Order, review: WalletReview, target: ReviewStatus, *, refund_no: str, why: str, actor: str,
             now: datetime) -> None:
    review.status, review.resolved_at, review.resolved_by, review.note = target.value, now, actor, why
    charge = f"wallet charge of {review.amount_fen} fen by user {review.user_id}"
    if refund_no:
        review.refund_no = refund_no
        order.record_step(kind=StepKind.PAYMENT_NOTE, actor=actor, now=now, shopper=False,
                          reason=f"{charge} credited back ({refund_no}): {why}")
    else:
        order.record_step(kind=StepKind.PAYMENT_NOTE, actor=actor, now=now, shopper=False,
                          reason=f"{charge} marked handled: {why}")
