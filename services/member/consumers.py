"""Event handlers of the member service; each runs inside the consumer's transaction, once per event."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from google.protobuf.message import Message
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded

from services.common.clients import ServiceClients
from services.common.consumer import Handler
from services.common.errors import Conflict, InvalidInput
from services.common.events import InvalidEvent, datetime_of
from services.member import service
from services.member.phones import GrpcBuyerPhones
from services.member.uow import MemberUnitOfWork


@contextmanager
def _never_applicable(envelope: EventEnvelope) -> Iterator[None]:
    """What a handler refuses as invalid (an order number too long, no refund number) or as conflicting with what it
    applied before (the same order paid again with another amount or shopper) it refuses on every delivery: the event
    is dead-lettered (InvalidEvent), where ops see it, not retried for ever, which would stop its partition."""
    try:
        yield
    except (InvalidInput, Conflict) as exc:
        raise InvalidEvent(f"{envelope.event_type} {envelope.event_id} can never be applied: {exc.code}") from None


def on_order_paid(uow: MemberUnitOfWork, event: OrderPaid, envelope: EventEnvelope, *,
                  phones: service.Phones) -> None:
    """Count the spend (a buyer it takes to the threshold joins when `phones` says they have bound a phone; when it
    cannot say, the failure is retried, not dead-lettered), award points, use the order's held points and coupon."""
    if event.user_id <= 0:
        raise InvalidEvent(f"order-paid {envelope.event_id} of order {event.order_no} names no shopper")
    with _never_applicable(envelope):
        service.apply_order_paid(uow, phones, order_no=event.order_no, user_id=event.user_id, paid_fen=event.paid_fen,
                                 now=datetime_of(event.paid_at, envelope))


def on_order_refunded(uow: MemberUnitOfWork, event: OrderRefunded, envelope: EventEnvelope) -> None:
    """Take back the spend and the points the refunded money earned; credit back the points the shopper spent on
    the refunded units, when the order service gives any back (cancelled unshipped units)."""
    with _never_applicable(envelope):
        service.apply_order_refunded(uow, order_no=event.order_no, refund_no=event.refund_no,
                                     amount_fen=event.amount_fen, points_returned=event.points_returned,
                                     now=datetime_of(event.refunded_at, envelope))


def on_order_cancelled(uow: MemberUnitOfWork, event: OrderCancelled, envelope: EventEnvelope) -> None:
    """Give back the points and coupon the order held (unpaid) or used (paid, cancelled after review: its
    spend and earned points are taken back by its order-refunded)."""
    with _never_applicable(envelope):
        service.apply_order_cancelled(uow, order_no=event.order_no, was_paid=event.was_paid,
                                      now=datetime_of(event.cancelled_at, envelope))


def handlers(phones: service.Phones) -> dict[type[Message], Handler[MemberUnitOfWork]]:
    """The consumer's handlers; `phones`: whether a buyer has bound a phone (order-paid joins only those, M1)."""
    return {OrderPaid: functools.partial(on_order_paid, phones=phones), OrderRefunded: on_order_refunded,
            OrderCancelled: on_order_cancelled}


def consume_role_handlers(clients: ServiceClients) -> dict[type[Message], Handler[MemberUnitOfWork]]:
    """The handlers as the consume role runs them: phones asked of the user service as the member service itself
    (`clients` with its service token), since an event has no caller whose token could be passed on."""
    return handlers(GrpcBuyerPhones(clients))
