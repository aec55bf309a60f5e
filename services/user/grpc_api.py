"""UserService servicer: protobuf in, use case, protobuf out. Errors are mapped by the interceptor."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from mall.user.v1 import user_pb2, user_pb2_grpc

from services.common.auth import require_caller
from services.common.errors import DomainError, ErrorKind
from services.common.logs import mask_phone
from services.user import service
from services.user.domain import LoginResult
from services.user.passwords import Passwords
from services.user.sms import SmsSender
from services.user.tokens import TokenIssuer
from services.user.uow import UserUnitOfWork


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, uow: Callable[[], UserUnitOfWork], sms: SmsSender, issuer: TokenIssuer,
                 passwords: Passwords, wechat: service.WechatLogin | None = None) -> None:
        self.uow = uow
        self.sms = sms
        self.issuer = issuer
        self.passwords = passwords
        self._wechat = wechat

    @property
    def wechat(self) -> service.WechatLogin:
        if self._wechat is None:
            raise DomainError("WECHAT_NOT_CONFIGURED", "WeChat login is not configured on this server",
                              kind=ErrorKind.UNAVAILABLE)
        return self._wechat

    def SendSmsCode(self, request: user_pb2.SendSmsCodeRequest,
                    context: grpc.ServicerContext) -> user_pb2.SendSmsCodeResponse:
        sent = service.send_sms_code(self.uow(), self.sms, self.issuer, phone=request.phone, purpose=request.purpose)
        return user_pb2.SendSmsCodeResponse(expires_in=sent.expires_in, resend_after=sent.resend_after,
                                            dev_code=sent.dev_code)

    def LoginWithSms(self, request: user_pb2.LoginWithSmsRequest,
                     context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        return _login_response(service.login_with_sms(self.uow(), self.issuer, phone=request.phone, code=request.code))

    def LoginWithPassword(self, request: user_pb2.LoginWithPasswordRequest,
                          context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        return _login_response(service.login_with_password(self.uow(), self.issuer, self.passwords,
                                                           phone=request.phone, password=request.password))

    def LoginWithWechat(self, request: user_pb2.LoginWithWechatRequest,
                        context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        return _login_response(service.login_with_wechat(self.uow(), self.wechat, self.issuer, code=request.code))

    def BindWechat(self, request: user_pb2.BindWechatRequest,
                   context: grpc.ServicerContext) -> user_pb2.WechatBinding:
        service.bind_wechat(self.uow(), self.wechat, user_id=require_caller().user_id, code=request.code)
        return user_pb2.WechatBinding(wechat_bound=True)

    def UnbindWechat(self, request: user_pb2.UnbindWechatRequest,
                     context: grpc.ServicerContext) -> user_pb2.WechatBinding:
        service.unbind_wechat(self.uow(), user_id=require_caller().user_id)
        return user_pb2.WechatBinding(wechat_bound=False)


def _login_response(result: LoginResult) -> user_pb2.LoginResponse:
    user = result.user
    return user_pb2.LoginResponse(
        access_token=result.access_token, refresh_token=result.refresh_token, expires_in=result.expires_in,
        is_new_user=result.is_new_user,
        user=user_pb2.User(id=user.id or 0, phone_masked=mask_phone(user.phone) if user.phone else "", nickname=user.nickname,
                           avatar_url=user.avatar_url, roles=sorted(result.roles)),
    )
