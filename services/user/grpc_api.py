"""UserService servicer: protobuf in, use case, protobuf out. Errors are mapped by the interceptor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

import grpc
from mall.user.v1 import user_pb2, user_pb2_grpc

from services.common.auth import STAFF_ROLES, USER_FINDERS, Role, require_caller, require_service
from services.common.errors import DomainError, ErrorKind, Forbidden, InvalidInput, NotFound
from services.common.events import timestamp
from services.common.grpc_server import page
from services.common.logs import mask_phone
from services.user import service
from services.user.domain import (
    UNSET,
    Address,
    AddressFields,
    LoginResult,
    ProfileChanges,
    User,
    UserSearch,
    VerifiedIdentity,
)
from services.user.identity import IdentityChecker, IdentityVault
from services.user.passwords import Passwords
from services.user.sms import SmsSender
from services.user.tokens import TokenIssuer
from services.user.uow import UserUnitOfWork

# Staff who find users: those who search orders by user (order service ORDER_STAFF) and admins who set roles.


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, uow: Callable[[], UserUnitOfWork], sms: SmsSender, issuer: TokenIssuer,
                 passwords: Passwords, identity_checker: IdentityChecker, vault: IdentityVault,
                 wechat: service.WechatLogin | None = None) -> None:
        self.uow = uow
        self.sms = sms
        self.issuer = issuer
        self.passwords = passwords
        self.identity_checker = identity_checker
        self.vault = vault
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
                                                           phone=request.phone, password=request.password,
                                                           new_password=request.new_password,
                                                           sms_code=request.sms_code))

    def LoginWithWechat(self, request: user_pb2.LoginWithWechatRequest,
                        context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        return _login_response(service.login_with_wechat(self.uow(), self.wechat, self.issuer, code=request.code))

    def BindWechat(self, request: user_pb2.BindWechatRequest,
                   context: grpc.ServicerContext) -> user_pb2.WechatBinding:
        service.bind_wechat(self.uow(), self.wechat, self.issuer, user_id=require_caller().user_id, code=request.code,
                            sms_code=request.sms_code)
        return user_pb2.WechatBinding(wechat_bound=True)

    def UnbindWechat(self, request: user_pb2.UnbindWechatRequest,
                     context: grpc.ServicerContext) -> user_pb2.WechatBinding:
        caller = require_caller()
        service.unbind_wechat(self.uow(), self.issuer, user_id=caller.user_id, sms_code=request.sms_code,
                              keep_session=caller.session_id)
        return user_pb2.WechatBinding(wechat_bound=False)

    def ListHistory(self, request: user_pb2.ListHistoryRequest,
                    context: grpc.ServicerContext) -> user_pb2.ListHistoryResponse:
        viewed = service.list_history(self.uow(), user_id=require_caller().user_id)
        return user_pb2.ListHistoryResponse(products=[
            user_pb2.ViewedProduct(product_id=v.product_id, viewed_at=timestamp(v.viewed_at)) for v in viewed])

    def ClearHistory(self, request: user_pb2.ClearHistoryRequest,
                     context: grpc.ServicerContext) -> user_pb2.ClearHistoryResponse:
        return user_pb2.ClearHistoryResponse(cleared=service.clear_history(self.uow(), user_id=require_caller().user_id))

    def RefreshSession(self, request: user_pb2.RefreshSessionRequest,
                       context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        return _login_response(service.refresh_session(self.uow(), self.issuer, refresh_token=request.refresh_token))

    def Logout(self, request: user_pb2.LogoutRequest, context: grpc.ServicerContext) -> user_pb2.LogoutResponse:
        return user_pb2.LogoutResponse(sessions_ended=service.logout(self.uow(), self.issuer,
                                                                     refresh_token=request.refresh_token))

    def LogoutAll(self, request: user_pb2.LogoutAllRequest, context: grpc.ServicerContext) -> user_pb2.LogoutResponse:
        return user_pb2.LogoutResponse(sessions_ended=service.logout_all(self.uow(), self.issuer,
                                                                         user_id=require_caller().user_id))

    def ChangePassword(self, request: user_pb2.ChangePasswordRequest,
                       context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        return _login_response(service.change_password(
            self.uow(), self.issuer, self.passwords, user_id=require_caller().user_id,
            current_password=request.current_password if request.HasField("current_password") else None,
            sms_code=request.sms_code if request.HasField("sms_code") else None, new_password=request.new_password))

    def ResetPassword(self, request: user_pb2.ResetPasswordRequest,
                      context: grpc.ServicerContext) -> user_pb2.LogoutResponse:
        return user_pb2.LogoutResponse(sessions_ended=service.reset_password(
            self.uow(), self.issuer, self.passwords, phone=request.phone, code=request.code,
            new_password=request.new_password))

    def GetProfile(self, request: user_pb2.GetProfileRequest, context: grpc.ServicerContext) -> user_pb2.Profile:
        return _profile(service.get_profile(self.uow(), user_id=require_caller().user_id))

    def UpdateProfile(self, request: user_pb2.UpdateProfileRequest,
                      context: grpc.ServicerContext) -> user_pb2.Profile:
        def sent(name: str) -> str | None:
            return getattr(request, name) if request.HasField(name) else None
        birthday: date | None | object = UNSET
        if request.HasField("birthday"):
            birthday = _parse_date(request.birthday) if request.birthday else None
        changes = ProfileChanges(nickname=sent("nickname"), avatar_url=sent("avatar_url"), gender=sent("gender"),
                                 birthday=birthday, region=sent("region"))
        return _profile(service.update_profile(self.uow(), user_id=require_caller().user_id, changes=changes))

    def ListAddresses(self, request: user_pb2.ListAddressesRequest,
                      context: grpc.ServicerContext) -> user_pb2.ListAddressesResponse:
        found = service.list_addresses(self.uow(), user_id=require_caller().user_id)
        return user_pb2.ListAddressesResponse(addresses=[_address(a) for a in found])

    def AddAddress(self, request: user_pb2.AddAddressRequest, context: grpc.ServicerContext) -> user_pb2.Address:
        return _address(service.add_address(self.uow(), user_id=require_caller().user_id,
                                            fields=_address_fields(request.fields), is_default=request.is_default))

    def ChangeAddress(self, request: user_pb2.ChangeAddressRequest,
                      context: grpc.ServicerContext) -> user_pb2.Address:
        return _address(service.change_address(self.uow(), user_id=require_caller().user_id,
                                               address_id=request.address_id, fields=_address_fields(request.fields),
                                               is_default=request.is_default if request.HasField("is_default")
                                               else None))

    def DeleteAddress(self, request: user_pb2.DeleteAddressRequest,
                      context: grpc.ServicerContext) -> user_pb2.DeleteAddressResponse:
        service.delete_address(self.uow(), user_id=require_caller().user_id, address_id=request.address_id)
        return user_pb2.DeleteAddressResponse()

    def VerifyIdentity(self, request: user_pb2.VerifyIdentityRequest,
                       context: grpc.ServicerContext) -> user_pb2.Verification:
        return _verification(service.verify_identity(self.uow(), self.identity_checker, self.vault,
                                                     user_id=require_caller().user_id, real_name=request.real_name,
                                                     id_number=request.id_number))

    def GetVerification(self, request: user_pb2.GetVerificationRequest,
                        context: grpc.ServicerContext) -> user_pb2.Verification:
        _require_owner_or(request.user_id, "USER_NOT_FOUND", "no such user")
        return _verification(service.get_verification(self.uow(), self.vault, user_id=request.user_id))

    def GetBuyer(self, request: user_pb2.GetBuyerRequest, context: grpc.ServicerContext) -> user_pb2.Buyer:
        _require_owner_or(request.user_id, "ADDRESS_NOT_FOUND", "no such address")
        address = service.buyer_address(self.uow(), user_id=request.user_id, address_id=request.address_id)
        return user_pb2.Buyer(verified=True, address=_address(address)) if address else user_pb2.Buyer(verified=False)

    def GetWechatPayer(self, request: user_pb2.GetWechatPayerRequest,
                       context: grpc.ServicerContext) -> user_pb2.WechatPayer:
        _require_owner_or(request.user_id, "USER_NOT_FOUND", "no such user", roles=PAYEE_STAFF,
                          services=PAYEE_READERS)
        account = service.wechat_payer(self.uow(), user_id=request.user_id)
        return user_pb2.WechatPayer(appid=account.appid, openid=account.openid) if account else user_pb2.WechatPayer()

    def GetPayeeName(self, request: user_pb2.GetPayeeNameRequest,
                     context: grpc.ServicerContext) -> user_pb2.PayeeName:
        require_service(*PAYEE_READERS)
        return user_pb2.PayeeName(real_name=service.payee_name(self.uow(), self.vault, user_id=request.user_id) or "")

    def HasPhone(self, request: user_pb2.HasPhoneRequest,
                 context: grpc.ServicerContext) -> user_pb2.HasPhoneResponse:
        require_service(*PHONE_CHECKERS)
        return user_pb2.HasPhoneResponse(has_phone=service.has_phone(self.uow(), user_id=request.user_id))

    def BindPhone(self, request: user_pb2.BindPhoneRequest, context: grpc.ServicerContext) -> user_pb2.Profile:
        return _profile(service.bind_phone(self.uow(), self.issuer, self.wechat, user_id=require_caller().user_id,
                                           phone=request.phone, code=request.code,
                                           wechat_code=request.wechat_code or None))

    def SetStaffPassword(self, request: user_pb2.SetStaffPasswordRequest,
                         context: grpc.ServicerContext) -> user_pb2.LogoutResponse:
        actor = require_caller(Role.ADMIN)
        return user_pb2.LogoutResponse(sessions_ended=service.set_staff_password(
            self.uow(), self.issuer, self.passwords, actor_id=actor.user_id, user_id=request.user_id,
            new_password=request.new_password))

    def SearchUsers(self, request: user_pb2.SearchUsersRequest,
                    context: grpc.ServicerContext) -> user_pb2.SearchUsersResponse:
        actor = require_caller(*USER_FINDERS)
        search = UserSearch(phone=request.phone, user_id=request.user_id, nickname_prefix=request.nickname_prefix,
                            **page(request))
        found, total = service.search_users(self.uow(), self.vault, actor_id=actor.user_id, search=search)
        return user_pb2.SearchUsersResponse(users=[_user(user, user.role_set) for user in found], total=total)

    def SetUserRoles(self, request: user_pb2.SetUserRolesRequest,
                     context: grpc.ServicerContext) -> user_pb2.SetUserRolesResponse:
        actor = require_caller(Role.ADMIN)
        done = service.set_roles(self.uow(), self.issuer, actor_id=actor.user_id, user_id=request.user_id,
                                 roles=list(request.roles))
        return user_pb2.SetUserRolesResponse(user=_user(done.user, done.user.role_set),
                                             password_cleared=done.password_cleared,
                                             sessions_ended=done.sessions_ended)


# Who reads a shopper's WeChat payer as itself: the member service pays withdrawals out to it, also from its payout
# job (a transfer WeChat Pay never received is sent again), which has no shopper or staff token to pass on; and only
# as itself their real name, which a transfer of 2,000 yuan or more names its payee by.
PAYEE_READERS = ("member",)
# The staff who read a shopper's WeChat payer: finance, whose approval of a withdrawal the member service pays out
# with their token (DecideWithdrawal takes finance alone). No other staff route reads it.
PAYEE_STAFF = (Role.FINANCE,)
# Who asks, as itself, whether a user has bound a phone: the member service, whose order-paid consumer makes a buyer
# whose spend reaches the threshold a member only then (M1), with no shopper's token to ask with.
PHONE_CHECKERS = ("member",)


def _require_owner_or(user_id: int, code: str, message: str, *, roles: Iterable[str] = (),
                      services: tuple[str, ...] = ()) -> None:
    """user_id's data is read by its owner, by staff holding one of `roles` and by `services` calling as themselves.
    Another shopper's is answered as not found (no BOLA); a staff member without those roles is FORBIDDEN.

    A shopper's buyer (with its address) and verification (GetBuyer, GetVerification) name no roles and no service:
    their only callers act for the owner (the gateway's /me routes, the order service quoting and placing the
    caller's own order with the caller's token), and no staff route reads them, so a staff token used directly
    against this service gets no shopper's address or phone unmasked (finance has no user search at all)."""
    caller = require_caller(services=services)
    if caller.is_service or caller.user_id == user_id or caller.has_any_role(*roles):
        return
    if caller.has_any_role(*STAFF_ROLES):
        raise Forbidden("FORBIDDEN", "your account may not do this")
    raise NotFound(code, message)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("PROFILE_INVALID", "birthday must be YYYY-MM-DD",
                           details={"birthday": "must be YYYY-MM-DD"}) from None


