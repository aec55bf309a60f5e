"""Event handlers of the user service; each runs inside the consumer's transaction, once per event."""

from __future__ import annotations

from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.product_events_pb2 import ProductViewed

from services.common.events import datetime_of
from services.user import service
from services.user.uow import UserUnitOfWork


def on_product_viewed(uow: UserUnitOfWork, event: ProductViewed, envelope: EventEnvelope) -> None:
    """Put the product at the front of the shopper's browsing history."""
    service.record_view(uow, user_id=event.user_id, product_id=event.product_id,
                        viewed_at=datetime_of(event.viewed_at, envelope))


HANDLERS = {ProductViewed: on_product_viewed}
