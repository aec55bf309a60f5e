"""User service tables, their mapping onto the domain classes, repositories and unit of work."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Self

from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, String, Table, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, registry

from services.common.db import BigId, UTCDateTime, serialize_on
from services.common.errors import Conflict
from services.common.uow import SqlUnitOfWork
from services.user.domain import RefreshToken, SmsCode, User, WechatAccount
from services.user.uow import UserUnitOfWork

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=True, unique=True),  # None: a WeChat-only account
    Column("nickname", String(64), nullable=False, default=""),
    Column("avatar_url", String(512), nullable=False, default=""),
    Column("password_hash", String(255), nullable=True),
    Column("roles", String(255), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

sms_codes = Table(
    "sms_codes", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("consumed_at", UTCDateTime, nullable=True),
    Index("ix_sms_codes_phone_purpose_created", "phone", "purpose", "created_at"),
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, index=True),
    Column("family_id", String(36), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("roles", String(255), nullable=False, default=""),
    Column("used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

wechat_accounts = Table(
    "wechat_accounts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, unique=True),  # one WeChat per user
    Column("appid", String(32), nullable=False),
    Column("openid", String(64), nullable=False),
    Column("unionid", String(64), nullable=True),
    Column("bound_at", UTCDateTime, nullable=False),
    UniqueConstraint("appid", "openid", name="uq_wechat_accounts_appid_openid"),  # one user per WeChat
)

mapper_registry = registry()
_mapping = threading.Lock()


def start_mappers() -> None:
    """Map the domain classes onto the tables (idempotent): build_app and database tests call it, never an import."""
    with _mapping:
        if mapper_registry.mappers:
            return
        mapper_registry.map_imperatively(User, users)
        mapper_registry.map_imperatively(SmsCode, sms_codes)
        mapper_registry.map_imperatively(RefreshToken, refresh_tokens)
        mapper_registry.map_imperatively(WechatAccount, wechat_accounts)


class SqlUserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user: User) -> None:
        self.session.add(user)
        try:
            self.session.flush()  # assigns the id the user-registered event needs
        except IntegrityError:  # the same phone registered a moment ago by another transaction
            raise Conflict("PHONE_TAKEN", "an account for this phone was created just now; try again") from None

    def by_phone(self, phone: str) -> User | None:
        return self.session.execute(select(User).where(users.c.phone == phone)).scalar_one_or_none()

    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def count(self) -> int:
        return self.session.execute(select(func.count()).select_from(users)).scalar_one()


class SqlSmsCodeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, code: SmsCode) -> None:
        self.session.add(code)

    def lock_phone(self, phone: str) -> None:
        """Hold the phone's lock until the transaction ends: send limits then hold under concurrency."""
        serialize_on(self.session, f"sms-codes:{phone}")

    def latest(self, phone: str, purpose: str, *, lock: bool = False) -> SmsCode | None:
        """The newest code for phone and purpose; `lock` serialises concurrent redemptions."""
        query = (select(SmsCode).where(sms_codes.c.phone == phone, sms_codes.c.purpose == purpose)
                 .order_by(sms_codes.c.created_at.desc(), sms_codes.c.id.desc()).limit(1))
        if lock:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def sent_since(self, phone: str, since: datetime) -> int:
        return self.session.execute(select(func.count()).select_from(sms_codes).where(
            sms_codes.c.phone == phone, sms_codes.c.created_at >= since)).scalar_one()


class SqlRefreshTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: RefreshToken) -> None:
        self.session.add(token)


class SqlWechatAccountRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, account: WechatAccount) -> None:
        self.session.add(account)
        try:
            self.session.flush()
        except IntegrityError:  # the same WeChat, or the same user, bound a moment ago by another transaction
            raise Conflict("WECHAT_BOUND_JUST_NOW", "this WeChat account was bound a moment ago; try again") from None

    def by_openid(self, appid: str, openid: str) -> WechatAccount | None:
        return self.session.execute(select(WechatAccount).where(
            wechat_accounts.c.appid == appid, wechat_accounts.c.openid == openid)).scalar_one_or_none()

    def of_user(self, user_id: int) -> WechatAccount | None:
        return self.session.execute(select(WechatAccount).where(
            wechat_accounts.c.user_id == user_id)).scalar_one_or_none()

    def remove(self, account: WechatAccount) -> None:
        self.session.delete(account)


class SqlUserUnitOfWork(SqlUnitOfWork, UserUnitOfWork):
    """The user unit of work on the service database (call start_mappers() first)."""

    def __enter__(self) -> Self:
        super().__enter__()
        self.users = SqlUserRepository(self.session)
        self.sms_codes = SqlSmsCodeRepository(self.session)
        self.refresh_tokens = SqlRefreshTokenRepository(self.session)
        self.wechat_accounts = SqlWechatAccountRepository(self.session)
        return self
