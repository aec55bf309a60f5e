"""What the user use cases need from storage: repository protocols and the user unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

from services.common.uow import UnitOfWork
from services.user.domain import (
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


class UserRepository(Protocol):
    def add(self, user: User) -> None:
        """Store a new user and give it its id; Conflict PHONE_TAKEN if the phone is taken meanwhile."""

    def by_phone(self, phone: str, *, lock: bool = False) -> User | None:
        """The account with this phone; `lock` holds its row until the transaction ends."""

    def get(self, user_id: int, *, lock: bool = False) -> User | None:
        """The account; `lock` holds its row until the transaction ends (sessions start and end under it)."""

    def count(self) -> int: ...

    def lock_roles(self) -> None:
        """Hold the lock of staff role changes until the transaction ends: a count of who holds a role, taken after
        it, stays true until then (two admins taking each other's admin role at once)."""

    def holding(self, role: str) -> list[int]:
        """The ids of the accounts holding `role` that can log in as staff (a password set: a shopper just made
        staff has none until an admin sets one), as committed (not as loaded earlier in this transaction)."""

    def save_phone(self, user: User) -> None:
        """Write the user's new phone now; Conflict PHONE_BOUND_ELSEWHERE if another account took it meanwhile."""

    def search(self, search: UserSearch) -> tuple[list[User], int]:
        """The page of users matching every criterion of `search`, newest first, and how many match in all."""


class SmsCodeRepository(Protocol):
    def add(self, code: SmsCode) -> None: ...

    def lock_phone(self, phone: str) -> None:
        """Hold the phone's lock until the transaction ends: send limits then hold under concurrency."""

    def latest(self, phone: str, purpose: str, *, lock: bool = False) -> SmsCode | None:
        """The newest code for phone and purpose; `lock` serialises concurrent redemptions."""

    def sent_since(self, phone: str, since: datetime) -> list[datetime]:
        """When the phone was sent codes (any purpose) after `since`, oldest first."""


class AttemptRepository(Protocol):
    def add(self, user_id: int, kind: str, at: datetime) -> None:
        """Count one attempt of `kind` (a wrong password, an identity check...) by the account."""

    def since(self, user_id: int, kind: str, since: datetime) -> list[datetime]:
        """The account's attempts of `kind` from `since` on, oldest first."""


class RefreshTokenRepository(Protocol):
    def add(self, token: RefreshToken) -> None: ...

    def by_hash(self, token_hash: str, *, lock: bool = True) -> RefreshToken | None:
        """The token with this hash, locked until the transaction ends (concurrent refreshes queue); `lock` False
        reads it as it is, unlocked."""

    def used_since(self, family_id: str, since: datetime) -> bool:
        """Whether a token of the family was used after `since`."""

    def revoke_family(self, family_id: str, now: datetime) -> int:
        """Revoke every live token of the family; returns how many sessions (0 or 1) this ended."""

    def revoke_user(self, user_id: int, now: datetime) -> int:
        """Revoke every live token of the user; returns how many families this ended."""

    def revoke_user_except(self, user_id: int, family_id: str, now: datetime) -> list[str]:
        """Revoke every live token of the user but those of the family `family_id`; returns the families this
        ended (those that had a live token)."""


class AddressRepository(Protocol):
    def lock_user(self, user_id: int) -> None:
        """Serialise changes to one user's address book until the transaction ends."""

    def for_user(self, user_id: int) -> list[Address]:
        """The user's addresses, default first, then newest first."""

    def get(self, user_id: int, address_id: int) -> Address | None:
        """The address if it is this user's; another user's is None, as if it did not exist."""

    def add(self, address: Address) -> None:
        """Store a new address and give it its id."""

    def remove(self, address: Address) -> None: ...

    def clear_default(self, user_id: int) -> None:
        """No address of the user is the default any more (before another becomes it)."""


class IdentityRepository(Protocol):
    def for_user(self, user_id: int) -> IdentityVerification | None: ...

    def by_fingerprint(self, fingerprint: str) -> IdentityVerification | None: ...

    def add(self, verification: IdentityVerification) -> None:
        """Store it; Conflict ID_NUMBER_TAKEN / IDENTITY_ALREADY_VERIFIED if another transaction just did."""

    def lock_fingerprint(self, fingerprint: str) -> None:
        """Serialise verifications of one ID number until the transaction ends."""


Audited = TypeVar("Audited", RoleChange, PhoneChange, PasswordSet)


class UserAuditRepository(Protocol[Audited]):
    """Audit records of what was done to a user's account (roles, phone, password), kept for good."""

    def add(self, record: Audited) -> None: ...

    def for_user(self, user_id: int) -> list[Audited]:
        """Oldest first."""


class UserLookupRepository(Protocol):
    def add(self, lookup: UserLookup) -> None: ...

    def by_actor(self, actor_id: int) -> list[UserLookup]:
        """Oldest first."""


class WechatAccountRepository(Protocol):
    def add(self, account: WechatAccount) -> None:
        """Store a binding; Conflict WECHAT_BOUND_JUST_NOW if that WeChat or that user was bound meanwhile."""

    def by_openid(self, appid: str, openid: str) -> WechatAccount | None: ...

    def of_user(self, user_id: int) -> WechatAccount | None: ...

    def remove(self, account: WechatAccount) -> None: ...


class HistoryRepository(Protocol):
    def record(self, user_id: int, product_id: int, viewed_at: datetime) -> bool:
        """Keep the latest view of the product; True when this view is now the one kept. An older view arriving
        late changes nothing, nor does a view of an account that does not exist or one not after the user last
        cleared their history."""

    def trim(self, user_id: int, keep: int) -> None:
        """Drop all but the user's `keep` most recently viewed products."""

    def for_user(self, user_id: int) -> list[ViewedProduct]:
        """Newest first."""

    def clear(self, user_id: int, now: datetime) -> int:
        """Forget the user's history and every view up to `now`, however late it arrives; how many products it held."""


class UserUnitOfWork(UnitOfWork):
    """The user service's unit of work; its repositories are set on entering it."""

    users: UserRepository
    sms_codes: SmsCodeRepository
    refresh_tokens: RefreshTokenRepository
    wechat_accounts: WechatAccountRepository
    addresses: AddressRepository
    identities: IdentityRepository
    role_changes: UserAuditRepository[RoleChange]
    password_sets: UserAuditRepository[PasswordSet]
    phone_changes: UserAuditRepository[PhoneChange]
    lookups: UserLookupRepository
    history: HistoryRepository
    attempts: AttemptRepository
