"""Business metrics of the order service (Prometheus): counters of committed facts, gauges of refunds staff must act on.

Use cases register counters with `uow.on_commit(...)` inside the work that records the fact, so a
rolled-back attempt or a replayed idempotent request counts nothing. Labels stay bounded: the
pay channels (services/order/service.py PAY_CHANNELS) and the results below. The ABNORMAL and stuck
PENDING refund gauges are read from the refunds table by the serve role's `abnormal-refunds` job (every
replica reports the same value: alert on their max).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge

RESULTS = ("paid", "refused")  # paid: the order became PAID; refused: the channel declined the payment

ORDERS_CREATED = Counter("mall_orders_created_total", "Orders placed (committed; idempotent replays excluded).")
PAYMENTS = Counter("mall_payments_total", "Order payments by channel and result (paid|refused).",
                   ["channel", "result"])
GMV_FEN = Counter("mall_gmv_fen_total", "Amount paid for orders, in fen (GMV), by pay channel.", ["channel"])
NOTIFY_REJECTED = Counter("mall_payment_notify_rejected_total",
                          "Payment notifies refused: bad signature or decryption, unknown order, other amount.",
                          ["channel"])
NOTIFY_REJECTED.labels("wechat")
REFUNDS_PAID_AFTER_CLOSE = Counter(
    "mall_refunds_paid_after_close_total",
    "Refunds closed here (amount given back for a new refund) that WeChat Pay then reported paid: maybe paid twice.")
REFUNDS_ABNORMAL = Gauge("mall_refunds_abnormal",
                         "Refunds WeChat Pay reports ABNORMAL, waiting for staff (retry or close).")
REFUNDS_ABNORMAL_OLDEST = Gauge("mall_refunds_abnormal_oldest_seconds",
                                "How long the oldest ABNORMAL refund has been ABNORMAL, in seconds (0: none).")
REFUNDS_PENDING_STUCK = Gauge("mall_refunds_pending_stuck",
                              "Refunds PENDING for over ORDER_REFUND_STUCK_SECONDS: the channel gives the fallback job "
                              "no usable answer about them.")
REFUNDS_PENDING_STUCK_OLDEST = Gauge("mall_refunds_pending_stuck_oldest_seconds",
                                     "How long the oldest of those has been PENDING, in seconds (0: none).")
PAID_AFTER_STOCK_HOLD = Counter("mall_payments_after_stock_hold_total",
                                "Payments learned of when the order's stock may be on sale again: the order was "
                                "cancelled and the payment refunded (domain.PAYABLE_WITHIN).", ["channel"])
LOST_ATTEMPT_OUTCOMES = ("released", "failed")  # released: all it held let go; failed: 503 ORDER_ATTEMPT_UNRELEASED
LOST_ATTEMPTS = Counter("mall_order_lost_attempts_released_total",
                        "Submits retried under an Idempotency-Key whose lost earlier attempt still held stock, a coupon "
                        "or points, by outcome of releasing them (released|failed).", ["outcome"])
for _outcome in LOST_ATTEMPT_OUTCOMES:
    LOST_ATTEMPTS.labels(_outcome)
# Gauges of stuck payment work, set by every replica's payment-watch job from the database (alerts take the max).
WAITING = ("wallet", "wechat", "none")  # an unknown wallet answer, a WeChat Pay transaction not closed, neither
UNPAID_OVERDUE = Gauge("mall_orders_unpaid_overdue",
                       "Unpaid orders more than 10 minutes past their payment deadline, by what the payment timeout "
                       "waits for (wallet|wechat|none).", ["waiting"])
WALLET_CHARGES_FOR_STAFF = Gauge("mall_wallet_charges_awaiting_staff",
                                 "Wallet charges reconciliation could not settle (another user's wallet, another "
                                 "amount), not yet credited back or marked handled by staff.")


def declare_channels(channels: Iterable[str]) -> None:
    """Create every channel's series at zero, so rate() and increase() count the first payment too."""
    for channel in channels:
        GMV_FEN.labels(channel)
        PAID_AFTER_STOCK_HOLD.labels(channel)
        for result in RESULTS:
            PAYMENTS.labels(channel, result)


def order_paid(channel: str, paid_fen: int) -> None:
    PAYMENTS.labels(channel, "paid").inc()
    GMV_FEN.labels(channel).inc(paid_fen)


def payment_refused(channel: str) -> None:
    PAYMENTS.labels(channel, "refused").inc()


def abnormal_refunds(count: int, oldest_seconds: float) -> None:
    REFUNDS_ABNORMAL.set(count)
    REFUNDS_ABNORMAL_OLDEST.set(oldest_seconds)


def stuck_refunds(count: int, oldest_seconds: float) -> None:
    REFUNDS_PENDING_STUCK.set(count)
    REFUNDS_PENDING_STUCK_OLDEST.set(oldest_seconds)


def show_payment_backlog(unpaid_overdue: dict[str, int], wallet_charges_for_staff: int) -> None:
    for waiting in WAITING:
        UNPAID_OVERDUE.labels(waiting).set(unpaid_overdue.get(waiting, 0))
    WALLET_CHARGES_FOR_STAFF.set(wallet_charges_for_staff)
