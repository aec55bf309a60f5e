"""Member use cases: each opens the unit of work, works on the domain, commits.

The `apply_*` functions are the event handlers' bodies: they run inside a unit of work opened
by the consumer (which commits), so wiring a consumer is one line each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from services.common.db import seconds_since, utcnow
from services.common.errors import Conflict, DomainError, InvalidInput, NotFound
from services.common.formats import FULL_PRICE_BP, LEDGER_CHECK_MAX_ACCOUNTS, shop_day, shop_day_start
from services.common.idempotency import canonical
from services.common.uow import K, PageAnswers, RoundBudget, each_page, each_sweep, is_outage, one_round_at_a_time
from services.member import events, metrics
from services.member.channels import (
    NotifyRejected,
    PaidNotice,
    PaymentChannel,
    Payout,
    PayoutChannel,
    PayoutFailed,
    PayoutState,
)
from services.member.domain import (
    AUTO_JOIN_SPEND_FEN,
    CHECKOUT_HOLD_TTL,
    DEFAULT_COUPON_MAX_FACE_FEN,
    DEFAULT_RECHARGE_EXPIRE_SECONDS,
    NO_COUPON,
    PLATFORM,
    POINTS_ACCOUNTS,
    POINTS_DATED_KINDS,
    POINTS_OWED_KINDS,
    POINTS_OWED_TAKEN,
    POINTS_VALUE_FEN,
    REASONS,
    RECHARGE_PAY_MINUTES,
    WALLET_ACCOUNTS,
    Account,
    Coupon,
    CouponStatus,
    CouponTemplate,
    CouponUsage,
    DecisionOutcome,
    ExpiredCouponLock,
    HoldStatus,
    InsufficientFunds,
    LedgerCheck,
    LedgerEntry,
    Leg,
    Member,
    MemberLookup,
    MemberSummary,
    OrderCredit,
    OrderLine,
    PendingReversal,
    PointsHold,
    Posting,
    Recharge,
    RechargeStatus,
    TemplateStatus,
    Wallet,
    Withdrawal,
    WithdrawalDecision,
    WithdrawalStatus,
    balance_payment_void,
    coupon_not_found,
    draw_principal,
    not_a_member,
    owed_taken_key,
    plan_by_id,
    points_cap,
    points_earned,
    points_expiry_cutoff,
    posting_conflict,
    recharge_bonus,
    recharge_not_found,
    template_disabled,
    template_not_found,
    transfer,
    unknown_categories,
    validate_order_no,
    withdrawal_not_found,
)
from services.member.uow import MemberUnitOfWork

if TYPE_CHECKING:  # a type only: the consume role, which imports this module, never asks the order service
    from services.common.orders import Orders, OrderState

log = logging.getLogger(__name__)


def post(uow: MemberUnitOfWork, posting: Posting, now: datetime) -> bool:
    """Apply `posting` once: True when applied now, False when its key was applied before with the
    same legs; Conflict when the key was used for a different movement."""
    if uow.ledger.post(posting, now):
        return True
    first = uow.ledger.find(posting.key)
    if first is None or set(first.legs) != set(posting.legs):
        raise posting_conflict(posting.key)
    return False


# ---------------------------------------------------------------- membership


class Phones(Protocol):
    """Whether a shopper has a phone number bound to their account (the user service knows)."""

    def has_phone(self, user_id: int) -> bool:
        """True when `user_id` (the caller) has bound a phone; a DomainError (503 USER_UNAVAILABLE) when it cannot
        say."""
        ...


def sign_up_by_phone(uow: MemberUnitOfWork, phones: Phones, *, user_id: int, channel: str, invite_code: str | None,
                     now: datetime | None = None) -> tuple[MemberSummary, bool]:
    """A shopper joins with their phone number (M1): one with none bound, a WeChat-only account, is refused 422
    PHONE_REQUIRED and nothing joins (asked before the membership is locked); else as `sign_up`. A member already
    (one who joined by spending, or before this rule) gets their membership back, as `sign_up` answers, unasked."""
    with uow:
        existing = uow.members.get(user_id)
        uow.commit()
    if (existing is None or not existing.is_member) and not phones.has_phone(user_id):
        raise DomainError("PHONE_REQUIRED", "bind a phone number to your account before becoming a member",
                          details={"phone": "required"})
    return sign_up(uow, user_id=user_id, channel=channel, invite_code=invite_code, now=now)


def sign_up(uow: MemberUnitOfWork, *, user_id: int, channel: str, invite_code: str | None,
            now: datetime | None = None) -> tuple[MemberSummary, bool]:
    """Make the user a member through `channel`, one a shopper may declare (Member.check_signup_channel; once: again
    returns the membership, created False). Shoppers reach it through `sign_up_by_phone`."""
    Member.check_signup_channel(channel)
    now = now or utcnow()
    with uow:
        member = uow.members.get_or_add_locked(user_id)
        inviter = uow.members.by_referral_code(invite_code.upper()) if invite_code and not member.is_member else None
        created = member.join(channel, invite_code.upper() if invite_code else None, now, inviter=inviter)
        if created:
            events.member_joined(uow, member)
        summary = _summary(uow, member, now)
        uow.commit()
    return summary, created


def get_member(uow: MemberUnitOfWork, *, user_id: int, now: datetime | None = None) -> MemberSummary:
    """The member's account: level, balance, points, coupons, spend."""
    now = now or utcnow()
    with uow:
        member = uow.members.get(user_id)
        if member is None or not member.is_member:
            raise not_a_member()
        summary = _summary(uow, member, now)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return summary


def get_wallet(uow: MemberUnitOfWork, *, user_id: int) -> Wallet:
    """Any shopper's wallet, member or not: a shopper who recharged without joining (membership needs a phone) reads
    their money here; a member reads the same numbers as in their account (`get_member`)."""
    with uow:
        wallet = uow.ledger.wallet(user_id)
        uow.commit()
    return wallet


@dataclass(frozen=True)
class MemberRecord:
    """A user's member record as staff read it: what GET /member shows them, and a page of their points entries."""

    summary: MemberSummary
    points_entries: list[LedgerEntry]
    points_entries_total: int


def look_up_member(uow: MemberUnitOfWork, *, actor_id: int, user_id: int, offset: int, limit: int,
                   now: datetime | None = None) -> MemberRecord:
    """Staff read a user's member record and a page of their points entries (newest first); every read is recorded
    (member_lookups: who, whose, when, whether a member), also one answering NotFound MEMBER_NOT_FOUND for a user
    who is not a member. A user id below 1 names nobody: InvalidInput USER_ID_INVALID, and nothing is recorded."""
    if user_id <= 0:
        raise InvalidInput("USER_ID_INVALID", "user_id must be positive", details={"user_id": "at least 1"})
    now = now or utcnow()
    with uow:
        member = uow.members.get(user_id)
        found = member is not None and member.is_member
        uow.lookups.add(MemberLookup(actor_id=actor_id, user_id=user_id, found=found, looked_up_at=now))
        record = None
        if member is not None and found:
            entries, total = uow.ledger.entries(user_id, POINTS_ACCOUNTS, offset, limit)
            record = MemberRecord(summary=_summary(uow, member, now), points_entries=entries,
                                  points_entries_total=total)
        uow.commit()
    if record is None:
        raise not_a_member(user_id)
    return record


def discount_bp(uow: MemberUnitOfWork, *, user_id: int, now: datetime | None = None) -> int:
    """The share of the price the user pays now (level x plan) in basis points, exact (9025), FULL_PRICE_BP when not a
    member: only the member row is read."""
    now = now or utcnow()
    with uow:
        member = uow.members.get(user_id)
        uow.commit()
    return member.discount_bp(now) if member is not None and member.is_member else FULL_PRICE_BP


def _summary(uow: MemberUnitOfWork, member: Member, now: datetime) -> MemberSummary:
    available = uow.coupons.count_of_user(member.user_id, status=CouponStatus.AVAILABLE, now=now)
    wallet = uow.ledger.wallet(member.user_id)
    return MemberSummary(member=member, now=now, points=uow.ledger.balance(member.user_id, Account.POINTS),
                         balance_fen=wallet.balance_fen, pending_fen=wallet.pending_fen, bonus_fen=wallet.bonus_fen,
                         points_owed=sum(uow.points.owed(member.user_id).values()), coupons_available=available)


def subscribe_plan(uow: MemberUnitOfWork, *, user_id: int, plan_id: int, idempotency_key: str,
                   now: datetime | None = None) -> MemberSummary:
    """Buy (or renew) a paid plan with the wallet balance, once per idempotency key."""
    now = now or utcnow()
    plan = plan_by_id(plan_id)
    with uow:
        def buy() -> bytes:
            member = uow.members.get_or_add_locked(user_id)
            if not member.is_member:
                raise not_a_member()
            key = f"plan:{user_id}:{idempotency_key}"
            if not post(uow, transfer(key, "plan_subscription", f"plan-{plan.id}", amount=plan.price_fen,
                                      source=(user_id, Account.AVAILABLE), target=(PLATFORM, Account.SALES)), now):
                return b"subscribed"  # this payment bought its term already: neither a second term nor a second event
            member.subscribe(plan, now)
            events.member_plan_subscribed(uow, member, plan, posting_key=key, now=now,
                                          balance_fen=uow.ledger.balance(user_id, Account.AVAILABLE))
            return b"subscribed"

        uow.run_once(scope=f"plan:user:{user_id}", key=idempotency_key, request=str(plan_id).encode(), execute=buy)
        member = uow.members.get(user_id)
        assert member is not None
        summary = _summary(uow, member, now)
        uow.commit()
    return summary


# ---------------------------------------------------------------- ledgers


def wallet_entries(uow: MemberUnitOfWork, *, user_id: int, offset: int, limit: int) -> tuple[list[LedgerEntry], int]:
    """The user's wallet entries (available, pending, bonus), newest first."""
    with uow:
        return uow.ledger.entries(user_id, WALLET_ACCOUNTS, offset, limit)


def points_entries(uow: MemberUnitOfWork, *, user_id: int, offset: int, limit: int) -> tuple[list[LedgerEntry], int]:
    """The shopper's points history, newest first: their spendable points alone, each movement once, balance_after
    always of those points (a hold at checkout is `points_locked`, minus; given back, `points_released`; spent when the
    order is paid, it moves nothing more of them). Staff read both points accounts (`look_up_member`)."""
    with uow:
        return uow.ledger.entries(user_id, (Account.POINTS,), offset, limit)


def check_ledgers(uow: MemberUnitOfWork, *, after_account_id: int = 0,
                  limit: int = LEDGER_CHECK_MAX_ACCOUNTS) -> LedgerCheck:
    """Recompute the next `limit` accounts after `after_account_id` from their entries: the whole ledger is checked
    a range at a time (one statement over millions of entries outlives any call's deadline)."""
    if not 1 <= limit <= LEDGER_CHECK_MAX_ACCOUNTS or after_account_id < 0:
        raise InvalidInput("PAGE_INVALID", f"limit is 1-{LEDGER_CHECK_MAX_ACCOUNTS} and after_account_id not "
                           "negative", details={"limit": f"1-{LEDGER_CHECK_MAX_ACCOUNTS}"})
    with uow:
        return uow.ledger.check(after_account_id=after_account_id, limit=limit)


# ---------------------------------------------------------------- points


@dataclass(frozen=True)
class PointsQuote:
    available_points: int
    usable_points: int
    discount_fen: int


def quote_points(uow: MemberUnitOfWork, *, user_id: int, points: int, payable_fen: int) -> PointsQuote:
    """How many points an order of `payable_fen` can use (`points` wanted, 0 = as many as allowed)."""
    if points < 0 or payable_fen < 0:
        raise InvalidInput("POINTS_INVALID", "points and payable_fen must not be negative")
    with uow:
        available = uow.ledger.balance(user_id, Account.POINTS)
    usable = min(available, points_cap(payable_fen), points or available)
    return PointsQuote(available, usable, usable * POINTS_VALUE_FEN)


def lock_points(uow: MemberUnitOfWork, *, user_id: int, order_no: str, points: int, payable_fen: int,
                now: datetime | None = None) -> PointsQuote:
    """Hold `points` for the unpaid order `order_no` (again for the same order: the same hold).

    An order whose points were released (cancelled, swept, or released before it held any: `release_points`) is
    Conflict POINTS_RELEASED, nothing held."""
    now = now or utcnow()
    validate_order_no(order_no)
    if points <= 0:
        raise InvalidInput("POINTS_INVALID", "points to hold must be positive", details={"points": "at least 1"})
    if payable_fen < 0:  # not an order of which points may pay nothing (0 is: POINTS_OVER_LIMIT below), but bad input
        raise InvalidInput("POINTS_INVALID", "payable_fen must not be negative",
                           details={"payable_fen": "must not be negative"})
    if points > points_cap(payable_fen):
        raise DomainError("POINTS_OVER_LIMIT", "points may pay at most half of the order",
                          details={"max_points": points_cap(payable_fen)})
    with uow:
        hold = uow.points.hold(order_no, lock=True)
        if hold is None:
            hold = PointsHold(order_no=order_no, user_id=user_id, points=points, status=HoldStatus.LOCKED,
                              created_at=now)
            post(uow, transfer(f"points-lock:{order_no}", "points_locked", order_no, amount=points,
                               source=(user_id, Account.POINTS), target=(user_id, Account.POINTS_LOCKED)), now)
            uow.points.add_hold(hold)
            events.points_changed(uow, user_id=user_id, delta=-points, reference=order_no, reason="points_locked",
                                  balance=uow.ledger.balance(user_id, Account.POINTS), now=now)
        elif hold.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED):
            raise Conflict("POINTS_RELEASED", "this order's points were released; it cannot hold points again")
        elif hold.user_id != user_id or hold.points != points:
            raise Conflict("POINTS_ALREADY_LOCKED", "this order already holds other points")
        available = uow.ledger.balance(user_id, Account.POINTS)
        uow.commit()
    return PointsQuote(available, hold.points, hold.points * POINTS_VALUE_FEN)


