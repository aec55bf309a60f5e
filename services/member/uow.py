"""What the member use cases need from storage: repository protocols and the member unit of work."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from services.common.uow import UnitOfWork
from services.member.domain import (
    Coupon,
    CouponTemplate,
    ExpiredCouponLock,
    LedgerCheck,
    LedgerEntry,
    Member,
    MemberLookup,
    OrderCredit,
    PendingReversal,
    PointsHold,
    Posting,
    PrincipalDraw,
    Recharge,
    RechargeLot,
    Wallet,
    Withdrawal,
    WithdrawalDecision,
)


class MemberRepository(Protocol):
    def get(self, user_id: int) -> Member | None: ...

    def by_referral_code(self, code: str) -> Member | None:
        """The member whose own invite code this is."""

    def get_or_add_locked(self, user_id: int) -> Member:
        """The user's record, created empty when missing, locked until the transaction ends."""


class LedgerRepository(Protocol):
    def post(self, posting: Posting, now: datetime) -> bool:
        """Apply every leg and its entry, or nothing: False when the key was posted before;
        InsufficientFunds when a user account would go below zero."""

    def find(self, key: str) -> Posting | None: ...

    def lock_wallet(self, user_id: int) -> dict[str, int]:
        """Lock the user's wallet accounts (WALLET_ACCOUNTS), created when missing, until the transaction ends, in that
        order; their balances. `post` does it before it moves a wallet not locked yet."""

    def lock_refunds(self, order_no: str) -> None:
        """Serialise the refunds of the order's wallet payment until the transaction ends (what they return in all)."""

    def balance(self, user_id: int, account: str, *, lock: bool = False) -> int:
        """The account's balance; `lock` holds its row until the transaction ends."""

    def wallet(self, user_id: int) -> Wallet:
        """The user's wallet balances (0 for an account not opened yet), read at one moment: a withdrawal moving money
        from available to pending meanwhile is seen wholly or not at all."""

    def sum_entries(self, user_id: int, account: str, kinds: tuple[str, ...], *, since: datetime | None = None,
                    reference: str | None = None) -> int:
        """The signed sum of the account's entries of postings of `kinds` (made at or after `since`, about
        `reference`, when given)."""

    def entries_after(self, user_id: int, account: str, key: str | None) -> list[LedgerEntry]:
        """The account's entries made after those of the posting `key` (None: all of them), oldest first (entry ids: a
        wallet's entries are numbered under its locks, so in the order its postings were made)."""

    def holders(self, accounts: tuple[str, ...], after_user_id: int, limit: int) -> list[int]:
        """Users (ids above `after_user_id`, ascending) with a positive balance on any of `accounts`."""

    def last_settled_entry(self, wait_seconds: float) -> int | None:
        """The id of the last entry, once no entry with a lower id can still be committed (db.settled_high_water:
        postings under way waited for up to `wait_seconds`; None when one still is)."""

    def users_moved(self, account: str, after_entry: int, upto_entry: int, limit: int, *,
                    except_kind: str) -> list[tuple[int, int]]:
        """(entry id, user id) of the users whose `account` has entries with ids in (`after_entry`, `upto_entry`] of
        postings of another kind than `except_kind`: each user once, at the last of them, ascending by entry id."""

    def entries(self, user_id: int, accounts: tuple[str, ...], offset: int, limit: int) -> tuple[list[LedgerEntry], int]:
        """The user's entries on `accounts`, newest first, and how many there are."""

    def check(self, *, after_account_id: int = 0, limit: int | None = None) -> LedgerCheck:
        """The accounts after `after_account_id` (at most `limit`, by id; every one when None) recomputed."""


