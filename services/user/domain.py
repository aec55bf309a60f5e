"""User domain: accounts, profiles, addresses, identity, SMS codes, sessions. Knows nothing of gRPC, SQL or Kafka."""

from __future__ import annotations

import hmac
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from services.common import formats
from services.common.errors import Conflict, DomainError, Forbidden, InvalidInput, RateLimited, Unauthenticated
from services.common.logs import mask_phone

SMS_CODE_TTL = timedelta(minutes=5)
SMS_RESEND_AFTER = timedelta(seconds=60)
SMS_MAX_ATTEMPTS = 5
SMS_DAILY_LIMIT_PER_PHONE = 10  # codes of any purpose to one phone within SMS_DAILY_WINDOW
SMS_DAILY_WINDOW = timedelta(days=1)
# Every new account's nickname until its owner changes it: this, then the last four digits of the phone (SMS) or of
# the openid (WeChat). Staff search cannot start from these alone (UserSearch.validated).
SMS_NICKNAME_PREFIX = "用户"
WECHAT_NICKNAME_PREFIX = "微信用户"


def validate_phone(phone: str) -> str:
    """A mainland China mobile number, 11 digits starting 13-19."""
    if not formats.PHONE_PATTERN.fullmatch(phone or ""):
        raise InvalidInput("PHONE_INVALID", "phone must be an 11-digit mainland mobile number",
                           details={"phone": "invalid"})
    return phone


