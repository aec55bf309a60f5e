"""WeChat Pay API v3, merchant side: signed JSAPI prepay, query, refund, and verified, decrypted notifies.

Shared by the order service (checkout, O2) and the member service (recharge, M4). Requests are signed
WECHATPAY2-SHA256-RSA2048 with the merchant key; every answer and every notify must carry a valid
Wechatpay-Signature from a platform key we know by its Wechatpay-Serial (certificate serial or
"PUB_KEY_ID_..." public-key id), no older than five minutes; notify resources are AEAD_AES_256_GCM
under the APIv3 key, in an "encrypt-resource" envelope whose event_type is TRANSACTION.SUCCESS (payments) or
REFUND.<the refund's status> (refunds). Every amount must be CNY; an answer must be about what was asked, for this
merchant. A signed 4xx is WechatPayApiError (WeChat Pay's final "no"), except 429 FREQUENCY_LIMITED, which like
401, 5xx and no answer is WechatPayUnavailable (nothing to conclude; ask again later). Nothing is re-sent here:
every caller's job asks again, by the same out_trade_no / out_refund_no, which WeChat Pay treats as one.
time_expire is sent in Beijing time (+08:00), as WeChat Pay's documentation writes it.

Signing uses `cryptography` directly rather than the `wechatpayv3` SDK, whose gateway URL is fixed, whose
debug log prints the Authorization header and decrypted payloads, and which neither checks timestamps nor
says why a notify failed. A notify replayed within the five minutes verifies again, by design: WeChat Pay
repeats notifies until answered, and every notify's effect is once per payment or refund (its callers').

Settings (`WechatPaySettings.from_env`; WeChat Pay is off when WECHATPAY_MCHID is unset):
WECHATPAY_MCHID, WECHATPAY_APPID (default WECHAT_APPID), WECHATPAY_API_BASE (default
https://api.mch.weixin.qq.com; https only outside dev/test), WECHATPAY_MERCHANT_KEY_FILE (PKCS#8 PEM),
WECHATPAY_MERCHANT_SERIAL (the merchant API certificate's serial), WECHATPAY_APIV3_KEY (32 characters),
WECHATPAY_PLATFORM_CERTS ("serial:path,serial:path", each file a platform certificate or public key PEM),
WECHATPAY_NOTIFY_MAX_AGE_SECONDS (300), THIRD_PARTY_TIMEOUT_SECONDS (5). The dev simulator
(tools/simulator/wechatpay.py) generates a matching set; `tools.simulator.dev_env` points them at it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.config import ConfigError, Env, provider_url
from services.common.errors import ChannelError, DomainError
from services.common.formats import TRANSFER_NAMED_FROM_FEN

log = logging.getLogger(__name__)

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
APIV3_KEY_BYTES = 32
CHINA = timezone(timedelta(hours=8))  # WeChat Pay's examples and answers write times in Beijing time
CURRENCY = "CNY"
# API v3 types amount.total (and a refund's amount.refund) as int: a 32-bit signed integer of fen, so one payment
# takes at most 21,474,836.47 yuan. WeChat Pay refuses a larger one (PARAM_ERROR), as the simulator does.
AMOUNT_MAX_FEN = 2**31 - 1
PAYMENT_EVENTS = frozenset({"TRANSACTION.SUCCESS"})  # the only event a payment notify carries
REFUND_EVENTS = frozenset({"REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"})
# Besides 5xx, answers that refuse no request of ours for good: 401 (WeChat Pay refused our signature: our keys or
# clock) and 429 FREQUENCY_LIMITED (nothing done; the same request may be sent again later). Raised as
# WechatPayUnavailable, never WechatPayApiError, whose callers take it for a final "no" (a refund closed).
RETRYABLE_STATUSES = frozenset({401, 429})
# A merchant transfer of TRANSFER_NAMED_FROM_FEN (2,000 yuan) or more must name the payee: user_name, encrypted to
# WeChat Pay (`encrypt_sensitive`), whose key the request names in Wechatpay-Serial.
# A transfer's states while it waits for the user to confirm receipt in WeChat (TRANSFERING: confirmed, not yet
# settled; the confirmation page may be opened again), with the bill's package_info.
TRANSFER_AWAITING_USER = ("WAIT_USER_CONFIRM", "TRANSFERING")


class WechatPayError(ChannelError):
    """Anything WeChat Pay related that went wrong; `reason` is safe to log and to answer with."""


class NotifyRejected(WechatPayError):
    """A notify we must not trust: answer it 4xx {"code": "FAIL", "message": reason}; WeChat Pay retries."""


class WechatPayApiError(WechatPayError):
    """WeChat Pay refused a request (a verified 4xx answer): `code` is theirs, e.g. ORDER_NOT_EXIST, PARAM_ERROR."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def means(self, code: str) -> bool:
        """Whether the answer's code is `code`, however WeChat Pay spells it: its documents give some codes with
        and without underscores (ORDER_CLOSED / ORDERCLOSED, ORDER_NOT_EXIST / ORDERNOTEXIST, ORDERPAID), and a code
        read one way where the answer says it the other would send the order down the wrong path."""
        return self.code.replace("_", "") == code.replace("_", "")


