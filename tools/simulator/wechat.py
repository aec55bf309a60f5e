"""Simulated WeChat API: auth.code2session (GET /sns/jscode2session) and the wx.login codes it accepts."""

from __future__ import annotations

import base64
import secrets
import threading
from collections import deque
from dataclasses import dataclass

from tools.simulator.config import SimClock, SimulatorConfig
from tools.simulator.web import Handler, Request, Response, SimulatorError

CODE_TTL_SECONDS = 300
# The errcodes code2session answers, with WeChat's messages.
ERRMSG = {
    -1: "system error",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "code blocked",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
}


@dataclass
class _LoginCode:
    openid: str
    unionid: str | None
    issued_at: float
    used: bool = False


class WechatSimulator:
    """Single-use wx.login codes that expire after 5 minutes, a per-openid minute quota, forced errors."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _LoginCode] = {}
        self._calls: dict[str, deque[float]] = {}
        self._fail_next: deque[int] = deque()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("GET", "/sns/jscode2session"): self.code2session,
                ("POST", "/sim/wechat/login-code"): self.mint_login_code,
                ("POST", "/sim/wechat/fail-next"): self.fail_next}

    def reset(self) -> None:
        with self._lock:
            self._codes.clear()
            self._calls.clear()
            self._fail_next.clear()

    def mint_login_code(self, request: Request) -> Response:
        """POST /sim/wechat/login-code {"openid"?, "unionid"?} -> {"code", "openid"}: what wx.login would give."""
        body = request.json()
        openid = body.get("openid") or "o" + secrets.token_urlsafe(20)[:27]
        unionid = body.get("unionid")
        if not isinstance(openid, str) or not (unionid is None or isinstance(unionid, str)):
            raise SimulatorError("openid and unionid must be strings")
        code = secrets.token_hex(16)
        now = self.clock.now()
        with self._lock:
            for stale in [c for c, v in self._codes.items() if now - v.issued_at > 2 * CODE_TTL_SECONDS]:
                del self._codes[stale]
            self._codes[code] = _LoginCode(openid, unionid, now)
        return Response(200, {"code": code, "openid": openid})

    def fail_next(self, request: Request) -> Response:
        """POST /sim/wechat/fail-next {"errcode"}: the next code2session call answers that errcode."""
        errcode = request.json().get("errcode")
        if errcode not in ERRMSG:
            raise SimulatorError(f"errcode must be one of {sorted(ERRMSG)}")
        with self._lock:
            self._fail_next.append(errcode)
        return Response(200, {"errcode": errcode})

    def code2session(self, request: Request) -> Response:
        query = {name: values[-1] for name, values in request.query.items()}
        if query.get("appid") != self.config.wechat_appid:
            return _error(40013)
        if not secrets.compare_digest(query.get("secret", ""), self.config.wechat_app_secret):
            return _error(40125)
        if query.get("grant_type") != "authorization_code":
            return _error(40002)
        now = self.clock.now()
        with self._lock:
            if self._fail_next:
                return _error(self._fail_next.popleft())
            login = self._codes.get(query.get("js_code", ""))
            if login is None or now - login.issued_at > CODE_TTL_SECONDS:
                return _error(40029)
            if login.used:
                return _error(40163)
            calls = self._calls.setdefault(login.openid, deque())
            while calls and now - calls[0] >= 60:
                calls.popleft()
            if len(calls) >= self.config.wechat_minute_quota:
                return _error(45011)
            calls.append(now)
            login.used = True
        answer = {"session_key": base64.b64encode(secrets.token_bytes(16)).decode(), "openid": login.openid}
        if login.unionid:
            answer["unionid"] = login.unionid
        return _answer(answer)


def _error(errcode: int) -> Response:
    return _answer({"errcode": errcode, "errmsg": f"{ERRMSG[errcode]}, rid: {secrets.token_hex(12)}"})


def _answer(body: dict[str, object]) -> Response:
    # WeChat answers every call with HTTP 200 and JSON labelled text/plain.
    return Response(200, body, content_type="text/plain")
