"""Simulated Aliyun SMS (dysmsapi SendSms): RPC signature v1 checked, per-number flow control, an outbox to read."""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from services.user.sms import rpc_signature, rpc_string_to_sign
from tools.simulator.config import SimClock, SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError

PATH = "/dysmsapi"  # production: https://dysmsapi.aliyuncs.com/
TIMESTAMP_TOLERANCE_SECONDS = 15 * 60
MOBILE = re.compile(r"(?:\+?86|0086)?1[3-9][0-9]{9}")
COMMON_PARAMETERS = ("AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "SignatureVersion",
                     "Timestamp", "Version", "Action")
BUSINESS_MESSAGES = {
    "isv.BUSINESS_LIMIT_CONTROL": "触发号码天级流控Permits:10",
    "isv.DAY_LIMIT_CONTROL": "触发日发送限额",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isp.SYSTEM_ERROR": "系统错误",
}


class AliyunSmsSimulator:
    """Verifies each SendSms like Aliyun does, then keeps the message for GET /sim/sms/messages."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._nonces: dict[str, float] = {}
        self._sent: dict[str, deque[float]] = {}
        self._messages: list[dict[str, Any]] = []
        self._fail_next: deque[str] = deque()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("GET", PATH): self.send_sms, ("POST", PATH): self.send_sms,
                ("GET", "/sim/sms/messages"): self.messages,
                ("POST", "/sim/sms/fail-next"): self.fail_next}

    def reset(self) -> None:
        with self._lock:
            self._nonces.clear()
            self._sent.clear()
            self._messages.clear()
            self._fail_next.clear()

    def messages(self, request: Request) -> Response:
        """GET /sim/sms/messages?phone= -> {"messages": [...]}, newest first, each with the "code" it carried."""
        phone = (request.query.get("phone") or [None])[-1]
        with self._lock:
            found = [m for m in reversed(self._messages) if phone is None or m["phone"] == phone]
        return Response(200, {"messages": found})

    def fail_next(self, request: Request) -> Response:
        """POST /sim/sms/fail-next {"code"}: the next well-signed SendSms answers that business error code."""
        code = request.json().get("code")
        if code not in BUSINESS_MESSAGES:
            raise SimulatorError(f"code must be one of {sorted(BUSINESS_MESSAGES)}")
        with self._lock:
            self._fail_next.append(code)
        return Response(200, {"code": code})

    def send_sms(self, request: Request) -> Response:
        values = request.form()
        if any(len(v) > 1 for v in values.values()):
            return _pop_error(400, "InvalidParameter", "A parameter is given more than once.")
        params = {name: v[0] for name, v in values.items()}
        for name in COMMON_PARAMETERS:
            if not params.get(name):
                return _pop_error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return _pop_error(400, "InvalidSignatureMethod", "Specified signature method is not supported.")
        if params["AccessKeyId"] != self.config.aliyun_access_key_id:
            return _pop_error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return _pop_error(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
        if abs(time.time() - stamp) > TIMESTAMP_TOLERANCE_SECONDS:
            return _pop_error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        expected = rpc_signature(request.method, params, self.config.aliyun_access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            return _pop_error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. "
                              f"server string to sign is:{rpc_string_to_sign(request.method, params)}")
        if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
            return _pop_error(400, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
        with self._lock:
            now = time.time()
            for nonce in [n for n, at in self._nonces.items() if now - at > TIMESTAMP_TOLERANCE_SECONDS]:
                del self._nonces[nonce]
            if params["SignatureNonce"] in self._nonces:
                return _pop_error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces[params["SignatureNonce"]] = now
            if self._fail_next:
                return _business_error(self._fail_next.popleft())
            return self._deliver(params)

    def _deliver(self, params: dict[str, str]) -> Response:
        """With the lock held: check the message, apply flow control, keep it."""
        phones = params.get("PhoneNumbers", "").split(",")
        if not all(MOBILE.fullmatch(phone) for phone in phones):
            return _business_error("isv.MOBILE_NUMBER_ILLEGAL")
        if not params.get("SignName"):
            return _business_error("isv.SMS_SIGNATURE_ILLEGAL")
        if not params.get("TemplateCode"):
            return _business_error("isv.SMS_TEMPLATE_ILLEGAL")
        try:
            template_param = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return _business_error("isv.INVALID_JSON_PARAM")
        if not isinstance(template_param, dict) or not all(isinstance(v, str) for v in template_param.values()):
            return _business_error("isv.INVALID_JSON_PARAM")
        now = self.clock.now()
        for phone in phones:
            if limit := self._flow_control(phone, now):
                return _business_error("isv.BUSINESS_LIMIT_CONTROL", limit)
        biz_id = f"{secrets.randbelow(10**6):06d}^{secrets.randbelow(10**10):010d}"
        for phone in phones:
            self._sent.setdefault(phone, deque()).append(now)
            self._messages.append({"phone": phone, "sign_name": params["SignName"],
                                   "template_code": params["TemplateCode"], "template_param": template_param,
                                   "code": template_param.get("code"), "biz_id": biz_id,
                                   "sent_at": datetime.fromtimestamp(now, UTC).isoformat()})
        return Response(200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()})

    def _flow_control(self, phone: str, now: float) -> str | None:
        """The limit a new message to `phone` would break, as Aliyun words it; None when it may go."""
        sent = self._sent.setdefault(phone, deque())
        while sent and now - sent[0] >= 86_400:
            sent.popleft()
        for window, limit, level in ((60, self.config.sms_per_minute, "分钟"), (3600, self.config.sms_per_hour, "小时"),
                                     (86_400, self.config.sms_per_day, "天")):
            if sum(1 for at in sent if now - at < window) >= limit:
                return f"触发号码{level}级流控Permits:{limit}"
        return None


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _business_error(code: str, message: str | None = None) -> Response:
    # Business refusals come back as HTTP 200 with the error in Code, like the real API.
    return Response(200, {"Code": code, "Message": message or BUSINESS_MESSAGES[code], "RequestId": _request_id()})


def _pop_error(status: int, code: str, message: str) -> Response:
    # Gateway-level (POP) refusals: an HTTP error status and the POP error body.
    return Response(status, {"RequestId": _request_id(), "HostId": "dysmsapi.aliyuncs.com", "Code": code,
                             "Message": message, "Recommend": "https://api.aliyun.com/troubleshoot"})
