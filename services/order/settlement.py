"""The order service settles stock on its own order events: paid -> reservation confirmed, cancelled -> released.

The product service owns the stock; both calls are idempotent per order_no there. Driven by the
outbox and a consumer (retried until the product service answers), so a crash between the order's
commit and the call loses nothing, as a call made right after the commit could.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid

from services.common.errors import DomainError, ErrorKind
from services.common.events import InvalidEvent
from services.order.ports import Stock

log = logging.getLogger(__name__)

CONSUMER = "order"  # a consumer group is named after its service
Handler = Callable[[Any, Any, EventEnvelope], None]


def _settle(step: Callable[[str], None], what: str) -> Handler:
    def handle(uow: Any, payload: OrderPaid | OrderCancelled, envelope: EventEnvelope) -> None:
        try:
            step(payload.order_no)
        except DomainError as exc:
            if exc.kind in (ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED):
                raise  # retried by the consumer
            # e.g. RESERVATION_RELEASED for a payment after the reservation expired: needs a person.
            log.error("cannot %s the stock of order %s: %s", what, payload.order_no, exc.code)
            raise InvalidEvent(f"{what} refused: {exc.code}") from None
    return handle


def handlers(stock: Stock) -> dict[type[Message], Handler]:
    return {OrderPaid: _settle(stock.confirm, "confirm"), OrderCancelled: _settle(stock.release, "release")}
