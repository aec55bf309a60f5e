"""In-memory units of work and repositories, so use cases are unit-tested in milliseconds.

Kept under tests/ rather than services/common: they are test doubles that production code must
never import, and the service images (which copy services/ only) should not ship them.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from google.protobuf.message import Message

from services.common import events, idempotency
from services.common.db import round_due
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.common.formats import FULL_PRICE_BP
from services.common.orders import OrderState
from services.common.uow import UnitOfWork
from services.common.wechatpay import NotifyRejected, WechatPayApiError, WechatPayError, WechatPayUnavailable
from services.common.wechatpay import Refund as ChannelRefund
from services.member import channels as member_channels
from services.member.channels import PaidNotice, Payout, PayoutState, never_paid
from services.order.aftersales import AfterSale
from services.order.domain import PURCHASE_LIMIT_STATUSES, CartItem, Order, OrderLine, Refund, RefundStatus, Transition
from services.order.domain import Address as ShippingAddress
from services.order.ports import CatalogSku, CouponLine, CouponOffer, LockedCoupon, StockLine, WalletCharge
from services.order.uow import CaseSearch, LineReservation, ListedRefund, OrderSearch, OrderUnitOfWork, RefundSearch
from services.order.wallet_reviews import ReviewStatus, WalletReview
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
from services.user.passwords import Passwords
from services.user.uow import Audited, UserUnitOfWork
from services.user.wechat import WechatSession


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
        self.rounds: dict[str, datetime] = {}  # job → when its last round started (one_round_at_a_time)
        self.round_resume: dict[str, dict[str, Any]] = {}  # job → where its last round's sweeps stopped

    def commit(self) -> None:
        self.published.extend(self._pending)
        self._keys.update(self._pending_keys)
        self._pending.clear()
        self._pending_keys.clear()
        self.commits += 1
        self._committed()

    def rollback(self) -> None:
        self._pending.clear()
        self._pending_keys.clear()
        self._rolled_back()

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

    def replay(self, *, scope: str, key: str, request: Message | bytes) -> bytes | None:
        idempotency.validate(scope, key)
        first = self._keys.get((scope, key))  # committed ones only, as a read in another transaction sees
        if first is None:
            return None
        if first[0] != idempotency.fingerprint(request):
            raise idempotency.key_reused()
        return first[1]

    def start_round(self, job: str, now: datetime, interval: timedelta) -> bool:
        if not round_due(self.rounds.get(job), now, interval):
            return False
        self.rounds[job] = now
        return True

    def round_places(self, job: str) -> dict[str, Any] | None:
        return dict(self.round_resume.get(job, {}))

    def keep_round_places(self, job: str, places: dict[str, Any]) -> None:
        self.round_resume[job] = dict(places)


# The user service

class FakeUserRepository:
    def __init__(self) -> None:
        self.users: list[User] = []

    def add(self, user: User) -> None:
        if user.phone is not None and self.by_phone(user.phone) is not None:
            raise Conflict("PHONE_TAKEN", "an account for this phone was created just now; try again")
        user.id = len(self.users) + 1
        self.users.append(user)

    def by_phone(self, phone: str, *, lock: bool = False) -> User | None:
        return next((user for user in self.users if user.phone == phone), None)

    def get(self, user_id: int, *, lock: bool = False) -> User | None:
        return next((user for user in self.users if user.id == user_id), None)

    def count(self) -> int:
        return len(self.users)

    def lock_roles(self) -> None:
        pass

    def holding(self, role: str) -> list[int]:
        return [user.id or 0 for user in self.users if role in user.role_set and user.password_hash is not None]

    def save_phone(self, user: User) -> None:
        if any(other is not user and other.phone == user.phone for other in self.users):
            raise Conflict("PHONE_BOUND_ELSEWHERE", "this phone belongs to another account")

    def search(self, search: UserSearch) -> tuple[list[User], int]:
        found = [user for user in sorted(self.users, key=lambda u: u.id or 0, reverse=True)
                 if (not search.phone or user.phone == search.phone)
                 and (not search.user_id or user.id == search.user_id)
                 and user.nickname.startswith(search.nickname_prefix)]
        return found[search.offset:search.offset + search.limit], len(found)


class SilentSms:
    """An SMS provider that sends nothing and, as the console one, lets the code be returned to the caller."""

    reveals_code = True

    def send_code(self, phone: str, code: str, purpose: str) -> None:
        pass


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

    def sent_since(self, phone: str, since: datetime) -> list[datetime]:
        return sorted(code.created_at for code in self.codes if code.phone == phone and code.created_at > since)


class FakeAttemptRepository:
    """Attempts counted since the last commit vanish on rollback, as in the database."""

    def __init__(self) -> None:
        self.attempts: list[tuple[int, str, datetime]] = []
        self.pending: list[tuple[int, str, datetime]] = []

    def add(self, user_id: int, kind: str, at: datetime) -> None:
        self.pending.append((user_id, kind, at))

    def keep(self) -> None:
        self.attempts.extend(self.pending)
        self.pending.clear()

    def since(self, user_id: int, kind: str, since: datetime) -> list[datetime]:
        return sorted(at for who, what, at in self.attempts if (who, what) == (user_id, kind) and at >= since)


class FakeRefreshTokenRepository:
    def __init__(self) -> None:
        self.tokens: list[RefreshToken] = []

    def add(self, token: RefreshToken) -> None:
        token.id = len(self.tokens) + 1
        self.tokens.append(token)

    def by_hash(self, token_hash: str, *, lock: bool = True) -> RefreshToken | None:
        return next((token for token in self.tokens if token.token_hash == token_hash), None)

    def used_since(self, family_id: str, since: datetime) -> bool:
        return any(t.family_id == family_id and t.used_at is not None and t.used_at > since for t in self.tokens)

    def revoke_family(self, family_id: str, now: datetime) -> int:
        return self._revoke([token for token in self.tokens if token.family_id == family_id], now)

    def revoke_user(self, user_id: int, now: datetime) -> int:
        return self._revoke([token for token in self.tokens if token.user_id == user_id], now)

    def revoke_user_except(self, user_id: int, family_id: str, now: datetime) -> list[str]:
        tokens = [token for token in self.tokens if token.user_id == user_id and token.family_id != family_id]
        ended = sorted({t.family_id for t in tokens if t.revoked_at is None and t.used_at is None and t.expires_at > now})
        self._revoke(tokens, now)
        return ended

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


class FakeUserAuditRepository(Generic[Audited]):
    def __init__(self) -> None:
        self.records: list[Audited] = []

    def add(self, record: Audited) -> None:
        record.id = len(self.records) + 1
        self.records.append(record)

    def for_user(self, user_id: int) -> list[Audited]:
        return [record for record in self.records if record.user_id == user_id]


class FakeUserLookupRepository:
    def __init__(self) -> None:
        self.lookups: list[UserLookup] = []

    def add(self, lookup: UserLookup) -> None:
        lookup.id = len(self.lookups) + 1
        self.lookups.append(lookup)

    def by_actor(self, actor_id: int) -> list[UserLookup]:
        return [lookup for lookup in self.lookups if lookup.actor_id == actor_id]


class FakeHistoryRepository:
    def __init__(self, users: FakeUserRepository) -> None:
        self.users = users
        self.views: dict[tuple[int, int], datetime] = {}  # (user, product) -> latest view
        self.cleared_at: dict[int, datetime] = {}  # user -> when they last cleared their history

    def record(self, user_id: int, product_id: int, viewed_at: datetime) -> bool:
        cleared_at = self.cleared_at.get(user_id)
        if self.users.get(user_id) is None or (cleared_at is not None and cleared_at >= viewed_at):
            return False
        latest = self.views.get((user_id, product_id))
        if latest is not None and latest >= viewed_at:
            return False
        self.views[(user_id, product_id)] = viewed_at
        return True

    def trim(self, user_id: int, keep: int) -> None:
        for viewed in self.for_user(user_id)[keep:]:
            del self.views[(user_id, viewed.product_id)]

    def for_user(self, user_id: int) -> list[ViewedProduct]:
        mine = [ViewedProduct(product_id=p, viewed_at=at) for (u, p), at in self.views.items() if u == user_id]
        return sorted(mine, key=lambda v: (v.viewed_at, v.product_id), reverse=True)

    def clear(self, user_id: int, now: datetime) -> int:
        if self.users.get(user_id) is not None:
            self.cleared_at[user_id] = now
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


class FakeWechat:
    """WeChat's code2session: code -> openid, each code usable once."""

    appid = "wx0000000000000001"

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def code_for(self, openid: str) -> str:
        code = f"code-{len(self.codes)}-{uuid.uuid4().hex[:6]}"
        self.codes[code] = openid
        return code

    def code2session(self, code: str) -> WechatSession:
        if code not in self.codes:
            raise InvalidInput("WECHAT_CODE_INVALID", "the WeChat login code is invalid or expired")
        return WechatSession(openid=self.codes.pop(code), unionid=None, session_key="k")


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
    role_changes: FakeUserAuditRepository[RoleChange]
    password_sets: FakeUserAuditRepository[PasswordSet]
    phone_changes: FakeUserAuditRepository[PhoneChange]
    lookups: FakeUserLookupRepository
    history: FakeHistoryRepository
    attempts: FakeAttemptRepository

    def __init__(self) -> None:
        super().__init__()
        self.wechat_accounts = FakeWechatAccountRepository()
        self.users = FakeUserRepository()
        self.sms_codes = FakeSmsCodeRepository()
        self.refresh_tokens = FakeRefreshTokenRepository()
        self.addresses = FakeAddressRepository()
        self.identities = FakeIdentityRepository()
        self.role_changes = FakeUserAuditRepository[RoleChange]()
        self.password_sets = FakeUserAuditRepository[PasswordSet]()
        self.phone_changes = FakeUserAuditRepository[PhoneChange]()
        self.lookups = FakeUserLookupRepository()
        self.history = FakeHistoryRepository(self.users)
        self.attempts = FakeAttemptRepository()

    def commit(self) -> None:
        self.attempts.keep()
        super().commit()

    def rollback(self) -> None:
        self.attempts.pending.clear()
        super().rollback()


