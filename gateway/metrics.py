"""Prometheus metrics of the gateway."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("mall_http_requests_total", "HTTP requests, by route and status.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("mall_http_request_seconds", "HTTP request handling time.", ["method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RATE_LIMITED = Counter("mall_http_rate_limited_total", "Requests refused by a rate limit.", ["route", "key"])
CATALOG_CACHE = Counter("mall_catalog_cache_total", "Catalogue reads by cache outcome (hit, stale, miss, bypass).",
                        ["result"])
RATE_LIMIT_STORE_FALLBACKS = Counter(
    "mall_rate_limit_store_fallbacks_total",
    "Rate-limit decisions counted in one worker's memory because the shared store (Redis) was unreachable.")
SMS_CODES = Counter("mall_sms_codes_total",
                    "SMS code requests that passed the per-client limits, by outcome: sent (the user service sent a "
                    "paid SMS) or budget_exhausted (refused: the day's SMS budget, or the 70% of it codes to new phones get, "
                    "is spent).", ["result"])
for _result in ("sent", "budget_exhausted"):  # every series exists from the start, so increase() sees the first one
    SMS_CODES.labels(_result)
SMS_DAILY_BUDGET = Gauge("mall_sms_daily_budget",
                         "SMS codes all clients together may have sent in any 24 hours (GATEWAY_SMS_DAILY_BUDGET, scaled).")
IDENTITY_CHECKS = Counter("mall_identity_checks_total",
                          "Real-name verifications that passed the per-client limits, by outcome: checked (passed on "
                          "to the user service, which may have asked the paid identity provider) or budget_exhausted "
                          "(refused: the day's GATEWAY_IDENTITY_DAILY_BUDGET is spent).", ["result"])
for _result in ("checked", "budget_exhausted"):
    IDENTITY_CHECKS.labels(_result)
IDENTITY_DAILY_BUDGET = Gauge("mall_identity_daily_budget", "Real-name checks all accounts together may have had in any "
                              "24 hours (GATEWAY_IDENTITY_DAILY_BUDGET, scaled).")
