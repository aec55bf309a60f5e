"""The member unit of work in memory (the other services' fakes are in tests/fakes.py)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import date, datetime
from enum import Enum
from typing import Self

from services.member.domain import (
    WALLET_ACCOUNTS,
    Account,
    Coupon,
    CouponStatus,
    CouponTemplate,
    ExpiredCouponLock,
    HoldStatus,
    InsufficientFunds,
    LedgerCheck,
    LedgerEntry,
    Member,
    MemberLookup,
    Mismatch,
    OrderCredit,
    PendingReversal,
    PointsHold,
    Posting,
    PrincipalDraw,
    Recharge,
    RechargeLot,
    TemplateStatus,
    Wallet,
    Withdrawal,
    WithdrawalDecision,
    WithdrawalStatus,
    shown_kind,
)
from services.member.uow import MemberUnitOfWork
from tests.fakes import FakeUnitOfWork


class FakeMemberRepository:
    def __init__(self) -> None:
        self.members: dict[int, Member] = {}

    def get(self, user_id: int) -> Member | None:
        return self.members.get(user_id)

    def by_referral_code(self, code: str) -> Member | None:
        return next((m for m in self.members.values() if m.referral_code == code), None)

    def get_or_add_locked(self, user_id: int) -> Member:
        return self.members.setdefault(user_id, Member(user_id=user_id))


class FakeLedgerRepository:
    """Applies a posting wholly or not at all, refusing any user account below zero, as the database does."""

    def __init__(self) -> None:
        self.balances: dict[tuple[int, str], int] = defaultdict(int)
        self.postings: dict[str, Posting] = {}
        self.entries_of: dict[tuple[int, str], list[LedgerEntry]] = defaultdict(list)
        self.key_of: dict[int, str] = {}  # entry id -> its posting's key
        self._next_id = 1
        self.last_entry_of: dict[str, int] = {}  # posting key -> the id of its last entry

    def post(self, posting: Posting, now: datetime) -> bool:
        if posting.key in self.postings:
            return False
        for leg in posting.legs:
            if leg.user_id and self.balances[leg.user_id, leg.account] + leg.amount < 0:
                raise InsufficientFunds(leg.account, available=self.balances[leg.user_id, leg.account],
                                        needed=-leg.amount)
        self.postings[posting.key] = posting
        for leg in posting.legs:
            self.balances[leg.user_id, leg.account] += leg.amount
            self.key_of[self._next_id] = posting.key
            self.entries_of[leg.user_id, leg.account].append(LedgerEntry(
                self._next_id, leg.account, leg.amount, self.balances[leg.user_id, leg.account], posting.kind,
                posting.reference, now))
            self._next_id += 1
        self.last_entry_of[posting.key] = self._next_id - 1
        return True

    def find(self, key: str) -> Posting | None:
        return self.postings.get(key)

    def lock_wallet(self, user_id: int) -> dict[str, int]:
        return {account: self.balances.get((user_id, account), 0) for account in WALLET_ACCOUNTS}

    def lock_refunds(self, order_no: str) -> None:
        pass

    def balance(self, user_id: int, account: str, *, lock: bool = False) -> int:
        return self.balances.get((user_id, account), 0)

    def wallet(self, user_id: int) -> Wallet:
        return Wallet(*(self.balances.get((user_id, account), 0)
                        for account in (Account.AVAILABLE, Account.PENDING, Account.BONUS)))

    def sum_entries(self, user_id: int, account: str, kinds: tuple[str, ...], *, since: datetime | None = None,
                    reference: str | None = None) -> int:
        return sum(e.amount for e in self.entries_of.get((user_id, account), [])
                   if e.kind in kinds and (since is None or e.created_at >= since)
                   and (reference is None or e.reference == reference))

    def entries_after(self, user_id: int, account: str, key: str | None) -> list[LedgerEntry]:
        after = self.last_entry_of.get(key) if key is not None else 0
        return [] if after is None else [e for e in self.entries_of.get((user_id, account), []) if e.id > after]

    def holders(self, accounts: tuple[str, ...], after_user_id: int, limit: int) -> list[int]:
        return sorted({user_id for (user_id, name), balance in self.balances.items()
                       if name in accounts and user_id > after_user_id and balance > 0})[:limit]

    def last_settled_entry(self, wait_seconds: float) -> int | None:
        return self._next_id - 1

    def users_moved(self, account: str, after_entry: int, upto_entry: int, limit: int, *,
                    except_kind: str) -> list[tuple[int, int]]:
        last = {user_id: max(entry.id for entry in entries if after_entry < entry.id <= upto_entry
                             and entry.kind != except_kind)
                for (user_id, name), entries in self.entries_of.items() if name == account
                and any(after_entry < entry.id <= upto_entry and entry.kind != except_kind for entry in entries)}
        return sorted((entry_id, user_id) for user_id, entry_id in last.items())[:limit]

    def entries(self, user_id: int, accounts: tuple[str, ...], offset: int,
                limit: int) -> tuple[list[LedgerEntry], int]:
        found = sorted((entry for account in accounts for entry in self.entries_of.get((user_id, account), [])),
                       key=lambda entry: -entry.id)
        return [replace(entry, kind=shown_kind(self.key_of[entry.id], entry.kind))
                for entry in found[offset:offset + limit]], len(found)

    def check(self, *, after_account_id: int = 0, limit: int | None = None) -> LedgerCheck:
        """Accounts numbered as they were opened (1, 2, ...)."""
        numbered = list(enumerate(self.balances.items(), start=1))[after_account_id:]
        checked = numbered[:limit] if limit is not None else numbered
        mismatches = [Mismatch(n, user_id, account, balance, sum(e.amount for e in self.entries_of[user_id, account]))
                      for n, ((user_id, account), balance) in checked
                      if balance != sum(e.amount for e in self.entries_of[user_id, account])]
        return LedgerCheck(len(checked), mismatches, checked[-1][0] if checked else 0)


class FakePointsRepository:
    def __init__(self) -> None:
        self.holds: dict[str, PointsHold] = {}
        self.credits: dict[str, OrderCredit] = {}
        self.pending_reversals: dict[str, PendingReversal] = {}
        self.owed_points: dict[tuple[int, str], int] = {}

    def hold(self, order_no: str, *, lock: bool = False) -> PointsHold | None:
        return self.holds.get(order_no)

    def locked_holds(self, user_id: int) -> list[PointsHold] | None:
        return sorted((hold for hold in self.holds.values() if hold.user_id == user_id and hold.status == "locked"),
                      key=lambda hold: (hold.created_at, hold.order_no))

    def owed(self, user_id: int) -> dict[str, int]:
        return {kind: points for (user, kind), points in self.owed_points.items() if user == user_id and points}

    def add_owed(self, user_id: int, kind: str, points: int) -> None:
        total = self.owed_points.get((user_id, kind), 0) + points
        assert total >= 0  # the table's CHECK
        self.owed_points[(user_id, kind)] = total

    def add_hold(self, hold: PointsHold) -> None:
        self.holds[hold.order_no] = hold

    def stale_holds(self, created_before: datetime, after_order_no: str, limit: int) -> list[str]:
        return sorted(no for no, hold in self.holds.items() if hold.status == HoldStatus.LOCKED
                      and hold.created_at < created_before and no > after_order_no)[:limit]

    def lock_stale_hold(self, order_no: str, created_before: datetime) -> PointsHold | None:
        hold = self.holds.get(order_no)
        return hold if hold is not None and hold.status == HoldStatus.LOCKED and hold.created_at < created_before \
            else None

    def credit(self, order_no: str, *, lock: bool = False) -> OrderCredit | None:
        return self.credits.get(order_no)

    def add_credit(self, credit: OrderCredit) -> None:
        self.credits[credit.order_no] = credit

    def add_pending_reversal(self, reversal: PendingReversal) -> None:
        self.pending_reversals[reversal.refund_no] = reversal

    def take_pending_reversals(self, order_no: str) -> list[PendingReversal]:
        found = sorted((r for r in self.pending_reversals.values() if r.order_no == order_no),
                       key=lambda r: (r.refunded_at, r.refund_no))
        for reversal in found:
            del self.pending_reversals[reversal.refund_no]
        return found


class FakeCouponRepository:
    def __init__(self) -> None:
        self.templates: dict[int, CouponTemplate] = {}
        self.coupons: dict[int, Coupon] = {}
        self.expired_locks: dict[str, ExpiredCouponLock] = {}

    def add_template(self, template: CouponTemplate) -> None:
        template.id = len(self.templates) + 1
        self.templates[template.id] = template

    def template(self, template_id: int, *, lock: bool = False) -> CouponTemplate | None:
        return self.templates.get(template_id)

    def newest_first(self) -> list[CouponTemplate]:
        return sorted(self.templates.values(), key=lambda t: -(t.id or 0))

    def templates_page(self, status: str, offset: int, limit: int) -> tuple[list[CouponTemplate], int]:
        found = [t for t in self.newest_first() if not status or t.status == status]
        return found[offset:offset + limit], len(found)

    def count_by_status(self, template_ids: Collection[int]) -> dict[int, dict[str, int]]:
        counted: dict[int, dict[str, int]] = {}
        for coupon in self.coupons.values():
            if coupon.template_id in template_ids:
                by_status = counted.setdefault(coupon.template_id, {})
                by_status[coupon.status] = by_status.get(coupon.status, 0) + 1
        return counted

    def claimable(self, user_id: int, now: datetime, offset: int,
                  limit: int) -> tuple[list[tuple[CouponTemplate, int]], int]:
        found = [(t, self.claimed(user_id, t.id or 0)) for t in self.newest_first()
                 if t.status == TemplateStatus.ACTIVE and t.valid_from <= now < t.valid_to and t.issued < t.total
                 and user_id not in (t.created_by, t.approved_by)]
        found = [(t, held) for t, held in found if held < t.per_user_limit]
        return found[offset:offset + limit], len(found)

    def take_one(self, template_id: int) -> bool:
        template = self.templates[template_id]
        if template.issued >= template.total or template.status != TemplateStatus.ACTIVE:
            return False
        template.issued += 1
        return True

    def lock_claims(self, user_id: int, template_id: int) -> None:
        pass  # one thread: nothing to serialise

    def claimed(self, user_id: int, template_id: int) -> int:
        return sum(1 for c in self.coupons.values() if (c.user_id, c.template_id) == (user_id, template_id))

    def add(self, coupon: Coupon) -> None:
        coupon.id = len(self.coupons) + 1
        self.coupons[coupon.id] = coupon

    def get(self, coupon_id: int, *, lock: bool = False) -> Coupon | None:
        return self.coupons.get(coupon_id)

    def by_order(self, order_no: str, *, lock: bool = False) -> Coupon | None:
        return next((c for c in self.coupons.values() if c.order_no == order_no), None)

    def date_undated_locks(self, now: datetime) -> None:
        for coupon in self.coupons.values():
            if coupon.status == CouponStatus.LOCKED and coupon.locked_at is None:
                coupon.locked_at = now

    def stale_locks(self, locked_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        return sorted((c.id or 0, c.order_no or "") for c in self.coupons.values() if c.status == CouponStatus.LOCKED
                      and c.locked_at is not None and c.locked_at < locked_before and (c.id or 0) > after_id)[:limit]

    def lock_stale(self, coupon_id: int, locked_before: datetime) -> Coupon | None:
        coupon = self.coupons.get(coupon_id)
        stale = [found for found, _ in self.stale_locks(locked_before, coupon_id - 1, 1)]
        return coupon if coupon is not None and coupon_id in stale else None

    def add_expired_lock(self, expired: ExpiredCouponLock) -> None:
        self.expired_locks[expired.order_no] = expired

    def expired_lock(self, order_no: str) -> ExpiredCouponLock | None:
        return self.expired_locks.get(order_no)

    def remove_expired_lock(self, order_no: str) -> None:
        self.expired_locks.pop(order_no, None)

    def of_user(self, user_id: int, *, status: str, now: datetime, offset: int,
                limit: int) -> tuple[list[tuple[Coupon, CouponTemplate]], int]:
        found = [(c, t) for c, t in self._newest_first(user_id) if not status or c.shown_status(t, now) == status]
        return found[offset:offset + limit], len(found)

    def count_of_user(self, user_id: int, *, status: str, now: datetime) -> int:
        return self.of_user(user_id, status=status, now=now, offset=0, limit=0)[1]

    def usable_of_user(self, user_id: int, now: datetime) -> list[tuple[Coupon, CouponTemplate]]:
        return [(c, t) for c, t in self._newest_first(user_id) if c.usable(t, now)]

    def _newest_first(self, user_id: int) -> list[tuple[Coupon, CouponTemplate]]:
        return [(c, self.templates[c.template_id]) for c in sorted(self.coupons.values(), key=lambda c: -(c.id or 0))
                if c.user_id == user_id]


class FakeWithdrawalRepository:
    def __init__(self, recharges: FakeRechargeRepository) -> None:
        self.withdrawals: dict[int, Withdrawal] = {}
        self.recharges = recharges
        self.draws: dict[str, list[PrincipalDraw]] = {}
        self.decided: list[WithdrawalDecision] = []

    def add(self, withdrawal: Withdrawal) -> None:
        withdrawal.id = len(self.withdrawals) + 1
        self.withdrawals[withdrawal.id] = withdrawal

    def add_decision(self, decision: WithdrawalDecision) -> None:
        decision.id = len(self.decided) + 1
        self.decided.append(decision)

    def decisions(self, withdrawal_id: int) -> list[WithdrawalDecision]:
        return [decision for decision in self.decided if decision.withdrawal_id == withdrawal_id]

    def get(self, withdrawal_id: int, *, lock: bool = False) -> Withdrawal | None:
        return self.withdrawals.get(withdrawal_id)

    def page(self, status: str, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
        found = [w for w in self.withdrawals.values() if not status or w.status == status]
        return found[offset:offset + limit], len(found)

    def of_user(self, user_id: int, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
        found = [w for w in reversed(self.withdrawals.values()) if w.user_id == user_id]
        return found[offset:offset + limit], len(found)

    def lock_user(self, user_id: int) -> None:
        pass  # one thread: nothing to serialise

    def paying(self, decided_before: datetime, after_id: int, limit: int) -> list[int]:
        return [w.id or 0 for w in self.withdrawals.values() if w.status == WithdrawalStatus.PAYING
                and w.decided_at is not None and w.decided_at < decided_before and (w.id or 0) > after_id][:limit]

    def count_paying_before(self, decided_before: datetime) -> tuple[int, datetime | None]:
        found = [w.decided_at for w in self.withdrawals.values()
                 if w.status == WithdrawalStatus.PAYING and w.decided_at is not None and w.decided_at < decided_before]
        return len(found), min(found, default=None)

    def lock_paying(self, withdrawal_id: int) -> Withdrawal | None:
        withdrawal = self.withdrawals.get(withdrawal_id)
        return withdrawal if withdrawal is not None and withdrawal.status == WithdrawalStatus.PAYING else None

    def requested_since(self, user_id: int, since: datetime) -> int:
        return sum(w.amount_fen for w in self.withdrawals.values() if w.user_id == user_id and w.created_at >= since
                   and w.status not in (WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED))

    def count_pending_review(self, user_id: int) -> int:
        return sum(1 for w in self.withdrawals.values()
                   if w.user_id == user_id and w.status == WithdrawalStatus.PENDING_REVIEW)

    def kept_for_spent_bonus(self, user_id: int) -> int:
        return sum(w.deducted_fen for w in self.withdrawals.values()
                   if w.user_id == user_id and w.status == WithdrawalStatus.PAID)

    def recharge_lots(self, user_id: int) -> list[RechargeLot]:
        standing = {w.withdrawal_no for w in self.withdrawals.values()
                    if w.status not in (WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED)}
        lots = []
        for recharge in sorted(self.recharges.recharges.values(), key=lambda r: (r.paid_at or r.created_at, r.id or 0),
                               reverse=True):
            draws = [d for no, made in self.draws.items() if no in standing for d in made
                     if d.recharge_no == recharge.recharge_no]
            drawn = sum(d.principal_fen for d in draws)
            if recharge.user_id == user_id and recharge.status == "PAID" and drawn < recharge.amount_fen:
                lots.append(RechargeLot(recharge.recharge_no, recharge.amount_fen, recharge.bonus_fen, drawn,
                                        sum(d.bonus_fen for d in draws)))
        return lots

    def add_draws(self, withdrawal_no: str, draws: list[PrincipalDraw]) -> None:
        self.draws[withdrawal_no] = list(draws)


class FakeRechargeRepository:
    def __init__(self) -> None:
        self.recharges: dict[str, Recharge] = {}

    def add(self, recharge: Recharge) -> None:
        recharge.id = len(self.recharges) + 1
        self.recharges[recharge.recharge_no] = recharge

    def by_no(self, recharge_no: str, *, lock: bool = False) -> Recharge | None:
        return self.recharges.get(recharge_no)

    def lock_user(self, user_id: int) -> None:
        pass  # one thread: nothing to serialise

    def count_pending(self, user_id: int) -> int:
        return sum(1 for r in self.recharges.values() if r.user_id == user_id and r.status == "PENDING")

    def of_user(self, user_id: int, status: str, offset: int, limit: int) -> tuple[list[Recharge], int]:
        found = [r for r in sorted(self.recharges.values(), key=lambda r: -(r.id or 0))
                 if r.user_id == user_id and (not status or r.status == status)]
        return found[offset:offset + limit], len(found)

    def pending(self, created_after: datetime, created_before: datetime, after_id: int,
                limit: int) -> list[tuple[int, str]]:
        return [(r.id or 0, r.recharge_no) for r in self.recharges.values()
                if r.status == "PENDING" and created_after < r.created_at < created_before and (r.id or 0) > after_id
                ][:limit]

    def count_pending_before(self, created_before: datetime) -> tuple[int, datetime | None]:
        found = [r.created_at for r in self.recharges.values() if r.status == "PENDING" and r.created_at < created_before]
        return len(found), min(found, default=None)

    def lock_pending(self, recharge_no: str) -> Recharge | None:
        recharge = self.recharges.get(recharge_no)
        return recharge if recharge is not None and recharge.status == "PENDING" else None


class FakeMemberLookupRepository:
    def __init__(self) -> None:
        self.lookups: list[MemberLookup] = []

    def add(self, lookup: MemberLookup) -> None:
        lookup.id = len(self.lookups) + 1
        self.lookups.append(lookup)

    def by_actor(self, actor_id: int) -> list[MemberLookup]:
        return [lookup for lookup in self.lookups if lookup.actor_id == actor_id]


_ATOMS = (int, str, bytes, float, datetime, date, type(None))  # never changed in place, hold nothing that is


@functools.cache
def _changeable(kind: type) -> bool:
    """A repository or a domain object that can change: never a frozen dataclass (a ledger entry, a posting), a
    number, a string, a time, an enum member, a class or a library's object."""
    frozen = getattr(getattr(kind, "__dataclass_params__", None), "frozen", False)
    return (kind.__module__.startswith(("services.", "tests.")) and not issubclass(kind, type | Enum)
            and not frozen and "__dict__" in dir(kind))