def release_points(uow: MemberUnitOfWork, *, order_no: str, user_id: int | None = None,
                   now: datetime | None = None) -> int:
    """Give back the points `order_no` holds (0 if none); `user_id` when the caller must own the order.

    An order holding none is marked released, a hold of 0 points (RELEASED): the order service releases an order's
    points when its LockPoints failed or outlived its deadline, and such a call may still be running (waiting for a
    connection or the order's lock); when it gets there it is refused (POINTS_RELEASED) rather than hold the points
    for an order that will never exist. Order numbers are never reused (a submit's retry takes a new one)."""
    now = now or utcnow()
    with uow:
        hold = uow.points.hold(order_no, lock=True)
        if hold is not None and user_id is not None and hold.user_id != user_id:
            raise NotFound("ORDER_NOT_FOUND", "no such order")
        if hold is None:
            uow.points.add_hold(PointsHold(order_no=order_no, user_id=user_id or 0, points=0,
                                           status=HoldStatus.RELEASED, created_at=now))
        released = _release_points(uow, hold, now)
        uow.commit()
    return released


def _release_points(uow: MemberUnitOfWork, hold: PointsHold | None, now: datetime, *, expired: bool = False) -> int:
    """The held points back to spendable, once (`expired`: by the expiry sweep, the hold EXPIRED); then the part
    of them past its term at an expiry run while held is taken (`_expire_points_of`), and what the shopper owes."""
    if hold is None or hold.status != HoldStatus.LOCKED:
        return 0
    hold.status = HoldStatus.EXPIRED if expired else HoldStatus.RELEASED
    _credit_points(uow, hold.user_id, hold.points, key=f"points-release:{hold.order_no}", kind="points_released",
                   reference=hold.order_no, source=(hold.user_id, Account.POINTS_LOCKED),
                   reason="points_hold_expired" if expired else "points_released", now=now,
                   expired_while_held=hold.expired_points)
    return hold.points


def _credit_points(uow: MemberUnitOfWork, user_id: int, points: int, *, key: str, kind: str, reference: str,
                   source: tuple[int, str], reason: str, now: datetime, owed_reference: str | None = None,
                   expired_while_held: int = 0) -> bool:
    """The one way points reach the user's spendable points: posted once (the posting `key`, of `kind` and
    `reference`, from `source`; False if it was already), shown (points-changed for `reason`), then, of points a
    released hold gave back, those an expiry run marked on it (`expired_while_held`) taken, and last what the user
    owes (`_take_owed_points`, shown under `owed_reference`, by default `reference`). No points: nothing done."""
    if points <= 0 or not post(uow, transfer(key, kind, reference, amount=points, source=source,
                                             target=(user_id, Account.POINTS)), now):
        return False
    events.points_changed(uow, user_id=user_id, delta=points, reference=reference, reason=reason,
                          balance=uow.ledger.balance(user_id, Account.POINTS), now=now)
    if expired_while_held:
        post(uow, transfer(f"points-expire-held:{reference}", "points_expired", reference, amount=expired_while_held,
                           source=(user_id, Account.POINTS), target=(PLATFORM, Account.POINTS_ISSUED)), now)
        events.points_changed(uow, user_id=user_id, delta=-expired_while_held, reference=reference,
                              reason="points_expired", balance=uow.ledger.balance(user_id, Account.POINTS), now=now)
    _take_owed_points(uow, user_id, key=key, reference=owed_reference or reference, now=now)
    return True


def _owe_points(uow: MemberUnitOfWork, user_id: int, kind: str, points: int, reference: str) -> None:
    """Record `points` of `kind` (domain.POINTS_OWED_KINDS) the user should give back now but cannot, having spent
    them or holding them for an unpaid order: taken from the next points credited to them (`_take_owed_points`),
    so a hold released or a later credit never hands them back."""
    if points <= 0:
        return
    uow.points.add_owed(user_id, kind, points)
    log.warning("user %d owes %d points (%s, %s): taken from the next points credited", user_id, points, kind,
                reference)


def _take_owed_points(uow: MemberUnitOfWork, user_id: int, *, key: str, reference: str, now: datetime) -> int:
    """Right after points were credited to the user's spendable points (by the posting `key`): what the user owes,
    as far as they have it now, each kind under its own posting; the points taken. The user's points account is
    locked before their debt (the posting locked it): one lock order everywhere."""
    owed = uow.points.owed(user_id)
    taken = 0
    for kind in POINTS_OWED_KINDS:
        amount = min(owed.get(kind, 0), uow.ledger.balance(user_id, Account.POINTS, lock=True))
        if amount > 0:
            post(uow, transfer(owed_taken_key(key, kind), kind, reference, amount=amount,
                               source=(user_id, Account.POINTS), target=(PLATFORM, Account.POINTS_ISSUED)), now)
            uow.points.add_owed(user_id, kind, -amount)
            taken += amount
    if taken:
        events.points_changed(uow, user_id=user_id, delta=-taken, reference=reference, reason=POINTS_OWED_TAKEN,
                              balance=uow.ledger.balance(user_id, Account.POINTS), now=now)
    return taken


POINTS_EXPIRY_WALKS = "points-expiry:walks"  # the job_rounds row of where the walks of points holders stand
WALK_SETTLE_SECONDS = 10.0  # the longest a walk waits, as it starts, for the points postings then under way
WALK_LEFT_AT_MOST = 1000  # holders a walk may leave to the next (a hold being settled, an error); more: walk all


@dataclass
class _HolderWalks:
    """Where the walks of the points-expiry job stand (kept in job_rounds as POINTS_EXPIRY_WALKS), for `cutoff`:
    a complete walk (every holder visited) saw the ledger up to the entry `seen` (None: none yet at this cutoff);
    the walk under way sees it up to `upto` (None: none under way), visiting the holders the walk before it left
    (`retry`) first; `left` are those it could not visit (a hold of theirs being settled, an error), for the next."""

    cutoff: str
    seen: int | None = None
    upto: int | None = None
    retry: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)

    @classmethod
    def kept(cls, record: Mapping[str, Any] | None, cutoff: datetime) -> _HolderWalks:
        """The walks `record` keeps, when they are of `cutoff`; else none yet (a new cutoff: walk every holder)."""
        if not record or record.get("cutoff") != cutoff.isoformat():
            return cls(cutoff.isoformat())
        return cls(cutoff.isoformat(), record.get("seen"), record.get("upto"), list(record.get("retry", ())),
                   list(record.get("left", ())))


def expire_points(uow: Callable[[], MemberUnitOfWork], *, now: datetime | None = None, batch: int = 200,
                  budget: RoundBudget | None = None) -> int:
    """Expire the points past their term (domain.points_expiry_cutoff), one transaction per holder; the points
    expired in all. Durable and repeatable: driven by the ledger itself, once per user and cutoff month (the posting
    key; again for old points given back after it, `_expire_points_of`), so a missed run is caught up by the next and
    replicas expire nothing twice.

    What expires changes only when the cutoff does (monthly) or a holder's points move: so the first walk at a
    cutoff visits every holder, and once it is complete each walk after it only the holders whose spendable points
    moved since the ledger entry the last complete walk saw up to (and those it left: `_walk_points_holders`).

    One replica's round at a time (`one_round_at_a_time`; 0 otherwise). With a `budget` (the job's, started by its
    timer) the round stops between holders once it is spent, and the next goes on after the last holder visited
    (`each_page`), whichever replica runs it (the place is kept in job_rounds), so a round never outlasts the job's
    liveness bound however many members hold points, and no replica walks again the holders another's rounds walked."""
    now = now or utcnow()
    cutoff = points_expiry_cutoff(now)
    return one_round_at_a_time(uow, "points-expiry", lambda: _walk_points_holders(uow, cutoff, now, batch, budget),
                               now=now, interval=timedelta(0), budget=budget)


def _walk_points_holders(uow: Callable[[], MemberUnitOfWork], cutoff: datetime, now: datetime, batch: int,
                         budget: RoundBudget | None) -> int:
    """A round of the walk under way (or of a new one): every holder's (the first at the cutoff) or, once a walk at
    the cutoff is complete, of the users whose spendable points moved since it, but by the job's own expiries. Exact:
    a visit finds nothing to expire or mark when neither the cutoff nor the user's spendable points moved since the
    visit before (every change of what expires or is held posts on them: earning, spending, holding, releasing,
    returning; only a held order's payment moves its locked points alone, and the marking is once a month), and a
    walk sees the ledger up to an entry below which none can still commit (`last_settled_entry`), so a posting
    committed later is the next walk's."""
    full, moved = "points holder", "points holder whose points moved"
    with uow() as tx:
        walks = _HolderWalks.kept(tx.round_places(POINTS_EXPIRY_WALKS), cutoff)
        if walks.upto is None:
            walks.upto = tx.ledger.last_settled_entry(WALK_SETTLE_SECONDS)
            if walks.upto is None:
                log.warning("points postings under way for over %s s: the walk starts at the next round",
                            WALK_SETTLE_SECONDS)
                return 0
            if budget is not None:  # a new walk starts from the first holder, whatever place an older one kept
                budget.stopped(full, None)
                budget.stopped(moved, None)
        tx.commit()
    sweep, left, last_page = full if walks.seen is None else moved, [], False

    def visit(user_id: int) -> int:
        try:
            expired = _expire_points_of(uow(), user_id, cutoff, now)
        except Exception as exc:
            if not is_outage(exc):
                left.append(user_id)
            raise
        if expired is None:
            left.append(user_id)
        return expired or 0

    def page(keys: list[K]) -> list[K]:
        nonlocal last_page
        last_page = len(keys) < batch
        return keys

    retry = sorted(walks.retry)
    sweeps = [lambda: each_page(uow, lambda _tx, after: [user for user in retry if user > after][:batch], 0, batch,
                                visit, what="points holder left by the last walk")]
    if walks.seen is None:
        sweeps.append(lambda: each_page(
            uow, lambda tx, after: page(tx.ledger.holders(POINTS_ACCOUNTS, after, batch)), 0, batch,  # held ones too
            visit, what=full, budget=budget))
    else:
        seen, upto = walks.seen, walks.upto
        sweeps.append(lambda: each_page(
            uow, lambda tx, after: page(tx.ledger.users_moved(Account.POINTS, after[0], upto, batch,
                                                              except_kind="points_expired")),
            (seen, 0), batch, lambda key: visit(key[1]), what=moved, budget=budget))
    outage = True
    try:
        expired = each_sweep(*sweeps)
        outage = False
        return expired
    except Exception as exc:
        outage = is_outage(exc)
        raise
    finally:
        if not outage:
            _keep_walks(uow, walks, left, complete=last_page and (budget is None or sweep not in budget.places),
                        now=now)


def _keep_walks(uow: Callable[[], MemberUnitOfWork], walks: _HolderWalks, left: list[int], *, complete: bool,
                now: datetime) -> None:
    """Record the round of the walk: the holders it left; when `complete`, the ledger it saw, for the next walk."""
    walks.retry, walks.left = [], sorted(set(walks.left + left))
    if complete and len(walks.left) <= WALK_LEFT_AT_MOST:
        walks.seen, walks.upto, walks.retry, walks.left = walks.upto, None, walks.left, []
    elif complete:  # too many left to keep: the next walk visits every holder
        log.warning("the points-expiry walk left %d holders: the next visits every holder", len(walks.left))
        walks = _HolderWalks(walks.cutoff)
    with uow() as tx:
        tx.start_round(POINTS_EXPIRY_WALKS, now, timedelta(0))
        tx.keep_round_places(POINTS_EXPIRY_WALKS, asdict(walks))
        tx.commit()


