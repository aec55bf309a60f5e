"""User use cases: each opens the unit of work, works on the domain, commits."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mall.events.v1.user_events_pb2 import UserRegistered

from services.common import formats
from services.common.db import utcnow
from services.common.errors import Conflict, DomainError, InvalidInput, NotFound, Unauthenticated
from services.common.events import timestamp
from services.user.domain import (
    SMS_CODE_TTL,
    SMS_RESEND_AFTER,
    LoginResult,
    RefreshToken,
    SmsCode,
    User,
    WechatAccount,
    validate_password,
    validate_phone,
)
from services.user.passwords import Passwords
from services.user.sms import SmsSender
from services.user.tokens import TokenIssuer, token_hash
from services.user.uow import UserUnitOfWork
from services.user.wechat import WechatSession


@dataclass(frozen=True)
class SentCode:
    expires_in: int
    resend_after: int
    dev_code: str  # "" unless the SMS provider is the dev console


def send_sms_code(uow: UserUnitOfWork, sms: SmsSender, issuer: TokenIssuer, *, phone: str, purpose: str,
                  now: datetime | None = None) -> SentCode:
    """Issue a 6-digit code for `purpose` and send it; at most one a minute and ten a day per phone."""
    now = now or utcnow()
    phone = validate_phone(phone)
    code = f"{secrets.randbelow(10**6):06d}"
    with uow:
        uow.sms_codes.lock_phone(phone)
        new_code = SmsCode.issue(phone=phone, purpose=purpose, code_hash=issuer.sms_code_hash(phone, code), now=now,
                                 previous=uow.sms_codes.latest(phone, purpose),
                                 sent_today=uow.sms_codes.sent_since(phone, now - timedelta(days=1)))
        uow.sms_codes.add(new_code)
        sms.send_code(phone, code, purpose)  # before commit: a code that was never sent is never stored
        uow.commit()
    return SentCode(expires_in=int(SMS_CODE_TTL.total_seconds()),
                    resend_after=int(SMS_RESEND_AFTER.total_seconds()),
                    dev_code=code if sms.reveals_code else "")


def login_with_sms(uow: UserUnitOfWork, issuer: TokenIssuer, *, phone: str, code: str,
                   now: datetime | None = None) -> LoginResult:
    """Redeem a login code; the first login registers the shopper and emits user-registered."""
    now = now or utcnow()
    phone = validate_phone(phone)
    if not formats.SMS_CODE_PATTERN.fullmatch(code or ""):
        raise InvalidInput("SMS_CODE_INVALID", "the code must be 6 digits", details={"code": "invalid"})
    with uow:
        sms_code = uow.sms_codes.latest(phone, "login", lock=True)
        if sms_code is None:
            raise InvalidInput("SMS_CODE_INVALID", "no code was sent to this phone; ask for one first")
        try:
            sms_code.redeem(issuer.sms_code_hash(phone, code), now)
        except DomainError:
            uow.commit()  # the failed try counts against the code
            raise
        user = uow.users.by_phone(phone)
        is_new_user = user is None
        if user is None:
            user = User.register(phone, now)
            uow.users.add(user)
            assert user.id is not None
            uow.publish(UserRegistered(user_id=user.id, channel="sms", registered_at=timestamp(now)),
                        aggregate_id=str(user.id))
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=False), now,
                                is_new_user=is_new_user)
        uow.commit()
    return result


def login_with_password(uow: UserUnitOfWork, issuer: TokenIssuer, passwords: Passwords, *, phone: str,
                        password: str, now: datetime | None = None) -> LoginResult:
    """Log in with phone and password; one answer for unknown phone and wrong password."""
    now = now or utcnow()
    phone = validate_phone(phone)
    with uow:
        user = uow.users.by_phone(phone)
        if not passwords.verify(user.password_hash if user else None, password) or user is None:
            raise Unauthenticated("INVALID_CREDENTIALS", "phone or password is wrong")
        assert user.password_hash is not None
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash(password)
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=True), now,
                                is_new_user=False)
        uow.commit()
    return result


def create_admin(uow: UserUnitOfWork, passwords: Passwords, *, phone: str, password: str,
                 now: datetime | None = None) -> User:
    """Create a staff account with the admin role, or grant it (and set the password) to an existing one."""
    now = now or utcnow()
    phone = validate_phone(phone)
    validate_password(password)
    with uow:
        user = uow.users.by_phone(phone)
        if user is None:
            user = User(phone=phone, created_at=now, nickname="管理员")
            uow.users.add(user)
        user.grant("admin")
        user.password_hash = passwords.hash(password)
        uow.commit()
    return user


def _start_session(uow: UserUnitOfWork, issuer: TokenIssuer, user: User, roles: frozenset[str], now: datetime, *,
                   is_new_user: bool) -> LoginResult:
    """A new refresh-token family and a fresh access token for `user`, carrying `roles`."""
    assert user.id is not None
    refresh = issuer.refresh_token()
    uow.refresh_tokens.add(RefreshToken(user_id=user.id, family_id=str(uuid.uuid4()), token_hash=token_hash(refresh),
                                        created_at=now, expires_at=now + issuer.refresh_ttl,
                                        roles=",".join(sorted(roles))))
    return LoginResult(user=user, roles=roles, access_token=issuer.access_token(user, roles, now),
                       refresh_token=refresh, expires_in=int(issuer.access_ttl.total_seconds()),
                       is_new_user=is_new_user)



class WechatLogin(Protocol):
    """What the use cases need of WeChat (services.user.wechat.WechatAuth in production)."""

    @property
    def appid(self) -> str: ...

    def code2session(self, code: str) -> WechatSession: ...


def login_with_wechat(uow: UserUnitOfWork, wechat: WechatLogin, issuer: TokenIssuer, *, code: str,
                      now: datetime | None = None) -> LoginResult:
    """Log in with a wx.login code; the first login registers a shopper (no phone yet) and emits user-registered.

    WeChat is asked before the transaction opens: no database lock waits on its answer. The
    session key it returns is not kept: nothing here decrypts WeChat user data.
    """
    now = now or utcnow()
    session = wechat.code2session(code)
    with uow:
        account = uow.wechat_accounts.by_openid(wechat.appid, session.openid)
        user = uow.users.get(account.user_id) if account is not None else None
        is_new_user = user is None
        if user is None:
            user = User.register_wechat(session.openid, now)
            uow.users.add(user)
            assert user.id is not None
            uow.wechat_accounts.add(WechatAccount(user_id=user.id, appid=wechat.appid, openid=session.openid,
                                                  unionid=session.unionid, bound_at=now))
            uow.publish(UserRegistered(user_id=user.id, channel="wechat", registered_at=timestamp(now)),
                        aggregate_id=str(user.id))
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=False), now,
                                is_new_user=is_new_user)
        uow.commit()
    return result


def bind_wechat(uow: UserUnitOfWork, wechat: WechatLogin, *, user_id: int, code: str,
                now: datetime | None = None) -> WechatAccount:
    """Bind the WeChat of a wx.login code to the user; binding the same one again changes nothing."""
    now = now or utcnow()
    session = wechat.code2session(code)
    with uow:
        user = _existing_user(uow, user_id)
        bound = uow.wechat_accounts.by_openid(wechat.appid, session.openid)
        if bound is not None and bound.user_id == user_id:
            return bound
        if bound is not None:
            raise Conflict("WECHAT_BOUND_ELSEWHERE", "this WeChat account is bound to another account")
        if uow.wechat_accounts.of_user(user_id) is not None:
            raise Conflict("WECHAT_ALREADY_BOUND", "this account is bound to another WeChat; unbind it first")
        account = WechatAccount(user_id=user.id or user_id, appid=wechat.appid, openid=session.openid,
                                unionid=session.unionid, bound_at=now)
        uow.wechat_accounts.add(account)
        uow.commit()
    return account


def unbind_wechat(uow: UserUnitOfWork, *, user_id: int) -> None:
    """Remove the user's WeChat binding, unless it is their only way to log in."""
    with uow:
        user = _existing_user(uow, user_id)
        account = uow.wechat_accounts.of_user(user_id)
        if account is None:
            raise NotFound("WECHAT_NOT_BOUND", "this account has no WeChat bound")
        WechatAccount.check_can_unbind(user)
        uow.wechat_accounts.remove(account)
        uow.commit()


def _existing_user(uow: UserUnitOfWork, user_id: int) -> User:
    user = uow.users.get(user_id)
    if user is None:  # a token outliving its account
        raise NotFound("USER_NOT_FOUND", "this account no longer exists")
    return user