def _user(user: User, roles: frozenset[str]) -> user_pb2.User:
    return user_pb2.User(id=user.id or 0, phone_masked=_masked(user.phone), nickname=user.nickname,
                         avatar_url=user.avatar_url, roles=sorted(roles), created_at=timestamp(user.created_at))


def _masked(phone: str | None) -> str:
    return mask_phone(phone) if phone else ""  # a WeChat-only account has no phone yet


def _login_response(result: LoginResult) -> user_pb2.LoginResponse:
    return user_pb2.LoginResponse(access_token=result.access_token, refresh_token=result.refresh_token,
                                  expires_in=result.expires_in, is_new_user=result.is_new_user,
                                  user=_user(result.user, result.roles))


def _profile(profile: service.Profile) -> user_pb2.Profile:
    user = profile.user
    return user_pb2.Profile(id=user.id or 0, phone_masked=_masked(user.phone), nickname=user.nickname,
                            avatar_url=user.avatar_url, gender=user.gender,
                            birthday=user.birthday.isoformat() if user.birthday else "", region=user.region,
                            identity_verified=profile.identity_verified, wechat_bound=profile.wechat_bound)


def _address_fields(fields: user_pb2.AddressFields) -> AddressFields:
    return AddressFields(receiver_name=fields.receiver_name, receiver_phone=fields.receiver_phone,
                         province=fields.province, city=fields.city, district=fields.district, detail=fields.detail)


def _address(address: Address) -> user_pb2.Address:
    return user_pb2.Address(id=address.id or 0, user_id=address.user_id, receiver_name=address.receiver_name,
                            receiver_phone=address.receiver_phone, province=address.province, city=address.city,
                            district=address.district, detail=address.detail, is_default=address.is_default)


def _verification(found: VerifiedIdentity | None) -> user_pb2.Verification:
    if found is None:
        return user_pb2.Verification(verified=False)
    return user_pb2.Verification(verified=True, real_name_masked=found.real_name_masked,
                                 id_number_masked=found.id_number_masked, verified_at=timestamp(found.verified_at))
