"""Refunds through the original payment channel: the one engine cancellation review and after-sales use.

Starting one: `start_refund(uow, payments, members, order_id=, items=[RefundItem(line_id, quantity,
amount_fen)], reason=, actor=, source=, now=)`; an empty `items` refunds whatever of the order is not
refunded yet (every line's remaining units and paid share, and the freight).

1. In one transaction under the order's row lock the amount is *reserved*: conditional updates add it
   to `orders.refunded_fen` (never above `payable_fen`) and to each line's `refunded_quantity` /
   `refunded_fen` (never above its quantity and its paid share, `domain.paid_shares`); CHECK
   constraints stand behind both. The refund row is written PENDING. Too much → 409 REFUND_EXCEEDS_PAID;
   neither units nor money left → 409 REFUND_NOTHING_LEFT. Units paid 0 fen (a category coupon's lines, an
   order paid with channel "none") make a 0-fen refund: channel "none", SUCCESS in that same transaction.
2. Then, outside the transaction, the channel the order was paid with is asked:
   - wechat: `POST /v3/refund/domestic/refunds` (out_refund_no = refund_no, notify_url for refunds).
     PROCESSING leaves it PENDING; a refusal (4xx) closes it and answers 409 REFUND_REFUSED; no answer
     leaves it PENDING for the fallback job (sent, the answer lost: see "in flight" below).
   - balance: member `RefundToBalance` (idempotent by refund_no), synchronous → SUCCESS; the order
     service asks as itself (services/order/neighbours.py), whoever started the refund. No answer
     leaves it PENDING for the fallback job; a refusal (BALANCE_PAYMENT_NOT_FOUND, REFUND_EXCEEDS_PAYMENT) closes
     it when first asked, and makes it ABNORMAL when asked again (`_retry_wallet`): staff retry or close it.
3. Settlement (`settle_refund`), exactly once per refund under its row lock (replays change nothing):
   from the verified refund notify (`handle_refund_notify`, POST /payments/wechat/refund-notify), from
   the fallback job (`reconcile_refunds`: refunds PENDING for a few minutes are asked about again —
   WeChat Pay's are queried, or asked for again when WeChat Pay never got them; wallet refunds are
   asked of the member service again), or at once for balance refunds. `retry_refund` asks again
   about one PENDING refund (the job, and staff who do not want to wait for it).
   - SUCCESS: `order-refunded` (lines with the refunded quantities, and `points_returned`: points spent on
     cancelled unshipped units, credited back by the member service) in the same transaction, unless the refund
     is of 0 fen and returns no points (nothing moved: nothing for the member service or analytics); when the
     successful refunds add up to the whole payable amount and the state machine has a "refunded" step
     from the order's state (REFUNDING → REFUNDED), the order takes it. Partial refunds keep the state.
   - CLOSED: the reserved amounts are given back (the refund may be started again).
   - ABNORMAL (WeChat Pay could not pay it back, e.g. the shopper's card was cancelled) is *not* an end:
     WeChat Pay keeps the money and the merchant may still complete the refund there (merchant console,
     or its apply-abnormal-refund API) under the same out_refund_no. So the amount stays reserved (no
     second refund of the same money can start), the order's history notes that staff must act, and the
     refund still settles SUCCESS (or CLOSED) from a notify or a query. Staff either fix it at WeChat Pay
     and retry it (`retry_refund`: the same refund_no is asked about again; PROCESSING makes it PENDING
     again), or close it (`close_refund`, with a reason, audited in the order's history): WeChat Pay is
     asked first (under the refund's row lock, below), and only a refund it still reports ABNORMAL (or CLOSED, or
     knows nothing of) is closed, giving the amount back.
     A new refund of that money through WeChat Pay works only once WeChat Pay has let go of it too (the
     refund closed there); otherwise WeChat Pay refuses it (409 REFUND_REFUSED) and nothing is reserved.
     The `abnormal-refunds` job exports how many are ABNORMAL and for how long (`watch_abnormal_refunds`), for
     the AbnormalRefundWaiting alert, and how many are PENDING past `stuck_seconds` (ORDER_REFUND_STUCK_SECONDS)
     and for how long, for the RefundPendingStuck alert: the channel gives no usable answer about those.
   - A PENDING WeChat Pay refund WeChat Pay never received (the first call got no answer) and that it refuses
     when the fallback job sends it again (say NOT_ENOUGH: the merchant's balance is short) would wait PENDING for
     ever. Once it has been PENDING `stuck_seconds`, the job makes it ABNORMAL (`_refused_abnormal`; the refusal's
     code in the order's history): nothing was paid, the amount stays reserved, and staff's ABNORMAL flow takes
     over (alerted, then retry it once the cause is fixed, or close it: WeChat Pay holds no refund under that
     number, RESOURCE_NOT_EXISTS, so it can close). Staff retrying such a refund themselves get the 503 below.
     When staff retry or close one and WeChat Pay gives no usable answer to the query, or refuses the refund sent
     again, nothing was sent that WeChat Pay could pay, and the refund is left as it was: 503
     PAYMENT_CHANNEL_UNAVAILABLE (`channel_unavailable`).
   - In flight: a refund *sent* to WeChat Pay whose answer is lost (no answer in time, a reset connection, a 5xx:
     `AnswerLost`) may still be paid by WeChat Pay, and a query right after it may find nothing yet
     (RESOURCE_NOT_EXISTS). So every path that sends one (the first call, `retry_refund`'s re-send, a late payment's
     refund) leaves it PENDING (`_in_flight`; an ABNORMAL one staff retried becomes PENDING, with a step in the
     order's history): staff cannot close it, so its amount is never freed for a second refund or paid another way
     while WeChat Pay may pay it, and the fallback job asks about it until WeChat Pay's answer settles it. Staff's
     retry still answers 503 PAYMENT_CHANNEL_UNAVAILABLE, saying the refund was sent and is PENDING
     (`sent_pending`, details.status PENDING). A lost answer to a query changes nothing: a query moves no money.
   - Asking and closing are serialised per refund, on every replica, by the refund's row lock: `retry_refund` (the
     fallback job, staff's retry, approving a cancellation again, after-sales' retry, cancel-unshipped's ABNORMAL
     branch all go through it) and `start_late_refund` hold it while WeChat Pay is queried and the refund sent
     again, and apply the answer in that transaction; `close_refund` takes it before it asks WeChat Pay and holds
     it until it has closed. So a close never acts on a RESOURCE_NOT_EXISTS a re-send has made stale: after a
     retry it finds the refund PENDING again (409 REFUND_STATE_CONFLICT with that status), and a retry after a
     close finds it CLOSED and sends nothing. The lock is held for at most the channel's timeouts (a query and a
     re-send); a notify or another retry of that refund waits for it, nothing else does (the order's row lock is
     taken only after the answer, an open refund's before its order's: Locks, below; on SQLite, dev only, every
     transaction waits meanwhile). A refund's first call (`start_refund`) is made outside it: that refund is
     PENDING, which staff cannot close.
   - A refund CLOSED here that WeChat Pay reports SUCCESS later (staff closed it, then it was completed at WeChat
     Pay after all) stays CLOSED, but its money may have been refunded twice: the order's history records it
     once for finance and `mall_refunds_paid_after_close_total` counts it (RefundPaidAfterClose pages). Its units
     count as refunded again (`paid_after_close_at`: after-sales can no longer claim them), and an after-sales or a
     cancellation's refund's amounts are reserved again when nothing else took them since, with its `order-refunded`
     (a REFUNDING order refunded in full so becomes REFUNDED, as by any paid refund: `_paid_after_close`). When
     open refunds of the order hold them, it waits for their end (`paid_after_close_waiting_at`, `_decide_waiting`).

Locks: PostgreSQL row locks, taken in one order on every path, or two paths taking two of them the other way round
deadlock: an open (PENDING, ABNORMAL) refund's row, then its order's row, then the rows of the order's ended (SUCCESS,
CLOSED) refunds. The paths that ask a refund's channel (`retry_refund`, `_retry_wallet`, `close_refund`,
`start_late_refund`) hold its row while they do, and take its order's only while it is open: one they find ended they
answer as it is, holding nothing else. Every change of an order's refunded amounts, and of its refunds' paid-after-close
markers, is made under the order's row lock: ending a refund updates the refunds waiting for it after it
(`_decide_waiting`), and `start_refund`, `cancel_unshipped` and `review_cancellation` lock the order before any refund
(theirs is a new row). `settle_refund` (a notify, a channel's answer) and `mark_noted_refund` lock the refund first,
holding nothing else; one found ended (a replayed notify, a refund paid after its close) is let go of at once, nothing
changed, and locked again after its order (`_locked_with_order`): ended is for good, so it never needs taking before
its order again. After-sales cases come last: the listeners lock them inside these transactions, and a case's own steps
lock the case alone.

Late payments (`start_late_refund`): WeChat Pay money for an order that could not take it (cancelled, paid too
late, or paid otherwise meanwhile; services/order/service.py `refund_late_payment`) goes back through this engine
too, as a refund of source "late_payment" under the deterministic number `LATE<out_trade_no>` (the order number,
or `<order_no>_<n>` for a later WeChat Pay transaction of the order), so a replayed payment notify finds the same
refund and never starts a second one. Its refund notify, the fallback job, the ABNORMAL and stuck gauges and
staff's retry (`retry_refund`) and close (`close_refund`) all work as for any WeChat Pay refund. But it is not the
order's money: nothing is reserved (no `refunded_fen`, no line refunded), a SUCCESS publishes `late-payment-refunded`
(once per refund number) instead of `order-refunded` and never moves the order to REFUNDED, and a CLOSED one frees
nothing. One staff closed (they returned the money another way) that WeChat Pay pays after all publishes it too, and
refund-paid-twice, as any refund paid after its close that nothing can count (`_paid_after_close`). One WeChat Pay (not
staff) closes becomes ABNORMAL, not CLOSED (`late_refund_closed_note` in the order's history): the late money is
still with the merchant, so the AbnormalRefundWaiting alert and staff's list show it until staff return it another
way and close it (`close_refund`: WeChat Pay reports it CLOSED, so it closes); a retry that finds it still CLOSED
there changes nothing. Likewise a first call WeChat Pay refuses makes it ABNORMAL, not CLOSED: nobody else would
ever see money stuck that way. Staff retry one with
`staff_retry_refund` (POST /admin/refunds/{refund_no}/retry): no cancellation review or case reaches its order.

Listeners: `SETTLED_LISTENERS[prefix](uow, refund, now)` is called whenever a refund whose source is
`prefix` or `prefix:<anything>` (e.g. "after_sale:12") changes status (check `refund.status`: SUCCESS
or CLOSED, the ends; ABNORMAL, staff must act; PENDING again, an ABNORMAL refund is under way once more),
inside the settling transaction: raise to roll the settlement back. An after-sales refund CLOSED and then reported
paid by WeChat Pay is heard once more, still CLOSED, with `paid_after_close_at` set (`_paid_after_close`). Register at import time of the
module that owns the source, e.g. `refunds.SETTLED_LISTENERS["after_sale"] = finish_case`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mall.events.v1.order_events_pb2 import OrderRefunded, RefundPaidTwice

from services.common import formats
from services.common.auth import refuse_own
from services.common.db import seconds_since, utcnow
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.common.events import timestamp
from services.common.order_steps import StepKind
from services.common.uow import RoundBudget, each_page, each_sweep, one_round_at_a_time
from services.common.wechatpay import NotifyRejected, WechatPay, WechatPayApiError, WechatPayError
from services.common.wechatpay import Refund as ChannelRefund
from services.order import metrics
from services.order.domain import (
    Order,
    OrderStatus,
    Refund,
    RefundItem,
    RefundLine,
    RefundStatus,
    line_points_returned,
    line_refund_fen,
    new_order_no,
    order_no_of_trade,
    order_not_found,
    paid_shares,
    plain,
)
from services.order.ports import Members
from services.order.service import (
    NO_CHANNEL,
    event_line,
    get_order,
    late_refund_no,
    late_refund_trade,
    publish_cancelled,
    publish_late_refund,
    publish_returned,
)
from services.order.uow import LineReservation, ListedRefund, OrderUnitOfWork, RefundSearch

log = logging.getLogger(__name__)

# The states an order can be refunded in (it was paid, and is not refunded, closed or awaiting review).
REFUNDABLE_STATES = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.REFUNDING})
# Refunds whose amount is reserved and may still be paid: the channel's answers move them.
OPEN = frozenset({RefundStatus.PENDING, RefundStatus.ABNORMAL})
# What WeChat Pay answers besides PROCESSING (which leaves a refund, or makes it again, PENDING).
CHANNEL_STATUSES = frozenset({RefundStatus.SUCCESS, RefundStatus.CLOSED, RefundStatus.ABNORMAL})
WECHAT_REASON_CHARS = 80  # WeChat Pay's limit on a refund's reason
NOTHING_PAID = "nothing to refund (0 fen paid for these units)"  # the history of a 0-fen refund
# "RF" + new_order_no; "LATE" + the out_trade_no of a late payment (service.late_refund_no): order_no[_<attempt>]
REFUND_NO = re.compile(r"RF[0-9]{20}[0-9a-f]{8}|LATE[0-9]{20}[0-9a-f]{8}(_[0-9]{1,2})?")
LATE_PAYMENT = "late_payment"  # the source of a late payment's refund: money the order never kept
CANCELLATION = "cancel"  # the source of the refund of a cancellation staff approved
AFTER_SALE = "after_sale"  # the sources after_sale:<case id>: an after-sales case's refund (services/order/aftersales.py)
UNSHIPPED = "cancel_unshipped"  # the source of the refunds of a partly shipped order's unshipped units
# What staff may list refunds by: one source, or every case's refund ("after_sale").
SOURCE_FILTER = re.compile(rf"{AFTER_SALE}(:[1-9][0-9]{{0,17}})?|{CANCELLATION}|{UNSHIPPED}|{LATE_PAYMENT}")
STUCK_SECONDS = 3600  # a refund PENDING this long is counted as stuck (ORDER_REFUND_STUCK_SECONDS)

SettledListener = Callable[[OrderUnitOfWork, Refund, datetime], None]
SETTLED_LISTENERS: dict[str, SettledListener] = {}


class RefundSender(Protocol):
    """Asking WeChat Pay for a refund, its end notified to our refund notify URL (a late payment's refund is
    asked for from the payment paths' adapter, built with that URL: service.Prepay)."""

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund: ...


class RefundPayments(RefundSender, Protocol):
    """WeChat Pay's refund side, with our refund notify URL bound (WechatRefunds)."""

    def query_refund(self, out_refund_no: str) -> ChannelRefund: ...

    def verify_refund_notify(self, headers: Mapping[str, str], body: bytes | str) -> ChannelRefund: ...


@dataclass(frozen=True)
class WechatRefunds:
    """The WeChat Pay adapter for refunds, notifying `notify_url` (POST /api/v1/payments/wechat/refund-notify)."""

    wechat: WechatPay
    notify_url: str

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        return self.wechat.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=refund_fen,
                                  total_fen=total_fen, reason=reason, notify_url=self.notify_url)

    def query_refund(self, out_refund_no: str) -> ChannelRefund:
        return self.wechat.query_refund(out_refund_no)

    def verify_refund_notify(self, headers: Mapping[str, str], body: bytes | str) -> ChannelRefund:
        return self.wechat.verify_refund_notify(headers, body)


