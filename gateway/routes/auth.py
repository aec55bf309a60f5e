"""Authentication: SMS codes, SMS and password login, session refresh and logout, password reset."""

from __future__ import annotations

from typing import Literal

import grpc
from flask import Blueprint, current_app, request
from flask.blueprints import BlueprintSetupState
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import PUBLIC, Body, Reply, omittable, operation, service
from gateway.config import GatewaySettings
from gateway.errors import ApiError
from gateway.metrics import RATE_LIMITED, SMS_CODES, SMS_DAILY_BUDGET
from gateway.ratelimit import DAY, FailureGuard, Limit, client_values
from services.common import formats
from services.common.formats import anchored

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

Phone = Field(pattern=anchored(formats.PHONE), description="mainland mobile number: 13800138000")
# Every new password (a reset, a change, one an admin sets): the user service judges it by formats.PASSWORD_RULE and
# answers 400 PASSWORD_TOO_WEAK for any other, a short one too (one code for the one rule); the gateway bounds its
# length (nothing longer is ever a password) and documents the whole rule, minLength included.
NewPassword = Field(max_length=formats.PASSWORD_MAX_LENGTH, json_schema_extra={"minLength": formats.PASSWORD_MIN_LENGTH},
                    description=f"{formats.PASSWORD_RULE} (400 PASSWORD_TOO_WEAK otherwise)")
SmsPurpose = Literal[formats.SMS_PURPOSES]  # type: ignore[valid-type]


class SmsCodeRequest(Body):
    phone: str = Phone
    purpose: SmsPurpose = Field(description="login (POST /auth/login/sms, which registers a new phone); signup, the "
                                            "same code as login; reset (POST /auth/password/reset); bind (POST "
                                            "/me/wechat, POST /me/phone); unbind (DELETE /me/wechat)")


class SmsCodeSent(Reply):
    """A code was sent."""

    expires_in: int = Field(description="seconds the code stays valid")
    resend_after: int = Field(description="seconds before another code for this phone and purpose may be asked for")
    dev_code: str | None = Field(None, exclude_if=lambda v: v is None,
                                 description="only with the dev console SMS provider")


class SmsLogin(Body):
    phone: str = Phone
    code: str = Field(pattern=anchored(formats.SMS_CODE), description="the 6-digit code")


class PasswordLogin(Body):
    phone: str = Phone
    password: str = Field(min_length=1, max_length=128)
    # Both only after 403 PASSWORD_CHANGE_REQUIRED (a password an admin set): see login_password.
    new_password: str = omittable(max_length=formats.PASSWORD_MAX_LENGTH,
                                  json_schema_extra={"minLength": formats.PASSWORD_MIN_LENGTH},
                                  description=f"{formats.PASSWORD_RULE} (400 PASSWORD_TOO_WEAK otherwise)")
    sms_code: str = omittable(pattern=anchored(formats.SMS_CODE),
                              description='a 6-digit code of purpose "reset" sent to my phone')


class UserSummary(Reply):
    """A user as the user themself (or staff) sees it: the phone is masked."""

    id: int
    phone: str = Field(description="masked, 138****8000")
    nickname: str
    avatar_url: str
    roles: list[str]

    @classmethod
    def from_proto(cls, user: user_pb2.User) -> UserSummary:
        return cls(id=user.id, phone=user.phone_masked, nickname=user.nickname, avatar_url=user.avatar_url,
                   roles=list(user.roles))


