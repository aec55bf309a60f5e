"""A bank-card acquiring channel, merchant side: signed cashier parameters and verified payment callbacks.

The channel hosts the card-entry page (the cashier); we never see card numbers. Both directions are
signed HMAC-SHA256 with the merchant secret the channel issued, hex-encoded:

- Cashier parameters (what the client POSTs to BANKCARD_CASHIER_URL): merchant_id, out_trade_no,
  amount_fen, currency (CNY), notify_url, expires_at (unix seconds), timestamp (unix seconds),
  nonce, and `sign` = HMAC over the other fields sorted by name as `name=value` joined with `&`.
- Callback (`POST notify_url`, `Content-Type: application/json`): a JSON object {merchant_id,
  out_trade_no, trade_no, amount_fen (integer fen), currency, status ("SUCCESS" | "FAILED"),
  paid_at (RFC 3339), timestamp (unix seconds), nonce} with the header
  `X-Bankcard-Signature: <hex HMAC over the exact body bytes>`. We answer 200 {"code": "SUCCESS"}
  once it is applied; anything else and the channel retries (at most every few minutes, for a day).
  A callback older than BANKCARD_NOTIFY_MAX_AGE_SECONDS (300) is refused (replayed captures).
- Status query (reconciliation of a lost callback; `POST BANKCARD_QUERY_URL`, JSON): the request
  {merchant_id, out_trade_no, timestamp, nonce} carries `X-Bankcard-Signature` over its body; the answer
  (HTTP 200) is the callback's object with status "SUCCESS" | "FAILED" | "PENDING" | "NOT_FOUND" (then
  trade_no "" and amount_fen 0), signed and checked exactly like a callback, and must name the trade asked.

Settings (`BankcardSettings.from_env`; the channel is off when BANKCARD_MERCHANT_ID is unset):
BANKCARD_MERCHANT_ID, BANKCARD_SECRET (at least 32 characters), BANKCARD_CASHIER_URL,
BANKCARD_NOTIFY_MAX_AGE_SECONDS, BANKCARD_QUERY_URL (optional: without it lost callbacks wait for the
channel's retries), THIRD_PARTY_TIMEOUT_SECONDS (5). The dev simulator (tools/simulator/bankcard.py) plays the channel.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests

from services.common.config import ConfigError, Env, provider_url
from services.common.errors import ChannelError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Bankcard-Signature"
MIN_SECRET_LENGTH = 32


class NotifyRejected(ChannelError):
    """A callback we must not trust; `reason` is safe to log and to answer with."""


class BankcardUnavailable(NotifyRejected):
    """No trustworthy answer to a query: network error, HTTP error, or an answer that does not verify."""


@dataclass(frozen=True)
class BankcardSettings:
    merchant_id: str
    secret: bytes = field(repr=False)
    cashier_url: str
    notify_max_age_seconds: int = 300
    query_url: str | None = None
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, environment: str, environ: Mapping[str, str] | None = None) -> BankcardSettings | None:
        env = Env(environ)
        merchant_id = env.optional("BANKCARD_MERCHANT_ID")
        if merchant_id is None:
            return None
        secret = env.str("BANKCARD_SECRET").encode()
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"BANKCARD_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        cashier_url = provider_url("BANKCARD_CASHIER_URL", env.str("BANKCARD_CASHIER_URL"), environment)
        query_url = env.optional("BANKCARD_QUERY_URL")
        if query_url is not None:
            provider_url("BANKCARD_QUERY_URL", query_url, environment)
        return cls(merchant_id=merchant_id, secret=secret, cashier_url=cashier_url,
                   notify_max_age_seconds=env.int("BANKCARD_NOTIFY_MAX_AGE_SECONDS", 300), query_url=query_url,
                   timeout_seconds=env.float("THIRD_PARTY_TIMEOUT_SECONDS", 5.0))


def sign(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def canonical(params: Mapping[str, str]) -> bytes:
    """The cashier parameters but `sign`, sorted by name, `name=value` joined with `&`."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params) if name != "sign").encode()


