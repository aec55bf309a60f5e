"""Alipay open platform, merchant side: a signed app-pay order string and verified asynchronous notifies.

Used by the member service for wallet recharges (M4). Every request, every answer and every notify is
signed RSA2:
SHA256withRSA (PKCS#1 v1.5), base64, over the parameters sorted by name as `name=value` joined
with `&` (values raw, not URL-encoded; empty values and `sign` left out; a notify's `sign_type`
too). We sign with the application's private key; notifies must verify with *Alipay's* public key
(not the application's), name our app_id and, when ALIPAY_SELLER_ID is set, our seller.

A lost notify is caught up by `alipay.trade.query` (reconciliation): the request is POSTed form-encoded to
the gateway, signed like any other; the answer is JSON `{"alipay_trade_query_response": {...}, "sign": ...}`
whose `sign` covers the *exact text* of the response object as it came over the wire (not a re-encoding),
verified with Alipay's public key before anything in it is believed. `alipay.trade.close` (a shopper closing a
recharge) is called and verified the same way.

`python-alipay-sdk` was considered: it implements the same signature, but brings pycryptodomex
besides the `cryptography` we already use for WeChat Pay, and its `verify()` checks only the
signature (app_id, amount and status are left to the caller anyway). The protocol is small, so it
lives here, next to services/common/wechatpay.py.

Settings (`AlipaySettings.from_env`; Alipay is off when ALIPAY_APP_ID is unset): ALIPAY_APP_ID,
ALIPAY_APP_PRIVATE_KEY_FILE (PKCS#8 or PKCS#1 PEM), ALIPAY_PUBLIC_KEY_FILE (Alipay's public key, PEM),
ALIPAY_SELLER_ID (optional: the seller's 2088… id notifies must carry), ALIPAY_GATEWAY_URL (default
https://openapi.alipay.com/gateway.do; https only outside dev/test), THIRD_PARTY_TIMEOUT_SECONDS (5). The dev simulator
(tools/simulator/alipay.py) generates a matching pair; `tools.simulator.dev_env` points them at it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote_plus

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from services.common.config import ConfigError, Env, provider_url, read_key
from services.common.errors import ChannelError

log = logging.getLogger(__name__)

DEFAULT_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
CHINA = timezone(timedelta(hours=8))  # Alipay's timestamps are Beijing time, without an offset
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
YUAN = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")


class AlipayError(ChannelError):
    """Anything Alipay related that went wrong; `reason` is safe to log and to answer with."""


class NotifyRejected(AlipayError):
    """A notify we must not trust: answered with anything but `success`, so Alipay sends it again."""


class AlipayUnavailable(AlipayError):
    """No trustworthy answer: network error, HTTP error, or an answer whose sign does not verify."""


class AlipayApiError(AlipayError):
    """Alipay refused the request (a verified answer with code other than 10000), e.g. ACQ.SYSTEM_ERROR."""

    def __init__(self, code: str, sub_code: str, message: str) -> None:
        super().__init__(f"{code} {sub_code}: {message}")
        self.code, self.sub_code, self.message = code, sub_code, message


@dataclass(frozen=True)
class AlipaySettings:
    app_id: str
    app_private_key_pem: bytes = field(repr=False)
    alipay_public_key_pem: bytes
    seller_id: str | None = None
    gateway_url: str = DEFAULT_GATEWAY_URL
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 environment: str = "production") -> AlipaySettings | None:
        """The settings, or None when ALIPAY_APP_ID is unset (Alipay not configured)."""
        env = Env(environ)
        app_id = env.optional("ALIPAY_APP_ID")
        if app_id is None:
            return None
        gateway_url = provider_url("ALIPAY_GATEWAY_URL", env.str("ALIPAY_GATEWAY_URL", DEFAULT_GATEWAY_URL),
                                   environment)
        return cls(app_id=app_id, app_private_key_pem=read_key(env, "ALIPAY_APP_PRIVATE_KEY_FILE"),
                   alipay_public_key_pem=read_key(env, "ALIPAY_PUBLIC_KEY_FILE"),
                   seller_id=env.optional("ALIPAY_SELLER_ID"), gateway_url=gateway_url,
                   timeout_seconds=env.float("THIRD_PARTY_TIMEOUT_SECONDS", 5.0))


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


def signed_response(text: str, name: str) -> tuple[str, str]:
    """(the exact text of the `name` object, the answer's `sign`) of a gateway answer: what the sign covers.

    ValueError unless the answer is a JSON object holding `name` as an object. The text is cut out of the
    answer as sent, so a re-encoding (key order, spacing, escapes) cannot make a forged answer verify.
    """
    answer = json.loads(text)
    if not isinstance(answer, dict) or not isinstance(answer.get(name), dict):
        raise ValueError(f"the answer has no {name}")
    decoder = json.JSONDecoder()
    start = text.find(f'"{name}"')
    while start != -1:
        colon = start + len(name) + 2
        while colon < len(text) and text[colon] in " \t\r\n":
            colon += 1
        if colon < len(text) and text[colon] == ":":
            begin = colon + 1
            while begin < len(text) and text[begin] in " \t\r\n":
                begin += 1
            value, end = decoder.raw_decode(text, begin)
            if isinstance(value, dict):
                return text[begin:end], str(answer.get("sign") or "")
        start = text.find(f'"{name}"', start + 1)
    raise ValueError(f"the answer has no {name}")


def beijing_time(moment: datetime) -> str:
    """"2026-12-06 10:30:00": the timestamp format Alipay's parameters use."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


class Alipay:
    """One application (app_id) on the Alipay open platform."""

    def __init__(self, settings: AlipaySettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
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

    def query_trade(self, out_trade_no: str, *, now: datetime) -> TradeNotice | None:
        """`alipay.trade.query` by our trade number: the trade as Alipay reports it, its answer verified with
        Alipay's public key; None when Alipay knows no such trade (ACQ.TRADE_NOT_EXIST: never paid).
        AlipayUnavailable when there is no trustworthy answer, AlipayApiError when Alipay refuses."""
        try:
            data = self._call("alipay.trade.query", {"out_trade_no": out_trade_no}, now=now)
        except AlipayApiError as exc:
            if exc.sub_code == "ACQ.TRADE_NOT_EXIST":
                return None
            raise
        trade_no, status = str(data.get("trade_no") or ""), str(data.get("trade_status") or "")
        if data.get("out_trade_no") != out_trade_no or not trade_no or not status:
            raise AlipayUnavailable("the answer is about another trade, or lacks trade_no or trade_status")
        try:
            total_fen = yuan_to_fen(str(data.get("total_amount", "")))
        except ValueError:
            raise AlipayUnavailable("total_amount is not an amount in yuan") from None
        return TradeNotice(out_trade_no=out_trade_no, trade_no=trade_no, trade_status=status, total_fen=total_fen,
                           app_id=self.settings.app_id, paid=status in PAID_STATUSES)

    def close_trade(self, out_trade_no: str, *, now: datetime) -> None:
        """`alipay.trade.close` by our trade number: the unpaid trade becomes TRADE_CLOSED and can no longer be paid.
        AlipayApiError ACQ.TRADE_STATUS_ERROR when the trade was paid (or is finished), ACQ.TRADE_NOT_EXIST when
        Alipay has not seen it (its order string was never opened: it can still be, until its time_expire);
        AlipayUnavailable when there is no trustworthy answer."""
        data = self._call("alipay.trade.close", {"out_trade_no": out_trade_no}, now=now)
        if data.get("out_trade_no") != out_trade_no:
            raise AlipayUnavailable("the answer is about another trade")

    def _call(self, method: str, biz: Mapping[str, str], *, now: datetime) -> dict[str, object]:
        """POST `method` to the gateway, signed; its answer object, verified with Alipay's public key. AlipayApiError
        when the verified answer's code is not 10000, AlipayUnavailable when there is no trustworthy answer."""
        params = {"app_id": self.settings.app_id, "method": method, "format": "JSON",
                  "charset": "utf-8", "sign_type": "RSA2", "timestamp": beijing_time(now), "version": "1.0",
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        params["sign"] = rsa2_sign(self._app_key, signing_content(params))
        try:
            response = self.session.post(self.settings.gateway_url, data=params, timeout=self.settings.timeout_seconds,
                                         headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            log.warning("%s: no answer (%s)", method, type(exc).__name__)
            raise AlipayUnavailable(f"no answer from Alipay ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AlipayUnavailable(f"Alipay answered HTTP {response.status_code}")
        try:
            content, sign = signed_response(response.content.decode("utf-8"), method.replace(".", "_") + "_response")
        except (UnicodeDecodeError, ValueError):
            raise AlipayUnavailable(f"the answer is not an {method} answer") from None
        if not rsa2_verify(self._alipay_key, content, sign):
            log.error("%s for %s: the answer's sign does not verify", method, biz.get("out_trade_no"))
            raise AlipayUnavailable("the answer's sign does not verify with Alipay's public key")
        data = json.loads(content)
        if data.get("code") != "10000":
            raise AlipayApiError(str(data.get("code", "")), str(data.get("sub_code", "")),
                                 str(data.get("sub_msg") or data.get("msg") or ""))
        return data

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