def refund_not_found() -> NotFound:
    return NotFound("REFUND_NOT_FOUND", "no such refund")


# -- starting ------------------------------------------------------------------------------------

def start_refund(uow: OrderUnitOfWork, payments: RefundPayments | None, members: Members, *, order_id: int,
                 items: list[RefundItem], reason: str, actor: str, source: str, now: datetime | None = None,
                 refund_no: str = "") -> Refund:
    """Reserve the amount, record the refund PENDING, and ask the original channel to pay it back.

    `refund_no`: a number the caller recorded beforehand (after-sales, on its case): a refund already started
    under it is returned as it is (the order's row lock orders the check), so starting again never refunds twice.
    """
    now = now or utcnow()
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise order_not_found()
        started = uow.refunds.get(refund_no) if refund_no else None
        if started is not None:
            uow.commit()
            return started
        refund = reserve_refund(uow, order, items, reason=reason, actor=actor, source=source, now=now,
                                refund_no=refund_no)
        uow.commit()
    return send_refund(uow, payments, members, order, refund, now)


def reserve_refund(uow: OrderUnitOfWork, order: Order, items: list[RefundItem], *, reason: str, actor: str,
                   source: str, now: datetime, refund_no: str = "", points_returned: int = 0) -> Refund:
    """Step 1 of `start_refund` inside the caller's transaction, `order` locked by it: the amount reserved, the
    refund recorded PENDING (a 0-fen one SUCCESS at once). The caller commits, then calls `send_refund`: a use
    case that changes the order too (cancelling its unshipped units) does both in one transaction.
    `points_returned`: points spent on the units, credited back by the member service when it succeeds
    (cancel-unshipped's)."""
    if order.paid_at is None or order.status not in REFUNDABLE_STATES:
        raise Conflict("ORDER_STATE_CONFLICT", f"an order in {order.status} cannot be refunded",
                       details={"status": order.status, "action": "refund"})
    lines = _refund_lines(order, items)
    amount = sum(line.amount_fen for line in lines) if items else order.payable_fen - order.refunded_fen
    if not (amount or lines):
        raise Conflict("REFUND_NOTHING_LEFT", "nothing of this order is left to refund",
                       details={"status": order.status, "refunded_fen": order.refunded_fen})
    shares = paid_shares(order)
    if not uow.refunds.reserve(order, amount, [LineReservation(line.line_id, line.quantity, line.amount_fen,
                                                               shares[line.line_id]) for line in lines]):
        raise Conflict("REFUND_EXCEEDS_PAID", "this refund would return more than was paid for the order or line",
                       details={"payable_fen": order.payable_fen, "refunded_fen": order.refunded_fen,
                                "amount_fen": amount})
    refund = Refund(refund_no=refund_no or "RF" + new_order_no(now), order_id=order.id or 0, source=source[:64],
                    status=RefundStatus.PENDING.value, amount_fen=amount,
                    channel=order.pay_channel if amount else NO_CHANNEL, reason=reason[:255], actor=actor[:64],
                    created_at=now, updated_at=now, lines=lines, points_returned=points_returned)
    uow.refunds.add(refund)
    if not amount:  # units paid 0 fen: no channel to ask, so it ends here, never left PENDING for the job
        _change(uow, order, refund, RefundStatus.SUCCESS, actor, now)
    return refund


def send_refund(uow: OrderUnitOfWork, payments: RefundPayments | None, members: Members, order: Order,
                refund: Refund, now: datetime) -> Refund:
    """Step 2 of `start_refund`, once the reservation is committed: ask the order's channel to pay the refund back
    (a 0-fen refund, SUCCESS already, is returned as it is)."""
    return _ask_channel(uow, payments, members, order, refund, now) if refund.amount_fen else refund


def _refund_lines(order: Order, items: list[RefundItem]) -> list[RefundLine]:
    """The lines a refund returns: the items asked for, or (none asked) what is left of every line."""
    shares = paid_shares(order)
    if not items:
        left = [RefundLine(line_id=line.id or 0, quantity=line.quantity - line.refunded_quantity,
                           amount_fen=shares[line.id or 0] - line.refunded_fen) for line in order.lines]
        return [line for line in left if line.quantity or line.amount_fen]
    if len({item.line_id for item in items}) != len(items):
        raise InvalidInput("REFUND_INVALID", "name each line once", details={"items": "duplicate line_id"})
    for item in items:
        if item.line_id not in shares:
            raise NotFound("ORDER_LINE_NOT_FOUND", "no such line on this order", details={"line_id": item.line_id})
        if item.quantity < 0 or item.amount_fen < 0 or not (item.quantity or item.amount_fen):
            raise InvalidInput("REFUND_INVALID", "a refund line needs a quantity or an amount, never negative",
                               details={"line_id": item.line_id})
    return [RefundLine(line_id=item.line_id, quantity=item.quantity, amount_fen=item.amount_fen) for item in items]


