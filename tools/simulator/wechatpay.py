"""Simulated WeChat Pay API v3: JSAPI prepay, query, refund, signed answers and signed, encrypted notifies."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tools.simulator.config import SimClock, SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW_SECONDS = 300
AMOUNT_MAX = 2**31 - 1  # API v3 types amount.total and amount.refund as int: 32-bit signed
OUT_NO = re.compile(r"[A-Za-z0-9_\-|*]{6,32}")
CHINA = timezone(timedelta(hours=8))  # WeChat Pay writes times in Beijing time
TRANSFER_NAMED_FROM_FEN = 200_000  # a merchant transfer of 2,000 yuan or more must carry the payee's user_name
TRANSFER_AWAITING_USER = ("WAIT_USER_CONFIRM", "TRANSFERING")  # a transfer's states while the user may confirm it
# What /sim/pay can spoil in a notify, for the merchant's rejection tests.
TAMPERS = ("bad_signature", "unknown_serial", "wrong_amount", "stale_timestamp", "bad_tag", "wrong_mchid",
           "wrong_appid", "tampered_body", "wrong_currency")
MERCHANT_PRIVATE, MERCHANT_PUBLIC = "merchant-private.pem", "merchant-public.pem"
PLATFORM_PRIVATE, PLATFORM_PUBLIC = "platform-private.pem", "platform-public.pem"


def key_files(directory: Path) -> dict[str, Path]:
    return {name: directory / name for name in (MERCHANT_PRIVATE, MERCHANT_PUBLIC, PLATFORM_PRIVATE, PLATFORM_PUBLIC)}


def ensure_dev_keys(directory: Path) -> dict[str, Path]:
    """The dev merchant and platform RSA key pairs under `directory`, generated once (never committed).

    All four files appear at once (built in a sibling temporary folder, then renamed), so two processes
    starting together never pair one's private key with the other's public key.
    """
    files = key_files(directory)
    if all(path.exists() for path in files.values()):
        return files
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wechatpay-keys-", dir=directory.parent))
    for private_name, public_name in ((MERCHANT_PRIVATE, MERCHANT_PUBLIC), (PLATFORM_PRIVATE, PLATFORM_PUBLIC)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fd = os.open(staging / private_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        (staging / public_name).write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    try:
        staging.rename(directory)
    except OSError:  # someone else's set won the race (or an empty folder was there): use it
        for path in staging.iterdir():
            path.unlink()
        staging.rmdir()
        if not all(path.exists() for path in files.values()):
            raise
    return files


@dataclass
class _Order:
    out_trade_no: str
    appid: str
    mchid: str
    description: str
    amount_fen: int
    notify_url: str
    time_expire: datetime | None
    payer_openid: str
    attach: str | None
    prepay_id: str
    trade_state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: datetime | None = None
    refunded_fen: int = 0

    def resource(self) -> dict[str, Any]:
        """The transaction as a query answers it and a notify carries it."""
        data: dict[str, Any] = {
            "appid": self.appid, "mchid": self.mchid, "out_trade_no": self.out_trade_no,
            "trade_type": "JSAPI", "trade_state": self.trade_state, "trade_state_desc": self.trade_state,
            "payer": {"openid": self.payer_openid}, "amount": {"total": self.amount_fen, "currency": "CNY"},
        }
        if self.attach is not None:
            data["attach"] = self.attach
        if self.transaction_id is not None:
            data.update(transaction_id=self.transaction_id, bank_type="OTHERS", success_time=_time(self.success_time))
            data["amount"].update(payer_total=self.amount_fen, payer_currency="CNY")
        return data


@dataclass
class _Refund:
    out_refund_no: str
    refund_id: str
    order: _Order
    refund_fen: int
    notify_url: str | None
    reason: str | None
    created: datetime
    status: str = "PROCESSING"
    success_time: datetime | None = None

    def resource(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "refund_id": self.refund_id, "out_refund_no": self.out_refund_no,
            "transaction_id": self.order.transaction_id, "out_trade_no": self.order.out_trade_no,
            "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "create_time": _time(self.created),
            "status": self.status, "funds_account": "AVAILABLE",
            "amount": {"total": self.order.amount_fen, "refund": self.refund_fen, "payer_total": self.order.amount_fen,
                       "payer_refund": self.refund_fen, "currency": "CNY"},
        }
        if self.success_time is not None:
            data["success_time"] = _time(self.success_time)
        return data


@dataclass(frozen=True)
class _Notify:
    url: str
    event_type: str
    summary: str
    original_type: str
    resource: dict[str, Any]
    tamper: str | None = None


class WechatPaySimulator:
    """One merchant account at WeChat Pay: verifies its signed requests, signs answers with its platform key."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.key_files = ensure_dev_keys(Path(config.wechatpay_key_dir).resolve())
        self._platform_key = _private_key(self.key_files[PLATFORM_PRIVATE])
        merchant_public = serialization.load_pem_public_key(self.key_files[MERCHANT_PUBLIC].read_bytes())
        assert isinstance(merchant_public, rsa.RSAPublicKey)
        self._merchant_public = merchant_public
        self._lock = threading.Lock()
        self._orders: dict[str, _Order] = {}
        self._refunds: dict[str, _Refund] = {}
        self._transfers: dict[str, dict[str, Any]] = {}
        self._next_transfer: dict[str, Any] = {}  # /sim/transfer/next: the next new transfer's state, lost answer
        self._fail_next: tuple[int, str, str] | None = None  # /sim/wechatpay/fail-next: the next API call's refusal
        self._session = requests.Session()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/v3/pay/transactions/jsapi"): self.prepay,
                ("GET", "/v3/pay/transactions/out-trade-no/*"): self.query,
                ("POST", "/v3/pay/transactions/out-trade-no/*/close"): self.close,
                ("POST", "/v3/refund/domestic/refunds"): self.refund,
                ("GET", "/v3/refund/domestic/refunds/*"): self.query_refund,
                ("POST", "/v3/fund-app/mch-transfer/transfer-bills"): self.transfer,
                ("GET", "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/*"): self.query_transfer,
                ("POST", "/sim/transfer/next"): self.sim_transfer_next,
                ("POST", "/sim/transfer/confirm"): self.sim_transfer_confirm,
                ("POST", "/sim/transfer/settle"): self.sim_transfer_settle,
                ("GET", "/sim/wechatpay/transfers"): self.sim_transfers,
                ("POST", "/sim/wechatpay/fail-next"): self.sim_fail_next,
                ("POST", "/sim/pay"): self.sim_pay,
                ("POST", "/sim/refund-complete"): self.sim_refund_complete,
                ("GET", "/sim/wechatpay/orders"): self.sim_order,
                ("GET", "/sim/wechatpay/merchant"): self.sim_merchant}

    def reset(self) -> None:
        with self._lock:
            self._orders.clear()
            self._refunds.clear()
            self._transfers.clear()
            self._next_transfer = {}
            self._fail_next = None

    # -- the API -------------------------------------------------------------------------------------

    def prepay(self, request: Request) -> Response:
        """POST /v3/pay/transactions/jsapi: records the order, answers {"prepay_id"}."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        body = _body(request)
        if body is None:
            return self._error(400, "PARAM_ERROR", "the body is not a JSON object")
        amount, payer = body.get("amount"), body.get("payer")
        total = amount.get("total") if isinstance(amount, dict) else None
        openid = payer.get("openid") if isinstance(payer, dict) else None
        fields = [body.get(name) for name in ("appid", "mchid", "description", "out_trade_no", "notify_url")]
        if not all(isinstance(value, str) and value for value in fields) or not isinstance(openid, str):
            return self._error(400, "PARAM_ERROR", "appid, mchid, description, out_trade_no, notify_url and "
                                                   "payer.openid are required")
        if type(total) is not int or not 0 < total <= AMOUNT_MAX or amount.get("currency", "CNY") != "CNY":
            return self._error(400, "PARAM_ERROR",
                               f"amount.total must be an integer number of fen in 1..{AMOUNT_MAX}, currency CNY")
        if body["mchid"] != self.config.wechatpay_mchid or body["appid"] != self.config.wechat_appid:
            return self._error(400, "APPID_MCHID_NOT_MATCH", "appid and mchid do not match")
        if not OUT_NO.fullmatch(body["out_trade_no"]):
            return self._error(400, "PARAM_ERROR", "out_trade_no must be 6-32 of [A-Za-z0-9_-|*]")
        if not body["notify_url"].startswith(("https://", "http://")):
            return self._error(400, "PARAM_ERROR", "notify_url must be an absolute URL")
        try:
            time_expire = datetime.fromisoformat(body["time_expire"]) if body.get("time_expire") else None
        except (TypeError, ValueError):
            return self._error(400, "PARAM_ERROR", "time_expire must be RFC 3339")
        if time_expire is not None and time_expire.tzinfo is None:
            return self._error(400, "PARAM_ERROR", "time_expire needs a UTC offset")
        order = _Order(body["out_trade_no"], body["appid"], body["mchid"], body["description"], total,
                       body["notify_url"], time_expire, openid, body.get("attach"),
                       "wx" + datetime.now(CHINA).strftime("%d%H%M%S") + secrets.token_hex(12))
        with self._lock:
            known = self._orders.get(order.out_trade_no)
            if known is not None:
                if known.trade_state == "SUCCESS":
                    return self._error(403, "ORDERPAID", "该订单已支付")
                if known.trade_state == "CLOSED":
                    return self._error(400, "ORDERCLOSED", "该订单已关单")
                if (known.amount_fen, known.description, known.payer_openid) != (total, order.description, openid):
                    return self._error(400, "INVALID_REQUEST", "商户订单号重复")
                order = replace(known, notify_url=order.notify_url, time_expire=order.time_expire)
            self._orders[order.out_trade_no] = order
        return self._signed(200, {"prepay_id": order.prepay_id})

    def query(self, request: Request) -> Response:
        """GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=..."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        if request.query.get("mchid", [""])[-1] != self.config.wechatpay_mchid:
            return self._error(400, "PARAM_ERROR", "mchid is required and must be this merchant's")
        with self._lock:
            order = self._orders.get(request.path.rsplit("/", 1)[1])
            if order is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            self._close_if_expired(order)
            return self._signed(200, order.resource())

    def close(self, request: Request) -> Response:
        """POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close {"mchid"}: 204; a paid order cannot close."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        body = _body(request)
        if body is None or body.get("mchid") != self.config.wechatpay_mchid:
            return self._error(400, "PARAM_ERROR", "mchid is required and must be this merchant's")
        with self._lock:
            order = self._orders.get(request.path.rstrip("/").split("/")[-2])
            if order is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            if order.trade_state in ("SUCCESS", "REFUND"):
                return self._error(400, "ORDERPAID", "该订单已支付")
            order.trade_state = "CLOSED"
        return self._signed(204, {})

    def refund(self, request: Request) -> Response:
        """POST /v3/refund/domestic/refunds: PROCESSING until /sim/refund-complete."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        body = _body(request)
        amount = body.get("amount") if body is not None else None
        if body is None or not isinstance(amount, dict) or not isinstance(body.get("out_refund_no"), str):
            return self._error(400, "PARAM_ERROR", "out_refund_no and amount are required")
        refund_fen, total = amount.get("refund"), amount.get("total")
        if type(refund_fen) is not int or type(total) is not int or not (0 < refund_fen <= AMOUNT_MAX and
                                                                          0 < total <= AMOUNT_MAX):
            return self._error(400, "PARAM_ERROR", f"amount.refund and amount.total must be integers of fen in "
                                                   f"1..{AMOUNT_MAX}")
        if amount.get("currency") != "CNY":
            return self._error(400, "PARAM_ERROR", "amount.currency must be CNY")
        with self._lock:
            known = self._refunds.get(body["out_refund_no"])
            if known is not None:
                return self._signed(200, known.resource())
            order = self._orders.get(body.get("out_trade_no") or "")
            if order is None or order.transaction_id is None:
                return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付")
            if total != order.amount_fen:
                return self._error(400, "PARAM_ERROR", "amount.total is not the order's total")
            if order.refunded_fen + refund_fen > order.amount_fen:
                return self._error(403, "NOT_ENOUGH", "申请退款金额超过订单可退金额")
            order.refunded_fen += refund_fen
            refund = _Refund(body["out_refund_no"], "50" + secrets.token_hex(14), order, refund_fen,
                             body.get("notify_url"), body.get("reason"), datetime.now(UTC))
            self._refunds[refund.out_refund_no] = refund
            return self._signed(200, refund.resource())

    def query_refund(self, request: Request) -> Response:
        """GET /v3/refund/domestic/refunds/{out_refund_no}."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        with self._lock:
            refund = self._refunds.get(request.path.rsplit("/", 1)[1])
            if refund is None:
                return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return self._signed(200, refund.resource())

    def transfer(self, request: Request) -> Response:
        """POST /v3/fund-app/mch-transfer/transfer-bills: a merchant transfer to a user's balance, WAIT_USER_CONFIRM
        with a package_info, as WeChat Pay answers, until the user confirms it (/sim/transfer/confirm: SUCCESS) or it
        is cancelled (/sim/transfer/settle CANCELLED); or as /sim/transfer/next says (e.g. still PROCESSING, FAIL,
        or SUCCESS at once), and/or the answer lost as a 500 after the bill was recorded.
        The same out_bill_no again answers the bill as it is now, with its package_info. From 2,000 yuan WeChat Pay
        requires the payee's user_name, RSA-OAEP (SHA-1) encrypted to the platform key the Wechatpay-Serial header
        names: PARAM_ERROR without it or when it does not decrypt; /sim/wechatpay/transfers shows the name read."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        body = _body(request)
        fields = [body.get(name) for name in ("appid", "out_bill_no", "openid", "transfer_remark")] if body else []
        amount = body.get("transfer_amount") if body else None
        if not fields or not all(isinstance(value, str) and value for value in fields) or type(amount) is not int:
            return self._error(400, "PARAM_ERROR", "appid, out_bill_no, openid, transfer_remark and an integer "
                                                   "transfer_amount are required")
        assert body is not None
        if body["appid"] != self.config.wechat_appid:
            return self._error(400, "APPID_MCHID_NOT_MATCH", "appid does not match the merchant")
        if amount < 10:
            return self._error(400, "PARAM_ERROR", "transfer_amount is at least 10 fen")
        if amount >= TRANSFER_NAMED_FROM_FEN and not body.get("user_name"):
            return self._error(400, "PARAM_ERROR", "转账金额大于等于2000元时，user_name必填")
        user_name = None
        if body.get("user_name") is not None:
            if request.headers.get("Wechatpay-Serial") != self.config.wechatpay_platform_serial:
                return self._error(400, "PARAM_ERROR", "Wechatpay-Serial must name the key user_name is encrypted to")
            user_name = self._decrypt_sensitive(body["user_name"])
            if user_name is None:
                return self._error(400, "PARAM_ERROR", "user_name 解密失败")
        with self._lock:
            known = self._transfers.get(body["out_bill_no"])
            if known is not None:
                if (known["openid"], known["transfer_amount"]) != (body["openid"], amount):
                    return self._error(400, "INVALID_REQUEST", "out_bill_no was used for another transfer")
                return self._signed(200, _with_package(known))
            upcoming, self._next_transfer = self._next_transfer, {}
            state = upcoming.get("state") or "WAIT_USER_CONFIRM"
            answer = {"out_bill_no": body["out_bill_no"], "transfer_bill_no": "1330" + secrets.token_hex(14),
                      "create_time": _time(datetime.now(UTC)), "state": state}
            if state == "FAIL":
                answer["fail_reason"] = "PAYEE_ACCOUNT_ABNORMAL"
            known = {"openid": body["openid"], "transfer_amount": amount, "answer": answer, "user_name": user_name,
                     "package_info": base64.b64encode(secrets.token_bytes(96)).decode()}
            self._transfers[body["out_bill_no"]] = known
        if upcoming.get("lose_answer"):
            return self._error(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试")
        return self._signed(200, _with_package(known))

    def query_transfer(self, request: Request) -> Response:
        """GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}: the bill, without its package_info
        (WeChat Pay's query answer has none)."""
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        with self._lock:
            known = self._transfers.get(request.path.rsplit("/", 1)[1])
        if known is None:
            return self._error(404, "NOT_FOUND", "记录不存在")
        return self._signed(200, known["answer"])

    # -- test hooks ----------------------------------------------------------------------------------

    def sim_fail_next(self, request: Request) -> Response:
        """POST /sim/wechatpay/fail-next {"status": 4xx|5xx, "code", "message"}: the next API call, once its signature
        verifies, is refused so (signed, as WeChat Pay signs every answer to a request it authenticated) and does
        nothing; e.g. 429 FREQUENCY_LIMITED, 403 NO_AUTH, 500 SYSTEM_ERROR."""
        body = request.json()
        status, code, message = body.get("status"), body.get("code"), body.get("message", "")
        if type(status) is not int or not 400 <= status <= 599 or not isinstance(code, str) or not code:
            raise SimulatorError("status must be an HTTP error status and code a WeChat Pay error code")
        with self._lock:
            self._fail_next = (status, code, str(message))
        return Response(200, {"status": status, "code": code})

    def sim_transfer_next(self, request: Request) -> Response:
        """POST /sim/transfer/next {"state"?: "PROCESSING"|"WAIT_USER_CONFIRM"|..., "lose_answer"?: bool}: the next
        new transfer starts in that state (in flight) and/or is recorded but answered 500 (its answer lost)."""
        body = request.json()
        state, lose = body.get("state"), bool(body.get("lose_answer", False))
        if state is not None and state not in ("ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING",
                                               "SUCCESS", "FAIL"):
            raise SimulatorError("state must be a transfer bill state")
        with self._lock:
            self._next_transfer = {"state": state, "lose_answer": lose}
        return Response(200, {"state": state, "lose_answer": lose})

    def sim_transfer_confirm(self, request: Request) -> Response:
        """POST /sim/transfer/confirm {"out_bill_no", "package"?}: the user confirms receipt in WeChat, as
        wx.requestMerchantTransfer with the bill's package_info does (a package given must be the bill's): a bill
        awaiting them (WAIT_USER_CONFIRM, TRANSFERING) becomes SUCCESS, which its query then answers."""
        body = request.json()
        with self._lock:
            known = self._transfers.get(str(body.get("out_bill_no")))
            if known is None:
                raise SimulatorError("no such transfer")
            if known["answer"]["state"] not in TRANSFER_AWAITING_USER:
                raise SimulatorError(f"the transfer does not await the user: it is {known['answer']['state']}")
            if body.get("package") not in (None, known["package_info"]):
                raise SimulatorError("the package is not this transfer's package_info")
            known["answer"] = {**known["answer"], "state": "SUCCESS"}
        return Response(200, known["answer"])

    def sim_transfer_settle(self, request: Request) -> Response:
        """POST /sim/transfer/settle {"out_bill_no", "state": "SUCCESS"|"FAIL"|"CANCELLED"}: a transfer in flight
        ends (WeChat Pay sends no notify to merchants of this API: the merchant must ask)."""
        body = request.json()
        state = body.get("state")
        if state not in ("SUCCESS", "FAIL", "CANCELLED"):
            raise SimulatorError("state must be SUCCESS, FAIL or CANCELLED")
        with self._lock:
            known = self._transfers.get(str(body.get("out_bill_no")))
            if known is None:
                raise SimulatorError("no such transfer")
            if known["answer"]["state"] in ("SUCCESS", "FAIL", "CANCELLED"):
                raise SimulatorError(f"the transfer has already ended {known['answer']['state']}")
            known["answer"] = {**known["answer"], "state": state,
                               **({"fail_reason": "PAYEE_ACCOUNT_ABNORMAL"} if state != "SUCCESS" else {})}
        return Response(200, known["answer"])

    def sim_transfers(self, request: Request) -> Response:
        """GET /sim/wechatpay/transfers?openid= -> the transfers made to that openid (amount, state, bill numbers,
        the payee's name as decrypted, null when none was sent)."""
        openid = request.query.get("openid", [""])[-1]
        with self._lock:
            found = [{**_with_package(t), "transfer_amount": t["transfer_amount"], "user_name": t["user_name"]}
                     for t in self._transfers.values() if t["openid"] == openid]
        return Response(200, {"transfers": found})

    def sim_pay(self, request: Request) -> Response:
        """POST /sim/pay {"out_trade_no", "notify"?: true, "tamper"?}: the payer pays the full amount.

        The order becomes SUCCESS and a TRANSACTION.SUCCESS notify goes to its notify_url (unless
        notify is false: a lost notify). With a tamper the order stays as it is and only the spoilt
        notify is sent. Answers what the receiver said and the notify it got (headers, body) for replays.
        """
        body = request.json()
        tamper, send = body.get("tamper"), body.get("notify", True)
        if tamper is not None and tamper not in TAMPERS:
            raise SimulatorError(f"tamper must be one of {', '.join(TAMPERS)}")
        with self._lock:
            order = self._orders.get(body.get("out_trade_no") or "")
            if order is None:
                raise SimulatorError("no prepaid order with that out_trade_no")
            self._close_if_expired(order)
            if order.trade_state == "CLOSED":
                raise SimulatorError("the order is closed (time_expire passed)")
            if tamper is None and order.transaction_id is None:
                order.trade_state, order.success_time = "SUCCESS", datetime.now(UTC)
                order.transaction_id = "4200" + datetime.now(CHINA).strftime("%Y%m%d") + str(secrets.randbelow(10**14)).zfill(14)
            paid = replace(order, trade_state="SUCCESS", success_time=order.success_time or datetime.now(UTC),
                           transaction_id=order.transaction_id or "4200000000" + str(secrets.randbelow(10**18)))
        if not send:
            return Response(200, {"out_trade_no": paid.out_trade_no, "transaction_id": paid.transaction_id})
        return self._deliver(_Notify(paid.notify_url, "TRANSACTION.SUCCESS", "支付成功", "transaction",
                                     paid.resource(), tamper))

    def sim_refund_complete(self, request: Request) -> Response:
        """POST /sim/refund-complete {"out_refund_no", "status"?: SUCCESS|CLOSED|ABNORMAL, "tamper"?}."""
        body = request.json()
        status, tamper = body.get("status", "SUCCESS"), body.get("tamper")
        if status not in ("SUCCESS", "CLOSED", "ABNORMAL"):
            raise SimulatorError("status must be SUCCESS, CLOSED or ABNORMAL")
        if tamper is not None and tamper not in TAMPERS:
            raise SimulatorError(f"tamper must be one of {', '.join(TAMPERS)}")
        with self._lock:
            refund = self._refunds.get(body.get("out_refund_no") or "")
            if refund is None:
                raise SimulatorError("no refund with that out_refund_no")
            # ABNORMAL (the card is gone) is not an end: WeChat Pay keeps the money and the merchant may still
            # complete the refund (SUCCESS) or have it closed; only CLOSED frees the amount for another refund.
            if tamper is None and refund.status in ("PROCESSING", "ABNORMAL") and status != refund.status:
                refund.status = status
                if status == "SUCCESS":
                    refund.success_time = datetime.now(UTC)
                    refund.order.trade_state = "REFUND"
                elif status == "CLOSED":
                    refund.order.refunded_fen -= refund.refund_fen
            # A tampered notify claims the requested end, but the refund itself stays as it is.
            resource = {**refund.resource(), "mchid": refund.order.mchid,
                        "refund_status": status if tamper is not None else refund.status}
            del resource["status"]
        if refund.notify_url is None:
            return Response(200, {"out_refund_no": refund.out_refund_no, "status": refund.status})
        summary = {"SUCCESS": "退款成功", "CLOSED": "退款关闭", "ABNORMAL": "退款异常"}[resource["refund_status"]]
        return self._deliver(_Notify(refund.notify_url, f"REFUND.{resource['refund_status']}", summary, "refund",
                                     resource, tamper))

    def sim_order(self, request: Request) -> Response:
        """GET /sim/wechatpay/orders?out_trade_no= -> what the prepay recorded, and the order's state."""
        with self._lock:
            order = self._orders.get(request.query.get("out_trade_no", [""])[-1])
            if order is None:
                raise SimulatorError("no prepaid order with that out_trade_no")
            return Response(200, {**order.resource(), "description": order.description, "notify_url": order.notify_url,
                                  "time_expire": _time(order.time_expire), "prepay_id": order.prepay_id,
                                  "refunded_fen": order.refunded_fen})

    def sim_merchant(self, _: Request) -> Response:
        """GET /sim/wechatpay/merchant: the dev merchant account and the platform's public key."""
        return Response(200, {
            "mchid": self.config.wechatpay_mchid, "appid": self.config.wechat_appid,
            "merchant_serial": self.config.wechatpay_merchant_serial,
            "merchant_key_file": str(self.key_files[MERCHANT_PRIVATE]),
            "apiv3_key": self.config.wechatpay_apiv3_key,  # a dev-only value, like every simulator credential
            "platform_serial": self.config.wechatpay_platform_serial,
            "platform_public_key_file": str(self.key_files[PLATFORM_PUBLIC]),
            "platform_public_key_pem": self.key_files[PLATFORM_PUBLIC].read_text(),
        })

    # -- signing -------------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Response | None:
        """None when the Authorization header is the merchant's valid WECHATPAY2-SHA256-RSA2048 signature."""
        schema, _, params = (request.headers.get("Authorization") or "").partition(" ")
        if schema != SCHEMA:
            return self._error(401, "SIGN_ERROR", "Authorization must use WECHATPAY2-SHA256-RSA2048", signed=False)
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if fields.get("mchid") != self.config.wechatpay_mchid:
            return self._error(401, "SIGN_ERROR", "unknown mchid", signed=False)
        if fields.get("serial_no") != self.config.wechatpay_merchant_serial:
            return self._error(401, "SIGN_ERROR", "unknown merchant certificate serial", signed=False)
        timestamp = fields.get("timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return self._error(401, "SIGN_ERROR", "timestamp is not within 5 minutes of now", signed=False)
        url = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        message = f"{request.method}\n{url}\n{timestamp}\n{fields.get('nonce_str', '')}\n".encode() + request.body + b"\n"
        try:
            self._merchant_public.verify(base64.b64decode(fields.get("signature", "")), message, padding.PKCS1v15(),
                                         hashes.SHA256())
        except (InvalidSignature, ValueError):
            return self._error(401, "SIGN_ERROR", "签名错误", signed=False)
        with self._lock:
            failure, self._fail_next = self._fail_next, None
        return self._error(*failure) if failure is not None else None

    def _decrypt_sensitive(self, ciphertext: object) -> str | None:
        """A field the merchant encrypted to our platform key (RSA/ECB/OAEPWithSHA-1AndMGF1Padding, base64), or None."""
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        try:
            return self._platform_key.decrypt(base64.b64decode(str(ciphertext), validate=True), oaep).decode()
        except ValueError:  # not base64, not ours (a failed OAEP check), not UTF-8
            return None

    def _headers(self, payload: bytes, *, timestamp: int | None = None, serial: str | None = None,
                 bad_signature: bool = False) -> dict[str, str]:
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + payload + b"\n"
        if bad_signature:
            message += b"spoilt"
        signature = self._platform_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {"Wechatpay-Serial": serial or self.config.wechatpay_platform_serial,
                "Wechatpay-Signature": base64.b64encode(signature).decode(), "Wechatpay-Timestamp": str(timestamp),
                "Wechatpay-Nonce": nonce, "Wechatpay-Signature-Type": SCHEMA, "Request-ID": uuid.uuid4().hex}

    def _signed(self, status: int, body: dict[str, Any]) -> Response:
        response = Response(status, body)
        return replace(response, headers=self._headers(response.payload()))

    def _error(self, status: int, code: str, message: str, *, signed: bool = True) -> Response:
        body = {"code": code, "message": message}
        return self._signed(status, body) if signed else Response(status, body)

    def _deliver(self, notify: _Notify) -> Response:
        """POST the notify to the merchant, as WeChat Pay does: signed envelope, encrypted resource."""
        resource, tamper, apiv3_key = dict(notify.resource), notify.tamper, self.config.wechatpay_apiv3_key.encode()
        if tamper == "wrong_amount":
            resource["amount"] = {**resource["amount"], "total": resource["amount"]["total"] + 1,
                                  "payer_total": resource["amount"]["total"] + 1}
        if tamper == "wrong_currency":
            resource["amount"] = {**resource["amount"], "currency": "USD", "payer_currency": "USD"}
        if tamper == "wrong_mchid":
            resource["mchid"] = "1900000000"
        if tamper == "wrong_appid":
            resource["appid"] = "wx0000000000000000"
        nonce, associated_data = secrets.token_hex(6), notify.original_type
        if tamper == "bad_tag":
            apiv3_key = bytes(32)
        ciphertext = AESGCM(apiv3_key).encrypt(nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(),
                                               associated_data.encode())
        envelope = {"id": str(uuid.uuid4()), "create_time": _time(datetime.now(UTC)), "resource_type": "encrypt-resource",
                    "event_type": notify.event_type, "summary": notify.summary,
                    "resource": {"original_type": notify.original_type, "algorithm": "AEAD_AES_256_GCM",
                                 "ciphertext": base64.b64encode(ciphertext).decode(),
                                 "associated_data": associated_data, "nonce": nonce}}
        payload = json.dumps(envelope, ensure_ascii=False).encode()
        headers = self._headers(
            payload, bad_signature=tamper == "bad_signature",
            serial="PUB_KEY_ID_UNKNOWN0000000000000000" if tamper == "unknown_serial" else None,
            timestamp=int(time.time()) - MAX_CLOCK_SKEW_SECONDS - 60 if tamper == "stale_timestamp" else None)
        if tamper == "tampered_body":
            payload = payload.replace(b'"summary": "', b'"summary": "!')
        try:
            answer = self._session.post(notify.url, data=payload,
                                        headers={**headers, "Content-Type": "application/json"}, timeout=10)
            status, text = answer.status_code, answer.text
        except requests.RequestException as exc:
            status, text = 0, f"{type(exc).__name__}"
        return Response(200, {"notify_status": status, "notify_answer": text[:2000],
                              "notify": {"url": notify.url, "headers": headers, "body": payload.decode()},
                              "transaction_id": resource.get("transaction_id")})

    def _close_if_expired(self, order: _Order) -> None:
        if (order.trade_state == "NOTPAY" and order.time_expire is not None
                and datetime.fromtimestamp(self.clock.now(), UTC) > order.time_expire):
            order.trade_state = "CLOSED"


def _with_package(transfer: dict[str, Any]) -> dict[str, Any]:
    """A transfer bill as its transfer request is answered: with its package_info while it awaits the user."""
    answer = transfer["answer"]
    if answer["state"] in TRANSFER_AWAITING_USER:
        return {**answer, "package_info": transfer["package_info"]}
    return answer


def _body(request: Request) -> dict[str, Any] | None:
    try:
        return request.json()
    except ValueError:
        return None


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _time(value: datetime | None) -> str | None:
    return value.astimezone(CHINA).isoformat(timespec="seconds") if value is not None else None