def wechat_not_bound() -> DomainError:
    """WeChat Pay asked for by an account with no WeChat bound (no openid to charge): the shopper binds theirs to this
    account; signing in with WeChat instead would open another account (one with no phone, orders or balance)."""
    return DomainError("WECHAT_NOT_BOUND", "bind your WeChat to this account to pay with WeChat Pay (POST "
                                           "/api/v1/me/wechat: a wx.login code and an SMS code sent to your phone)")


class WechatPayUnavailable(WechatPayError):
    """No trustworthy answer: network error, 5xx, our signature refused (401), or an unverifiable answer."""


@dataclass(frozen=True)
class WechatPaySettings:
    api_base: str
    mchid: str
    appid: str
    merchant_serial: str
    merchant_private_key_pem: bytes = field(repr=False)
    apiv3_key: bytes = field(repr=False)
    platform_keys: Mapping[str, bytes]  # Wechatpay-Serial -> certificate or public key PEM
    timeout_seconds: float = 5.0
    notify_max_age_seconds: int = 300

    @classmethod
    def from_env(cls, environment: str, environ: Mapping[str, str] | None = None) -> WechatPaySettings | None:
        """The settings, or None when WECHATPAY_MCHID is unset (WeChat Pay not configured)."""
        env = Env(environ)
        mchid = env.optional("WECHATPAY_MCHID")
        if mchid is None:
            return None
        api_base = provider_url("WECHATPAY_API_BASE", env.str("WECHATPAY_API_BASE", DEFAULT_API_BASE), environment)
        apiv3_key = env.str("WECHATPAY_APIV3_KEY").encode()
        if len(apiv3_key) != APIV3_KEY_BYTES:
            raise ConfigError(f"WECHATPAY_APIV3_KEY must be {APIV3_KEY_BYTES} bytes, got {len(apiv3_key)}")
        platform_keys: dict[str, bytes] = {}
        for entry in env.str("WECHATPAY_PLATFORM_CERTS").split(","):
            serial, _, path = entry.strip().partition(":")
            if not serial or not path:
                raise ConfigError(f"WECHATPAY_PLATFORM_CERTS entries are serial:path, got {entry!r}")
            platform_keys[serial] = _read(path, "WECHATPAY_PLATFORM_CERTS")
        return cls(
            api_base=api_base.rstrip("/"),
            mchid=mchid,
            appid=env.str("WECHATPAY_APPID", env.optional("WECHAT_APPID")),
            merchant_serial=env.str("WECHATPAY_MERCHANT_SERIAL"),
            merchant_private_key_pem=_read(env.str("WECHATPAY_MERCHANT_KEY_FILE"), "WECHATPAY_MERCHANT_KEY_FILE"),
            apiv3_key=apiv3_key,
            platform_keys=platform_keys,
            timeout_seconds=env.float("THIRD_PARTY_TIMEOUT_SECONDS", 5.0),
            notify_max_age_seconds=env.int("WECHATPAY_NOTIFY_MAX_AGE_SECONDS", 300),
        )


