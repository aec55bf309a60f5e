"""SMS providers that deliver verification codes: the dev console and Aliyun SMS (dysmsapi SendSms)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

import requests

from services.common.errors import DomainError, ErrorKind, InvalidInput, RateLimited
from services.common.logs import mask_phone
from services.user.config import AliyunSmsSettings

log = logging.getLogger(__name__)

ALIYUN_SMS_VERSION = "2017-05-25"
# Aliyun's business errors that mean "this number gets no more codes for now" (per-number flow control).
ALIYUN_RATE_LIMIT_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL"})


class SmsSender(Protocol):
    # True only for the dev provider: the API then returns the code as `dev_code`.
    reveals_code: bool

    def send_code(self, phone: str, code: str, purpose: str) -> None: ...


class ConsoleSms:
    """Dev provider: sends nothing; the code comes back in the API response instead."""

    reveals_code = True

    def send_code(self, phone: str, code: str, purpose: str) -> None:
        log.info("console SMS provider: %s code issued to %s (returned as dev_code)", purpose, mask_phone(phone))


def percent_encode(value: str) -> str:
    """Aliyun's POP encoding: RFC 3986 unreserved characters as they are, all else %XX of the UTF-8 bytes."""
    return quote(value, safe="")


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Aliyun RPC signature v1: METHOD&%2F&encode(sorted, encoded query), the Signature parameter left out."""
    canonical = "&".join(f"{percent_encode(name)}={percent_encode(value)}"
                         for name, value in sorted(params.items()) if name != "Signature")
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def rpc_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Base64(HMAC-SHA1(secret + "&", string to sign)), as Aliyun's RPC APIs expect in `Signature`."""
    digest = hmac.new(f"{access_key_secret}&".encode(), rpc_string_to_sign(method, params).encode(),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def sms_unavailable() -> DomainError:
    return DomainError("SMS_UNAVAILABLE", "the SMS service is unavailable; try again later",
                       kind=ErrorKind.UNAVAILABLE)


class AliyunSms:
    """Sends verification codes through Aliyun SMS SendSms, signed with the account's AccessKey."""

    reveals_code = False

    def __init__(self, settings: AliyunSmsSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()

    def signed_params(self, phone: str, code: str, *, now: datetime | None = None,
                      nonce: str | None = None) -> dict[str, str]:
        """The SendSms request parameters, Signature included."""
        params = {
            "AccessKeyId": self.settings.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone,
            "RegionId": self.settings.region_id,
            "SignName": self.settings.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": self.settings.template_code,
            "TemplateParam": json.dumps({"code": code}),
            "Timestamp": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": ALIYUN_SMS_VERSION,
        }
        params["Signature"] = rpc_signature("POST", params, self.settings.access_key_secret)
        return params

    def send_code(self, phone: str, code: str, purpose: str) -> None:
        # POST, not GET: the phone number stays out of URLs and the access logs that keep them.
        try:
            response = self.session.post(self.settings.endpoint, data=self.signed_params(phone, code),
                                         timeout=self.settings.timeout_seconds)
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("aliyun SMS: no usable answer (%s) for a %s code to %s", type(exc).__name__, purpose,
                        mask_phone(phone))
            raise sms_unavailable() from None
        result = answer.get("Code") if isinstance(answer, dict) else None
        if result == "OK":
            log.info("aliyun SMS: %s code sent to %s (BizId %s)", purpose, mask_phone(phone), answer.get("BizId"))
            return
        if result in ALIYUN_RATE_LIMIT_CODES:
            raise RateLimited("SMS_RATE_LIMITED", "too many SMS to this number; try again later")
        if result == "isv.MOBILE_NUMBER_ILLEGAL":
            raise InvalidInput("PHONE_INVALID", "this phone number cannot receive SMS")
        # Anything else is ours to fix (credentials, sign, template, balance): the user can only wait.
        log.error("aliyun SMS: SendSms refused a %s code to %s: HTTP %s, Code %s, RequestId %s", purpose,
                  mask_phone(phone), response.status_code, result,
                  answer.get("RequestId") if isinstance(answer, dict) else None)
        raise sms_unavailable()


def make_sms_sender(provider: str, aliyun: AliyunSmsSettings | None = None) -> SmsSender:
    if provider == "console":
        return ConsoleSms()
    if provider == "aliyun":
        if aliyun is None:
            raise ValueError("SMS provider 'aliyun' needs its settings (UserSettings.aliyun_sms)")
        return AliyunSms(aliyun)
    raise ValueError(f"unknown SMS provider {provider!r}")
