"""Alipay open platform, merchant side: a signed app-pay order string and verified asynchronous notifies.

Used by the member service for wallet recharges (M4). Every request and every notify is signed RSA2:
SHA256withRSA (PKCS#1 v1.5), base64, over the parameters sorted by name as `name=value` joined
with `&` (values raw, not URL-encoded; empty values and `sign` left out; a notify's `sign_type`
too). We sign with the application's private key; notifies must verify with *Alipay's* public key
(not the application's), name our app_id and, when ALIPAY_SELLER_ID is set, our seller.

`python-alipay-sdk` was considered: it implements the same signature, but brings pycryptodomex
besides the `cryptography` we already use for WeChat Pay, and its `verify()` checks only the
signature (app_id, amount and status are left to the caller anyway). The protocol is small, so it
lives here, next to services/common/wechatpay.py.

Settings (`AlipaySettings.from_env`; Alipay is off when ALIPAY_APP_ID is unset): ALIPAY_APP_ID,
ALIPAY_APP_PRIVATE_KEY_FILE (PKCS#8 or PKCS#1 PEM), ALIPAY_PUBLIC_KEY_FILE (Alipay's public key, PEM),
ALIPAY_SELLER_ID (optional: the seller's 2088… id notifies must carry). The dev simulator
(tools/simulator/alipay.py) generates a matching pair; `tools.simulator.dev_env` points them at it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from services.common.config import ConfigError, Env, read_key

CHINA = timezone(timedelta(hours=8))  # Alipay's timestamps are Beijing time, without an offset
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
YUAN = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")


class AlipayError(Exception):
    """Anything Alipay related that went wrong; `reason` is safe to log and to answer with."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotifyRejected(AlipayError):
    """A notify we must not trust: answered with anything but `success`, so Alipay sends it again."""


@dataclass(frozen=True)
class AlipaySettings:
    app_id: str
    app_private_key_pem: bytes = field(repr=False)
    alipay_public_key_pem: bytes
    seller_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlipaySettings | None:
        """The settings, or None when ALIPAY_APP_ID is unset (Alipay not configured)."""
        env = Env(environ)
        app_id = env.optional("ALIPAY_APP_ID")
        if app_id is None:
            return None
        return cls(app_id=app_id, app_private_key_pem=read_key(env, "ALIPAY_APP_PRIVATE_KEY_FILE"),
                   alipay_public_key_pem=read_key(env, "ALIPAY_PUBLIC_KEY_FILE"),
                   seller_id=env.optional("ALIPAY_SELLER_ID"))


@dataclass(frozen=True)
class TradeNotice:
    """A verified notify of a paid trade; the amount exactly in fen."""

    out_trade_no: str
    trade_no: str
    trade_status: str
    total_fen: int
    app_id: str
    paid: bool           # TRADE_SUCCESS or TRADE_FINISHED


def fen_to_yuan(fen: int) -> str:
    """12345 -> "123.45": what total_amount carries."""
    if fen < 0:
        raise ValueError("amounts are not negative")
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_to_fen(yuan: str) -> int:
    """"123.45" -> 12345 exactly (no float); ValueError for anything but a plain non-negative amount."""
    match = YUAN.fullmatch(yuan)
    if match is None:
        raise ValueError(f"not an amount in yuan: {yuan!r}")
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


def signing_content(params: Mapping[str, str], *, exclude: tuple[str, ...] = ("sign",)) -> str:
    """`a=1&b=2`: the non-empty parameters but `exclude`, sorted by name, values raw."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name not in exclude and params[name] != "")


def rsa2_sign(key: RSAPrivateKey, content: str) -> str:
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(key: RSAPublicKey, content: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_private_key(pem: bytes) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError("the Alipay application key must be an RSA private key")
    return key


def load_public_key(pem: bytes) -> RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("Alipay's public key must be an RSA public key")
    return key


def beijing_time(moment: datetime) -> str:
    """"2026-12-06 10:30:00": the timestamp format Alipay's parameters use."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


class Alipay:
    """One application (app_id) on the Alipay open platform."""

    def __init__(self, settings: AlipaySettings) -> None:
        self.settings = settings
        self._app_key = load_private_key(settings.app_private_key_pem)
        self._alipay_key = load_public_key(settings.alipay_public_key_pem)

    def app_pay_order_string(self, *, out_trade_no: str, amount_fen: int, subject: str, notify_url: str,
                             now: datetime, time_expire: datetime) -> str:
        """The signed `alipay.trade.app.pay` order string the client hands to the Alipay SDK (my.tradePay)."""
        if amount_fen <= 0:
            raise ValueError("amount_fen must be > 0")
        biz = {"out_trade_no": out_trade_no, "total_amount": fen_to_yuan(amount_fen), "subject": subject,
               "product_code": "QUICK_MSECURITY_PAY", "time_expire": beijing_time(time_expire)}
        params = {"app_id": self.settings.app_id, "method": "alipay.trade.app.pay", "format": "JSON",
                  "charset": "utf-8", "sign_type": "RSA2", "timestamp": beijing_time(now), "version": "1.0",
                  "notify_url": notify_url,
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        params["sign"] = rsa2_sign(self._app_key, signing_content(params))
        return "&".join(f"{name}={quote_plus(value)}" for name, value in params.items())

    def verify_notify(self, params: Mapping[str, str]) -> TradeNotice:
        """An asynchronous trade notify (form fields), verified; NotifyRejected with the reason otherwise."""
        if params.get("sign_type") != "RSA2":
            raise NotifyRejected(f"unsupported sign_type {params.get('sign_type')!r}")
        if not rsa2_verify(self._alipay_key, signing_content(params, exclude=("sign", "sign_type")),
                           params.get("sign", "")):
            raise NotifyRejected("the sign does not verify with Alipay's public key")
        if params.get("app_id") != self.settings.app_id:
            raise NotifyRejected("app_id is not this application's")
        if self.settings.seller_id and params.get("seller_id") != self.settings.seller_id:
            raise NotifyRejected("seller_id is not this merchant's")
        out_trade_no, trade_no, status = (params.get(name, "") for name in ("out_trade_no", "trade_no",
                                                                            "trade_status"))
        if not (out_trade_no and trade_no and status):
            raise NotifyRejected("the notify lacks out_trade_no, trade_no or trade_status")
        try:
            total_fen = yuan_to_fen(params.get("total_amount", ""))
        except ValueError:
            raise NotifyRejected("total_amount is not an amount in yuan") from None
        return TradeNotice(out_trade_no=out_trade_no, trade_no=trade_no, trade_status=status, total_fen=total_fen,
                           app_id=params["app_id"], paid=status in PAID_STATUSES)
