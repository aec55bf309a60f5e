"""User use cases: each opens the unit of work, works on the domain, commits."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from mall.events.v1.user_events_pb2 import UserRegistered, UserVerified

from services.common import formats, sessions
from services.common.auth import STAFF_ROLES, Role
from services.common.db import utcnow
from services.common.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthenticated
from services.common.events import timestamp
from services.common.logs import mask_phone
from services.common.sessions import SessionsEnded
from services.user.domain import (
    HISTORY_LIMIT,
    IDENTITY_CHECKS,
    MAX_ADDRESSES,
    PASSWORD_FAILURES,
    SMS_CODE_TTL,
    SMS_DAILY_WINDOW,
    SMS_RESEND_AFTER,
    Address,
    AddressFields,
    AttemptLimit,
    IdentityVerification,
    LoginResult,
    PasswordSet,
    PhoneChange,
    ProfileChanges,
    RefreshToken,
    RefreshTokenRefused,
    RoleChange,
    SmsCode,
    User,
    UserLookup,
    UserSearch,
    VerifiedIdentity,
    ViewedProduct,
    WechatAccount,
    mask_id_number,
    mask_real_name,
    rotate,
    validate_id_number,
    validate_password,
    validate_phone,
    validate_real_name,
)
from services.user.identity import IdentityChecker, IdentityVault
from services.user.passwords import Passwords
from services.user.sms import SmsSender
from services.user.tokens import TokenIssuer, token_hash
from services.user.uow import UserUnitOfWork
from services.user.wechat import WechatSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentCode:
    expires_in: int
    resend_after: int
    dev_code: str  # "" unless the SMS provider is the dev console


def send_sms_code(uow: UserUnitOfWork, sms: SmsSender, issuer: TokenIssuer, *, phone: str, purpose: str,
                  now: datetime | None = None) -> SentCode:
    """Issue a 6-digit code for `purpose` and send it; at most one a minute per phone and purpose, ten a day per phone.

    The minute's wait is per purpose so that a shopper who has just logged in by SMS can ask for a bind code at
    once; the ten a day count every purpose's codes together, so they bound what a phone receives whatever the mix.
    """
    now = now or utcnow()
    phone = validate_phone(phone)
    purpose = SmsCode.stored_purpose(purpose)
    code = f"{secrets.randbelow(10**6):06d}"
    with uow:
        uow.sms_codes.lock_phone(phone)
        new_code = SmsCode.issue(phone=phone, purpose=purpose, code_hash=issuer.sms_code_hash(phone, code), now=now,
                                 previous=uow.sms_codes.latest(phone, purpose),
                                 sent_today=uow.sms_codes.sent_since(phone, now - SMS_DAILY_WINDOW))
        uow.sms_codes.add(new_code)
        sms.send_code(phone, code, purpose)  # before commit: a code that was never sent is never stored
        uow.commit()
    return SentCode(expires_in=int(SMS_CODE_TTL.total_seconds()),
                    resend_after=int(SMS_RESEND_AFTER.total_seconds()),
                    dev_code=code if sms.reveals_code else "")


def login_with_sms(uow: UserUnitOfWork, issuer: TokenIssuer, *, phone: str, code: str,
                   now: datetime | None = None) -> LoginResult:
    """Redeem a login code; the first login registers the shopper and emits user-registered.

    The user's lock before the code's (see _redeem_code). A first login has no user row to lock: the phone's unique
    index decides between it and a registration or phone binding of the same phone committed meanwhile (PHONE_TAKEN,
    nothing kept, the code not spent: a retry logs into that account)."""
    now = now or utcnow()
    phone = validate_phone(phone)
    _check_code_format(code)
    with uow:
        user = uow.users.by_phone(phone, lock=True)  # sessions start under the user's lock (see _end_sessions)
        _redeem_code(uow, issuer, phone=phone, purpose="login", code=code, now=now)
        is_new_user = user is None
        if user is None:
            user = User.register(phone, now)
            uow.users.add(user)  # PHONE_TAKEN when the phone was registered or bound since by_phone looked
            assert user.id is not None
            uow.publish(UserRegistered(user_id=user.id, channel="sms", registered_at=timestamp(now)),
                        aggregate_id=str(user.id))
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=False), now,
                                is_new_user=is_new_user)
        uow.commit()
    return result


def _check_code_format(code: str, field: str = "code") -> None:
    if not formats.SMS_CODE_PATTERN.fullmatch(code or ""):
        raise InvalidInput("SMS_CODE_INVALID", "the code must be 6 digits", details={field: "invalid"})


def _redeem_code(uow: UserUnitOfWork, issuer: TokenIssuer, *, phone: str, purpose: str, code: str,
                 now: datetime) -> None:
    """Use the newest `purpose` code of `phone`; a failed try is committed (it counts) before the error is raised.

    Lock order, in every use case: the user's row first (UserRepository.get/by_phone with lock=True), then the
    code's row here, then refresh tokens. Two use cases redeeming a code of one phone for one account then queue on
    the user's row and never each hold the lock the other waits for (bind_phone and bind_wechat, for one).
    """
    sms_code = uow.sms_codes.latest(phone, purpose, lock=True)
    if sms_code is None:
        raise InvalidInput("SMS_CODE_INVALID", "no code was sent to this phone; ask for one first")
    try:
        sms_code.redeem(issuer.sms_code_hash(phone, code), now)
    except DomainError:
        uow.commit()  # the failed try counts against the code
        raise


def login_with_password(uow: UserUnitOfWork, issuer: TokenIssuer, passwords: Passwords, *, phone: str,
                        password: str, new_password: str = "", sms_code: str = "",
                        now: datetime | None = None) -> LoginResult:
    """Log in with phone and password; one answer for unknown phone and wrong password.

    A password an admin set (set_staff_password) starts no session: the right one is answered 403
    PASSWORD_CHANGE_REQUIRED, and the login is tried again with `new_password` and a "reset" `sms_code` sent to the
    account's phone, which changes it (every other session ends) and starts the session. The admin knows the
    password they set but does not hold the phone, so they cannot log in as the staff member with it.
    `new_password` and `sms_code` are refused (400 PASSWORD_CHANGE_NOT_REQUIRED) on any other login.
    """
    now = now or utcnow()
    phone = validate_phone(phone)
    changing = bool(new_password or sms_code)
    if changing:
        _check_code_format(sms_code, "sms_code")
        validate_password(new_password, "new_password")
    with uow:
        # Locked before the password is read: a reset or change committed meanwhile is seen, and one waiting
        # for the lock revokes this session once it is stored (see _end_sessions).
        user = uow.users.by_phone(phone, lock=True)
        if not passwords.verify(user.password_hash if user else None, password) or user is None:
            raise Unauthenticated("INVALID_CREDENTIALS", "phone or password is wrong")
        assert user.password_hash is not None and user.phone is not None
        if user.password_change_required:
            if not changing:
                raise Forbidden("PASSWORD_CHANGE_REQUIRED",
                                "an admin set this password: log in again with new_password and an SMS code "
                                "(purpose reset) sent to this phone", details={"new_password": "required",
                                                                               "sms_code": "required"})
            _redeem_code(uow, issuer, phone=user.phone, purpose="reset", code=sms_code, now=now)
            user.password_hash = passwords.hash(new_password)
            user.password_change_required = False
            _end_sessions(uow, issuer, user_id=user.id or 0, now=now)
        elif changing:
            raise InvalidInput("PASSWORD_CHANGE_NOT_REQUIRED", "this password need not be changed to log in; "
                               "change it with PUT /me/password", details={"new_password": "not expected",
                                                                           "sms_code": "not expected"})
        elif passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash(password)
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=True), now,
                                is_new_user=False)
        uow.commit()
    return result


def create_staff(uow: UserUnitOfWork, passwords: Passwords, *, phone: str, role: str, password: str,
                 now: datetime | None = None) -> User:
    """Create a staff account with `role`, or grant it (and set the password) to an existing one, whose sessions
    then end (as when an admin sets a password: the old one may be why this is run); audited (the role change, and
    the password set on an existing account, with no actor: the command line)."""
    now = now or utcnow()
    phone = validate_phone(phone)
    roles = _valid_roles([role])
    validate_password(password)
    with uow:
        user = uow.users.by_phone(phone, lock=True)  # sessions start and end under the user's lock (_end_sessions)
        if user is None:
            user = User(phone=phone, created_at=now, nickname="管理员" if role == Role.ADMIN else "员工")
            uow.users.add(user)
        else:
            # Outside a call no gateway can be told (services/common/sessions.py): their access tokens expire on
            # their own, their refresh tokens end here, so no session of whoever knew the old password lives on.
            assert user.id is not None
            uow.refresh_tokens.revoke_user(user.id, now)
            uow.password_sets.add(PasswordSet(user_id=user.id, actor_id=None, set_at=now))
        before = user.roles
        user.set_roles(user.role_set | roles)  # clears a shopper's password: the one given here replaces it
        _audit_roles(uow, user, actor_id=None, before=before, now=now)
        user.password_hash = passwords.hash(password)
        user.password_change_required = False  # whoever runs the command hands it over (bootstrap, lock-out)
        uow.commit()
    return user


@dataclass(frozen=True)
class RolesSet:
    """What set_roles did: the user with their roles now, whether that cleared their password, and how many of their
    sessions it ended (0 unless it did)."""

    user: User
    password_cleared: bool
    sessions_ended: int


def set_roles(uow: UserUnitOfWork, issuer: TokenIssuer, *, actor_id: int, user_id: int, roles: list[str],
              now: datetime | None = None) -> RolesSet:
    """Give a user exactly these staff roles (admins only); audited. They reach tokens at the next password login.

    A shopper's first staff role clears their password and ends their sessions (User.set_roles: it may
    have been set by SMS): they log in by SMS, as a shopper, until an admin sets one (set_staff_password). The
    answer says so, for the admin to hand them a password. Every call ends their access tokens at once (a role
    taken away: they carry it); their sessions go on, refreshed without the roles taken away (refresh_session),
    and are not counted. Every call, not only those that take a role away: the retry of a demotion whose answer
    was lost finds nothing left to take away, yet the tokens issued before it still carry the role; and which
    roles the user's live tokens carry is not known here. The cost of a grant is one refresh.
    """
    wanted = _valid_roles(roles)
    with uow:
        user = _existing_user(uow, user_id, lock=True)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        if user_id == actor_id:  # no one grants themself powers, or locks the shop out of its last admin
            raise DomainError("OWN_ROLES", "you cannot change your own roles; ask another admin")
        if Role.ADMIN in user.role_set and Role.ADMIN not in wanted:
            _check_another_admin_stays(uow, user_id)
        before = user.roles
        password_cleared = user.set_roles(wanted)
        ended = _end_sessions(uow, issuer, user_id=user_id, now=now, refresh_tokens=password_cleared)
        _audit_roles(uow, user, actor_id=actor_id, before=before, now=now, password_cleared=password_cleared)
        uow.commit()
    if password_cleared:
        log.info("admin %s made user %s staff: their password is cleared until an admin sets one", actor_id, user_id)
    return RolesSet(user=user, password_cleared=password_cleared, sessions_ended=ended)


def _check_another_admin_stays(uow: UserUnitOfWork, user_id: int) -> None:
    """LAST_ADMIN unless an account other than `user_id` holds the admin role and can log in (an admin without a
    password, a shopper just made one, cannot until an admin sets it). Not refusing one's own is not enough:
    two admins taking each other's admin role at once (each holding only the other's row), or an admin whose own
    role was taken a moment ago (their token still says admin), would leave the shop without one. Counted under
    the lock of role changes, so the second of two such demotions counts what the first committed."""
    uow.users.lock_roles()
    if not [holder for holder in uow.users.holding(Role.ADMIN) if holder != user_id]:
        raise DomainError("LAST_ADMIN", "this is the shop's last admin; make another account admin first")


def set_staff_password(uow: UserUnitOfWork, issuer: TokenIssuer, passwords: Passwords, *, actor_id: int,
                       user_id: int, new_password: str, now: datetime | None = None) -> int:
    """An admin sets a staff member's password (staff cannot by SMS code); audited, every session of theirs
    ends (returns how many). Not one's own (change it with the current password) and not a shopper's (who
    resets their own by SMS). One-time: it starts no session until its owner changes it (login_with_password)."""
    validate_password(new_password, "new_password")
    with uow:
        user = _existing_user(uow, user_id, lock=True)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        if user_id == actor_id:
            raise DomainError("OWN_PASSWORD", "change your own password with your current one (PUT /me/password)")
        if not user.role_set:
            raise DomainError("NOT_STAFF", "shoppers set their own password with an SMS code")
        user.password_hash = passwords.hash(new_password)
        user.password_change_required = True  # the admin knows it: its owner changes it before it starts a session
        ended = _end_sessions(uow, issuer, user_id=user_id, now=now)
        uow.password_sets.add(PasswordSet(user_id=user_id, actor_id=actor_id, set_at=now))
        uow.commit()
    log.info("admin %s set the password of staff member %s", actor_id, user_id)
    return ended


def search_users(uow: UserUnitOfWork, vault: IdentityVault, *, actor_id: int, search: UserSearch,
                 now: datetime | None = None) -> tuple[list[User], int]:
    """Staff find users by exact phone, id or nickname prefix; each search is audited with the ids it showed and
    the phone searched, masked and as a keyed fingerprint (so that probes of one number's hidden digits differ)."""
    now = now or utcnow()
    search = search.validated()
    with uow:
        found, total = uow.users.search(search)
        uow.lookups.add(UserLookup(actor_id=actor_id, criteria=search.described(),
                                   user_ids=",".join(str(user.id) for user in found), total=total, looked_up_at=now,
                                   phone_fingerprint=vault.phone_fingerprint(search.phone) if search.phone else None))
        uow.commit()
    return found, total


def _valid_roles(roles: list[str]) -> frozenset[str]:
    unknown = sorted(set(roles) - STAFF_ROLES)
    if unknown:
        raise InvalidInput("ROLE_INVALID", f"roles must be among {', '.join(sorted(STAFF_ROLES))}",
                           details={"roles": "unknown role"})
    return frozenset(roles)


def _audit_roles(uow: UserUnitOfWork, user: User, *, actor_id: int | None, before: str, now: datetime,
                 password_cleared: bool = False) -> None:
    if user.roles != before:
        assert user.id is not None
        uow.role_changes.add(RoleChange(user_id=user.id, actor_id=actor_id, before=before, after=user.roles,
                                        changed_at=now, password_cleared=password_cleared))


# Sessions

def refresh_session(uow: UserUnitOfWork, issuer: TokenIssuer, *, refresh_token: str,
                    now: datetime | None = None) -> LoginResult:
    """Exchange a refresh token for a new pair (rotation); reusing a spent one revokes its whole family, unless a
    shopper's comes again within REFRESH_TOKEN_REUSE_GRACE_SECONDS of its use (_reuse_grace): another pair of the
    same session then, a new refresh token of its family (stored hashed like every other).

    The session keeps the roles it was started with, less any an admin has taken away since; one carrying staff
    roles ends STAFF_SESSION_MAX_HOURS after its password login (401 REFRESH_TOKEN_EXPIRED), a shopper's rolls on.
    """
    now = now or utcnow()
    with uow:
        # The user's lock before the token's, as _end_sessions takes them: an ending waiting for it then sees the
        # rotated token this stores, and this refresh, waiting for it, sees the token as the ending left it.
        uow.users.get(_known_refresh_token(uow, refresh_token, lock=False).user_id, lock=True)
        token = _known_refresh_token(uow, refresh_token)
        spent = token.used_at is not None
        try:
            rotate(token, now, staff_session_max=issuer.staff_session_max, reuse_grace=_reuse_grace(uow, issuer, token))
        except RefreshTokenRefused as refused:
            if refused.code == "REFRESH_TOKEN_REUSED":
                _end_session(uow, issuer, token, now)
                uow.commit()
                log.warning("a spent refresh token was presented again: user %s's session family revoked",
                            token.user_id)
            raise
        user = uow.users.get(token.user_id)
        if user is None:
            raise RefreshTokenRefused("REFRESH_TOKEN_INVALID", "unknown refresh token; log in again")
        roles = frozenset(role for role in token.roles.split(",") if role) & user.role_set
        result = _start_session(uow, issuer, user, roles, now, is_new_user=False, family=token)
        uow.commit()
    if spent:
        log.info("a spent refresh token was presented again within the grace window: user %s's session goes on "
                 "with another pair", token.user_id)
    return result


def _reuse_grace(uow: UserUnitOfWork, issuer: TokenIssuer, token: RefreshToken) -> timedelta:
    """How long after its use `token`, presented again, still gives a pair of its session rather than ending it.

    A mini-program's requests refused together each refresh with the token they hold, and a client retries a refresh
    whose answer it lost: taking those for theft logged the shopper out everywhere. No grace for a staff session (the
    admin console refreshes once for all its calls, admin.js refreshOnce, and a stolen staff token is the one most
    worth catching), nor once a later token of the family was used: whoever did got an answer, so this is no retry.
    The caller holds the user's row lock, which every refresh of the user takes first: the family cannot move on
    meanwhile.
    """
    if token.used_at is None or token.roles or uow.refresh_tokens.used_since(token.family_id, token.used_at):
        return timedelta(0)
    return issuer.refresh_reuse_grace


def logout(uow: UserUnitOfWork, issuer: TokenIssuer, *, refresh_token: str, now: datetime | None = None) -> int:
    """End the session this refresh token belongs to (its whole family, and its access tokens); returns sessions
    ended (0 or 1). Its access tokens are ended even when it was already over: a retry after a lost answer."""
    with uow:
        # The user's lock before the token's, as every other use case takes them (see _redeem_code): taking the
        # token's first, a logout racing a logout everywhere each held a row of the family the other was to revoke.
        uow.users.get(_known_refresh_token(uow, refresh_token, lock=False).user_id, lock=True)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        token = _known_refresh_token(uow, refresh_token)
        ended = _end_session(uow, issuer, token, now)
        uow.commit()
    return ended


def logout_all(uow: UserUnitOfWork, issuer: TokenIssuer, *, user_id: int, now: datetime | None = None) -> int:
    """End every session of the user, their access tokens included; returns how many were live."""
    with uow:
        uow.users.get(user_id, lock=True)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        ended = _end_sessions(uow, issuer, user_id=user_id, now=now)
        uow.commit()
    return ended


def _end_sessions(uow: UserUnitOfWork, issuer: TokenIssuer, *, user_id: int, now: datetime,
                  refresh_tokens: bool = True, keep_session: str = "") -> int:
    """End the user's access tokens issued before `now` (told to the gateway once committed) and, unless
    `refresh_tokens` is False, every session (refresh tokens); returns how many sessions were live.

    With `keep_session` (the caller's session, its refresh tokens' family) every session but that one ends
    instead: their refresh tokens are revoked, and the gateway is told of each ended one by its session, so the
    caller's access token keeps working.

    Every way of ending a user's sessions goes through here (or _end_session for one), so none can
    leave the access tokens working until they expire; create_staff, run outside a call, revokes refresh tokens only. A session started at `now` in the same
    transaction (change_password's) is not ended: only tokens issued before `now` are.

    The caller holds the user's row lock (UserRepository.get/by_phone with lock=True), which every session start
    (login, refresh) takes before it reads the password or the refresh token and keeps until its refresh token is
    stored: a login or refresh in flight either committed before, and its refresh token is revoked here, or waits
    and then finds the new password, or its refresh token revoked. Without it, a login with the old password or a
    refresh by a token thief racing a reset or a logout everywhere kept a refresh token that lived on.
    Callers take `now` once they hold the lock (when it is not given): a session that committed before has an
    earlier `iat`, so its access token ends here too, not only its refresh token.
    """
    if keep_session:
        families = uow.refresh_tokens.revoke_user_except(user_id, keep_session, now)
        for family in families:
            ended_session = SessionsEnded(user_id=user_id, session_id=family,
                                          until=(now + issuer.access_ttl).timestamp())
            uow.on_commit(lambda notice=ended_session: sessions.tell(notice))
        return len(families)
    ended = uow.refresh_tokens.revoke_user(user_id, now) if refresh_tokens else 0
    notice = SessionsEnded(user_id=user_id, before=now.timestamp(), until=(now + issuer.access_ttl).timestamp())
    uow.on_commit(lambda: sessions.tell(notice))
    return ended


def _end_session(uow: UserUnitOfWork, issuer: TokenIssuer, token: RefreshToken, now: datetime) -> int:
    """End one session: its refresh tokens (the family of `token`) and its access tokens (told once committed)."""
    ended = uow.refresh_tokens.revoke_family(token.family_id, now)
    notice = SessionsEnded(user_id=token.user_id, session_id=token.family_id,
                           until=(now + issuer.access_ttl).timestamp())
    uow.on_commit(lambda: sessions.tell(notice))
    return ended


def _known_refresh_token(uow: UserUnitOfWork, refresh_token: str, *, lock: bool = True) -> RefreshToken:
    token = uow.refresh_tokens.by_hash(token_hash(refresh_token), lock=lock) if refresh_token else None
    if token is None:
        raise RefreshTokenRefused("REFRESH_TOKEN_INVALID", "unknown refresh token; log in again")
    return token


def _start_session(uow: UserUnitOfWork, issuer: TokenIssuer, user: User, roles: frozenset[str], now: datetime, *,
                   is_new_user: bool, family: RefreshToken | None = None) -> LoginResult:
    """A fresh access token and refresh token for `user`, carrying `roles`: the next of `family` (the token
    refreshed, whose session it goes on) or, without one, a new session started `now`. A staff session's access
    token ends with the session (STAFF_SESSION_MAX_HOURS after its login), not up to the access TTL after it."""
    assert user.id is not None
    refresh = issuer.refresh_token()
    family_id = family.family_id if family else str(uuid.uuid4())
    started = family.session_start if family else now
    expires_at = RefreshToken.expiry(roles=roles, now=now, session_start=started, refresh_ttl=issuer.refresh_ttl,
                                     staff_session_max=issuer.staff_session_max)
    access_until = min(now + issuer.access_ttl, expires_at)
    uow.refresh_tokens.add(RefreshToken(user_id=user.id, family_id=family_id,
                                        token_hash=token_hash(refresh), created_at=now,
                                        expires_at=expires_at, roles=",".join(sorted(roles)),
                                        session_started_at=started))
    return LoginResult(user=user, roles=roles,
                       access_token=issuer.access_token(user, roles, now, session_id=family_id, expires_at=access_until),
                       refresh_token=refresh, expires_in=int((access_until - now).total_seconds()),
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
    session key it returns is not kept: nothing here decrypts WeChat user data. Two first logins of one WeChat at
    once both log into the one account the first to commit registered.
    """
    now = now or utcnow()
    session = wechat.code2session(code)
    try:
        return _log_in_wechat(uow, issuer, appid=wechat.appid, session=session, now=now)
    except Conflict as conflict:
        if conflict.code != "WECHAT_BOUND_JUST_NOW":
            raise
    # A first login of the same WeChat (a double tap, two devices) registered it while this one did: this one's
    # account was rolled back, and it logs into that one instead. Once: the WeChat's binding is now committed, and
    # the code, spent at WeChat, cannot be asked about again.
    return _log_in_wechat(uow, issuer, appid=wechat.appid, session=session, now=now)


def _log_in_wechat(uow: UserUnitOfWork, issuer: TokenIssuer, *, appid: str, session: WechatSession,
                   now: datetime) -> LoginResult:
    """One try of login_with_wechat, in one transaction; Conflict WECHAT_BOUND_JUST_NOW when another transaction
    bound or unbound the WeChat since it looked (nothing is then kept)."""
    with uow:
        account = uow.wechat_accounts.by_openid(appid, session.openid)
        # Locked: sessions start under the user's lock (see _end_sessions).
        user = uow.users.get(account.user_id, lock=True) if account is not None else None
        if account is not None:
            # Unbound (or bound elsewhere) by the lock's holder while this login waited for it: the owner ended the
            # sessions started through this WeChat, so none starts on their account now (the retry looks again).
            still = uow.wechat_accounts.by_openid(appid, session.openid)
            if still is None or still.user_id != account.user_id:
                raise Conflict("WECHAT_BOUND_JUST_NOW", "this WeChat account was unbound a moment ago; try again")
        is_new_user = user is None
        if user is None:
            user = User.register_wechat(session.openid, now)
            uow.users.add(user)
            assert user.id is not None
            uow.wechat_accounts.add(WechatAccount(user_id=user.id, appid=appid, openid=session.openid,
                                                  unionid=session.unionid, bound_at=now))
            uow.publish(UserRegistered(user_id=user.id, channel="wechat", registered_at=timestamp(now)),
                        aggregate_id=str(user.id))
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=False), now,
                                is_new_user=is_new_user)
        uow.commit()
    return result


# Passwords

def change_password(uow: UserUnitOfWork, issuer: TokenIssuer, passwords: Passwords, *, user_id: int,
                    current_password: str | None, sms_code: str | None, new_password: str,
                    now: datetime | None = None) -> LoginResult:
    """Set a new password, proven by the current one or a fresh "reset" SMS code; every other session ends.

    Answers a new session: staff roles only when the current password was the proof. A staff member
    cannot use an SMS code (403 STAFF_PASSWORD_BY_ADMIN): an admin sets their password.
    """
    if (current_password is None) == (sms_code is None):
        raise InvalidInput("PASSWORD_PROOF_REQUIRED", "send exactly one of current_password or sms_code",
                           details={"current_password": "exactly one of these", "sms_code": "exactly one of these"})
    if sms_code is not None:
        _check_code_format(sms_code, "sms_code")
    validate_password(new_password, "new_password")
    with uow:
        user = _existing_user(uow, user_id, lock=True)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        if current_password is not None:
            if user.password_hash is None:
                raise InvalidInput("PASSWORD_NOT_SET", "this account has no password yet; confirm with an SMS code",
                                   details={"current_password": "no password is set"})
            _check_current_password(uow, passwords, user, current_password, now)
        else:
            assert sms_code is not None
            user.check_password_by_sms()
            if user.phone is None:  # a WeChat-only account: no phone to prove anything with
                raise InvalidInput("PHONE_NOT_BOUND", "this account has no phone; it cannot confirm by SMS",
                                   details={"sms_code": "no phone bound"})
            _redeem_code(uow, issuer, phone=user.phone, purpose="reset", code=sms_code, now=now)
        user.password_hash = passwords.hash(new_password)
        user.password_change_required = False  # chosen by the account's owner (see login_with_password)
        _end_sessions(uow, issuer, user_id=user_id, now=now)
        result = _start_session(uow, issuer, user, user.session_roles(password_verified=current_password is not None),
                                now, is_new_user=False)
        uow.commit()
    return result


def _check_attempts(uow: UserUnitOfWork, limit: AttemptLimit, user_id: int, now: datetime) -> None:
    """Refuse (RateLimited) when the account has used up `limit`: its attempts of that kind within the window."""
    limit.check(uow.attempts.since(user_id, limit.kind, now - limit.window), now)


def _check_current_password(uow: UserUnitOfWork, passwords: Passwords, user: User, password: str,
                            now: datetime) -> None:
    """The current password, under the login's per-account ceiling (PASSWORD_FAILURES): a wrong one counts
    (committed before the error), and once the ceiling is reached even the right one is refused until the
    window moves on, so guesses spread over addresses with a stolen access token get nowhere."""
    assert user.id is not None and user.password_hash is not None
    _check_attempts(uow, PASSWORD_FAILURES, user.id, now)
    if not passwords.verify(user.password_hash, password):
        uow.attempts.add(user.id, PASSWORD_FAILURES.kind, now)
        uow.commit()
        raise InvalidInput("PASSWORD_WRONG", "the current password is wrong", details={"current_password": "wrong"})


def bind_wechat(uow: UserUnitOfWork, wechat: WechatLogin, issuer: TokenIssuer, *, user_id: int, code: str,
                sms_code: str, now: datetime | None = None) -> WechatAccount:
    """Bind the WeChat of a wx.login code to the user, proven by a "bind" SMS code sent to the account's phone:
    a new way into the account needs more than an access token, which a stolen one would be enough for. Binding
    the same WeChat again changes nothing (a retry after a lost answer, whose code is spent). Like bind_phone, the
    code is redeemed before the conflicts are looked at, and a conflict spends it."""
    now = now or utcnow()
    _check_code_format(sms_code, "sms_code")
    session = wechat.code2session(code)
    with uow:
        user = _existing_user(uow, user_id, lock=True)
        bound = uow.wechat_accounts.by_openid(wechat.appid, session.openid)
        if bound is not None and bound.user_id == user_id:
            return bound
        own = uow.wechat_accounts.of_user(user_id)
        if user.phone is not None:
            _redeem_code(uow, issuer, phone=user.phone, purpose="bind", code=sms_code, now=now)
        elif own is None:  # never so: an account without a phone has its WeChat
            raise InvalidInput("PHONE_NOT_BOUND", "this account has no phone to confirm the binding with",
                               details={"sms_code": "no phone bound"})
        try:
            if bound is not None:
                raise Conflict("WECHAT_BOUND_ELSEWHERE", "this WeChat account is bound to another account")
            if own is not None:
                raise Conflict("WECHAT_ALREADY_BOUND", "this account is bound to another WeChat; unbind it first")
        except Conflict:
            uow.commit()  # the code is spent either way
            raise
        account = WechatAccount(user_id=user.id or user_id, appid=wechat.appid, openid=session.openid,
                                unionid=session.unionid, bound_at=now)
        uow.wechat_accounts.add(account)
        uow.commit()
    log.info("user %s bound a WeChat", user_id)
    return account


def unbind_wechat(uow: UserUnitOfWork, issuer: TokenIssuer, *, user_id: int, sms_code: str, keep_session: str,
                  now: datetime | None = None) -> int:
    """Remove the user's WeChat binding, proven by an "unbind" SMS code sent to the account's phone, unless WeChat is
    their only way to log in (LAST_LOGIN_METHOD); every other session of the user ends; returns how many did.

    An owner unbinds their WeChat when someone else may control it: the sessions started through it must end with
    it. A refresh token does not record how its session started, so every session but the caller's
    (`keep_session`, the caller's access token's session; "" ends them all) ends, as after a password change: the
    caller proved the phone with the code, and their session keeps working.

    An access token alone is not enough: a stolen one would otherwise cut the owner off their account's WeChat
    login (their next one registers a new, empty account). Whether there is a binding to remove, and a phone to log
    in with after, is looked at before the code: those refusals spend nothing. The code is redeemed with the
    login's rules (single use, five tries, five minutes).
    """
    _check_code_format(sms_code, "sms_code")
    with uow:
        user = _existing_user(uow, user_id, lock=True)  # the user's lock before the code's (see _redeem_code)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        account = uow.wechat_accounts.of_user(user_id)
        if account is None:
            raise NotFound("WECHAT_NOT_BOUND", "this account has no WeChat bound")
        WechatAccount.check_can_unbind(user)
        assert user.phone is not None  # check_can_unbind: the phone is the way in that stays
        _redeem_code(uow, issuer, phone=user.phone, purpose="unbind", code=sms_code, now=now)
        uow.wechat_accounts.remove(account)
        ended = _end_sessions(uow, issuer, user_id=user_id, now=now, keep_session=keep_session)
        uow.commit()
    log.info("user %s unbound their WeChat; %d other sessions ended", user_id, ended)
    return ended


def bind_phone(uow: UserUnitOfWork, issuer: TokenIssuer, wechat: WechatLogin, *, user_id: int, phone: str,
               code: str, wechat_code: str | None, now: datetime | None = None) -> Profile:
    """Bind a phone to the user's account (a WeChat-first one, U2), proven by a "bind" code sent to it; audited.

    An account with a WeChat bound must also prove it is its owner with a fresh wx.login code of that WeChat
    (`wechat_code`: WECHAT_CODE_REQUIRED, 403 WECHAT_MISMATCH): the SMS code proves only the phone, and with a
    stolen access token alone anyone could otherwise add their phone to the account and log in with it. That is
    checked before the SMS code is looked at, so a refusal spends nothing.

    The code is redeemed first, with the login's rules (single use, five tries, five minutes), so
    only whoever receives the phone's codes learns whether another account has it. A phone is
    never moved between accounts, and a bound phone is never replaced (PHONE_ALREADY_BOUND);
    binding the one the account already has changes nothing. A refusal spends the code, except when
    the unique index refuses a racing write of the same phone (then nothing at all is kept).
    """
    now = now or utcnow()
    phone = validate_phone(phone)
    _check_code_format(code)
    session = wechat.code2session(wechat_code) if wechat_code else None
    with uow:
        # The user's lock before the code's (see _redeem_code): this and bind_wechat redeeming the account's phone's
        # code at once would otherwise wait on each other (a deadlock).
        user = _existing_user(uow, user_id, lock=True)
        account = uow.wechat_accounts.of_user(user_id)
        if account is not None and session is None:
            raise InvalidInput("WECHAT_CODE_REQUIRED", "confirm with a wx.login code of this account's WeChat",
                               details={"wechat_code": "required"})
        if account is not None and session is not None and (account.appid, account.openid) != (wechat.appid,
                                                                                                 session.openid):
            raise Forbidden("WECHAT_MISMATCH", "the wx.login code is of another WeChat than this account's")
        _redeem_code(uow, issuer, phone=phone, purpose="bind", code=code, now=now)
        before = user.phone
        holder = uow.users.by_phone(phone)
        try:
            if holder is not None and holder.id != user_id:
                raise Conflict("PHONE_BOUND_ELSEWHERE", "this phone belongs to another account",
                               details={"phone": "bound to another account"})
            changed = user.bind_phone(phone)
        except Conflict:
            uow.commit()  # the code is spent either way
            raise
        if changed:
            uow.users.save_phone(user)  # a racing registration or binding of the phone: PHONE_BOUND_ELSEWHERE
            uow.phone_changes.add(PhoneChange.of(user_id, before, phone, now))
        profile = _profile(uow, user_id)
        uow.commit()
    if changed:
        log.info("user %s bound the phone %s", user_id, mask_phone(phone))
    return profile


def _existing_user(uow: UserUnitOfWork, user_id: int, *, lock: bool = False) -> User:
    user = uow.users.get(user_id, lock=lock)
    if user is None:  # a token outliving its account, or an id that never existed
        raise NotFound("USER_NOT_FOUND", "no such user")
    return user


def reset_password(uow: UserUnitOfWork, issuer: TokenIssuer, passwords: Passwords, *, phone: str, code: str,
                   new_password: str, now: datetime | None = None) -> int:
    """Forgotten password: a "reset" SMS code sets a new one and ends every session; returns how many.

    Not for staff (403 STAFF_PASSWORD_BY_ADMIN, after the code is redeemed and spent, so only the phone's
    holder learns the account is staff): an SMS code is not enough for staff powers; an admin sets theirs.
    """
    phone = validate_phone(phone)
    _check_code_format(code)
    validate_password(new_password, "new_password")
    with uow:
        # The user's lock before the code's (see _redeem_code).
        user = uow.users.by_phone(phone, lock=True)
        now = now or utcnow()  # once the user's lock is held (see _end_sessions)
        _redeem_code(uow, issuer, phone=phone, purpose="reset", code=code, now=now)
        if user is None:
            uow.commit()  # the code is spent either way
            raise NotFound("USER_NOT_FOUND", "no account uses this phone; log in with an SMS code to create one")
        try:
            user.check_password_by_sms()
        except Forbidden:
            uow.commit()  # the code is spent either way
            raise
        user.password_hash = passwords.hash(new_password)
        ended = _end_sessions(uow, issuer, user_id=user.id or 0, now=now)
        uow.commit()
    return ended


# Profile

@dataclass(frozen=True)
class Profile:
    user: User
    identity_verified: bool
    wechat_bound: bool


def get_profile(uow: UserUnitOfWork, *, user_id: int) -> Profile:
    """The caller's own profile."""
    with uow:
        profile = _profile(uow, user_id)
        uow.commit()  # reads commit too: a rollback would expire what was loaded
    return profile


def update_profile(uow: UserUnitOfWork, *, user_id: int, changes: ProfileChanges,
                   now: datetime | None = None) -> Profile:
    """Change allowlisted profile fields; nothing changes unless every field sent is valid."""
    now = now or utcnow()
    with uow:
        profile = _profile(uow, user_id)
        profile.user.update_profile(changes, now.date())
        uow.commit()
    return profile


def _profile(uow: UserUnitOfWork, user_id: int) -> Profile:
    return Profile(user=_existing_user(uow, user_id), identity_verified=uow.identities.for_user(user_id) is not None,
                   wechat_bound=uow.wechat_accounts.of_user(user_id) is not None)


# Addresses

def list_addresses(uow: UserUnitOfWork, *, user_id: int) -> list[Address]:
    """The user's addresses, the default first, then newest first."""
    with uow:
        found = uow.addresses.for_user(user_id)
        uow.commit()
    return found


def buyer_address(uow: UserUnitOfWork, *, user_id: int, address_id: int) -> Address | None:
    """The address an order of the user ships to, or None when the user has not verified their identity
    (the address is then not looked at); another user's address or none is not found. One transaction."""
    with uow:
        if uow.identities.for_user(user_id) is None:
            address = None
        else:
            address = _own_address(uow, user_id, address_id)
        uow.commit()
    return address


def add_address(uow: UserUnitOfWork, *, user_id: int, fields: AddressFields, is_default: bool,
                now: datetime | None = None) -> Address:
    """Add an address (at most MAX_ADDRESSES); the first one, or one asked to be, becomes the default."""
    now = now or utcnow()
    address = Address.create(user_id, fields, now)
    with uow:
        uow.addresses.lock_user(user_id)
        existing = uow.addresses.for_user(user_id)
        if len(existing) >= MAX_ADDRESSES:
            raise DomainError("ADDRESS_LIMIT", f"at most {MAX_ADDRESSES} addresses; delete one first")
        if is_default or not existing:
            uow.addresses.clear_default(user_id)
            address.is_default = True
        uow.addresses.add(address)
        uow.commit()
    return address


def change_address(uow: UserUnitOfWork, *, user_id: int, address_id: int, fields: AddressFields,
                   is_default: bool | None = None, now: datetime | None = None) -> Address:
    """Replace an address's fields; `is_default` True makes it the default, None keeps it as it is.

    The default cannot be un-made by itself (False on it): another address must become the default.
    """
    now = now or utcnow()
    with uow:
        uow.addresses.lock_user(user_id)
        address = _own_address(uow, user_id, address_id)
        if address.is_default and is_default is False:
            raise DomainError("DEFAULT_ADDRESS_REQUIRED",
                              "one address must stay the default; make another address the default instead")
        address.change(fields, now)
        if is_default and not address.is_default:
            uow.addresses.clear_default(user_id)
            address.is_default = True
        uow.commit()
    return address


def delete_address(uow: UserUnitOfWork, *, user_id: int, address_id: int, now: datetime | None = None) -> None:
    """Delete an address; when it was the default, the newest remaining one becomes the default."""
    now = now or utcnow()
    with uow:
        uow.addresses.lock_user(user_id)
        address = _own_address(uow, user_id, address_id)
        uow.addresses.remove(address)
        remaining = uow.addresses.for_user(user_id)
        if address.is_default and remaining:
            remaining[0].is_default = True  # for_user lists newest first once no default is left
            remaining[0].updated_at = now
        uow.commit()


def _own_address(uow: UserUnitOfWork, user_id: int, address_id: int) -> Address:
    address = uow.addresses.get(user_id, address_id)
    if address is None:
        raise NotFound("ADDRESS_NOT_FOUND", "no such address")
    return address


# Real-name verification

def verify_identity(uow: UserUnitOfWork, checker: IdentityChecker, vault: IdentityVault, *, user_id: int,
                    real_name: str, id_number: str, now: datetime | None = None) -> VerifiedIdentity:
    """Check name and ID number (format, then the provider), keep them encrypted, emit user-verified.

    One verification per account, and one account per ID number (compared by keyed fingerprint).
    Every provider check counts against the account's IDENTITY_CHECKS (a paid call, and guesses),
    and whether another account holds the number is looked at only after the provider matched the
    name: only someone who knows the number's name learns that it is taken. The provider is asked
    outside the transaction: no lock is held while it answers.
    """
    now = now or utcnow()
    name, number = _valid_identity(real_name, id_number, now.date())
    fingerprint = vault.fingerprint(number)
    with uow:
        _existing_user(uow, user_id, lock=True)  # concurrent checks of one account are counted one by one
        _check_not_verified(uow, user_id)
        _check_attempts(uow, IDENTITY_CHECKS, user_id, now)
        uow.attempts.add(user_id, IDENTITY_CHECKS.kind, now)
        uow.commit()
    if not checker.check(name, number):
        raise DomainError("IDENTITY_MISMATCH", "the name does not match the ID number; check both")
    with uow:
        _existing_user(uow, user_id, lock=True)
        uow.identities.lock_fingerprint(fingerprint)
        _check_identity_free(uow, user_id, fingerprint)
        uow.identities.add(IdentityVerification(
            user_id=user_id, key_id=vault.active_key_id,
            real_name_ciphertext=vault.encrypt(name, context=f"user:{user_id}:real_name"),
            id_number_ciphertext=vault.encrypt(number, context=f"user:{user_id}:id_number"),
            id_number_fingerprint=fingerprint, verified_at=now))
        uow.publish(UserVerified(user_id=user_id, verified_at=timestamp(now)), aggregate_id=str(user_id))
        uow.commit()
    return VerifiedIdentity(real_name_masked=mask_real_name(name), id_number_masked=mask_id_number(number),
                            verified_at=now)


def wechat_payer(uow: UserUnitOfWork, *, user_id: int) -> WechatAccount | None:
    """The user's WeChat binding (appid, openid) that WeChat Pay charges; None when not bound."""
    with uow:
        found = uow.wechat_accounts.of_user(user_id)
        uow.commit()
    return found


def get_verification(uow: UserUnitOfWork, vault: IdentityVault, *, user_id: int) -> VerifiedIdentity | None:
    """The user's verification, masked; None if not verified."""
    found = _verification(uow, user_id)
    if found is None:
        return None
    name = vault.decrypt(found.key_id, found.real_name_ciphertext, context=f"user:{user_id}:real_name")
    number = vault.decrypt(found.key_id, found.id_number_ciphertext, context=f"user:{user_id}:id_number")
    return VerifiedIdentity(real_name_masked=mask_real_name(name), id_number_masked=mask_id_number(number),
                            verified_at=found.verified_at)


def has_phone(uow: UserUnitOfWork, *, user_id: int) -> bool:
    """Whether the user has bound a phone number: False for a WeChat-only account, and for no such user."""
    with uow:
        user = uow.users.get(user_id)
        uow.commit()
    return user is not None and bool(user.phone)


def payee_name(uow: UserUnitOfWork, vault: IdentityVault, *, user_id: int) -> str | None:
    """The user's verified real name in clear (a large WeChat Pay transfer names its payee); None if not verified."""
    found = _verification(uow, user_id)
    if found is None:
        return None
    return vault.decrypt(found.key_id, found.real_name_ciphertext, context=f"user:{user_id}:real_name")


def _verification(uow: UserUnitOfWork, user_id: int) -> IdentityVerification | None:
    with uow:
        found = uow.identities.for_user(user_id)
        uow.commit()
    return found


def _valid_identity(real_name: str, id_number: str, today: date) -> tuple[str, str]:
    """Both fields checked, both reported when both are wrong."""
    errors: list[InvalidInput] = []
    checked: list[str] = []
    for check in (lambda: validate_real_name(real_name), lambda: validate_id_number(id_number, today)):
        try:
            checked.append(check())
        except InvalidInput as error:
            errors.append(error)
    if errors:
        details = {name: problem for error in errors for name, problem in error.details.items()}
        raise InvalidInput(errors[0].code, errors[0].message, details=details)
    return checked[0], checked[1]


def _check_not_verified(uow: UserUnitOfWork, user_id: int, *, provider_checked: bool = False) -> None:
    """IDENTITY_ALREADY_VERIFIED; with `provider_checked` in its details when the provider was asked (and paid)
    first: a concurrent check of the account verified it meanwhile (the gateway's daily budget counts that one)."""
    if uow.identities.for_user(user_id) is not None:
        raise Conflict("IDENTITY_ALREADY_VERIFIED", "this account is already verified",
                       details={"provider_checked": True} if provider_checked else None)


def _check_identity_free(uow: UserUnitOfWork, user_id: int, fingerprint: str) -> None:
    _check_not_verified(uow, user_id, provider_checked=True)
    if uow.identities.by_fingerprint(fingerprint) is not None:
        raise Conflict("ID_NUMBER_TAKEN", "this ID number is already verified by another account")



# Browsing history (product-viewed)

def record_view(uow: UserUnitOfWork, *, user_id: int, product_id: int, viewed_at: datetime) -> None:
    """A product-viewed event, inside the consumer's open unit of work: latest view first, HISTORY_LIMIT kept.

    Events arrive late (consumer lag, a rebalance, a restart): a view from before the user cleared their history
    stays forgotten, and so does a view by an account that does not exist.
    """
    if uow.history.record(user_id, product_id, viewed_at):
        uow.history.trim(user_id, HISTORY_LIMIT)


def list_history(uow: UserUnitOfWork, *, user_id: int) -> list[ViewedProduct]:
    """The products the user viewed, newest first, one entry each (at most HISTORY_LIMIT)."""
    with uow:
        found = uow.history.for_user(user_id)
        uow.commit()
    return found


def clear_history(uow: UserUnitOfWork, *, user_id: int, now: datetime | None = None) -> int:
    """Forget the user's browsing history, including views made until now whose events are still on their way;
    how many products it held."""
    with uow:
        cleared = uow.history.clear(user_id, now or utcnow())
        uow.commit()
    return cleared
