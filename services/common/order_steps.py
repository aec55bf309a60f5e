"""The kinds of an order history's steps: the closed set clients read (Transition.kind, REST history[].kind).

`reason` is free text (English wording, a payment channel, the shopper's or staff's own words); `kind` is what a
client switches on to show the step in its own language. Each is documented once here, in the README's order history
section and in the OpenAPI schema (both built from or checked against STEP_KINDS). A new kind is a contract change.
"""

from __future__ import annotations

import enum


class StepKind(enum.StrEnum):
    PLACED = "placed"
    PAID = "paid"
    CANCELLED_BY_SHOPPER = "cancelled_by_shopper"
    CANCELLED_UNPAID_TIMEOUT = "cancelled_unpaid_timeout"
    CANCELLED_PAID_TOO_LATE = "cancelled_paid_too_late"
    CANCEL_REQUESTED = "cancel_requested"
    CANCEL_APPROVED = "cancel_approved"
    CANCEL_REJECTED = "cancel_rejected"
    PARTLY_SHIPPED = "partly_shipped"
    SHIPPED = "shipped"
    UNSHIPPED_CANCELLED = "unshipped_cancelled"
    RECEIVED = "received"
    AUTO_COMPLETED = "auto_completed"
    REFUNDED_IN_FULL = "refunded_in_full"
    CLOSED = "closed"
    REFUND_NOTE = "refund_note"
    PAYMENT_NOTE = "payment_note"


K = StepKind

# What each kind means, in the order the README lists them. Every kind but the two notes is shown to the shopper.
STEP_KINDS: dict[StepKind, str] = {
    K.PLACED: "the shopper placed the order (PENDING_PAYMENT)",
    K.PAID: "paid (PAID); reason is the channel: wechat | balance",
    K.CANCELLED_BY_SHOPPER: "the shopper cancelled it before paying (CANCELLED); reason is their own words",
    K.CANCELLED_UNPAID_TIMEOUT: "not paid by its deadline: cancelled (CANCELLED)",
    K.CANCELLED_PAID_TOO_LATE: "a payment came after it stopped being payable: cancelled, the payment refunded "
                               "(CANCELLED)",
    K.CANCEL_REQUESTED: "the shopper asked to cancel the paid order (CANCEL_REQUESTED); reason is their own words",
    K.CANCEL_APPROVED: "staff approved the cancellation: refund under way (REFUNDING)",
    K.CANCEL_REJECTED: "staff declined the cancellation: the order goes ahead (PAID)",
    K.PARTLY_SHIPPED: "a parcel left, other units are still to ship (status unchanged: PAID)",
    K.SHIPPED: "the last units left (SHIPPED); reason is carrier and tracking number",
    K.UNSHIPPED_CANCELLED: "staff cancelled the units that will never ship, refunded; the rest has shipped (SHIPPED)",
    K.RECEIVED: "the shopper confirmed receipt (COMPLETED)",
    K.AUTO_COMPLETED: "receipt confirmed automatically once the confirm window passed (COMPLETED)",
    K.REFUNDED_IN_FULL: "everything paid was refunded (REFUNDED)",
    K.CLOSED: "closed (CLOSED)",
    K.REFUND_NOTE: "staff only: a note on one of the order's refunds (stuck, closed, paid after its close, started "
                   "again); status unchanged",
    K.PAYMENT_NOTE: "staff only: a note on a payment the order could not take (paid late or twice, a wallet charge "
                    "under review, credited back or handled); status unchanged",
}

def described() -> str:
    """The closed set as one line per kind, for an API description."""
    return "; ".join(f"{kind.value}: {meaning}" for kind, meaning in STEP_KINDS.items())
