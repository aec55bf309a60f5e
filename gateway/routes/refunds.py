"""Cancellation review (O5) by customer service, cancelling a partly shipped order's unshipped units, retrying and
closing refunds stuck at the channel, and WeChat Pay's refund notify (refunds through the paying channel)."""

from __future__ import annotations

from flask import Blueprint
from mall.order.v1 import order_pb2
from mall.order.v1.order_pb2_grpc import OrderServiceStub
from pydantic import Field

from gateway.api import PUBLIC, Body, operation, service
from gateway.routes.orders import NOTIFY_RESPONSES, ORDER_STAFF, AdminOrderOut, NotifyAnswer, forward_notify
from services.common import formats
from services.common.auth import Role

bp = Blueprint("refunds", __name__, url_prefix="/api/v1")

CANCEL_REVIEWERS = (Role.CUSTOMER_SERVICE, Role.ADMIN)
REFUND_CLOSERS = (Role.ADMIN,)
REFUND_RETRIERS = (Role.ADMIN, Role.CUSTOMER_SERVICE)


class CancelReviewIn(Body):
    """Approve: REFUNDING, the whole order refunded through its channel (REFUNDED once it arrives), stock released.
    Reject: back to PAID. The reason is kept in the order's history for staff; the shopper reads "cancellation
    approved" or "cancellation declined"."""

    approve: bool
    reason: str = Field("", max_length=255)


@bp.post("/admin/orders/<id:order_id>/cancel-review")
@operation(summary="Approve or reject a paid order's cancellation", tag="admin-orders", roles=CANCEL_REVIEWERS,
           body=CancelReviewIn, responses={200: AdminOrderOut},
           description="409 ORDER_STATE_CONFLICT (details.status) unless the order is CANCEL_REQUESTED; approving "
                       "a REFUNDING order whose refund was closed starts the refund again.")
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
           roles=ORDER_STAFF, body=CancelUnshippedIn, responses={200: AdminOrderOut}, idempotent=True,
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
                       "the order SHIPPED, the money owed noted in its history for staff).")
def cancel_unshipped(order_id: int, body: CancelUnshippedIn, idempotency_key: str) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).CancelUnshipped(order_pb2.CancelUnshippedRequest(
        id=order_id, reason=body.reason, shopper_reason=body.shopper_reason, idempotency_key=idempotency_key)))


class CloseRefundIn(Body):
    """Why the ABNORMAL refund is given up (kept in the order's history with who closed it, for staff only)."""

    reason: str = Field(min_length=1, max_length=255)


@bp.post("/admin/refunds/<refund_no>/close")
@operation(summary="Close an ABNORMAL WeChat Pay refund, freeing its amount for a new refund", tag="admin-orders",
           roles=REFUND_CLOSERS, body=CloseRefundIn, responses={200: AdminOrderOut},
           description="A refund WeChat Pay reports ABNORMAL (e.g. the shopper's card was cancelled) keeps its amount "
                       "reserved, since it can still be completed at WeChat Pay under the same refund number; staff "
                       "retry it there (after-sales retry-refund, or approving the cancellation again), or close it "
                       "here once it can no longer be paid. WeChat Pay is asked first: 409 REFUND_STATE_CONFLICT "
                       "(details.status) unless the refund is ABNORMAL (one WeChat Pay reports paid meanwhile is "
                       "settled SUCCESS instead; one it knows nothing of, made ABNORMAL because it refused it when "
                       "sent again, is closed); 404 REFUND_NOT_FOUND; 503 when WeChat Pay does not answer. The order "
                       "is answered, the closing in its history; an after-sales case waiting on the refund becomes "
                       "REFUND_FAILED (retry-refund then starts a new refund).")
def close_refund(refund_no: str, body: CloseRefundIn) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).CloseRefund(order_pb2.CloseRefundRequest(
        refund_no=refund_no, reason=body.reason)))


@bp.post("/admin/refunds/<refund_no>/retry")
@operation(summary="Ask WeChat Pay (or the wallet) again about a PENDING or ABNORMAL refund", tag="admin-orders",
           roles=REFUND_RETRIERS, responses={200: AdminOrderOut},
           description="Under the same refund number, so nothing is refunded twice: a refund the merchant fixed at "
                       "WeChat Pay (ABNORMAL: PROCESSING makes it PENDING again, SUCCESS ends it), or one staff do "
                       "not want to leave to the fallback job. The only staff retry of a late payment's refund "
                       "(LATE<order_no>: money for an order that could not take it, cancelled or paid otherwise), "
                       "whose order no cancellation review or after-sales case retries. A refund that has ended is "
                       "answered as it is; 404 REFUND_NOT_FOUND; 503 PAYMENT_CHANNEL_UNAVAILABLE (nothing changed) "
                       "when WeChat Pay gives no usable answer. The order is answered, any change in its history.")
def retry_refund(refund_no: str) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).RetryRefund(order_pb2.RetryRefundRequest(
        refund_no=refund_no)))


@bp.post("/payments/wechat/refund-notify")
@operation(summary="WeChat Pay refund notify (signed by WeChat Pay; raw JSON body)", tag="payments", access=PUBLIC,
           responses=NOTIFY_RESPONSES)
def wechat_refund_notify() -> tuple[NotifyAnswer, int]:
    return forward_notify(service(OrderServiceStub).HandleWechatRefundNotify)
