"""WeChat: log in with a wx.login code, and bind or unbind the caller's WeChat."""

from __future__ import annotations

from flask import Blueprint
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import PUBLIC, Body, Reply, operation, service
from gateway.ratelimit import Limit
from gateway.routes.auth import Session

bp = Blueprint("wechat", __name__, url_prefix="/api/v1")

WX_CODE = Field(min_length=1, max_length=128, description="the code wx.login gave the mini-program (single use)")


class WechatCode(Body):
    code: str = WX_CODE


class WechatBinding(Reply):
    """Whether the account has a WeChat bound."""

    wechat_bound: bool


@bp.post("/auth/login/wechat")
@operation(summary="Log in (registering on first login) with a wx.login code", tag="auth", access=PUBLIC,
           limits=(Limit("ip", 30, 60),), body=WechatCode, responses={200: Session})
def login_wechat(body: WechatCode) -> Session:
    return Session.from_proto(service(UserServiceStub).LoginWithWechat(user_pb2.LoginWithWechatRequest(code=body.code)))


@bp.post("/me/wechat")
@operation(summary="Bind the WeChat of a wx.login code to my account", tag="me",
           limits=(Limit("ip", 30, 60),), body=WechatCode, responses={200: WechatBinding})
def bind_wechat(body: WechatCode) -> WechatBinding:
    reply = service(UserServiceStub).BindWechat(user_pb2.BindWechatRequest(code=body.code))
    return WechatBinding(wechat_bound=reply.wechat_bound)


@bp.delete("/me/wechat")
@operation(summary="Unbind my WeChat (not when it is my only way to log in)", tag="me",
           responses={200: WechatBinding})
def unbind_wechat() -> WechatBinding:
    reply = service(UserServiceStub).UnbindWechat(user_pb2.UnbindWechatRequest())
    return WechatBinding(wechat_bound=reply.wechat_bound)