def _ask_channel(uow: OrderUnitOfWork, payments: RefundPayments | None, members: Members, order: Order,
                 refund: Refund, now: datetime) -> Refund:
    if refund.channel == "balance":
        try:
            members.refund_to_balance(refund.refund_no, order.order_no, order.user_id, refund.amount_fen)
        except DomainError as exc:
            if exc.kind == ErrorKind.UNAVAILABLE:
                log.warning("refund %s to the wallet is left PENDING: %s", refund.refund_no, exc.code)
                return refund
            settle_refund(uow, refund_no=refund.refund_no, status=RefundStatus.CLOSED, actor="member", now=now)
            raise
        return settle_refund(uow, refund_no=refund.refund_no, status=RefundStatus.SUCCESS, actor="member", now=now)
    if payments is None:
        settle_refund(uow, refund_no=refund.refund_no, status=RefundStatus.CLOSED, actor="system", now=now)
        raise DomainError("WECHATPAY_NOT_CONFIGURED", "WeChat Pay is not configured on this server")
    try:
        answer = _send(payments, order, refund)
    except WechatPayApiError as exc:
        settle_refund(uow, refund_no=refund.refund_no, status=RefundStatus.CLOSED, actor="wechatpay", now=now)
        raise Conflict("REFUND_REFUSED", f"WeChat Pay refused the refund: {exc.code}",
                       details={"code": exc.code}) from None
    except AnswerLost as lost:
        with uow:  # PENDING already (just reserved): left so for the fallback job, as any send whose answer is lost
            refund = _locked(uow, refund.refund_no)
            _in_flight(uow, refund, lost.error.reason, actor="wechatpay", now=now)
            uow.commit()
        return refund
    return _apply_answer(uow, refund.refund_no, answer, actor="wechatpay", now=now)


class AnswerLost(Exception):
    """WeChat Pay was sent a refund and its answer was lost (no answer in time, a reset connection, a 5xx, an answer
    that does not verify): WeChat Pay may have taken it and may pay it, so it is in flight (`_in_flight`). Only a
    send's lost answer is one: a query's moved no money, and a refusal (WechatPayApiError) took nothing."""

    def __init__(self, error: WechatPayError) -> None:
        super().__init__(error.reason)
        self.error = error


def _send(payments: RefundSender, order: Order, refund: Refund) -> ChannelRefund:
    """Ask WeChat Pay for the refund (again: the same number is one refund there). WechatPayApiError when WeChat Pay
    refuses it; AnswerLost when its answer is lost."""
    out_trade_no, total_fen = _trade(order, refund)
    try:
        return payments.refund(out_trade_no=out_trade_no, out_refund_no=refund.refund_no,
                               refund_fen=refund.amount_fen, total_fen=total_fen,
                               reason=refund.reason[:WECHAT_REASON_CHARS] or None)
    except WechatPayApiError:
        raise
    except WechatPayError as exc:
        raise AnswerLost(exc) from None


def _in_flight(uow: OrderUnitOfWork, refund: Refund, why: str, *, actor: str, now: datetime) -> None:
    """A refund whose send's answer was lost (WeChat Pay's `AnswerLost`, `why` its reason; or the member service's
    MEMBER_UNAVAILABLE for a wallet refund, `_retry_wallet`), in the caller's transaction, `refund` locked by it: the
    channel may pay it yet, so it is PENDING, its amount reserved, and the fallback job asks about it until the answer
    settles it (WeChat Pay never having got it, it is sent again; RefundToBalance is idempotent by refund_no). Every
    path that sends a refund comes here.

    An ABNORMAL one (staff retried one WeChat Pay held nothing of, which sent it again; or a wallet one the member
    service refused before) becomes PENDING, with a step in its order's history: staff cannot close it while the
    channel may still pay it (closing frees its amount, so a new refund or staff paying the shopper another way would
    pay twice). A PENDING one is left as it was (how long it has waited keeps counting for the stuck alert and
    `_refused_abnormal`)."""
    log.warning("refund %s was sent to %s and the answer was lost (%s): PENDING until it tells what became of it",
                refund.refund_no, _channel_name(refund), why)
    if refund.status != RefundStatus.ABNORMAL:
        return
    order = _order_locked(uow, refund.order_id)
    _change(uow, order, refund, RefundStatus.PENDING, actor, now)
    order.record_step(kind=StepKind.REFUND_NOTE, actor=actor, now=now, reason=answer_lost_note(refund), shopper=False)


def answer_lost_note(refund: Refund) -> str:
    """The order history's step for an ABNORMAL refund sent again whose answer was lost."""
    channel = _channel_name(refund)
    return (f"refund {refund.refund_no} sent to {channel} again, the answer lost: PENDING, {refund.amount_fen} fen "
            f"held until {channel} tells what became of it (the fallback job asks); it cannot be closed meanwhile, "
            f"since {channel} may still pay it")[:255]


def _channel_name(refund: Refund) -> str:
    return "the member service" if refund.channel == "balance" else "WeChat Pay"


def sent_pending(refund_no: str) -> DomainError:
    """Staff retried a refund, WeChat Pay was sent it again and the answer was lost (`_in_flight` made it PENDING, and
    that is committed): PAYMENT_CHANNEL_UNAVAILABLE (503), saying so, with details.status PENDING."""
    return DomainError("PAYMENT_CHANNEL_UNAVAILABLE", "the refund was sent to WeChat Pay again but its answer was "
                       "lost: it is PENDING until WeChat Pay tells what became of it (the fallback job asks); do not "
                       "pay it another way meanwhile", kind=ErrorKind.UNAVAILABLE,
                       details={"refund_no": refund_no, "status": RefundStatus.PENDING.value})


def _trade(order: Order, refund: Refund) -> tuple[str | None, int]:
    """The WeChat Pay transaction a refund returns money of, and its total: the order's payment (the transaction that
    paid it, `Order.out_trade_no`), or for a late payment the WeChat Pay transaction that could not pay the order (its
    out_trade_no in the refund number, `late_refund_trade`; its amount the payable, or mark_paid would have refused
    it)."""
    if refund.source == LATE_PAYMENT:
        return late_refund_trade(refund.refund_no), order.payable_fen
    return order.out_trade_no, order.payable_fen


def _apply_answer(uow: OrderUnitOfWork, refund_no: str, answer: ChannelRefund, *, actor: str,
                  now: datetime) -> Refund:
    return settle_refund(uow, refund_no=refund_no, status=_answered(answer), actor=actor, now=now,
                         channel_refund_id=answer.refund_id)


def _apply_locked(uow: OrderUnitOfWork, refund: Refund, answer: ChannelRefund, *, actor: str, now: datetime) -> None:
    """`_apply_answer` inside the caller's transaction, `refund` (open) locked by it: locks its order."""
    _settle(uow, refund, _order_locked(uow, refund.order_id), _answered(answer), actor=actor, now=now,
            channel_refund_id=answer.refund_id)


def _answered(answer: ChannelRefund) -> RefundStatus:
    return RefundStatus(answer.status if answer.status in CHANNEL_STATUSES else RefundStatus.PENDING)


def start_late_refund(uow: OrderUnitOfWork, payments: RefundSender, *, out_trade_no: str, amount_fen: int,
                      reason: str, actor: str, now: datetime) -> Refund:
    """Refund in full a WeChat Pay payment of `amount_fen` under `out_trade_no` its order could not take (the late
    payment is recorded by the caller), under `LATE<out_trade_no>` (`late_refund_no`): the refund is recorded
    PENDING once, however often asked (the order's row lock orders the check), then WeChat Pay is asked while it is
    PENDING (the same number again is one refund there). PROCESSING leaves it PENDING for the notify or the fallback job; a refusal makes it ABNORMAL
    (its code in the order's history) for staff; no answer leaves it PENDING (`_in_flight`) and raises REFUND_FAILED
    (503: WeChat Pay notifies the payment again). Nothing of the order is reserved: see the module docstring."""
    refund_no = late_refund_no(out_trade_no)
    with uow:
        order = uow.orders.by_order_no(order_no_of_trade(out_trade_no), lock=True)
        if order is None or order.id is None:
            raise order_not_found()
        refund = uow.refunds.get(refund_no)
        if refund is None:
            refund = Refund(refund_no=refund_no, order_id=order.id, source=LATE_PAYMENT,
                            status=RefundStatus.PENDING.value, amount_fen=amount_fen, channel="wechat",
                            reason=reason[:255], actor=actor[:64], created_at=now, updated_at=now)
            uow.refunds.add(refund)
        uow.commit()
    if refund.status != RefundStatus.PENDING:
        return refund  # ended, or ABNORMAL: staff's, not a replayed notify's
    with uow:  # asked under the refund's row lock, as `retry_refund` does: see `close_refund`
        refund = _locked(uow, refund_no)
        if refund.status != RefundStatus.PENDING:
            uow.commit()
            return refund
        try:
            answer = _send(payments, order, refund)
        except WechatPayApiError as exc:
            _refused_abnormal(uow, refund, exc.code, now, actor="wechatpay",
                              note=late_refund_refused_note(refund, exc.code))
            uow.commit()
            return refund
        except AnswerLost as lost:
            _in_flight(uow, refund, lost.error.reason, actor="wechatpay", now=now)
            uow.commit()
            raise DomainError("REFUND_FAILED", f"the refund of a late payment was sent but its answer was lost "
                              f"({lost.error.reason}): PENDING for the refund query",
                              kind=ErrorKind.UNAVAILABLE) from None
        _apply_locked(uow, refund, answer, actor="wechatpay", now=now)
        uow.commit()
    return refund


# -- settling ------------------------------------------------------------------------------------

def settle_refund(uow: OrderUnitOfWork, *, refund_no: str, status: RefundStatus, actor: str,
                  now: datetime | None = None, channel_refund_id: str = "") -> Refund:
    """Move an open (PENDING or ABNORMAL) refund to what the channel says, once: SUCCESS or CLOSED end it,
    ABNORMAL keeps it reserved for staff, PENDING makes an ABNORMAL one wait for the channel again; the same
    status only notes the channel's refund id. Locks the refund and its order (`_locked_with_order`). A
    refund that has ended is returned as it is (but one CLOSED that WeChat Pay reports paid: `_paid_after_close`).
    """
    now = now or utcnow()
    with uow:
        refund, order = _locked_with_order(uow, refund_no)
        _settle(uow, refund, order, status, actor=actor, now=now, channel_refund_id=channel_refund_id)
        uow.commit()
    return refund


