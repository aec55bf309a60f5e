"""Member domain: levels, membership, ledger postings, points, coupons, withdrawals, recharges (no I/O)."""

from __future__ import annotations

import enum
import re
import secrets
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from services.common.auth import refuse_own
from services.common.errors import Conflict, DomainError, InvalidInput, NotFound
from services.common.formats import (
    MAX_PENDING_RECHARGES,
    MAX_PENDING_WITHDRAWALS,
    PAYOUT_FAILED_SHOPPER,
    PAYOUT_REFUSED_SHOPPER,
    RECHARGE_MAX_FEN,
    RECHARGE_MIN_FEN,
    SHOPPER_REASON_MAX,
    WITHDRAWAL_MAX_FEN,
    WITHDRAWAL_MAX_PER_DAY_FEN,
    WITHDRAWAL_MIN_FEN,
)

# ---------------------------------------------------------------- levels (M2/M3)


@dataclass(frozen=True)
class Level:
    """A member level: reached at `min_spend_fen` of total paid spend."""

    code: str
    min_spend_fen: int
    discount_percent: int           # the share of the price paid: 95 means 5% off
    points_multiplier_percent: int  # 150 means 1.5 points per yuan paid


# The level table (documented in README "Member service"): by total paid spend, in fen.
LEVELS: tuple[Level, ...] = (
    Level("normal", 0, 100, 100),
    Level("silver", 100_000, 98, 120),       # 1,000 yuan
    Level("gold", 500_000, 95, 150),         # 5,000 yuan
    Level("diamond", 2_000_000, 90, 200),    # 20,000 yuan
)
# A shopper who is not a member joins (channel "purchase") once their paid spend reaches this.
AUTO_JOIN_SPEND_FEN = 10_000                 # 100 yuan

CHANNELS = ("self", "purchase", "invitation", "campaign")
# What a shopper may declare at signup. "purchase" is the shop's to record (AUTO_JOIN_SPEND_FEN reached): declared, it
# would be untrue (whoever reached it is a member already) and falsify the join channels kept for the shop (M1).
SIGNUP_CHANNELS = ("self", "invitation", "campaign")
INVITE_CODE = re.compile(r"[A-Za-z0-9]{4,32}")
# Each member's own invite code: 8 of these (no 0/O, 1/I), about 10^12 codes, unique by an index.
REFERRAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERRAL_CODE_LENGTH = 8


def level_for(total_spend_fen: int) -> Level:
    """The highest level whose threshold the spend reaches."""
    return [level for level in LEVELS if total_spend_fen >= level.min_spend_fen][-1]


@dataclass(frozen=True)
class Plan:
    """A paid membership plan (PLUS): an extra discount for its term."""

    id: int
    name: str
    price_fen: int
    days: int
    discount_percent: int    # applied on top of the level's: 95 means another 5% off


# The plans on sale (README "Member service rules"); paid from the wallet balance.
PLANS: tuple[Plan, ...] = (
    Plan(1, "PLUS monthly", 1_500, 31, 95),
    Plan(2, "PLUS annual", 14_800, 366, 95),
)


def plan_by_id(plan_id: int) -> Plan:
    plan = next((plan for plan in PLANS if plan.id == plan_id), None)
    if plan is None:
        raise NotFound("PLAN_NOT_FOUND", "no such plan")
    return plan


@dataclass
class Member:
    """A shopper's member record. It exists from the first paid order (to count spend) or sign-up;
    `joined_at` is set only once the shopper is a member."""

    user_id: int
    total_spend_fen: int = 0
    member_no: str | None = None
    channel: str | None = None
    invite_code: str | None = None
    joined_at: datetime | None = None
    plan_id: int | None = None
    plan_expires_at: datetime | None = None
    referral_code: str | None = None    # the member's own invite code
    invited_by: int | None = None       # the user_id whose invite code they joined with

    @property
    def is_member(self) -> bool:
        return self.joined_at is not None

    @property
    def level(self) -> Level:
        return level_for(self.total_spend_fen)

    @staticmethod
    def check_signup_channel(channel: str) -> None:
        """InvalidInput CHANNEL_INVALID unless a shopper may declare `channel` at signup (SIGNUP_CHANNELS)."""
        if channel not in SIGNUP_CHANNELS:
            raise InvalidInput("CHANNEL_INVALID", f"channel must be one of {', '.join(SIGNUP_CHANNELS)}; purchase is "
                               f"recorded by the shop once paid spend reaches {AUTO_JOIN_SPEND_FEN // 100} yuan",
                               details={"channel": f"one of {', '.join(SIGNUP_CHANNELS)}"})

    def join(self, channel: str, invite_code: str | None, now: datetime, *, inviter: Member | None = None) -> bool:
        """Become a member through `channel` (invited by `inviter`, whose code `invite_code` is); False
        (and nothing changes) when already one."""
        if channel not in CHANNELS:
            raise InvalidInput("CHANNEL_INVALID", f"channel must be one of {', '.join(CHANNELS)}",
                               details={"channel": "invalid"})
        if invite_code and not INVITE_CODE.fullmatch(invite_code):
            raise InvalidInput("INVITE_CODE_INVALID", "the invite code must be 4-32 letters or digits",
                               details={"invite_code": "invalid"})
        if channel == "invitation" and not invite_code:
            raise InvalidInput("INVITE_CODE_REQUIRED", "joining by invitation needs the invite code",
                               details={"invite_code": "required"})
        if self.is_member:
            return False
        if invite_code and (inviter is None or not inviter.is_member):
            raise DomainError("INVITE_CODE_UNKNOWN", "no member has this invite code")
        if inviter is not None and inviter.user_id == self.user_id:
            raise DomainError("INVITE_CODE_OWN", "you cannot invite yourself")
        self.member_no = "M" + now.strftime("%Y%m%d") + f"{secrets.randbelow(10**10):010d}"
        self.referral_code = "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))
        self.channel, self.invite_code, self.joined_at = channel, invite_code or None, now
        self.invited_by = inviter.user_id if inviter is not None and invite_code else None
        return True

    def active_plan(self, now: datetime) -> Plan | None:
        """The paid plan whose term includes `now`; benefits exist only within it."""
        if self.plan_id is None or self.plan_expires_at is None or now >= self.plan_expires_at:
            return None
        return plan_by_id(self.plan_id)

    def discount_bp(self, now: datetime) -> int:
        """The share of the price this member pays now, in basis points: the level's percent times the active plan's,
        exact (gold 95 x PLUS 95 = 9025, 90.25%). Not rounded here: the order rounds the discount it makes of it, down
        to the fen, once."""
        plan = self.active_plan(now)
        return self.level.discount_percent * (plan.discount_percent if plan else 100)

    def subscribe(self, plan: Plan, now: datetime) -> None:
        """Start or renew `plan`: a renewal extends from the current expiry, not from today."""
        if not self.is_member:
            raise not_a_member()
        start = self.plan_expires_at if self.plan_expires_at and self.plan_expires_at > now else now
        self.plan_id, self.plan_expires_at = plan.id, start + timedelta(days=plan.days)

    def add_spend(self, delta_fen: int) -> None:
        self.total_spend_fen = max(0, self.total_spend_fen + delta_fen)