def _expire_points_of(uow: MemberUnitOfWork, user_id: int, cutoff: datetime, now: datetime) -> int | None:
    """Expire the user's points past their term: the spendable ones now; those held by unpaid orders (holds take
    the oldest points first, like spending) are marked on their holds, taken if the hold is released (a paid
    order spent them), so holding points over the run dodges nothing. Once per user and cutoff month, and again for
    old points given back after it (a paid order's spent points, returned by its cancellation); a user one of
    whose holds another transaction is settling right now is left, untouched, to the next run (the marking must
    see all the holds at once, and waiting for the hold under the account lock could deadlock): None then."""
    month = f"{cutoff:%Y-%m}"
    with uow:
        balance = uow.ledger.balance(user_id, Account.POINTS, lock=True)  # no spending meanwhile
        recent = max(0, uow.ledger.sum_entries(user_id, Account.POINTS, POINTS_DATED_KINDS, since=cutoff))
        if uow.ledger.balance(user_id, Account.POINTS_LOCKED):
            holds = uow.points.locked_holds(user_id)
            if holds is None:
                log.info("user %d: a points hold is being settled, points expiry left to the next run", user_id)
                return None
            uow.run_once(scope="points-expire-held", key=f"{user_id}:{month}", request=b"",
                         execute=lambda: _mark_expired_held_points(holds, balance, recent))
        amount = balance - recent
        # Once a month, and again when old points came back after that month's run (a paid order's, returned by its
        # cancellation): the key names what was expired before, so a replica (which waits for the account lock and
        # then finds nothing to expire) or a retry never posts twice.
        reference = f"earned-before-{month}"
        before = -uow.ledger.sum_entries(user_id, Account.POINTS, ("points_expired",), reference=reference)
        key = f"points-expire:{user_id}:{month}" + (f":after-{before}" if before else "")
        if amount <= 0 or not uow.ledger.post(transfer(
                key, "points_expired", reference, amount=amount,
                source=(user_id, Account.POINTS), target=(PLATFORM, Account.POINTS_ISSUED)), now):
            uow.commit()
            return 0
        events.points_changed(uow, user_id=user_id, delta=-amount, reason="points_expired",
                              reference=reference, balance=balance - amount, now=now)
        uow.commit()
    return amount


def _mark_expired_held_points(holds: list[PointsHold], balance: int, recent: int) -> bytes:
    """Of the points the user's LOCKED `holds` keep (not yet marked expired), the old ones (past their term: all the
    user's points but the `recent`ly earned), oldest holds first, marked on their holds."""
    live = [(hold, hold.points - hold.expired_points) for hold in holds]
    old = min(sum(points for _, points in live), max(0, balance + sum(points for _, points in live) - recent))
    for hold, points in live:
        marked = min(points, old)
        hold.expired_points += marked
        old -= marked
    return b"marked"


# ---------------------------------------------------------------- coupons


class Categories(Protocol):
    """The catalogue's categories (the product service's), as far as coupon templates need them."""

    def unknown(self, category_ids: Collection[int]) -> list[int]:
        """Those of `category_ids` the catalogue does not have, in ascending order; a DomainError (503
        PRODUCT_UNAVAILABLE) when it cannot say."""
        ...


def create_coupon_template(uow: MemberUnitOfWork, categories: Categories, *, name: str, kind: str, amount_fen: int,
                           percent_off: int, threshold_fen: int, cap_fen: int, total: int, per_user_limit: int,
                           valid_from: datetime, valid_to: datetime, category_ids: list[int],
                           created_by: int | None = None, needs_approval: bool = True,
                           max_face_fen: int = DEFAULT_COUPON_MAX_FACE_FEN, idempotency_key: str = "",
                           now: datetime | None = None) -> CouponTemplate:
    """A new coupon template (admin or operator `created_by`): pending_approval when it `needs_approval` (its
    creator is not an admin), else active; worth at most `max_face_fen` a coupon (domain.CouponTemplate.create).

    Its `category_ids` must be categories the catalogue has (asked once the fields are valid): 400
    COUPON_TEMPLATE_INVALID naming the others, which no order line could ever match. When the product service
    cannot answer, its error (503 PRODUCT_UNAVAILABLE) is passed on. Either way nothing is created.

    With an idempotency key (and a `created_by`), once per key and staff member: a retry with the same key and
    fields answers the template the first created, as it is now, not a second template; other fields under the key
    are a Conflict IDEMPOTENCY_KEY_REUSED. Without one each call creates anew. A retry of a committed key is
    answered before the fields and categories are checked: after `valid_to` has passed, or while the product service
    is down, it still gets the first template."""
    scope = f"coupon-template-create:staff:{created_by}"
    request = canonical({"name": name, "kind": kind, "amount_fen": amount_fen, "percent_off": percent_off,
                         "threshold_fen": threshold_fen, "cap_fen": cap_fen, "total": total,
                         "per_user_limit": per_user_limit, "valid_from": valid_from.isoformat(),
                         "valid_to": valid_to.isoformat(), "category_ids": list(category_ids)})
    if idempotency_key:
        with uow:
            replayed = uow.replay(scope=scope, key=idempotency_key, request=request)
            first = uow.coupons.template(int(replayed)) if replayed is not None else None
            uow.commit()  # a read: committing keeps the loaded template usable after the transaction
        if first is not None:
            return first
    template = CouponTemplate.create(
        name=name, kind=kind, amount_fen=amount_fen, percent_off=percent_off, threshold_fen=threshold_fen,
        cap_fen=cap_fen, total=total, per_user_limit=per_user_limit, valid_from=valid_from, valid_to=valid_to,
        category_ids=category_ids, now=now or utcnow(), created_by=created_by, needs_approval=needs_approval,
        max_face_fen=max_face_fen)
    unknown = categories.unknown(template.category_ids) if template.category_ids else []
    if unknown:
        raise unknown_categories(unknown)
    with uow:
        def add() -> bytes:
            uow.coupons.add_template(template)
            return str(template.id).encode()

        if not idempotency_key:
            add()
        else:
            template_id = int(uow.run_once(scope=scope, key=idempotency_key, request=request, execute=add))
            first = uow.coupons.template(template_id)
            assert first is not None
            template = first
        uow.commit()
    return template


def approve_coupon_template(uow: MemberUnitOfWork, *, template_id: int, actor_id: int,
                            now: datetime | None = None) -> CouponTemplate:
    """An approver lets a pending template take claims, recorded with who and when; never its creator (Forbidden
    OWN_REQUEST). Again, or racing another approval: the template as it is (the first approver kept), as the row is
    locked while one approval decides."""
    now = now or utcnow()
    with uow:
        template = uow.coupons.template(template_id, lock=True)
        if template is None:
            raise template_not_found()
        if template.approve(actor_id=actor_id, now=now):
            log.info("coupon template %d approved by %d", template_id, actor_id)
        uow.commit()
    return template


@dataclass(frozen=True)
class TemplateUsage:
    """A coupon template and how the coupons claimed from it stand."""

    template: CouponTemplate
    usage: CouponUsage


def coupon_templates(uow: MemberUnitOfWork, *, status: str, offset: int, limit: int,
                     now: datetime | None = None) -> tuple[list[TemplateUsage], int]:
    """Every coupon template for staff, newest first ("" = every status), each with its claimed coupons counted by
    status (one grouped read for the page)."""
    if status and status not in set(TemplateStatus):
        raise InvalidInput("STATUS_INVALID", "unknown coupon template status", details={"status": "invalid"})
    now = now or utcnow()
    with uow:
        templates, total = uow.coupons.templates_page(status, offset, limit)
        counted = uow.coupons.count_by_status([template.id or 0 for template in templates])
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return [TemplateUsage(template, CouponUsage.of(template, counted.get(template.id or 0, {}), now))
            for template in templates], total


def coupon_template(uow: MemberUnitOfWork, *, template_id: int) -> CouponTemplate:
    """One coupon template, for staff."""
    with uow:
        template = uow.coupons.template(template_id)
        if template is None:
            raise template_not_found()
        uow.commit()
    return template


def disable_coupon_template(uow: MemberUnitOfWork, *, template_id: int, actor_id: int, reason: str,
                            now: datetime | None = None) -> CouponTemplate:
    """Stop a template's claims, recording who and why; the coupons claimed stay usable (domain.TemplateStatus).
    Again: the template as it is (the first actor and reason kept).

    The template row is locked, so claims under way finish first; a claim that reaches its conditional update
    after this commits issues nothing (`take_one` re-checks the status)."""
    now = now or utcnow()
    with uow:
        template = uow.coupons.template(template_id, lock=True)
        if template is None:
            raise template_not_found()
        if template.disable(actor_id=actor_id, reason=reason, now=now):
            log.info("coupon template %d disabled by %d: %s", template_id, actor_id, template.disable_reason)
        uow.commit()
    return template


def claimable_coupon_templates(uow: MemberUnitOfWork, *, user_id: int, offset: int, limit: int,
                               now: datetime | None = None) -> tuple[list[tuple[CouponTemplate, int]], int]:
    """The templates the user may claim a coupon of now (active, started, not ended, not all claimed, fewer held
    than the per-user limit, not created or approved by them), newest first, each with how many the user holds."""
    now = now or utcnow()
    with uow:
        page = uow.coupons.claimable(user_id, now, offset, limit)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return page


def claim_coupon(uow: MemberUnitOfWork, *, user_id: int, template_id: int, idempotency_key: str = "",
                 now: datetime | None = None) -> tuple[Coupon, CouponTemplate]:
    """Claim one coupon of a template: within its total (never over-issued) and the per-user limit, while it is
    active (a disabled template issues nothing more, also to a claim racing the disable; a pending one nothing
    yet), and never by the staff member who created or approved it (Forbidden OWN_REQUEST).

    With an idempotency key, once per key: a retry with the same key and template answers the coupon the first
    issued, as it is now (not a second coupon, nor COUPON_LIMIT_REACHED), another template under the key is a
    Conflict. Without one (older clients) each call claims anew."""
    now = now or utcnow()
    with uow:
        def issue() -> bytes:
            template = uow.coupons.template(template_id)
            if template is None:
                raise template_not_found()
            template.check_claimable(user_id, now)
            uow.coupons.lock_claims(user_id, template_id)
            if uow.coupons.claimed(user_id, template_id) >= template.per_user_limit:
                raise DomainError("COUPON_LIMIT_REACHED", "you have claimed as many of these coupons as allowed")
            if not uow.coupons.take_one(template_id):
                fresh = uow.coupons.template(template_id, lock=True)  # disabled meanwhile, or all claimed
                if fresh is not None and fresh.status == TemplateStatus.DISABLED:
                    raise template_disabled()
                raise DomainError("COUPON_SOLD_OUT", "these coupons are all claimed")
            coupon = Coupon(template_id=template_id, user_id=user_id, status=CouponStatus.AVAILABLE, claimed_at=now)
            uow.coupons.add(coupon)
            return str(coupon.id).encode()

        coupon_id = int(uow.run_once(scope=f"coupon-claim:user:{user_id}", key=idempotency_key,
                                     request=str(template_id).encode(), execute=issue)
                        if idempotency_key else issue())
        coupon = uow.coupons.get(coupon_id)
        template = uow.coupons.template(template_id)
        assert coupon is not None and template is not None
        uow.commit()
    return coupon, template


@dataclass(frozen=True)
class CouponView:
    coupon: Coupon
    template: CouponTemplate
    status: str


def list_coupons(uow: MemberUnitOfWork, *, user_id: int, status: str = "", offset: int, limit: int,
                 now: datetime | None = None) -> tuple[list[CouponView], int]:
    """A page of the user's coupons, newest first, with the status they show now (available, locked, used, expired;
    "" = every status, else those showing `status`), and how many there are."""
    now = now or utcnow()
    if status and status not in set(CouponStatus):
        raise InvalidInput("STATUS_INVALID", "unknown coupon status", details={"status": "invalid"})
    with uow:
        found, total = uow.coupons.of_user(user_id, status=status, now=now, offset=offset, limit=limit)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return [CouponView(coupon, template, coupon.shown_status(template, now)) for coupon, template in found], total


@dataclass(frozen=True)
class CouponQuote:
    view: CouponView
    discount_fen: int
    reason: str   # "" when usable


def quote_coupons(uow: MemberUnitOfWork, *, user_id: int, lines: list[OrderLine], coupon_id: int = 0,
                  now: datetime | None = None) -> list[CouponQuote]:
    """What `coupon_id` would take off these lines, or why it can't (COUPON_EXPIRED, COUPON_NOT_AVAILABLE, ...); or,
    without one, what each of the user's coupons usable now (Coupon.usable) would, newest first: the checkout's
    offer, read without the used, locked, expired and not yet started ones years of campaigns leave behind."""
    now = now or utcnow()
    with uow:
        if coupon_id:
            coupon = uow.coupons.get(coupon_id)
            if coupon is None or coupon.user_id != user_id:
                raise coupon_not_found()
            template = uow.coupons.template(coupon.template_id)
            assert template is not None
            found = [(coupon, template)]
        else:
            found = uow.coupons.usable_of_user(user_id, now)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    quotes = []
    for coupon, template in found:
        view = CouponView(coupon, template, coupon.shown_status(template, now))
        if view.status in (CouponStatus.LOCKED, CouponStatus.USED):
            quotes.append(CouponQuote(view, 0, "COUPON_NOT_AVAILABLE"))
            continue
        discount, reason = template.quote(lines, now)
        quotes.append(CouponQuote(view, discount, reason))
    return quotes


@dataclass(frozen=True)
class CouponLock:
    """A coupon held for an order: its discount, and the categories it is limited to (empty: every one), which
    the order service keeps to spread the discount only over the lines filed under them when refunding."""

    discount_fen: int
    category_ids: tuple[int, ...] = ()


