"""Event handlers of the analytics service; each runs inside the consumer's transaction."""

from __future__ import annotations

from datetime import UTC

from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy.orm import Session

from services.analytics.db import DailyStats
from services.common.events import unpack


def on_user_registered(session: Session, envelope: EventEnvelope) -> None:
    """Count the registration on its UTC day."""
    event = unpack(envelope, UserRegistered)
    DailyStats(session).add_new_user(event.registered_at.ToDatetime(tzinfo=UTC).date())


HANDLERS = {"user-registered": on_user_registered}
