"""User service tables, their mapping onto the domain classes, repositories and unit of work."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any, Generic, Self

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    distinct,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, registry

from services.common.config import PruneSettings
from services.common.db import BigId, Mapping, UTCDateTime, conflict_insert, counted_page, serialize_on
from services.common.errors import Conflict
from services.common.pruning import PastUse
from services.common.uow import SqlUnitOfWork
from services.user.domain import (
    IDENTITY_CHECKS,
    PASSWORD_FAILURES,
    Address,
    IdentityVerification,
    PasswordSet,
    PhoneChange,
    RefreshToken,
    RoleChange,
    SmsCode,
    User,
    UserLookup,
    UserSearch,
    ViewedProduct,
    WechatAccount,
)
from services.user.uow import Audited, UserUnitOfWork

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
    Column("gender", String(8), nullable=False, default="unknown", server_default="unknown"),
    Column("birthday", Date, nullable=True),
    Column("region", String(64), nullable=False, default="", server_default=""),
    # Browsing history's, not the User's: views from before it are ignored (SqlHistoryRepository). On the user's
    # row so that clearing and a late view of the same user queue on one row lock.
    Column("history_cleared_at", UTCDateTime, nullable=True),
    # An admin set the password (set_staff_password): it logs in only to be changed (login_with_password).
    Column("password_change_required", Boolean, nullable=False, default=False, server_default=false()),
)
# Staff find users by the start of their nickname: a LIKE 'prefix%' the pattern operator class can serve
# whatever the database's collation.
Index("ix_users_nickname", users.c.nickname, postgresql_ops={"nickname": "text_pattern_ops"})

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
    Index("ix_sms_codes_created_at", "created_at"),  # pruning (OWN_ROWS)
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
    Column("session_started_at", UTCDateTime, nullable=True),  # its family's login; NULL before migration 0013
    Index("ix_refresh_tokens_expires_at", "expires_at"),  # pruning (OWN_ROWS)
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

addresses = Table(
    "addresses", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, index=True),
    Column("receiver_name", String(64), nullable=False),
    Column("receiver_phone", String(20), nullable=False),
    Column("province", String(16), nullable=False),
    Column("city", String(64), nullable=False),
    Column("district", String(64), nullable=False),
    Column("detail", String(255), nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
# At most one default per user, whatever the code does; "at least one" is the use cases' job (under a lock).
Index("ux_addresses_one_default", addresses.c.user_id, unique=True,
      postgresql_where=addresses.c.is_default, sqlite_where=addresses.c.is_default)

identity_verifications = Table(
    "identity_verifications", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, unique=True),
    Column("key_id", String(32), nullable=False),
    Column("real_name_ciphertext", LargeBinary, nullable=False),
    Column("id_number_ciphertext", LargeBinary, nullable=False),
    Column("id_number_fingerprint", String(64), nullable=False, unique=True),
    Column("verified_at", UTCDateTime, nullable=False),
)

user_role_changes = Table(
    "user_role_changes", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, index=True),
    Column("actor_id", BigInteger, nullable=True),  # None: the create-staff / create-admin command
    Column("before", String(255), nullable=False),
    Column("after", String(255), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("password_cleared", Boolean, nullable=False, default=False,  # a shopper's first staff role
           server_default=false()),
)

user_password_sets = Table(
    "user_password_sets", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, index=True),
    Column("actor_id", BigInteger, nullable=True),  # None: the create-staff / create-admin command
    Column("set_at", UTCDateTime, nullable=False),
)

user_phone_changes = Table(
    "user_phone_changes", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False, index=True),
    Column("before", String(20), nullable=False),  # masked, "" when there was none
    Column("after", String(20), nullable=False),   # masked
    Column("changed_at", UTCDateTime, nullable=False),
)

user_lookups = Table(
    "user_lookups", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("actor_id", BigInteger, nullable=False),
    Column("criteria", String(255), nullable=False),  # phones masked
    Column("user_ids", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("looked_up_at", UTCDateTime, nullable=False),
    Column("phone_fingerprint", String(64)),  # keyed hash of the phone searched; NULL without one (or before 0016)
    Index("ix_user_lookups_actor_at", "actor_id", "looked_up_at"),
)

browsing_history = Table(
    "browsing_history", metadata,
    Column("user_id", BigId, ForeignKey("users.id"), primary_key=True),
    Column("product_id", BigInteger, primary_key=True),
    Column("viewed_at", UTCDateTime, nullable=False),
    Index("ix_browsing_history_user_viewed", "user_id", "viewed_at"),
)

# Per-account attempt counts (AttemptLimit): wrong current passwords, identity checks.
account_attempts = Table(
    "account_attempts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Index("ix_account_attempts_user_kind_at", "user_id", "kind", "attempted_at"),
    Index("ix_account_attempts_attempted_at", "attempted_at"),  # pruning (OWN_ROWS)
)


# The user service's rows that stop mattering, pruned beside its bookkeeping (services/common/pruning.py); without
# this a shopper's refresh every 15 minutes added a row for ever. Each is kept a day past its last reader:
# - a refresh token goes once every token of its session (family) expired SESSION_TRACE_DAYS ago: while one of them
#   lives, a spent token of the family presented again must still be found, to revoke the session;
# - an SMS code after the daily send limit stopped counting it (a day back; a code lives minutes);
# - an attempt after the longest AttemptLimit window stopped counting it.
SESSION_TRACE_DAYS = 7  # ended sessions' tokens stay for support to see when a session was used


def _ended_sessions(now: datetime, settings: PruneSettings) -> ColumnElement[bool]:
    ended = now - timedelta(days=SESSION_TRACE_DAYS)
    sibling = aliased(refresh_tokens)
    return (refresh_tokens.c.expires_at < ended) & ~exists().where(
        sibling.c.family_id == refresh_tokens.c.family_id, sibling.c.expires_at >= ended)


OWN_ROWS: dict[Table, PastUse] = {
    refresh_tokens: _ended_sessions,
    sms_codes: lambda now, settings: sms_codes.c.created_at < now - timedelta(days=2),
    account_attempts: lambda now, settings: account_attempts.c.attempted_at < now - max(
        PASSWORD_FAILURES.window, IDENTITY_CHECKS.window) - timedelta(days=1),
}


def _map_classes(mappers: registry) -> None:
    mappers.map_imperatively(User, users, exclude_properties=["history_cleared_at"])
    mappers.map_imperatively(SmsCode, sms_codes)
    mappers.map_imperatively(RefreshToken, refresh_tokens)
    mappers.map_imperatively(WechatAccount, wechat_accounts)
    mappers.map_imperatively(Address, addresses)
    mappers.map_imperatively(IdentityVerification, identity_verifications)
    mappers.map_imperatively(RoleChange, user_role_changes)
    mappers.map_imperatively(PasswordSet, user_password_sets)
    mappers.map_imperatively(PhoneChange, user_phone_changes)
    mappers.map_imperatively(UserLookup, user_lookups)


# Maps the domain classes onto the tables (idempotent): build_app and database tests call it, never an import.
start_mappers = Mapping(_map_classes).start


class SqlUserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user: User) -> None:
        self.session.add(user)
        try:
            self.session.flush()  # assigns the id the user-registered event needs
        except IntegrityError:  # the same phone registered a moment ago by another transaction
            raise Conflict("PHONE_TAKEN", "an account for this phone was created just now; try again") from None

    def by_phone(self, phone: str, *, lock: bool = False) -> User | None:
        query = select(User).where(users.c.phone == phone)
        if lock:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def get(self, user_id: int, *, lock: bool = False) -> User | None:
        query = select(User).where(users.c.id == user_id)
        if lock:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def count(self) -> int:
        return self.session.execute(select(func.count()).select_from(users)).scalar_one()

    def lock_roles(self) -> None:
        serialize_on(self.session, "user-roles")

    def holding(self, role: str) -> list[int]:
        # Columns, not mapped users: a User loaded earlier in the transaction would answer its stale roles.
        found = self.session.execute(select(users.c.id, users.c.roles).where(users.c.roles.contains(role),
                                                                              users.c.password_hash.is_not(None)))
        return [row.id for row in found if role in row.roles.split(",")]

    def save_phone(self, user: User) -> None:
        try:
            self.session.flush()  # the unique index on phone decides between racing writers, now
        except IntegrityError:  # bound to, or registered by, another account a moment ago
            raise Conflict("PHONE_BOUND_ELSEWHERE", "this phone belongs to another account",
                           details={"phone": "bound to another account"}) from None

    def search(self, search: UserSearch) -> tuple[list[User], int]:
        conditions = []
        if search.phone:
            conditions.append(users.c.phone == search.phone)
        if search.user_id:
            conditions.append(users.c.id == search.user_id)
        if search.nickname_prefix:
            conditions.append(users.c.nickname.startswith(search.nickname_prefix, autoescape=True))
        return counted_page(self.session, User, users, conditions, [users.c.id.desc()], search.offset, search.limit)


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

    def sent_since(self, phone: str, since: datetime) -> list[datetime]:
        return list(self.session.execute(select(sms_codes.c.created_at).where(
            sms_codes.c.phone == phone, sms_codes.c.created_at > since).order_by(sms_codes.c.created_at)).scalars())


class SqlRefreshTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: RefreshToken) -> None:
        self.session.add(token)

    def by_hash(self, token_hash: str, *, lock: bool = True) -> RefreshToken | None:
        query = select(RefreshToken).where(refresh_tokens.c.token_hash == token_hash)
        if lock:  # read again as locked: an unlocked read earlier in the transaction may be stale by now
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(query).scalar_one_or_none()

    def used_since(self, family_id: str, since: datetime) -> bool:
        return self.session.execute(select(exists().where(
            refresh_tokens.c.family_id == family_id, refresh_tokens.c.used_at > since))).scalar_one()

    def revoke_family(self, family_id: str, now: datetime) -> int:
        return self._revoke(refresh_tokens.c.family_id == family_id, now)

    def revoke_user(self, user_id: int, now: datetime) -> int:
        return self._revoke(refresh_tokens.c.user_id == user_id, now)

    def revoke_user_except(self, user_id: int, family_id: str, now: datetime) -> list[str]:
        which = and_(refresh_tokens.c.user_id == user_id, refresh_tokens.c.family_id != family_id)
        ended = self.session.execute(select(refresh_tokens.c.family_id).distinct().where(
            which, refresh_tokens.c.revoked_at.is_(None), refresh_tokens.c.used_at.is_(None),
            refresh_tokens.c.expires_at > now).order_by(refresh_tokens.c.family_id)).scalars().all()
        self.session.execute(update(RefreshToken).where(which, refresh_tokens.c.revoked_at.is_(None))
                             .values(revoked_at=now))
        return list(ended)

    def _revoke(self, which: Any, now: datetime) -> int:
        """Revoke the matching tokens; returns how many families had a live (unused, unexpired) token."""
        live = self.session.execute(select(func.count(distinct(refresh_tokens.c.family_id))).where(
            which, refresh_tokens.c.revoked_at.is_(None), refresh_tokens.c.used_at.is_(None),
            refresh_tokens.c.expires_at > now)).scalar_one()
        self.session.execute(update(RefreshToken).where(which, refresh_tokens.c.revoked_at.is_(None))
                             .values(revoked_at=now))
        return live


# The two reads of every checkout (GetBuyer), built once: building them per call, and SQLAlchemy walking each for its
# cache key, cost ~35 us of CPU each (a prebuilt statement's cache key is memoised). Built on first use: they select
# mapped classes, and the mapping (start_mappers) is never made at import.
@cache
def _own_address() -> Select[Any]:
    return select(Address).where(addresses.c.id == bindparam("address_id"), addresses.c.user_id == bindparam("user_id_"))


@cache
def _identity_of_user() -> Select[Any]:
    return select(IdentityVerification).where(identity_verifications.c.user_id == bindparam("user_id_"))


class SqlAddressRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_user(self, user_id: int) -> None:
        serialize_on(self.session, f"addresses:{user_id}")

    def for_user(self, user_id: int) -> list[Address]:
        return list(self.session.execute(select(Address).where(addresses.c.user_id == user_id).order_by(
            addresses.c.is_default.desc(), addresses.c.created_at.desc(), addresses.c.id.desc())).scalars())

    def get(self, user_id: int, address_id: int) -> Address | None:
        return self.session.execute(_own_address(), {"address_id": address_id, "user_id_": user_id}).scalar_one_or_none()

    def add(self, address: Address) -> None:
        self.session.add(address)
        self.session.flush()

    def remove(self, address: Address) -> None:
        self.session.delete(address)
        self.session.flush()  # gone before another address becomes the default (one default per user)

    def clear_default(self, user_id: int) -> None:
        self.session.flush()
        self.session.execute(update(Address).where(addresses.c.user_id == user_id, addresses.c.is_default.is_(True))
                             .values(is_default=False))


class SqlIdentityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def for_user(self, user_id: int) -> IdentityVerification | None:
        return self.session.execute(_identity_of_user(), {"user_id_": user_id}).scalar_one_or_none()

    def by_fingerprint(self, fingerprint: str) -> IdentityVerification | None:
        return self.session.execute(select(IdentityVerification).where(
            identity_verifications.c.id_number_fingerprint == fingerprint)).scalar_one_or_none()

    def add(self, verification: IdentityVerification) -> None:
        self.session.add(verification)
        try:
            self.session.flush()
        except IntegrityError:  # the use case holds the locks; only a writer that skips them gets here
            raise Conflict("IDENTITY_CONFLICT", "this identity was verified just now; try again") from None

    def lock_fingerprint(self, fingerprint: str) -> None:
        serialize_on(self.session, f"identity:{fingerprint}")


class SqlUserAuditRepository(Generic[Audited]):
    """One user-audit table (role changes, phone changes, passwords set): records added, read per user."""

    def __init__(self, session: Session, record: type[Audited], table: Table) -> None:
        self.session, self.record, self.table = session, record, table

    def add(self, record: Audited) -> None:
        self.session.add(record)

    def for_user(self, user_id: int) -> list[Audited]:
        return list(self.session.execute(select(self.record).where(self.table.c.user_id == user_id)
                                         .order_by(self.table.c.id)).scalars())


class SqlUserLookupRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, lookup: UserLookup) -> None:
        self.session.add(lookup)

    def by_actor(self, actor_id: int) -> list[UserLookup]:
        return list(self.session.execute(select(UserLookup).where(user_lookups.c.actor_id == actor_id)
                                         .order_by(user_lookups.c.id)).scalars())


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


class SqlHistoryRepository:
    """Rows keyed (user, product): viewing again moves the product to the front, never duplicates it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, user_id: int, product_id: int, viewed_at: datetime) -> bool:
        # One statement: the user's row (locked FOR SHARE) decides whether the view is kept at all (no such
        # account, or history cleared at or after the view), the conflict clause whether it is the latest. The
        # lock queues this behind a clear in progress, and PostgreSQL then rechecks history_cleared_at as
        # committed; a clear that comes second waits for this insert and deletes it.
        kept_for = (select(users.c.id, literal(product_id, BigInteger), literal(viewed_at, UTCDateTime()))
                    .where(users.c.id == user_id,
                           or_(users.c.history_cleared_at.is_(None), users.c.history_cleared_at < viewed_at))
                    .with_for_update(read=True))
        statement = conflict_insert(self.session, browsing_history).from_select(
            ["user_id", "product_id", "viewed_at"], kept_for)
        result = self.session.execute(statement.on_conflict_do_update(
            index_elements=["user_id", "product_id"], set_={"viewed_at": statement.excluded.viewed_at},
            where=browsing_history.c.viewed_at < statement.excluded.viewed_at))
        return bool(result.rowcount)

    def trim(self, user_id: int, keep: int) -> None:
        kept = (select(browsing_history.c.product_id).where(browsing_history.c.user_id == user_id)
                .order_by(browsing_history.c.viewed_at.desc(), browsing_history.c.product_id.desc()).limit(keep))
        self.session.execute(delete(browsing_history).where(browsing_history.c.user_id == user_id,
                                                            browsing_history.c.product_id.not_in(kept)))

    def for_user(self, user_id: int) -> list[ViewedProduct]:
        rows = self.session.execute(select(browsing_history.c.product_id, browsing_history.c.viewed_at)
                                    .where(browsing_history.c.user_id == user_id)
                                    .order_by(browsing_history.c.viewed_at.desc(), browsing_history.c.product_id.desc()))
        return [ViewedProduct(product_id=row.product_id, viewed_at=row.viewed_at) for row in rows]

    def clear(self, user_id: int, now: datetime) -> int:
        # The row lock first: a view being recorded finishes (and is deleted below), later ones see `now`.
        self.session.execute(update(users).where(users.c.id == user_id).values(history_cleared_at=now))
        return self.session.execute(delete(browsing_history).where(browsing_history.c.user_id == user_id)).rowcount


class SqlAttemptRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user_id: int, kind: str, at: datetime) -> None:
        self.session.execute(account_attempts.insert().values(user_id=user_id, kind=kind, attempted_at=at))

    def since(self, user_id: int, kind: str, since: datetime) -> list[datetime]:
        return list(self.session.execute(
            select(account_attempts.c.attempted_at).where(
                account_attempts.c.user_id == user_id, account_attempts.c.kind == kind,
                account_attempts.c.attempted_at >= since).order_by(account_attempts.c.attempted_at)).scalars())


class SqlUserUnitOfWork(SqlUnitOfWork, UserUnitOfWork):
    """The user unit of work on the service database (call start_mappers() first)."""

    def __enter__(self) -> Self:
        super().__enter__()
        self.users = SqlUserRepository(self.session)
        self.sms_codes = SqlSmsCodeRepository(self.session)
        self.refresh_tokens = SqlRefreshTokenRepository(self.session)
        self.wechat_accounts = SqlWechatAccountRepository(self.session)
        self.addresses = SqlAddressRepository(self.session)
        self.identities = SqlIdentityRepository(self.session)
        self.role_changes = SqlUserAuditRepository(self.session, RoleChange, user_role_changes)
        self.password_sets = SqlUserAuditRepository(self.session, PasswordSet, user_password_sets)
        self.phone_changes = SqlUserAuditRepository(self.session, PhoneChange, user_phone_changes)
        self.lookups = SqlUserLookupRepository(self.session)
        self.history = SqlHistoryRepository(self.session)
        self.attempts = SqlAttemptRepository(self.session)
        return self
