"""Cancellation review (O5) by customer service, cancelling a partly shipped order's unshipped units, retrying and
closing refunds stuck at the channel, and WeChat Pay's refund notify (refunds through the paying channel)."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint
from mall.order.v1 import order_pb2
from mall.order.v1.order_pb2_grpc import OrderServiceStub
from pydantic import Field

from gateway.api import PUBLIC, Body, Page, Reply, operation, service
from gateway.routes.orders import (
    NOTIFY_RESPONSES,
    PAID_AFTER_CLOSE,
    AdminOrderOut,
    NotifyAnswer,
    RefundStatus,
    StaffSearchQuery,
    created_between,
    forward_notify,
    paid_after_close_at,
    utc_time,
)
from services.common import formats
from services.common.auth import REFUND_CLOSERS, REFUND_DECIDERS, REFUND_READERS, REFUND_RETRIERS

bp = Blueprint("refunds", __name__, url_prefix="/api/v1")

class CancelReviewIn(Body):
    """Approve: REFUNDING, the whole order refunded through its channel (REFUNDED once it arrives), stock released.
    Reject: back to PAID. The reason is kept in the order's history for staff; the shopper reads "cancellation
    approved" or "cancellation declined"."""

    approve: bool
    reason: str = Field("", max_length=255)


@bp.post("/admin/orders/<id:order_id>/cancel-review")
@operation(summary="Approve or reject a paid order's cancellation", tag="admin-orders", roles=REFUND_DECIDERS,
           body=CancelReviewIn, responses={200: AdminOrderOut},
           description="409 ORDER_STATE_CONFLICT (details.status) unless the order is CANCEL_REQUESTED; approving "
                       "a REFUNDING order whose refund was closed starts the refund again. 403 OWN_REQUEST on the "
                       "staff member's own order: another staff member reviews it.")
def review_cancellation(order_id: int, body: CancelReviewIn) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).ReviewCancellation(order_pb2.ReviewCancellationRequest(
        id=order_id, approve=body.approve, reason=body.reason)))


class CancelUnshippedIn(Body):
    """Why the units left to ship are given up (out of stock, discontinued): `reason` for staff, kept in the order's
    history with the units; the shopper reads "the units not shipped could not be supplied: they are cancelled and
    refunded", followed by `shopper_reason` when given."""

    reason: str = Field(min_length=1, max_length=255, description="staff only: never shown to the shopper")
    shopper_reason: str = Field("", max_length=formats.SHOPPER_REASON_MAX,
                                description="written for the shopper, who reads it after the step's wording")


@bp.post("/admin/orders/<id:order_id>/cancel-unshipped")
@operation(summary="Cancel and refund the units of a partly shipped order that will never ship", tag="admin-orders",
           roles=REFUND_DECIDERS, body=CancelUnshippedIn, responses={200: AdminOrderOut}, idempotent=True,
           description="For a PAID order with parcels whose other units cannot be supplied. In one step: every unit "
                       "not shipped is refunded its share of what was paid (after the level discount, coupon and "
                       "points, as after-sales refunds units; freight is not refunded, the parcels used it) through "
                       "the channel the order was paid with, recorded as refunded on its line, and put back on sale; "
                       "the order becomes SHIPPED (its auto-confirm clock starts now) with the step in the shopper's "
                       "history. The answer is the order (refunded_fen includes the refund, which may still be under "
                       "way at WeChat Pay). The same Idempotency-Key and body change nothing and answer the order as "
                       "it is; the same key with another body is 409 IDEMPOTENCY_KEY_REUSED. 409 "
                       "ORDER_STATE_CONFLICT (details.status, details.shipments) unless the order is PAID with at "
                       "least one parcel: a PAID order with none is cancelled whole (the shopper's cancellation and "
                       "its review, which also refunds the freight and gives back the coupon and points), a SHIPPED "
                       "one has nothing left to ship. Once the units are cancelled the route, under a new key, only helps "
                       "their refund along: one CLOSED (refused by WeChat Pay, or an ABNORMAL one closed) is started "
                       "anew for the same units, nothing restocked again; an ABNORMAL one is asked about again under "
                       "its number. 409 REFUND_REFUSED when WeChat Pay refuses the refund (the units stay cancelled, "
                       "the order SHIPPED, the money owed noted in its history for staff). 403 OWN_REQUEST on the "
                       "staff member's own order: another staff member cancels them.")
