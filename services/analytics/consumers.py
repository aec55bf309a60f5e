"""Event handlers of the analytics service: each event is kept raw and turned into what it adds to the rollups."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.member_events_pb2 import MemberJoined, MemberPlanSubscribed, MemberRecharged, MemberWithdrawn
from mall.events.v1.order_events_pb2 import (
    CartItemAdded,
    LatePaymentReceived,
    LatePaymentRefunded,
    OrderCancelled,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderRefunded,
    RefundPaidTwice,
)
from mall.events.v1.product_events_pb2 import ProductViewed
from mall.events.v1.tracking_events_pb2 import PageViewed
from mall.events.v1.user_events_pb2 import UserRegistered

from services.analytics.domain import (
    CART_USER,
    FIRST_DAY,
    LAST_DAY,
    ORDER_USER,
    PAYER,
    REGISTRATION,
    VIEWER,
    VISIT,
    VISITOR,
    Breakdown,
    Member,
    RawEvent,
    Rollup,
    SoldLine,
    active,
    sales_breakdowns,
)
from services.analytics.uow import AnalyticsUnitOfWork
from services.common.consumer import Handler
from services.common.events import InvalidEvent, datetime_of
from services.common.formats import shop_day  # every statistic is kept per shop day


def when(stamp: Timestamp, envelope: EventEnvelope) -> datetime:
    """The payload's own time of the fact, or the envelope's when the producer left it unset."""
    return _moment(stamp if stamp.seconds or stamp.nanos else envelope.occurred_at, envelope)


def _moment(stamp: Timestamp, envelope: EventEnvelope) -> datetime:
    # A time far outside the shop's years (though a datetime holds it) would overflow the day arithmetic, and be retried
    # for ever.
    moment = datetime_of(stamp, envelope)
    if not FIRST_DAY.year <= moment.year <= LAST_DAY.year:
        raise InvalidEvent(f"{envelope.event_type} {envelope.event_id} is dated outside {FIRST_DAY}..{LAST_DAY}")
    return moment


def user_registered(event: UserRegistered, envelope: EventEnvelope) -> Rollup:
    return Rollup(day=shop_day(when(event.registered_at, envelope)), fact=(REGISTRATION, str(event.user_id)),
                  counters={"new_users": 1}, members=active(event.user_id))


def page_viewed(event: PageViewed, envelope: EventEnvelope) -> Rollup:
    if not event.device_id:
        raise InvalidEvent("page-viewed without a device id")
    members = (Member(VISITOR, event.device_id, {"unique_visitors": 1}),
               Member(VISIT, f"{event.device_id}/{event.session_id}", {"visits": 1}),
               *active(event.user_id, VIEWER))
    return Rollup(day=shop_day(when(event.viewed_at, envelope)), counters={"page_views": 1}, members=members,
                  breakdowns=(Breakdown("region", event.region, {"page_views": 1}),))


def product_viewed(event: ProductViewed, envelope: EventEnvelope) -> Rollup:
    """A logged-in shopper opened a product's page (the product service publishes only those): funnel step 1."""
    if not event.user_id:
        raise InvalidEvent("product-viewed without a user id")
    return Rollup(day=shop_day(when(event.viewed_at, envelope)), counters={"product_views": 1},
                  members=active(event.user_id, VIEWER))


def cart_item_added(event: CartItemAdded, envelope: EventEnvelope) -> Rollup:
    return Rollup(day=shop_day(when(event.added_at, envelope)), counters={"cart_additions": 1},
                  members=active(event.user_id, CART_USER))


def _order_no(event: OrderCreated | OrderPaid | OrderCancelled | OrderRefunded) -> str:
    if not event.order_no:
        raise InvalidEvent("an order event without an order number")
    return event.order_no


def order_created(event: OrderCreated, envelope: EventEnvelope) -> Rollup:
    return Rollup(day=shop_day(when(event.created_at, envelope)), fact=("order_created", _order_no(event)),
                  counters={"orders": 1}, members=active(event.user_id, ORDER_USER))


def _sold(lines: list[OrderLine]) -> list[SoldLine]:
    return [SoldLine(line.product_id, line.category_id, line.brand_id, line.quantity, line.price_fen) for line in lines]


def order_paid(event: OrderPaid, envelope: EventEnvelope) -> Rollup:
    gmv = event.amounts.payable_fen
    return Rollup(day=shop_day(when(event.paid_at, envelope)), fact=("order_paid", _order_no(event)),
                  counters={"paid_orders": 1, "gmv_fen": gmv}, members=active(event.user_id, PAYER),
                  breakdowns=(*sales_breakdowns(_sold(list(event.lines))),
                              Breakdown("province", event.province, {"paid_orders": 1, "gmv_fen": gmv})))


def order_cancelled(event: OrderCancelled, envelope: EventEnvelope) -> Rollup:
    return Rollup(day=shop_day(when(event.cancelled_at, envelope)), fact=("order_cancelled", _order_no(event)),
                  counters={"cancelled_orders": 1})


def order_refunded(event: OrderRefunded, envelope: EventEnvelope) -> Rollup:
    if not _order_no(event) or not event.refund_no:
        raise InvalidEvent("order-refunded without a refund number")
    return Rollup(day=shop_day(when(event.refunded_at, envelope)), fact=("refund", event.refund_no),
                  counters={"refunds": 1, "refund_fen": event.amount_fen})


