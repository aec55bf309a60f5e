"""Event handlers of the member service; each runs inside the consumer's transaction, once per event."""

from __future__ import annotations

from datetime import UTC

from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded

from services.member import service
from services.member.uow import MemberUnitOfWork


def on_order_paid(uow: MemberUnitOfWork, event: OrderPaid, envelope: EventEnvelope) -> None:
    """Count the spend, award points, use the order's held points and coupon."""
    service.apply_order_paid(uow, order_no=event.order_no, user_id=event.user_id, paid_fen=event.paid_fen,
                             now=event.paid_at.ToDatetime(tzinfo=UTC))


def on_order_refunded(uow: MemberUnitOfWork, event: OrderRefunded, envelope: EventEnvelope) -> None:
    """Take back the spend and the points the refunded money earned; credit back the points the shopper spent on
    the refunded units, when the order service gives any back (cancelled unshipped units)."""
    service.apply_order_refunded(uow, order_no=event.order_no, refund_no=event.refund_no, amount_fen=event.amount_fen,
                                 points_returned=event.points_returned, now=event.refunded_at.ToDatetime(tzinfo=UTC))


def on_order_cancelled(uow: MemberUnitOfWork, event: OrderCancelled, envelope: EventEnvelope) -> None:
    """Give back the points and coupon the order held (unpaid) or used (paid, cancelled after review: its
    spend and earned points are taken back by its order-refunded)."""
    service.apply_order_cancelled(uow, order_no=event.order_no, was_paid=event.was_paid,
                                  now=event.cancelled_at.ToDatetime(tzinfo=UTC))


HANDLERS = {OrderPaid: on_order_paid, OrderRefunded: on_order_refunded, OrderCancelled: on_order_cancelled}