# The order service

class FakeCartRepository:
    def __init__(self) -> None:
        self.items: list[CartItem] = []
        self._next_id = 1

    def lock_user(self, user_id: int) -> None:
        pass  # one thread: nothing to serialise

    def for_user(self, user_id: int) -> list[CartItem]:
        return [item for item in self.items if item.user_id == user_id]

    def add(self, item: CartItem) -> None:
        item.id, self._next_id = self._next_id, self._next_id + 1
        self.items.append(item)

    def remove(self, *items: CartItem) -> int:
        there = [item for item in items if item in self.items]
        for item in there:
            self.items.remove(item)
        return len(there)


class FakeOrderRepository:
    def __init__(self, cases: Callable[[], list[AfterSale]] = list) -> None:
        self.orders: list[Order] = []
        self.cases = cases  # the after-sales cases, as the database's after_sales table

    def add(self, order: Order) -> None:
        order.id = len(self.orders) + 1
        for number, line in enumerate(order.lines, start=1):
            line.id = order.id * 1000 + number
        self.orders.append(order)

    def get(self, order_id: int, *, lock: bool = False) -> Order | None:
        return next((order for order in self.orders if order.id == order_id), None)

    def by_order_no(self, order_no: str, *, lock: bool = False) -> Order | None:
        return next((order for order in self.orders if order.order_no == order_no), None)

    def lines_of(self, order_ids: Collection[int]) -> dict[int, list[OrderLine]]:
        return {order.id: list(order.lines) for order in self.orders if order.id in order_ids}

    def states(self, order_nos: list[str]) -> list[tuple[str, str, bool]]:
        return [(order.order_no, order.status, order.paid_at is not None) for order in self.orders
                if order.order_no in order_nos]

    def search(self, search: OrderSearch) -> tuple[list[Order], int]:
        found = [order for order in self.orders
                 if (not search.user_id or order.user_id == search.user_id)
                 and (not search.statuses or order.status in search.statuses)
                 and (not search.order_no or order.order_no == search.order_no)
                 and (search.created_from is None or order.created_at >= search.created_from)
                 and (search.created_to is None or order.created_at < search.created_to)]
        found.sort(key=lambda order: (order.created_at, order.id or 0), reverse=True)
        return found[search.offset:search.offset + search.limit], len(found)

    def lock_expired(self, now: datetime, limit: int) -> list[Order]:
        expired = [order for order in self.orders if order.status == "PENDING_PAYMENT" and order.pay_deadline <= now
                   and order.wallet_attempt_at is None]
        return sorted(expired, key=lambda order: order.pay_deadline)[:limit]

    def wallet_attempts_before(self, before: datetime, limit: int) -> list[Order]:
        found = [order for order in self.orders if order.wallet_attempt_at is not None
                 and order.wallet_attempt_at <= before]
        return sorted(found, key=lambda order: order.wallet_attempt_at or before)[:limit]

    def lock_confirmable_before(self, before: datetime, held_before: datetime, limit: int,
                                skip: Collection[int] = ()) -> list[Order]:
        def clock(order: Order) -> datetime:
            return order.confirm_clock_at or order.shipped_at or before

        busy = {case.order_id for case in self.cases() if case.is_open}
        shipped = [order for order in self.orders if order.status == "SHIPPED" and order.shipped_at
                   and order.id not in skip
                   and ((clock(order) <= before and order.id not in busy) or order.shipped_at <= held_before)]
        return sorted(shipped, key=clock)[:limit]

    def unpaid_prepaid(self, prepaid_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        return [(order.id or 0, order.wechat_out_trade_no) for order in self.orders if order.status == "PENDING_PAYMENT"
                and order.prepaid_at is not None and order.prepaid_at <= prepaid_before
                and (order.id or 0) > after_id][:limit]

    def count_unpaid(self, user_id: int) -> int:
        return sum(order.user_id == user_id and order.status == "PENDING_PAYMENT" for order in self.orders)

    def units_held(self, user_id: int, product_ids: Collection[int]) -> dict[int, int]:
        held: dict[int, int] = {}
        for order in self.orders:
            if order.user_id == user_id and order.status in PURCHASE_LIMIT_STATUSES:
                for line in order.lines:
                    if line.product_id in product_ids and line.quantity > line.refunded_quantity:
                        held[line.product_id] = held.get(line.product_id, 0) + line.quantity - line.refunded_quantity
        return held

    def count_unpaid_due(self, due: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.orders:
            if order.status == "PENDING_PAYMENT" and order.pay_deadline <= due:
                waiting = ("wallet" if order.wallet_attempt_at is not None
                           else "wechat" if order.prepaid_at is not None else "none")
                counts[waiting] = counts.get(waiting, 0) + 1
        return counts


class FakeSubmitAttempts:
    """Each write is committed at once, as `record` and `move` are."""

    def __init__(self) -> None:
        self.attempts: dict[tuple[int, str], str] = {}

    def record(self, user_id: int, key: str, order_no: str, now: datetime) -> bool:
        if (user_id, key) in self.attempts:
            return False
        self.attempts[(user_id, key)] = order_no
        return True

    def last(self, user_id: int, key: str) -> str | None:
        return self.attempts.get((user_id, key))

    def move(self, user_id: int, key: str, order_no: str, now: datetime) -> None:
        self.attempts[(user_id, key)] = order_no


class FakeWalletReviewRepository:
    def __init__(self) -> None:
        self.reviews: list[WalletReview] = []

    def add(self, review: WalletReview) -> None:
        if self.for_order(review.order_id) is not None:
            raise AssertionError("the unique index on wallet_reviews.order_id would refuse this")
        review.id = len(self.reviews) + 1
        self.reviews.append(review)

    def get(self, review_id: int) -> WalletReview | None:
        return next((review for review in self.reviews if review.id == review_id), None)

    def for_order(self, order_id: int) -> WalletReview | None:
        return next((review for review in self.reviews if review.order_id == order_id), None)

    def search(self, *, status: str, offset: int, limit: int) -> tuple[list[WalletReview], int]:
        found = sorted((review for review in self.reviews if not status or review.status == status),
                       key=lambda review: (review.flagged_at, review.id or 0))
        return found[offset:offset + limit], len(found)

    def count_open(self) -> int:
        return sum(review.status == ReviewStatus.OPEN for review in self.reviews)


class FakeAfterSaleRepository:
    def __init__(self, refund_nos: Callable[[], set[str]] = set) -> None:
        self.cases: list[AfterSale] = []
        self.refund_nos = refund_nos  # the numbers of the refunds started: the join with refunds

    def add(self, case: AfterSale) -> None:
        if {line.line_id for c in self.cases for line in c.lines if line.open} & {line.line_id for line in case.lines}:
            raise AssertionError("the unique index on open case lines would refuse this")
        case.id = len(self.cases) + 1
        self.cases.append(case)

    def get(self, case_id: int, *, lock: bool = False) -> AfterSale | None:
        return next((case for case in self.cases if case.id == case_id), None)

    def for_order(self, order_id: int) -> list[AfterSale]:
        return [case for case in self.cases if case.order_id == order_id]

    def case_times(self, order_ids: list[int]) -> dict[int, list[tuple[datetime, datetime | None]]]:
        times: dict[int, list[tuple[datetime, datetime | None]]] = {}
        for case in self.cases:
            if case.order_id in order_ids:
                times.setdefault(case.order_id, []).append((case.created_at, case.closed_at))
        return times

    def open_cases(self, line_ids: Collection[int]) -> dict[int, int]:
        return {line.line_id: case.id or 0 for case in self.cases for line in case.lines
                if line.open and line.line_id in line_ids}

    def lock_awaiting_return_before(self, before: datetime, limit: int) -> list[AfterSale]:
        due = [case for case in self.cases if case.status == "AWAITING_RETURN" and case.updated_at <= before]
        return sorted(due, key=lambda case: case.updated_at)[:limit]

    def refunding_unstarted_before(self, before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        started = self.refund_nos()
        return [(case.id or 0, case.case_no) for case in sorted(self.cases, key=lambda case: case.id or 0)
                if case.status == "REFUNDING" and case.refund_no and case.refund_no not in started
                and case.updated_at <= before and (case.id or 0) > after_id][:limit]

    def search(self, search: CaseSearch) -> tuple[list[AfterSale], int]:
        found = [case for case in self.cases
                 if all(not wanted or getattr(case, name) == wanted for name, wanted in (
                     ("user_id", search.user_id), ("order_id", search.order_id), ("status", search.status),
                     ("type", search.type),
                     ("order_no", search.order_no)))
                 and (search.created_from is None or case.created_at >= search.created_from)
                 and (search.created_to is None or case.created_at < search.created_to)]
        found.sort(key=lambda case: (case.created_at, case.id or 0), reverse=True)
        return found[search.offset:search.offset + search.limit], len(found)


class FakeRowLocks:
    """Row locks as SELECT ... FOR UPDATE takes them: held by a thread until its transaction ends (`release`, on
    commit or rollback), taken again in that transaction for free. `waiting` is set whenever a thread has to wait
    for one, so a race test can let the holder go on once the other thread is blocked."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._held = threading.local()

    def take(self, key: str) -> None:
        held = self._mine()
        if key in held:
            return
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            self.waiting.set()
            if not lock.acquire(timeout=10):
                raise AssertionError(f"waited 10 s for the row lock on {key}: a deadlock")
        held.add(key)

    def release(self) -> None:
        held = self._mine()
        for key in held:
            self._locks[key].release()
        held.clear()

    def _mine(self) -> set[str]:
        if not hasattr(self._held, "keys"):
            self._held.keys = set()
        return self._held.keys


class FakeRefundRepository:
    def __init__(self, order_nos: Callable[[], dict[int, str]] = dict,
                 histories: Callable[[], dict[int, list[Transition]]] = dict) -> None:
        self.refunds: list[Refund] = []
        self._order_nos = order_nos
        self.histories = histories  # each order's history by its id: the join with order_transitions
        self.row_locks = FakeRowLocks()

    @property
    def order_nos(self) -> dict[int, str]:
        return self._order_nos()

    def add(self, refund: Refund) -> None:
        refund.id = len(self.refunds) + 1
        for number, line in enumerate(refund.lines, start=1):
            line.id, line.refund_id = refund.id * 1000 + number, refund.id
        self.refunds.append(refund)

    def get(self, refund_no: str, *, lock: bool = False) -> Refund | None:
        if lock:
            self.row_locks.take(refund_no)
        return next((refund for refund in self.refunds if refund.refund_no == refund_no), None)

    def for_order(self, order_id: int) -> list[Refund]:
        return [refund for refund in self.refunds if refund.order_id == order_id]

    def pending_before(self, created_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        return [(refund.id or 0, refund.refund_no) for refund in self.refunds
                if refund.status == RefundStatus.PENDING and refund.created_at <= created_before
                and (refund.id or 0) > after_id][:limit]

    def closed_noted_unmarked(self, step_words: str, created_since: datetime, after_id: int,
                              limit: int) -> list[tuple[int, str]]:
        return [(refund.id or 0, refund.refund_no) for refund in self.refunds
                if refund.status == RefundStatus.CLOSED and refund.paid_after_close_at is None
                and refund.created_at >= created_since
                and (refund.id or 0) > after_id
                and any(step.reason.startswith(f"refund {refund.refund_no}{step_words}")
                        for step in self.histories().get(refund.order_id, []))][:limit]

    def waiting_since(self, status: RefundStatus, *, before: datetime | None = None) -> tuple[int, datetime | None]:
        since = [refund.updated_at for refund in self.refunds
                 if refund.status == status and (before is None or refund.updated_at <= before)]
        return len(since), min(since, default=None)

    def search(self, search: RefundSearch) -> tuple[list[ListedRefund], int]:
        """As the SQL repository orders them (services/order/db.py _refund_order); `order_nos` stands for the join
        with orders."""
        found = [refund for refund in self.refunds
                 if (not search.status or refund.status == search.status)
                 and (not search.source or refund.source == search.source
                      or refund.source.startswith(f"{search.source}:"))
                 and (not search.order_no or self.order_nos.get(refund.order_id) == search.order_no)
                 and (search.created_from is None or refund.created_at >= search.created_from)
                 and (search.created_to is None or refund.created_at < search.created_to)]
        waiting = [RefundStatus.ABNORMAL, RefundStatus.PENDING]
        ended = sorted((refund for refund in found if refund.status not in waiting),
                       key=lambda refund: (refund.created_at, refund.id or 0), reverse=True)
        ordered = [refund for status in waiting for refund in sorted(
            (refund for refund in found if refund.status == status),
            key=lambda refund: (refund.updated_at, refund.id or 0))] + ended
        page = ordered[search.offset:search.offset + search.limit]
        return [ListedRefund(refund, self.order_nos.get(refund.order_id, "")) for refund in page], len(found)

    def reserve(self, order: Order, amount_fen: int, lines: list[LineReservation]) -> bool:
        """All or nothing, checked as the database's conditional updates and CHECKs would."""
        by_id = {line.id: line for line in order.lines}
        if order.refunded_fen + amount_fen > order.payable_fen or any(
                item.line_id not in by_id or by_id[item.line_id].refunded_quantity + item.quantity >
                by_id[item.line_id].quantity or by_id[item.line_id].refunded_fen + item.amount_fen > item.cap_fen
                for item in lines):
            return False
        order.refunded_fen += amount_fen
        for item in lines:
            by_id[item.line_id].refunded_quantity += item.quantity
            by_id[item.line_id].refunded_fen += item.amount_fen
        return True

    def give_back(self, order: Order, refund: Refund) -> None:
        by_id = {line.id: line for line in order.lines}
        order.refunded_fen -= refund.amount_fen
        for item in refund.lines:
            by_id[item.line_id].refunded_quantity -= item.quantity
            by_id[item.line_id].refunded_fen -= item.amount_fen


class FakeOrderUnitOfWork(FakeUnitOfWork, OrderUnitOfWork):
    carts: FakeCartRepository
    orders: FakeOrderRepository
    after_sales: FakeAfterSaleRepository
    refunds: FakeRefundRepository
    wallet_reviews: FakeWalletReviewRepository
    submit_attempts: FakeSubmitAttempts

    def __init__(self) -> None:
        super().__init__()
        self.carts = FakeCartRepository()
        self.after_sales = FakeAfterSaleRepository(lambda: {refund.refund_no for refund in self.refunds.refunds})
        self.orders = FakeOrderRepository(lambda: self.after_sales.cases)
        self.refunds = FakeRefundRepository(lambda: {order.id or 0: order.order_no for order in self.orders.orders},
                                            lambda: {order.id or 0: order.history for order in self.orders.orders})
        self.wallet_reviews = FakeWalletReviewRepository()
        self.submit_attempts = FakeSubmitAttempts()

    def commit(self) -> None:
        super().commit()
        self.refunds.row_locks.release()

    def rollback(self) -> None:
        super().rollback()
        self.refunds.row_locks.release()


@dataclass
class FakeRefundPayments:
    """WeChat Pay's refund side: remembers refunds, answers `status` (PROCESSING), or fails with `error`."""

    status: str = "PROCESSING"
    error: WechatPayError | None = None
    asked: dict[str, ChannelRefund] = field(default_factory=dict)
    notice: ChannelRefund | None = None

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        if self.error is not None:
            raise self.error
        self.asked.setdefault(out_refund_no, ChannelRefund(out_refund_no, f"wx-{out_refund_no}", out_trade_no, "42",
                                                           self.status, refund_fen, total_fen, None))
        return self.asked[out_refund_no]

    def query_refund(self, out_refund_no: str) -> ChannelRefund:
        if self.error is not None:
            raise self.error
        if out_refund_no not in self.asked:
            raise WechatPayApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return replace(self.asked[out_refund_no], status=self.status)

    def verify_refund_notify(self, headers: Mapping[str, str], body: bytes | str) -> ChannelRefund:
        if self.notice is None or headers.get("Wechatpay-Signature") != "good":
            raise NotifyRejected("Wechatpay-Signature does not verify")
        return self.notice


@dataclass
class CuedRefunds(FakeRefundPayments):
    """WeChat Pay that runs `meanwhile` (once) when it is first sent a refund (`on` "refund") or asked about one
    ("query"), before it takes that call in: another staff action at that very moment."""

    on: str = "refund"
    meanwhile: Callable[[], None] | None = None

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        self._cue("refund")
        return super().refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=refund_fen,
                              total_fen=total_fen, reason=reason)

    def query_refund(self, out_refund_no: str) -> ChannelRefund:
        self._cue("query")
        return super().query_refund(out_refund_no)

    def _cue(self, call: str) -> None:
        if call == self.on and self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()


@dataclass
class LostAnswerRefunds(FakeRefundPayments):
    """WeChat Pay whose answers are lost on the way back (our timeout, a reset connection, a 5xx): the next
    `lost_sends` refunds it is sent raise WechatPayUnavailable though WeChat Pay got them, not processed yet (a query
    answers RESOURCE_NOT_EXISTS) until `process()`, which takes them in as sent (answering `status` from then on);
    the next `lost_queries` queries raise WechatPayUnavailable. `sent`: every refund number it was sent."""

    lost_sends: int = 0
    lost_queries: int = 0
    sent: list[str] = field(default_factory=list)
    unprocessed: list[dict[str, Any]] = field(default_factory=list)

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        self.sent.append(out_refund_no)
        if not self.lost_sends:
            return super().refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=refund_fen,
                                  total_fen=total_fen, reason=reason)
        self.lost_sends -= 1
        self.unprocessed.append({"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                                 "refund_fen": refund_fen, "total_fen": total_fen, "reason": reason})
        raise WechatPayUnavailable("POST /v3/refund/domestic/refunds: read timed out")

    def query_refund(self, out_refund_no: str) -> ChannelRefund:
        if self.lost_queries:
            self.lost_queries -= 1
            raise WechatPayUnavailable("GET /v3/refund/domestic/refunds: read timed out")
        return super().query_refund(out_refund_no)

    def process(self) -> None:
        """WeChat Pay processes the refunds whose answers were lost."""
        for call in self.unprocessed:
            super().refund(**call)
        self.unprocessed.clear()


# The order service's neighbours (services.order.ports)

HOME = ShippingAddress(name="张三", phone="13800138000", province="浙江省", city="杭州市", district="西湖区", detail="文三路1号")


@dataclass
class FakeCatalog:
    skus_by_id: dict[int, CatalogSku] = field(default_factory=dict)

    def put(self, sku_id: int, *, product_id: int = 10, price_fen: int = 1000, on_sale: bool = True,
            stock_status: str = "in_stock", category_id: int = 3,
            category_path: tuple[int, ...] = (), max_per_shopper: int = 0, available: int | None = None) -> CatalogSku:
        sku = CatalogSku(sku_id=sku_id, product_id=product_id, name=f"商品{sku_id}", spec="颜色:黑",
                         price_fen=price_fen, stock_status=stock_status, on_sale=on_sale, category_id=category_id,
                         category_path=category_path, max_per_shopper=max_per_shopper, available=available)
        self.skus_by_id[sku_id] = sku
        return sku

    def skus(self, sku_ids: set[int]) -> dict[int, CatalogSku]:
        return {sku_id: sku for sku_id, sku in self.skus_by_id.items() if sku_id in sku_ids}


@dataclass
class FakeCategories:
    """The catalogue's categories as the member service asks about them (coupon templates): `known` ids (None: any
    positive id); `down` answers as a product service that does not answer (503 PRODUCT_UNAVAILABLE)."""

    known: Collection[int] | None = None
    down: bool = False
    asked: list[list[int]] = field(default_factory=list)

    def unknown(self, category_ids: Collection[int]) -> list[int]:
        self.asked.append(sorted(category_ids))
        if self.down:
            raise DomainError("PRODUCT_UNAVAILABLE", "the product service did not answer", kind=ErrorKind.UNAVAILABLE)
        return sorted(c for c in set(category_ids) if self.known is not None and c not in self.known)


@dataclass
class FakePhones:
    """Who has bound a phone, as the member service asks the user service: everyone but the `wechat_only` users."""

    wechat_only: Collection[int] = ()
    asked: list[int] = field(default_factory=list)
    unavailable: bool = False  # the user service does not answer: 503 USER_UNAVAILABLE

    def has_phone(self, user_id: int) -> bool:
        self.asked.append(user_id)
        if self.unavailable:
            raise DomainError("USER_UNAVAILABLE", "the user service did not answer", kind=ErrorKind.UNAVAILABLE)
        return user_id not in self.wechat_only


class SimulatedPayout:
    """The member service's payout channel that pays nothing, succeeds always and remembers what it paid."""

    def __init__(self) -> None:
        self.paid: dict[str, int] = {}

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        self.paid.setdefault(payout_no, amount_fen)
        return Payout(PayoutState.PAID, "SIM" + hashlib.sha256(payout_no.encode()).hexdigest()[:24],
                      channel="simulated")

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return self.pay(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)


class SimulatedPayment:
    """The member service's recharge payments without a channel: parameters only (tests credit directly)."""

    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int, user_id: int = 0,
                now: datetime | None = None, expires_at: datetime | None = None) -> dict[str, str]:
        return {"channel": channel, "out_trade_no": out_trade_no, "amount_fen": str(amount_fen), "simulated": "true"}

    def verify(self, *, channel: str, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        raise member_channels.NotifyRejected("the simulated channel takes no notifies")

    def query(self, *, channel: str, out_trade_no: str) -> PaidNotice | None:
        return None

    def close(self, *, channel: str, out_trade_no: str) -> PaidNotice:
        return never_paid(out_trade_no)  # nothing was started anywhere, so nothing can pay it


@dataclass
class FakeStock:
    """The product service's reservations over a FakeCatalog: SKU_UNAVAILABLE, OUT_OF_STOCK, or the snapshot."""

    catalog: FakeCatalog
    available: dict[int, int] = field(default_factory=dict)
    reserved: dict[str, list[StockLine]] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    lost_answer: bool = False  # reserve holds the units, then fails as a call whose answer was lost

    def reserve(self, order_no: str, lines: list[StockLine]) -> dict[int, CatalogSku]:
        skus = self.catalog.skus({line.sku_id for line in lines})
        for line in lines:
            if line.sku_id not in skus or not skus[line.sku_id].on_sale:
                raise DomainError("SKU_UNAVAILABLE", "a product is no longer on sale", details={"sku_id": line.sku_id})
            if self.available.get(line.sku_id, 0) < line.quantity:
                raise DomainError("OUT_OF_STOCK", "not enough stock", details={"sku_id": line.sku_id})
        for line in lines:
            self.available[line.sku_id] -= line.quantity
        self.reserved[order_no] = lines
        if self.lost_answer:
            raise DomainError("PRODUCT_UNAVAILABLE", "the product service did not answer", kind=ErrorKind.UNAVAILABLE)
        return skus

    def release(self, order_no: str) -> None:
        for line in self.reserved.pop(order_no, []):
            self.available[line.sku_id] += line.quantity
        self.released.append(order_no)


@dataclass
class FakeMembers:
    bp: int = FULL_PRICE_BP  # the member's rate: the share of the price paid, in basis points (9025 = 90.25%)
    coupon_fen: int = 0
    coupon_categories: tuple[int, ...] = ()  # the coupon's template is limited to these (none: every category)
    points: int = 0
    fen_per_point: float = 0.01  # 100 points = 1 yuan
    balance_fen: int = 0
    locked_coupons: dict[str, int] = field(default_factory=dict)
    locked_points: dict[str, int] = field(default_factory=dict)
    balance_payments: list[tuple[str, int]] = field(default_factory=list)  # (order_no, fen), once per order
    balance_refunds: dict[str, int] = field(default_factory=dict)  # refund_no -> fen, once each
    refund_asks: list[str] = field(default_factory=list)  # refund_nos RefundToBalance was asked for, every time
    fail_points: bool = False
    refund_error: DomainError | None = None
    user_id: int = 1  # whose wallet this is
    pay_error: DomainError | None = None       # PayWithBalance fails before charging
    pay_answer_lost: DomainError | None = None  # PayWithBalance charges, then its answer is lost (raised)
    query_error: DomainError | None = None     # VoidBalancePayment fails
    queried: list[str] = field(default_factory=list)  # order_nos VoidBalancePayment was asked about
    voided: set[str] = field(default_factory=set)  # order_nos whose wallet payment is void
    offers: list[CouponOffer] = field(default_factory=list)
    coupon_lines: dict[str, list[CouponLine]] = field(default_factory=dict)  # the lines each coupon call was given

    def discount_bp(self) -> int:
        return self.bp

    def usable_coupons(self, lines: list[CouponLine]) -> list[CouponOffer]:
        self.coupon_lines["usable_coupons"] = lines
        return list(self.offers)

    def quote_coupon(self, coupon_id: int, lines: list[CouponLine]) -> int:
        self.coupon_lines["quote_coupon"] = lines
        return self.coupon_fen

    def lock_coupon(self, order_no: str, coupon_id: int, lines: list[CouponLine]) -> LockedCoupon:
        self.coupon_lines["lock_coupon"] = lines
        self.locked_coupons[order_no] = coupon_id
        return LockedCoupon(self.coupon_fen, frozenset(self.coupon_categories))

    def release_coupon(self, order_no: str) -> None:
        self.locked_coupons.pop(order_no, None)

    def quote_points(self, points: int, payable_fen: int) -> tuple[int, int]:
        usable = min(points, self.points, payable_fen * 100)
        return usable, usable // 100

    def lock_points(self, order_no: str, points: int, payable_fen: int) -> tuple[int, int]:
        if self.fail_points:
            raise DomainError("POINTS_INSUFFICIENT", "not enough points")
        usable, fen = self.quote_points(points, payable_fen)
        self.locked_points[order_no] = usable
        return usable, fen

    def release_points(self, order_no: str) -> None:
        self.locked_points.pop(order_no, None)

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None:
        if self.pay_error is not None:
            raise self.pay_error
        if amount_fen <= 0:
            raise InvalidInput("AMOUNT_INVALID", "the amount must be positive")
        if order_no in self.voided:
            raise DomainError("BALANCE_PAYMENT_VOID", "the wallet payment of this order was closed")
        if all(paid != order_no for paid, _ in self.balance_payments):  # once per order, as the ledger's key
            if self.balance_fen < amount_fen:
                raise DomainError("BALANCE_INSUFFICIENT", "not enough balance")
            self.balance_fen -= amount_fen
            self.balance_payments.append((order_no, amount_fen))
        if self.pay_answer_lost is not None:
            raise self.pay_answer_lost

    def void_balance_payment(self, order_no: str) -> WalletCharge | None:
        self.queried.append(order_no)
        if self.query_error is not None:
            raise self.query_error
        charge = next((WalletCharge(self.user_id, fen) for paid, fen in self.balance_payments if paid == order_no), None)
        if charge is None:
            self.voided.add(order_no)
        return charge

    def refund_to_balance(self, refund_no: str, order_no: str, user_id: int, amount_fen: int) -> None:
        self.refund_asks.append(refund_no)
        if self.refund_error is not None:
            raise self.refund_error
        if refund_no not in self.balance_refunds:
            self.balance_refunds[refund_no] = amount_fen
            self.balance_fen += amount_fen


@dataclass
class FakeUsers:
    verified_ids: set[int] = field(default_factory=lambda: {1, 2})
    openids: dict[int, str] = field(default_factory=lambda: {1: "o-alice"})
    addresses: dict[tuple[int, int], ShippingAddress] = field(default_factory=lambda: {(1, 7): HOME, (2, 8): HOME})

    def payer_openid(self, user_id: int) -> str:
        return self.openids.get(user_id, "")

    def buyer_address(self, user_id: int, address_id: int) -> ShippingAddress | None:
        if user_id not in self.verified_ids:
            return None
        if (user_id, address_id) not in self.addresses:
            raise NotFound("ADDRESS_NOT_FOUND", "no such address")
        return self.addresses[(user_id, address_id)]


Params = ParamSpec("Params")
Answer = TypeVar("Answer")


def first_call_followed_by(call: Callable[Params, Answer], meanwhile: Callable[[], object], *,
                           before: bool = False) -> Callable[Params, Answer]:
    """`call`, whose first call is followed at once by `meanwhile` (preceded by it, with `before`), before its caller
    goes on: the moment a test makes a race happen at, in a fake or around a real repository or client's method."""
    pending = [meanwhile]

    @functools.wraps(call)
    def called(*args: Params.args, **kwargs: Params.kwargs) -> Answer:
        if before and pending:
            pending.pop()()
        answer = call(*args, **kwargs)
        if pending:
            pending.pop()()
        return answer
    return called


class ClosesTransactions(Protocol):
    def close(self, out_trade_no: str) -> None: ...


Wechat = TypeVar("Wechat", bound=ClosesTransactions)


def paid_while_closing(wechat: Wechat, meanwhile: Callable[[], object]) -> Wechat:
    """`wechat` (a fake WeChat Pay, or the real client on the simulator) as the shopper pays the order again (another
    phone, another tap) just as a cancel has closed the transaction it saw: `meanwhile` runs right after the first
    close, before the cancel goes on to take the order's row lock."""
    wechat.close = first_call_followed_by(wechat.close, meanwhile)  # type: ignore[method-assign]
    return wechat


def pause(reached: threading.Event, go: threading.Event) -> Callable[[], None]:
    """What a racing step does at a test's pause (first_call_followed_by): sets `reached`, then waits for `go`."""
    def wait() -> None:
        reached.set()
        assert go.wait(60), "the test never let the paused step go on"
    return wait


class FakeOrders:
    """The order service as the product service's reservation sweep and the member service's checkout-hold sweep ask
    it (services/common/orders.py); `down` makes it not answer."""

    def __init__(self) -> None:
        self.known: dict[str, OrderState] = {}
        self.down = False
        self.asked: list[list[str]] = []

    def place(self, order_no: str, status: str, *, paid: bool = False) -> None:
        self.known[order_no] = OrderState(order_no, status, paid)

    def states(self, order_nos: Sequence[str]) -> dict[str, OrderState]:
        self.asked.append(list(order_nos))
        if self.down:
            raise DomainError("ORDER_UNAVAILABLE", "the order service did not answer", kind=ErrorKind.UNAVAILABLE)
        return {order_no: self.known[order_no] for order_no in order_nos if order_no in self.known}