def _locked(uow: OrderUnitOfWork, refund_no: str) -> Refund:
    """The refund, its row locked until the caller's transaction ends (before its order's while it is open: Locks, in
    the module docstring)."""
    refund = uow.refunds.get(refund_no, lock=True)
    if refund is None:
        raise refund_not_found()
    return refund


def _order_locked(uow: OrderUnitOfWork, order_id: int) -> Order:
    """A refund's order, its row locked until the caller's transaction ends (after the refund's while that is open,
    before it once it has ended: Locks, in the module docstring)."""
    order = uow.orders.get(order_id, lock=True)
    assert order is not None  # a refund's order is never deleted
    return order


def _locked_with_order(uow: OrderUnitOfWork, refund_no: str) -> tuple[Refund, Order]:
    """The refund and its order, both locked in the order every path takes (Locks, in the module docstring): an open
    refund's row before its order's, an ended one's after it. The refund's lock is taken first, holding no other;
    one found ended (a replayed notify, a refund paid after its close) is let go of at once, the transaction rolled
    back with nothing changed, and locked again after its order: ended is for good, so that holds."""
    refund = _locked(uow, refund_no)
    if refund.status in OPEN:  # nothing ends it but under this lock
        return refund, _order_locked(uow, refund.order_id)
    order_id = refund.order_id
    uow.rollback()
    order = _order_locked(uow, order_id)
    return _locked(uow, refund_no), order


def _settle(uow: OrderUnitOfWork, refund: Refund, order: Order, status: RefundStatus, *, actor: str, now: datetime,
            channel_refund_id: str = "") -> None:
    """`settle_refund` inside the caller's transaction, `refund` and its `order` locked by it."""
    if refund.status in OPEN:
        refund.channel_refund_id = channel_refund_id or refund.channel_refund_id
        if status != refund.status:
            _change(uow, order, refund, status, actor, now)
    elif (refund.status, status) == (RefundStatus.CLOSED, RefundStatus.SUCCESS):
        _paid_after_close(uow, order, refund, actor, now)


def _paid_after_close(uow: OrderUnitOfWork, order: Order, refund: Refund, actor: str, now: datetime) -> None:
    """WeChat Pay paid a refund closed here (staff closed it ABNORMAL, then it was completed at WeChat Pay after all).
    Its amount was given back when it closed, so its units became claimable by after-sales again and a second refund
    may have paid the same money. Once (a replayed notify finds `paid_after_close_at` set and changes nothing):

    - `paid_after_close_at` is set: `aftersales.claimable_units` counts its units as refunded again, whatever else
      happened, so no case can be approved, received or retried on them (AFTER_SALE_QUANTITY_INVALID);
    - an after-sales or a cancellation's refund (`COUNTED_AGAIN`) has its amounts reserved again when they still fit
      (no other refund took those units or that money since): the order and its lines count it as any refund
      (REFUND_EXCEEDS_PAID, order-completed's kept units), its order-refunded is published (member points and spend,
      analytics), since it was paid, and a REFUNDING order it refunds in full takes the state machine's "refunded"
      step as a paid refund makes it (`_refunded`), so approving the cancellation again cannot pay it a second time.
      When they do not fit, the same units or money were refunded again since: nothing can count it twice (the
      CHECK constraints), so finance must recover it. But when open (PENDING or ABNORMAL) refunds of the order alone
      hold them (`_open_holders`), WeChat Pay may never pay those: it is marked waiting (`paid_after_close_waiting_at`,
      a history step naming them, nothing published) and decided when they end (`_decide_waiting`): counted as
      above if they closed unpaid, refund-paid-twice if one was paid. Cancel-unshipped's (`UNSHIPPED`) count the same way, and once
      counted cancel-unshipped no longer starts them again (ORDER_STATE_CONFLICT, as for a paid one);
    - the after-sales listener hears (`aftersales.closed_refund_paid`: the refund's case, if its refund failed, is
      REFUNDED, and if a retry refunded it again, that is noted for finance; any other open case claiming units no
      longer claimable is noted for staff);
    - the order's history records it for finance, and `mall_refunds_paid_after_close_total` counts it for the
      RefundPaidAfterClose alert; one that could not count again (the money went out twice) publishes
      refund-paid-twice, the analytics money ledger's outflow: a late payment's refund too (staff close one once they
      returned the money another way), besides its late-payment-refunded (WeChat Pay's refund of the late money).

    A refund whose step a pod of the release before migration 0017 recorded but that has no `paid_after_close_at` is
    marked at the step's time instead (`_mark_noted`), nothing else done again."""
    if refund.paid_after_close_at is not None or _mark_noted(uow, order, refund, now):
        return
    refund.paid_after_close_at = now
    counted_again = refund.source.partition(":")[0] in COUNTED_AGAIN
    counted = counted_again and _reserve_again(uow, order, refund)
    holders = _open_holders(uow, order, refund) if counted_again and not counted else []
    if holders:  # open refunds hold its amounts: WeChat Pay may never pay them, so wait for their end to decide
        refund.paid_after_close_waiting_at = now
        log.error("refund %s was closed here but WeChat Pay reports it paid: its %s fen wait for open refunds %s",
                  refund.refund_no, refund.amount_fen, [holder.refund_no for holder in holders])
        note = paid_after_close_waiting_note(refund, holders)
    elif counted:
        log.error("refund %s was closed here but WeChat Pay reports it paid: its %s fen and units count as refunded "
                  "again", refund.refund_no, refund.amount_fen)
        note = paid_after_close_note(refund, counted=True)
    else:
        log.error("refund %s was closed here but WeChat Pay reports it paid: %s fen may have been paid twice",
                  refund.refund_no, refund.amount_fen)
        _publish_paid_twice(uow, order, refund, now)
        note = paid_after_close_note(refund)
    order.record_step(kind=StepKind.REFUND_NOTE, actor=actor, now=now, reason=note, shopper=False)
    uow.on_commit(metrics.REFUNDS_PAID_AFTER_CLOSE.inc)
    if counted:
        _refunded(uow, order, refund, actor, now)
    if refund.source == LATE_PAYMENT:  # the late money did go back after all: the ledger's - side
        _publish_late_refunded(uow, order, refund, now)
    _tell_case(uow, refund, now)


def _tell_case(uow: OrderUnitOfWork, refund: Refund, now: datetime) -> None:
    """An after-sales refund found paid after its close: the after-sales listener hears (`aftersales.closed_refund_paid`)."""
    listener = SETTLED_LISTENERS.get(AFTER_SALE) if refund.source.partition(":")[0] == AFTER_SALE else None
    if listener is not None:
        listener(uow, refund, now)


def _reserve_again(uow: OrderUnitOfWork, order: Order, refund: Refund) -> bool:
    """Reserve a refund's amounts again, all or nothing (the conditional updates and CHECKs: never counted twice)."""
    shares = paid_shares(order)
    return uow.refunds.reserve(order, refund.amount_fen, [
        LineReservation(line.line_id, line.quantity, line.amount_fen, shares[line.line_id]) for line in refund.lines])


def _open_holders(uow: OrderUnitOfWork, order: Order, refund: Refund) -> list[Refund]:
    """The open (PENDING or ABNORMAL) refunds of `refund`'s order whose reserved amounts alone keep it from fitting:
    it would fit if they were closed. Empty when it would not fit even then (refunds paid, SUCCESS, took the money or
    the units) or when no open refund holds anything."""
    holders = [other for other in uow.refunds.for_order(order.id or 0) if other.refund_no != refund.refund_no
               and RefundStatus(other.status) in OPEN and other.source != LATE_PAYMENT]
    held_quantity: dict[int, int] = {}
    held_fen: dict[int, int] = {}
    for holder in holders:
        for line in holder.lines:
            held_quantity[line.line_id] = held_quantity.get(line.line_id, 0) + line.quantity
            held_fen[line.line_id] = held_fen.get(line.line_id, 0) + line.amount_fen
    lines, shares = {line.id: line for line in order.lines}, paid_shares(order)
    fits_without = order.refunded_fen - sum(holder.amount_fen for holder in holders) + refund.amount_fen <= \
        order.payable_fen and all(
            lines[item.line_id].refunded_quantity - held_quantity.get(item.line_id, 0) + item.quantity
            <= lines[item.line_id].quantity
            and lines[item.line_id].refunded_fen - held_fen.get(item.line_id, 0) + item.amount_fen
            <= shares[item.line_id] for item in refund.lines)
    return holders if holders and fits_without else []


def _decide_waiting(uow: OrderUnitOfWork, order: Order, actor: str, now: datetime) -> None:
    """A refund of `order` ended (`_change`): decide its refunds paid after close that waited for open refunds holding
    their amounts (`paid_after_close_waiting_at`). One that fits now (a holder closed, freeing them) is counted as
    `_paid_after_close` counts one (order-refunded, the order's "refunded" step); one that still does not fit while
    other open refunds hold its amounts waits on; otherwise the money went out twice (a holder was paid):
    refund-paid-twice. Each once: the marker is cleared as it is decided. Under the order's row lock, the waiting
    refunds' rows locked after it (Locks, in the module docstring). Nearly every order never had a refund waiting:
    the order's history (loaded with it) tells, so ending their refunds reads no more of them (`_has_waited`)."""
    if not _has_waited(order):
        return
    for waiting in uow.refunds.for_order(order.id or 0):
        if waiting.paid_after_close_waiting_at is None or waiting.status != RefundStatus.CLOSED:
            continue
        counted = _reserve_again(uow, order, waiting)
        if not counted and _open_holders(uow, order, waiting):
            continue
        waiting.paid_after_close_waiting_at = None
        if counted:
            log.error("refund %s, paid after its close, counts as refunded: the open refunds holding its %s fen "
                      "ended unpaid", waiting.refund_no, waiting.amount_fen)
        else:
            log.error("refund %s, paid after its close: %s fen paid twice (the refund holding them was paid)",
                      waiting.refund_no, waiting.amount_fen)
            _publish_paid_twice(uow, order, waiting, waiting.paid_after_close_at or now)
        order.record_step(kind=StepKind.REFUND_NOTE, actor=actor, now=now,
                          reason=paid_after_close_note(waiting, counted=counted), shopper=False)
        if counted:
            _refunded(uow, order, waiting, actor, now)


