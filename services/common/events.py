"""Event types (one registry: payload message -> topic) and the envelope every Kafka event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.member_events_pb2 import MemberJoined, MemberPlanSubscribed, MemberRecharged, MemberWithdrawn
from mall.events.v1.member_ledger_events_pb2 import PointsChanged
from mall.events.v1.order_events_pb2 import (
    CartItemAdded,
    LatePaymentReceived,
    LatePaymentRefunded,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderPaid,
    OrderRefunded,
    OrderReturned,
    OrderShipped,
    RefundPaidTwice,
)
from mall.events.v1.product_events_pb2 import ProductChanged, ProductViewed
from mall.events.v1.tracking_events_pb2 import PageViewed
from mall.events.v1.user_events_pb2 import UserRegistered, UserVerified

from services.common.logs import request_id_var

M = TypeVar("M", bound=Message)

# One Kafka topic per event type, named after its payload message (shared/ARCHITECTURE.md, "Events").
# Producers publish the message and consumers subscribe to its type; the name is derived here only.
EVENT_TYPES: dict[type[Message], str] = {
    UserRegistered: "user-registered",
    UserVerified: "user-verified",
    ProductViewed: "product-viewed",
    ProductChanged: "product-changed",
    OrderCreated: "order-created",
    OrderPaid: "order-paid",
    OrderCancelled: "order-cancelled",
    OrderRefunded: "order-refunded",
    OrderShipped: "order-shipped",
    OrderCompleted: "order-completed",
    OrderReturned: "order-returned",
    LatePaymentReceived: "late-payment-received",
    LatePaymentRefunded: "late-payment-refunded",
    RefundPaidTwice: "refund-paid-twice",
    CartItemAdded: "cart-item-added",
    MemberJoined: "member-joined",
    MemberRecharged: "member-recharged",
    MemberWithdrawn: "member-withdrawn",
    MemberPlanSubscribed: "member-plan-subscribed",
    PageViewed: "page-viewed",
    PointsChanged: "points-changed",
}
TOPICS = tuple(EVENT_TYPES.values())


def event_type_of(message: Message | type[Message]) -> str:
    """The event type (and topic) of a payload message or message class; ValueError if unregistered."""
    message_type = message if isinstance(message, type) else type(message)
    try:
        return EVENT_TYPES[message_type]
    except KeyError:
        raise ValueError(f"{message_type.__name__} is not an event payload; register it in EVENT_TYPES") from None


class InvalidEvent(ValueError):
    """Bytes that are not an EventEnvelope, or an envelope missing what every event must have."""


def new_envelope(payload: Message, *, producer: str, aggregate_id: str,
                 occurred_at: datetime | None = None) -> EventEnvelope:
    """Wrap a payload message under its event type, stamping a fresh event id and the current request id."""
    envelope = EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type_of(payload),
        producer=producer,
        aggregate_id=aggregate_id,
        request_id=request_id_var.get(),
        payload=payload.SerializeToString(),
    )
    envelope.occurred_at.CopyFrom(timestamp(occurred_at or datetime.now(UTC)))
    return envelope


def encode(envelope: EventEnvelope) -> bytes:
    return envelope.SerializeToString()


def decode(data: bytes) -> EventEnvelope:
    """Parse and check an envelope; raises InvalidEvent for anything a consumer cannot trust."""
    if not isinstance(data, bytes):  # a tombstone (None) or anything else that is not a message
        raise InvalidEvent(f"record value is {type(data).__name__}, not bytes")
    envelope = EventEnvelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidEvent(f"not an EventEnvelope: {exc}") from None
    # Only the 36-character form new_envelope writes: uuid.UUID() also reads longer spellings ("{...}", "urn:uuid:...")
    # that processed_events and dead_letters (String(36)) cannot hold, and such a record would stop its partition.
    try:
        canonical = str(uuid.UUID(envelope.event_id)) == envelope.event_id.lower()
    except ValueError:
        canonical = False
    if not canonical:
        raise InvalidEvent(f"event_id {envelope.event_id[:64]!r} is not a UUID in its 36-character form")
    if not envelope.event_type:
        raise InvalidEvent("event_type is empty")
    return envelope


def unpack(envelope: EventEnvelope, message_type: type[M]) -> M:
    """The envelope's payload parsed as `message_type`."""
    message = message_type()
    try:
        message.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise InvalidEvent(f"{envelope.event_type} payload is not a {message_type.__name__}: {exc}") from None
    return message


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp for an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def datetime_of(stamp: Timestamp, envelope: EventEnvelope) -> datetime:
    """A time an event carries (`stamp`, in `envelope`) as an aware UTC datetime; InvalidEvent when no datetime can
    hold it (seconds outside years 1-9999, nanos outside a second). The plain ValueError protobuf raises would be
    retried for ever by the consumer, stopping the event's partition; every delivery would fail the same way."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidEvent(f"{envelope.event_type} {envelope.event_id} carries a time no datetime holds: {exc}") from None