def validate_password(password: str, field: str = "password") -> str:
    """A password keeping formats.PASSWORD_RULE; `field` names it in the error."""
    if not formats.password_is_strong(password):
        raise InvalidInput("PASSWORD_TOO_WEAK", f"{field} must be {formats.PASSWORD_RULE}", details={field: "too weak"})
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
    gender: str = "unknown"
    birthday: date | None = None
    region: str = ""
    # The password was set by an admin, who knows it: it starts no session until its owner changes it (with an SMS
    # code to their phone, which the admin does not hold), so an admin cannot log in as a staff member with it.
    password_change_required: bool = False
    id: int | None = None

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)

    def update_profile(self, changes: ProfileChanges, today: date) -> None:
        """Apply the allowlisted profile fields that were sent; all are checked before any is set."""
        checked = changes.validated(today)
        for name, value in checked.items():
            setattr(self, name, value)

    def set_roles(self, roles: frozenset[str]) -> bool:
        """Give the account exactly these staff roles; True when that made a shopper staff, which clears the password.

        A shopper's password may have been set with an SMS code by whoever held the phone, which is
        not enough for staff powers (see check_password_by_sms): the first staff role must not ride
        on it. Until an admin sets one (set_staff_password) the account logs in by SMS, as a shopper.
        Changing between staff roles, or removing them all, keeps the password.
        """
        becomes_staff = bool(roles) and not self.role_set
        self.roles = ",".join(sorted(roles))
        if becomes_staff:
            self.password_hash = None
        return becomes_staff

    def session_roles(self, *, password_verified: bool) -> frozenset[str]:
        """Roles a new session may carry: staff roles only after the password, never from an SMS code.

        An SMS code proves control of a phone number, which is not enough for staff powers
        (SIM swaps, shared numbers); a staff member logging in by SMS gets a shopper session.
        """
        return self.role_set if password_verified else frozenset()

    def check_password_by_sms(self) -> None:
        """Only a shopper may set their password with an SMS code: a staff password would carry staff
        powers, which an SMS code is not enough for (see session_roles); an admin sets it instead."""
        if self.role_set:
            raise Forbidden("STAFF_PASSWORD_BY_ADMIN", "staff passwords are set by an admin")

    def bind_phone(self, phone: str) -> bool:
        """Give a WeChat-first account its phone; False when it already has this one.

        A bound phone is never replaced: changing it would need proof of the old number too (a
        lost number is a customer-service case), so it is refused rather than half-checked.
        """
        if self.phone == phone:
            return False
        if self.phone is not None:
            raise Conflict("PHONE_ALREADY_BOUND", "this account already has a phone; it cannot be changed here",
                           details={"phone": "already bound"})
        self.phone = validate_phone(phone)
        return True

    @classmethod
    def register_wechat(cls, openid: str, now: datetime) -> User:
        """A new shopper who came through WeChat login: no phone yet."""
        return cls(phone=None, created_at=now, nickname=f"{WECHAT_NICKNAME_PREFIX}{openid[-4:]}")

    @classmethod
    def register(cls, phone: str, now: datetime) -> User:
        """A new shopper; the nickname defaults to one that does not reveal the number."""
        return cls(phone=validate_phone(phone), created_at=now, nickname=f"{SMS_NICKNAME_PREFIX}{phone[-4:]}")


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

    @staticmethod
    def stored_purpose(purpose: str) -> str:
        """The purpose a code asked for as `purpose` is kept and redeemed under: a sign-up code is a login code,
        since the first SMS login registers the phone (U1) and nothing else redeems "signup"."""
        return "login" if purpose == "signup" else purpose

    @classmethod
    def issue(cls, *, phone: str, purpose: str, code_hash: str, now: datetime,
              previous: SmsCode | None, sent_today: Sequence[datetime]) -> SmsCode:
        """A new code, unless `previous` (the phone's newest code for this purpose) is under a minute old, or the
        phone was sent ten or more codes of any purpose in the last 24 hours (`sent_today`: when, oldest first); then
        `retry_after` is when enough of them will be over a day old."""
        if purpose not in formats.SMS_PURPOSES:
            raise InvalidInput("SMS_PURPOSE_INVALID", f"purpose must be one of {', '.join(formats.SMS_PURPOSES)}",
                               details={"purpose": "invalid"})
        if previous is not None and now < previous.created_at + SMS_RESEND_AFTER:
            wait = math.ceil((previous.created_at + SMS_RESEND_AFTER - now).total_seconds())
            raise RateLimited("SMS_RESEND_TOO_SOON", f"wait {wait}s before asking for another code",
                              details={"retry_after": wait})
        if len(sent_today) >= SMS_DAILY_LIMIT_PER_PHONE:
            frees_one = sent_today[len(sent_today) - SMS_DAILY_LIMIT_PER_PHONE] + SMS_DAILY_WINDOW
            wait = max(1, math.ceil((frees_one - now).total_seconds()))
            raise RateLimited("SMS_DAILY_LIMIT", "too many codes for this phone today; try tomorrow",
                              details={"retry_after": wait})
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


@dataclass(frozen=True)
class AttemptLimit:
    """At most `count` attempts of one `kind` per account within a sliding `window`.

    Kept by the user service, per account id, so every caller of a use case is held to it
    whatever address or gateway replica the attempts come from.
    """

    kind: str
    count: int
    window: timedelta
    code: str
    message: str

    def check(self, attempts: list[datetime], now: datetime) -> None:
        """Refuse (RateLimited, with retry_after) when `attempts`, the window's times oldest first, are too many."""
        if len(attempts) < self.count:
            return
        wait = math.ceil((attempts[-self.count] + self.window - now).total_seconds())
        raise RateLimited(self.code, self.message, details={"retry_after": max(1, wait)})


# Wrong current passwords at PUT /me/password, per account: the password login's ceiling (20 an hour), so
# a stolen access token is no way around the login's lockout.
PASSWORD_FAILURES = AttemptLimit("password-wrong", 20, timedelta(hours=1), "PASSWORD_LOCKED",
                                 "too many wrong passwords for this account; try again later")