def _has_waited(order: Order) -> bool:
    """Whether a refund of `order` may be waiting (`paid_after_close_waiting_at`): `_paid_after_close` records its
    step (`paid_after_close_waiting_note`) in the order's history in the transaction that marks it, and the history
    is never rewritten, so an order without such a step has none."""
    return any(WAITING_WORDS in step.reason and PAID_AFTER_CLOSE_WORDS in step.reason for step in order.history)


def _publish_paid_twice(uow: OrderUnitOfWork, order: Order, refund: Refund, paid_at: datetime) -> None:
    """refund-paid-twice: WeChat Pay paid `refund` (CLOSED here) at `paid_at` after another refund had paid the same."""
    uow.publish(RefundPaidTwice(order_no=order.order_no, user_id=order.user_id, refund_no=refund.refund_no,
                                amount_fen=refund.amount_fen, channel=refund.channel, paid_at=timestamp(paid_at)),
                aggregate_id=order.order_no)


# The sources whose refund, CLOSED here and paid by WeChat Pay after all, counts as the order's refund again when its
# amounts still fit (`_paid_after_close`).
COUNTED_AGAIN = frozenset({AFTER_SALE, CANCELLATION, UNSHIPPED})


def _mark_noted(uow: OrderUnitOfWork, order: Order, refund: Refund, now: datetime) -> bool:
    """A CLOSED refund a pod of the release before migration 0017 heard paid after close: it recorded only the order's
    history step (`paid_after_close_note`), counted it and published the late payment's refund, and never set
    `paid_after_close_at`. The refund takes the step's time (the earliest such step: 0017's backfill's rule) and the
    after-sales listener hears; nothing else is done again (its amounts are not reserved again, as by the backfill:
    finance has the step to check). False, nothing changed, when the order's history has no such step. In the caller's
    transaction, refund and order locked by it: a replayed notify (`_paid_after_close`), or the fallback job's round
    (`mark_noted_refund`) for a step recorded after 0017's backfill ran that no notify brings again."""
    step = paid_after_close_step(refund.refund_no)
    noted = min((done.at for done in order.history if done.reason.startswith(step)), default=None)
    if noted is None:
        return False
    log.warning("refund %s was recorded paid after close by an old pod at %s: marked so", refund.refund_no, noted)
    refund.paid_after_close_at = noted
    _tell_case(uow, refund, now)
    return True


def mark_noted_refund(uow: OrderUnitOfWork, refund_no: str, now: datetime) -> int:
    """`_mark_noted` for one refund, under its order's row lock and then its own (`_locked_with_order`: a round on
    another replica, or a notify, may have marked it meanwhile: then nothing changes). 1 when it was marked, else 0."""
    with uow:
        refund, order = _locked_with_order(uow, refund_no)
        marked = False
        if refund.status == RefundStatus.CLOSED and refund.paid_after_close_at is None:
            marked = _mark_noted(uow, order, refund, now)
        uow.commit()
    return int(marked)


PAID_AFTER_CLOSE_WORDS = " was closed here but WeChat Pay paid it:"  # the step's words after "refund <refund_no>"
WAITING_WORDS = " fen wait for open refund "  # the waiting step's words after its amount (`_has_waited`)


def paid_after_close_step(refund_no: str) -> str:
    """How the order history's step for a refund paid after its close begins, whatever followed (what finance, 0017's
    backfill and `_mark_noted` look for)."""
    return f"refund {refund_no}{PAID_AFTER_CLOSE_WORDS}"


def paid_after_close_note(refund: Refund, *, counted: bool = False) -> str:
    """The order history's step for a closed refund WeChat Pay paid anyway (what finance looks for); `counted`: its
    amounts were reserved again (nothing else had refunded them)."""
    if counted:
        return (f"{paid_after_close_step(refund.refund_no)} {refund.amount_fen} fen and its units count as refunded "
                "again")[:255]
    return (f"{paid_after_close_step(refund.refund_no)} {refund.amount_fen} fen may have been refunded twice; finance "
            "must check")[:255]


def paid_after_close_waiting_note(refund: Refund, holders: list[Refund]) -> str:
    """The order history's step for a closed refund WeChat Pay paid while open refunds hold its amounts: undecided."""
    return (f"{paid_after_close_step(refund.refund_no)} {refund.amount_fen}{WAITING_WORDS}"
            f"{', '.join(holder.refund_no for holder in holders)}: counted if it closes, refunded twice if it is "
            "paid")[:255]


def _change(uow: OrderUnitOfWork, order: Order, refund: Refund, status: RefundStatus, actor: str,
            now: datetime, note: str = "", closed_by_staff: bool = False) -> None:
    """An open refund takes `status` (under both row locks), with its effects, and its source's listener hears.
    `note`: why it became ABNORMAL, for the order's history (default: WeChat Pay reported it so).
    `closed_by_staff`: close_refund, which records why; otherwise a late payment's refund WeChat Pay CLOSED becomes
    ABNORMAL instead (the money was not paid back: staff's, alerted and listed, until they close it)."""
    late = refund.source == LATE_PAYMENT  # not the order's money: nothing of the order's to move
    if late and status == RefundStatus.CLOSED and not closed_by_staff:
        if refund.status == RefundStatus.ABNORMAL:
            return  # already staff's: a retry finding it still CLOSED at WeChat Pay changes nothing
        log.error("the refund %s of a late payment was closed by WeChat Pay: %d fen were not paid back",
                  refund.refund_no, refund.amount_fen)
        status, note = RefundStatus.ABNORMAL, late_refund_closed_note(refund)
    refund.status, refund.updated_at = status.value, now
    if status == RefundStatus.SUCCESS:
        refund.settled_at = now
        if not late:
            _refunded(uow, order, refund, actor, now)
    elif status == RefundStatus.CLOSED:
        refund.settled_at = now
        if not late:
            uow.refunds.give_back(order, refund)
    elif status == RefundStatus.ABNORMAL:
        order.record_step(kind=StepKind.REFUND_NOTE, actor=actor, now=now, shopper=False,
                          reason=note or f"refund {refund.refund_no} ABNORMAL at WeChat Pay: {refund.amount_fen} fen "
                                         "held until it is completed there or closed by staff")
    if status in (RefundStatus.SUCCESS, RefundStatus.CLOSED) and not late:
        _decide_waiting(uow, order, actor, now)  # refunds paid after close may have waited for this one
    listener = SETTLED_LISTENERS.get(refund.source.partition(":")[0])
    if listener is not None:
        listener(uow, refund, now)


def _refunded(uow: OrderUnitOfWork, order: Order, refund: Refund, actor: str, now: datetime) -> None:
    # A 0-fen refund moved no money: nothing for the spend, points or GMV to take back, unless it gives points back
    # (cancelled units paid for with points alone): the member service credits them from the event.
    if refund.amount_fen or refund.points_returned:
        lines = {line.id: line for line in order.lines}
        uow.publish(OrderRefunded(
            order_no=order.order_no, user_id=order.user_id, refund_no=refund.refund_no, amount_fen=refund.amount_fen,
            lines=[event_line(lines[item.line_id], item.quantity) for item in refund.lines],
            channel=refund.channel, reason=refund.reason, refunded_at=timestamp(now),
            points_returned=refund.points_returned), aggregate_id=order.order_no)
    # The refunds paid: SUCCESS, and `refund` itself, a CLOSED one WeChat Pay paid after all, counted again now.
    succeeded = sum(done.amount_fen for done in uow.refunds.for_order(order.id or 0)
                    if (done.status == RefundStatus.SUCCESS or done.refund_no == refund.refund_no)
                    and done.source != LATE_PAYMENT)
    if succeeded >= order.payable_fen and order.can("refunded"):
        order.apply("refunded", actor=actor, now=now,
                    reason=f"refund {refund.refund_no}: {refund.amount_fen} fen" if refund.amount_fen
                    else f"refund {refund.refund_no}: {NOTHING_PAID}", shopper_reason="refunded in full")


def late_refund_closed_note(refund: Refund) -> str:
    """The order history's step for a late payment's refund WeChat Pay closed (the money is still the merchant's): it is
    ABNORMAL here, for staff."""
    return (f"refund {refund.refund_no} of a late payment CLOSED at WeChat Pay: {refund.amount_fen} fen not paid "
            "back; ABNORMAL until staff return it another way and close it")[:255]


def _late_refund_settled(uow: OrderUnitOfWork, refund: Refund, now: datetime) -> None:
    """A late payment's refund paid: late-payment-refunded."""
    if refund.status != RefundStatus.SUCCESS:
        return
    order = uow.orders.get(refund.order_id)
    assert order is not None  # a refund's order is never deleted
    _publish_late_refunded(uow, order, refund, now)


def _publish_late_refunded(uow: OrderUnitOfWork, order: Order, refund: Refund, now: datetime) -> None:
    """late-payment-refunded for a late payment's refund WeChat Pay paid, once per refund number (run_once: one
    published when WeChat Pay took the refund, before late refunds were tracked here, is not published again)."""
    uow.run_once(scope="late-payment-refunded", key=refund.refund_no, request=str(refund.amount_fen).encode(),
                 execute=lambda: publish_late_refund(uow, order, channel=refund.channel,
                                                     out_trade_no=late_refund_trade(refund.refund_no),
                                                     amount_fen=refund.amount_fen, refund_no=refund.refund_no,
                                                     now=now))


SETTLED_LISTENERS[LATE_PAYMENT] = _late_refund_settled


def handle_refund_notify(uow: OrderUnitOfWork, payments: RefundPayments | None, *, headers: Mapping[str, str],
                         body: bytes, now: datetime | None = None) -> Refund:
    """A verified, decrypted refund notify ends its refund once; NotifyRejected (4xx FAIL) for anything else."""
    if payments is None:
        raise NotifyRejected("WeChat Pay is not configured")
    notice = payments.verify_refund_notify(headers, body)
    try:
        refund, order = _refund_and_order(uow, notice.out_refund_no)
    except NotFound:
        raise NotifyRejected("no refund has this out_refund_no") from None
    out_trade_no, total_fen = _trade(order, refund)
    if (notice.out_trade_no, notice.refund_fen, notice.total_fen) != (out_trade_no, refund.amount_fen, total_fen):
        raise NotifyRejected("the notify's out_trade_no or amounts differ from the refund's")
    return _apply_answer(uow, refund.refund_no, notice, actor="wechatpay", now=now or utcnow())


