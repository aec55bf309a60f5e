"""Reviews (P5, U9): who may review what, the reviews themselves and each product's rating summary.

Eligibility comes from the `order-completed` event, not from a gRPC call to the order service.
The product service consumes it (once per event, in the transaction that records the event as
processed) and keeps a row per completed line: (order_no, line_id, user_id, product_id, sku_id).
A review is then checked against that row alone. Why the event:
- posting a review needs no order service: it works while that service is slow or down, and
  the product service never trusts a client-sent product or SKU id (they come from the event);
- the order service publishes `order-completed` anyway, in the transaction that completes the
  order, so the row can never exist for an order that did not complete; it lists only the lines
  the buyer kept (a line refunded in full through after-sales before completion is left out, so
  it is never reviewable);
- the cost is a short delay: right after confirming receipt, before the event arrives (well
  under a second normally), a review is refused with 409 REVIEW_NOT_ELIGIBLE; the client retries. This
  service cannot tell that apart from a line never reviewable (refunded in full, or an order that never
  completes); the gateway, which reads the order first, says which it is (`details.reason`).
An order that leaves COMPLETED later (after-sales refund) keeps its reviews and eligibility:
the buyer did receive the goods.

One review per order line: a unique constraint on (order_no, line_id) decides, so two concurrent
posts give one review and one 409 REVIEW_EXISTS. The product's rating summary is a row of star
counts updated in the same transaction as the review insert, so the product page reads one row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.common.db import utcnow
from services.common.errors import Conflict, InvalidInput, NotFound
from services.product import service
from services.product.domain import (
    RATINGS,
    AuditEntry,
    RatingSummary,
    Review,
    ReviewableLine,
    ReviewDraft,
    mask_buyer,
)
from services.product.uow import ProductUnitOfWork


@dataclass(frozen=True)
class CompletedLine:
    line_id: int
    product_id: int
    sku_id: int


@dataclass(frozen=True)
class ReviewPage:
    items: list[Review]
    total: int
    summary: RatingSummary | None = None   # a product's list carries its summary


def record_completed_lines(uow: ProductUnitOfWork, *, order_no: str, user_id: int, lines: Iterable[CompletedLine],
                           completed_at: datetime) -> int:
    """Remember an order's completed lines as reviewable by its buyer, inside an open unit of work (the
    order-completed consumer's). Lines known already are skipped; how many were new."""
    new = 0
    for line in lines:
        new += uow.reviews.record_reviewable(ReviewableLine(
            order_no=order_no, line_id=line.line_id, user_id=user_id, product_id=line.product_id,
            sku_id=line.sku_id, completed_at=completed_at))
    return new


def post_review(uow: ProductUnitOfWork, *, user_id: int, order_no: str, line_id: int, draft: ReviewDraft,
                buyer_nickname: str = "", now: datetime | None = None) -> Review:
    """The buyer's review of a completed order line, once.

    409 REVIEW_NOT_ELIGIBLE: the line's completion is not known here (not completed, or the event is
    still on its way); 404 ORDER_LINE_NOT_FOUND: the line was someone else's; 409 REVIEW_EXISTS.
    """
    now = now or utcnow()
    draft.validate()
    if not order_no or len(order_no) > 64:
        raise InvalidInput("ORDER_NO_INVALID", "order_no must be 1-64 characters", details={"order_no": "invalid"})
    with uow:
        line = uow.reviews.reviewable(order_no, line_id)
        if line is None:
            raise Conflict("REVIEW_NOT_ELIGIBLE", "only a completed order line can be reviewed; if you have just "
                                                  "confirmed receipt, try again in a moment")
        if line.user_id != user_id:
            raise NotFound("ORDER_LINE_NOT_FOUND", "no such order line")
        product = uow.products.get(line.product_id)
        if product is None:
            raise NotFound("PRODUCT_NOT_FOUND", "no such product")
        sku = next((s for s in product.skus if s.id == line.sku_id), None)
        review = Review(product_id=line.product_id, sku_id=line.sku_id, user_id=user_id, order_no=order_no,
                        line_id=line_id, rating=draft.rating, content=draft.content.strip(),
                        images=list(draft.images), spec=dict(sku.spec) if sku else {},
                        buyer=mask_buyer(buyer_nickname), created_at=now)
        uow.reviews.add(review)
        service.publish_changed(uow, line.product_id, "review", now)
        uow.commit()
        return review


