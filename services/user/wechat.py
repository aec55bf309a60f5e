"""WeChat mini-program login: code2session, exchanging a wx.login code for the user's openid."""

from __future__ import annotations

import logging
import re
from typing import NamedTuple, TypeGuard

import requests

from services.common.errors import DomainError, ErrorKind, Forbidden, InvalidInput, RateLimited
from services.user.config import WechatSettings

log = logging.getLogger(__name__)

MAX_CODE_LENGTH = 128
# code2session errcodes (developers.weixin.qq.com, auth.code2Session) that the user's code caused.
CODE_INVALID = 40029
CODE_USED = 40163
MINUTE_QUOTA_REACHED = 45011
HIGH_RISK_USER = 40226
SYSTEM_BUSY = -1


def _is_wechat_id(value: object) -> TypeGuard[str]:
    """An openid or unionid as WeChat issues them (28 characters of [A-Za-z0-9_-] today), one that fits where it is
    kept: 1-64 visible ASCII characters."""
    return isinstance(value, str) and re.fullmatch(r"[!-~]{1,64}", value) is not None


class WechatSession(NamedTuple):
    openid: str
    unionid: str | None
    session_key: str  # never leaves the user service; never logged

    def __repr__(self) -> str:
        return f"WechatSession(openid={self.openid!r}, unionid={self.unionid!r}, session_key='***')"


def wechat_unavailable() -> DomainError:
    return DomainError("WECHAT_UNAVAILABLE", "WeChat login is unavailable right now; try again later",
                       kind=ErrorKind.UNAVAILABLE)


class WechatAuth:
    """The server side of wx.login: one GET to /sns/jscode2session per code."""

    def __init__(self, settings: WechatSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()

    @property
    def appid(self) -> str:
        return self.settings.appid

    def code2session(self, code: str) -> WechatSession:
        """The openid, unionid (None unless the app is bound to an open-platform account) and session key."""
        if not code or len(code) > MAX_CODE_LENGTH or not code.isascii() or not code.isprintable():
            raise InvalidInput("WECHAT_CODE_INVALID", "the WeChat login code is invalid or expired; call wx.login again")
        query = {"appid": self.settings.appid, "secret": self.settings.app_secret, "js_code": code,
                 "grant_type": "authorization_code"}
        try:
            response = self.session.get(f"{self.settings.api_base.rstrip('/')}/sns/jscode2session", params=query,
                                        timeout=self.settings.timeout_seconds)
            answer = response.json()  # WeChat answers JSON labelled text/plain
        except (requests.RequestException, ValueError) as exc:
            # Only the type: requests' messages quote the URL, and the URL carries the AppSecret.
            log.warning("WeChat code2session: no usable answer (%s)", type(exc).__name__)
            raise wechat_unavailable() from None
        if not isinstance(answer, dict):
            log.warning("WeChat code2session: answer is not a JSON object (HTTP %s)", response.status_code)
            raise wechat_unavailable()
        errcode = answer.get("errcode", 0)
        if errcode != 0:
            raise self._error(errcode, answer.get("errmsg"))
        openid, unionid, session_key = answer.get("openid"), answer.get("unionid"), answer.get("session_key")
        if not (_is_wechat_id(openid) and isinstance(session_key, str) and session_key):
            # Success without whom it is for: an account must never be found, or registered, under an empty or
            # mangled openid (every such login would share it). WeChat's fault, not the user's code.
            log.error("WeChat code2session answered success without a usable openid and session key (HTTP %s)",
                      response.status_code)
            raise wechat_unavailable()
        return WechatSession(openid, unionid if _is_wechat_id(unionid) else None, session_key)

    def _error(self, errcode: object, errmsg: object) -> DomainError:
        if errcode in (CODE_INVALID, CODE_USED):
            return InvalidInput("WECHAT_CODE_INVALID", "the WeChat login code is invalid or expired; call wx.login again",
                                details={"errcode": errcode})
        if errcode == MINUTE_QUOTA_REACHED:
            return RateLimited("WECHAT_RATE_LIMITED", "too many WeChat logins for this account; try again in a minute",
                               details={"errcode": errcode})
        if errcode == HIGH_RISK_USER:
            return Forbidden("WECHAT_USER_BLOCKED", "WeChat refused this login as high-risk",
                             details={"errcode": errcode})
        if errcode != SYSTEM_BUSY:
            # 40013 invalid appid, 40125 invalid appsecret and the like: our configuration, not the user's code.
            log.error("WeChat code2session refused our request: errcode %s (%s)", errcode, errmsg)
        return wechat_unavailable()