NOTED_DAYS = 60  # how far back the fallback round looks for CLOSED refunds an old pod recorded paid after close


def reconcile_refunds(uow: Callable[[], OrderUnitOfWork], payments: RefundPayments | None, members: Members, *,
                      now: datetime | None = None, settle_seconds: int = 300, stuck_seconds: int = STUCK_SECONDS,
                      batch: int = 50, interval_seconds: float = 0, budget: RoundBudget | None = None) -> int:
    """The fallback for lost notifies and unanswered calls: refunds PENDING for over `settle_seconds` (WeChat Pay
    and wallet alike) are asked about again (`retry_refund`). Returns how many left PENDING; a call that fails
    waits for the next round, except a WeChat Pay refund PENDING for `stuck_seconds` that WeChat Pay never got
    and refuses when sent again: that one becomes ABNORMAL, for staff (`_refused_abnormal`).

    Every such refund is asked about each round, page after page of `batch` (`each_page`): WeChat Pay reports a
    refund to a bank card PROCESSING for days, and a fixed batch of the oldest would hide every newer one behind
    them (its lost notify never caught up, a send WeChat Pay never got never sent again). So one round per
    `interval_seconds` asks, whichever replica's timer starts it, and never while another is under way
    (`one_round_at_a_time`; 0 otherwise): one query per refund per interval, however many replicas.

    The same round then marks the CLOSED refunds a pod of the release before migration 0017 recorded paid after close
    (the order's history step only) after 0017's backfill ran, at that step's time (`mark_noted_refund`, the path a
    replayed notify takes): without it their units stayed claimable by after-sales until a notify came again. Each is
    marked once under its row lock. Only refunds created in the last `NOTED_DAYS` are looked at (an index range, not
    every CLOSED refund ever, each against its order's history, every round): old pods run only during a rollout, and
    the README's SQL check finds any older one.

    Last, it starts the refund of every after-sales case REFUNDING for over `settle_seconds` whose refund never
    started (the process died, or an unexpected error hit, between the case's step and its refund: nothing else would
    start it), under the number the case recorded (`aftersales.start_unstarted_refunds`).

    With a `budget` (the job's, started by its timer) each of the three sweeps stops between refunds once it is spent
    and the next round goes on after the last one handled (a refund still PENDING stays due)."""
    now = now or utcnow()
    stuck_before = now - timedelta(seconds=stuck_seconds)
    created_before = now - timedelta(seconds=settle_seconds)

    def ask(refund_no: str) -> int:
        try:
            refund = retry_refund(uow(), payments, members, refund_no=refund_no, actor="reconciliation", now=now,
                                  stuck_before=stuck_before)
        except DomainError as exc:
            log.warning("refund %s is still PENDING: %s", refund_no, exc.code)
            return 0
        return int(refund.status != RefundStatus.PENDING)

    def ask_pending() -> int:
        return each_page(uow, lambda tx, after: tx.refunds.pending_before(created_before, after[0], batch), (0, ""),
                         batch, lambda key: ask(key[1]), what="refund", budget=budget)

    def mark_noted() -> int:  # counted as refunds that left PENDING: none of these were PENDING, so 0 whatever it marks
        since = now - timedelta(days=NOTED_DAYS)
        each_page(uow, lambda tx, after: tx.refunds.closed_noted_unmarked(PAID_AFTER_CLOSE_WORDS, since, after[0],
                                                                          batch),
                  (0, ""), batch, lambda key: mark_noted_refund(uow(), key[1], now), what="closed refund",
                  budget=budget)
        return 0

    def start_cases() -> int:  # counted as refunds that left PENDING: none of these existed, so 0 whatever it starts
        from services.order import aftersales  # aftersales builds on this module: imported when the round runs
        aftersales.start_unstarted_refunds(uow, aftersales.EngineRefunder(payments, members), before=created_before,
                                           now=now, batch=batch, budget=budget)
        return 0

    return one_round_at_a_time(uow, "refund-reconciliation", lambda: each_sweep(ask_pending, mark_noted, start_cases),
                               now=now, interval=timedelta(seconds=interval_seconds), budget=budget)


def watch_abnormal_refunds(uow: OrderUnitOfWork, *, now: datetime | None = None,
                           stuck_seconds: int = STUCK_SECONDS) -> None:
    """Export how many refunds are ABNORMAL and how long the oldest has been (`mall_refunds_abnormal`,
    `mall_refunds_abnormal_oldest_seconds`): nothing moves one but staff (retry it, or close it), so the
    AbnormalRefundWaiting alert tells them when one waits too long. And how many have been PENDING for over
    `stuck_seconds` and how long the oldest has (`mall_refunds_pending_stuck`,
    `mall_refunds_pending_stuck_oldest_seconds`): the fallback job asks about those every round and the channel
    gives it no usable answer (WeChat Pay down or refusing the query, the member service down), so the RefundPendingStuck alert tells staff. Two aggregate queries, for a job."""
    now = now or utcnow()
    with uow:
        count, since = uow.refunds.waiting_since(RefundStatus.ABNORMAL)
        stuck, pending_since = uow.refunds.waiting_since(RefundStatus.PENDING,
                                                         before=now - timedelta(seconds=stuck_seconds))
        uow.commit()
    metrics.abnormal_refunds(count, seconds_since(since, now))
    metrics.stuck_refunds(stuck, seconds_since(pending_since, now))


def retry_refund(uow: OrderUnitOfWork, payments: RefundPayments | None, members: Members, *, refund_no: str,
                 actor: str, now: datetime | None = None, stuck_before: datetime | None = None) -> Refund:
    """Ask the channel again about a PENDING or ABNORMAL refund, idempotently by its refund_no: WeChat Pay's
    refund query (or the refund itself again, same number, when WeChat Pay never got it), or the wallet's
    RefundToBalance again (idempotent by refund_no: a credit that did happen is not made twice). A refund
    that has ended is returned as it is. WeChat Pay giving no usable answer to the query (none, or a refusal), or
    refusing the refund sent again, is 503 PAYMENT_CHANNEL_UNAVAILABLE with nothing changed: the refund waits as it
    was. The answer to the refund sent again lost is 503 PAYMENT_CHANNEL_UNAVAILABLE too, but the refund is PENDING
    then, committed (`_in_flight`: WeChat Pay may pay it, so staff cannot close it; the fallback job asks about it).
    `stuck_before` (the fallback job's): a PENDING refund WeChat Pay never got and refuses when sent again, PENDING
    since before then, becomes ABNORMAL instead (`_refused_abnormal`)."""
    now = now or utcnow()
    refund, order = _refund_and_order(uow, refund_no)
    if refund.status not in OPEN:
        return refund
    if refund.channel == "balance":
        return _retry_wallet(uow, members, refund, order, actor=actor, now=now)
    if payments is None:
        raise DomainError("WECHATPAY_NOT_CONFIGURED", "WeChat Pay is not configured on this server")
    with uow:
        # WeChat Pay is asked, and the refund sent again, under the refund's row lock, the answer applied in that
        # transaction: close_refund takes the lock before it asks, so it never closes a refund a re-send made live.
        refund = _locked(uow, refund_no)
        if refund.status not in OPEN:
            uow.commit()
            return refund
        try:
            answer = _query_or_resend(payments, order, refund)
        except ResendRefused as exc:
            if (stuck_before is not None and refund.status == RefundStatus.PENDING
                    and refund.updated_at <= stuck_before):
                _refused_abnormal(uow, refund, exc.refusal.code, now)
                uow.commit()
                return refund
            raise channel_unavailable(refund_no, exc.refusal) from None
        except AnswerLost as lost:  # sent again: WeChat Pay may pay it
            _in_flight(uow, refund, lost.error.reason, actor=actor, now=now)
            uow.commit()
            raise sent_pending(refund_no) from None
        except WechatPayError as exc:  # the query got no usable answer: nothing was sent
            raise channel_unavailable(refund_no, exc) from None
        _apply_locked(uow, refund, answer, actor=actor, now=now)
        uow.commit()
    return refund


def staff_retry_refund(uow: Callable[[], OrderUnitOfWork], payments: RefundPayments | None, members: Members, *,
                       refund_no: str, actor: str, now: datetime | None = None) -> Order:
    """Staff ask the channel again about one refund (`retry_refund`), say an ABNORMAL one the merchant fixed at WeChat
    Pay, or one PENDING they do not want to leave to the fallback job: the refund of a late payment, whose order no
    cancellation review or after-sales case can retry. The order is answered, any change in its history; 404
    REFUND_NOT_FOUND, 503 PAYMENT_CHANNEL_UNAVAILABLE when WeChat Pay gives no usable answer (nothing changed; or,
    when it was sent the refund again and the answer was lost, the refund is PENDING: see `retry_refund`). Never on a
    refund of the staff member's own order (`actor` is "staff:<id>"): asking again pays it out: OWN_REQUEST (403),
    nothing asked or changed."""
    if not REFUND_NO.fullmatch(refund_no):
        raise refund_not_found()
    _, order = _refund_and_order(uow(), refund_no)
    refuse_own(formats.staff_user_id(actor), order.user_id)
    refund = retry_refund(uow(), payments, members, refund_no=refund_no, actor=actor, now=now)
    return get_order(uow(), user_id=None, order_id=refund.order_id)


def list_refunds(uow: OrderUnitOfWork, search: RefundSearch) -> tuple[list[ListedRefund], int]:
    """Refunds for staff, those needing them first: ABNORMAL (nothing but staff moves one), then PENDING (the
    longest waiting are those the fallback job gets no usable answer about), each longest waiting first; then the
    ended ones (SUCCESS, CLOSED) newest first. And how many match. 400 STATUS_INVALID, REFUND_SOURCE_INVALID."""
    if search.status and search.status not in RefundStatus.__members__:
        raise InvalidInput("STATUS_INVALID", "unknown refund status", details={"status": "invalid"})
    if search.source and not SOURCE_FILTER.fullmatch(search.source):
        raise InvalidInput("REFUND_SOURCE_INVALID", "unknown refund source",
                           details={"source": "after_sale, after_sale:<case id>, cancel, cancel_unshipped or "
                                              "late_payment"})
    with uow:
        found = uow.refunds.search(search)
        uow.commit()
    return found


