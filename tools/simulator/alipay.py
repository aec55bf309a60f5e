"""Simulated Alipay: checks the app's RSA2-signed app-pay order string, then sends RSA2-signed trade notifies;
its gateway (PATH) answers the app's signed `alipay.trade.query` and `alipay.trade.close` with RSA2-signed answers.
A trade exists once the buyer opens the order string (/sim/alipay/open) or pays it (/sim/alipay/pay); until then
Alipay knows nothing of it (ACQ.TRADE_NOT_EXIST), as the real one.

The dev application and Alipay key pairs are generated at first start under SIM_ALIPAY_KEY_DIR (the
"merchant" pair is the application's, the "platform" pair Alipay's), like WeChat Pay's.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.alipay import beijing_time, fen_to_yuan, rsa2_sign, rsa2_verify, signing_content, yuan_to_fen
from tools.simulator.config import SimClock, SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError, spoil_query_answers
from tools.simulator.wechatpay import (
    MERCHANT_PRIVATE,
    MERCHANT_PUBLIC,
    PLATFORM_PRIVATE,
    PLATFORM_PUBLIC,
    ensure_dev_keys,
)

# What /sim/alipay/pay can spoil in a notify, for the merchant's rejection tests.
TAMPERS = ("bad_signature", "tampered_amount", "wrong_amount", "wrong_app_id", "bad_sign_type")
APP_PRIVATE, APP_PUBLIC = MERCHANT_PRIVATE, MERCHANT_PUBLIC          # the application's pair
ALIPAY_PRIVATE, ALIPAY_PUBLIC = PLATFORM_PRIVATE, PLATFORM_PUBLIC    # Alipay's pair
SELLER_ID = "2088000000000001"
PATH = "/alipay/gateway.do"
# What /sim/alipay/query-tamper can spoil in the answers to alipay.trade.query about one trade.


@dataclass
class _Trade:
    out_trade_no: str
    total_amount: str
    subject: str
    notify_url: str
    trade_no: str
    paid_at: datetime | None = None
    query_tamper: str | None = None
    closed: bool = False  # alipay.trade.close: TRADE_CLOSED, never paid any more


class AlipaySimulator:
    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.key_files = ensure_dev_keys(Path(config.alipay_key_dir).resolve())
        app_public = serialization.load_pem_public_key(self.key_files[APP_PUBLIC].read_bytes())
        alipay_private = serialization.load_pem_private_key(self.key_files[ALIPAY_PRIVATE].read_bytes(), None)
        assert isinstance(app_public, rsa.RSAPublicKey) and isinstance(alipay_private, rsa.RSAPrivateKey)
        self._app_public, self._alipay_private = app_public, alipay_private
        self._lock = threading.Lock()
        self._trades: dict[str, _Trade] = {}
        self._session = requests.Session()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/sim/alipay/pay"): self.sim_pay, ("POST", PATH): self.gateway,
                ("POST", "/sim/alipay/open"): self.sim_open,
                ("POST", "/sim/alipay/query-tamper"): self.sim_query_tamper}

    def reset(self) -> None:
        with self._lock:
            self._trades.clear()

    def sim_pay(self, request: Request) -> Response:
        """POST /sim/alipay/pay {"order_string", "tamper"?, "notify"?: true}: the buyer pays in full.

        The order string is checked as Alipay checks it (the app's RSA2 signature, app_id, amount);
        then a signed TRADE_SUCCESS notify is POSTed, form-encoded, to its notify_url. With a tamper
        only the spoilt notify is sent (the trade stays as it was). Answers what the receiver said
        and the notify it got, for replays.
        """
        body = request.json()
        tamper, send = body.get("tamper"), body.get("notify", True)
        if tamper is not None and tamper not in TAMPERS:
            raise SimulatorError(f"tamper must be one of {', '.join(TAMPERS)}")
        with self._lock:
            trade = self._open(str(body.get("order_string") or ""))
            if trade.closed:
                raise SimulatorError("ACQ.TRADE_HAS_CLOSE: the trade is closed")
            if tamper is None and trade.paid_at is None:
                trade.paid_at = datetime.now(UTC)
            paid_at = trade.paid_at or datetime.now(UTC)
        if not send:
            return Response(200, {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no})
        return self._deliver(trade, paid_at, tamper)

    def sim_open(self, request: Request) -> Response:
        """POST /sim/alipay/open {"order_string"}: the buyer opens the order string in Alipay and leaves without
        paying: the trade exists, WAIT_BUYER_PAY (so alipay.trade.close can close it)."""
        with self._lock:
            trade = self._open(str(request.json().get("order_string") or ""))
        return Response(200, {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no})

    def _open(self, order_string: str) -> _Trade:
        """The trade of an order string, created WAIT_BUYER_PAY on first sight; the order string is checked as
        Alipay checks it (the app's RSA2 signature, app_id, amount). Under the lock."""
        params = dict(parse_qsl(order_string, keep_blank_values=True))
        if params.get("sign_type") != "RSA2" or not rsa2_verify(self._app_public, signing_content(params),
                                                                  params.get("sign", "")):
            raise SimulatorError("ACQ.INVALID_SIGNATURE: the order string's sign does not verify")
        if params.get("app_id") != self.config.alipay_app_id or params.get("method") != "alipay.trade.app.pay":
            raise SimulatorError("ACQ.INVALID_PARAMETER: app_id or method")
        biz = json.loads(params.get("biz_content") or "{}")
        yuan_to_fen(str(biz.get("total_amount")))  # ValueError (400) unless a plain amount
        return self._trades.setdefault(biz["out_trade_no"], _Trade(
            biz["out_trade_no"], biz["total_amount"], biz.get("subject", ""), params["notify_url"],
            datetime.now(UTC).strftime("%Y%m%d") + "2200" + str(secrets.randbelow(10**14)).zfill(14)))

    def gateway(self, request: Request) -> Response:
        """POST /alipay/gateway.do (form-encoded): the open platform's gateway, `alipay.trade.query` and
        `alipay.trade.close`.

        The request must carry the application's valid RSA2 sign; the answer's `sign` is Alipay's RSA2 over
        the exact text of `alipay_trade_query_response`, as the real gateway signs it.
        """
        params = {name: values[-1] for name, values in request.form().items()}
        method = params.get("method", "")
        name = method.replace(".", "_") + "_response" if method else "error_response"
        if params.get("sign_type") != "RSA2" or not rsa2_verify(self._app_public, signing_content(params),
                                                                  params.get("sign", "")):
            return self._answer(name, {"code": "40002", "msg": "Invalid Arguments",
                                       "sub_code": "isv.invalid-signature", "sub_msg": "验签出错"})
        if params.get("app_id") != self.config.alipay_app_id:
            return self._answer(name, {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id",
                                       "sub_msg": "无效的AppID参数"})
        if method not in ("alipay.trade.query", "alipay.trade.close"):
            return self._answer(name, {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-method",
                                       "sub_msg": "不存在的方法名"})
        out_trade_no = str(json.loads(params.get("biz_content") or "{}").get("out_trade_no") or "")
        with self._lock:
            trade = self._trades.get(out_trade_no)
            paid_at, tamper = (trade.paid_at, trade.query_tamper) if trade else (None, None)
            if trade is not None and method == "alipay.trade.close" and paid_at is None:
                trade.closed = True
        if trade is None:
            return self._answer(name, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                                       "sub_msg": "交易不存在", "out_trade_no": out_trade_no})
        if method == "alipay.trade.close":
            if paid_at is not None:
                return self._answer(name, {"code": "40004", "msg": "Business Failed",
                                           "sub_code": "ACQ.TRADE_STATUS_ERROR", "sub_msg": "交易状态不合法",
                                           "out_trade_no": out_trade_no})
            return self._answer(name, {"code": "10000", "msg": "Success", "trade_no": trade.trade_no,
                                       "out_trade_no": out_trade_no})
        status = "TRADE_SUCCESS" if paid_at else "TRADE_CLOSED" if trade.closed else "WAIT_BUYER_PAY"
        total = trade.total_amount if tamper != "wrong_amount" else fen_to_yuan(yuan_to_fen(trade.total_amount) + 1)
        content = {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": out_trade_no,
                   "buyer_logon_id": "159****5620", "trade_status": status,
                   "total_amount": total, "buyer_pay_amount": total if paid_at else "0.00",
                   "receipt_amount": total if paid_at else "0.00"}
        if paid_at is not None:
            content["send_pay_date"] = beijing_time(paid_at)
        return self._answer(name, content, bad_signature=tamper == "bad_signature")

    def _answer(self, name: str, content: dict[str, str], *, bad_signature: bool = False) -> Response:
        """The gateway's answer: `content` under `name` and the sign over exactly its text on the wire."""
        text = json.dumps(content, ensure_ascii=False)  # what Response.payload writes for the nested object
        sign = rsa2_sign(self._alipay_private, text + ("spoilt" if bad_signature else ""))
        return Response(200, {name: content, "sign": sign})

    def sim_query_tamper(self, request: Request) -> Response:
        return spoil_query_answers(request, self._lock, self._trades, "/sim/alipay/pay")

    def _deliver(self, trade: _Trade, paid_at: datetime, tamper: str | None) -> Response:
        notify = {
            "notify_time": beijing_time(datetime.now(UTC)), "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16), "app_id": self.config.alipay_app_id, "charset": "utf-8",
            "version": "1.0", "sign_type": "RSA2", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
            "buyer_id": "2088102177846880", "seller_id": SELLER_ID, "trade_status": "TRADE_SUCCESS",
            "total_amount": trade.total_amount, "receipt_amount": trade.total_amount,
            "buyer_pay_amount": trade.total_amount, "subject": trade.subject,
            "gmt_create": beijing_time(paid_at), "gmt_payment": beijing_time(paid_at),
        }
        if tamper == "wrong_amount":
            notify["total_amount"] = fen_to_yuan(yuan_to_fen(trade.total_amount) + 1)
        if tamper == "wrong_app_id":
            notify["app_id"] = "2021000000000000"
        notify["sign"] = rsa2_sign(self._alipay_private, signing_content(notify, exclude=("sign", "sign_type")))
        if tamper == "bad_signature":
            notify["sign"] = rsa2_sign(self._alipay_private, "spoilt")
        if tamper == "tampered_amount":
            notify["total_amount"] = "0.01"
        if tamper == "bad_sign_type":
            notify["sign_type"] = "RSA"
        payload = urlencode(notify)
        try:
            answer = self._session.post(trade.notify_url, data=payload, timeout=10,
                                        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
            status, text = answer.status_code, answer.text
        except requests.RequestException as exc:
            status, text = 0, type(exc).__name__
        return Response(200, {"notify_status": status, "notify_answer": text[:2000], "trade_no": trade.trade_no,
                              "notify": {"url": trade.notify_url, "body": payload}})


def dev_env(config: SimulatorConfig, base_url: str) -> dict[str, str]:
    """The member service's Alipay settings matching this simulator (key files appear when it starts)."""
    directory = Path(config.alipay_key_dir).resolve()
    return {"ALIPAY_APP_ID": config.alipay_app_id, "ALIPAY_APP_PRIVATE_KEY_FILE": str(directory / APP_PRIVATE),
            "ALIPAY_PUBLIC_KEY_FILE": str(directory / ALIPAY_PUBLIC), "ALIPAY_SELLER_ID": SELLER_ID,
            "ALIPAY_GATEWAY_URL": f"{base_url}{PATH}", "SIM_ALIPAY_KEY_DIR": str(directory)}