class Session(Reply):
    """A logged-in session: a short-lived access token and a refresh token."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    is_new_user: bool
    user: UserSummary

    @classmethod
    def from_proto(cls, reply: user_pb2.LoginResponse) -> Session:
        return cls(access_token=reply.access_token, refresh_token=reply.refresh_token, expires_in=reply.expires_in,
                   is_new_user=reply.is_new_user, user=UserSummary.from_proto(reply.user))


# Every window slides: a limit of 20 an hour holds in any 60 minutes, so no burst fits across a window edge.
# Per IP generous (shoppers share carrier NAT addresses), per phone from each address tight; the
# user service also allows one SMS code a minute per phone and purpose, ten a day per phone (every purpose
# counted together), and five tries per code
# (so SMS logins need no per-account ceiling here). SMS codes have no per-phone limit here: it
# would count requests the service refused, so a stranger's burst from a few addresses would lock
# the owner out for the hour. The per-phone budget lives only in the user service, which counts
# codes actually sent, and those reach the owner's phone. Password logins have a ceiling that
# cannot lock the owner out: once 20 failed in the last hour, addresses that have not logged into
# the account in the last 30 days are refused until the oldest of those failures is an hour old;
# the owner's usual addresses are not.
# While Redis is unreachable every limit here is counted in each gateway worker's memory. SMS codes
# are still sent then, not refused with 503: SMS is how shoppers log in and register, so refusing
# would turn a store outage into a login outage, while the per-worker counts keep the exposure to
# (workers x replicas) times these caps and the daily budget, and the user service's per-phone
# limits (in its database) hold throughout; RateLimitStoreUnreachable pages meanwhile.
SMS_CODE_LIMITS = (Limit("ip", 20, 60), Limit("phone+ip", 10, 3600))  # every request: floods
# An IPv6 "address" is a /64 and a site's /48 holds 65,536 of them (tunnel brokers hand /48s out free), while each
# password try costs the user service an argon2id hash (~150 ms of CPU): a site is capped too, five addresses' worth.
LOGIN_LIMITS = (Limit("ip", 30, 60), Limit("ipv6_48", 150, 60), Limit("phone+ip", 10, 300))
WECHAT_LOGIN_LIMITS = LOGIN_LIMITS[:2]  # no phone: a code2session call to WeChat each
PASSWORD_GUARD = FailureGuard(failures=Limit("phone", 20, 3600), trusted=Limit("phone+ip", 1, 30 * DAY))
SMS_BUDGET_EXHAUSTED = "SMS_DAILY_BUDGET_EXHAUSTED"

# Each SMS is paid for, so codes sent are capped a day: per address (an IPv6 site, whose /48 holds
# 65,536 /64 "addresses", per /48 too) and for all clients together (GATEWAY_SMS_DAILY_BUDGET).
# They count codes the user service sent, never requests: junk or refused requests from a carrier
# NAT address must not use up the codes of every shopper behind it. (Checked before the send and
# counted after it, so requests in flight together may pass a cap by a few; the per-minute limit
# bounds how many.) Caps strangers can fill must not become a login outage, so the tight ones hold
# only codes to phones that have not logged in here (SMS or password) in the last 60 to 90 days
# (gateway/knownphones.py), which is what an attacker paying with our SMS bill sends to: codes to
# such phones stop at 70% of the budget and at SMS_ADDRESS_CAPS, while a returning shopper's code
# is held by the whole budget, the looser KNOWN_PHONE_ADDRESS_CAPS (counted apart, so returning
# shoppers behind a NAT address do not use up new shoppers' codes; loose enough for a busy carrier
# NAT, tight enough that someone who once logged in on many phones of their own cannot spend the
# budget from one address) and the user service's ten a day per phone.
SMS_ADDRESS_CAPS = (Limit("ip", 200, DAY), Limit("ipv6_48", 1000, DAY))
KNOWN_PHONE_ADDRESS_CAPS = (Limit("ip", 2000, DAY), Limit("ipv6_48", 10_000, DAY))
NEW_PHONES_BUDGET_SHARE = 0.7


def sms_budget(settings: GatewaySettings, *, share: float = 1.0) -> Limit:
    """The day's SMS codes for all clients together, counted as the user service sends them.

    A share of it is the same log with a lower ceiling (a bucket is named by key and window, not
    count), so codes to new phones can be stopped early while every code counts once.
    """
    return Limit("global", max(1, int(settings.sms_daily_budget * share)), DAY)


@bp.record_once
def _publish_sms_budget(state: BlueprintSetupState) -> None:
    SMS_DAILY_BUDGET.set(state.app.extensions["rate_limiter"].allowed(sms_budget(state.app.extensions["settings"])))


def _remember_login(phone: str) -> None:
    """Mark the phone as a returning shopper's: its codes skip the caps strangers can fill."""
    current_app.extensions["known_phones"].remember(phone)


def _caps_text(caps: tuple[Limit, ...]) -> str:
    return ", ".join(f"{cap.count} per {cap.key}" for cap in caps)


