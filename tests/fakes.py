"""In-memory units of work and repositories, so use cases are unit-tested in milliseconds.

Kept under tests/ rather than services/common: they are test doubles that production code must
never import, and the service images (which copy services/ only) should not ship them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message

from services.common import events, idempotency
from services.common.errors import Conflict
from services.common.uow import UnitOfWork
from services.user.domain import (
    Address,
    IdentityVerification,
    RefreshToken,
    RoleChange,
    SmsCode,
    User,
    ViewedProduct,
    WechatAccount,
)
from services.user.passwords import Passwords
from services.user.uow import UserUnitOfWork


@dataclass(frozen=True)
class PublishedEvent:
    event_type: str
    aggregate_id: str
    payload: Message
    event_id: str


class FakeUnitOfWork(UnitOfWork):
    """Records the events each commit publishes (`published`) and counts commits.

    Events published and idempotency keys claimed since the last commit vanish on rollback, as
    in the database. Changes to domain objects are not undone: assert on `commits` to check a
    use case kept (or dropped) them.
    """

    def __init__(self) -> None:
        self.published: list[PublishedEvent] = []
        self.commits = 0
        self._pending: list[PublishedEvent] = []
        self._keys: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._pending_keys: dict[tuple[str, str], tuple[str, bytes]] = {}

    def commit(self) -> None:
        self.published.extend(self._pending)
        self._keys.update(self._pending_keys)
        self._pending.clear()
        self._pending_keys.clear()
        self.commits += 1

    def rollback(self) -> None:
        self._pending.clear()
        self._pending_keys.clear()

    def publish(self, payload: Message, *, aggregate_id: str) -> str:
        event = PublishedEvent(events.event_type_of(payload), aggregate_id, payload, str(uuid.uuid4()))
        self._pending.append(event)
        return event.event_id

    def run_once(self, *, scope: str, key: str, request: Message | bytes, execute: Callable[[], bytes]) -> bytes:
        idempotency.validate(scope, key)
        request_hash = idempotency.fingerprint(request)
        first = self._keys.get((scope, key)) or self._pending_keys.get((scope, key))
        if first is not None:
            if first[0] != request_hash:
                raise idempotency.key_reused()
            return first[1]
        response = execute()
        self._pending_keys[(scope, key)] = (request_hash, response)
        return response


# The user service

class FakeUserRepository:
    def __init__(self) -> None:
        self.users: list[User] = []

    def add(self, user: User) -> None:
        if user.phone is not None and self.by_phone(user.phone) is not None:
            raise Conflict("PHONE_TAKEN", "an account for this phone was created just now; try again")
        user.id = len(self.users) + 1
        self.users.append(user)

    def by_phone(self, phone: str) -> User | None:
        return next((user for user in self.users if user.phone == phone), None)

    def get(self, user_id: int, *, lock: bool = False) -> User | None:
        return next((user for user in self.users if user.id == user_id), None)

    def count(self) -> int:
        return len(self.users)


class FakeSmsCodeRepository:
    def __init__(self) -> None:
        self.codes: list[SmsCode] = []

    def add(self, code: SmsCode) -> None:
        code.id = len(self.codes) + 1
        self.codes.append(code)

    def lock_phone(self, phone: str) -> None:
        pass  # one thread: nothing to serialise

    def latest(self, phone: str, purpose: str, *, lock: bool = False) -> SmsCode | None:
        codes = [code for code in self.codes if (code.phone, code.purpose) == (phone, purpose)]
        return max(codes, key=lambda code: (code.created_at, code.id or 0), default=None)

    def sent_since(self, phone: str, since: datetime) -> int:
        return sum(1 for code in self.codes if code.phone == phone and code.created_at >= since)


class FakeRefreshTokenRepository:
    def __init__(self) -> None:
        self.tokens: list[RefreshToken] = []

    def add(self, token: RefreshToken) -> None:
        token.id = len(self.tokens) + 1
        self.tokens.append(token)

    def by_hash(self, token_hash: str) -> RefreshToken | None:
        return next((token for token in self.tokens if token.token_hash == token_hash), None)

    def revoke_family(self, family_id: str, now: datetime) -> int:
        return self._revoke([token for token in self.tokens if token.family_id == family_id], now)

    def revoke_user(self, user_id: int, now: datetime) -> int:
        return self._revoke([token for token in self.tokens if token.user_id == user_id], now)

    @staticmethod
    def _revoke(tokens: list[RefreshToken], now: datetime) -> int:
        live = {t.family_id for t in tokens if t.revoked_at is None and t.used_at is None and t.expires_at > now}
        for token in tokens:
            if token.revoked_at is None:
                token.revoked_at = now
        return len(live)


class FakeAddressRepository:
    def __init__(self) -> None:
        self.addresses: list[Address] = []
        self._next_id = 1

    def lock_user(self, user_id: int) -> None:
        pass

    def for_user(self, user_id: int) -> list[Address]:
        mine = [a for a in self.addresses if a.user_id == user_id]
        return sorted(mine, key=lambda a: (not a.is_default, -a.created_at.timestamp(), -(a.id or 0)))

    def get(self, user_id: int, address_id: int) -> Address | None:
        return next((a for a in self.addresses if a.id == address_id and a.user_id == user_id), None)

    def add(self, address: Address) -> None:
        address.id = self._next_id
        self._next_id += 1
        self.addresses.append(address)

    def remove(self, address: Address) -> None:
        self.addresses.remove(address)

    def clear_default(self, user_id: int) -> None:
        for address in self.addresses:
            if address.user_id == user_id:
                address.is_default = False


class FakeIdentityRepository:
    def __init__(self) -> None:
        self.verifications: list[IdentityVerification] = []

    def for_user(self, user_id: int) -> IdentityVerification | None:
        return next((v for v in self.verifications if v.user_id == user_id), None)

    def by_fingerprint(self, fingerprint: str) -> IdentityVerification | None:
        return next((v for v in self.verifications if v.id_number_fingerprint == fingerprint), None)

    def add(self, verification: IdentityVerification) -> None:
        if self.for_user(verification.user_id) or self.by_fingerprint(verification.id_number_fingerprint):
            raise Conflict("IDENTITY_CONFLICT", "this identity was verified just now; try again")
        verification.id = len(self.verifications) + 1
        self.verifications.append(verification)

    def lock_fingerprint(self, fingerprint: str) -> None:
        pass


class FakeRoleChangeRepository:
    def __init__(self) -> None:
        self.changes: list[RoleChange] = []

    def add(self, change: RoleChange) -> None:
        change.id = len(self.changes) + 1
        self.changes.append(change)

    def for_user(self, user_id: int) -> list[RoleChange]:
        return [change for change in self.changes if change.user_id == user_id]


class FakeHistoryRepository:
    def __init__(self) -> None:
        self.views: dict[tuple[int, int], datetime] = {}  # (user, product) -> latest view

    def record(self, user_id: int, product_id: int, viewed_at: datetime) -> None:
        if self.views.get((user_id, product_id), viewed_at) <= viewed_at:
            self.views[(user_id, product_id)] = viewed_at

    def trim(self, user_id: int, keep: int) -> None:
        for viewed in self.for_user(user_id)[keep:]:
            del self.views[(user_id, viewed.product_id)]

    def for_user(self, user_id: int) -> list[ViewedProduct]:
        mine = [ViewedProduct(product_id=p, viewed_at=at) for (u, p), at in self.views.items() if u == user_id]
        return sorted(mine, key=lambda v: (v.viewed_at, v.product_id), reverse=True)

    def clear(self, user_id: int) -> int:
        mine = [key for key in self.views if key[0] == user_id]
        for key in mine:
            del self.views[key]
        return len(mine)


class FakePasswords(Passwords):
    """Passwords without argon2's deliberate slowness (tests/unit/user/test_tokens_and_passwords.py tests the real one)."""

    def __init__(self) -> None:
        pass

    def hash(self, password: str) -> str:
        return "plain:" + password

    def verify(self, password_hash: str | None, password: str) -> bool:
        return password_hash is not None and password_hash == "plain:" + password

    def needs_rehash(self, password_hash: str) -> bool:
        return False