class PointsRepository(Protocol):
    def hold(self, order_no: str, *, lock: bool = False) -> PointsHold | None:
        """The order's points hold; `lock` serialises the order's hold changes, also before there is one."""

    def add_hold(self, hold: PointsHold) -> None: ...

    def locked_holds(self, user_id: int) -> list[PointsHold] | None:
        """The user's holds still LOCKED, oldest first, all locked; None when another transaction holds one of them
        (being paid or released right now: never waited for). Call with the user's points account locked."""

    def owed(self, user_id: int) -> dict[str, int]:
        """The points the user owes, by kind (none: empty); serialises the user's debt changes until the end."""

    def add_owed(self, user_id: int, kind: str, points: int) -> None:
        """Add `points` (negative: taken) to what the user owes of `kind`."""

    def stale_holds(self, created_before: datetime, after_order_no: str, limit: int) -> list[str]:
        """Order numbers (above `after_order_no`, ascending) of holds still locked that were taken before
        `created_before`."""

    def lock_stale_hold(self, order_no: str, created_before: datetime) -> PointsHold | None:
        """The hold, locked, if it is still locked and older than that and no other transaction holds it (SKIP LOCKED)."""

    def credit(self, order_no: str, *, lock: bool = False) -> OrderCredit | None:
        """What the paid order earned; `lock` serialises the order's credit and refunds, also before there is one."""

    def add_credit(self, credit: OrderCredit) -> None: ...

    def add_pending_reversal(self, reversal: PendingReversal) -> None: ...

    def take_pending_reversals(self, order_no: str) -> list[PendingReversal]:
        """The order's pending reversals, oldest refund first, removed (the caller applies them before committing)."""


