"""Simulated Tencent Cloud FaceID IdCardVerification (API 3.0, TC3-HMAC-SHA256): name + ID number checks.

The registry's rule, deterministic so tests can aim at every verdict:
- an ID number that fails GB 11643 (shape, birth date, check character) -> Result -2;
- a name that is not 2-30 Chinese characters, optionally split by "·" -> Result -3;
- an ID number registered as unknown (POST /sim/realname/identities {"id_number", "no_record": true}) -> -5;
- an ID number registered with a name (config `identities`, or POST /sim/realname/identities
  {"real_name", "id_number"}) -> 0 for that name, -1 for any other;
- any other valid ID number -> 0 (match), whatever the name.
POST /sim/realname/fail-next {"result": "-4"} or {"error": "InternalError"} forces the next answer.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from typing import Any

from services.user.realname import FACEID_SERVICE, FACEID_VERSION, id_number_is_valid, tc3_signature
from tools.simulator.config import SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError

PATH = "/faceid"  # production: https://faceid.tencentcloudapi.com/
TIMESTAMP_TOLERANCE_SECONDS = 300
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f"
NAME = re.compile(f"[{_CJK}]+(?:·[{_CJK}]+)*")
_AUTHORIZATION = re.compile(r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([^/]+)/tc3_request, "
                            r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")
RESULTS = {
    "0": "姓名和身份证号一致",
    "-1": "姓名和身份证号不一致",
    "-2": "非法身份证号(长度、校验位等不正确)",
    "-3": "非法姓名(长度、格式等不正确)",
    "-4": "证件库服务异常",
    "-5": "证件库中无此身份证记录",
    "-6": "权威比对系统升级中，请稍后再试",
    "-7": "认证次数超过当日限制",
}
ERRORS = {
    "AuthFailure.InvalidAuthorization": "Authorization is malformed.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found.",
    "AuthFailure.SignatureExpire": "Signature expired.",
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated.",
    "InternalError": "Internal error.",
    "RequestLimitExceeded": "Your current request times equals to `100` in a second.",
    "InvalidParameter": "The request body is not a JSON object with the string fields IdCard and Name.",
    "InvalidAction": "The action is not supported.",
}
_NO_RECORD = object()


class FaceIdSimulator:
    """Checks the TC3 signature of each call, then answers by the registry's rule (module docstring)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._registry: dict[str, object] = {}
        self._fail_next: deque[dict[str, str]] = deque()
        self.reset()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", PATH): self.id_card_verification,
                ("POST", "/sim/realname/identities"): self.register,
                ("POST", "/sim/realname/fail-next"): self.fail_next}

    def reset(self) -> None:
        with self._lock:
            self._registry = {id_number: name for name, id_number in self.config.identities}
            self._fail_next.clear()

    def register(self, request: Request) -> Response:
        body = request.json()
        id_number = body["id_number"]
        if not isinstance(id_number, str) or not id_number_is_valid(id_number):
            raise SimulatorError("id_number must be a valid GB 11643 ID number")
        if body.get("no_record"):
            entry: object = _NO_RECORD
        elif isinstance(body.get("real_name"), str):
            entry = body["real_name"]
        else:
            raise SimulatorError('give "real_name", or "no_record": true')
        with self._lock:
            self._registry[id_number] = entry
        return Response(200, {"id_number": id_number, "registered": "no_record" if entry is _NO_RECORD else "name"})

    def fail_next(self, request: Request) -> Response:
        body = request.json()
        if body.get("result") in RESULTS and body.get("result") != "0":
            forced = {"result": body["result"]}
        elif body.get("error") in ERRORS:
            forced = {"error": body["error"]}
        else:
            raise SimulatorError(f"give a failing result of {sorted(RESULTS)} or an error of {sorted(ERRORS)}")
        with self._lock:
            self._fail_next.append(forced)
        return Response(200, forced)

    def id_card_verification(self, request: Request) -> Response:
        refused = self._authenticate(request)
        if refused:
            return _error(refused)
        if request.headers.get("X-TC-Action") != "IdCardVerification" or request.headers.get("X-TC-Version") \
                != FACEID_VERSION:
            return _error("InvalidAction")
        try:
            body = json.loads(request.body)
            name, id_number = body["Name"], body["IdCard"]
            if not isinstance(name, str) or not isinstance(id_number, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error("InvalidParameter")
        with self._lock:
            forced = self._fail_next.popleft() if self._fail_next else None
            registered = self._registry.get(id_number)
        if forced and "error" in forced:
            return _error(forced["error"])
        if forced:
            return _result(forced["result"])
        if not id_number_is_valid(id_number):
            return _result("-2")
        if not (2 <= len(name) <= 30 and NAME.fullmatch(name)):
            return _result("-3")
        if registered is _NO_RECORD:
            return _result("-5")
        if registered is not None and registered != name:
            return _result("-1")
        return _result("0")

    def _authenticate(self, request: Request) -> str | None:
        """The AuthFailure code for a request whose signature does not hold; None when it does."""
        match = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        timestamp = request.headers.get("X-TC-Timestamp", "")
        if not match or not timestamp.isdigit():
            return "AuthFailure.InvalidAuthorization"
        secret_id, day, service, signed_headers, signature = match.groups()
        if secret_id != self.config.tencent_secret_id:
            return "AuthFailure.SecretIdNotFound"
        if abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS:
            return "AuthFailure.SignatureExpire"
        names = signed_headers.split(";")
        if service != FACEID_SERVICE or not {"content-type", "host"} <= set(names):
            return "AuthFailure.SignatureFailure"
        headers = {name: request.headers.get(name, "") for name in names}
        expected = tc3_signature(self.config.tencent_secret_key, service=service, timestamp=int(timestamp),
                                 headers=headers, payload=request.body)
        scope_day = time.strftime("%Y-%m-%d", time.gmtime(int(timestamp)))
        if day != scope_day or not hmac.compare_digest(expected, signature):
            return "AuthFailure.SignatureFailure"
        return None


def _result(code: str) -> Response:
    return Response(200, {"Response": {"Result": code, "Description": RESULTS[code], "RequestId": str(uuid.uuid4())}})


def _error(code: str) -> Response:
    # API 3.0 answers HTTP 200 with the error inside Response.
    body: dict[str, Any] = {"Error": {"Code": code, "Message": ERRORS[code]}, "RequestId": str(uuid.uuid4())}
    return Response(200, {"Response": body})