def not_a_member(user_id: int | None = None) -> NotFound:
    """MEMBER_NOT_FOUND, said to the caller about themself, or to staff about `user_id`."""
    if user_id is None:
        return NotFound("MEMBER_NOT_FOUND", "you are not a member yet; sign up first")
    return NotFound("MEMBER_NOT_FOUND", f"user {user_id} is not a member")


# ---------------------------------------------------------------- ledgers (M7)


class Account(enum.StrEnum):
    """Ledger accounts. User accounts never go below zero (a database CHECK); platform accounts
    are the other side of every movement and may (clearing is money held at the channels)."""

    AVAILABLE = "available"              # the wallet balance a shopper can spend or withdraw
    PENDING = "pending"                  # held by withdrawals under review
    BONUS = "bonus"                      # promotional credit, never withdrawable
    POINTS = "points"                    # spendable points
    POINTS_LOCKED = "points_locked"      # points held by unpaid orders
    CLEARING = "platform_clearing"       # money in and out through payment and payout channels
    SALES = "platform_sales"             # orders paid with balance (and refunds of them)
    POINTS_ISSUED = "platform_points_issued"
    PROMOTIONS = "platform_promotions"   # bonus credit given away by promotions


USER_ACCOUNTS = frozenset({Account.AVAILABLE, Account.PENDING, Account.BONUS, Account.POINTS, Account.POINTS_LOCKED})
# The wallet's lock order: every transaction locks all of a shopper's wallet accounts, in this order (bonus, available,
# pending), before it moves any of them, so two never wait for each other (paying, refunding, recharging, withdrawing,
# giving a withdrawal back, paying it out). The ledger's lock_wallet is the one place that does it: its post calls it,
# and a use case that reads a balance before it posts calls it first.
WALLET_ACCOUNTS = (Account.BONUS, Account.AVAILABLE, Account.PENDING)
POINTS_ACCOUNTS = (Account.POINTS, Account.POINTS_LOCKED)


def unit_of(account: str) -> str:
    return "points" if account in (Account.POINTS, Account.POINTS_LOCKED, Account.POINTS_ISSUED) else "fen"


@dataclass(frozen=True)
class Leg:
    """One side of a posting: `amount` (signed) onto a user's account, or a platform one (user_id 0)."""

    user_id: int
    account: str
    amount: int


@dataclass(frozen=True)
class Posting:
    """A balanced movement between accounts, applied at most once per idempotency `key`."""

    key: str
    kind: str
    reference: str
    legs: tuple[Leg, ...]

    def __post_init__(self) -> None:
        totals: dict[str, int] = defaultdict(int)
        for leg in self.legs:
            if leg.amount == 0 or leg.account not in set(Account):
                raise ValueError(f"bad leg {leg}")
            if (leg.account in USER_ACCOUNTS) != (leg.user_id > 0):
                raise ValueError(f"{leg.account} belongs to {'a user' if leg.account in USER_ACCOUNTS else 'the platform'}")
            totals[unit_of(leg.account)] += leg.amount
        if not self.legs or any(totals.values()):
            raise ValueError(f"posting {self.key} does not balance: {dict(totals)}")


def transfer(key: str, kind: str, reference: str, *, amount: int, source: tuple[int, str],
             target: tuple[int, str]) -> Posting:
    """Move `amount` (> 0) from account `source` to account `target`, each (user_id or 0, account)."""
    if amount <= 0:
        raise InvalidInput("AMOUNT_INVALID", "the amount must be positive", details={"amount_fen": "invalid"})
    return Posting(key, kind, reference, (Leg(source[0], source[1], -amount), Leg(target[0], target[1], amount)))


PLATFORM = 0


class InsufficientFunds(DomainError):
    """A user account would go below zero: it holds `available` (fen or points, as the account counts) of the
    `needed`."""

    def __init__(self, account: str, *, available: int, needed: int) -> None:
        unit = unit_of(account)
        code = "INSUFFICIENT_POINTS" if unit == "points" else "INSUFFICIENT_BALANCE"
        what = "points" if unit == "points" else "balance"
        super().__init__(code, f"not enough {what}: {needed} {unit} needed, {available} {unit} available",
                         details={"account": account, f"needed_{unit}": needed, f"available_{unit}": available})
        self.account, self.available, self.needed = account, available, needed


def posting_conflict(key: str) -> Conflict:
    return Conflict("ALREADY_APPLIED_DIFFERENTLY", f"{key} was already applied with different amounts")


def balance_payment_void(order_no: str) -> DomainError:
    """The order's wallet payment was voided (it charged nothing and never will): the order is paid otherwise."""
    return DomainError("BALANCE_PAYMENT_VOID", "the wallet payment of this order was closed; pay another way",
                       details={"order_no": order_no})


@dataclass(frozen=True)
class LedgerEntry:
    """One line of a ledger as its owner sees it."""

    id: int
    account: str
    amount: int
    balance_after: int
    kind: str
    reference: str
    created_at: datetime


@dataclass(frozen=True)
class Mismatch:
    account_id: int
    user_id: int
    account: str
    balance: int
    entries_sum: int


class LedgerCheck(NamedTuple):
    """Ledger accounts recomputed from their entries: how many, those whose balance differs, and the last account id
    checked (where the next range starts; 0 when there was none)."""

    checked: int
    mismatches: list[Mismatch]
    last_account_id: int


# ---------------------------------------------------------------- points