def cancel_unshipped(order_id: int, body: CancelUnshippedIn, idempotency_key: str) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).CancelUnshipped(order_pb2.CancelUnshippedRequest(
        id=order_id, reason=body.reason, shopper_reason=body.shopper_reason, idempotency_key=idempotency_key)))


class CloseRefundIn(Body):
    """Why the ABNORMAL refund is given up (kept in the order's history with who closed it, for staff only)."""

    reason: str = Field(min_length=1, max_length=255)


@bp.post("/admin/refunds/<no:refund_no>/close")
@operation(summary="Close an ABNORMAL WeChat Pay refund, freeing its amount for a new refund", tag="admin-orders",
           roles=REFUND_CLOSERS, body=CloseRefundIn, responses={200: AdminOrderOut},
           description="A refund WeChat Pay reports ABNORMAL (e.g. the shopper's card was cancelled) keeps its amount "
                       "reserved, since it can still be completed at WeChat Pay under the same refund number; staff "
                       "retry it there (after-sales retry-refund, or approving the cancellation again), or close it "
                       "here once it can no longer be paid. WeChat Pay is asked first: 409 REFUND_STATE_CONFLICT "
                       "(details.status) unless the refund is ABNORMAL (one WeChat Pay reports paid meanwhile is "
                       "settled SUCCESS instead; one it knows nothing of, made ABNORMAL because it refused it when "
                       "sent again, is closed); a retry of the refund under way (which may send it again) is "
                       "waited for, then the close sees its outcome (one it sent again without an answer is PENDING: "
                       "409); 404 REFUND_NOT_FOUND; 503 when WeChat Pay does not answer. The order is answered, the "
                       "closing in its history; an after-sales case waiting on the refund becomes REFUND_FAILED "
                       "(retry-refund then starts a new refund). A late payment's refund (LATE<out_trade_no>) "
                       "WeChat Pay itself closed is ABNORMAL too (its money never went back; the order's history says so): "
                       "close it once the money is returned another way.")
def close_refund(refund_no: str, body: CloseRefundIn) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).CloseRefund(order_pb2.CloseRefundRequest(
        refund_no=refund_no, reason=body.reason)))


@bp.post("/admin/refunds/<no:refund_no>/retry")
@operation(summary="Ask WeChat Pay (or the wallet) again about a PENDING or ABNORMAL refund", tag="admin-orders",
           roles=REFUND_RETRIERS, responses={200: AdminOrderOut},
           description="Under the same refund number, so nothing is refunded twice: a refund the merchant fixed at "
                       "WeChat Pay (ABNORMAL: PROCESSING makes it PENDING again, SUCCESS ends it), or one staff do "
                       "not want to leave to the fallback job. The only staff retry of a late payment's refund "
                       "(LATE<out_trade_no>: money for an order that could not take it, cancelled or paid otherwise), "
                       "whose order no cancellation review or after-sales case retries. A refund that has ended is "
                       "answered as it is; 404 REFUND_NOT_FOUND; 503 PAYMENT_CHANNEL_UNAVAILABLE when WeChat Pay "
                       "gives no usable answer: nothing changed, or (details.status PENDING) the refund was sent "
                       "again and the answer lost, so it is PENDING, not closable, until the fallback job learns "
                       "what became of it. The order is answered, any change in its history. 403 OWN_REQUEST on a "
                       "refund of the staff member's own order: another staff member retries it.")
def retry_refund(refund_no: str) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).RetryRefund(order_pb2.RetryRefundRequest(
        refund_no=refund_no)))