def lock_coupon(uow: MemberUnitOfWork, *, user_id: int, order_no: str, coupon_id: int, lines: list[OrderLine],
                now: datetime | None = None) -> CouponLock:
    """Hold the user's coupon for unpaid `order_no` (the same answer again for the same order).

    An order released before it locked any (`release_coupon`) is Conflict COUPON_RELEASED, nothing locked."""
    now = now or utcnow()
    validate_order_no(order_no)
    with uow:
        held = uow.coupons.by_order(order_no, lock=True)  # the order first, then the coupon: one lock order
        if held is None and _released_before_lock(uow, order_no):
            raise Conflict("COUPON_RELEASED", "this order was released before it locked a coupon; it locks none")
        coupon = uow.coupons.get(coupon_id, lock=True)
        if coupon is None or coupon.user_id != user_id:
            raise coupon_not_found()
        template = uow.coupons.template(coupon.template_id)
        assert template is not None
        if held is not None:
            if held.id != coupon.id:
                raise Conflict("ORDER_HAS_COUPON", "this order already holds another coupon")
            return CouponLock(held.discount_fen, tuple(template.category_ids))
        if coupon.status != CouponStatus.AVAILABLE:
            raise Conflict("COUPON_NOT_AVAILABLE", f"this coupon is {coupon.status}")
        discount, reason = template.quote(lines, now)
        if reason:
            raise DomainError(reason, REASONS[reason])
        coupon.lock(order_no, discount, now)
        uow.commit()
    return CouponLock(discount, tuple(template.category_ids))


def _order_coupon(uow: MemberUnitOfWork, order_no: str, user_id: int | None) -> Coupon | None:
    coupon = uow.coupons.by_order(order_no, lock=True)
    if coupon is not None and user_id is not None and coupon.user_id != user_id:
        raise coupon_not_found()
    return coupon


def release_coupon(uow: MemberUnitOfWork, *, order_no: str, user_id: int | None = None,
                   now: datetime | None = None) -> None:
    """Give back the coupon unpaid `order_no` holds (nothing when none, or once used).

    An order holding none is marked released, under the order's lock (an expired lock of no coupon, NO_COUPON): the
    order service releases an order's coupon when its LockCoupon failed or outlived its deadline, and such a call may
    still be running; when it gets there it is refused (COUPON_RELEASED) rather than lock the shopper's coupon for an
    order that will never exist (their retry, a new order number, would find it taken)."""
    now = now or utcnow()
    with uow:
        coupon = _order_coupon(uow, order_no, user_id)
        if coupon is not None:
            coupon.release()
        elif uow.coupons.expired_lock(order_no) is None:
            uow.coupons.add_expired_lock(ExpiredCouponLock(order_no=order_no, coupon_id=NO_COUPON, user_id=user_id or 0,
                                                           discount_fen=0, expired_at=now))
        uow.commit()


def _released_before_lock(uow: MemberUnitOfWork, order_no: str) -> bool:
    """Whether `order_no` was released before it locked a coupon (release_coupon), under the order's lock."""
    expired = uow.coupons.expired_lock(order_no)
    return expired is not None and expired.coupon_id == NO_COUPON


# ---------------------------------------------------------------- expiry of checkout locks


def expire_checkout_holds(uow: Callable[[], MemberUnitOfWork], orders: Orders, *, now: datetime | None = None,
                          batch: int = 100, budget: RoundBudget | None = None) -> int:
    """Release the coupon locks and points holds that no order settled (paid, cancelled, released) within
    CHECKOUT_HOLD_TTL of being taken, and whose order never will: the order service's compensation after a failed
    submit was lost, and the shopper would otherwise never get them back. Returns how many were released.

    An order paid in time may still have its order-paid late (the member consumer, the relay or Kafka behind): had the
    sweep released its lock, the shopper could spend the coupon and points again and the late order-paid find them
    gone (`_use_expired_coupon_again`: lost to the shop). So each page's orders are asked about first (the order
    service's GetOrderStates, as the member service; `batch` at most its MAX_ORDER_STATES), and only the holds of
    orders that ended unpaid (cancelled, closed so) or that the order service does not know (never stored: the submit
    died) are released; those of orders paid (their order-paid settles them), still awaiting payment (their timeout
    cancels them) or in any other state are kept (mall_checkout_holds_kept_total{kind, reason}). When the order
    service does not answer, nothing more is released this round (`reason="unanswered"`): the next asks again.

    Durable and replica-safe like reconcile_recharges: driven by the tables, paged, each lock in its own
    transaction with its row locked FOR UPDATE SKIP LOCKED (a replica, or an order event settling it right
    now, holds it: skipped); a released points hold is EXPIRED and a released coupon lock is recorded by its
    order, so an order-paid arriving after all takes them again (apply_order_paid)."""
    now = now or utcnow()
    before = now - CHECKOUT_HOLD_TTL
    with uow() as tx:
        tx.coupons.date_undated_locks(now)  # locked by a release that kept no lock time: 2 hours from now
        tx.commit()
    asked = _HoldOrders(orders)
    return each_sweep(
        lambda: each_page(uow, lambda tx, after: tx.points.stale_holds(before, after, batch), "", batch,
                          lambda order_no: _expire_points_hold(uow(), order_no, before, now)
                          if asked.may_release("points", order_no) else 0,
                          what="points hold of order", budget=budget,
                          before_page=lambda order_nos: asked.ask("points", order_nos)),
        lambda: each_page(uow, lambda tx, after: tx.coupons.stale_locks(before, after[0], batch), (0, ""), batch,
                          lambda lock: _expire_coupon_lock(uow(), lock[0], lock[1], before, now)
                          if asked.may_release("coupon", lock[1]) else 0,
                          what="lock of coupon", budget=budget,
                          before_page=lambda locks: asked.ask("coupon", [order_no for _, order_no in locks])))


class _HoldOrders:
    """What the order service said, in one round of the checkout-hold sweep, of the orders of its current page."""

    def __init__(self, orders: Orders) -> None:
        self.pages: PageAnswers[OrderState] = PageAnswers(orders.states, self._unanswered)
        self.kind = ""

    def ask(self, kind: str, order_nos: list[str]) -> bool:
        """Ask about a page's orders (their `kind` of hold): False, nothing of the page to be released, when the order
        service does not answer; then it is not asked again this round (each page would wait for it in vain)."""
        self.kind = kind
        return self.pages.ask(order_nos)

    def _unanswered(self, order_nos: Sequence[str], error: DomainError | None) -> None:
        if error is not None:
            log.warning("the order service did not say what became of the orders of %d stale %s holds (%s): "
                        "nothing is released until the next round", len(order_nos), self.kind, error.code)
        metrics.CHECKOUT_HOLDS_KEPT.labels(self.kind, "unanswered").inc(len(order_nos))

    def may_release(self, kind: str, order_no: str) -> bool:
        """Whether the stale `kind` hold of `order_no` may go back to the shopper: its order ended unpaid, or the order
        service does not know it (never stored). Else kept, and counted."""
        state = self.pages.answers.get(order_no)
        if state is None or state.ended_unpaid:
            return True
        metrics.CHECKOUT_HOLDS_KEPT.labels(kind, "paid" if state.paid else "awaiting_payment").inc()
        if state.paid:
            log.warning("order %s is %s, but its order-paid has not been applied %s after its %s hold was taken: "
                        "kept for it (is the member consumer behind?)", order_no, state.status, CHECKOUT_HOLD_TTL,
                        kind)
        return False


def _expire_points_hold(uow: MemberUnitOfWork, order_no: str, before: datetime, now: datetime) -> int:
    with uow:
        hold = uow.points.lock_stale_hold(order_no, before)
        if hold is None:
            return 0  # settled meanwhile, or another replica is releasing it right now
        _release_points(uow, hold, now, expired=True)
        uow.on_commit(metrics.CHECKOUT_HOLDS_EXPIRED.labels("points").inc)
        uow.commit()
    log.warning("order %s held %d points of user %d unsettled since %s: released", order_no, hold.points,
                hold.user_id, hold.created_at.isoformat())
    return 1


def _expire_coupon_lock(uow: MemberUnitOfWork, coupon_id: int, order_no: str, before: datetime,
                        now: datetime) -> int:
    with uow:
        coupon = uow.coupons.lock_stale(coupon_id, before)
        if coupon is None or coupon.order_no is None or coupon.order_no != order_no:
            return 0  # settled meanwhile (locked by another order since: not the one asked about), or another
            # replica is releasing it right now
        expired = ExpiredCouponLock(order_no=coupon.order_no, coupon_id=coupon_id, user_id=coupon.user_id,
                                    discount_fen=coupon.discount_fen, expired_at=now)
        coupon.release()
        uow.coupons.add_expired_lock(expired)
        uow.on_commit(metrics.CHECKOUT_HOLDS_EXPIRED.labels("coupon").inc)
        uow.commit()
    log.warning("order %s locked coupon %d of user %d unsettled: released", expired.order_no, coupon_id,
                expired.user_id)
    return 1


def _take_expired_points_again(uow: MemberUnitOfWork, hold: PointsHold, now: datetime) -> None:
    """order-paid for an order whose points hold the sweep had released (it cannot happen within
    CHECKOUT_HOLD_TTL): the order was priced with those points, so they are spent now, as far as the shopper
    still has them, and the rest is owed (`_owe_points`). Only the points the hold still kept: those an expiry run
    marked on it (`expired_points`) were taken when the sweep released it, and a payment on time would not have
    left them to the shopper either. The hold is USED for those points, what was taken and what is owed: a
    cancellation after review returns them (`_return_spent_points`), and the debt is taken from that return, so
    the shopper ends as if the order had used no points. Never silent: an error logged and a metric counted."""
    held = hold.points - hold.expired_points
    taken = min(held, uow.ledger.balance(hold.user_id, Account.POINTS, lock=True))
    hold.status = HoldStatus.USED
    if taken:
        post(uow, transfer(f"points-use:{hold.order_no}", "points_used", hold.order_no, amount=taken,
                           source=(hold.user_id, Account.POINTS), target=(PLATFORM, Account.POINTS_ISSUED)), now)
        events.points_changed(uow, user_id=hold.user_id, delta=-taken, reference=hold.order_no, reason="points_used",
                              balance=uow.ledger.balance(hold.user_id, Account.POINTS), now=now)
    _owe_points(uow, hold.user_id, "points_used", held - taken, hold.order_no)
    outcome = "taken_again" if taken == held else "short"
    uow.on_commit(metrics.EXPIRED_HOLDS_PAID.labels("points", outcome).inc)
    log.error("order %s was paid after its hold of %d points had expired: %d taken again from user %d, %d short "
              "(owed)", hold.order_no, held, taken, hold.user_id, held - taken)


def _use_expired_coupon_again(uow: MemberUnitOfWork, order_no: str, now: datetime) -> None:
    """order-paid for an order whose coupon lock the sweep had released (it cannot happen within
    CHECKOUT_HOLD_TTL): the coupon is used by the order after all if it is still available, else it was lost
    to the shop (another order has it). Never silent: an error logged and a metric counted."""
    expired = uow.coupons.expired_lock(order_no)
    if expired is None or expired.coupon_id == NO_COUPON:  # none, or the order was released before it locked one
        return
    coupon = uow.coupons.get(expired.coupon_id, lock=True)
    if coupon is not None and coupon.status == CouponStatus.AVAILABLE:
        coupon.lock(order_no, expired.discount_fen, now)
        coupon.use(now)
        outcome = "taken_again"
    else:
        outcome = "lost"
    uow.on_commit(metrics.EXPIRED_HOLDS_PAID.labels("coupon", outcome).inc)
    log.error("order %s was paid after its lock of coupon %d (%d fen off) had expired: %s", order_no,
              expired.coupon_id, expired.discount_fen,
              "used by the order after all" if outcome == "taken_again" else "the coupon is taken by another order")


# ---------------------------------------------------------------- balance payment


# Who came first for an order's wallet payment, its charge or its void: the claim is an idempotency key
# (scope, order_no), so whichever commits it first decides and the other waits for that transaction to end.
PAYMENT_CLAIM = "balance-payment"
CHARGED, VOID = b"charged", b"void"


def pay_with_balance(uow: MemberUnitOfWork, *, user_id: int, order_no: str, amount_fen: int,
                     now: datetime | None = None) -> int:
    """Pay order `order_no` from the user's available balance, once; the balance after. DomainError
    BALANCE_PAYMENT_VOID, charging nothing, once the order's wallet payment was voided (`void_balance_payment`)."""
    now = now or utcnow()
    validate_order_no(order_no)
    with uow:
        if uow.run_once(scope=PAYMENT_CLAIM, key=order_no, request=b"", execute=lambda: CHARGED) == VOID:
            raise balance_payment_void(order_no)

        bonus = 0

        def legs() -> Posting:  # bonus credit first, then the available balance
            nonlocal bonus
            bonus = min(uow.ledger.lock_wallet(user_id)[Account.BONUS], amount_fen)
            return _split(f"balance-payment:{order_no}", "balance_payment", order_no, user_id, -amount_fen,
                          bonus=-bonus, other=(PLATFORM, Account.SALES))

        try:
            _post_once(uow, legs, amount_fen, now)
        except InsufficientFunds as short:  # the bonus paid what it could: what the whole wallet lacks for the order
            raise InsufficientFunds(short.account, available=short.available + bonus, needed=amount_fen) from None
        balance = uow.ledger.balance(user_id, Account.AVAILABLE)
        uow.commit()
    return balance


@dataclass(frozen=True)
class BalancePayment:
    """What a wallet paid for an order: whose, and how much (bonus credit included)."""

    user_id: int
    amount_fen: int


