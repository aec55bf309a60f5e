"""Order service settings, read from the environment."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

from services.common import formats
from services.common.config import ConfigError, Env, ServiceSettings, callback_url, public_callback_url
from services.common.runtime import Job
from services.common.runtime_config import RuntimeConfig, Tunable
from services.common.wechatpay import WechatPaySettings
from services.order.aftersales import DEFAULT_AFTER_SALE_DAYS, DEFAULT_RETURN_SHIP_DAYS, AfterSaleSettings
from services.order.domain import (
    DEFAULT_AUTO_CONFIRM_DAYS,
    DEFAULT_AUTO_CONFIRM_MAX_PAUSE_DAYS,
    DEFAULT_PAY_MINUTES,
    MAX_PAY_MINUTES,
    MIN_PAY_MINUTES,
    Address,
    FreightRule,
)
from services.order.refunds import STUCK_SECONDS
from services.order.service import DEFAULT_MAX_UNPAID_ORDERS, WALLET_SETTLE_SECONDS, OrderSettings

# Bounds of the environment's days (and Consul's, for auto-confirm): 0 auto-confirm days would complete an order
# as it ships, its after-sales days running out while the parcel travels; a year bounds the date sums.
AUTO_CONFIRM_DAYS = (1, 60)
AUTO_CONFIRM_MAX_PAUSE_DAYS = (0, 60)  # 0: after-sales never hold auto-confirm (a case goes on after completion)
AFTER_SALE_DAYS = (0, 365)
RETURN_SHIP_DAYS = (1, 60)  # 0 would close an approved return before the shopper could post it
# A refund PENDING this long is stuck (counted for RefundPendingStuck; one WeChat Pay refuses when sent again turns
# ABNORMAL): at least 10 minutes (twice the default settle time), at most a week (WeChat Pay's own refund deadline
# is a year after payment, but a shopper waiting a week unpaid is already too long).
REFUND_STUCK_SECONDS = (600, 7 * 86400)
# Orders awaiting payment one shopper may have: at least 1 (0 would stop every order), at most 10,000 (a load test's few
# shoppers placing thousands; in a shop, more than a handful unpaid is one account holding stock).
MAX_UNPAID_ORDERS = (1, 10_000)
# ORDER_RETURN_ADDRESS: each field's length (as the user service bounds a shipping address's), and the phone: a
# mainland mobile number or a landline with its area code (a shop's returns desk often has one), 0571-88888888.
RETURN_ADDRESS_LENGTHS = {"name": (1, 20), "province": (2, 20), "city": (2, 20), "district": (2, 20),
                          "detail": (2, 120)}
RETURN_ADDRESS_PHONE = re.compile(f"{formats.PHONE}|0[0-9]{{2,3}}-[0-9]{{7,8}}")
RETURN_ADDRESS_FIELDS = ("name", "phone", "province", "city", "district", "detail")
# The gateway's routes WeChat Pay calls back (gateway/routes/payments.py), under MINIMALL_PUBLIC_URL.
PAY_NOTIFY_PATH = "/api/v1/payments/wechat/notify"
REFUND_NOTIFY_PATH = "/api/v1/payments/wechat/refund-notify"


@dataclass(frozen=True)
class OrderServiceSettings:
    """ORDER_PAY_MINUTES (30; 5 to 60), ORDER_FREIGHT_FEN (0; to 100,000), ORDER_FREE_FREIGHT_FROM_FEN (0 = never
    free; to 100,000,000),
    ORDER_WECHATPAY_NOTIFY_URL (the public URL of POST /api/v1/payments/wechat/notify; default MINIMALL_PUBLIC_URL
    + that path), ORDER_WECHATPAY_REFUND_NOTIFY_URL (that of POST /api/v1/payments/wechat/refund-notify; likewise),
    both public https URLs outside dev and test once WeChat Pay is configured (checked at start),
    ORDER_REFUND_RECONCILE_SECONDS (60) and ORDER_REFUND_SETTLE_SECONDS (300: PENDING refunds older are queried),
    ORDER_REFUND_STUCK_SECONDS (3600; 600 to 604,800: PENDING refunds older are counted as stuck, and one WeChat Pay
    never got and refuses when sent again becomes ABNORMAL for staff),
    ORDER_TIMEOUT_SCAN_SECONDS (10), ORDER_RECONCILE_SECONDS (60: WeChat Pay payments and wallet payments left
    unknown are asked about), ORDER_WALLET_SETTLE_SECONDS (30: wallet payments unknown this long are asked about;
    more than the call deadline), ORDER_GRPC_TIMEOUT_MS (5000) for calls to other services,
    ORDER_AUTO_CONFIRM_DAYS (10; 1 to 60) after shipping, ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS (15; 0 to 60: the
    most after-sales cases hold auto-confirm in total), ORDER_AUTO_CONFIRM_SCAN_SECONDS (60),
    ORDER_MAX_UNPAID_PER_USER (5; 1 to 10,000: a shopper with this many orders awaiting payment is refused another,
    409 TOO_MANY_UNPAID_ORDERS), ORDER_AFTER_SALE_DAYS (7; 0 to 365) after delivery, ORDER_RETURN_SHIP_DAYS (7; 1 to 60: an approved return
    not sent back by then is closed, scanned every ORDER_AUTO_CONFIRM_SCAN_SECONDS), ORDER_RETURN_ADDRESS (unset:
    none; else a JSON object, `return_address`), and the WECHATPAY_* settings of services.common.wechatpay."""

    base: ServiceSettings
    orders: OrderSettings
    after_sales: AfterSaleSettings
    wechatpay: WechatPaySettings | None
    timeout_scan_seconds: float
    auto_confirm_scan_seconds: float
    reconcile_seconds: float
    grpc_timeout_seconds: float
    refund_reconcile_seconds: float = 60.0
    refund_settle_seconds: int = 300
    refund_stuck_seconds: int = STUCK_SECONDS
    wallet_settle_seconds: int = WALLET_SETTLE_SECONDS

    @classmethod
    def from_env(cls, base: ServiceSettings, environ: Mapping[str, str] | None = None) -> OrderServiceSettings:
        env = Env(environ)
        pay_minutes = env.int_within("ORDER_PAY_MINUTES", DEFAULT_PAY_MINUTES, MIN_PAY_MINUTES, MAX_PAY_MINUTES)
        orders = OrderSettings(pay_minutes=pay_minutes,
                               freight=FreightRule(flat_fen=env.int_within("ORDER_FREIGHT_FEN", 0, 0, MAX_FREIGHT_FEN),
                                                   free_from_fen=env.int_within("ORDER_FREE_FREIGHT_FROM_FEN", 0, 0,
                                                                          MAX_FREE_FREIGHT_FROM_FEN)),
                               notify_url=callback_url(env, "ORDER_WECHATPAY_NOTIFY_URL", PAY_NOTIFY_PATH),
                               auto_confirm_days=env.int_within("ORDER_AUTO_CONFIRM_DAYS", DEFAULT_AUTO_CONFIRM_DAYS,
                                                          *AUTO_CONFIRM_DAYS),
                               auto_confirm_max_pause_days=env.int_within("ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS",
                                                                    DEFAULT_AUTO_CONFIRM_MAX_PAUSE_DAYS,
                                                                    *AUTO_CONFIRM_MAX_PAUSE_DAYS),
                               refund_notify_url=callback_url(env, "ORDER_WECHATPAY_REFUND_NOTIFY_URL",
                                                              REFUND_NOTIFY_PATH),
                               max_unpaid_orders=env.int_within("ORDER_MAX_UNPAID_PER_USER", DEFAULT_MAX_UNPAID_ORDERS,
                                                                *MAX_UNPAID_ORDERS))
        wechatpay = WechatPaySettings.from_env(base.environment, environ)
        if wechatpay is not None:  # WeChat Pay notifies payments and refunds there: it must reach them
            public_callback_url("ORDER_WECHATPAY_NOTIFY_URL", orders.notify_url, base.environment)
            public_callback_url("ORDER_WECHATPAY_REFUND_NOTIFY_URL", orders.refund_notify_url, base.environment)
        grpc_timeout_ms = env.int("ORDER_GRPC_TIMEOUT_MS", 5000)
        wallet_settle_seconds = env.int("ORDER_WALLET_SETTLE_SECONDS", WALLET_SETTLE_SECONDS)
        if wallet_settle_seconds * 1000 <= grpc_timeout_ms:  # else a charge still under way could be taken for none
            raise ConfigError(f"ORDER_WALLET_SETTLE_SECONDS ({wallet_settle_seconds}) must be longer than "
                              f"ORDER_GRPC_TIMEOUT_MS ({grpc_timeout_ms} ms)")
        return cls(base=base, orders=orders,
                   after_sales=AfterSaleSettings(
                       after_sale_days=env.int_within("ORDER_AFTER_SALE_DAYS", DEFAULT_AFTER_SALE_DAYS, *AFTER_SALE_DAYS),
                       return_ship_days=env.int_within("ORDER_RETURN_SHIP_DAYS", DEFAULT_RETURN_SHIP_DAYS,
                                                 *RETURN_SHIP_DAYS),
                       return_address=return_address(env.optional("ORDER_RETURN_ADDRESS"))),
                   wechatpay=wechatpay,
                   timeout_scan_seconds=env.float("ORDER_TIMEOUT_SCAN_SECONDS", 10.0),
                   auto_confirm_scan_seconds=env.float("ORDER_AUTO_CONFIRM_SCAN_SECONDS", 60.0),
                   reconcile_seconds=env.float("ORDER_RECONCILE_SECONDS", 60.0),
                   grpc_timeout_seconds=grpc_timeout_ms / 1000,
                   refund_reconcile_seconds=env.float("ORDER_REFUND_RECONCILE_SECONDS", 60.0),
                   refund_settle_seconds=env.int("ORDER_REFUND_SETTLE_SECONDS", 300),
                   refund_stuck_seconds=env.int_within("ORDER_REFUND_STUCK_SECONDS", STUCK_SECONDS,
                                                 *REFUND_STUCK_SECONDS),
                   wallet_settle_seconds=wallet_settle_seconds)


def return_address(raw: str | None) -> Address | None:
    """The shop's return address from ORDER_RETURN_ADDRESS, a JSON object of exactly `RETURN_ADDRESS_FIELDS`:
    {"name": "售后部", "phone": "0571-88888888", "province": "浙江省", "city": "杭州市", "district": "西湖区",
    "detail": "文三路1号"}; the province by its full or short name (kept by its full one). None when unset.
    ConfigError naming every field that is missing, unknown or not as RETURN_ADDRESS_LENGTHS and _PHONE say."""
    if raw is None:
        return None
    try:
        given = json.loads(raw)
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise ConfigError(f"ORDER_RETURN_ADDRESS must be a JSON object with {', '.join(RETURN_ADDRESS_FIELDS)}")
    errors = [f"{name}: unknown" for name in sorted(set(given) - set(RETURN_ADDRESS_FIELDS))]
    text = {name: value.strip() for name, value in given.items() if isinstance(value, str)}
    for name in RETURN_ADDRESS_FIELDS:
        value = text.get(name)
        low, high = RETURN_ADDRESS_LENGTHS.get(name, (0, 0))
        if value is None:
            errors.append(f"{name}: must be given, as a string")
        elif formats.CONTROL_CHARACTER_PATTERN.search(value):
            errors.append(f"{name}: must not contain control characters")
        elif name == "phone" and not RETURN_ADDRESS_PHONE.fullmatch(value):
            errors.append("phone: must be a mainland mobile number or a landline such as 0571-88888888")
        elif name == "province" and formats.province_full_name(value) is None:
            errors.append(f"province: must be {formats.PROVINCE_RULE}")
        elif name in RETURN_ADDRESS_LENGTHS and not low <= len(value) <= high:
            errors.append(f"{name}: must be {low}-{high} characters")
    if errors:
        raise ConfigError(f"ORDER_RETURN_ADDRESS is not a usable return address: {'; '.join(errors)}")
    return Address(**{**text, "province": formats.province_full_name(text["province"]) or ""})


# Live settings (services/common/runtime_config.py): ops change them while the service runs with
# `consul kv put minimall/order/<key> <value>`; the environment gives each its default. Each key
# overrides the OrderSettings field it names (the servicer's, and the auto-confirm job reads the servicer's).
LIVE_FIELDS = {"payment_timeout_minutes": "pay_minutes", "auto_confirm_days": "auto_confirm_days",
               "auto_confirm_max_pause_days": "auto_confirm_max_pause_days",
               "max_unpaid_orders_per_user": "max_unpaid_orders"}
# ... and the freight rule's fields: a promotion's free-shipping threshold or a carrier's new price without a release.
LIVE_FREIGHT_FIELDS = {"freight_fen": "flat_fen", "free_freight_from_fen": "free_from_fen"}
MAX_FREIGHT_FEN = 100_000            # 1,000 yuan: more is a typo, not a parcel
MAX_FREE_FREIGHT_FROM_FEN = 100_000_000


def live_tunables(orders: OrderSettings) -> dict[str, Tunable]:
    """payment_timeout_minutes (5 to 60 minutes, domain.MAX_PAY_MINUTES; default ORDER_PAY_MINUTES),
    auto_confirm_days (1 to 60; default ORDER_AUTO_CONFIRM_DAYS, 10), auto_confirm_max_pause_days (0 to 60; default
    ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS, 15), freight_fen (0 to 100,000; default
    ORDER_FREIGHT_FEN), free_freight_from_fen (0 = never free, to 100,000,000; ORDER_FREE_FREIGHT_FROM_FEN) and
    max_unpaid_orders_per_user (1 to 10,000; ORDER_MAX_UNPAID_PER_USER, 5: raised for a sale, lowered under abuse).
    Preview and submit read the same settings, so a quote and the order placed after it agree but across a
    change (submit re-prices)."""
    return {"payment_timeout_minutes": Tunable(default=orders.pay_minutes, minimum=MIN_PAY_MINUTES,
                                               maximum=MAX_PAY_MINUTES),
            "auto_confirm_days": Tunable(default=orders.auto_confirm_days, minimum=AUTO_CONFIRM_DAYS[0],
                                         maximum=AUTO_CONFIRM_DAYS[1]),
            "auto_confirm_max_pause_days": Tunable(default=orders.auto_confirm_max_pause_days,
                                                   minimum=AUTO_CONFIRM_MAX_PAUSE_DAYS[0],
                                                   maximum=AUTO_CONFIRM_MAX_PAUSE_DAYS[1]),
            "freight_fen": Tunable(default=orders.freight.flat_fen, minimum=0, maximum=MAX_FREIGHT_FEN),
            "free_freight_from_fen": Tunable(default=orders.freight.free_from_fen, minimum=0,
                                             maximum=MAX_FREE_FREIGHT_FROM_FEN),
            "max_unpaid_orders_per_user": Tunable(default=orders.max_unpaid_orders, minimum=MAX_UNPAID_ORDERS[0],
                                                  maximum=MAX_UNPAID_ORDERS[1])}


def with_live_values(orders: OrderSettings, values: Mapping[str, int]) -> OrderSettings:
    """`orders` with the live values of the fields it has."""
    own = {f.name for f in fields(orders)}
    freight = replace(orders.freight, **{field: values[key] for key, field in LIVE_FREIGHT_FIELDS.items()
                                         if key in values})
    return replace(orders, freight=freight,
                   **{field: values[key] for key, field in LIVE_FIELDS.items() if field in own and key in values})


def follow_live_settings(live: RuntimeConfig, orders: OrderSettings,
                         apply: Callable[[OrderSettings], None]) -> Job:
    """Hand `apply` the settings in force now and after each change; returns the watch job (serve role)."""
    live.subscribe(lambda values: apply(with_live_values(orders, values)))
    return Job(live.watch, live.liveness_bound_seconds())
