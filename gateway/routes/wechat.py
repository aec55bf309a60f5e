"""WeChat: log in with a wx.login code, and bind or unbind the caller's WeChat."""

from __future__ import annotations

from flask import Blueprint
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import PUBLIC, Body, Reply, operation, service
from gateway.ratelimit import Limit
from gateway.routes.auth import WECHAT_LOGIN_LIMITS, Session
from services.common import formats
from services.common.formats import anchored

bp = Blueprint("wechat", __name__, url_prefix="/api/v1")

WX_CODE = Field(min_length=1, max_length=128, description="the code wx.login gave the mini-program (single use)")


class WechatCode(Body):
    code: str = WX_CODE


class NewWechat(WechatCode):
    sms_code: str = Field(pattern=anchored(formats.SMS_CODE),
                          description='a 6-digit code of purpose "bind" sent to my phone (POST /auth/sms-codes): '
                                      "the access token alone does not add a way into my account")


class WechatUnbinding(Body):
    sms_code: str = Field(pattern=anchored(formats.SMS_CODE),
                          description='a 6-digit code of purpose "unbind" sent to my phone (POST /auth/sms-codes): '
                                      "the access token alone does not cut my WeChat login off")


class WechatBinding(Reply):
    """Whether the account has a WeChat bound."""

    wechat_bound: bool


@bp.post("/auth/login/wechat")
@operation(summary="Log in (registering on first login) with a wx.login code", tag="auth", access=PUBLIC,
           limits=WECHAT_LOGIN_LIMITS, body=WechatCode, responses={200: Session})
def login_wechat(body: WechatCode) -> Session:
    return Session.from_proto(service(UserServiceStub).LoginWithWechat(user_pb2.LoginWithWechatRequest(code=body.code)))


@bp.post("/me/wechat")
@operation(summary="Bind the WeChat of a wx.login code to my account, confirmed by an SMS code to my phone", tag="me",
           limits=(Limit("ip", 30, 60),), body=NewWechat, responses={200: WechatBinding},
           description="Binding the WeChat I have changes nothing. The SMS code is checked as SMS login checks it "
                       "(400 SMS_CODE_INVALID, SMS_CODE_EXPIRED, SMS_CODE_LOCKED), before 409 WECHAT_BOUND_ELSEWHERE "
                       "or WECHAT_ALREADY_BOUND, which spend it.")
def bind_wechat(body: NewWechat) -> WechatBinding:
    reply = service(UserServiceStub).BindWechat(user_pb2.BindWechatRequest(code=body.code, sms_code=body.sms_code))
    return WechatBinding(wechat_bound=reply.wechat_bound)


@bp.delete("/me/wechat")
@operation(summary="Unbind my WeChat, confirmed by an SMS code to my phone (not when it is my only way to log in)",
           tag="me", limits=(Limit("ip", 30, 60),), body=WechatUnbinding, responses={200: WechatBinding},
           description="A JSON body with the SMS code. Then a login with that WeChat registers a new account. 404 "
                       "WECHAT_NOT_BOUND when my account has no WeChat, 422 LAST_LOGIN_METHOD when it has no phone "
                       "(bind one first, POST /me/phone), both before the SMS code is looked at; then the code is "
                       "checked as SMS login checks it (400 SMS_CODE_INVALID, SMS_CODE_EXPIRED, SMS_CODE_LOCKED). Every other "
                       "session of my account ends (its access tokens answer 401 SESSION_ENDED at once), mine goes "
                       "on: whoever else may hold the WeChat is logged out.")
def unbind_wechat(body: WechatUnbinding) -> WechatBinding:
    reply = service(UserServiceStub).UnbindWechat(user_pb2.UnbindWechatRequest(sms_code=body.sms_code))
    return WechatBinding(wechat_bound=reply.wechat_bound)
