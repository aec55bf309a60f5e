"""Business counters of the product service (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter

# out_of_stock: a line asked for more than is left; unavailable: a SKU unknown or off sale; mismatch: an order
# number reserved other lines before; released: the order was released (compensated) before its reservation ran.
REASONS = ("out_of_stock", "unavailable", "mismatch", "released")

STOCK_RESERVATION_FAILURES = Counter("mall_stock_reservation_failures_total",
                                     "Stock reservations refused, by reason (out_of_stock|unavailable|mismatch|released).",
                                     ["reason"])

for _reason in REASONS:  # every series exists from the start, so rate() and increase() see the first one
    STOCK_RESERVATION_FAILURES.labels(_reason)

# The sweep's releases: reservations nobody settled within RESERVATION_TTL whose order the order service says was
# cancelled, closed unpaid or never placed (a submit that died after reserving, an order-cancelled lost).
STOCK_RESERVATIONS_EXPIRED = Counter("mall_stock_reservations_expired_total",
                                     "Orders whose stock reservation expired unsettled and went back on sale.")

# Reservations past their TTL whose order was paid but whose order-paid had not arrived (the product consumer or
# Kafka behind): the sweep sold them as order-paid would have. Any is a sign of consumer lag.
STOCK_RESERVATIONS_CONFIRMED_BY_SWEEP = Counter(
    "mall_stock_reservations_confirmed_by_sweep_total",
    "Orders whose expired stock reservation the sweep confirmed: the order was paid, its order-paid not yet applied.")

# unanswered: the order service could not be asked (the batch waits for the next run); awaiting_payment: the order
# is still unpaid past the reservation's TTL (its payment timeout has not cancelled it yet).
SWEEP_DEFERRALS = ("unanswered", "awaiting_payment")
STOCK_RESERVATIONS_DEFERRED = Counter(
    "mall_stock_reservations_deferred_total",
    "Expired stock reservations the sweep left held for its next run, by reason (unanswered|awaiting_payment).",
    ["reason"])
for _reason in SWEEP_DEFERRALS:
    STOCK_RESERVATIONS_DEFERRED.labels(_reason)

# Units a late order-paid could not take again: the sweep had expired its reservation and they were sold since.
# Each is an order paid for goods the shop no longer has: staff must find stock or refund (log ERROR names them).
STOCK_OVERSOLD_UNITS = Counter("mall_stock_oversold_units_total",
                               "Units paid for after their reservation expired and sold meanwhile (oversold).")
