"""Business counters of the product service (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter

# out_of_stock: a line asked for more than is left; unavailable: a SKU unknown or off sale; mismatch: an order
# number reserved other lines before.
REASONS = ("out_of_stock", "unavailable", "mismatch")

STOCK_RESERVATION_FAILURES = Counter("mall_stock_reservation_failures_total",
                                     "Stock reservations refused, by reason (out_of_stock|unavailable|mismatch).", ["reason"])

for _reason in REASONS:  # every series exists from the start, so rate() and increase() see the first one
    STOCK_RESERVATION_FAILURES.labels(_reason)

# The sweep's releases: reservations nobody settled within RESERVATION_TTL (a submit that died after reserving, an
# order-cancelled lost). A few are a crash now and then; an order paid after its units were released here is
# dead-lettered by the order-paid consumer (EventsDeadLettered).
STOCK_RESERVATIONS_EXPIRED = Counter("mall_stock_reservations_expired_total",
                                     "Orders whose stock reservation expired unsettled and went back on sale.")