def product_reviews(uow: ProductUnitOfWork, *, product_id: int, offset: int = 0, limit: int = 20) -> ReviewPage:
    """A visible product's reviews not hidden by staff, newest first, with its rating summary."""
    with uow:
        product = uow.products.get(product_id)
        if product is None or not product.visible:
            raise NotFound("PRODUCT_NOT_FOUND", "no such product")
        found, total = uow.reviews.of_product(product_id, max(offset, 0), _limit(limit))
        return ReviewPage(found, total, uow.reviews.summary(product_id))


def hide_review(uow: ProductUnitOfWork, *, actor_id: int, product_id: int, review_id: int, reason: str,
                now: datetime | None = None) -> Review:
    """Staff take a review of the product off its page and out of its rating summary (moderation), audited with
    who and why. Hiding a hidden review changes nothing. REVIEW_NOT_FOUND when it is not this product's."""
    now = now or utcnow()
    with uow:
        review = uow.reviews.get(review_id, lock=True)
        if review is None or review.product_id != product_id:
            raise NotFound("REVIEW_NOT_FOUND", "no such review of this product")
        if review.hide(reason, by=actor_id, at=now):
            uow.reviews.hide(review)
            uow.audit_log.add(AuditEntry(product_id=product_id, actor_id=actor_id, action="hide_review", at=now,
                                         before={"review_id": review_id, "hidden": False},
                                         after={"review_id": review_id, "hidden": True,
                                                "reason": review.hidden_reason}))
            service.publish_changed(uow, product_id, "review", now)
        uow.commit()
        return review


def unhide_review(uow: ProductUnitOfWork, *, actor_id: int, review_id: int, reason: str,
                  now: datetime | None = None) -> Review:
    """Staff put a hidden review back on its product's page and its stars back into the rating summary, once (under
    the review's row lock, as a hide takes them out), audited with who and why. 409 REVIEW_NOT_HIDDEN for a visible
    review (a second unhide among them): nothing changes."""
    now = now or utcnow()
    with uow:
        review = uow.reviews.get(review_id, lock=True)
        if review is None:
            raise NotFound("REVIEW_NOT_FOUND", "no such review")
        hidden_for = review.hidden_reason
        reason = review.unhide(reason)
        uow.reviews.unhide(review)
        uow.audit_log.add(AuditEntry(product_id=review.product_id, actor_id=actor_id, action="unhide_review", at=now,
                                     before={"review_id": review_id, "hidden": True, "reason": hidden_for},
                                     after={"review_id": review_id, "hidden": False, "reason": reason}))
        service.publish_changed(uow, review.product_id, "review", now)
        uow.commit()
        return review


def staff_reviews(uow: ProductUnitOfWork, *, product_id: int = 0, rating: int = 0, hidden: bool | None = None,
                  offset: int = 0, limit: int = 20) -> ReviewPage:
    """Every review for staff to moderate, hidden ones too, newest first; by product, by stars (0: any), hidden or
    visible (None: both)."""
    if rating and rating not in RATINGS:
        raise InvalidInput("REVIEW_INVALID", "rating is 1 to 5, or 0 for any", details={"rating": "1 to 5"})
    with uow:
        found, total = uow.reviews.for_staff(product_id=max(product_id, 0), rating=rating, hidden=hidden,
                                             offset=max(offset, 0), limit=_limit(limit))
        return ReviewPage(found, total)


def my_reviews(uow: ProductUnitOfWork, *, user_id: int, order_no: str = "", offset: int = 0,
               limit: int = 20) -> ReviewPage:
    """The user's reviews, newest first; with `order_no`, only those of that order (which of its lines are reviewed;
    another user's order number finds none)."""
    with uow:
        found, total = uow.reviews.of_user(user_id, max(offset, 0), _limit(limit), order_no=order_no)
        return ReviewPage(found, total)


def _limit(limit: int) -> int:
    return min(max(limit, 1), 100)
