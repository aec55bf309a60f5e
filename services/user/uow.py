"""What the user use cases need from storage: repository protocols and the user unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.common.uow import UnitOfWork
from services.user.domain import RefreshToken, SmsCode, User, WechatAccount


class UserRepository(Protocol):
    def add(self, user: User) -> None:
        """Store a new user and give it its id; Conflict PHONE_TAKEN if the phone is taken meanwhile."""

    def by_phone(self, phone: str) -> User | None: ...

    def get(self, user_id: int) -> User | None: ...

    def count(self) -> int: ...


class SmsCodeRepository(Protocol):
    def add(self, code: SmsCode) -> None: ...

    def lock_phone(self, phone: str) -> None:
        """Hold the phone's lock until the transaction ends: send limits then hold under concurrency."""

    def latest(self, phone: str, purpose: str, *, lock: bool = False) -> SmsCode | None:
        """The newest code for phone and purpose; `lock` serialises concurrent redemptions."""

    def sent_since(self, phone: str, since: datetime) -> int: ...


class RefreshTokenRepository(Protocol):
    def add(self, token: RefreshToken) -> None: ...


class WechatAccountRepository(Protocol):
    def add(self, account: WechatAccount) -> None:
        """Store a binding; Conflict WECHAT_BOUND_JUST_NOW if that WeChat or that user was bound meanwhile."""

    def by_openid(self, appid: str, openid: str) -> WechatAccount | None: ...

    def of_user(self, user_id: int) -> WechatAccount | None: ...

    def remove(self, account: WechatAccount) -> None: ...


class UserUnitOfWork(UnitOfWork):
    """The user service's unit of work; its repositories are set on entering it."""

    users: UserRepository
    sms_codes: SmsCodeRepository
    refresh_tokens: RefreshTokenRepository
    wechat_accounts: WechatAccountRepository
