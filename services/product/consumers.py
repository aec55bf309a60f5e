"""Event handlers of the product service; each runs inside the consumer's transaction, once per event."""

from __future__ import annotations

import functools
import logging

from google.protobuf.message import Message
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderCompleted, OrderPaid, OrderReturned

from services.common.consumer import Handler
from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.events import InvalidEvent, datetime_of
from services.common.orders import Orders
from services.product import reviews, service
from services.product.domain import StockLine
from services.product.uow import ProductUnitOfWork

log = logging.getLogger(__name__)


def on_order_paid(uow: ProductUnitOfWork, event: OrderPaid, envelope: EventEnvelope, *,
                  orders: Orders | None = None) -> None:
    """The reserved units become sales (a reservation the sweep put back on sale first, EXPIRED or RELEASED by an
    older sweep, takes them again; when they were sold meanwhile the order is counted and logged as oversold, and
    the event is done: retrying cannot help).

    A payment for stock never reserved, or released by a cancellation (a paid order cancelled and refunded since:
    a cancelled one is never paid), can never be applied here: it is dead-lettered, where ops see it, rather than
    retried for ever. A reservation released before the stock ledger existed is one or the other: `orders` (the
    order service) says which (service._swept); without it, it is taken for a cancellation's.
    """
    try:
        service.confirm_held_stock(uow, order_no=event.order_no, orders=orders)
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


def on_order_completed(uow: ProductUnitOfWork, event: OrderCompleted, envelope: EventEnvelope) -> None:
    """The buyer received the order: each line they kept may now be reviewed once (services/product/reviews.py).

    The event leaves out lines refunded in full through after-sales, so those are never reviewable; an order
    refunded in full completes with no lines, and records nothing. Replays change nothing: the consumer skips
    an event it applied, and a line already recorded (the same completion in another event) is skipped too.
    """
    lines = [reviews.CompletedLine(line_id=c.line_id, product_id=c.line.product_id, sku_id=c.line.sku_id)
             for c in event.lines]
    if (not event.order_no or len(event.order_no) > 64 or event.user_id <= 0
            or any(min(line.line_id, line.product_id, line.sku_id) <= 0 for line in lines)):
        raise InvalidEvent(f"order-completed {envelope.event_id} lacks its order, buyer or line ids")
    completed_at = datetime_of(event.completed_at if event.HasField("completed_at") else envelope.occurred_at, envelope)
    reviews.record_completed_lines(uow, order_no=event.order_no, user_id=event.user_id, lines=lines,
                                   completed_at=completed_at)


def on_order_returned(uow: ProductUnitOfWork, event: OrderReturned, envelope: EventEnvelope) -> None:
    """Goods of an after-sales return were received back: their units are on sale again (once per event)."""
    try:
        service.restock_return(uow, case_no=event.case_no, order_no=event.order_no,
                               lines=[StockLine(line.sku_id, line.quantity) for line in event.lines])
    except (NotFound, InvalidInput) as exc:
        raise InvalidEvent(f"order-returned {envelope.event_id} cannot be restocked: {exc.code}") from None
    log.info("restocked the return of after-sales case %s (order %s)", event.case_no, event.order_no)


def handlers(orders: Orders | None) -> dict[type[Message], Handler[ProductUnitOfWork]]:
    """The consumer's handlers; `orders`: the order service, asked about a reservation released before the stock
    ledger that an order-paid reaches (the serve role's; None: such a release counts as a cancellation's)."""
    return {OrderPaid: functools.partial(on_order_paid, orders=orders), OrderCancelled: on_order_cancelled,
            OrderCompleted: on_order_completed, OrderReturned: on_order_returned}


HANDLERS = handlers(None)