class RefundOut(Reply):
    """A refund as staff list it: where it stands at its channel, and who started it why."""

    refund_no: str = Field(description="what retry and close take")
    order_id: int
    order_no: str
    source: str = Field(description="after_sale:<case id>, cancel (an approved cancellation), cancel_unshipped, or "
                                    "late_payment (LATE<out_trade_no>: money the order could not take)")
    status: RefundStatus
    amount_fen: int
    channel: str = Field(description="wechat, balance, or none (0 fen)")
    reason: str = Field(description="why it was started, for staff")
    actor: str = Field(description="who started it: staff:<id>, user:<id>, reconciliation, ...")
    created_at: datetime
    updated_at: datetime = Field(description="its last change of status: ABNORMAL or PENDING since then")
    points_returned: int = Field(description="points the shopper spent on the refunded units, credited back to them "
                                             "when the refund succeeds (cancel_unshipped's; 0 for the others)")
    paid_after_close_at: datetime | None = Field(description=PAID_AFTER_CLOSE)

    @classmethod
    def from_proto(cls, refund: order_pb2.RefundSummary) -> RefundOut:
        return cls(refund_no=refund.refund_no, order_id=refund.order_id, order_no=refund.order_no,
                   source=refund.source, status=refund.status,  # type: ignore[arg-type]
                   amount_fen=refund.amount_fen, channel=refund.channel, reason=refund.reason, actor=refund.actor,
                   created_at=utc_time(refund.created_at), updated_at=utc_time(refund.updated_at),
                   points_returned=refund.points_returned, paid_after_close_at=paid_after_close_at(refund))


class RefundsQuery(StaffSearchQuery):
    status: RefundStatus | None = None
    source: str | None = Field(None, max_length=64, description="after_sale:<case id>, cancel, cancel_unshipped, "
                               "late_payment, or after_sale for every after-sales case's refund (the order service "
                               "knows them: 400 REFUND_SOURCE_INVALID otherwise)")


@bp.get("/admin/refunds")
@operation(summary="Refunds, those needing staff first (ABNORMAL, then PENDING, longest waiting first)",
           tag="admin-orders", roles=REFUND_READERS, query=RefundsQuery, responses={200: Page[RefundOut]},
           description="Where the AbnormalRefundWaiting and RefundPendingStuck alerts send staff. Without a status: "
                       "ABNORMAL refunds (WeChat Pay could not pay them back; only staff move one: retry it once "
                       "fixed at WeChat Pay, or an admin closes it), then PENDING ones (the fallback job asks about "
                       "those every few minutes; the longest waiting are those it gets no usable answer about), each "
                       "longest waiting first (updated_at, when it became so), then the ended ones (SUCCESS, CLOSED) "
                       "newest first. With a status, that order within it. created_from / created_to filter on "
                       "when the refund started. Finance read it; retrying and closing take the refund_no "
                       "(POST /admin/refunds/{refund_no}/retry, /close). 400 for a status, order_no or time not in "
                       "their format (details per field), REFUND_SOURCE_INVALID for an unknown source.")
def list_refunds(query: RefundsQuery) -> Page[RefundOut]:
    search = order_pb2.ListRefundsRequest(status=query.status or "", source=query.source or "",
                                          order_no=query.order_no or "", offset=query.offset, limit=query.page_size)
    created_between(search, query)
    found = service(OrderServiceStub).ListRefunds(search)
    return Page[RefundOut].of([RefundOut.from_proto(refund) for refund in found.refunds], query, found.total)


@bp.post("/payments/wechat/refund-notify")
@operation(summary="WeChat Pay refund notify (signed by WeChat Pay; raw JSON body)", tag="payments", access=PUBLIC,
           responses=NOTIFY_RESPONSES)
def wechat_refund_notify() -> tuple[NotifyAnswer, int]:
    return forward_notify(service(OrderServiceStub).HandleWechatRefundNotify)