def _saved(roots: Iterable[object]) -> list[tuple[object, object]]:
    """Every dict, list, set and changeable object reachable from `roots`, each with a shallow copy of what it holds:
    putting each copy back in place restores the whole graph as it was, so whoever holds one of its objects (a test,
    a use case's result) sees it as it was too, as a row read again after a rollback."""
    saved: list[tuple[object, object]] = []
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if isinstance(node, _ATOMS) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            saved.append((node, dict(node)))
            todo.extend(node.values())
        elif isinstance(node, list | set):
            saved.append((node, list(node)))
            todo.extend(node)
        elif isinstance(node, tuple | frozenset):
            todo.extend(node)
        elif _changeable(type(node)):
            saved.append((node, dict(vars(node))))
            todo.extend(vars(node).values())
    return saved


def _restore(saved: list[tuple[object, object]]) -> None:
    for node, held in saved:
        if isinstance(node, dict) and isinstance(held, dict):
            node.clear()
            node.update(held)
        elif isinstance(node, list) and isinstance(held, list):
            node[:] = held
        elif isinstance(node, set) and isinstance(held, list):
            node.clear()
            node.update(held)
        elif isinstance(held, dict):
            vars(node).clear()
            vars(node).update(held)


class FakeMemberUnitOfWork(FakeUnitOfWork, MemberUnitOfWork):
    """The member unit of work in memory; pass the same one to every use case of a test.

    Transactional as the database is: a `with` block that ends without committing (a use case that raised, say a
    withdrawal refused for the balance after its row and its draws were added) leaves the repositories, and every
    object in them, as they were when the block began or last committed. Writes a test makes between blocks (funding
    a wallet directly) are kept."""

    members: FakeMemberRepository
    ledger: FakeLedgerRepository
    points: FakePointsRepository
    coupons: FakeCouponRepository
    withdrawals: FakeWithdrawalRepository
    recharges: FakeRechargeRepository
    lookups: FakeMemberLookupRepository

    def __init__(self) -> None:
        super().__init__()
        self.members = FakeMemberRepository()
        self.ledger = FakeLedgerRepository()
        self.points = FakePointsRepository()
        self.coupons = FakeCouponRepository()
        self.recharges = FakeRechargeRepository()
        self.withdrawals = FakeWithdrawalRepository(self.recharges)
        self.lookups = FakeMemberLookupRepository()
        self._open = 0  # `with` blocks entered and not left
        self._begun: list[tuple[object, object]] = []  # what the repositories held when the transaction began

    def _repositories(self) -> list[object]:
        return [self.members, self.ledger, self.points, self.coupons, self.withdrawals, self.recharges, self.lookups]

    def __enter__(self) -> Self:
        if not self._open:
            self._begun = _saved(self._repositories())
        self._open += 1
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._open -= 1

    def commit(self) -> None:
        super().commit()
        self._begun = _saved(self._repositories())  # the next transaction begins here

    def rollback(self) -> None:
        super().rollback()
        if self._open:
            _restore(self._begun)
