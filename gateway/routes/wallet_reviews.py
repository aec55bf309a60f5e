"""Wallet charges the wallet reconciliation could not settle (another user's wallet paid for an order, or another
amount), left for staff: listed, then credited back or marked handled (services/order/wallet_reviews.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint
from mall.order.v1 import order_pb2
from mall.order.v1.order_pb2_grpc import OrderServiceStub
from pydantic import Field

from gateway.api import Body, Page, PageQuery, Reply, operation, service
from gateway.routes.orders import utc_time
from services.common.auth import WALLET_RESOLVERS, WALLET_REVIEWERS

bp = Blueprint("wallet_reviews", __name__, url_prefix="/api/v1/admin/wallet-reviews")

ReviewStatus = Literal["OPEN", "CREDITED", "HANDLED"]


class WalletReviewOut(Reply):
    """A wallet charge for an order that cannot pay it: whose wallet paid how much, what the order expected, and how
    staff resolved it. The order's history has the same steps."""

    id: int
    order_id: int
    order_no: str
    user_id: int = Field(description="whose wallet was charged")
    amount_fen: int = Field(description="what that wallet was charged for the order")
    order_user_id: int = Field(description="the order's shopper")
    payable_fen: int = Field(description="what the order asked")
    problem: str = Field(description="OTHER_USERS_WALLET, PAYMENT_AMOUNT_MISMATCH, or the code that refused settling it")
    status: ReviewStatus
    flagged_at: datetime
    resolved_at: datetime | None
    resolved_by: str = Field(description="staff:<user id>; empty while OPEN")
    note: str = Field(description="why, as staff said")
    refund_no: str = Field(description="CREDITED: the wallet refund that returned the charge")

    @classmethod
    def from_proto(cls, review: order_pb2.WalletReview) -> WalletReviewOut:
        return cls(id=review.id, order_id=review.order_id, order_no=review.order_no, user_id=review.user_id,
                   amount_fen=review.amount_fen, order_user_id=review.order_user_id, payable_fen=review.payable_fen,
                   problem=review.problem, status=review.status,  # type: ignore[arg-type]
                   flagged_at=utc_time(review.flagged_at),
                   resolved_at=utc_time(review.resolved_at) if review.HasField("resolved_at") else None,
                   resolved_by=review.resolved_by, note=review.note, refund_no=review.refund_no)


class WalletReviewsQuery(PageQuery):
    status: ReviewStatus | None = None


class ResolveIn(Body):
    """credit_back: the charge goes back to the wallet it came from; handled: it was settled another way. The reason
    is kept in the review and the order's history with who resolved it."""

    resolution: Literal["credit_back", "handled"]
    reason: str = Field(min_length=1, max_length=255)


@bp.get("")
@operation(summary="Wallet charges that could not pay their order, for staff (oldest first)", tag="admin-orders",
           roles=WALLET_REVIEWERS, query=WalletReviewsQuery, responses={200: Page[WalletReviewOut]},
           description="The wallet reconciliation asks the member service what a wallet paid for an order whose "
                       "payment answer was lost. A charge from another user's wallet, or of another amount than the "
                       "order's, cannot pay it: it is listed here OPEN (the order's history says so, and the payment "
                       "timeout may cancel the unpaid order) until staff resolve it. "
                       "mall_wallet_charges_awaiting_staff counts the OPEN ones.")
def list_wallet_reviews(query: WalletReviewsQuery) -> Page[WalletReviewOut]:
    found = service(OrderServiceStub).ListWalletReviews(order_pb2.ListWalletReviewsRequest(
        status=query.status or "", offset=query.offset, limit=query.page_size))
    return Page[WalletReviewOut].of([WalletReviewOut.from_proto(review) for review in found.reviews], query,
                                    found.total)


@bp.post("/<id:review_id>/resolve")
@operation(summary="Credit a wallet charge back, or mark it handled", tag="admin-orders", roles=WALLET_RESOLVERS,
           body=ResolveIn, responses={200: WalletReviewOut},
           description="credit_back has the member service credit the charge to the wallet it came from (refund "
                       "LATEW<order_no>, credited once however often asked; 503 and nothing changed when the member "
                       "service does not answer); handled records that it was settled another way. Once: the same "
                       "resolution again answers the review as it is, another one is 409 WALLET_REVIEW_RESOLVED "
                       "(details.status); 404 WALLET_REVIEW_NOT_FOUND. 403 OWN_REQUEST when the staff member's own "
                       "wallet was charged or the order is theirs: another staff member resolves it.")
def resolve_wallet_review(review_id: int, body: ResolveIn) -> WalletReviewOut:
    return WalletReviewOut.from_proto(service(OrderServiceStub).ResolveWalletReview(
        order_pb2.ResolveWalletReviewRequest(id=review_id, resolution=body.resolution, reason=body.reason)))
