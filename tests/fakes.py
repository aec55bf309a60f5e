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
from services.user.domain import RefreshToken, SmsCode, User, WechatAccount
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

    def get(self, user_id: int) -> User | None:
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

    def __init__(self) -> None:
        super().__init__()
        self.wechat_accounts = FakeWechatAccountRepository()
        self.users = FakeUserRepository()
        self.sms_codes = FakeSmsCodeRepository()
        self.refresh_tokens = FakeRefreshTokenRepository()