def _read(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class PaymentNotice:
    """A transaction as WeChat Pay reports it (notify resource or query answer); amounts in fen."""

    out_trade_no: str
    transaction_id: str | None  # None until paid
    trade_state: str  # SUCCESS, NOTPAY, CLOSED, REFUND, USERPAYING, PAYERROR, REVOKED
    amount_total_fen: int
    payer_total_fen: int | None
    mchid: str
    appid: str
    success_time: datetime | None  # UTC
    payer_openid: str | None = None
    attach: str | None = None


@dataclass(frozen=True)
class Refund:
    """A refund as WeChat Pay reports it (refund answer, refund query or refund notify); amounts in fen."""

    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    status: str  # SUCCESS, PROCESSING, CLOSED, ABNORMAL
    refund_fen: int
    total_fen: int
    success_time: datetime | None  # UTC
    mchid: str | None = None  # set on notifies, which carry it


@dataclass(frozen=True)
class TransferBill:
    """A merchant transfer to a user's WeChat balance, as WeChat Pay reports it."""

    out_bill_no: str
    transfer_bill_no: str
    state: str  # ACCEPTED, PROCESSING, WAIT_USER_CONFIRM, TRANSFERING, SUCCESS, FAIL, CANCELING, CANCELLED
    fail_reason: str | None = None
    # WAIT_USER_CONFIRM: what the mini-program hands wx.requestMerchantTransfer (as `package`, with mchId and appId)
    # for the user to confirm receipt, without which the bill never pays ("" when absent: the bill query omits it).
    package_info: str = ""


def load_public_key(serial: str, pem: bytes) -> RSAPublicKey:
    """The RSA key of a platform certificate (whose serial must be `serial`) or WeChat Pay public key (PEM)."""
    if b"CERTIFICATE" in pem:
        certificate = x509.load_pem_x509_certificate(pem)
        if format(certificate.serial_number, "X") != serial.upper().lstrip("0"):
            raise ConfigError(f"the platform certificate listed as {serial} has serial "
                              f"{format(certificate.serial_number, 'X')}")
        key = certificate.public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("WeChat Pay platform keys are RSA")
    return key


def encrypt_sensitive(key: RSAPublicKey, plaintext: str) -> str:
    """A sensitive field (a payee's name) as WeChat Pay API v3 takes it: RSA/ECB/OAEPWithSHA-1AndMGF1Padding under
    a platform key, base64. Randomised: the same name encrypts differently each time."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return base64.b64encode(key.encrypt(plaintext.encode(), oaep)).decode()


def public_key_id(platform_keys: Mapping[str, bytes]) -> str | None:
    """The WeChat Pay public key's ID (PUB_KEY_ID_...) among the platform keys, when the merchant is on one."""
    return next((serial for serial in platform_keys if serial.startswith("PUB_KEY_ID_")), None)


def encrypting_serial(platform_keys: Mapping[str, bytes]) -> str:
    """The platform key sensitive fields are encrypted to: the WeChat Pay public key (PUB_KEY_ID_...) when one is
    configured, else the platform certificate that expires last (the newest, during a rotation both are listed)."""
    public = public_key_id(platform_keys)
    if public is not None:
        return public

    def expiry(serial: str) -> datetime:
        pem = platform_keys[serial]
        if b"CERTIFICATE" not in pem:
            return datetime.min.replace(tzinfo=UTC)
        return x509.load_pem_x509_certificate(pem).not_valid_after_utc

    return max(platform_keys, key=expiry)


def rsa_sign(key: RSAPrivateKey, message: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: what every WeChat Pay v3 signature is."""
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def aead_decrypt(apiv3_key: bytes, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    """AEAD_AES_256_GCM as WeChat Pay uses it: ciphertext is base64(encrypted || 16-byte tag). InvalidTag on tamper."""
    return AESGCM(apiv3_key).decrypt(nonce.encode(), base64.b64decode(ciphertext), associated_data.encode())


def authorization(mchid: str, serial: str, key: RSAPrivateKey, method: str, url_path: str, body: str,
                  timestamp: int, nonce: str) -> str:
    """The Authorization header: signature over method, path?query, timestamp, nonce and body, one per line."""
    signature = rsa_sign(key, f"{method}\n{url_path}\n{timestamp}\n{nonce}\n{body}\n")
    return (f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial}"')


def _utc(value: object) -> datetime | None:
    """RFC 3339 with offset (2018-06-08T10:34:56+08:00) -> UTC; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


class WechatPay:
    """One merchant account (mchid + appid) talking to WeChat Pay API v3."""

    def __init__(self, settings: WechatPaySettings, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time, refund_notify_url: str | None = None) -> None:
        self.settings = settings
        # Where WeChat Pay notifies the end of a refund asked for without its own notify_url (the order service's
        # refund notify route, so that every refund it asks for, whichever use case asks, comes back to it).
        self.refund_notify_url = refund_notify_url
        self.session = session or requests.Session()
        self.clock = clock
        key = serialization.load_pem_private_key(settings.merchant_private_key_pem, password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ConfigError("WECHATPAY_MERCHANT_KEY_FILE must hold an RSA private key")
        self._merchant_key = key
        # By serial in upper case: WeChat Pay writes certificate serials in upper-case hex, operators may not.
        self._platform_keys = {serial.upper(): load_public_key(serial, pem)
                               for serial, pem in settings.platform_keys.items()}
        if len(settings.apiv3_key) != APIV3_KEY_BYTES:
            raise ConfigError(f"the APIv3 key must be {APIV3_KEY_BYTES} bytes")
        # Merchants on WeChat Pay public keys (not platform certificates) name the key they verify with.
        self._public_key_id = public_key_id(settings.platform_keys)
        self._encrypting_serial = encrypting_serial(settings.platform_keys).upper()

    # -- payments --------------------------------------------------------------------------------

    def jsapi_prepay(self, *, out_trade_no: str, description: str, amount_fen: int, payer_openid: str,
                     notify_url: str, time_expire: datetime, attach: str | None = None) -> str:
        """POST /v3/pay/transactions/jsapi -> the prepay_id (valid 2 hours) for wx.requestPayment."""
        if not 0 < amount_fen <= AMOUNT_MAX_FEN:
            raise ValueError(f"amount_fen must be in 1..{AMOUNT_MAX_FEN}")
        if time_expire.tzinfo is None:
            raise ValueError("time_expire must be timezone-aware")
        body: dict[str, Any] = {
            "appid": self.settings.appid, "mchid": self.settings.mchid, "description": description,
            "out_trade_no": out_trade_no, "time_expire": time_expire.astimezone(CHINA).isoformat(timespec="seconds"),
            "notify_url": notify_url, "amount": {"total": amount_fen, "currency": CURRENCY},
            "payer": {"openid": payer_openid},
        }
        if attach is not None:
            body["attach"] = attach
        answer = self._call("POST", "/v3/pay/transactions/jsapi", body)
        prepay_id = answer.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WechatPayUnavailable("the prepay answer has no prepay_id")
        return prepay_id

    def request_payment_params(self, prepay_id: str) -> dict[str, str]:
        """What the mini-program passes to wx.requestPayment, signed with the merchant key."""
        timestamp, nonce, package = str(int(self.clock())), secrets.token_hex(16), f"prepay_id={prepay_id}"
        pay_sign = rsa_sign(self._merchant_key, f"{self.settings.appid}\n{timestamp}\n{nonce}\n{package}\n")
        return {"appId": self.settings.appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package,
                "signType": "RSA", "paySign": pay_sign}

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        """GET /v3/pay/transactions/out-trade-no/{no}; WechatPayApiError code ORDER_NOT_EXIST when unknown."""
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
        notice = self._transaction(self._call("GET", path, query={"mchid": self.settings.mchid}))
        _check_asked(notice, out_trade_no=out_trade_no, mchid=self.settings.mchid, appid=self.settings.appid)
        return notice

    def close(self, out_trade_no: str) -> None:
        """POST /v3/pay/transactions/out-trade-no/{no}/close: no payment possible any more (cancelled order).

        WechatPayApiError ORDERPAID when the payer was faster: the caller refunds, or keeps the order.
        """
        self._call("POST", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
                   {"mchid": self.settings.mchid})

    # -- refunds ---------------------------------------------------------------------------------

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None, notify_url: str | None = None) -> Refund:
        """POST /v3/refund/domestic/refunds: usually PROCESSING; the end comes by notify (to `notify_url`, or the
        adapter's `refund_notify_url`) or refund query."""
        if not 0 < refund_fen <= total_fen <= AMOUNT_MAX_FEN:
            raise ValueError(f"refund_fen must be in 1..total_fen, total_fen at most {AMOUNT_MAX_FEN}")
        body: dict[str, Any] = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                                "amount": {"refund": refund_fen, "total": total_fen, "currency": CURRENCY}}
        if reason is not None:
            body["reason"] = reason
        notify_url = notify_url or self.refund_notify_url
        if notify_url is not None:
            body["notify_url"] = notify_url
        refund = self._refund(self._call("POST", "/v3/refund/domestic/refunds", body), "status")
        _check_asked(refund, out_refund_no=out_refund_no)
        return refund

    def query_refund(self, out_refund_no: str) -> Refund:
        """GET /v3/refund/domestic/refunds/{out_refund_no}; WechatPayApiError RESOURCE_NOT_EXISTS when unknown."""
        refund = self._refund(self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}"),
                              "status")
        _check_asked(refund, out_refund_no=out_refund_no)
        return refund

    # -- merchant transfers (payouts to a user's WeChat balance) ----------------------------------

    def transfer(self, *, out_bill_no: str, openid: str, amount_fen: int, remark: str, user_name: str | None = None,
                 scene_id: str = "1000") -> TransferBill:
        """POST /v3/fund-app/mch-transfer/transfer-bills: pay `amount_fen` to the user's WeChat balance.

        Idempotent by out_bill_no at WeChat Pay (the same bill again answers the first one, with its package_info).
        The state is ACCEPTED / PROCESSING / WAIT_USER_CONFIRM / TRANSFERING on the way, then SUCCESS, FAIL or
        CANCELLED; WAIT_USER_CONFIRM waits for the user to confirm receipt with the answer's package_info
        (wx.requestMerchantTransfer), and is CANCELLED by WeChat Pay if nobody does within 24 hours.
        From TRANSFER_NAMED_FROM_FEN the payee's real name is required (`user_name`): sent encrypted, and WeChat Pay
        pays only if it is the name of the WeChat account behind `openid`.
        """
        if amount_fen <= 0:
            raise ValueError("amount_fen must be positive")
        if amount_fen >= TRANSFER_NAMED_FROM_FEN and not user_name:
            raise ValueError(f"a transfer of {TRANSFER_NAMED_FROM_FEN} fen or more needs the payee's user_name")
        body: dict[str, Any] = {
            "appid": self.settings.appid, "out_bill_no": out_bill_no, "transfer_scene_id": scene_id,
            "openid": openid, "transfer_amount": amount_fen, "transfer_remark": remark[:32],
            "transfer_scene_report_infos": [{"info_type": "活动名称", "info_content": "余额提现"},
                                            {"info_type": "奖励说明", "info_content": "会员余额提现"}]}
        serial = None
        if user_name:
            serial = self._encrypting_serial
            body["user_name"] = encrypt_sensitive(self._platform_keys[serial], user_name)
        return _bill_of(self._call("POST", "/v3/fund-app/mch-transfer/transfer-bills", body, serial=serial))

    def query_transfer(self, out_bill_no: str) -> TransferBill:
        """GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{no}; WechatPayApiError NOT_FOUND when unknown.
        WeChat Pay's answer carries no package_info (kept when it does): `transfer` of the same bill again gives it."""
        return _bill_of(self._call(
            "GET", f"/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{quote(out_bill_no, safe='')}"))

    # -- notifies --------------------------------------------------------------------------------

    def verify_notify(self, headers: Mapping[str, str], body: bytes | str) -> PaymentNotice:
        """A payment notify (TRANSACTION.SUCCESS), verified and decrypted; NotifyRejected with the reason otherwise."""
        resource, _ = self._notify_resource(headers, body, "transaction", PAYMENT_EVENTS)
        notice = self._transaction(resource, error=NotifyRejected)
        if notice.mchid != self.settings.mchid:
            raise NotifyRejected("mchid does not match this merchant")
        if notice.appid != self.settings.appid:
            raise NotifyRejected("appid does not match this merchant")
        return notice

    def verify_refund_notify(self, headers: Mapping[str, str], body: bytes | str) -> Refund:
        """A refund notify (REFUND.SUCCESS / ABNORMAL / CLOSED), verified and decrypted; its event names its status."""
        resource, event_type = self._notify_resource(headers, body, "refund", REFUND_EVENTS)
        refund = self._refund(resource, "refund_status", error=NotifyRejected)
        if refund.mchid != self.settings.mchid:
            raise NotifyRejected("mchid does not match this merchant")
        if event_type != f"REFUND.{refund.status}":
            raise NotifyRejected(f"the event {event_type} contradicts the refund status {refund.status}")
        return refund

    def _notify_resource(self, headers: Mapping[str, str], body: bytes | str, original_type: str,
                         events: frozenset[str]) -> tuple[dict[str, Any], str]:
        """The decrypted resource of a signed notify of one of `events`, and the event."""
        raw = body.encode() if isinstance(body, str) else body
        self._verify_signed(headers, raw, NotifyRejected)
        try:
            envelope = json.loads(raw)
            resource = envelope["resource"]
            if envelope.get("resource_type") != "encrypt-resource":
                raise NotifyRejected(f"unsupported resource_type {envelope.get('resource_type')!r}")
            if envelope.get("event_type") not in events:
                raise NotifyRejected(f"unexpected event_type {envelope.get('event_type')!r} for a {original_type} "
                                     f"notify")
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise NotifyRejected(f"unsupported resource algorithm {resource.get('algorithm')!r}")
            plain = aead_decrypt(self.settings.apiv3_key, resource["nonce"], resource.get("associated_data") or "",
                                 resource["ciphertext"])
        except InvalidTag:
            raise NotifyRejected("the resource does not decrypt with our APIv3 key (bad GCM tag)") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotifyRejected("the notify body is not a WeChat Pay notify") from None
        if resource.get("original_type", original_type) != original_type:
            raise NotifyRejected(f"expected a {original_type} notify, got {resource.get('original_type')!r}")
        try:
            decrypted = json.loads(plain)
        except ValueError:
            raise NotifyRejected("the decrypted resource is not JSON") from None
        if not isinstance(decrypted, dict):
            raise NotifyRejected("the decrypted resource is not a JSON object")
        return decrypted, envelope["event_type"]

    # -- the wire --------------------------------------------------------------------------------

    def _verify_signed(self, headers: Mapping[str, str], body: bytes, error: type[WechatPayError]) -> None:
        """Wechatpay-Signature over timestamp, nonce and body by a platform key we know, and fresh."""
        lower = {name.lower(): value for name, value in headers.items()}
        serial, signature = lower.get("wechatpay-serial", ""), lower.get("wechatpay-signature", "")
        timestamp, nonce = lower.get("wechatpay-timestamp", ""), lower.get("wechatpay-nonce", "")
        if not (serial and signature and timestamp and nonce):
            raise error("missing Wechatpay-Serial/Signature/Timestamp/Nonce headers")
        if lower.get("wechatpay-signature-type", SCHEMA) != SCHEMA:
            raise error(f"unsupported signature type {lower['wechatpay-signature-type']!r}")
        key = self._platform_keys.get(serial.upper())
        if key is None:
            raise error(f"unknown Wechatpay-Serial {serial!r}")
        # Unix seconds in ASCII digits ("²" is a digit to isdigit, not to int), compared rather than subtracted (the
        # clock is a float: an integer past 1e308 minus it overflows).
        now, max_age = self.clock(), self.settings.notify_max_age_seconds
        if not (re.fullmatch(r"[0-9]{1,19}", timestamp) and now - max_age <= int(timestamp) <= now + max_age):
            raise error(f"Wechatpay-Timestamp is not within {self.settings.notify_max_age_seconds} seconds of now")
        if not rsa_verify(key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n", signature):
            raise error("Wechatpay-Signature does not verify")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              query: dict[str, str] | None = None, serial: str | None = None) -> dict[str, Any]:
        """The signed request, its answer verified. `serial`: the platform key a sensitive field of the body is
        encrypted to (Wechatpay-Serial), else the WeChat Pay public key's ID when the merchant is on one."""
        url_path = f"{path}?{urlencode(query)}" if query else path
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "minimall",
                   "Authorization": authorization(self.settings.mchid, self.settings.merchant_serial,
                                                  self._merchant_key, method, url_path, payload,
                                                  int(self.clock()), secrets.token_hex(16))}
        if serial or self._public_key_id:
            headers["Wechatpay-Serial"] = serial or self._public_key_id
        try:
            response = self.session.request(method, f"{self.settings.api_base}{url_path}", headers=headers,
                                            data=payload.encode() if body is not None else None,
                                            timeout=self.settings.timeout_seconds)
        except requests.RequestException as exc:
            log.warning("WeChat Pay %s %s: no answer (%s)", method, path, type(exc).__name__)
            raise WechatPayUnavailable(f"no answer from WeChat Pay ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
            code = _error_code(response.content)
            log.error("WeChat Pay %s %s: HTTP %s %s (Request-ID %s)", method, path, response.status_code, code,
                      response.headers.get("Request-ID"))
            raise WechatPayUnavailable(f"WeChat Pay answered HTTP {response.status_code} {code}")
        try:
            self._verify_signed(response.headers, response.content, WechatPayUnavailable)
        except WechatPayUnavailable as exc:
            log.error("WeChat Pay %s %s: answer rejected: %s (Request-ID %s)", method, path, exc.reason,
                      response.headers.get("Request-ID"))
            raise
        answer = _json_object(response.content) if response.content else {}
        if response.status_code >= 400:
            raise WechatPayApiError(response.status_code, str(answer.get("code", "")), str(answer.get("message", "")))
        return answer

    def _transaction(self, data: dict[str, Any], error: type[WechatPayError] = WechatPayUnavailable) -> PaymentNotice:
        try:
            amount, payer = data.get("amount") or {}, data.get("payer") or {}
            notice = PaymentNotice(
                out_trade_no=str(data["out_trade_no"]), transaction_id=data.get("transaction_id") or None,
                trade_state=str(data["trade_state"]), amount_total_fen=int(amount["total"]),
                payer_total_fen=int(amount["payer_total"]) if "payer_total" in amount else None,
                mchid=str(data["mchid"]), appid=str(data["appid"]), success_time=_utc(data.get("success_time")),
                payer_openid=payer.get("openid"), attach=data.get("attach") or None)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise error("the transaction lacks out_trade_no, trade_state, amount, mchid or appid") from None
        _check_currency(amount, error)
        return notice

    def _refund(self, data: dict[str, Any], status_field: str,
                error: type[WechatPayError] = WechatPayUnavailable) -> Refund:
        try:
            amount = data["amount"]
            refund = Refund(out_refund_no=str(data["out_refund_no"]), refund_id=str(data["refund_id"]),
                          out_trade_no=str(data["out_trade_no"]), transaction_id=str(data["transaction_id"]),
                          status=str(data[status_field]), refund_fen=int(amount["refund"]),
                          total_fen=int(amount["total"]), success_time=_utc(data.get("success_time")),
                          mchid=data.get("mchid"))
        except (KeyError, TypeError, ValueError):
            raise error("the refund lacks out_refund_no, refund_id, out_trade_no, status or amount") from None
        _check_currency(amount, error)
        return refund


def _check_asked(answer: PaymentNotice | Refund, **asked: str) -> None:
    """A signed answer is about what we asked, for this merchant: else it is no answer to trust (a mix-up)."""
    for name, value in asked.items():
        if getattr(answer, name) != value:
            raise WechatPayUnavailable(f"the answer's {name} is not the one asked")


def _check_currency(amount: Mapping[str, Any], error: type[WechatPayError]) -> None:
    """Amounts are fen of CNY, the only currency we charge in: any other is not our money (an absent one is CNY)."""
    currency = amount.get("currency", CURRENCY)
    if currency != CURRENCY:
        raise error(f"the amount is in currency {currency!r}, not {CURRENCY}")


def _bill_of(data: dict[str, Any]) -> TransferBill:
    try:
        return TransferBill(out_bill_no=str(data["out_bill_no"]), transfer_bill_no=str(data["transfer_bill_no"]),
                            state=str(data["state"]), fail_reason=data.get("fail_reason") or None,
                            package_info=str(data.get("package_info") or ""))
    except (KeyError, TypeError):
        raise WechatPayUnavailable("the transfer bill lacks out_bill_no, transfer_bill_no or state") from None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise WechatPayUnavailable("the answer is not JSON") from None
    if not isinstance(value, dict):
        raise WechatPayUnavailable("the answer is not a JSON object")
    return value


def _error_code(raw: bytes) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return ""
    return str(value.get("code", "")) if isinstance(value, dict) else ""
