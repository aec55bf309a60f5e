"""Simulated bank-card channel: its cashier takes the signed parameters, then calls back, HMAC-signed."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests

from services.common.bankcard import SIGNATURE_HEADER, canonical, sign
from tools.simulator.config import SimClock, SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError

PATH = "/bankcard/cashier"
# What /sim/bankcard/pay can spoil in a callback, for the merchant's rejection tests.
TAMPERS = ("bad_signature", "tampered_body", "wrong_amount", "stale_timestamp", "wrong_merchant")


class BankcardSimulator:
    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._trades: dict[str, str] = {}  # out_trade_no -> trade_no
        self._session = requests.Session()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/sim/bankcard/pay"): self.sim_pay}

    def reset(self) -> None:
        with self._lock:
            self._trades.clear()

    def sim_pay(self, request: Request) -> Response:
        """POST /sim/bankcard/pay {"pay_params", "status"?: "SUCCESS"|"FAILED", "tamper"?}: the cardholder pays.

        The parameters are checked as the cashier checks them (merchant, HMAC sign, not expired); then
        the callback is POSTed to their notify_url. Answers what the receiver said and the callback sent.
        """
        body = request.json()
        params, status, tamper = body.get("pay_params"), body.get("status", "SUCCESS"), body.get("tamper")
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
            trade_no = self._trades.setdefault(params["out_trade_no"], "BC" + secrets.token_hex(12).upper())
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


def dev_env(config: SimulatorConfig, base_url: str) -> dict[str, str]:
    """The member service's bank-card settings matching this simulator."""
    return {"BANKCARD_MERCHANT_ID": config.bankcard_merchant_id, "BANKCARD_SECRET": config.bankcard_secret,
            "BANKCARD_CASHIER_URL": f"{base_url}{PATH}"}
