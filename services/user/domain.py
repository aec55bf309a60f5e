"""User domain: accounts and SMS verification codes. Knows nothing of gRPC, SQL or Kafka."""

from __future__ import annotations

import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common import formats
from services.common.errors import DomainError, InvalidInput, RateLimited

SMS_CODE_TTL = timedelta(minutes=5)
SMS_RESEND_AFTER = timedelta(seconds=60)
SMS_MAX_ATTEMPTS = 5
SMS_DAILY_LIMIT_PER_PHONE = 10
PASSWORD_MIN, PASSWORD_MAX = 8, 128


def validate_phone(phone: str) -> str:
    """A mainland China mobile number, 11 digits starting 13-19."""
    if not formats.PHONE_PATTERN.fullmatch(phone or ""):
        raise InvalidInput("PHONE_INVALID", "phone must be an 11-digit mainland mobile number",
                           details={"phone": "invalid"})
    return phone


def validate_password(password: str) -> str:
    """8-128 characters with at least one letter (any script) and one digit."""
    if not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX and any(c.isalpha() for c in password)
            and re.search(r"[0-9]", password)):
        raise InvalidInput("PASSWORD_TOO_WEAK",
                           f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters with letters and digits",
                           details={"password": "too weak"})
    return password


@dataclass(eq=False)
class User:
    """A shopper or staff account: by phone, or by WeChat alone (phone None) until one is bound."""

    phone: str | None
    created_at: datetime
    nickname: str = ""
    avatar_url: str = ""
    password_hash: str | None = None
    roles: str = ""  # comma-separated: "", "admin", "operator,finance", ...
    id: int | None = None

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)

    def session_roles(self, *, password_verified: bool) -> frozenset[str]:
        """Roles a new session may carry: staff roles only after the password, never from an SMS code.

        An SMS code proves control of a phone number, which is not enough for staff powers
        (SIM swaps, shared numbers); a staff member logging in by SMS gets a shopper session.
        """
        return self.role_set if password_verified else frozenset()

    def grant(self, role: str) -> None:
        self.roles = ",".join(sorted(self.role_set | {role}))

    @classmethod
    def register_wechat(cls, openid: str, now: datetime) -> User:
        """A new shopper who came through WeChat login: no phone yet."""
        return cls(phone=None, created_at=now, nickname=f"微信用户{openid[-4:]}")

    @classmethod
    def register(cls, phone: str, now: datetime) -> User:
        """A new shopper; the nickname defaults to one that does not reveal the number."""
        return cls(phone=validate_phone(phone), created_at=now, nickname=f"用户{phone[-4:]}")


@dataclass(eq=False)
class SmsCode:
    """One code sent to a phone for one purpose; single use, short-lived, few tries."""

    phone: str
    purpose: str
    code_hash: str
    created_at: datetime
    expires_at: datetime
    attempts: int = 0
    consumed_at: datetime | None = None
    id: int | None = None

    @classmethod
    def issue(cls, *, phone: str, purpose: str, code_hash: str, now: datetime,
              previous: SmsCode | None, sent_today: int) -> SmsCode:
        """A new code, unless the phone asked too recently or too often today."""
        if purpose not in formats.SMS_PURPOSES:
            raise InvalidInput("SMS_PURPOSE_INVALID", f"purpose must be one of {', '.join(formats.SMS_PURPOSES)}",
                               details={"purpose": "invalid"})
        if previous is not None and now < previous.created_at + SMS_RESEND_AFTER:
            wait = math.ceil((previous.created_at + SMS_RESEND_AFTER - now).total_seconds())
            raise RateLimited("SMS_RESEND_TOO_SOON", f"wait {wait}s before asking for another code",
                              details={"retry_after": wait})
        if sent_today >= SMS_DAILY_LIMIT_PER_PHONE:
            raise RateLimited("SMS_DAILY_LIMIT", "too many codes for this phone today; try tomorrow",
                              details={"retry_after": 3600})
        return cls(phone=phone, purpose=purpose, code_hash=code_hash, created_at=now,
                   expires_at=now + SMS_CODE_TTL)

    def redeem(self, code_hash: str, now: datetime) -> None:
        """Use the code. Every try counts, right or wrong; the caller must persist the attempt."""
        if self.consumed_at is not None or now >= self.expires_at:
            raise InvalidInput("SMS_CODE_EXPIRED", "the code has expired or was used; ask for a new one")
        if self.attempts >= SMS_MAX_ATTEMPTS:
            # Not a 429: waiting never unlocks the code, only a new code helps.
            raise InvalidInput("SMS_CODE_LOCKED", "too many wrong tries; ask for a new code")
        self.attempts += 1
        if not hmac.compare_digest(self.code_hash, code_hash):
            raise InvalidInput("SMS_CODE_INVALID", "the code is wrong", details={"code": "wrong"})
        self.consumed_at = now


@dataclass(eq=False)
class RefreshToken:
    """A refresh token (stored as a hash) in a rotation family started by one login."""

    user_id: int
    family_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    roles: str = ""  # the session's roles, comma-separated, carried over on refresh
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    id: int | None = None


@dataclass
class LoginResult:
    user: User
    roles: frozenset[str]
    access_token: str
    refresh_token: str
    expires_in: int
    is_new_user: bool = False


@dataclass(eq=False)
class WechatAccount:
    """A WeChat identity (openid within one mini-program) bound to a user. The session key is never kept."""

    user_id: int
    appid: str
    openid: str
    unionid: str | None
    bound_at: datetime
    id: int | None = None

    @staticmethod
    def check_can_unbind(user: User) -> None:
        """The WeChat binding may go only if the user can still log in another way (a phone)."""
        if user.phone is None:
            raise DomainError("LAST_LOGIN_METHOD",
                               "WeChat is this account's only way to log in; bind a phone first")
