"""Event handlers of the product service; each runs inside the consumer's transaction, once per event."""

from __future__ import annotations

import logging

from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid

from services.common.errors import Conflict, NotFound
from services.common.events import InvalidEvent
from services.product import service
from services.product.uow import ProductUnitOfWork

log = logging.getLogger(__name__)


def on_order_paid(uow: ProductUnitOfWork, event: OrderPaid, envelope: EventEnvelope) -> None:
    """The reserved units become sales.

    A payment for stock no longer held (the reservation expired or was released first) can never
    be applied here: it is dead-lettered, where ops see it, rather than retried for ever.
    """
    try:
        service.confirm_held_stock(uow, order_no=event.order_no)
    except (NotFound, Conflict) as exc:
        raise InvalidEvent(f"order {event.order_no} paid but its stock is not held: {exc.code}") from None


def on_order_cancelled(uow: ProductUnitOfWork, event: OrderCancelled, envelope: EventEnvelope) -> None:
    """The order's units go back on sale: an unpaid order's reservation, or the sold units of a paid order
    whose cancellation staff approved before it shipped (shipped goods come back through after-sales)."""
    if event.was_paid:
        service.release_paid_stock(uow, order_no=event.order_no)
        return
    try:
        service.release_held_stock(uow, order_no=event.order_no)
    except Conflict as exc:  # paid after all: the order-paid event settles it
        log.warning("order %s cancelled but its stock is sold (%s); nothing released", event.order_no, exc.code)


HANDLERS = {OrderPaid: on_order_paid, OrderCancelled: on_order_cancelled}