class FakeWechatAccountRepository:
    def __init__(self) -> None:
        self.accounts: list[WechatAccount] = []

    def add(self, account: WechatAccount) -> None:
        if self.by_openid(account.appid, account.openid) or self.of_user(account.user_id):
            raise Conflict("WECHAT_BOUND_JUST_NOW", "this WeChat account was bound a moment ago; try again")
        account.id = len(self.accounts) + 1
        self.accounts.append(account)

    def by_openid(self, appid: str, openid: str) -> WechatAccount | None:
        return next((a for a in self.accounts if (a.appid, a.openid) == (appid, openid)), None)

    def of_user(self, user_id: int) -> WechatAccount | None:
        return next((a for a in self.accounts if a.user_id == user_id), None)

    def remove(self, account: WechatAccount) -> None:
        self.accounts.remove(account)


class FakeUserUnitOfWork(FakeUnitOfWork, UserUnitOfWork):
    """The user unit of work in memory; pass the same one to every use case of a test."""

    users: FakeUserRepository
    sms_codes: FakeSmsCodeRepository
    refresh_tokens: FakeRefreshTokenRepository
    wechat_accounts: FakeWechatAccountRepository
    addresses: FakeAddressRepository
    identities: FakeIdentityRepository
    role_changes: FakeRoleChangeRepository
    history: FakeHistoryRepository

    def __init__(self) -> None:
        super().__init__()
        self.wechat_accounts = FakeWechatAccountRepository()
        self.users = FakeUserRepository()
        self.sms_codes = FakeSmsCodeRepository()
        self.refresh_tokens = FakeRefreshTokenRepository()
        self.addresses = FakeAddressRepository()
        self.identities = FakeIdentityRepository()
        self.role_changes = FakeRoleChangeRepository()
        self.history = FakeHistoryRepository()