class ResendRefused(Exception):
    """WeChat Pay knows no refund under the number (RESOURCE_NOT_EXISTS) and refused it when sent again."""

    def __init__(self, refusal: WechatPayApiError) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def _query_or_resend(payments: RefundPayments, order: Order, refund: Refund) -> ChannelRefund:
    """WeChat Pay's answer about the refund; one it never got is sent again under the same number
    (ResendRefused when WeChat Pay refuses it then)."""
    try:
        return payments.query_refund(refund.refund_no)
    except WechatPayApiError as exc:
        if exc.code != "RESOURCE_NOT_EXISTS":
            raise
    try:
        return _send(payments, order, refund)
    except WechatPayApiError as exc:
        raise ResendRefused(exc) from None


def _refused_abnormal(uow: OrderUnitOfWork, refund: Refund, code: str, now: datetime,
                      actor: str = "reconciliation", note: str = "") -> None:
    """A refund its channel refuses for good, paying nothing: a WeChat Pay one it never got, PENDING too long, that it
    refuses when sent again, or a wallet one the member service refuses (`_retry_wallet`). ABNORMAL (if still PENDING;
    in the caller's transaction, which locked the refund; its order locked here), the refusal's `code` in the order's
    history, so the alert and staff's retry-or-close flow take it over. Safe: the channel holds no refund under its
    number, so nothing was paid, and its amount stays reserved until staff act."""
    order = _order_locked(uow, refund.order_id)
    if refund.status == RefundStatus.PENDING:
        log.error("refund %s: its channel (%s) refuses it (%s); ABNORMAL for staff", refund.refund_no,
                  refund.channel, code)
        _change(uow, order, refund, RefundStatus.ABNORMAL, actor, now, note=note or resend_refused_note(refund, code))


def _retry_wallet(uow: OrderUnitOfWork, members: Members, refund: Refund, order: Order, *, actor: str,
                  now: datetime) -> Refund:
    """`retry_refund` of a wallet refund: RefundToBalance again (idempotent by refund_no) settles it SUCCESS. The
    member service refusing it (BALANCE_PAYMENT_NOT_FOUND, REFUND_EXCEEDS_PAYMENT: a refusal that asking again does
    not change) makes it ABNORMAL for staff (`_refused_abnormal`), who retry it or close it; nothing was credited.
    No answer (MEMBER_UNAVAILABLE) is raised; the wallet may have been credited all the same (the deadline passed
    first), so an ABNORMAL refund becomes PENDING first (`_in_flight`, committed): staff cannot close it, and the
    fallback job asks again. The member service is asked under the refund's row lock and its answer applied in that
    transaction, as WeChat Pay is (`retry_refund`): close_refund takes the lock first, so it never closes a refund a
    retry is crediting to the wallet."""
    with uow:
        refund = _locked(uow, refund.refund_no)
        if refund.status not in OPEN:
            uow.commit()
            return refund
        try:
            members.refund_to_balance(refund.refund_no, order.order_no, order.user_id, refund.amount_fen)
        except DomainError as exc:
            if exc.kind == ErrorKind.UNAVAILABLE:
                _in_flight(uow, refund, exc.code, actor=actor, now=now)
                uow.commit()
                raise
            _refused_abnormal(uow, refund, exc.code, now, actor="member", note=wallet_refused_note(refund, exc.code))
        else:
            _settle(uow, refund, _order_locked(uow, refund.order_id), RefundStatus.SUCCESS, actor=actor, now=now)
        uow.commit()
    return refund


def wallet_refused_note(refund: Refund, code: str) -> str:
    """The order history's step for a wallet refund the member service refused when asked again."""
    return (f"refund {refund.refund_no} to the wallet refused by the member service ({code}): nothing credited, "
            f"{refund.amount_fen} fen held until staff retry it once that is fixed, or close it")[:255]


def resend_refused_note(refund: Refund, code: str) -> str:
    """The order history's step for a refund WeChat Pay never got and refused when sent again."""
    return (f"refund {refund.refund_no} never reached WeChat Pay, which refused it when sent again ({code}): "
            f"{refund.amount_fen} fen held until staff retry it once that is fixed, or close it")[:255]


def late_refund_refused_note(refund: Refund, code: str) -> str:
    """The order history's step for a late payment's refund WeChat Pay refused when first asked."""
    return (f"refund {refund.refund_no} of a late payment refused by WeChat Pay ({code}): {refund.amount_fen} fen "
            "not paid back until staff retry it once that is fixed, or close it and return it another way")[:255]


def channel_unavailable(refund_no: str, exc: WechatPayError) -> DomainError:
    """Staff acted on a refund and WeChat Pay gave no usable answer to its query (none, a 5xx, or a refusal, whose code
    is in details.channel_code), or refused it sent again: PAYMENT_CHANNEL_UNAVAILABLE (503). Raised before anything
    is changed, nothing sent that WeChat Pay could pay: staff try again. (A re-send whose answer was lost is
    `sent_pending`.)"""
    log.warning("refund %s is left as it was: WeChat Pay gave no usable answer: %s", refund_no, exc.reason)
    code = exc.code if isinstance(exc, WechatPayApiError) else ""
    return DomainError("PAYMENT_CHANNEL_UNAVAILABLE", "WeChat Pay gave no usable answer about the refund; nothing "
                       "was changed, try again", kind=ErrorKind.UNAVAILABLE,
                       details={"channel_code": code} if code else None)


def _refund_and_order(uow: OrderUnitOfWork, refund_no: str) -> tuple[Refund, Order]:
    with uow:
        refund = uow.refunds.get(refund_no)
        order = uow.orders.get(refund.order_id) if refund is not None else None
        uow.commit()
    if refund is None or order is None:
        raise refund_not_found()
    return refund, order


def close_refund(uow: OrderUnitOfWork, payments: RefundPayments | None, *, refund_no: str, reason: str, actor: str,
                 now: datetime | None = None) -> Order:
    """Staff give up on an ABNORMAL refund (say, the money went back to the merchant's account at WeChat Pay,
    or the shopper is paid another way): CLOSED, its amount free for a new refund, with who and why in the
    order's history. WeChat Pay is asked first: one it still reports ABNORMAL (or already CLOSED, or knows nothing
    of: RESOURCE_NOT_EXISTS, a refund made ABNORMAL because WeChat Pay refused it when sent again) is closed; one
    it reports paid (or under way again) is settled so instead and the close answers 409 REFUND_STATE_CONFLICT
    with that status, as for any refund not ABNORMAL here.
    Staff close a refund only once it can no longer be paid at WeChat Pay: the order cannot know of a
    completion that comes later (one its notify brings is recorded in the order's history for finance and
    counted for an alert: `_paid_after_close`). 503 PAYMENT_CHANNEL_UNAVAILABLE, nothing changed, when WeChat Pay
    cannot be asked. A refund sent again whose answer was lost is PENDING (`_in_flight`), so it is a 409 here.
    A wallet refund is ABNORMAL only when the member service refused it (`_retry_wallet`; one whose answer was lost
    since is PENDING again): nothing was credited, so it closes without asking anyone."""
    now = now or utcnow()
    why = plain(reason, 255)
    if not why:
        raise InvalidInput("REFUND_CLOSE_REASON_REQUIRED", "say why the refund is closed",
                           details={"reason": "1-255 characters"})
    if not REFUND_NO.fullmatch(refund_no):
        raise refund_not_found()
    with uow:
        # The refund's row lock is held from before WeChat Pay is asked until the close commits: every path that asks
        # WeChat Pay about a refund, or sends it again (`retry_refund`, `start_late_refund`), holds it while it does,
        # so the answer cannot go stale meanwhile (RESOURCE_NOT_EXISTS, then a retry's re-send paid).
        refund = _locked(uow, refund_no)
        if refund.status == RefundStatus.ABNORMAL and refund.channel != "balance":  # a wallet's was refused: unpaid
            if payments is None:
                raise DomainError("WECHATPAY_NOT_CONFIGURED", "WeChat Pay is not configured on this server")
            try:
                answer: ChannelRefund | None = payments.query_refund(refund_no)
            except WechatPayApiError as exc:
                if exc.code != "RESOURCE_NOT_EXISTS":
                    raise channel_unavailable(refund_no, exc) from None
                answer = None  # WeChat Pay holds no refund under this number (it refused it when sent again)
            except WechatPayError as exc:
                raise channel_unavailable(refund_no, exc) from None
            if answer is not None and answer.status not in (RefundStatus.ABNORMAL, RefundStatus.CLOSED):
                _apply_locked(uow, refund, answer, actor="wechatpay", now=now)  # paid, or under way again
                uow.commit()  # recorded, then the 409 below with that status
        if refund.status != RefundStatus.ABNORMAL:
            raise Conflict("REFUND_STATE_CONFLICT", f"a {refund.status} refund cannot be closed (only ABNORMAL)",
                           details={"status": refund.status, "action": "close"})
        order = _order_locked(uow, refund.order_id)
        _change(uow, order, refund, RefundStatus.CLOSED, actor, now, closed_by_staff=True)
        freed = ("a late payment: nothing reserved, the shopper not refunded" if refund.source == LATE_PAYMENT
                 else f"{refund.amount_fen} fen freed")
        order.record_step(kind=StepKind.REFUND_NOTE, actor=actor, now=now, shopper=False,
                          reason=f"refund {refund_no} closed ({freed}): {why}")
        uow.commit()
    return order


# -- cancellation review (O5) ---------------------------------------------------------------------

CANCEL_REFUND_REASON = "订单取消"


