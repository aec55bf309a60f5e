"""Business metrics of the member service (Prometheus): counters of committed facts, gauges of recharges left waiting.

Use cases register counters with `uow.on_commit(...)` inside the work that records the fact, so a
rolled-back attempt or a replayed idempotent request counts nothing. The overdue PENDING recharge gauges are read
from the recharges table by the serve role's `recharge-expiry` job, the overdue PAYING withdrawal gauges from the
withdrawals table by its `payout-settlement` job (every replica reports the same value: alert on their max).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.member.domain import RECHARGE_CHANNELS

WITHDRAWAL_OUTCOMES = ("requested", "paid", "rejected", "failed")

RECHARGES = Counter("mall_recharges_total", "Wallet recharges credited, by channel.", ["channel"])
RECHARGED_FEN = Counter("mall_recharged_fen_total", "Fen credited to wallets by recharges, by channel.", ["channel"])
WITHDRAWALS = Counter("mall_withdrawals_total", "Withdrawals by outcome (requested|paid|rejected|failed).", ["outcome"])
WITHDRAWN_FEN = Counter("mall_withdrawn_fen_total", "Fen paid out to users by approved withdrawals.")

HOLD_KINDS = ("coupon", "points")
# What order-paid did for an order whose lock the sweep had released: took it again, or could not (the coupon
# went to another order: lost; fewer points left than it held: short).
EXPIRED_HOLD_OUTCOMES = (("coupon", "taken_again"), ("coupon", "lost"), ("points", "taken_again"), ("points", "short"))

CHECKOUT_HOLDS_EXPIRED = Counter(
    "mall_checkout_holds_expired_total",
    "Coupon locks and points holds the expiry sweep released because no order settled them in time, by kind.",
    ["kind"])
# Why the sweep left a stale lock held for its next run: unanswered, the order service could not be asked; paid, its
# order was paid and its order-paid has not been applied yet (the member consumer, the relay or Kafka behind);
# awaiting_payment, its order is unpaid but not ended (the order service's payment timeout has not cancelled it yet).
HOLD_KEPT_REASONS = ("unanswered", "paid", "awaiting_payment")
CHECKOUT_HOLDS_KEPT = Counter(
    "mall_checkout_holds_kept_total",
    "Stale coupon locks and points holds the expiry sweep left held for its next run, by kind and reason "
    "(unanswered|paid|awaiting_payment).", ["kind", "reason"])
EXPIRED_HOLDS_PAID = Counter(
    "mall_expired_holds_paid_total",
    "Orders paid after the sweep had released their coupon lock or points hold, by kind and outcome "
    "(taken_again | lost | short).", ["kind", "outcome"])
PAYOUTS_OVERDUE = Gauge(
    "mall_withdrawals_paying_overdue",
    "Withdrawals still PAYING PAYOUT_OVERDUE (25 hours) after approval once the payout-settlement job has asked "
    "WeChat Pay about them: no end of their transfer is known (a re-send refused, no usable answer).")
PAYOUTS_OVERDUE_OLDEST = Gauge(
    "mall_withdrawals_paying_overdue_oldest_seconds",
    "How long ago the oldest of those was approved, in seconds (0: none).")
RECHARGES_PENDING_OVERDUE = Gauge(
    "mall_recharges_pending_overdue",
    "Recharges still PENDING MEMBER_RECHARGE_EXPIRE_SECONDS after their payment deadline once the recharge-expiry job "
    "has asked their channels: the channel gives no usable answer about them.")
RECHARGES_PENDING_OVERDUE_OLDEST = Gauge(
    "mall_recharges_pending_overdue_oldest_seconds",
    "How long past its payment deadline the oldest of those is, in seconds (0: none).")

# Every series exists from the start, so rate() and increase() count the first event too.
for _outcome in WITHDRAWAL_OUTCOMES:
    WITHDRAWALS.labels(_outcome)
for _kind in HOLD_KINDS:
    CHECKOUT_HOLDS_EXPIRED.labels(_kind)
    for _reason in HOLD_KEPT_REASONS:
        CHECKOUT_HOLDS_KEPT.labels(_kind, _reason)
for _kind, _outcome in EXPIRED_HOLD_OUTCOMES:
    EXPIRED_HOLDS_PAID.labels(_kind, _outcome)
for _channel in RECHARGE_CHANNELS:
    RECHARGES.labels(_channel)
    RECHARGED_FEN.labels(_channel)


def recharged(channel: str, amount_fen: int) -> None:
    RECHARGES.labels(channel).inc()
    RECHARGED_FEN.labels(channel).inc(amount_fen)


def withdrawal_paid(amount_fen: int) -> None:
    WITHDRAWALS.labels("paid").inc()
    WITHDRAWN_FEN.inc(amount_fen)


def overdue_payouts(count: int, oldest_seconds: float) -> None:
    PAYOUTS_OVERDUE.set(count)
    PAYOUTS_OVERDUE_OLDEST.set(oldest_seconds)


def overdue_recharges(count: int, oldest_seconds: float) -> None:
    RECHARGES_PENDING_OVERDUE.set(count)
    RECHARGES_PENDING_OVERDUE_OLDEST.set(oldest_seconds)