def late_payment_received(event: LatePaymentReceived, envelope: EventEnvelope) -> Rollup:
    """Money for an order that could not take it: neither a sale nor GMV; counted apart (its refund follows)."""
    if not event.order_no or not event.out_trade_no:
        raise InvalidEvent("late-payment-received without an order or payment number")
    return Rollup(day=shop_day(when(event.received_at, envelope)),
                  fact=("late_payment", f"{event.channel}:{event.out_trade_no}"),
                  counters={"late_payments": 1, "late_payment_fen": event.amount_fen})


def late_payment_refunded(event: LatePaymentRefunded, envelope: EventEnvelope) -> Rollup:
    """A late payment went back: not a refund of a sale (refund_fen and net GMV stay as they are)."""
    if not event.refund_no:
        raise InvalidEvent("late-payment-refunded without a refund number")
    return Rollup(day=shop_day(when(event.refunded_at, envelope)), fact=("late_refund", event.refund_no),
                  counters={"late_refunds": 1, "late_refund_fen": event.amount_fen})


def refund_paid_twice(event: RefundPaidTwice, envelope: EventEnvelope) -> Rollup:
    """A closed refund WeChat Pay paid after another refund had paid the same units or money: money out twice, but
    not a refund the sales figures count (refund_fen and net GMV stay as they are); counted apart."""
    if not event.refund_no:
        raise InvalidEvent("refund-paid-twice without a refund number")
    return Rollup(day=shop_day(when(event.paid_at, envelope)), fact=("refund_twice", event.refund_no),
                  counters={"refunds_paid_twice": 1, "refund_paid_twice_fen": event.amount_fen})


def member_joined(event: MemberJoined, envelope: EventEnvelope) -> Rollup:
    return Rollup(day=shop_day(when(event.joined_at, envelope)), fact=("member", str(event.user_id)),
                  counters={"new_members": 1}, members=active(event.user_id))


def member_recharged(event: MemberRecharged, envelope: EventEnvelope) -> Rollup:
    if not event.recharge_no:
        raise InvalidEvent("member-recharged without a recharge number")
    return Rollup(day=shop_day(when(event.recharged_at, envelope)), fact=("recharge", event.recharge_no),
                  counters={"recharges": 1, "recharge_fen": event.amount_fen}, members=active(event.user_id))


def member_withdrawn(event: MemberWithdrawn, envelope: EventEnvelope) -> Rollup:
    # The id names the fact: without it every such withdrawal would be one fact, counted (and listed) once.
    if not event.withdrawal_id:
        raise InvalidEvent("member-withdrawn without a withdrawal id")
    return Rollup(day=shop_day(when(event.withdrawn_at, envelope)), fact=("withdrawal", str(event.withdrawal_id)),
                  counters={"withdrawals": 1, "withdrawal_fen": event.amount_fen})


def member_plan_subscribed(event: MemberPlanSubscribed, envelope: EventEnvelope) -> Rollup:
    """A paid plan bought with the wallet: plan sales, counted apart (not an order: no GMV, no paid order)."""
    if not event.posting_key:
        raise InvalidEvent("member-plan-subscribed without a posting key")
    return Rollup(day=shop_day(when(event.subscribed_at, envelope)), fact=("plan", fact_key(event.posting_key)),
                  counters={"plan_subscriptions": 1, "plan_subscription_fen": event.amount_fen},
                  members=active(event.user_id))


def fact_key(key: str) -> str:
    """`key` as counted_facts keeps it (64 characters): a longer one (a posting key carries the shopper's idempotency
    key, up to 128) by its SHA-256, so two keys alike in their first 64 characters are still two facts."""
    return key if len(key) <= 64 else hashlib.sha256(key.encode()).hexdigest()


def recording(rollup_of: Callable[[Any, EventEnvelope], Rollup]) -> Handler[AnalyticsUnitOfWork]:
    """A handler keeping the event raw and adding its rollup (once per fact) when the unit of work commits."""
    def handle(uow: AnalyticsUnitOfWork, payload: Message, envelope: EventEnvelope) -> None:
        rollup = rollup_of(payload, envelope)
        uow.add_event(RawEvent(event_id=envelope.event_id, event_type=envelope.event_type,
                               aggregate_id=envelope.aggregate_id, occurred_at=_moment(envelope.occurred_at, envelope),
                               day=rollup.day, payload=envelope.payload), rollup)
    handle.__name__ = f"on_{rollup_of.__name__}"
    return handle


on_user_registered = recording(user_registered)

HANDLERS: dict[type[Message], Handler[AnalyticsUnitOfWork]] = {
    UserRegistered: on_user_registered,
    PageViewed: recording(page_viewed),
    ProductViewed: recording(product_viewed),
    CartItemAdded: recording(cart_item_added),
    OrderCreated: recording(order_created),
    OrderPaid: recording(order_paid),
    OrderCancelled: recording(order_cancelled),
    OrderRefunded: recording(order_refunded),
    LatePaymentReceived: recording(late_payment_received),
    LatePaymentRefunded: recording(late_payment_refunded),
    RefundPaidTwice: recording(refund_paid_twice),
    MemberJoined: recording(member_joined),
    MemberRecharged: recording(member_recharged),
    MemberWithdrawn: recording(member_withdrawn),
    MemberPlanSubscribed: recording(member_plan_subscribed),
}