def review_cancellation(uow: OrderUnitOfWork, payments: RefundPayments | None, members: Members, *, order_id: int,
                        approve: bool, reason: str, actor: str, now: datetime | None = None) -> Order:
    """Staff decide on a paid order's cancellation request.

    Reject: back to PAID. Approve: REFUNDING with `order-cancelled` (was_paid: the product service puts
    the sold units back, the member service gives back the coupon and the points the order used; its
    `order-refunded` takes back the spend and the points it earned), then a refund of the
    whole order through its channel, reserved in the approval's transaction (so of two staff approving at once the
    second finds it open: 409 ORDER_STATE_CONFLICT with the order's state, whichever the channel); it becomes
    REFUNDED when the refund succeeds. Approving a REFUNDING order again retries: a new refund when the last one was
    closed or refused, the channel asked again about the same refund when it is ABNORMAL (fixed at WeChat Pay, or
    not yet; refused by the member service when asked again); otherwise it is a 409. A PENDING refund, WeChat Pay's
    or the wallet's, is under way: the approval that reserved it may be asking its channel at this very moment, so a
    second approval never asks again in its stead (the fallback job asks about it, or staff retry it from the
    refunds list: `retry_refund`). An order that had nothing to pay (channel "none") goes on to REFUNDED at once, by
    a 0-fen refund no channel is asked for.
    Never on an order of the staff member's own (`actor` is "staff:<id>"): OWN_REQUEST (403), nothing changed.
    """
    now = now or utcnow()
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise order_not_found()
        refuse_own(formats.staff_user_id(actor), order.user_id)
        if not approve:
            order.apply("reject_cancel", actor=actor, now=now, reason=reason, shopper_reason="cancellation declined")
            uow.commit()
            return order
        unsettled = [refund for refund in uow.refunds.for_order(order_id)
                     if refund.status in OPEN and refund.source != LATE_PAYMENT]  # a late payment's is not its
        stuck = [refund for refund in unsettled if refund.status == RefundStatus.ABNORMAL]
        retry = order.status == OrderStatus.REFUNDING and bool(stuck)
        refund_anew = (order.status == OrderStatus.REFUNDING and not unsettled
                       and order.refunded_fen < order.payable_fen)
        if not (retry or refund_anew):
            order.apply("approve_cancel", actor=actor, now=now, reason=reason, shopper_reason="cancellation approved")
            publish_cancelled(uow, order, now=now, by="staff", reason=reason, was_paid=True)
        # Reserved with the approval, under the same lock: a second approver then finds this refund open (a 409 with
        # the order's state), never a REFUNDING order with nothing reserved that it would refund in this one's stead.
        refund = None if retry else reserve_refund(uow, order, [], reason=reason or CANCEL_REFUND_REASON, actor=actor,
                                                   source=CANCELLATION, now=now)
        uow.commit()
    if refund is None:
        for stuck_refund in stuck:
            retry_refund(uow, payments, members, refund_no=stuck_refund.refund_no, actor=actor, now=now)
    else:
        send_refund(uow, payments, members, order, refund, now)
    return get_order(uow, user_id=None, order_id=order_id)


# -- cancelling the unshipped units of a partly shipped order ---------------------------------------

UNSHIPPED_SHOPPER_WORDS = "the units not shipped could not be supplied: they are cancelled and refunded"


def cancel_unshipped(uow: OrderUnitOfWork, payments: RefundPayments | None, members: Members, *, order_id: int,
                     reason: str, shopper_reason: str, actor: str, idempotency_key: str, request_fingerprint: bytes,
                     now: datetime | None = None) -> Order:
    """Staff cancel the units of a partly shipped order that will never ship (out of stock, discontinued).

    In one transaction under the order's row lock, once per idempotency key: the units (`Order.cancel_unshipped`)
    are refunded their paid share (`domain.line_refund_fen`, as after-sales refunds units: freight is not refunded,
    since the shipped parcels used it) through the refund engine, reserved on their lines (so `Order.kept`,
    after-sales and later refunds count them), `order-returned` (case_no: the refund's number) puts them back on
    sale, and the order is SHIPPED, the step in its history for the shopper (`shopper_reason` after the fixed
    wording). Then the channel is asked (`send_refund`); its `order-refunded` takes back the spend and points the
    money earned. A retry with the same key and body changes nothing and answers the order as it is now; another
    body under that key is 409 IDEMPOTENCY_KEY_REUSED.

    The shop failed to supply the units, so the shopper is made whole: the points they spent on them come back too
    (`domain.line_points_returned`: the order's points_used spread over the lines as the goods are, `points_shares`,
    none worth more than its line's total leaves beside its cash share, floored per unit, a line's last units taking
    what the floors left), recorded on the refund
    (`points_returned`) and sent on its `order-refunded` when it succeeds, even of 0 fen (units paid with points
    alone): the member service credits them once per refund number. The coupon is not given back: it was for the
    whole order, its discount stays with the units kept, and the units' cash share is already net of it.
    After-sales refunds give no points back. A line with an open after-sales case whose refund has not started
    (`_held_by_cases`) is refunded as if that case's units and amount were reserved before these units, so the
    line's refunds add up to its paid share exactly (both floored, it came out a fen short).

    Once the units are cancelled (the order SHIPPED or later), the route only helps their refund along, under a new
    key: the last one CLOSED (WeChat Pay refused it, or staff closed an ABNORMAL one) is started anew for the same
    units, nothing restocked or moved again; an ABNORMAL one is asked about again under its number (`retry_refund`:
    once it is completed at WeChat Pay); one PENDING or paid (a CLOSED one WeChat Pay paid after all too) leaves
    ORDER_STATE_CONFLICT (the fallback job asks about
    a PENDING one).

    Never on an order of the staff member's own (`actor` is "staff:<id>"): OWN_REQUEST (403), nothing changed.
    """
    now = now or utcnow()
    why = plain(reason, 255)
    if not why:
        raise InvalidInput("CANCEL_REASON_REQUIRED", "say why the units are cancelled", details={"reason": "1-255 "
                           "characters"})
    for_shopper = plain(shopper_reason, formats.SHOPPER_REASON_MAX)
    told = f"{UNSHIPPED_SHOPPER_WORDS}: {for_shopper}" if for_shopper else UNSHIPPED_SHOPPER_WORDS
    started: list[Refund] = []
    asked_again: list[str] = []
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise order_not_found()
        refuse_own(formats.staff_user_id(actor), order.user_id)

        def cancel() -> bytes:
            last = _last_unshipped_refund(uow, order)
            if last is not None and last.status == RefundStatus.ABNORMAL:  # completed at WeChat Pay, or not yet
                asked_again.append(last.refund_no)
                return last.refund_no.encode()
            if (last is not None and last.status == RefundStatus.CLOSED
                    and _unshipped_paid_after_close(uow, order) is None):
                # cancelled and restocked; money still owed (a CLOSED one WeChat Pay paid after all is paid, and so is
                # the money of one started again after it: it waited for that one, and counts once that one closed)
                units = {line.line_id: line.quantity for line in last.lines}
            else:
                units = order.cancel_unshipped(actor=actor, now=now, reason=why, shopper_reason=told)
            held = _held_by_cases(uow, order)
            items = [RefundItem(line_id=line_id, quantity=quantity,
                                amount_fen=line_refund_fen(order, line_id, quantity, held.get(line_id)))
                     for line_id, quantity in sorted(units.items())]
            points = sum(line_points_returned(order, line_id, quantity, held.get(line_id))
                         for line_id, quantity in units.items())
            refund = reserve_refund(uow, order, items, reason=why, actor=actor, source=UNSHIPPED, now=now,
                                    points_returned=points)
            if last is None:
                publish_returned(uow, order, case_no=refund.refund_no, units=units, now=now)
            else:
                order.record_step(kind=StepKind.REFUND_NOTE, actor=actor, now=now, shopper=False,
                                  reason=f"refund of the cancelled unshipped units started again as "
                                         f"{refund.refund_no} ({refund.amount_fen} fen): {why}")
            started.append(refund)
            return refund.refund_no.encode()

        uow.run_once(scope=f"cancel-unshipped:order:{order_id}", key=idempotency_key, request=request_fingerprint,
                     execute=cancel)
        uow.commit()
    if started:
        send_refund(uow, payments, members, order, started[0], now)
    for refund_no in asked_again:
        retry_refund(uow, payments, members, refund_no=refund_no, actor=actor, now=now)
    return get_order(uow, user_id=None, order_id=order_id)


def _held_by_cases(uow: OrderUnitOfWork, order: Order) -> dict[int, RefundItem]:
    """What open after-sales cases will refund of the order's lines (by line id) and no refund has reserved yet: a
    case's amounts are fixed when it is opened, and reserved on the lines only once its refund starts (and again
    after a closed one). At most one open case per line."""
    reserved = {refund.refund_no for refund in uow.refunds.for_order(order.id or 0)
                if refund.status != RefundStatus.CLOSED}
    return {line.line_id: RefundItem(line.line_id, line.quantity, line.amount_fen)
            for case in uow.after_sales.for_order(order.id or 0)
            if case.is_open and case.refund_no not in reserved for line in case.lines}


def _last_unshipped_refund(uow: OrderUnitOfWork, order: Order) -> Refund | None:
    """The last refund of the order's cancelled unshipped units, once they were cancelled (None before)."""
    if order.status == OrderStatus.PAID:
        return None
    tried = [refund for refund in uow.refunds.for_order(order.id or 0) if refund.source == UNSHIPPED]
    return tried[-1] if tried else None


def _unshipped_paid_after_close(uow: OrderUnitOfWork, order: Order) -> Refund | None:
    """A refund of the order's cancelled units staff closed that WeChat Pay paid after all, if any: their money is
    back with the shopper (counted, or paid twice), whatever became of the refunds started again after it."""
    return next((refund for refund in uow.refunds.for_order(order.id or 0)
                 if refund.source == UNSHIPPED and refund.paid_after_close_at is not None), None)


def _unshipped_refund_settled(uow: OrderUnitOfWork, refund: Refund, now: datetime) -> None:
    """A closed refund of cancelled units may leave money owed: the order's history tells staff how to pay it, unless
    it was paid another way (an admin's close says so in its reason, just before this step), or WeChat Pay paid an
    earlier closed refund of them after all (it waited for this one)."""
    if refund.status != RefundStatus.CLOSED:
        return
    order = _order_locked(uow, refund.order_id)
    paid = _unshipped_paid_after_close(uow, order)
    if paid is not None:
        order.record_step(kind=StepKind.REFUND_NOTE, actor=f"refund:{refund.refund_no}", now=now, shopper=False,
                          reason=f"refund {refund.refund_no} of the cancelled unshipped units was closed: nothing "
                                 f"owed, WeChat Pay paid {paid.refund_no} after its close")
        return
    order.record_step(kind=StepKind.REFUND_NOTE, actor=f"refund:{refund.refund_no}", now=now, shopper=False,
                      reason=f"refund {refund.refund_no} of the cancelled unshipped units was closed: "
                             f"{refund.amount_fen} fen owed unless paid another way (see the close reason); "
                             f"cancel-unshipped starts it again")


SETTLED_LISTENERS[UNSHIPPED] = _unshipped_refund_settled