def void_balance_payment(uow: MemberUnitOfWork, *, order_no: str) -> BalancePayment | None:
    """What `pay_with_balance` charged for `order_no`; when nothing, the order's wallet payment is void from now on
    (a charge still under way is refused when it gets there), so None is final. Refunds of the order do not change
    the answer: the order service asks this to settle payments whose answer it lost."""
    validate_order_no(order_no)
    with uow:
        key = f"balance-payment:{order_no}"
        # A charge made before charges claimed the order has no claim: its posting answers for it.
        uow.run_once(scope=PAYMENT_CLAIM, key=order_no, request=b"",
                     execute=lambda: CHARGED if uow.ledger.find(key) else VOID)
        paid = uow.ledger.find(key)
        uow.commit()
    if paid is None:
        return None
    user_legs = [leg for leg in paid.legs if leg.user_id != PLATFORM]
    return BalancePayment(user_id=user_legs[0].user_id, amount_fen=-sum(leg.amount for leg in user_legs))


def refund_to_balance(uow: MemberUnitOfWork, *, user_id: int, refund_no: str, order_no: str, amount_fen: int,
                      now: datetime | None = None) -> int:
    """Credit refund `refund_no` of `order_no` to the user's available balance, once; the balance after.

    Only a payment the user made from the wallet for that order is refunded (NotFound BALANCE_PAYMENT_NOT_FOUND
    otherwise), and all its refunds together return at most what it charged (DomainError REFUND_EXCEEDS_PAYMENT,
    nothing credited): the order service checks its amounts too, this keeps the wallet whole whatever asks.

    The bonus the order used comes back as bonus, first, but for what paid withdrawals have repaid of the spent
    bonus with cash and nothing gave back yet (`_return_repaid_bonus`): that much comes back as cash."""
    now = now or utcnow()
    validate_order_no(order_no)
    if not 0 < len(refund_no) <= 64 or user_id <= 0:
        raise InvalidInput("REFUND_INVALID", "refund_no (1-64 characters) and user_id are required")
    with uow:
        def legs() -> Posting:  # the bonus the order used comes back as bonus, first (what was repaid: below)
            paid = uow.ledger.find(f"balance-payment:{order_no}")
            if paid is None or {leg.user_id for leg in paid.legs if leg.user_id} != {user_id}:
                raise NotFound("BALANCE_PAYMENT_NOT_FOUND", "this user paid nothing for this order from the wallet")
            uow.ledger.lock_refunds(order_no)  # one refund of the order at a time: each sees the ones before
            key = f"balance-refund:{refund_no}"

            def refunded(account: str) -> int:
                return uow.ledger.sum_entries(user_id, account, ("balance_refund",), reference=order_no)

            refundable = -sum(leg.amount for leg in paid.legs if leg.user_id) - refunded(Account.AVAILABLE) \
                - refunded(Account.BONUS)
            if amount_fen > refundable and uow.ledger.find(key) is None:  # a replay is answered by _post_once
                raise DomainError("REFUND_EXCEEDS_PAYMENT", "the refunds would return more than the wallet paid",
                                  details={"refundable_fen": refundable})
            used = -sum(leg.amount for leg in paid.legs if leg.account == Account.BONUS)
            return _split(key, "balance_refund", order_no, user_id, amount_fen,
                          bonus=min(amount_fen, max(0, used - refunded(Account.BONUS))),
                          other=(PLATFORM, Account.SALES))

        refund = _post_once(uow, legs, amount_fen, now)
        if refund is not None:
            _return_repaid_bonus(uow, user_id, bonus_fen=sum(leg.amount for leg in refund.legs
                                                             if leg.account == Account.BONUS),
                                 key=f"bonus-repayment-return:{refund_no}", reference=order_no, now=now)
        balance = uow.ledger.balance(user_id, Account.AVAILABLE)
        uow.commit()
    return balance


def _split(key: str, kind: str, reference: str, user_id: int, amount: int, *, bonus: int,
           other: tuple[int, str]) -> Posting:
    """`amount` onto the user's wallet (negative: off it), `bonus` of it on the bonus account, the rest
    on available; the other side on `other`."""
    legs = [Leg(user_id, Account.BONUS, bonus), Leg(user_id, Account.AVAILABLE, amount - bonus),
            Leg(other[0], other[1], -amount)]
    return Posting(key, kind, reference, tuple(leg for leg in legs if leg.amount))


def _post_once(uow: MemberUnitOfWork, build: Callable[[], Posting], amount: int, now: datetime) -> Posting | None:
    """Apply the posting `build` makes, once per key: the posting when applied now; None for a replay of the same
    amount by the same user, which changes nothing (its split may have been made from other balances); another
    amount, or another user's wallet, under the key is a Conflict (one order's payment by Bob never answers
    Alice's as paid)."""
    if amount <= 0:
        raise InvalidInput("AMOUNT_INVALID", "the amount must be positive", details={"amount_fen": "invalid"})
    posting = build()
    first = uow.ledger.find(posting.key)
    if first is None and uow.ledger.post(posting, now):
        return posting
    first = first or uow.ledger.find(posting.key)
    legs = first.legs if first else ()
    user_side = sum(abs(leg.amount) for leg in legs if leg.user_id)
    users = {leg.user_id for leg in legs if leg.user_id}
    if first is None or user_side != amount or users != {leg.user_id for leg in posting.legs if leg.user_id}:
        raise posting_conflict(posting.key)
    return None


# A withdrawal that forfeits bonus already spent keeps that much from its transfer: once it is paid, the shopper has
# repaid the spent bonus with cash. A refund of an order that bonus paid then gives back as cash as much of its bonus
# share as is repaid and not yet given back, and a withdrawal paid out does the same with the bonus refunds credited
# while it was under way, as far as the shopper still holds it (`_refunded_bonus_held`: never the bonus of a recharge
# made meanwhile): the bonus stays forfeited, and what was paid for it comes back as it was
# paid (`bonus_repayment_returned`, bonus to available). Only paid withdrawals count: one given back instead (rejected,
# its transfer failed) returns what it kept itself, and its draws on recharges stop counting; and it leaves the others
# as if it had never been asked for: the refunded bonus its forfeit took counts as held again, and turns into cash at
# once if a withdrawal that repaid spent bonus was paid meanwhile (`_give_back`).
REPAYMENT_RETURNED = "bonus_repayment_returned"


def _repaid_not_returned(uow: MemberUnitOfWork, user_id: int) -> int:
    """What paid withdrawals kept for spent bonus and nothing has given back yet (read under the wallet's locks)."""
    return (uow.withdrawals.kept_for_spent_bonus(user_id)
            - uow.ledger.sum_entries(user_id, Account.AVAILABLE, (REPAYMENT_RETURNED,)))


def _return_repaid_bonus(uow: MemberUnitOfWork, user_id: int, *, bonus_fen: int, key: str, reference: str,
                         now: datetime) -> None:
    """Of `bonus_fen` just credited to (or held on) the user's bonus account, the part paid withdrawals kept for
    spent bonus and nothing gave back yet goes on to available, once per `key`. Called after a posting to the
    user's wallet, so read under its locks (every refund, withdrawal and payout takes them)."""
    cash = min(bonus_fen, _repaid_not_returned(uow, user_id)) if bonus_fen > 0 else 0
    if cash > 0:
        post(uow, Posting(key, REPAYMENT_RETURNED, reference,
                          (Leg(user_id, Account.BONUS, -cash), Leg(user_id, Account.AVAILABLE, cash))), now)


def _refunded_bonus_held(entries: Iterable[LedgerEntry]) -> tuple[int, dict[str, int]]:
    """Of the user's bonus `entries` (`ledger.entries_after`: since a posting, or ever), the bonus refunds credited
    that the user still holds and nothing has turned into cash: never a recharge's bonus. Bonus spent or forfeited meanwhile takes that refunded bonus last, as
    it would have taken the other bonus first had the refund come back as cash: each other movement leaves at most the
    balance after it. A forfeit given back (`bonus_forfeit_returned`) puts back what its withdrawal's forfeit took of
    that refunded bonus, as if it had never been asked for; with the figure, what each such give-back put back, by
    withdrawal number. Exact from a zero bonus balance, as a withdrawal that keeps anything leaves it; read under the
    wallet's locks."""
    held, taken, put_back = 0, {}, {}
    for entry in entries:
        turned = entry.amount if entry.kind in ("balance_refund", REPAYMENT_RETURNED) else 0
        if entry.kind == "bonus_forfeit_returned":
            turned = taken.pop(entry.reference, 0)
        before, held = held, max(0, min(held + turned, entry.balance_after))
        if entry.kind == "bonus_forfeited":
            taken[entry.reference] = before - held
        elif entry.kind == "bonus_forfeit_returned":
            put_back[entry.reference] = held - before
    return held, put_back


def _refunded_bonus_held_since_hold(uow: MemberUnitOfWork, user_id: int, no: str) -> int:
    """What withdrawal `no`'s payout may turn into cash: the bonus refunded since its hold and still held
    (`_refunded_bonus_held`), and what give-backs since its hold put back of refunded bonus forfeited before it, less
    what those give-backs turned into cash themselves; as had those withdrawals never been asked for. Never more than
    the refunded bonus the user holds at all."""
    hold = f"withdrawal-hold:{no}"
    after = uow.ledger.entries_after(user_id, Account.BONUS, hold)
    held, _ = _refunded_bonus_held(after)
    forfeited_after = {entry.reference for entry in after if entry.kind == "bonus_forfeited"}
    given_back = {entry.reference for entry in after if entry.kind == "bonus_forfeit_returned"} - forfeited_after
    if not given_back:
        return held
    held_ever, put_back = _refunded_bonus_held(uow.ledger.entries_after(user_id, Account.BONUS, None))
    extra = 0
    for other in given_back:
        cash = uow.ledger.find(f"bonus-repayment-giveback:{other}")
        extra += put_back.get(other, 0) - (sum(leg.amount for leg in cash.legs if leg.account == Account.AVAILABLE)
                                           if cash else 0)
    return held + max(0, min(extra, held_ever - held))


# ---------------------------------------------------------------- withdrawals


def request_withdrawal(uow: MemberUnitOfWork, *, user_id: int, amount_fen: int, idempotency_key: str,
                       now: datetime | None = None) -> Withdrawal:
    """Ask to withdraw `amount_fen`: it moves from available to pending at once, for finance to review, and
    forfeits the bonus of the recharges it draws on (domain.draw_principal): from the bonus credit as far as
    it is unspent, the rest kept from the transfer. One withdrawal per idempotency key. The daily maximum and the
    cap on withdrawals awaiting review (`Withdrawal.request`) are read under the user's lock: two requests at once
    never both take the day's last fen or the last place."""
    now = now or utcnow()
    with uow:
        def create() -> bytes:
            uow.withdrawals.lock_user(user_id)
            # What this reads (today's withdrawals, what each recharge has given them, the bonus) is read under the
            # wallet's locks, which a withdrawal given back holds until it commits: never its draws as still standing.
            wallet = uow.ledger.lock_wallet(user_id)
            withdrawal = Withdrawal.request(user_id=user_id, amount_fen=amount_fen, now=now,
                                            requested_today_fen=uow.withdrawals.requested_since(
                                                user_id, shop_day_start(shop_day(now))),
                                            pending_review=uow.withdrawals.count_pending_review(user_id))
            no = withdrawal.withdrawal_no
            draws = draw_principal(amount_fen, uow.withdrawals.recharge_lots(user_id))
            from_bonus, deducted = withdrawal.forfeit_bonus(draws, wallet[Account.BONUS])
            uow.withdrawals.add(withdrawal)
            uow.withdrawals.add_draws(no, draws)
            post(uow, transfer(f"withdrawal-hold:{no}", "withdrawal_requested", no, amount=amount_fen,
                               source=(user_id, Account.AVAILABLE), target=(user_id, Account.PENDING)), now)
            legs = (Leg(user_id, Account.BONUS, -from_bonus), Leg(user_id, Account.PENDING, -deducted),
                    Leg(PLATFORM, Account.PROMOTIONS, from_bonus + deducted))
            if from_bonus + deducted:
                post(uow, Posting(f"withdrawal-forfeit:{no}", "bonus_forfeited", no,
                                  tuple(leg for leg in legs if leg.amount)), now)
            uow.on_commit(metrics.WITHDRAWALS.labels("requested").inc)
            return str(withdrawal.id).encode()

        withdrawal_id = int(uow.run_once(scope=f"withdrawal:user:{user_id}", key=idempotency_key,
                                         request=str(amount_fen).encode(), execute=create))
        withdrawal = uow.withdrawals.get(withdrawal_id)
        assert withdrawal is not None
        uow.commit()
    return withdrawal


