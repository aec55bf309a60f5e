"""Event handlers of the analytics service; each runs in the consumer's unit of work."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.message import Message
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered

from services.analytics.db import AnalyticsUnitOfWork
from services.common.consumer import Handler


def on_user_registered(uow: AnalyticsUnitOfWork, event: UserRegistered, envelope: EventEnvelope) -> None:
    """Count the registration on its UTC day."""
    uow.stats.add_new_user(event.registered_at.ToDatetime(tzinfo=UTC).date())


HANDLERS: dict[type[Message], Handler[AnalyticsUnitOfWork]] = {UserRegistered: on_user_registered}