# Real-name checks at POST /me/identity, per account: each one costs a paid provider call.
IDENTITY_CHECKS = AttemptLimit("identity-check", 5, timedelta(days=1), "IDENTITY_CHECKS_EXHAUSTED",
                               "too many real-name checks for this account today; try again tomorrow")


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
    # When the family's login was (carried over on refresh). None on tokens stored before it was kept, or by a pod
    # of the previous release during an upgrade: such a session is taken to have started with that token.
    session_started_at: datetime | None = None
    id: int | None = None

    @property
    def session_start(self) -> datetime:
        """When this token's session (its family) started: its login."""
        return self.session_started_at or self.created_at

    @staticmethod
    def expiry(*, roles: frozenset[str], now: datetime, session_start: datetime, refresh_ttl: timedelta,
               staff_session_max: timedelta) -> datetime:
        """When a token issued `now` expires: `refresh_ttl` later (a shopper's session rolls on with use), but
        never past `staff_session_max` after the login of a session carrying staff roles."""
        expires_at = now + refresh_ttl
        return min(expires_at, session_start + staff_session_max) if roles else expires_at


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
# Sessions

class RefreshTokenRefused(Unauthenticated):
    """A refresh token that cannot be exchanged; the client must log in again."""


def rotate(token: RefreshToken, now: datetime, *, staff_session_max: timedelta,
           reuse_grace: timedelta = timedelta(0)) -> None:
    """Mark `token` used, or refuse it: reuse of a used token means it leaked (the caller revokes the family).

    Less than `reuse_grace` after its first use a used token passes again (the caller issues another pair of its session:
    parallel requests of one client refreshing together, a retry after a lost answer); the window counts from that
    first use, however often it is presented within it.

    A session carrying staff roles ends `staff_session_max` after its password login however often it is refreshed
    (a shopper's rolls on): staff powers need the password again at least that often. Checked here as well as
    in the token's expiry (RefreshToken.expiry), which was fixed when it was issued: a shorter limit set since
    applies at once.
    """
    if token.revoked_at is not None:
        raise RefreshTokenRefused("REFRESH_TOKEN_REVOKED", "this session was logged out; log in again")
    if token.used_at is not None and now - token.used_at >= reuse_grace:
        raise RefreshTokenRefused("REFRESH_TOKEN_REUSED",
                                  "this refresh token was already used; every session of its login is revoked")
    if token.roles and now >= token.session_start + staff_session_max:
        hours = staff_session_max / timedelta(hours=1)
        raise RefreshTokenRefused("REFRESH_TOKEN_EXPIRED", f"a staff session lasts at most {hours:g} hours from its "
                                  "password login; log in again with your password")
    if now >= token.expires_at:
        raise RefreshTokenRefused("REFRESH_TOKEN_EXPIRED", "the session has expired; log in again")
    token.used_at = token.used_at or now


# Profile

GENDERS = ("unknown", "male", "female")
NICKNAME_MAX, AVATAR_URL_MAX = 32, 512
NICKNAME_SEARCH_MIN = 2  # a staff search's nickname prefix, and more than a default nickname's start
EARLIEST_BIRTHDAY = date(1900, 1, 1)
UNSET: object = object()  # a field that was not sent, where None is a value


