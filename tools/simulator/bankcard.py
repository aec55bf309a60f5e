"""Simulated bank-card channel: its cashier takes the signed parameters, then calls back, HMAC-signed; its
status query (QUERY_PATH) answers signed like a callback."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from services.common.bankcard import SIGNATURE_HEADER, canonical, sign
from tools.simulator.config import SimClock, SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError, spoil_query_answers

PATH = "/bankcard/cashier"
QUERY_PATH = "/bankcard/query"
# What /sim/bankcard/query-tamper can spoil in the answers to status queries about one payment.
# What /sim/bankcard/pay can spoil in a callback, for the merchant's rejection tests.
TAMPERS = ("bad_signature", "tampered_body", "wrong_amount", "stale_timestamp", "wrong_merchant")


@dataclass
class _CardTrade:
    trade_no: str
    amount_fen: int
    status: str = "PENDING"           # SUCCESS once paid; FAILED after a declined card (until paid)
    paid_at: datetime | None = None
    query_tamper: str | None = None


class BankcardSimulator:
    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._trades: dict[str, _CardTrade] = {}  # by out_trade_no
        self._session = requests.Session()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/sim/bankcard/pay"): self.sim_pay, ("POST", QUERY_PATH): self.query,
                ("POST", "/sim/bankcard/query-tamper"): self.sim_query_tamper}

    def reset(self) -> None:
        with self._lock:
            self._trades.clear()

    def sim_pay(self, request: Request) -> Response:
        """POST /sim/bankcard/pay {"pay_params", "status"?: "SUCCESS"|"FAILED", "tamper"?, "notify"?: true}: the
        cardholder pays.

        The parameters are checked as the cashier checks them (merchant, HMAC sign, not expired); then
        the callback is POSTed to their notify_url (unless notify is false: a lost callback). Answers what the
        receiver said and the callback sent.
        """
        body = request.json()
        params, status, tamper = body.get("pay_params"), body.get("status", "SUCCESS"), body.get("tamper")
        send = body.get("notify", True)
        if tamper is not None and tamper not in TAMPERS:
            raise SimulatorError(f"tamper must be one of {', '.join(TAMPERS)}")
        if status not in ("SUCCESS", "FAILED") or not isinstance(params, dict):
            raise SimulatorError("pay_params (an object) and status SUCCESS or FAILED are required")
        params = {name: str(value) for name, value in params.items() if name != "cashier_url"}
        secret = self.config.bankcard_secret.encode()
        if params.get("merchant_id") != self.config.bankcard_merchant_id or not hmac.compare_digest(
                params.get("sign", ""), sign(secret, canonical(params))):
            raise SimulatorError("SIGN_ERROR: unknown merchant or bad sign")
        if int(params["expires_at"]) < self.clock.now():
            raise SimulatorError("EXPIRED: the payment window has closed")
        with self._lock:
            trade = self._trades.setdefault(params["out_trade_no"], _CardTrade(
                "BC" + secrets.token_hex(12).upper(), int(params["amount_fen"])))
            if tamper is None and trade.status != "SUCCESS":
                trade.status, trade.paid_at = status, datetime.now(UTC) if status == "SUCCESS" else None
            trade_no = trade.trade_no
        if not send:
            return Response(200, {"out_trade_no": params["out_trade_no"], "trade_no": trade_no})
        callback: dict[str, Any] = {
            "merchant_id": params["merchant_id"], "out_trade_no": params["out_trade_no"], "trade_no": trade_no,
            "amount_fen": int(params["amount_fen"]) + (1 if tamper == "wrong_amount" else 0), "currency": "CNY",
            "status": status, "paid_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "timestamp": int(time.time()) - (600 if tamper == "stale_timestamp" else 0), "nonce": secrets.token_hex(16)}
        if tamper == "wrong_merchant":
            callback["merchant_id"] = "M000000000"
        payload = json.dumps(callback).encode()
        signature = sign(secret, payload + (b"spoilt" if tamper == "bad_signature" else b""))
        if tamper == "tampered_body":
            payload = payload.replace(b'"currency"', b'"currency" ', 1)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        try:
            answer = self._session.post(params["notify_url"], data=payload, headers=headers, timeout=10)
            code, text = answer.status_code, answer.text
        except requests.RequestException as exc:
            code, text = 0, type(exc).__name__
        return Response(200, {"notify_status": code, "notify_answer": text[:2000], "trade_no": trade_no,
                              "notify": {"url": params["notify_url"], "headers": headers, "body": payload.decode()}})


    def query(self, request: Request) -> Response:
        """POST /bankcard/query {merchant_id, out_trade_no, timestamp, nonce} signed in X-Bankcard-Signature: the
        payment's status (NOT_FOUND when the cashier never saw it), signed over the answer's exact bytes."""
        secret = self.config.bankcard_secret.encode()
        if not hmac.compare_digest((request.headers.get(SIGNATURE_HEADER) or "").encode(),
                                   sign(secret, request.body).encode()):
            return Response(401, {"code": "SIGN_ERROR", "message": "bad sign"})
        asked = request.json()
        if asked.get("merchant_id") != self.config.bankcard_merchant_id:
            return Response(400, {"code": "MERCHANT_UNKNOWN", "message": "unknown merchant"})
        out_trade_no = str(asked.get("out_trade_no") or "")
        with self._lock:
            trade = self._trades.get(out_trade_no)
            known = (trade.trade_no, trade.amount_fen, trade.status, trade.paid_at, trade.query_tamper) if trade else (
                "", 0, "NOT_FOUND", None, None)
        trade_no, amount_fen, status, paid_at, tamper = known
        answer: dict[str, Any] = {
            "merchant_id": self.config.bankcard_merchant_id, "out_trade_no": out_trade_no, "trade_no": trade_no,
            "amount_fen": amount_fen + (1 if tamper == "wrong_amount" else 0), "currency": "CNY", "status": status,
            "paid_at": paid_at.isoformat(timespec="seconds") if paid_at else None, "timestamp": int(time.time()),
            "nonce": secrets.token_hex(16)}
        response = Response(200, answer)
        signature = sign(secret, response.payload() + (b"spoilt" if tamper == "bad_signature" else b""))
        return Response(200, answer, headers={SIGNATURE_HEADER: signature})

    def sim_query_tamper(self, request: Request) -> Response:
        return spoil_query_answers(request, self._lock, self._trades, "/sim/bankcard/pay")


def dev_env(config: SimulatorConfig, base_url: str) -> dict[str, str]:
    """The member service's bank-card settings matching this simulator."""
    return {"BANKCARD_MERCHANT_ID": config.bankcard_merchant_id, "BANKCARD_SECRET": config.bankcard_secret,
            "BANKCARD_CASHIER_URL": f"{base_url}{PATH}", "BANKCARD_QUERY_URL": f"{base_url}{QUERY_PATH}"}