class CouponRepository(Protocol):
    def add_template(self, template: CouponTemplate) -> None: ...

    def template(self, template_id: int, *, lock: bool = False) -> CouponTemplate | None:
        """The template; `lock` reads it afresh and holds it (claims in progress finish first)."""

    def templates_page(self, status: str, offset: int, limit: int) -> tuple[list[CouponTemplate], int]:
        """Templates in `status` ("" = any), newest first, and how many there are."""

    def count_by_status(self, template_ids: Collection[int]) -> dict[int, dict[str, int]]:
        """How many coupons each of `template_ids` has in each stored status (available, locked, used), in one
        grouped read; a template with no coupon claimed is left out."""

    def claimable(self, user_id: int, now: datetime, offset: int,
                  limit: int) -> tuple[list[tuple[CouponTemplate, int]], int]:
        """Active templates valid at `now`, not all claimed, of which the user holds fewer than the per-user limit,
        newest first, each with how many the user holds; and how many there are."""

    def take_one(self, template_id: int) -> bool:
        """Count one more coupon issued unless all `total` are or the template is disabled: a conditional update,
        never over-issuing, and none issued once a disable has committed."""

    def lock_claims(self, user_id: int, template_id: int) -> None:
        """Serialise one user's claims of one template until the transaction ends (per-user limit)."""

    def claimed(self, user_id: int, template_id: int) -> int: ...

    def add(self, coupon: Coupon) -> None: ...

    def get(self, coupon_id: int, *, lock: bool = False) -> Coupon | None: ...

    def by_order(self, order_no: str, *, lock: bool = False) -> Coupon | None:
        """The coupon the order holds; `lock` serialises the order's coupon changes, also before there is one."""

    def of_user(self, user_id: int, *, status: str, now: datetime, offset: int,
                limit: int) -> tuple[list[tuple[Coupon, CouponTemplate]], int]:
        """A page of the user's coupons the shopper sees in `status` at `now` (Coupon.shown_status; "" = every
        status), newest first, each with its template; and how many there are."""

    def count_of_user(self, user_id: int, *, status: str, now: datetime) -> int:
        """How many of the user's coupons the shopper sees in `status` at `now` ("" = every status)."""

    def usable_of_user(self, user_id: int, now: datetime) -> list[tuple[Coupon, CouponTemplate]]:
        """The user's coupons an order may take at `now` (Coupon.usable), newest first, each with its template."""

    def date_undated_locks(self, now: datetime) -> None:
        """Give locked coupons without a lock time (locked by a release before lock times) `now` as theirs."""

    def stale_locks(self, locked_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        """(id, order number, "" for none) of coupons still locked, locked before `locked_before`, ids above
        `after_id` ascending."""

    def lock_stale(self, coupon_id: int, locked_before: datetime) -> Coupon | None:
        """The coupon, locked, if it is still locked since before that and no other transaction holds it (SKIP LOCKED)."""

    def add_expired_lock(self, expired: ExpiredCouponLock) -> None:
        """Record it (replacing an earlier one of the same order)."""

    def expired_lock(self, order_no: str) -> ExpiredCouponLock | None:
        """The coupon lock of `order_no` the expiry sweep released, if it did."""

    def remove_expired_lock(self, order_no: str) -> None:
        """Forget it (nothing when none): the order was cancelled, so no order-paid may use the coupon again."""


class WithdrawalRepository(Protocol):
    def add(self, withdrawal: Withdrawal) -> None: ...

    def add_decision(self, decision: WithdrawalDecision) -> None:
        """Record a step of a withdrawal's review (kept for good)."""

    def decisions(self, withdrawal_id: int) -> list[WithdrawalDecision]:
        """The steps of the withdrawal's review, oldest first."""

    def get(self, withdrawal_id: int, *, lock: bool = False) -> Withdrawal | None: ...

    def page(self, status: str, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
        """Withdrawals in `status` ("" = any), oldest first, and how many there are."""

    def of_user(self, user_id: int, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
        """The user's withdrawals, newest first, and how many there are."""

    def lock_user(self, user_id: int) -> None:
        """Serialise one user's withdrawal requests until the transaction ends (daily maximum, the cap on those
        awaiting review)."""

    def paying(self, decided_before: datetime, after_id: int, limit: int) -> list[int]:
        """Ids of PAYING withdrawals approved before `decided_before` with an id above `after_id`, by id."""

    def lock_paying(self, withdrawal_id: int) -> Withdrawal | None:
        """The withdrawal, locked, if it is still PAYING and no other transaction holds it (SKIP LOCKED)."""

    def count_paying_before(self, decided_before: datetime) -> tuple[int, datetime | None]:
        """How many withdrawals approved before `decided_before` are still PAYING, and when the oldest was approved."""

    def requested_since(self, user_id: int, since: datetime) -> int:
        """Fen requested since `since`, rejected withdrawals excluded."""

    def count_pending_review(self, user_id: int) -> int:
        """How many of the user's withdrawals await finance's review (PENDING_REVIEW)."""

    def kept_for_spent_bonus(self, user_id: int) -> int:
        """Fen the user's PAID withdrawals kept from their transfers for bonus already spent (`deducted_fen`)."""

    def recharge_lots(self, user_id: int) -> list[RechargeLot]:
        """The user's paid recharges whose principal the standing withdrawals have not wholly drawn, newest first."""

    def add_draws(self, withdrawal_no: str, draws: list[PrincipalDraw]) -> None:
        """Record what the withdrawal draws from each recharge."""


class RechargeRepository(Protocol):
    def add(self, recharge: Recharge) -> None: ...

    def by_no(self, recharge_no: str, *, lock: bool = False) -> Recharge | None: ...

    def lock_user(self, user_id: int) -> None:
        """Serialise one user's new recharges until the transaction ends (the cap on those awaiting payment)."""

    def count_pending(self, user_id: int) -> int:
        """How many of the user's recharges await payment (PENDING)."""

    def of_user(self, user_id: int, status: str, offset: int, limit: int) -> tuple[list[Recharge], int]:
        """The user's recharges in `status` ("" = any), newest first, and how many there are."""

    def pending(self, created_after: datetime, created_before: datetime, after_id: int,
                limit: int) -> list[tuple[int, str]]:
        """(id, recharge_no) of PENDING recharges created in that window with an id above `after_id`, by id."""

    def count_pending_before(self, created_before: datetime) -> tuple[int, datetime | None]:
        """How many recharges created before `created_before` are PENDING, and when the oldest was created."""

    def lock_pending(self, recharge_no: str) -> Recharge | None:
        """The recharge, locked, if it is still PENDING and no other transaction holds it (SKIP LOCKED)."""


class MemberLookupRepository(Protocol):
    def add(self, lookup: MemberLookup) -> None: ...

    def by_actor(self, actor_id: int) -> list[MemberLookup]:
        """The staff member's reads of member records, oldest first."""


class MemberUnitOfWork(UnitOfWork):
    """The member service's unit of work; its repositories are set on entering it."""

    members: MemberRepository
    ledger: LedgerRepository
    points: PointsRepository
    coupons: CouponRepository
    withdrawals: WithdrawalRepository
    recharges: RechargeRepository
    lookups: MemberLookupRepository