def _is_plain_text(text: str) -> bool:
    """No control, format or private-use characters (they hide or reorder what staff see)."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp") for c in text)


def check_text(field: str, value: str, *, min_length: int, max_length: int, errors: dict[str, object]) -> str:
    """`value` stripped, recorded in `errors` under `field` unless it is plain text of the allowed length."""
    value = value.strip()
    if not (min_length <= len(value) <= max_length):
        errors[field] = f"must be {min_length}-{max_length} characters"
    elif not _is_plain_text(value):
        errors[field] = "must not contain control characters"
    return value


@dataclass(frozen=True)
class ProfileChanges:
    """The allowlisted profile fields a shopper may change; None means "not sent" (birthday: UNSET; None clears it)."""

    nickname: str | None = None
    avatar_url: str | None = None
    gender: str | None = None
    birthday: date | None | object = UNSET
    region: str | None = None

    def validated(self, today: date) -> dict[str, object]:
        errors: dict[str, object] = {}
        checked: dict[str, object] = {}
        if self.nickname is not None:
            checked["nickname"] = check_text("nickname", self.nickname, min_length=1, max_length=NICKNAME_MAX,
                                             errors=errors)
        if self.avatar_url is not None:
            url = self.avatar_url.strip()
            if url and not (re.fullmatch(r"https://[^\s/?#]+\.[^\s/?#]+(/[^\s]*)?", url) and len(url) <= AVATAR_URL_MAX
                            and url.isascii()):
                errors["avatar_url"] = f"must be an https URL of at most {AVATAR_URL_MAX} characters, or empty"
            checked["avatar_url"] = url
        if self.gender is not None:
            if self.gender not in GENDERS:
                errors["gender"] = f"must be one of {', '.join(GENDERS)}"
            checked["gender"] = self.gender
        if self.birthday is not UNSET:
            if isinstance(self.birthday, date) and not (EARLIEST_BIRTHDAY <= self.birthday <= today):
                errors["birthday"] = f"must be between {EARLIEST_BIRTHDAY.isoformat()} and today"
            checked["birthday"] = self.birthday
        if self.region is not None:
            # A province by its full name, as addresses name it, so that a mini-program may send the profile's region
            # as a page view's (POST /track takes no other). Regions saved as free text before stay as they were.
            region = formats.province_full_name(self.region) if self.region else ""
            if region is None:
                errors["region"] = f"must be {formats.PROVINCE_RULE}, or empty"
            checked["region"] = region
        if errors:
            raise InvalidInput("PROFILE_INVALID", "some profile fields are invalid", details=errors)
        if not checked:
            raise InvalidInput("PROFILE_EMPTY", "send at least one of nickname, avatar_url, gender, birthday, region")
        return checked


# Shipping addresses

MAX_ADDRESSES = 20


@dataclass(frozen=True)
class AddressFields:
    """What a shopper types into the address form."""

    receiver_name: str
    receiver_phone: str
    province: str
    city: str
    district: str
    detail: str

    def validated(self) -> AddressFields:
        errors: dict[str, object] = {}
        name = check_text("receiver_name", self.receiver_name, min_length=1, max_length=20, errors=errors)
        if not formats.PHONE_PATTERN.fullmatch(self.receiver_phone or ""):
            errors["receiver_phone"] = "must be an 11-digit mainland mobile number"
        province = formats.province_full_name(self.province)  # kept by its full name: orders and reports group by it
        if province is None:
            errors["province"] = f"must be {formats.PROVINCE_RULE}"
        city = check_text("city", self.city, min_length=2, max_length=20, errors=errors)
        district = check_text("district", self.district, min_length=2, max_length=20, errors=errors)
        detail = check_text("detail", self.detail, min_length=2, max_length=120, errors=errors)
        if errors:
            raise InvalidInput("ADDRESS_INVALID", "some address fields are invalid", details=errors)
        return AddressFields(name, self.receiver_phone, province or "", city, district, detail)


@dataclass(eq=False)
class Address:
    """A shipping address of one user; exactly one of a user's addresses is the default."""

    user_id: int
    receiver_name: str
    receiver_phone: str
    province: str
    city: str
    district: str
    detail: str
    created_at: datetime
    updated_at: datetime
    is_default: bool = False
    id: int | None = None

    @classmethod
    def create(cls, user_id: int, fields: AddressFields, now: datetime) -> Address:
        address = cls(user_id=user_id, receiver_name="", receiver_phone="", province="", city="", district="",
                      detail="", created_at=now, updated_at=now)
        address.change(fields, now)
        return address

    def change(self, fields: AddressFields, now: datetime) -> None:
        checked = fields.validated()
        self.receiver_name, self.receiver_phone = checked.receiver_name, checked.receiver_phone
        self.province, self.city, self.district, self.detail = (checked.province, checked.city, checked.district,
                                                                checked.detail)
        self.updated_at = now