def _give_back(uow: MemberUnitOfWork, withdrawal: Withdrawal, *, key: str, kind: str, now: datetime) -> None:
    """A withdrawal that pays nothing (rejected, or its transfer failed): the bonus it forfeited comes back (what of it
    was refunded bonus, as cash as far as paid withdrawals repaid spent bonus not yet given back), then its whole
    amount goes back to available; its draws on recharges stop counting with its status."""
    no, user_id = withdrawal.withdrawal_no, withdrawal.user_id
    forfeit = uow.ledger.find(f"withdrawal-forfeit:{no}")
    if forfeit is not None:
        post(uow, Posting(f"withdrawal-forfeit-return:{no}", "bonus_forfeit_returned", no,
                          tuple(Leg(leg.user_id, leg.account, -leg.amount) for leg in forfeit.legs)), now)
        # Refunded bonus its forfeit took while a withdrawal that repays spent bonus was under way: that one's payout
        # would have turned it into cash had this one never been asked for, so it does now if that one is paid.
        if any(leg.account == Account.BONUS for leg in forfeit.legs) and _repaid_not_returned(uow, user_id) > 0:
            _return_repaid_bonus(uow, user_id, bonus_fen=_refunded_bonus_held(uow.ledger.entries_after(user_id, Account.BONUS, None))[1].get(no, 0),
                                 key=f"bonus-repayment-giveback:{no}", reference=no, now=now)
    post(uow, transfer(f"{key}:{no}", kind, no, amount=withdrawal.amount_fen,
                       source=(user_id, Account.PENDING), target=(user_id, Account.AVAILABLE)), now)


def decide_withdrawal(uow: MemberUnitOfWork, payout: PayoutChannel, *, withdrawal_id: int, approve: bool, note: str,
                      decided_by: int, shopper_reason: str = "", now: datetime | None = None) -> Withdrawal:
    """Finance's decision: reject releases the amount to available; approve commits the withdrawal PAYING, then
    sends the transfer (its bill number is the withdrawal number), then records the answer (`_send_payout`).
    `note` is for staff; the shopper reads `shopper_reason`. The same decision again changes nothing.

    The transfer is never sent inside the transaction that decides: if the record of a transfer's answer is
    lost (a failed commit, a crash), the withdrawal is still PAYING, which nothing but the transfer's end can
    change (a rejection is refused), and `settle_payouts` asks the channel about it until it ends, under the
    same bill number, so it is paid once and never released as well."""
    now = now or utcnow()
    with uow:
        withdrawal = uow.withdrawals.get(withdrawal_id, lock=True)
        if withdrawal is None:
            raise withdrawal_not_found()
        decided = withdrawal.decide(approve=approve, note=note, decided_by=decided_by, now=now,
                                    shopper_reason=shopper_reason)
        if decided:
            uow.withdrawals.add_decision(WithdrawalDecision.of(
                withdrawal, DecisionOutcome.APPROVED if approve else DecisionOutcome.REJECTED, actor_id=decided_by,
                note=note, now=now))
        if decided and not approve:
            _give_back(uow, withdrawal, key="withdrawal-release", kind="withdrawal_rejected", now=now)
            uow.on_commit(metrics.WITHDRAWALS.labels("rejected").inc)
        uow.commit()  # an approval is PAYING, durably, before any money can move
    if not (decided and approve):
        return withdrawal
    return _send_payout(uow, payout, withdrawal_id, now)


def _send_payout(uow: MemberUnitOfWork, payout: PayoutChannel, withdrawal_id: int, now: datetime) -> Withdrawal:
    """Send the transfer of a withdrawal committed PAYING and record the answer, its row locked meanwhile (the
    payout job, which skips locked rows, waits its turn): paid at once is PAID; refused outright (nothing paid,
    nothing on its way) is back under review and answers PAYOUT_FAILED; in flight or unanswered stays PAYING
    for `settle_payouts`. Should this transaction fail, the withdrawal stays PAYING, for the same."""
    with uow:
        withdrawal = uow.withdrawals.lock_paying(withdrawal_id)
        if withdrawal is None:  # the payout job holds it, or has ended it, already
            withdrawal = uow.withdrawals.get(withdrawal_id)
            uow.commit()
            assert withdrawal is not None
            return withdrawal
        try:  # idempotent by the bill number: the payout job's retries are this same transfer
            sent = payout.pay(payout_no=withdrawal.withdrawal_no, user_id=withdrawal.user_id,
                              amount_fen=withdrawal.payout_fen)
        except PayoutFailed as exc:
            sent = Payout(PayoutState.FAILED, reason=str(exc))
        if sent.state == PayoutState.FAILED:
            if withdrawal.payout_refused(sent.reason):
                uow.withdrawals.add_decision(WithdrawalDecision.of(withdrawal, DecisionOutcome.PAYOUT_REFUSED,
                                                                   actor_id=None, note=sent.reason, now=now))
            uow.commit()
            raise DomainError("PAYOUT_FAILED", f"the payout channel refused: {sent.reason}")
        if sent.state == PayoutState.PAID:
            _payout_ended(uow, withdrawal, sent, now)
        elif sent.state == PayoutState.IN_FLIGHT:
            withdrawal.payout_in_flight(txn_id=sent.txn_id, awaits_shopper=sent.awaits_shopper, confirm=sent.confirm)
        uow.commit()  # IN_FLIGHT or UNKNOWN: PAYING, asked about until it ends
    return withdrawal


def _payout_ended(uow: MemberUnitOfWork, withdrawal: Withdrawal, payout: Payout, now: datetime) -> bool:
    """The one way a PAYING withdrawal ends, its row locked: paid (pending leaves the wallet for the platform's
    clearing account, `member-withdrawn`; the spent bonus it repaid, when refunded meanwhile as bonus, comes back
    as cash: `_return_repaid_bonus`) or failed (pending back to available). Once: False if it had ended."""
    paid = payout.state == PayoutState.PAID
    if not withdrawal.payout_ended(paid=paid, txn_id=payout.txn_id, reason=payout.reason):
        return False
    no, user_id, amount = withdrawal.withdrawal_no, withdrawal.user_id, withdrawal.payout_fen
    if paid:
        post(uow, transfer(f"withdrawal-payout:{no}", "withdrawal_paid", no, amount=amount,
                           source=(user_id, Account.PENDING), target=(PLATFORM, Account.CLEARING)), now)
        if withdrawal.deducted_fen:  # the spent bonus it repaid may have been refunded meanwhile, as bonus
            _return_repaid_bonus(uow, user_id, bonus_fen=_refunded_bonus_held_since_hold(uow, user_id, no),
                                 key=f"bonus-repayment-payout:{no}", reference=no, now=now)
        member = uow.members.get(user_id)
        events.member_withdrawn(uow, withdrawal, member_no=(member.member_no or "") if member else "",
                                balance_fen=uow.ledger.balance(user_id, Account.AVAILABLE), withdrawn_at=now,
                                channel=payout.channel)
        uow.on_commit(lambda: metrics.withdrawal_paid(amount))
    else:
        _give_back(uow, withdrawal, key="withdrawal-return", kind="withdrawal_failed", now=now)
        uow.on_commit(metrics.WITHDRAWALS.labels("failed").inc)
    return True


def settle_payouts(uow: Callable[[], MemberUnitOfWork], payout: PayoutChannel, *, now: datetime | None = None,
                   settle_seconds: int = 60, batch: int = 50, budget: RoundBudget | None = None) -> int:
    """Ask the payout channel again about approved withdrawals still PAYING `settle_seconds` after approval (a
    transfer in flight, or one whose answer was lost): success pays the withdrawal (`member-withdrawn` once),
    failure gives the amount back to available, once. Returns how many ended.

    Durable and replica-safe like reconcile_recharges: driven by the withdrawals table, paged by id, each in
    its own transaction with its row locked FOR UPDATE SKIP LOCKED (a replica or a finance retry holding it
    is skipped). A payout the channel cannot speak for yet stays PAYING for the next run; each round ends by
    exporting how many have stayed PAYING past PAYOUT_OVERDUE (`_show_overdue_payouts`), for the alert.
    """
    now = now or utcnow()
    approved_before = now - timedelta(seconds=settle_seconds)
    try:
        return each_page(uow, lambda tx, after: tx.withdrawals.paying(approved_before, after, batch), 0, batch,
                         lambda withdrawal_id: _settle_payout(uow(), payout, withdrawal_id, now),
                         what="payout of withdrawal", budget=budget)
    finally:  # also when a round fails part way: the gauges must not keep the last good round's values
        _show_overdue_payouts(uow(), now)


# Longer than WeChat Pay leaves a transfer waiting for the shopper to confirm it (24 hours, then CANCELLED): a
# withdrawal PAYING this long after approval has no end coming by itself.
PAYOUT_OVERDUE = timedelta(hours=25)


def _show_overdue_payouts(uow: MemberUnitOfWork, now: datetime) -> None:
    """Export how many withdrawals are still PAYING PAYOUT_OVERDUE after approval, and how long ago the oldest was
    approved (`mall_withdrawals_paying_overdue`, `..._oldest_seconds`), for the WithdrawalPayingOverdue alert: the
    job keeps asking about them (a re-sent transfer refused, no usable answer), and nothing else ends them."""
    with uow:
        count, oldest = uow.withdrawals.count_paying_before(now - PAYOUT_OVERDUE)
        uow.commit()
    metrics.overdue_payouts(count, seconds_since(oldest, now))


def _settle_payout(uow: MemberUnitOfWork, payout: PayoutChannel, withdrawal_id: int, now: datetime) -> int:
    with uow:
        withdrawal = uow.withdrawals.lock_paying(withdrawal_id)
        if withdrawal is None:
            return 0  # ended meanwhile, or another replica is asking about it right now
        answer = _with_confirm(payout, withdrawal, payout.status(
            payout_no=withdrawal.withdrawal_no, user_id=withdrawal.user_id, amount_fen=withdrawal.payout_fen))
        if answer.state not in (PayoutState.PAID, PayoutState.FAILED):
            if answer.state == PayoutState.IN_FLIGHT:
                withdrawal.payout_in_flight(txn_id=answer.txn_id, awaits_shopper=answer.awaits_shopper,
                                            confirm=answer.confirm)
            uow.commit()
            return 0
        _payout_ended(uow, withdrawal, answer, now)
        uow.commit()
    log.info("withdrawal %s: payout ended %s", withdrawal.withdrawal_no, withdrawal.status)
    return 1


def _with_confirm(payout: PayoutChannel, withdrawal: Withdrawal, answer: Payout) -> Payout:
    """The answer, or, when it says the transfer awaits the shopper but not with what they confirm it and nothing
    earlier said so either (the transfer's own answer was lost: WeChat Pay's bill query carries no package_info), the
    same transfer sent again, which the channel answers with it (idempotent by the withdrawal number: paid once)."""
    if not answer.awaits_shopper or answer.confirm is not None or withdrawal.payout_confirm is not None:
        return answer
    try:
        again = payout.pay(payout_no=withdrawal.withdrawal_no, user_id=withdrawal.user_id,
                           amount_fen=withdrawal.payout_fen)
    except PayoutFailed as refused:  # proves nothing about the transfer under way: asked about again next round
        log.warning("withdrawal %s: its transfer awaits the shopper, sent again for its confirmation refused: %s",
                    withdrawal.withdrawal_no, refused)
        return answer
    return answer if again.state == PayoutState.UNKNOWN else again