@dataclass(frozen=True)
class CardPayment:
    """A verified callback; amounts in fen."""

    out_trade_no: str
    trade_no: str
    amount_fen: int
    status: str

    @property
    def paid(self) -> bool:
        return self.status == "SUCCESS"


class Bankcard:
    def __init__(self, settings: BankcardSettings, clock: Callable[[], float] = time.time,
                 session: requests.Session | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.session = session or requests.Session()

    def cashier_params(self, *, out_trade_no: str, amount_fen: int, notify_url: str, expires_at: int) -> dict[str, str]:
        """The signed parameters the client posts to the cashier page (cashier_url included, unsigned)."""
        if amount_fen <= 0:
            raise ValueError("amount_fen must be > 0")
        params = {"merchant_id": self.settings.merchant_id, "out_trade_no": out_trade_no,
                  "amount_fen": str(amount_fen), "currency": "CNY", "notify_url": notify_url,
                  "expires_at": str(expires_at), "timestamp": str(int(self.clock())), "nonce": secrets.token_hex(16)}
        params["sign"] = sign(self.settings.secret, canonical(params))
        return {**params, "cashier_url": self.settings.cashier_url}

    def verify_notify(self, headers: Mapping[str, str], body: bytes) -> CardPayment:
        """A payment callback, verified; NotifyRejected with the reason otherwise."""
        return self._verified(headers, body, NotifyRejected)

    def query_payment(self, out_trade_no: str) -> CardPayment | None:
        """The channel's signed status query: the payment as the channel reports it, verified like a callback;
        None when the channel knows no such payment (or no query URL is configured). BankcardUnavailable when
        there is no trustworthy answer."""
        if self.settings.query_url is None:
            return None
        body = json.dumps({"merchant_id": self.settings.merchant_id, "out_trade_no": out_trade_no,
                           "timestamp": int(self.clock()), "nonce": secrets.token_hex(16)}).encode()
        try:
            response = self.session.post(self.settings.query_url, data=body, timeout=self.settings.timeout_seconds,
                                         headers={"Content-Type": "application/json",
                                                  SIGNATURE_HEADER: sign(self.settings.secret, body)})
        except requests.RequestException as exc:
            log.warning("bank-card query: no answer (%s)", type(exc).__name__)
            raise BankcardUnavailable(f"no answer from the bank-card channel ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise BankcardUnavailable(f"the bank-card channel answered HTTP {response.status_code}")
        payment = self._verified(response.headers, response.content, BankcardUnavailable)
        if payment.out_trade_no != out_trade_no:
            raise BankcardUnavailable("the answer is about another payment")
        return None if payment.status == "NOT_FOUND" else payment

    def _verified(self, headers: Mapping[str, str], body: bytes, error: type[NotifyRejected]) -> CardPayment:
        """A signed payment object (callback or query answer): signature, shape, freshness, merchant."""
        signature = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()), "")
        if not hmac.compare_digest(signature.encode(), sign(self.settings.secret, body).encode()):
            raise error(f"{SIGNATURE_HEADER} does not verify")
        try:
            data = json.loads(body)
            timestamp, amount = data["timestamp"], data["amount_fen"]
            payment = CardPayment(out_trade_no=str(data["out_trade_no"]), trade_no=str(data["trade_no"]),
                                  amount_fen=amount, status=str(data["status"]))
            merchant_id, currency = data["merchant_id"], data.get("currency", "CNY")
        except (ValueError, KeyError, TypeError):
            raise error("the body is not a bank-card payment callback (nor a query answer)") from None
        if type(amount) is not int or type(timestamp) is not int:
            raise error("amount_fen and timestamp must be integers")
        now, max_age = self.clock(), self.settings.notify_max_age_seconds
        # Compared, not subtracted: the clock is a float, and an integer past 1e308 minus it raises OverflowError.
        if not now - max_age <= timestamp <= now + max_age:
            raise error(f"the payment is not within {self.settings.notify_max_age_seconds} seconds of now")
        if merchant_id != self.settings.merchant_id:
            raise error("merchant_id is not this merchant's")
        if currency != "CNY":
            raise error(f"the amount is in currency {currency!r}, not CNY")
        return payment