# Real-name verification

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_DIGITS = "10X98765432"
ID_PATTERN = re.compile(r"[1-9][0-9]{16}[0-9X]")
# First two digits: the provincial codes of GB/T 2260, with 81, 82 and 83 for the residence
# permits of Hong Kong, Macao and Taiwan residents (same format and check digit).
ID_PROVINCE_CODES = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
                               50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83})
REAL_NAME_PATTERN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+(?:·[\u3400-\u4dbf\u4e00-\u9fff]+)*")
REAL_NAME_MIN, REAL_NAME_MAX = 2, 30


def id_check_digit(first17: str) -> str:
    """The GB 11643-1999 check digit (ISO 7064 MOD 11-2) of the first 17 digits."""
    return ID_CHECK_DIGITS[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def validate_id_number(id_number: str, today: date) -> str:
    """An 18-character resident ID number, upper-cased: region, a real past birth date, the check digit."""
    number = (id_number or "").strip().upper()
    if not ID_PATTERN.fullmatch(number) or int(number[:2]) not in ID_PROVINCE_CODES:
        raise InvalidInput("ID_NUMBER_INVALID", "the ID number must be 18 characters: 17 digits and a digit or X",
                           details={"id_number": "invalid"})
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        born = None
    if born is None or not (EARLIEST_BIRTHDAY <= born <= today):
        raise InvalidInput("ID_NUMBER_INVALID", "the birth date in the ID number is not a real past date",
                           details={"id_number": "invalid birth date"})
    if id_check_digit(number[:17]) != number[17]:
        raise InvalidInput("ID_NUMBER_INVALID", "the ID number's check digit is wrong; please check it",
                           details={"id_number": "wrong check digit"})
    return number


def validate_real_name(real_name: str) -> str:
    """A name as on the ID card: 2-30 Chinese characters, parts of minority names joined by '·'."""
    name = unicodedata.normalize("NFC", (real_name or "").strip()).replace("•", "·").replace("・", "·")
    if not (REAL_NAME_MIN <= len(name) <= REAL_NAME_MAX and REAL_NAME_PATTERN.fullmatch(name)):
        raise InvalidInput("REAL_NAME_INVALID",
                           f"the name must be {REAL_NAME_MIN}-{REAL_NAME_MAX} Chinese characters as on the ID card",
                           details={"real_name": "invalid"})
    return name


def mask_real_name(name: str) -> str:
    """张三 -> 张*: the family name only."""
    return name[:1] + "*" * (len(name) - 1)


def mask_id_number(number: str) -> str:
    """1101**********002X: region and last four, as in the logs."""
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


@dataclass(eq=False)
class IdentityVerification:
    """A user's verified real name and ID number, encrypted; `id_number_fingerprint` is a keyed hash for uniqueness."""

    user_id: int
    key_id: str
    real_name_ciphertext: bytes
    id_number_ciphertext: bytes
    id_number_fingerprint: str
    verified_at: datetime
    id: int | None = None


@dataclass(frozen=True)
class VerifiedIdentity:
    """A verification as shown: masked."""

    real_name_masked: str
    id_number_masked: str
    verified_at: datetime


# Staff

@dataclass(eq=False)
class PasswordSet:
    """An audit record: which admin set which staff member's password when (the password is not kept); actor None:
    the create-staff / create-admin command, on an existing account."""

    user_id: int
    actor_id: int | None
    set_at: datetime
    id: int | None = None


@dataclass(eq=False)
class RoleChange:
    """An audit record: who changed whose roles when, from what to what (actor None: the command line), and
    whether the change cleared the password (a shopper's first staff role, see User.set_roles)."""

    user_id: int
    actor_id: int | None
    before: str
    after: str
    changed_at: datetime
    password_cleared: bool = False
    id: int | None = None


@dataclass(eq=False)
class PhoneChange:
    """An audit record: an account's phone changed, by the account itself (numbers kept masked)."""

    user_id: int
    before: str  # "" when the account had none
    after: str
    changed_at: datetime
    id: int | None = None

    @classmethod
    def of(cls, user_id: int, before: str | None, after: str, now: datetime) -> PhoneChange:
        return cls(user_id=user_id, before=mask_phone(before) if before else "", after=mask_phone(after),
                   changed_at=now)


@dataclass(frozen=True)
class UserSearch:
    """How staff find a user: every criterion given must match (phone exactly, nickname by its start)."""

    phone: str = ""
    user_id: int = 0
    nickname_prefix: str = ""
    offset: int = 0
    limit: int = 20

    def validated(self) -> UserSearch:
        """The search with its nickname prefix stripped; at least one criterion, each well-formed. A nickname prefix
        is at least NICKNAME_SEARCH_MIN characters and not the start of every default nickname (用户, 微信用户, or a
        start of those: USER_SEARCH_TOO_BROAD), so that no nickname search pages through nearly every account."""
        if not (self.phone or self.user_id or self.nickname_prefix):
            raise InvalidInput("USER_SEARCH_EMPTY", "search by phone, id or nickname (a list of everyone is not offered)",
                               details={"phone": "one of these", "id": "one of these", "nickname": "one of these"})
        errors: dict[str, object] = {}
        if self.phone and not formats.PHONE_PATTERN.fullmatch(self.phone):
            errors["phone"] = "must be an 11-digit mainland mobile number"
        if self.user_id < 0:
            errors["id"] = "must be positive"
        prefix = self.nickname_prefix
        if prefix:
            prefix = check_text("nickname", prefix, min_length=1, max_length=NICKNAME_MAX, errors=errors)
        if errors:
            raise InvalidInput("USER_SEARCH_INVALID", "some search criteria are invalid", details=errors)
        if prefix and (len(prefix) < NICKNAME_SEARCH_MIN
                       or any(default.startswith(prefix)
                              for default in (SMS_NICKNAME_PREFIX, WECHAT_NICKNAME_PREFIX))):
            raise InvalidInput("USER_SEARCH_TOO_BROAD",
                               f"a nickname prefix is at least {NICKNAME_SEARCH_MIN} characters and more than the "
                               f"'{SMS_NICKNAME_PREFIX}' or '{WECHAT_NICKNAME_PREFIX}' every new account's nickname "
                               "starts with (a list of everyone is not offered)",
                               details={"nickname": f"at least {NICKNAME_SEARCH_MIN} characters, more than "
                                                    f"{SMS_NICKNAME_PREFIX}/{WECHAT_NICKNAME_PREFIX}"})
        return replace(self, nickname_prefix=prefix)

    def described(self) -> str:
        """The criteria as the lookup audit keeps them: the phone masked."""
        parts = [f"phone={mask_phone(self.phone)}" if self.phone else "", f"id={self.user_id}" if self.user_id else "",
                 f"nickname^={self.nickname_prefix}" if self.nickname_prefix else ""]
        return " ".join(part for part in parts if part)


@dataclass(eq=False)
class UserLookup:
    """An audit record of a staff search for users: who, when, by what, and which accounts it showed."""

    actor_id: int
    criteria: str
    user_ids: str  # the ids answered, comma-separated ("" when none matched)
    total: int
    looked_up_at: datetime
    # IdentityVault.phone_fingerprint of the phone searched (None without one): criteria masks it, so guesses at one
    # number's hidden digits would otherwise all read alike
    phone_fingerprint: str | None = None
    id: int | None = None


HISTORY_LIMIT = 200  # products kept in a shopper's browsing history; older views drop off


@dataclass(frozen=True)
class ViewedProduct:
    """One product in a shopper's browsing history, at the time they last viewed it."""

    product_id: int
    viewed_at: datetime
