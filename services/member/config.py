"""Member service settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.alipay import AlipaySettings
from services.common.bankcard import BankcardSettings
from services.common.config import Env, ServiceSettings, callback_url, public_callback_url
from services.common.wechatpay import WechatPaySettings
from services.member.domain import (
    COUPON_MAX_FACE_FEN,
    DEFAULT_COUPON_MAX_FACE_FEN,
    DEFAULT_RECHARGE_EXPIRE_SECONDS,
    RECHARGE_EXPIRE_SECONDS,
)

# Where each channel notifies recharges, under MEMBER_NOTIFY_BASE_URL (the gateway's public /api/v1).
NOTIFY_PATHS = {"wechat": "/payments/wechat/recharge-notify", "alipay": "/payments/alipay/notify",
                "bank_card": "/payments/bankcard/notify"}


def grpc_timeout_seconds(environ: Mapping[str, str] | None = None) -> float:
    """MEMBER_GRPC_TIMEOUT_MS (5000): the deadline of the member service's calls to other services; the consume role,
    which builds no MemberServiceSettings (no channel's settings), reads it alone."""
    env = Env(environ)
    return env.int("MEMBER_GRPC_TIMEOUT_MS", 5000) / 1000


@dataclass(frozen=True)
class MemberServiceSettings:
    """MEMBER_NOTIFY_BASE_URL (MINIMALL_PUBLIC_URL + /api/v1: the public base the channels notify, see
    NOTIFY_PATHS; a public https URL outside dev and test once a channel is configured, checked at start), MEMBER_RECONCILE_SECONDS (60: how often pending recharges and in-flight payouts are
    queried, and coupon locks and points holds past CHECKOUT_HOLD_TTL released), MEMBER_RECONCILE_SETTLE_SECONDS (60: how long a recharge waits for its notify, or a payout
    in flight for its end, before the channel is asked),
    MEMBER_POINTS_EXPIRY_SECONDS (3600: how often points past their term are expired),
    MEMBER_RECHARGE_EXPIRE_SECONDS (900; 60 to 86,400: how long after its payment deadline a PENDING recharge is
    asked about once more and, unpaid, EXPIRED; the scan runs every MEMBER_RECONCILE_SECONDS),
    MEMBER_COUPON_MAX_FACE_FEN (100000; 100 to 10^12: the most one coupon of a new template may take off, a fixed
    coupon's amount or a percent coupon's cap),
    MEMBER_GRPC_TIMEOUT_MS (5000) for calls to other services, and each channel's own settings:
    WECHATPAY_* (services.common.wechatpay), ALIPAY_* (services.common.alipay), BANKCARD_*
    (services.common.bankcard). A channel whose settings are absent is not offered."""

    notify_urls: dict[str, str]
    wechatpay: WechatPaySettings | None
    alipay: AlipaySettings | None
    bankcard: BankcardSettings | None
    reconcile_seconds: float
    points_expiry_seconds: float
    grpc_timeout_seconds: float
    reconcile_settle_seconds: int = 60
    recharge_expire_seconds: int = DEFAULT_RECHARGE_EXPIRE_SECONDS
    coupon_max_face_fen: int = DEFAULT_COUPON_MAX_FACE_FEN

    @classmethod
    def from_env(cls, base: ServiceSettings, environ: Mapping[str, str] | None = None) -> MemberServiceSettings:
        env = Env(environ)
        notify_base = callback_url(env, "MEMBER_NOTIFY_BASE_URL", "/api/v1").rstrip("/")
        wechatpay = WechatPaySettings.from_env(base.environment, environ)
        alipay = AlipaySettings.from_env(environ, base.environment)
        bankcard = BankcardSettings.from_env(base.environment, environ)
        if wechatpay or alipay or bankcard:  # the configured channels notify recharges there: they must reach it
            public_callback_url("MEMBER_NOTIFY_BASE_URL", notify_base, base.environment)
        return cls(notify_urls={channel: notify_base + path for channel, path in NOTIFY_PATHS.items()},
                   wechatpay=wechatpay, alipay=alipay, bankcard=bankcard,
                   reconcile_seconds=env.float("MEMBER_RECONCILE_SECONDS", 60.0),
                   points_expiry_seconds=env.float("MEMBER_POINTS_EXPIRY_SECONDS", 3600.0),
                   grpc_timeout_seconds=grpc_timeout_seconds(environ),
                   reconcile_settle_seconds=env.int("MEMBER_RECONCILE_SETTLE_SECONDS", 60),
                   recharge_expire_seconds=env.int_within("MEMBER_RECHARGE_EXPIRE_SECONDS",
                                                          DEFAULT_RECHARGE_EXPIRE_SECONDS, *RECHARGE_EXPIRE_SECONDS),
                   coupon_max_face_fen=env.int_within("MEMBER_COUPON_MAX_FACE_FEN", DEFAULT_COUPON_MAX_FACE_FEN,
                                                      *COUPON_MAX_FACE_FEN))