POINTS_VALUE_FEN = 1             # 1 point pays 1 fen (100 points = 1 yuan)
POINTS_MAX_SHARE_PERCENT = 50    # points pay at most half of an order


def points_earned(paid_fen: int, level: Level) -> int:
    """1 point per whole yuan paid, times the level's multiplier, rounded down."""
    return (paid_fen // 100) * level.points_multiplier_percent // 100


# Expiry: points earned in a month expire at the end of the 12th month after it (earned 2026-03-15:
# gone from 2027-04-01 00:00 UTC). Spending takes the oldest points first, so what expires is the
# balance beyond the points earned since the cutoff, net of the reversals since then.
POINTS_VALID_MONTHS = 12
POINTS_DATED_KINDS = ("order_paid", "order_refunded")  # the postings that add or take back earned points
# What a shopper may owe, by the posting kind it is taken back as (service._owe_points), in the order it is taken:
# earned points a refund could not take back, points an order paid after its hold expired could not take.
POINTS_OWED_KINDS = ("order_refunded", "points_used")
# What the shopper's points history calls a posting that took owed points (`points-changed` reason too). The posting
# keeps the owed kind, so that the expiry counts one of order_refunded as taking back earned points (POINTS_DATED_KINDS).
POINTS_OWED_TAKEN = "points_owed_taken"


def owed_taken_key(credit_key: str, kind: str) -> str:
    """The posting key of the owed points of `kind` taken right after the credit posted as `credit_key`."""
    return f"{credit_key}:owed-{kind}"


def shown_kind(posting_key: str, kind: str) -> str:
    """What a ledger entry of the posting (`posting_key`, `kind`) is called where it is shown: owed points taken are
    POINTS_OWED_TAKEN whatever the owed kind they are stored as; every other posting its own kind."""
    if kind in POINTS_OWED_KINDS and posting_key.endswith(owed_taken_key("", kind)):
        return POINTS_OWED_TAKEN
    return kind


def points_expiry_cutoff(now: datetime) -> datetime:
    """Points earned before this instant have expired at `now` (UTC month boundaries)."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = first.month - 1 - POINTS_VALID_MONTHS
    return first.replace(year=first.year + month // 12, month=month % 12 + 1)


def points_cap(payable_fen: int) -> int:
    """Most points an order of `payable_fen` may use."""
    return max(0, payable_fen) * POINTS_MAX_SHARE_PERCENT // 100 // POINTS_VALUE_FEN


class HoldStatus(enum.StrEnum):
    LOCKED = "locked"
    RELEASED = "released"
    USED = "used"
    RETURNED = "returned"   # used by an order paid and then cancelled (before shipping): credited back
    EXPIRED = "expired"     # released by the expiry sweep: no order settled it within CHECKOUT_HOLD_TTL


# A coupon lock or points hold that no order settles (paid, cancelled, released) within this of being taken is
# released by the expiry sweep, as the order service's compensation (ReleaseCoupon / ReleasePoints) was lost.
# Longer than any order's payment window (at most 60 minutes), and as long as stock reservations last, so an
# order can never be paid with a lock already swept; if one is, order-paid takes the coupon and points again as
# far as the shopper still has them, and reports it (service.apply_order_paid).
CHECKOUT_HOLD_TTL = timedelta(hours=2)


@dataclass
class PointsHold:
    """Points locked by an unpaid order: released when it is cancelled, used when it is paid, returned
    when the paid order is cancelled after review."""

    order_no: str
    user_id: int
    points: int
    status: str
    created_at: datetime
    expired_points: int = 0   # of `points`, those past their term at an expiry run: taken when released
    returned_points: int = 0  # of `points`, those refunds of the paid order's units gave back (credited or not)


@dataclass
class OrderCredit:
    """What a paid order earned: points awarded and spend counted, for reversing refunds."""

    order_no: str
    user_id: int
    paid_fen: int
    points: int
    refunded_fen: int = 0
    points_reversed: int = 0


@dataclass
class PendingReversal:
    """A refund read before its order's order-paid (they travel on two topics): what it takes back waits
    here until that payment is credited, which applies it and removes it."""

    refund_no: str
    order_no: str
    amount_fen: int
    refunded_at: datetime


def validate_order_no(order_no: str) -> str:
    if not 0 < len(order_no) <= 64:
        raise InvalidInput("ORDER_NO_INVALID", "order_no must be 1-64 characters", details={"order_no": "invalid"})
    return order_no


# ---------------------------------------------------------------- coupons


class CouponStatus(enum.StrEnum):
    AVAILABLE = "available"
    LOCKED = "locked"
    USED = "used"
    EXPIRED = "expired"   # never stored: an available coupon past its template's valid_to


@dataclass(frozen=True)
class OrderLine:
    """A line a coupon is quoted or locked for: its total, and its category with that category's ancestors."""

    category_id: int
    amount_fen: int
    category_path: tuple[int, ...] = ()  # root first, ending with category_id; () = category_id alone

    def in_categories(self, wanted: Collection[int]) -> bool:
        """Filed under one of `wanted` at any depth: a template for 数码 covers a phone filed under 数码 > 手机."""
        return self.category_id in wanted or any(category in wanted for category in self.category_path)


class TemplateStatus(enum.StrEnum):
    """Whether a coupon template takes claims. One an admin did not create waits for an approver who did not create
    it (services.common.auth.TEMPLATE_APPROVERS) before its first claim; staff stop a mistyped or ended campaign,
    or one waiting that should not be offered, by disabling it. Disabling is one-way and concerns claims only: the
    coupons already claimed stay the shoppers' and usable (they took them in good faith, and some may be locked by
    unpaid orders this very minute)."""

    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    DISABLED = "disabled"


TEMPLATE_REASON_MAX = 200
# The most one coupon takes off an order, by default (MEMBER_COUPON_MAX_FACE_FEN): a fixed coupon's amount, a
# percent coupon's cap (which it then must have). 1,000 yuan: far above any campaign of the shop's, far below a typo.
DEFAULT_COUPON_MAX_FACE_FEN = 100_000
COUPON_MAX_FACE_FEN = (100, 10**12)  # what MEMBER_COUPON_MAX_FACE_FEN may be set to
OWN_TEMPLATE = "staff cannot approve or claim a coupon template they created or approved; another staff member must"


@dataclass(frozen=True)
class CouponUsage:
    """How the coupons claimed from one template stand: each claimed coupon is in exactly one of these (together
    the template's `issued`), as its shopper sees it (Coupon.shown_status)."""

    available: int = 0  # claimed, usable: neither held by an order nor used, and the template still valid
    locked: int = 0     # held by an order awaiting payment
    used: int = 0       # an order was paid with it
    expired: int = 0    # claimed, never used, and the template's valid_to has passed

    @classmethod
    def of(cls, template: CouponTemplate, stored: Mapping[str, int], now: datetime) -> CouponUsage:
        """From the template's coupons counted by stored status: past `valid_to`, the available ones are expired."""
        available = stored.get(CouponStatus.AVAILABLE, 0)
        ended = now >= template.valid_to
        return cls(available=0 if ended else available, locked=stored.get(CouponStatus.LOCKED, 0),
                   used=stored.get(CouponStatus.USED, 0), expired=available if ended else 0)


@dataclass
class CouponTemplate:
    """What admins issue: a fixed amount off above a threshold, or a percent off with a cap."""

    name: str
    kind: str
    amount_fen: int
    percent_off: int
    threshold_fen: int
    cap_fen: int
    total: int
    per_user_limit: int
    valid_from: datetime
    valid_to: datetime
    categories: str = ""          # comma-separated category ids; "" = every category
    issued: int = 0
    created_at: datetime | None = None
    status: str = TemplateStatus.ACTIVE
    created_by: int | None = None           # None: created before member migration 0008 recorded it
    disabled_at: datetime | None = None
    disabled_by: int | None = None
    disable_reason: str = ""
    approved_at: datetime | None = None     # None: needed no approval (an admin's, or before member migration 0011)
    approved_by: int | None = None
    id: int | None = None

    @classmethod
    def create(cls, *, name: str, kind: str, amount_fen: int, percent_off: int, threshold_fen: int, cap_fen: int,
               total: int, per_user_limit: int, valid_from: datetime, valid_to: datetime,
               category_ids: list[int], now: datetime, created_by: int | None = None, needs_approval: bool = True,
               max_face_fen: int = DEFAULT_COUPON_MAX_FACE_FEN) -> CouponTemplate:
        """A new template: pending_approval when `needs_approval` (its creator is not an admin), else active.
        InvalidInput COUPON_TEMPLATE_INVALID for inconsistent fields (a fixed coupon's threshold, when it has one,
        is at least its amount; a field of the other kind, amount_fen on a percent template or percent_off /
        cap_fen on a fixed one, is 0: refused rather than dropped); DomainError COUPON_TEMPLATE_TOO_VALUABLE
        (422) when one coupon could take more than `max_face_fen` off (a percent coupon must have a cap)."""
        problems: dict[str, object] = {}
        if not 0 < len(name.strip()) <= 64:
            problems["name"] = "1-64 characters"
        if kind == "fixed":
            if amount_fen <= 0:
                problems["amount_fen"] = "must be positive"
            elif 0 < threshold_fen < amount_fen:  # "满50减100": amount and threshold swapped, orders up to it free
                problems["threshold_fen"] = "0 (no threshold) or at least amount_fen"
            # A field of the other kind was dropped before: staff got another coupon than they typed. 0 is "not
            # set" (what the gateway and the proto send for a field left out).
            problems.update({field: "not for a fixed template: leave it out or 0"
                             for field, value in (("percent_off", percent_off), ("cap_fen", cap_fen)) if value})
        elif kind == "percent":
            if not 0 < percent_off < 100:
                problems["percent_off"] = "1-99"
            if cap_fen < 0:
                problems["cap_fen"] = "must not be negative"
            if amount_fen:
                problems["amount_fen"] = "not for a percent template: leave it out or 0"
        else:
            problems["kind"] = "fixed or percent"
        if threshold_fen < 0:
            problems["threshold_fen"] = "must not be negative"
        if total <= 0:
            problems["total"] = "must be positive"
        if per_user_limit <= 0:
            problems["per_user_limit"] = "must be positive"
        if valid_to <= valid_from:
            problems["valid_to"] = "must be after valid_from"
        elif valid_to <= now:  # a mistyped year: an active template nobody could ever claim
            problems["valid_to"] = "must be in the future"
        if any(category <= 0 for category in category_ids) or len(category_ids) > 100:
            problems["category_ids"] = "at most 100 positive ids"
        if problems:
            raise InvalidInput("COUPON_TEMPLATE_INVALID", "the coupon template is invalid", details=problems)
        face = amount_fen if kind == "fixed" else cap_fen
        if not 0 < face <= max_face_fen:
            field = "amount_fen" if kind == "fixed" else "cap_fen"
            raise DomainError("COUPON_TEMPLATE_TOO_VALUABLE", f"one coupon may take at most {max_face_fen} fen off; "
                              "a percent coupon needs a cap", details={field: f"1-{max_face_fen}"})
        return cls(name=name.strip(), kind=kind, amount_fen=amount_fen, percent_off=percent_off,
                   threshold_fen=threshold_fen, cap_fen=cap_fen, total=total, per_user_limit=per_user_limit,
                   valid_from=valid_from, valid_to=valid_to,
                   categories=",".join(str(c) for c in sorted(set(category_ids))), created_at=now,
                   created_by=created_by,
                   status=TemplateStatus.PENDING_APPROVAL if needs_approval else TemplateStatus.ACTIVE)

    def check_claimable(self, user_id: int, now: datetime) -> None:
        """DomainError unless this user may claim one now (the total and per-user limit are the repository's):
        never before it is approved, and never by the staff member who created or approved it (Forbidden
        OWN_REQUEST), who could otherwise issue themselves money."""
        refuse_own(user_id, self.created_by, OWN_TEMPLATE)
        refuse_own(user_id, self.approved_by, OWN_TEMPLATE)
        if self.status == TemplateStatus.PENDING_APPROVAL:
            raise template_not_approved()
        if self.status == TemplateStatus.DISABLED:
            raise template_disabled()
        if now >= self.valid_to:
            raise DomainError("COUPON_EXPIRED", "this coupon has expired")

    def approve(self, *, actor_id: int, now: datetime) -> bool:
        """Let it take claims, recording who approved it and when. Never by its creator (Forbidden OWN_REQUEST).
        False, and nothing changes (the first approver stays), when it was active already; DomainError
        COUPON_TEMPLATE_DISABLED when it was disabled (rejected) first."""
        refuse_own(actor_id, self.created_by, OWN_TEMPLATE)
        if self.status == TemplateStatus.ACTIVE:
            return False
        if self.status == TemplateStatus.DISABLED:
            raise template_disabled()
        self.status, self.approved_at, self.approved_by = TemplateStatus.ACTIVE, now, actor_id
        return True

    def disable(self, *, actor_id: int, reason: str, now: datetime) -> bool:
        """Take no more claims, recording who and why; the coupons claimed stay usable (TemplateStatus). False, and
        nothing changes (the first actor and reason stay), when it was disabled already."""
        reason = reason.strip()
        if not 0 < len(reason) <= TEMPLATE_REASON_MAX:
            raise InvalidInput("REASON_REQUIRED", f"say why, in 1-{TEMPLATE_REASON_MAX} characters",
                               details={"reason": f"1-{TEMPLATE_REASON_MAX} characters"})
        if self.status == TemplateStatus.DISABLED:
            return False
        self.status, self.disabled_at, self.disabled_by, self.disable_reason = (
            TemplateStatus.DISABLED, now, actor_id, reason)
        return True

    @property
    def category_ids(self) -> list[int]:
        return [int(c) for c in self.categories.split(",") if c]

    def quote(self, lines: list[OrderLine], now: datetime) -> tuple[int, str]:
        """(discount_fen, "") when usable on these lines now, else (0, the reason's code).

        Only the lines it applies to count towards its threshold and its discount: every line when it names no
        categories, else those filed under one of them at any depth (OrderLine.in_categories).
        Percent discounts are rounded down to the fen (the shop never gives away a fraction)."""
        if now < self.valid_from:
            return 0, "COUPON_NOT_STARTED"
        if now >= self.valid_to:
            return 0, "COUPON_EXPIRED"
        wanted = set(self.category_ids)
        eligible = sum(line.amount_fen for line in lines if not wanted or line.in_categories(wanted))
        if eligible <= 0:
            return 0, "COUPON_NOT_APPLICABLE"
        if eligible < self.threshold_fen:
            return 0, "COUPON_THRESHOLD_NOT_MET"
        if self.kind == "fixed":
            return min(self.amount_fen, eligible), ""
        discount = eligible * self.percent_off // 100
        return (min(discount, self.cap_fen) if self.cap_fen else discount), ""


REASONS = {
    "COUPON_NOT_STARTED": "this coupon is not valid yet",
    "COUPON_EXPIRED": "this coupon has expired",
    "COUPON_NOT_APPLICABLE": "this coupon does not apply to these items",
    "COUPON_THRESHOLD_NOT_MET": "the items do not reach this coupon's threshold",
}


@dataclass
class Coupon:
    """A coupon a shopper claimed from a template."""

    template_id: int
    user_id: int
    status: str
    claimed_at: datetime
    order_no: str | None = None
    discount_fen: int = 0
    used_at: datetime | None = None
    locked_at: datetime | None = None   # when `order_no` locked it (the expiry sweep's clock)
    id: int | None = None

    # These two rules are also read in SQL, to filter, page and count in the database (services.member.db
    # shown_coupon_status, usable_coupon); tests/integration/member/test_coupon_status_rule.py holds them in step.
    def shown_status(self, template: CouponTemplate, now: datetime) -> str:
        """The status the shopper sees now: an available coupon is expired from its template's valid_to on."""
        if self.status == CouponStatus.AVAILABLE and now >= template.valid_to:
            return CouponStatus.EXPIRED
        return self.status

    def usable(self, template: CouponTemplate, now: datetime) -> bool:
        """Whether an order may take it now, its lines permitting (CouponTemplate.quote): available, its template
        started (valid_from, inclusive) and not ended (valid_to, exclusive)."""
        return self.status == CouponStatus.AVAILABLE and template.valid_from <= now < template.valid_to

    def lock(self, order_no: str, discount_fen: int, now: datetime) -> None:
        if self.status != CouponStatus.AVAILABLE:
            raise Conflict("COUPON_NOT_AVAILABLE", f"this coupon is {self.status}")
        self.status, self.order_no, self.discount_fen, self.locked_at = CouponStatus.LOCKED, order_no, discount_fen, now

    def use(self, now: datetime) -> None:
        if self.status == CouponStatus.LOCKED:
            self.status, self.used_at = CouponStatus.USED, now

    def release(self) -> bool:
        """The unpaid order that locked it no longer needs it (cancelled, compensated, or its lock expired):
        available again. True when it changed."""
        if self.status != CouponStatus.LOCKED:
            return False
        self.status, self.order_no, self.discount_fen, self.locked_at = CouponStatus.AVAILABLE, None, 0, None
        return True

    def give_back(self) -> bool:
        """The paid order this coupon was used on was cancelled before shipping (the whole order is refunded):
        the coupon is the shopper's again, shown `expired` when its template's validity is over. True when it
        changed (a replay changes nothing: the coupon no longer names the order).

        Only a cancellation gives a coupon back. After-sales refunds, even of every line, never do: each line's
        refund is its share of what was *paid*, which the coupon had already lowered, so the shopper got the
        coupon's value as a lower price and keeps it spent (README "Member service rules")."""
        if self.status not in (CouponStatus.LOCKED, CouponStatus.USED):
            return False
        self.status, self.order_no, self.discount_fen, self.used_at = CouponStatus.AVAILABLE, None, 0, None
        self.locked_at = None
        return True


NO_COUPON = 0  # ExpiredCouponLock.coupon_id of an order released before it locked any coupon (service.release_coupon)


@dataclass
class ExpiredCouponLock:
    """A coupon lock the expiry sweep released: which coupon `order_no` had locked, for an order-paid arriving
    after all (service.apply_order_paid). Coupon NO_COUPON: the order was released before it locked any, and locks
    none afterwards (service.release_coupon)."""

    order_no: str
    coupon_id: int
    user_id: int
    discount_fen: int
    expired_at: datetime


def coupon_not_found() -> NotFound:
    return NotFound("COUPON_NOT_FOUND", "no such coupon")


def template_not_found() -> NotFound:
    return NotFound("COUPON_TEMPLATE_NOT_FOUND", "no such coupon template")


def unknown_categories(category_ids: list[int]) -> InvalidInput:
    """A template restricted to categories the catalogue does not have would never apply to any order line."""
    named = ", ".join(str(c) for c in category_ids)
    return InvalidInput("COUPON_TEMPLATE_INVALID", f"no such categories: {named}",
                        details={"category_ids": f"no such categories: {named}"})


def template_disabled() -> DomainError:
    return DomainError("COUPON_TEMPLATE_DISABLED", "these coupons are no longer offered")


def template_not_approved() -> DomainError:
    return DomainError("COUPON_TEMPLATE_NOT_APPROVED", "these coupons are not offered yet")


# ---------------------------------------------------------------- withdrawals (M5)
# Their bounds, WITHDRAWAL_MIN_FEN, WITHDRAWAL_MAX_PER_DAY_FEN (a shop day's: formats.shop_day) and
# MAX_PENDING_WITHDRAWALS, and what the shopper reads of a refused or failed transfer, PAYOUT_REFUSED_SHOPPER and
# PAYOUT_FAILED_SHOPPER, are in services/common/formats.py (documented by the gateway).


class WithdrawalStatus(enum.StrEnum):
    """PENDING_REVIEW --approve--> PAYING --transfer succeeded--> PAID (PAYING --transfer failed--> FAILED, the
    amount back to available); PENDING_REVIEW --reject--> REJECTED. PAYING is committed before the transfer is
    sent and lasts while it is in flight (or its answer, or the record of its answer, was lost): the payout job
    asks the channel again until it ends. PAYING --refused outright--> PENDING_REVIEW only when the channel
    refused the transfer at once (nothing paid, nothing on its way)."""

    PENDING_REVIEW = "PENDING_REVIEW"
    PAYING = "PAYING"
    PAID = "PAID"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class RechargeLot:
    """A paid recharge as withdrawals see it: its principal, the bonus it earned, and how much of each the
    withdrawals still standing (neither rejected nor failed) have drawn and forfeited."""

    recharge_no: str
    principal_fen: int
    bonus_fen: int
    drawn_fen: int = 0
    forfeited_fen: int = 0


@dataclass(frozen=True)
class PrincipalDraw:
    """What one withdrawal draws from one recharge: principal, and the bonus that forfeits."""

    recharge_no: str
    principal_fen: int
    bonus_fen: int


def draw_principal(amount_fen: int, lots: list[RechargeLot]) -> list[PrincipalDraw]:
    """The recharges a withdrawal of `amount_fen` draws on, in the order of `lots` (newest first), and the
    bonus each forfeits: once `d` of a recharge's principal `p` is drawn in all, ceil(d x bonus / p) of its
    bonus is forfeited in all, so drawing a recharge wholly forfeits exactly its bonus and several small
    withdrawals forfeit no more than one large one. Money no recharge brought draws nothing."""
    draws, left = [], amount_fen
    for lot in lots:
        take = min(left, lot.principal_fen - lot.drawn_fen)
        if take <= 0:
            continue
        forfeited_in_all = -(-(lot.drawn_fen + take) * lot.bonus_fen // lot.principal_fen)  # rounded up
        draws.append(PrincipalDraw(lot.recharge_no, take, max(0, forfeited_in_all - lot.forfeited_fen)))
        left -= take
        if left == 0:
            break
    return draws


@dataclass
class Withdrawal:
    """A request to withdraw `amount_fen` of the available balance. It forfeits `bonus_forfeited_fen` of the bonus
    of the recharges it draws on; `deducted_fen` of that was spent already and is kept from the transfer, which
    pays `payout_fen`."""

    withdrawal_no: str
    user_id: int
    amount_fen: int
    status: str
    created_at: datetime
    note: str = ""  # finance's, and the payout channel's reasons: staff only
    shopper_reason: str = ""  # what the shopper reads of the decision or of the payout's end, never `note`
    payout_txn_id: str = ""
    decided_by: int | None = None
    decided_at: datetime | None = None
    bonus_forfeited_fen: int = 0
    deducted_fen: int = 0
    # While PAYING by a transfer that waits for the shopper to confirm receipt: what the mini-program confirms it
    # with (WeChat Pay: mch_id, app_id, package for wx.requestMerchantTransfer); shown to the shopper alone.
    payout_confirm: dict[str, str] | None = None
    id: int | None = None

    @property
    def payout_fen(self) -> int:
        return self.amount_fen - self.deducted_fen

    @property
    def awaits_shopper(self) -> bool:
        """Paid only once the shopper confirms receipt of the transfer (with `payout_confirm`)."""
        return self.status == WithdrawalStatus.PAYING and self.payout_confirm is not None

    def payout_in_flight(self, *, txn_id: str, awaits_shopper: bool, confirm: dict[str, str] | None) -> None:
        """The transfer is on its way: the channel's number for it, and whether it waits for the shopper, with what
        they confirm it by (kept from an earlier answer when this one brings none: WeChat Pay's bill query does not)."""
        self.payout_txn_id = txn_id or self.payout_txn_id
        if not awaits_shopper:
            self.payout_confirm = None
        elif confirm is not None:
            self.payout_confirm = dict(confirm)

    def forfeit_bonus(self, draws: list[PrincipalDraw], bonus_balance_fen: int) -> tuple[int, int]:
        """Forfeit the bonus of the principal drawn: from the unspent bonus credit first, the rest (bonus already
        spent) kept from the transfer. (from the bonus account, deducted from the payout)."""
        forfeited = sum(draw.bonus_fen for draw in draws)
        from_bonus = min(forfeited, bonus_balance_fen)
        if self.amount_fen - (forfeited - from_bonus) <= 0:
            raise DomainError("WITHDRAWAL_TOO_SMALL", "the bonus already spent would take all of this withdrawal",
                              details={"deducted_fen": forfeited - from_bonus})
        self.bonus_forfeited_fen, self.deducted_fen = forfeited, forfeited - from_bonus
        return from_bonus, self.deducted_fen

    @classmethod
    def request(cls, *, user_id: int, amount_fen: int, requested_today_fen: int, pending_review: int,
                now: datetime) -> Withdrawal:
        """A withdrawal under review, unless its amount is out of bounds, the shop day's withdrawals
        (`requested_today_fen` asked for since its start, not given back) would pass the daily maximum, or the shopper
        already has MAX_PENDING_WITHDRAWALS awaiting review (`pending_review`): finance reviews each by hand."""
        if amount_fen < WITHDRAWAL_MIN_FEN:
            raise InvalidInput("WITHDRAWAL_TOO_SMALL", f"a withdrawal is at least {WITHDRAWAL_MIN_FEN} fen",
                               details={"amount_fen": f"at least {WITHDRAWAL_MIN_FEN}"})
        if amount_fen > WITHDRAWAL_MAX_FEN:
            raise DomainError("WITHDRAWAL_TOO_LARGE", f"a withdrawal is at most {WITHDRAWAL_MAX_FEN} fen",
                              details={"max_fen": WITHDRAWAL_MAX_FEN})
        if requested_today_fen + amount_fen > WITHDRAWAL_MAX_PER_DAY_FEN:
            raise DomainError("WITHDRAWAL_DAILY_LIMIT", f"at most {WITHDRAWAL_MAX_PER_DAY_FEN} fen a day (from "
                              "midnight in Shanghai) may be withdrawn",
                              details={"remaining_fen": max(0, WITHDRAWAL_MAX_PER_DAY_FEN - requested_today_fen)})
        if pending_review >= MAX_PENDING_WITHDRAWALS:
            raise DomainError("TOO_MANY_PENDING_WITHDRAWALS", f"you have {pending_review} withdrawals awaiting review: "
                              "wait for one to be decided", details={"pending_withdrawals": pending_review,
                                                                     "limit": MAX_PENDING_WITHDRAWALS})
        return cls(withdrawal_no=new_number("W", now), user_id=user_id, amount_fen=amount_fen,
                   status=WithdrawalStatus.PENDING_REVIEW, created_at=now)

    def decide(self, *, approve: bool, note: str, decided_by: int, now: datetime, shopper_reason: str = "") -> bool:
        """Record the decision (approved: PAYING until the payout ends), with finance's `note` for staff and
        `shopper_reason` for the shopper (above all why it is rejected); False when this decision was already
        made (a retry), Conflict if the other. Never by the one withdrawing (Forbidden OWN_REQUEST): finance staff
        could pay themselves out; another finance staff member decides."""
        refuse_own(decided_by, self.user_id)
        already = ((WithdrawalStatus.PAYING, WithdrawalStatus.PAID) if approve else (WithdrawalStatus.REJECTED,))
        if self.status in already:
            return False
        if self.status != WithdrawalStatus.PENDING_REVIEW:
            raise Conflict("WITHDRAWAL_ALREADY_DECIDED", f"this withdrawal is already {self.status}")
        wanted = WithdrawalStatus.PAYING if approve else WithdrawalStatus.REJECTED
        self.status, self.note, self.decided_by, self.decided_at = wanted, note[:200], decided_by, now
        self.shopper_reason = shopper_reason.strip()[:SHOPPER_REASON_MAX]
        return True

    def payout_refused(self, reason: str) -> bool:
        """The channel refused the transfer of this approval outright (nothing paid, nothing on its way): back
        under review, the decision undone and the reason noted for finance (the shopper reads PAYOUT_REFUSED_SHOPPER).
        False unless it was PAYING."""
        if self.status != WithdrawalStatus.PAYING:
            return False
        self.status, self.decided_by, self.decided_at = WithdrawalStatus.PENDING_REVIEW, None, None
        self.note, self.payout_confirm = f"[payout refused: {reason}]"[:200], None
        self.shopper_reason = PAYOUT_REFUSED_SHOPPER
        return True

    def payout_ended(self, *, paid: bool, txn_id: str, reason: str = "") -> bool:
        """The transfer of an approved withdrawal ended: PAID, or FAILED with the channel's reason noted for finance
        (the shopper reads PAYOUT_FAILED_SHOPPER). False unless it was still PAYING (an end already recorded is never
        recorded again)."""
        if self.status != WithdrawalStatus.PAYING:
            return False
        self.status = WithdrawalStatus.PAID if paid else WithdrawalStatus.FAILED
        self.payout_txn_id, self.payout_confirm = txn_id or self.payout_txn_id, None
        if not paid:
            self.note = f"{self.note} [payout failed: {reason}]".strip()[:200]
            self.shopper_reason = PAYOUT_FAILED_SHOPPER
        return True


class DecisionOutcome(enum.StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PAYOUT_REFUSED = "PAYOUT_REFUSED"  # the channel refused the approved transfer: back under review


@dataclass(eq=False)
class WithdrawalDecision:
    """One step of a withdrawal's review, kept for good (withdrawal_decisions): finance approved or rejected it
    (`actor_id`, their note), or the payout channel refused the approved transfer (no actor, the channel's reason),
    which puts it back under review and clears the withdrawal's own decided_by, decided_at and note. With what the
    shopper was told of it (the withdrawal's `shopper_reason` after the step)."""

    withdrawal_id: int
    outcome: str
    actor_id: int | None
    note: str
    decided_at: datetime
    shopper_reason: str = ""
    id: int | None = None

    @classmethod
    def of(cls, withdrawal: Withdrawal, outcome: DecisionOutcome, *, actor_id: int | None, note: str,
           now: datetime) -> WithdrawalDecision:
        return cls(withdrawal_id=withdrawal.id or 0, outcome=outcome.value, actor_id=actor_id, note=note[:200],
                   decided_at=now, shopper_reason=withdrawal.shopper_reason)


def withdrawal_not_found() -> NotFound:
    return NotFound("WITHDRAWAL_NOT_FOUND", "no such withdrawal")


# ---------------------------------------------------------------- recharges (M4)

RECHARGE_CHANNELS = ("wechat", "alipay", "bank_card")  # the amount: formats.RECHARGE_MIN_FEN-RECHARGE_MAX_FEN
RECHARGE_PAY_MINUTES = 30                # the channel's payment window of a recharge
# How long after its payment deadline a PENDING recharge is asked about one last time and expired when the
# channel says it was not paid (MEMBER_RECHARGE_EXPIRE_SECONDS): at least a minute for the channel's own clock and
# a payment confirmed on the deadline, at most a day.
RECHARGE_EXPIRE_SECONDS = (60, 86_400)
DEFAULT_RECHARGE_EXPIRE_SECONDS = 900


# The recharge promotion in force when a recharge is paid: at least 500 yuan earns 50 yuan of bonus
# credit (the highest tier reached), which pays orders before the available balance and is never
# withdrawn; a refund gives back the bonus its order used first. Withdrawing a recharge's principal
# forfeits its bonus in proportion (draw_principal), so the bonus rewards only principal spent in the shop; what of
# the forfeit was spent already is kept from the transfer (repaid with cash), and a refund gives back as cash the
# bonus it would return up to what paid withdrawals so repaid and nothing gave back (service.REPAYMENT_RETURNED).
RECHARGE_BONUS_TIERS: tuple[tuple[int, int], ...] = ((50_000, 5_000),)


def recharge_bonus(amount_fen: int) -> int:
    return max((bonus for threshold, bonus in RECHARGE_BONUS_TIERS if amount_fen >= threshold), default=0)


class RechargeStatus(enum.StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    EXPIRED = "EXPIRED"  # not paid by its payment deadline, the channel said so (service.expire_recharges)
    CLOSED = "CLOSED"    # closed by the shopper before its deadline, the channel closed it (service.close_recharge)


@dataclass
class Recharge:
    recharge_no: str
    user_id: int
    amount_fen: int
    channel: str
    status: str
    created_at: datetime
    channel_txn_id: str = ""
    paid_at: datetime | None = None
    bonus_fen: int = 0      # the bonus credit it earned when paid
    id: int | None = None

    @classmethod
    def create(cls, *, user_id: int, amount_fen: int, channel: str, pending_recharges: int,
               now: datetime) -> Recharge:
        """A recharge awaiting payment, unless its channel or amount is invalid or the shopper already has
        MAX_PENDING_RECHARGES awaiting payment (`pending_recharges`): each is asked about at its channel every
        reconciliation run until it ends, and preparing one costs an attacker nothing."""
        if channel not in RECHARGE_CHANNELS:
            raise InvalidInput("CHANNEL_INVALID", f"channel must be one of {', '.join(RECHARGE_CHANNELS)}",
                               details={"channel": "invalid"})
        if not RECHARGE_MIN_FEN <= amount_fen <= RECHARGE_MAX_FEN:
            raise InvalidInput("AMOUNT_INVALID", f"a recharge is {RECHARGE_MIN_FEN}-{RECHARGE_MAX_FEN} fen",
                               details={"amount_fen": "out of range"})
        if pending_recharges >= MAX_PENDING_RECHARGES:
            raise DomainError("TOO_MANY_PENDING_RECHARGES", f"you have {pending_recharges} recharges awaiting payment: "
                              "pay one, close one, or wait for it to expire", details={"pending_recharges": pending_recharges,
                                                                            "limit": MAX_PENDING_RECHARGES})
        return cls(recharge_no=new_number("R", now), user_id=user_id, amount_fen=amount_fen, channel=channel,
                   status=RechargeStatus.PENDING, created_at=now)

    @property
    def pay_deadline(self) -> datetime:
        return self.created_at + timedelta(minutes=RECHARGE_PAY_MINUTES)

    def expire(self) -> None:
        """Not paid by its deadline, the channel says: EXPIRED (no longer shown as awaiting payment)."""
        if self.status != RechargeStatus.PENDING:
            raise Conflict("RECHARGE_STATE_CONFLICT", f"a {self.status} recharge cannot expire")
        self.status = RechargeStatus.EXPIRED

    def close(self) -> bool:
        """Closed at the shopper's word, once its channel closed the payment: CLOSED (no longer awaiting payment, so
        no longer counted against MAX_PENDING_RECHARGES). True when this closes it; False when it was CLOSED already
        (closing again changes nothing); a PAID or EXPIRED recharge cannot be closed."""
        if self.status == RechargeStatus.CLOSED:
            return False
        if self.status != RechargeStatus.PENDING:
            raise Conflict("RECHARGE_STATE_CONFLICT", f"a {self.status} recharge cannot be closed",
                           details={"status": str(self.status)})
        self.status = RechargeStatus.CLOSED
        return True

    def mark_paid(self, *, paid_fen: int, channel_txn_id: str, now: datetime, channel: str | None = None) -> bool:
        """True when this notify credits the recharge; False for a replay of the one that did. An EXPIRED or
        CLOSED recharge is credited too: money the channel took (paid at the last moment, its notify late) is the
        shopper's, whatever was concluded before."""
        if channel is not None and channel != self.channel:
            raise Conflict("RECHARGE_CHANNEL_MISMATCH", f"this recharge is paid through {self.channel}, not {channel}")
        if self.status == RechargeStatus.PAID:
            if self.channel_txn_id != channel_txn_id:
                raise Conflict("RECHARGE_ALREADY_PAID", "this recharge was paid by another transaction")
            return False
        if paid_fen != self.amount_fen:
            raise DomainError("RECHARGE_AMOUNT_MISMATCH", "the amount paid differs from the recharge's",
                              details={"paid_fen": paid_fen, "amount_fen": self.amount_fen})
        self.status, self.channel_txn_id, self.paid_at = RechargeStatus.PAID, channel_txn_id, now
        return True


def recharge_not_found() -> NotFound:
    return NotFound("RECHARGE_NOT_FOUND", "no such recharge")


def new_number(prefix: str, now: datetime) -> str:
    """A business number: prefix, UTC timestamp, 8 random digits (unique in practice; a unique index enforces)."""
    return f"{prefix}{now:%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"


@dataclass(frozen=True)
class Wallet:
    """What any shopper's wallet holds, member or not (a WeChat-only shopper may recharge without joining)."""

    balance_fen: int  # available: pays orders, may be withdrawn
    pending_fen: int  # held by withdrawals under review
    bonus_fen: int  # promotional credit: pays orders first, never withdrawn


@dataclass(frozen=True)
class MemberSummary:
    """What GET /member shows."""

    member: Member
    now: datetime
    points: int
    balance_fen: int
    pending_fen: int
    coupons_available: int
    bonus_fen: int = 0
    points_owed: int = 0  # what refunds could not take back, every kind: taken from the next points credited


@dataclass(eq=False)
class MemberLookup:
    """An audit record of a staff member reading a user's member record: who, whose, when, and whether they were a
    member (a read that answered MEMBER_NOT_FOUND is recorded too). Ids only: no personal data is copied here."""

    actor_id: int
    user_id: int
    found: bool
    looked_up_at: datetime
    id: int | None = None
