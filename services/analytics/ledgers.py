"""The ledger exports (A3): every order placed in a period, and every money movement, from the raw events kept.

The analytics service keeps each business event it consumes, so finance gets its ledgers without asking the
order or member service. A fact published twice under two event ids (a producer replaying its outbox by
mistake: the rollups count it once, see the README) is listed once, on the day the rollups counted it, so the
money ledger's totals per day are the daily report's gmv_fen, refund_fen, recharge_fen, withdrawal_fen,
late_payment_fen, late_refund_fen, plan_subscription_fen and refund_paid_twice_fen.

Memory stays bounded: events are read PAGE at a time (keyset pages, each a short transaction of its own), an
order's later events are looked up a page of orders at a time, and the only thing kept from page to page is
the facts already listed on the current day (to drop a repeat that falls on the next page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.member_events_pb2 import MemberPlanSubscribed, MemberRecharged, MemberWithdrawn
from mall.events.v1.order_events_pb2 import (
    LatePaymentReceived,
    LatePaymentRefunded,
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderRefunded,
    RefundPaidTwice,
)

from services.analytics import consumers
from services.analytics.domain import Period, RawEvent, Rollup
from services.analytics.uow import AnalyticsUnitOfWork
from services.common.events import EVENT_TYPES, event_type_of, timestamp

PAGE = 2000  # events read at a time
MESSAGE_TYPES = {name: message_type for message_type, name in EVENT_TYPES.items()}
M = TypeVar("M", bound=Message)
Row = tuple[Any, ...]
Decoded = tuple[RawEvent, Any]  # the raw event and its payload message

# How the consumer counted each event of a ledger: its rollup names the fact ("order_paid", order_no), ...
COUNTED_AS: dict[type[Message], Callable[[Any, EventEnvelope], Rollup]] = {
    OrderCreated: consumers.order_created, OrderPaid: consumers.order_paid, OrderRefunded: consumers.order_refunded,
    MemberRecharged: consumers.member_recharged, MemberWithdrawn: consumers.member_withdrawn,
    LatePaymentReceived: consumers.late_payment_received, LatePaymentRefunded: consumers.late_payment_refunded,
    MemberPlanSubscribed: consumers.member_plan_subscribed, RefundPaidTwice: consumers.refund_paid_twice,
}
ORDER_CREATED = (event_type_of(OrderCreated),)
MONEY_EVENTS = tuple(event_type_of(t) for t in (OrderPaid, OrderRefunded, MemberRecharged, MemberWithdrawn,
                                               LatePaymentReceived, LatePaymentRefunded, MemberPlanSubscribed,
                                               RefundPaidTwice))


def decode(raw: RawEvent) -> Any:
    return MESSAGE_TYPES[raw.event_type].FromString(raw.payload)


def _envelope(raw: RawEvent) -> EventEnvelope:
    """The envelope the consumer read a kept event in, as far as naming and dating it goes."""
    envelope = EventEnvelope(event_id=raw.event_id, event_type=raw.event_type)
    envelope.occurred_at.CopyFrom(timestamp(raw.occurred_at))
    return envelope


def _at(stamp: Timestamp, raw: RawEvent) -> str:
    """The time of the fact as the consumer dated it (consumers.when), ISO 8601 in UTC."""
    return consumers.when(stamp, _envelope(raw)).isoformat()


def _shown(stamp: Timestamp) -> str:
    """A time the row shows but nothing is counted on (a plan's expiry, which renewals push on without a bound): ISO 8601
    in UTC as it is, not checked against the range a fact's date must be in (`_at`)."""
    return stamp.ToDatetime(tzinfo=UTC).isoformat()


def _fact(raw: RawEvent, message: Message) -> tuple[str, str]:
    fact = COUNTED_AS[type(message)](message, _envelope(raw)).fact
    assert fact is not None
    return fact


def _pages(uow: AnalyticsUnitOfWork, period: Period, types: Sequence[str]) -> Iterator[list[RawEvent]]:
    after = None
    while True:
        with uow:
            page = uow.rollups.ledger_events(period, types, after=after, limit=PAGE)
        yield page
        if len(page) < PAGE:
            return
        after = (page[-1].day, page[-1].occurred_at, page[-1].event_id)


def _counted_once(uow: AnalyticsUnitOfWork, pages: Iterable[list[RawEvent]]) -> Iterator[list[Decoded]]:
    """Each page decoded, less the repeats of a fact: listed before on its day, or counted on another day."""
    day: date | None = None
    listed: set[tuple[str, str]] = set()
    for page in pages:
        decoded = [(raw, decode(raw)) for raw in page]
        facts = [_fact(raw, message) for raw, message in decoded]
        with uow:
            counted = {kind: uow.rollups.fact_days(kind, {key for k, key in facts if k == kind})
                       for kind in {kind for kind, _ in facts}}
        kept = []
        for (raw, message), (kind, key) in zip(decoded, facts, strict=True):
            if raw.day != day:
                day, listed = raw.day, set()
            # A key too long for counted_facts is not found there: listed, rather than lost.
            if (kind, key) in listed or counted[kind].get(key, raw.day) != raw.day:
                continue
            listed.add((kind, key))
            kept.append((raw, message))
        yield kept


# Orders: one row per order placed in the period, with what its later events (whatever their day) tell

ORDER_COLUMNS = (
    "date", "order_no", "created_at", "user_id", "province", "units", "items_total_fen", "level_discount_fen",
    "coupon_discount_fen", "points_discount_fen", "freight_fen", "payable_fen", "paid_at", "pay_channel",
    "out_trade_no", "paid_fen", "coupon_id", "points_used", "cancelled_at", "cancelled_by", "refunds",
    "refunded_fen", "points_returned", "last_refunded_at", "state",
)


def order_rows(uow: AnalyticsUnitOfWork, period: Period) -> Iterator[Row]:
    for page in _counted_once(uow, _pages(uow, period, ORDER_CREATED)):
        with uow:
            later = uow.rollups.order_follow_ups({created.order_no for _, created in page})
        trails: dict[str, list[Decoded]] = {}
        for raw in later:
            message = decode(raw)
            trails.setdefault(message.order_no, []).append((raw, message))
        for raw, created in page:
            yield order_row(raw, created, trails.get(created.order_no, []))


def _first(events: list[Decoded], message_type: type[M]) -> tuple[RawEvent, M] | None:
    return next(((raw, message) for raw, message in events if isinstance(message, message_type)), None)


def order_row(raw: RawEvent, created: OrderCreated, later: list[Decoded]) -> Row:
    """`later`: the order's paid, cancelled and refunded events, in time order."""
    money = created.amounts
    values: dict[str, Any] = {
        "date": raw.day.isoformat(), "order_no": created.order_no, "created_at": _at(created.created_at, raw),
        "user_id": created.user_id, "province": created.province,
        "units": sum(line.quantity for line in created.lines), "items_total_fen": money.items_total_fen,
        "level_discount_fen": money.level_discount_fen, "coupon_discount_fen": money.coupon_discount_fen,
        "points_discount_fen": money.points_discount_fen, "freight_fen": money.freight_fen,
        "payable_fen": money.payable_fen, "paid_fen": 0,
    }
    if paid := _first(later, OrderPaid):
        event, message = paid
        values |= {"paid_at": _at(message.paid_at, event), "pay_channel": message.channel,
                   "out_trade_no": message.out_trade_no, "paid_fen": message.paid_fen,
                   "coupon_id": message.coupon_id or None, "points_used": message.points_used}
    if cancelled := _first(later, OrderCancelled):
        event, message = cancelled
        values |= {"cancelled_at": _at(message.cancelled_at, event), "cancelled_by": message.cancelled_by}
    refunds: dict[str, OrderRefunded] = {}
    refunded_at: dict[str, str] = {}
    for event, message in later:
        if isinstance(message, OrderRefunded) and message.refund_no not in refunds:
            refunds[message.refund_no], refunded_at[message.refund_no] = message, _at(message.refunded_at, event)
    refunded_fen = sum(refund.amount_fen for refund in refunds.values())
    values |= {"refunds": len(refunds), "refunded_fen": refunded_fen,
               "points_returned": sum(refund.points_returned for refund in refunds.values()),
               "last_refunded_at": max(refunded_at.values(), default=None),
               "state": order_state(paid_fen=values["paid_fen"], refunded_fen=refunded_fen, paid=paid is not None,
                                    cancelled=cancelled is not None, refunds=len(refunds))}
    return tuple(values.get(column) for column in ORDER_COLUMNS)


def order_state(*, paid_fen: int, refunded_fen: int, paid: bool, cancelled: bool, refunds: int = 0) -> str:
    """What the events say of the order (the analytics service is not told of shipping or receipt): refunded
    (in full), cancelled (a paid one: its refund under way), partly_refunded (`refunds`: how many, a refund of
    0 fen included: units paid with points alone, their points given back), paid or pending_payment."""
    if refunded_fen and refunded_fen >= paid_fen:
        return "refunded"
    if cancelled:
        return "cancelled"
    if refunded_fen or refunds:
        return "partly_refunded"
    return "paid" if paid else "pending_payment"


# Money: one row per payment, refund, recharge, withdrawal, late payment and its refund, paid plan bought with the
# wallet, and refund paid twice, of the period; + came in, - went out

MONEY_COLUMNS = (
    "date", "occurred_at", "movement", "channel", "amount_fen", "bonus_fen", "user_id", "member_no", "order_no",
    "out_trade_no", "refund_no", "recharge_no", "withdrawal_id", "wallet_balance_fen", "withdrawal_no",
    "requested_fen", "bonus_forfeited_fen", "reason", "plan_id", "plan_name", "plan_expires_at", "posting_key",
    "event_id",
)


def money_rows(uow: AnalyticsUnitOfWork, period: Period) -> Iterator[Row]:
    for page in _counted_once(uow, _pages(uow, period, MONEY_EVENTS)):
        for raw, message in page:
            yield movement_row(raw, message)


def movement_row(raw: RawEvent, message: Any) -> Row:
    if isinstance(message, OrderPaid):
        found = {"occurred_at": _at(message.paid_at, raw), "movement": "payment", "channel": message.channel,
                 "amount_fen": message.paid_fen, "order_no": message.order_no, "out_trade_no": message.out_trade_no}
    elif isinstance(message, OrderRefunded):
        found = {"occurred_at": _at(message.refunded_at, raw), "movement": "refund", "channel": message.channel,
                 "amount_fen": -message.amount_fen, "order_no": message.order_no, "refund_no": message.refund_no}
    elif isinstance(message, MemberRecharged):
        found = {"occurred_at": _at(message.recharged_at, raw), "movement": "recharge", "channel": message.channel,
                 "amount_fen": message.amount_fen, "bonus_fen": message.bonus_fen, "member_no": message.member_no,
                 "recharge_no": message.recharge_no, "wallet_balance_fen": message.balance_fen}
    elif isinstance(message, LatePaymentReceived):
        found = {"occurred_at": _at(message.received_at, raw), "movement": "late_payment", "channel": message.channel,
                 "amount_fen": message.amount_fen, "order_no": message.order_no,
                 "out_trade_no": message.out_trade_no, "reason": message.reason}
    elif isinstance(message, LatePaymentRefunded):
        found = {"occurred_at": _at(message.refunded_at, raw), "movement": "late_payment_refund",
                 "channel": message.channel, "amount_fen": -message.amount_fen, "order_no": message.order_no,
                 "out_trade_no": message.out_trade_no, "refund_no": message.refund_no}
    elif isinstance(message, RefundPaidTwice):  # a closed refund paid after another had paid the same: out twice
        found = {"occurred_at": _at(message.paid_at, raw), "movement": "refund_paid_twice", "channel": message.channel,
                 "amount_fen": -message.amount_fen, "order_no": message.order_no, "refund_no": message.refund_no}
    elif isinstance(message, MemberPlanSubscribed):  # wallet -> plan sales, like an order paid with the balance
        found = {"occurred_at": _at(message.subscribed_at, raw), "movement": "plan_subscription", "channel": "balance",
                 "amount_fen": message.amount_fen, "member_no": message.member_no,
                 "wallet_balance_fen": message.balance_fen, "plan_id": message.plan_id, "plan_name": message.plan_name,
                 "plan_expires_at": _shown(message.expires_at), "posting_key": message.posting_key}
    else:  # member-withdrawn; one published before it carried its number, asked amount, forfeit and channel: empty
        found = {"occurred_at": _at(message.withdrawn_at, raw), "movement": "withdrawal",
                 "channel": message.channel or None, "amount_fen": -message.amount_fen, "member_no": message.member_no,
                 "withdrawal_id": message.withdrawal_id, "wallet_balance_fen": message.balance_fen,
                 "withdrawal_no": message.withdrawal_no or None, "requested_fen": message.requested_fen or None,
                 "bonus_forfeited_fen": message.bonus_forfeited_fen if message.withdrawal_no else None}
    values = {"date": raw.day.isoformat(), "user_id": message.user_id, "event_id": raw.event_id, **found}
    return tuple(values.get(column) for column in MONEY_COLUMNS)