SMS_CAPS_DESCRIPTION = (
    "Codes sent (not requests) in any 24 hours to a phone that has not logged in (SMS or password) in the last "
    f"60 to 90 days: at most {_caps_text(SMS_ADDRESS_CAPS)} (429 RATE_LIMITED with Retry-After), and "
    f"{NEW_PHONES_BUDGET_SHARE:.0%} of GATEWAY_SMS_DAILY_BUDGET (default 10000) for all clients together; the rest "
    f"of the budget is kept for phones that logged in lately, whose codes are capped apart at "
    f"{_caps_text(KNOWN_PHONE_ADDRESS_CAPS)}. Past the budget, 429 {SMS_BUDGET_EXHAUSTED} with Retry-After.")


@bp.post("/sms-codes")
@operation(summary="Send a 6-digit SMS verification code", tag="auth", access=PUBLIC, limits=SMS_CODE_LIMITS,
           description=SMS_CAPS_DESCRIPTION, body=SmsCodeRequest, responses={202: SmsCodeSent})
def send_sms_code(body: SmsCodeRequest) -> tuple[SmsCodeSent, int]:
    limiter, endpoint = current_app.extensions["rate_limiter"], request.endpoint or ""
    settings = current_app.extensions["settings"]
    values = {"phone": body.phone} | client_values(request.remote_addr)
    returning = current_app.extensions["known_phones"].known(body.phone)
    caps, caps_endpoint = (KNOWN_PHONE_ADDRESS_CAPS, f"{endpoint}:known") if returning else (SMS_ADDRESS_CAPS, endpoint)
    for cap in caps:
        wait = limiter.full(caps_endpoint, cap, values)
        if wait is not None:
            RATE_LIMITED.labels(endpoint, cap.key).inc()
            raise ApiError.too_many_requests(wait)
    budget = sms_budget(settings)
    wait = limiter.full(endpoint, budget if returning else sms_budget(settings, share=NEW_PHONES_BUDGET_SHARE), values)
    if wait is not None:
        SMS_CODES.labels("budget_exhausted").inc()
        raise ApiError.too_many_requests(wait, SMS_BUDGET_EXHAUSTED, "the SMS codes of the day are all spent")
    sent = service(UserServiceStub).SendSmsCode(user_pb2.SendSmsCodeRequest(phone=body.phone, purpose=body.purpose))
    for cap in caps:  # codes sent only: one the user service refused costs nothing
        limiter.count(caps_endpoint, cap, values)
    limiter.count(endpoint, budget, values)
    SMS_CODES.labels("sent").inc()
    return SmsCodeSent(expires_in=sent.expires_in, resend_after=sent.resend_after, dev_code=sent.dev_code or None), 202


@bp.post("/login/sms")
@operation(summary="Log in (registering on first login) with phone and SMS code", tag="auth", access=PUBLIC,
           limits=LOGIN_LIMITS, body=SmsLogin, responses={200: Session})
def login_sms(body: SmsLogin) -> Session:
    reply = service(UserServiceStub).LoginWithSms(user_pb2.LoginWithSmsRequest(phone=body.phone, code=body.code))
    _remember_login(body.phone)
    return Session.from_proto(reply)


@bp.post("/login/password")
@operation(summary="Log in with phone and password (staff and shoppers who set one)", tag="auth", access=PUBLIC,
           description="Once 20 tries failed in the last hour, only addresses that logged into the account in "
                       "the last 30 days may try, until the oldest of those failures is an hour old (429 "
                       "RATE_LIMITED with Retry-After). A password an admin set starts no session: the right one "
                       "is answered 403 PASSWORD_CHANGE_REQUIRED, and the login is sent again with new_password and "
                       "a \"reset\" sms_code sent to the account's phone, which changes it and logs in (the admin who "
                       "set it does not hold the phone). Either field on any other login: 400 "
                       "PASSWORD_CHANGE_NOT_REQUIRED.",
           limits=LOGIN_LIMITS, body=PasswordLogin, responses={200: Session})
