"""Review moderation for staff: every review, hidden ones too, and undoing a hide (hiding is a product route,
admin_products.py). The roles are the ones that hide (REVIEW_MODERATORS)."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from pydantic import Field

from gateway.api import Body, Page, PageQuery, operation, service
from gateway.catalog_cache import invalidate_after_writes
from gateway.routes.catalog import MAX_ID, ReviewOut
from gateway.routes.orders import utc_time
from services.common.auth import REVIEW_MODERATORS

bp = Blueprint("admin_reviews", __name__, url_prefix="/api/v1/admin/reviews")
invalidate_after_writes(bp)  # an unhide changes a product's reviews and rating: the next shopper read shows it


class AdminReviewOut(ReviewOut):
    """A review as staff moderate it: as shoppers see it (buyer and any phone in the text masked), with its order
    line and, while hidden, why, by whom and when."""

    order_no: str
    line_id: int
    hidden: bool = Field(description="hidden by staff: not on the product's page, not in its rating")
    hidden_reason: str = Field(description="why it is hidden; empty when visible")
    hidden_by: int | None = Field(description="the staff member (user id) who hid it; null when visible or hidden "
                                              "before this was recorded (the product's audit log has it)")
    hidden_at: datetime | None = Field(description="when it was hidden; null as hidden_by")

    @classmethod
    def from_proto(cls, review: product_pb2.Review) -> AdminReviewOut:
        return cls(**cls.fields_of(review), order_no=review.order_no, line_id=review.line_id, hidden=review.hidden,
                   hidden_reason=review.hidden_reason, hidden_by=review.hidden_by or None,
                   hidden_at=utc_time(review.hidden_at) if review.HasField("hidden_at") else None)


class AdminReviewsQuery(PageQuery):
    product_id: int | None = Field(None, ge=1, le=MAX_ID)
    rating: int | None = Field(None, ge=1, le=5)
    hidden: bool | None = Field(None, description="true: hidden ones only; false: visible ones only; absent: both")


class UnhideReviewIn(Body):
    reason: str = Field(min_length=1, max_length=200, description="why it goes back on the page: audited")


@bp.get("")
@operation(summary="Every review, hidden ones too, newest first (moderation)", tag="admin", roles=REVIEW_MODERATORS,
           query=AdminReviewsQuery, responses={200: Page[AdminReviewOut]},
           description="By product, stars and whether hidden. Hide one with POST /admin/products/{product_id}/"
                       "reviews/{review_id}/hide, undo that with POST /admin/reviews/{review_id}/unhide.")
def list_reviews(query: AdminReviewsQuery) -> Page[AdminReviewOut]:
    request = product_pb2.ListReviewsRequest(product_id=query.product_id or 0, rating=query.rating or 0,
                                             offset=query.offset, limit=query.page_size)
    if query.hidden is not None:
        request.hidden = query.hidden
    reply = service(ProductServiceStub).ListReviews(request)
    return Page[AdminReviewOut].of([AdminReviewOut.from_proto(r) for r in reply.items], query, reply.total)


@bp.post("/<id:review_id>/unhide")
@operation(summary="Put a hidden review back on its product's page (moderation)", tag="admin",
           roles=REVIEW_MODERATORS, body=UnhideReviewIn, responses={200: AdminReviewOut},
           description="Its stars count in the product's rating summary again, once. In the product's audit log "
                       "(unhide_review, who, the reason, and the reason it was hidden for). 409 REVIEW_NOT_HIDDEN "
                       "when it is not hidden (changes nothing); 404 REVIEW_NOT_FOUND.")
def unhide_review(review_id: int, body: UnhideReviewIn) -> AdminReviewOut:
    review = service(ProductServiceStub).UnhideReview(product_pb2.UnhideReviewRequest(id=review_id,
                                                                                      reason=body.reason))
    return AdminReviewOut.from_proto(review)