def list_withdrawals(uow: MemberUnitOfWork, *, status: str, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
    """Withdrawals for finance to review, oldest first ("" = every status)."""
    if status and status not in set(WithdrawalStatus):
        raise InvalidInput("STATUS_INVALID", "unknown withdrawal status", details={"status": "invalid"})
    with uow:
        page = uow.withdrawals.page(status, offset, limit)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return page


def my_withdrawals(uow: MemberUnitOfWork, *, user_id: int, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
    """The shopper's own withdrawals, newest first."""
    with uow:
        page = uow.withdrawals.of_user(user_id, offset, limit)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return page


def my_withdrawal(uow: MemberUnitOfWork, *, user_id: int, withdrawal_id: int) -> Withdrawal:
    """One of the shopper's own withdrawals (WITHDRAWAL_NOT_FOUND for anyone else's)."""
    with uow:
        withdrawal = uow.withdrawals.get(withdrawal_id)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    if withdrawal is None or withdrawal.user_id != user_id:
        raise withdrawal_not_found()
    return withdrawal


# ---------------------------------------------------------------- recharges


def create_recharge(uow: MemberUnitOfWork, payment: PaymentChannel, *, user_id: int, amount_fen: int, channel: str,
                    idempotency_key: str, now: datetime | None = None) -> tuple[Recharge, dict[str, str]]:
    """A pending recharge and the channel's payment parameters, once per idempotency key: the same key and request
    again give the first recharge, as it is now, with the parameters first given (a double tap pays one recharge);
    another request under the key is a Conflict. Credited only by a verified notify.

    The channel prepares the payment inside the transaction that stores the recharge and claims the key, as
    submitting an order reserves stock inside its own: a channel that refuses or does not answer (not configured,
    no WeChat bound, WeChat Pay down) leaves no recharge behind and the key free for a retry, and a request
    racing the first with its key waits for it and answers its recharge. The recharges the shopper has awaiting
    payment are counted under the user's lock (`Recharge.create` refuses one past MAX_PENDING_RECHARGES): two
    requests under other keys at once never both take the last place."""
    now = now or utcnow()
    with uow:
        def create() -> bytes:
            uow.recharges.lock_user(user_id)
            recharge = Recharge.create(user_id=user_id, amount_fen=amount_fen, channel=channel, now=now,
                                       pending_recharges=uow.recharges.count_pending(user_id))
            uow.recharges.add(recharge)
            params = payment.prepare(channel=channel, out_trade_no=recharge.recharge_no, amount_fen=amount_fen,
                                     user_id=user_id, now=now, expires_at=recharge.pay_deadline)
            return json.dumps({"recharge_no": recharge.recharge_no, "payment": params}, sort_keys=True).encode()

        first = json.loads(uow.run_once(scope=f"recharge:user:{user_id}", key=idempotency_key,
                                        request=f"{amount_fen}:{channel}".encode(), execute=create))
        recharge = uow.recharges.by_no(first["recharge_no"])
        assert recharge is not None
        uow.commit()
    return recharge, first["payment"]


def get_recharge(uow: MemberUnitOfWork, *, user_id: int, recharge_no: str) -> Recharge:
    """One of the user's recharges (another user's is not found), as it stands: has the payment arrived?"""
    with uow:
        recharge = uow.recharges.by_no(recharge_no)
        if recharge is None or recharge.user_id != user_id:
            raise recharge_not_found()
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return recharge


def my_recharges(uow: MemberUnitOfWork, *, user_id: int, status: str, offset: int,
                 limit: int) -> tuple[list[Recharge], int]:
    """The user's recharges, newest first ("" = every status)."""
    if status and status not in set(RechargeStatus):
        raise InvalidInput("STATUS_INVALID", "unknown recharge status", details={"status": "invalid"})
    with uow:
        page = uow.recharges.of_user(user_id, status, offset, limit)
        uow.commit()  # ends the read without expiring what it loaded (a rollback would)
    return page


def close_recharge(uow: MemberUnitOfWork, payment: PaymentChannel, *, user_id: int, recharge_no: str,
                   now: datetime | None = None) -> Recharge:
    """Close one of the user's recharges awaiting payment (another user's is not found), so a new one can start: its
    channel closes the payment and says how it ended (`PaymentChannel.close`); one the channel reports paid (the payer
    beat the close) is credited, through the notify's code path; otherwise it is CLOSED, no longer counted against
    MAX_PENDING_RECHARGES. A CLOSED or PAID one is answered as it is (a shopper closing a recharge a notify credited
    a moment before sees it PAID, as when the close finds it paid); an EXPIRED one is RECHARGE_STATE_CONFLICT. A
    channel that gives no trustworthy answer (503) or cannot close (RECHARGE_NOT_CLOSABLE), or a payer paying right
    now, leaves it PENDING. A payment a channel reports later for a CLOSED recharge (its notify) is still credited.

    The channel is asked with no row locked (a close and its query may take seconds, longer than a notify of the
    same recharge may wait for the lock; closing twice is harmless at every channel); the outcome is applied under
    the row's lock to the recharge as it then stands."""
    now = now or utcnow()
    recharge = get_recharge(uow, user_id=user_id, recharge_no=recharge_no)
    if recharge.status != RechargeStatus.PENDING:
        return _closed_as_it_stands(recharge)
    notice = payment.close(channel=recharge.channel, out_trade_no=recharge_no)
    with uow:
        recharge = uow.recharges.by_no(recharge_no, lock=True)
        assert recharge is not None
        if recharge.status != RechargeStatus.PENDING:  # a notify or the expiry came first
            uow.commit()
            return _closed_as_it_stands(recharge)
        if notice.paid:
            if not _credit_reported_paid(uow, recharge, notice, now):
                raise Conflict("RECHARGE_STATE_CONFLICT", "the channel reports this recharge paid but it cannot be "
                               "credited as reported; staff have been told", details={"status": recharge.status})
            log.info("recharge %s credited at its close (%s)", recharge_no, recharge.channel)
            return recharge
        if notice.paying:
            raise Conflict("RECHARGE_STATE_CONFLICT", "the payer is paying this recharge right now: it cannot be "
                           "closed", details={"status": recharge.status})
        recharge.close()
        uow.commit()
    log.info("recharge %s closed by its shopper (%s)", recharge_no, recharge.channel)
    return recharge


def _closed_as_it_stands(recharge: Recharge) -> Recharge:
    """A close of a recharge no longer awaiting payment: CLOSED or PAID answered as it is, EXPIRED the conflict."""
    if recharge.status != RechargeStatus.PAID:
        recharge.close()  # CLOSED: nothing changes (the object is not written); EXPIRED: RECHARGE_STATE_CONFLICT
    return recharge


def credit_recharge(uow: MemberUnitOfWork, *, recharge_no: str, paid_fen: int, channel_txn_id: str,
                    channel: str | None = None, now: datetime | None = None) -> Recharge:
    """Credit a recharge whose payment was verified: once, for exactly its amount, through its own channel."""
    now = now or utcnow()
    with uow:
        recharge = uow.recharges.by_no(recharge_no, lock=True)
        if recharge is None:
            raise recharge_not_found()
        _credit_recharge(uow, recharge, paid_fen=paid_fen, channel_txn_id=channel_txn_id, channel=channel, now=now)
        uow.commit()
    return recharge


def _credit_recharge(uow: MemberUnitOfWork, recharge: Recharge, *, paid_fen: int, channel_txn_id: str,
                     channel: str | None, now: datetime) -> bool:
    """The one way a recharge is credited (notify and reconciliation alike), its row locked: the ledger credit,
    the bonus and `member-recharged`, once. False for a replay of the payment that credited it."""
    if not recharge.mark_paid(paid_fen=paid_fen, channel_txn_id=channel_txn_id, now=now, channel=channel):
        return False
    recharge_no = recharge.recharge_no
    bonus = recharge.bonus_fen = recharge_bonus(recharge.amount_fen)
    post(uow, transfer(f"recharge:{recharge_no}", "recharge", recharge_no, amount=recharge.amount_fen,
                       source=(PLATFORM, Account.CLEARING), target=(recharge.user_id, Account.AVAILABLE)), now)
    if bonus:
        post(uow, transfer(f"recharge-bonus:{recharge_no}", "recharge_bonus", recharge_no, amount=bonus,
                           source=(PLATFORM, Account.PROMOTIONS), target=(recharge.user_id, Account.BONUS)), now)
    member = uow.members.get(recharge.user_id)
    events.member_recharged(uow, recharge, member_no=(member.member_no or "") if member else "",
                            balance_fen=uow.ledger.balance(recharge.user_id, Account.AVAILABLE), bonus_fen=bonus)
    uow.on_commit(lambda: metrics.recharged(recharge.channel, recharge.amount_fen))
    return True


def handle_recharge_notify(uow: MemberUnitOfWork, payment: PaymentChannel, *, channel: str,
                           headers: Mapping[str, str], body: bytes, now: datetime | None = None) -> str:
    """A channel's payment notify: verified, then the recharge it pays is credited once. The recharge_no
    ("" for a verified notify that pays nothing); NotifyRejected, with nothing changed, for anything untrusted,
    unknown, of another amount or channel, or paid by another transaction."""
    notice = payment.verify(channel=channel, headers=headers, body=body)
    if not notice.paid:
        return ""  # acknowledged so the channel stops repeating it; nothing credited
    try:
        credit_recharge(uow, recharge_no=notice.out_trade_no, paid_fen=notice.paid_fen, channel_txn_id=notice.txn_id,
                        channel=channel, now=now)
    except DomainError as exc:
        raise NotifyRejected(exc.message) from None
    return notice.out_trade_no


def reconcile_recharges(uow: Callable[[], MemberUnitOfWork], payment: PaymentChannel, *,
                        now: datetime | None = None, settle_seconds: int = 60, batch: int = 50,
                        budget: RoundBudget | None = None) -> int:
    """Ask the channels about recharges still pending `settle_seconds` after they began (and at most an hour
    past their payment window, after which nothing can pay them): one paid whose notify was lost is credited,
    through the notify's own code path, so a late notify afterwards changes nothing. Returns how many.

    Durable and replica-safe: driven by the recharges table, every pending recharge in the window each run
    (paged by id, so old unpaid ones never hide newer ones); each is asked about in its own transaction with
    its row locked FOR UPDATE SKIP LOCKED, so replicas (and a notify arriving meanwhile) never handle one
    twice. A channel that cannot say (no answer, a forged answer) is asked again next run.
    """
    now = now or utcnow()
    window = timedelta(minutes=RECHARGE_PAY_MINUTES, hours=1)
    return _each_pending_recharge(uow, now - window, now - timedelta(seconds=settle_seconds), batch,
                                  lambda recharge_no: _reconcile_recharge(uow(), payment, recharge_no, now), budget)


def _each_pending_recharge(uow: Callable[[], MemberUnitOfWork], created_after: datetime, created_before: datetime,
                           batch: int, handle: Callable[[str], int], budget: RoundBudget | None) -> int:
    """`handle` each recharge PENDING in that creation window by its recharge_no, paged by id (so old unpaid ones
    never hide newer ones), within the job's `budget` (`each_page`); the sum of what `handle` returned."""
    return each_page(uow, lambda tx, after: tx.recharges.pending(created_after, created_before, after[0], batch),
                     (0, ""), batch, lambda key: handle(key[1]), what="recharge (id, number)", budget=budget)


def _reconcile_recharge(uow: MemberUnitOfWork, payment: PaymentChannel, recharge_no: str, now: datetime) -> int:
    with uow:
        recharge = uow.recharges.lock_pending(recharge_no)
        if recharge is None:
            return 0  # paid meanwhile, or another replica is asking about it right now
        notice = payment.query(channel=recharge.channel, out_trade_no=recharge_no)
        if notice is None or not notice.paid or notice.out_trade_no != recharge_no:
            return 0
        if not _credit_reported_paid(uow, recharge, notice, now):
            return 0
    log.info("recharge %s credited by reconciliation (%s)", recharge_no, recharge.channel)
    return 1


def _credit_reported_paid(uow: MemberUnitOfWork, recharge: Recharge, notice: PaidNotice, now: datetime) -> bool:
    """Credit (and commit) a recharge its channel's query reports paid; False, logged for staff, when it cannot be."""
    try:
        _credit_recharge(uow, recharge, paid_fen=notice.paid_fen, channel_txn_id=notice.txn_id,
                         channel=recharge.channel, now=now)
    except DomainError as exc:
        log.error("recharge %s was reported paid by %s but cannot be credited: %s", recharge.recharge_no,
                  recharge.channel, exc.code)
        return False
    uow.commit()
    return True


# Before every PENDING recharge: the expiry job's scan starts here (created_at is never earlier).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def expire_recharges(uow: Callable[[], MemberUnitOfWork], payment: PaymentChannel, *, now: datetime | None = None,
                     expire_seconds: int = DEFAULT_RECHARGE_EXPIRE_SECONDS, batch: int = 50,
                     budget: RoundBudget | None = None) -> int:
    """End recharges still PENDING `expire_seconds` after their payment deadline (`Recharge.pay_deadline`; the
    channel was given it as the payment's time_expire, so nothing pays them after it): each is asked about once
    more, and one the channel says was paid is credited (through the notify's code path), one it says is over
    unpaid (or that it never saw) becomes EXPIRED. One the channel cannot say about (no answer, an unverifiable
    one) or whose payer may still be paying (`PaidNotice.paying`) stays PENDING for the next run. Returns how
    many expired. A payment reported for an EXPIRED recharge later (its notify) is still credited. Each round ends
    by exporting how many are still PENDING past that point (`_show_overdue_recharges`), for the alert.

    Durable and replica-safe like reconcile_recharges: driven by the recharges table, paged by id, each recharge
    in its own transaction with its row locked FOR UPDATE SKIP LOCKED, so replicas (and a notify arriving
    meanwhile) never handle one twice.
    """
    now = now or utcnow()
    overdue = now - timedelta(minutes=RECHARGE_PAY_MINUTES, seconds=expire_seconds)
    try:
        return _each_pending_recharge(uow, EPOCH, overdue, batch,
                                      lambda recharge_no: _expire_recharge(uow(), payment, recharge_no, now), budget)
    finally:  # also when a round fails part way: the gauges must not keep the last good round's values
        _show_overdue_recharges(uow(), overdue, now)


def _show_overdue_recharges(uow: MemberUnitOfWork, overdue: datetime, now: datetime) -> None:
    """Export how many recharges are still PENDING past their deadline and the expiry grace once a round has asked
    about them, and how long past its deadline the oldest is (`mall_recharges_pending_overdue`,
    `mall_recharges_pending_overdue_oldest_seconds`): their channel gives no usable answer, so nothing ends them
    and the RechargePendingOverdue alert tells staff. One aggregate query."""
    with uow:
        count, oldest = uow.recharges.count_pending_before(overdue)
        uow.commit()
    deadline = oldest + timedelta(minutes=RECHARGE_PAY_MINUTES) if oldest else None
    metrics.overdue_recharges(count, seconds_since(deadline, now))


def _expire_recharge(uow: MemberUnitOfWork, payment: PaymentChannel, recharge_no: str, now: datetime) -> int:
    with uow:
        recharge = uow.recharges.lock_pending(recharge_no)
        if recharge is None:
            return 0  # paid meanwhile, or another replica holds it right now
        notice = payment.query(channel=recharge.channel, out_trade_no=recharge_no)
        if notice is None or notice.out_trade_no != recharge_no or notice.paying:
            log.warning("recharge %s is past its payment deadline but %s cannot say it is over; asked again next run",
                        recharge_no, recharge.channel)
            return 0
        if notice.paid:
            if _credit_reported_paid(uow, recharge, notice, now):
                log.info("recharge %s credited at its expiry (%s)", recharge_no, recharge.channel)
            return 0
        recharge.expire()
        uow.commit()
    log.info("recharge %s expired unpaid (%s)", recharge_no, recharge.channel)
    return 1


# ---------------------------------------------------------------- order events (consumer bodies)


def apply_order_paid(uow: MemberUnitOfWork, phones: Phones, *, order_no: str, user_id: int, paid_fen: int,
                     now: datetime) -> None:
    """order-paid: count the spend (joining at the threshold, channel "purchase", a buyer who has bound a phone: M1),
    award points at the level the member had before it counted (its credit records them, so its refunds take back what
    it earned whatever the level then), use the order's held points and coupon, then take back what the order's refunds
    read before this event took back (apply_order_refunded's pending reversals). Inside an open unit of work; once per
    order.

    A WeChat-only buyer whose spend reaches the threshold has their spend counted and stays a non-member (no points, as
    any non-member): the threshold is checked again on each order-paid, so the first one after they bind a phone joins
    them (or they sign up). `phones` is asked only when the order would join its buyer; when it cannot answer (a
    DomainError USER_UNAVAILABLE) this raises before anything is written, and the consumer delivers the event again."""
    phone_bound: bool | None = None  # what `phones` answered; None: not asked

    def apply() -> bytes:
        uow.points.credit(order_no, lock=True)  # none yet: a refund of the order being applied is waited for
        # The hold before the points account (the posting below locks it), as releasing or returning a hold does:
        # one lock order, so an order-cancelled of the same order applied at the same moment waits, not deadlocks.
        hold = uow.points.hold(order_no, lock=True)
        member = uow.members.get_or_add_locked(user_id)
        joins = _joins_by_purchase(member, paid_fen)
        if joins and phone_bound is None:
            raise JoinDecidedUnderLock(f"order-paid {order_no}: another order of user {user_id} counted since the "
                                       "read before the lock; delivered again, it asks whether they bound a phone")
        # Earned at the level the order was paid at: the spend it adds may lift the member a level, which counts
        # from their next order on (as the discount does), not for this one.
        level = member.level
        member.add_spend(paid_fen)
        if joins and phone_bound:
            member.join("purchase", None, now)
            events.member_joined(uow, member)
        points = points_earned(paid_fen, level) if member.is_member else 0
        if points:
            _credit_points(uow, user_id, points, key=f"points-earn:{order_no}", kind="order_paid", reference=order_no,
                           source=(PLATFORM, Account.POINTS_ISSUED), reason="order_paid", now=now)
        credit = OrderCredit(order_no=order_no, user_id=user_id, paid_fen=paid_fen, points=points)
        uow.points.add_credit(credit)
        if hold is not None and hold.status == HoldStatus.LOCKED:
            post(uow, transfer(f"points-use:{order_no}", "points_used", order_no, amount=hold.points,
                               source=(user_id, Account.POINTS_LOCKED), target=(PLATFORM, Account.POINTS_ISSUED)), now)
            hold.status = HoldStatus.USED
        elif hold is not None and hold.status == HoldStatus.EXPIRED:
            _take_expired_points_again(uow, hold, now)
        coupon = uow.coupons.by_order(order_no, lock=True)
        if coupon is not None:
            coupon.use(now)
        else:
            _use_expired_coupon_again(uow, order_no, now)
        for early in uow.points.take_pending_reversals(order_no):
            _reverse_refund(uow, credit, refund_no=early.refund_no, amount_fen=early.amount_fen, now=early.refunded_at)
        return b"applied"

    validate_order_no(order_no)
    if paid_fen < 0:
        raise InvalidInput("AMOUNT_INVALID", "paid_fen must not be negative", details={"paid_fen": "invalid"})
    # Asked before the order's and the member's rows are locked, from an unlocked read: a call to another service
    # (up to its deadline) holding them would stall the checkouts, refunds and signups of the shopper that wait on
    # them. Under the lock the condition is decided again; when it holds only now (another order of theirs, on
    # another partition, counted in between), the event fails before anything is changed (JoinDecidedUnderLock) and
    # the consumer delivers it again: its read before the lock then sees that order, and asks.
    if _joins_by_purchase(uow.members.get(user_id), paid_fen):
        phone_bound = phones.has_phone(user_id)
    uow.run_once(scope="order-paid", key=order_no, request=f"{user_id}:{paid_fen}".encode(), execute=apply)


class JoinDecidedUnderLock(RuntimeError):
    """apply_order_paid found under the lock a join its read before the lock did not foresee: retried, not applied."""


def _joins_by_purchase(member: Member | None, paid_fen: int) -> bool:
    """Whether counting `paid_fen` takes a non-member (`member` None: no row yet) to the spend that joins them by
    purchase (AUTO_JOIN_SPEND_FEN), which it does when they have bound a phone."""
    spend = member.total_spend_fen if member is not None else 0
    return (member is None or not member.is_member) and spend + paid_fen >= AUTO_JOIN_SPEND_FEN


def apply_order_refunded(uow: MemberUnitOfWork, *, order_no: str, refund_no: str, amount_fen: int,
                         now: datetime, points_returned: int = 0) -> None:
    """order-refunded: take back the spend and, in proportion, the points the order earned (as far
    as the member still has them). Inside an open unit of work; once per refund.

    `points_returned`: points the shopper spent on the refunded units that the order service gives back (units of a
    partly shipped order the shop could not supply): credited to their points at once, whether or not order-paid
    was read yet (`_return_refunded_points`), by a posting keyed by the refund number.

    order-paid travels on another topic, so a refund may be read before its order's payment (consumer lag,
    a rebalance, a replay). Then nothing is credited yet and nothing is taken back: the refund is kept as a
    pending reversal (`pending_reversals`), and order-paid applies it right after crediting the order, in its
    transaction, with the refund's own time, so the member ends exactly as if the order had been paid, then
    refunded. The order's credit lock makes the two wait for each other, so neither misses the other.

    An order paid before the member service counted orders never gets its order-paid here: its refunds stay
    pending for good, on purpose. Nothing was counted, so nothing is taken back (as before); the rows cannot
    be told from refunds whose payment is merely late (a stopped consumer, a replay from the start), which
    deleting them by age would get wrong; and they stop coming once those orders are past after-sales. The
    table lists them: refunds of orders the member service has not seen paid.
    """
    def apply() -> bytes:
        credit = uow.points.credit(order_no, lock=True)
        _return_refunded_points(uow, order_no=order_no, refund_no=refund_no, points=points_returned, now=now)
        if credit is None:
            uow.points.add_pending_reversal(PendingReversal(refund_no=refund_no, order_no=order_no,
                                                            amount_fen=amount_fen, refunded_at=now))
            return b"pending"
        _reverse_refund(uow, credit, refund_no=refund_no, amount_fen=amount_fen, now=now)
        return b"applied"

    if amount_fen < 0 or points_returned < 0:  # a negative refund would add spend (and a level) or take points
        raise InvalidInput("AMOUNT_INVALID", "amount_fen and points_returned must not be negative",
                           details={"amount_fen" if amount_fen < 0 else "points_returned": "invalid"})
    request = canonical({"order_no": order_no, "amount_fen": amount_fen, "points_returned": points_returned})
    try:
        uow.run_once(scope="order-refunded", key=refund_no, request=request, execute=apply)
    except Conflict:
        # Refunds applied before points_returned was compared were recorded by order number and amount alone: one of
        # those delivered again (a replay from the start) is a duplicate, as it was then, not a conflict.
        if uow.replay(scope="order-refunded", key=refund_no, request=f"{order_no}:{amount_fen}".encode()) is None:
            raise


def _return_refunded_points(uow: MemberUnitOfWork, *, order_no: str, refund_no: str, points: int,
                            now: datetime) -> None:
    """Credit back `points` the order spent on refunded units, once per refund (`points-return:<refund_no>`), to the
    shopper whose points hold the order used, but those an expiry run marked on the hold while it was held
    (`expired_points`): taken at once, as a released hold's are, so they are never spendable. The order spent the
    oldest points first, so what refunds give back is the newest (unexpired) part first: all of them together
    credit at most `points` - `expired_points`, as a whole-order cancellation does (`returned_points` counts them).
    The hold stays USED otherwise: the rest of the order was kept, and a whole-order cancellation (which returns the
    hold) cannot follow a partial one (the order is shipped by then); a hold already returned whole, or none, is
    never credited again (logged)."""
    if points <= 0:
        return
    hold = uow.points.hold(order_no, lock=True)
    if hold is None or hold.status == HoldStatus.RETURNED:
        log.error("refund %s gives back %d points of order %s, whose points hold is %s: not credited", refund_no,
                  points, order_no, hold.status if hold is not None else "missing")
        return
    # The member record before the points account and the points debt, as order-paid, a plan purchase and a signup
    # lock them (the refund's own take-back, _reverse_refund, comes next): one lock order, no deadlock with them.
    uow.members.get_or_add_locked(hold.user_id)
    unexpired = hold.points - hold.expired_points
    returned = min(hold.returned_points + points, hold.points)
    expired = points - (min(returned, unexpired) - min(hold.returned_points, unexpired))
    if _credit_points(uow, hold.user_id, points, key=f"points-return:{refund_no}", kind="points_returned",
                      reference=refund_no, source=(PLATFORM, Account.POINTS_ISSUED), reason="points_returned",
                      now=now, owed_reference=order_no, expired_while_held=expired):
        hold.returned_points = returned


def _reverse_refund(uow: MemberUnitOfWork, credit: OrderCredit, *, refund_no: str, amount_fen: int,
                    now: datetime) -> None:
    """Take back refund `refund_no`'s share of what the order earned, its credit locked: from the spendable points,
    and what the member has spent or holds for unpaid orders is owed (`_owe_points`), taken from the next points
    credited (a released hold among them)."""
    refunded = min(credit.paid_fen, credit.refunded_fen + amount_fen)
    member = uow.members.get_or_add_locked(credit.user_id)
    member.add_spend(-(refunded - credit.refunded_fen))
    credit.refunded_fen = refunded
    owed = credit.points * refunded // credit.paid_fen - credit.points_reversed if credit.paid_fen else 0
    if owed <= 0:
        return
    points = min(owed, uow.ledger.balance(credit.user_id, Account.POINTS, lock=True))
    if points > 0:
        post(uow, transfer(f"points-reverse:{refund_no}", "order_refunded", refund_no, amount=points,
                           source=(credit.user_id, Account.POINTS), target=(PLATFORM, Account.POINTS_ISSUED)), now)
        events.points_changed(uow, user_id=credit.user_id, delta=-points, reason="order_refunded",
                              reference=refund_no, balance=uow.ledger.balance(credit.user_id, Account.POINTS),
                              now=now)
    _owe_points(uow, credit.user_id, "order_refunded", owed - points, refund_no)
    credit.points_reversed += owed  # taken now, or owed


def apply_order_cancelled(uow: MemberUnitOfWork, *, order_no: str, now: datetime, was_paid: bool = False) -> None:
    """order-cancelled: what the order took from the shopper's points and coupons goes back. Inside an open
    unit of work; a replay (or a second event for the order) changes nothing.

    Unpaid: the held points are released and the locked coupon unlocked. Paid (staff approved the
    cancellation of the whole order before shipping; its refund follows): the points it spent are credited
    back (`points_returned`, posting `points-return:<order_no>`) and its coupon is available again, or shown
    expired when past its validity. The spend and the points the order *earned* are not touched here: its
    `order-refunded` takes them back. When this event overtakes `order-paid` (another topic), the hold and
    the coupon are still locked: they are released now, and order-paid then finds nothing to use; when the
    expiry sweep had released them already, they are settled (`_settle_expired_locks`), for the same end.
    """
    hold = uow.points.hold(order_no, lock=True)
    _release_points(uow, hold, now)
    if was_paid:
        _return_spent_points(uow, hold, now)
    coupon = uow.coupons.by_order(order_no, lock=True)
    if coupon is not None:
        if was_paid:
            coupon.give_back()
        else:
            coupon.release()
    _settle_expired_locks(uow, hold, order_no)


def _settle_expired_locks(uow: MemberUnitOfWork, hold: PointsHold | None, order_no: str) -> None:
    """The cancelled order's points hold and coupon lock the expiry sweep had released (the shopper has them
    back) count as released by the cancellation: an order-paid of the order read after this (a stuck partition
    retried while order-cancelled flowed) must not take them again (`_take_expired_points_again`,
    `_use_expired_coupon_again`). Runs under the order's coupon lock (`by_order`), as order-paid's coupon part."""
    if hold is not None and hold.status == HoldStatus.EXPIRED:
        hold.status = HoldStatus.RELEASED
    uow.coupons.remove_expired_lock(order_no)


def _return_spent_points(uow: MemberUnitOfWork, hold: PointsHold | None, now: datetime) -> int:
    """Credit back the points a paid, then cancelled order used (once: the hold becomes RETURNED), but those an
    expiry run marked on the hold while it was held (`expired_points`): without the order they would have expired."""
    if hold is None or hold.status != HoldStatus.USED:
        return 0
    points = hold.points - hold.expired_points
    hold.status = HoldStatus.RETURNED
    _credit_points(uow, hold.user_id, points, key=f"points-return:{hold.order_no}", kind="points_returned",
                   reference=hold.order_no, source=(PLATFORM, Account.POINTS_ISSUED), reason="points_returned", now=now)
    return points