def login_password(body: PasswordLogin) -> Session:
    limiter, endpoint = current_app.extensions["rate_limiter"], request.endpoint or ""
    values = {"phone": body.phone} | client_values(request.remote_addr)
    admitted = PASSWORD_GUARD.admit(limiter, endpoint, values)
    if admitted.wait is not None:
        raise ApiError.too_many_requests(admitted.wait)
    try:
        reply = service(UserServiceStub).LoginWithPassword(
            user_pb2.LoginWithPasswordRequest(phone=body.phone, password=body.password,
                                              new_password=body.new_password or "", sms_code=body.sms_code or ""))
    except Exception as exc:
        failed = isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED
        PASSWORD_GUARD.record(limiter, endpoint, values, admitted, succeeded=False if failed else None)
        raise
    PASSWORD_GUARD.record(limiter, endpoint, values, admitted, succeeded=True)
    _remember_login(body.phone)
    return Session.from_proto(reply)


class RefreshRequest(Body):
    refresh_token: str = Field(min_length=1, max_length=128, description="the refresh token of the last login or refresh")


class SessionsEnded(Reply):
    """Sessions were ended."""

    sessions_ended: int = Field(description="sessions (refresh-token families) that were still live")


class PasswordReset(Body):
    phone: str = Phone
    code: str = Field(pattern=anchored(formats.SMS_CODE), description='a 6-digit code of purpose "reset"')
    new_password: str = NewPassword


REFRESH_LIMITS = (Limit("ip", 60, 60),)


@bp.post("/refresh")
@operation(summary="Exchange a refresh token for a new session (the old refresh token is spent)", tag="auth",
           access=PUBLIC, limits=REFRESH_LIMITS, body=RefreshRequest, responses={200: Session},
           description="Refresh tokens rotate: presenting a spent one again ends that login's every session (401 "
                       "REFRESH_TOKEN_REUSED), its access tokens included (401 SESSION_ENDED); but a shopper's "
                       "presented again less than REFRESH_TOKEN_REUSE_GRACE_SECONDS (30) after its first use, before "
                       "a later token of the session was used (parallel refreshes, a retry after a lost answer), "
                       "gets another pair of the same session. A session carrying staff roles ends "
                       "STAFF_SESSION_MAX_HOURS after its password login however often it is refreshed "
                       "(401 REFRESH_TOKEN_EXPIRED: log in again with the password).")
def refresh(body: RefreshRequest) -> Session:
    return Session.from_proto(service(UserServiceStub).RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=body.refresh_token)))


@bp.post("/logout")
@operation(summary="Log out: end the session of this refresh token", tag="auth", access=PUBLIC,
           limits=REFRESH_LIMITS, body=RefreshRequest, responses={200: SessionsEnded},
           description="The session's access tokens (their `sid`) get 401 SESSION_ENDED from the next request on.")
def logout(body: RefreshRequest) -> SessionsEnded:
    reply = service(UserServiceStub).Logout(user_pb2.LogoutRequest(refresh_token=body.refresh_token))
    return SessionsEnded(sessions_ended=reply.sessions_ended)


@bp.post("/logout-all")
@operation(summary="Log out everywhere: end every session of my account", tag="auth", responses={200: SessionsEnded},
           description="Every access token of the account issued before it, this one included, gets 401 "
                       "SESSION_ENDED from the next request on.")
def logout_all() -> SessionsEnded:
    return SessionsEnded(sessions_ended=service(UserServiceStub).LogoutAll(user_pb2.LogoutAllRequest()).sessions_ended)


@bp.post("/password/reset")
@operation(summary="Forgotten password: set a new one with an SMS code (purpose reset); ends every session",
           tag="auth", access=PUBLIC, limits=LOGIN_LIMITS, body=PasswordReset, responses={200: SessionsEnded},
           description="Not for staff: an SMS code is not enough for staff powers, so a staff account is refused "
                       "with 403 STAFF_PASSWORD_BY_ADMIN (the code is spent); an admin sets staff passwords with "
                       "POST /admin/users/{id}/password.")
def reset_password(body: PasswordReset) -> SessionsEnded:
    reply = service(UserServiceStub).ResetPassword(
        user_pb2.ResetPasswordRequest(phone=body.phone, code=body.code, new_password=body.new_password))
    return SessionsEnded(sessions_ended=reply.sessions_ended)
