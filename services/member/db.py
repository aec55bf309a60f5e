"""Member service tables, their mapping onto the domain classes, repositories and unit of work."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, registry
from sqlalchemy.sql import ColumnElement

from services.common.db import (
    BigId,
    Mapping,
    UTCDateTime,
    conflict_insert,
    counted_page,
    integer_sum,
    job_rounds_table,
    serialize_on,
    settled_high_water,
    skip_locked,
)
from services.common.pruning import RELEASE_MARK_DAYS, PastUse
from services.common.uow import SqlUnitOfWork
from services.member.domain import (
    NO_COUPON,
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
    Leg,
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
    RechargeStatus,
    TemplateStatus,
    Wallet,
    Withdrawal,
    WithdrawalDecision,
    WithdrawalStatus,
    shown_kind,
)
from services.member.uow import MemberUnitOfWork

metadata = MetaData()

members = Table(
    "members", metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("member_no", String(24), nullable=True, unique=True),
    Column("channel", String(16), nullable=True),
    Column("invite_code", String(32), nullable=True),       # the code the member joined with
    Column("referral_code", String(16), nullable=True),     # the member's own code, to invite others
    Column("invited_by", BigInteger, nullable=True),        # the inviter's user_id
    Column("total_spend_fen", BigInteger, nullable=False, default=0),
    Column("joined_at", UTCDateTime, nullable=True),
    Column("plan_id", Integer, nullable=True),
    Column("plan_expires_at", UTCDateTime, nullable=True),
    CheckConstraint("total_spend_fen >= 0", name="ck_members_total_spend_non_negative"),
    UniqueConstraint("referral_code", name="uq_members_referral_code"),
    Index("ix_members_invited_by", "invited_by"),
)

# Double-entry ledgers: every posting's legs sum to zero per unit (fen, points). user_id 0 is the platform.
ledger_accounts = Table(
    "ledger_accounts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("account", String(32), nullable=False),
    Column("balance", BigInteger, nullable=False, default=0),
    UniqueConstraint("user_id", "account", name="uq_ledger_accounts_user_account"),
    CheckConstraint("user_id = 0 OR balance >= 0", name="ck_ledger_accounts_user_balance_non_negative"),
)

ledger_postings = Table(
    "ledger_postings", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(160), nullable=False, unique=True),  # the idempotency key of the movement
    Column("kind", String(32), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("posting_id", BigInteger, ForeignKey("ledger_postings.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("posting_id", "account_id", name="uq_ledger_entries_posting_account"),
    Index("ix_ledger_entries_account_id", "account_id", "id"),
)

points_holds = Table(
    "points_holds", metadata,
    Column("order_no", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expired_points", BigInteger, nullable=False, default=0, server_default="0"),  # taken on release
    Column("returned_points", BigInteger, nullable=False, default=0, server_default="0"),  # by refunds of units
    CheckConstraint("expired_points >= 0 AND expired_points <= points", name="ck_points_holds_expired_within_points"),
    Index("ix_points_holds_status_created", "status", "created_at"),  # the expiry sweep's
    Index("ix_points_holds_status_points_created", "status", "points", "created_at"),  # pruning release marks
)

# Points a user owes, by the posting kind they are taken back as (service._owe_points): taken from the next points
# credited to the user (service._take_owed_points).
points_owed = Table(
    "points_owed", metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("points", BigInteger, nullable=False),
    CheckConstraint("points >= 0", name="ck_points_owed_non_negative"),
)

order_credits = Table(
    "order_credits", metadata,
    Column("order_no", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False, default=0),
    Column("points_reversed", BigInteger, nullable=False, default=0),
)

# Refunds read before their order's order-paid (another topic), each waiting for that payment to be credited.
pending_reversals = Table(
    "pending_reversals", metadata,
    Column("refund_no", String(64), primary_key=True),
    Column("order_no", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("refunded_at", UTCDateTime, nullable=False),
    Index("ix_pending_reversals_order_no", "order_no"),
)

coupon_templates = Table(
    "coupon_templates", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("percent_off", Integer, nullable=False),
    Column("threshold_fen", BigInteger, nullable=False),
    Column("cap_fen", BigInteger, nullable=False),
    Column("total", Integer, nullable=False),
    Column("issued", Integer, nullable=False, default=0),
    Column("per_user_limit", Integer, nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=False),
    Column("categories", String(2000), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="active", server_default="active"),
    Column("created_by", BigInteger, nullable=True),        # the staff member; NULL before migration 0008
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("disabled_by", BigInteger, nullable=True),
    Column("disable_reason", String(200), nullable=False, default="", server_default=""),
    Column("approved_at", UTCDateTime, nullable=True),    # NULL: needed no approval (an admin's, or before 0011)
    Column("approved_by", BigInteger, nullable=True),
    CheckConstraint("issued >= 0 AND issued <= total", name="ck_coupon_templates_issued_within_total"),
)

coupons = Table(
    "coupons", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("template_id", BigInteger, ForeignKey("coupon_templates.id"), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("order_no", String(64), nullable=True, unique=True),
    Column("discount_fen", BigInteger, nullable=False, default=0),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Column("locked_at", UTCDateTime, nullable=True),
    Index("ix_coupons_user_template", "user_id", "template_id"),
    Index("ix_coupons_status_locked", "status", "locked_at"),  # the expiry sweep's
    Index("ix_coupons_template_status", "template_id", "status"),  # staff's counts by template (migration 0018)
)


# The domain's coupon rules in SQL, on coupons joined with their templates, so that lists filter, page and count in
# the database; tests/integration/member/test_coupon_status_rule.py holds each to its domain twin on the boundaries.
coupons_with_templates = coupons.join(coupon_templates, coupon_templates.c.id == coupons.c.template_id)


def shown_coupon_status(now: datetime) -> ColumnElement[str]:
    """Coupon.shown_status: an available coupon is expired from its template's valid_to on."""
    return case((and_(coupons.c.status == CouponStatus.AVAILABLE.value, coupon_templates.c.valid_to <= now),
                 CouponStatus.EXPIRED.value), else_=coupons.c.status)


def usable_coupon(now: datetime) -> ColumnElement[bool]:
    """Coupon.usable: available, its template started (valid_from, inclusive) and not ended (valid_to, exclusive)."""
    return and_(coupons.c.status == CouponStatus.AVAILABLE.value, coupon_templates.c.valid_from <= now,
                coupon_templates.c.valid_to > now)


# Coupon locks the expiry sweep released (services.member.domain.CHECKOUT_HOLD_TTL), by the order that held them;
# coupon_id NO_COUPON (domain): an order released before it locked any, whose late LockCoupon is refused.
expired_coupon_locks = Table(
    "expired_coupon_locks", metadata,
    Column("order_no", String(64), primary_key=True),
    Column("coupon_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("discount_fen", BigInteger, nullable=False),
    Column("expired_at", UTCDateTime, nullable=False),
    Index("ix_expired_coupon_locks_expired_at", "expired_at"),  # pruning (OWN_ROWS, migration 0017)
)

withdrawals = Table(
    "withdrawals", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("withdrawal_no", String(32), nullable=False, unique=True),
    Column("user_id", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", String(200), nullable=False, default=""),  # staff only
    Column("shopper_reason", String(200), nullable=False, default="", server_default=""),  # the shopper's (0022)
    Column("payout_txn_id", String(64), nullable=False, default=""),
    Column("decided_by", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("bonus_forfeited_fen", BigInteger, nullable=False, default=0, server_default="0"),  # of the recharges it draws on
    Column("deducted_fen", BigInteger, nullable=False, default=0, server_default="0"),  # of that, spent: kept from the transfer
    # PAYING, its transfer waiting for the shopper to confirm receipt: {"mch_id", "app_id", "package"}; else NULL
    Column("payout_confirm", JSON(none_as_null=True), nullable=True),
    CheckConstraint("amount_fen > 0", name="ck_withdrawals_amount_positive"),
    CheckConstraint("deducted_fen >= 0 AND deducted_fen <= bonus_forfeited_fen AND deducted_fen < amount_fen",
                    name="ck_withdrawals_deducted_within"),
    Index("ix_withdrawals_user_created", "user_id", "created_at"),
    Index("ix_withdrawals_status_id", "status", "id"),  # finance's queue, the payout job (0019)
)

# Each step of a withdrawal's review, in order (DecisionOutcome): finance's approvals and rejections with who and their
# note, and the payout channel's refusals of an approved transfer with its reason; the withdrawal row keeps only the
# latest state (a refusal clears its decision); each with what the shopper was told (0022). Written in the
# transaction of the step (migration 0021).
withdrawal_decisions = Table(
    "withdrawal_decisions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("withdrawal_id", BigInteger, ForeignKey("withdrawals.id"), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor_id", BigInteger, nullable=True),  # NULL: the payout channel
    Column("note", String(200), nullable=False),
    Column("shopper_reason", String(200), nullable=False, default="", server_default=""),
    Column("decided_at", UTCDateTime, nullable=False),
    Index("ix_withdrawal_decisions_withdrawal_id", "withdrawal_id", "id"),
)

# The principal each withdrawal draws from each recharge and the bonus that forfeits (services.member.domain
# .draw_principal); the draws of rejected and failed withdrawals no longer count.
withdrawal_draws = Table(
    "withdrawal_draws", metadata,
    Column("withdrawal_no", String(32), primary_key=True),
    Column("recharge_no", String(32), primary_key=True),
    Column("principal_fen", BigInteger, nullable=False),
    Column("bonus_fen", BigInteger, nullable=False),
    Index("ix_withdrawal_draws_recharge_no", "recharge_no"),
)

recharges = Table(
    "recharges", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("recharge_no", String(32), nullable=False, unique=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    # RechargeStatus, free text with no CHECK: a new status (EXPIRED, CLOSED) needs no migration.
    Column("status", String(16), nullable=False),
    Column("channel_txn_id", String(64), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime, nullable=True),
    Column("bonus_fen", BigInteger, nullable=False, default=0, server_default="0"),  # the bonus credit it earned when paid
    CheckConstraint("amount_fen > 0", name="ck_recharges_amount_positive"),
    # The reconciliation and expiry jobs read the PENDING ones by age every MEMBER_RECONCILE_SECONDS.
    Index("ix_recharges_status_created", "status", "created_at"),
)


# Staff reads of shoppers' member records (services.member.service.look_up_member), as user_lookups audits searches.
member_lookups = Table(
    "member_lookups", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("actor_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("found", Boolean, nullable=False),  # false: the user was not a member (MEMBER_NOT_FOUND answered)
    Column("looked_up_at", UTCDateTime, nullable=False),
    Index("ix_member_lookups_actor_at", "actor_id", "looked_up_at"),
    Index("ix_member_lookups_user_at", "user_id", "looked_up_at"),
)

# Where the last round of a job that takes turns across replicas (the points expiry: uow.one_round_at_a_time)
# started and its walk stopped: a replica's round goes on after the other's.
job_rounds = job_rounds_table(metadata)


# The marks of orders released before they held points or locked a coupon (service.release_points, release_coupon): a
# 0-point RELEASED hold (every real hold has points; ix_points_holds_status_points_created, 0020), an expired lock of
# coupon 0, pruned RELEASE_MARK_DAYS after.
OWN_ROWS: dict[Table, PastUse] = {
    points_holds: lambda now, settings: (points_holds.c.status == HoldStatus.RELEASED.value)
    & (points_holds.c.points == 0) & (points_holds.c.created_at < now - timedelta(days=RELEASE_MARK_DAYS)),
    expired_coupon_locks: lambda now, settings: (expired_coupon_locks.c.coupon_id == NO_COUPON)
    & (expired_coupon_locks.c.expired_at < now - timedelta(days=RELEASE_MARK_DAYS)),
}


def _map_classes(mappers: registry) -> None:
    for cls, table in ((Member, members), (PointsHold, points_holds), (OrderCredit, order_credits),
                       (PendingReversal, pending_reversals), (CouponTemplate, coupon_templates), (Coupon, coupons),
                       (ExpiredCouponLock, expired_coupon_locks),
                       (Withdrawal, withdrawals), (WithdrawalDecision, withdrawal_decisions), (Recharge, recharges),
                       (MemberLookup, member_lookups)):
        mappers.map_imperatively(cls, table)


# Maps the domain classes onto the tables (idempotent): build_app and database tests call it, never an import.
start_mappers = Mapping(_map_classes).start


def insert_ignoring_duplicates(session: Session, table: Table, values: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, on PostgreSQL and SQLite."""
    session.execute(conflict_insert(session, table).values(values).on_conflict_do_nothing())


def _locked(query: Any, lock: bool) -> Any:
    # populate_existing: a row locked now must not be read from an older copy in the session
    return query.with_for_update().execution_options(populate_existing=True) if lock else query


def _skip_locked(session: Session, query: Any) -> Any:
    # populate_existing, as in _locked: a row locked now must not be read from an older copy in the session
    return skip_locked(session, query).execution_options(populate_existing=True)


class SqlMemberRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: int) -> Member | None:
        return self.session.get(Member, user_id)

    def by_referral_code(self, code: str) -> Member | None:
        return self.session.execute(select(Member).where(members.c.referral_code == code)).scalar_one_or_none()

    def get_or_add_locked(self, user_id: int) -> Member:
        insert_ignoring_duplicates(self.session, members, [{"user_id": user_id, "total_spend_fen": 0}])
        return self.session.execute(_locked(select(Member).where(members.c.user_id == user_id), True)).scalar_one()


class SqlLedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._locked: tuple[object, set[int]] = (None, set())

    def _locked_wallets(self) -> set[int]:
        """The users whose wallet the session's current transaction has locked (lock_wallet): none in a new one."""
        transaction = self.session.get_transaction()
        if self._locked[0] is not transaction:
            self._locked = (transaction, set())
        return self._locked[1]

    def post(self, posting: Posting, now: datetime) -> bool:
        try:
            with self.session.begin_nested():
                posting_id = self.session.execute(ledger_postings.insert().values(
                    key=posting.key, kind=posting.kind, reference=posting.reference, created_at=now,
                ).returning(ledger_postings.c.id)).scalar_one()
        except IntegrityError:  # posted before (or a moment ago, by a transaction that committed first)
            return False
        for user_id in sorted({leg.user_id for leg in posting.legs if leg.account in WALLET_ACCOUNTS}
                              - self._locked_wallets()):
            self.lock_wallet(user_id)
        ids = self._account_ids({(leg.user_id, leg.account) for leg in posting.legs})
        # One order for every transaction's row locks: a user's wallet first, whole (lock_wallet, above), then the
        # other accounts by id, the platform's last (its busy rows are held for the shortest time).
        for leg in sorted(posting.legs, key=lambda leg: (leg.user_id == 0, ids[leg.user_id, leg.account])):
            account_id = ids[leg.user_id, leg.account]
            balance = self.session.execute(
                update(ledger_accounts)
                .where(ledger_accounts.c.id == account_id,
                       or_(ledger_accounts.c.user_id == 0, ledger_accounts.c.balance + leg.amount >= 0))
                .values(balance=ledger_accounts.c.balance + leg.amount)
                .returning(ledger_accounts.c.balance)).scalar_one_or_none()
            if balance is None:
                held = self.session.execute(select(ledger_accounts.c.balance)
                                            .where(ledger_accounts.c.id == account_id)).scalar_one()
                raise InsufficientFunds(leg.account, available=held, needed=-leg.amount)
            self.session.execute(ledger_entries.insert().values(
                posting_id=posting_id, account_id=account_id, amount=leg.amount, balance_after=balance,
                created_at=now))
        return True

    def _account_ids(self, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
        insert_ignoring_duplicates(self.session, ledger_accounts,
                                   [{"user_id": user_id, "account": account, "balance": 0}
                                    for user_id, account in sorted(wanted)])
        rows = self.session.execute(select(ledger_accounts.c.id, ledger_accounts.c.user_id, ledger_accounts.c.account)
                                    .where(ledger_accounts.c.user_id.in_({user_id for user_id, _ in wanted}))).all()
        return {(row.user_id, row.account): row.id for row in rows if (row.user_id, row.account) in wanted}

    def lock_wallet(self, user_id: int) -> dict[str, int]:
        """Lock the user's wallet accounts (WALLET_ACCOUNTS) until the transaction ends, in that order, the one way any
        transaction locks them (post calls this before it moves a wallet it has not locked); their balances.

        Missing accounts are created first (a FOR UPDATE of no row waits for nothing): a transaction that creates one
        makes any other that would lock it wait until it ends, so a user's first recharge and first withdrawal, say,
        wait for each other as later ones do."""
        insert_ignoring_duplicates(self.session, ledger_accounts, [{"user_id": user_id, "account": account,
                                                                     "balance": 0} for account in WALLET_ACCOUNTS])
        rank = case({account: rank for rank, account in enumerate(WALLET_ACCOUNTS)}, value=ledger_accounts.c.account)
        # ORDER BY: PostgreSQL locks the rows in the order it returns them.
        rows = self.session.execute(
            select(ledger_accounts.c.account, ledger_accounts.c.balance)
            .where(ledger_accounts.c.user_id == user_id, ledger_accounts.c.account.in_(WALLET_ACCOUNTS))
            .order_by(rank).with_for_update()).all()
        self._locked_wallets().add(user_id)
        return {row.account: row.balance for row in rows}

    def find(self, key: str) -> Posting | None:
        rows = self.session.execute(
            select(ledger_postings.c.kind, ledger_postings.c.reference, ledger_accounts.c.user_id,
                   ledger_accounts.c.account, ledger_entries.c.amount)
            .join(ledger_entries, ledger_entries.c.posting_id == ledger_postings.c.id)
            .join(ledger_accounts, ledger_accounts.c.id == ledger_entries.c.account_id)
            .where(ledger_postings.c.key == key)).all()
        if not rows:
            return None
        return Posting(key, rows[0].kind, rows[0].reference,
                       tuple(Leg(row.user_id, row.account, row.amount) for row in rows))

    def lock_refunds(self, order_no: str) -> None:
        # Not a row of the user's: the bonus or available account a refund credits may not exist yet (FOR UPDATE on
        # no row waits for nothing), and two refunds must not both find the whole payment still refundable.
        serialize_on(self.session, f"balance-refunds:{order_no}")

    def balance(self, user_id: int, account: str, *, lock: bool = False) -> int:
        query = select(ledger_accounts.c.balance).where(ledger_accounts.c.user_id == user_id,
                                                        ledger_accounts.c.account == account)
        return self.session.execute(query.with_for_update() if lock else query).scalar_one_or_none() or 0

    def wallet(self, user_id: int) -> Wallet:
        found = dict(self.session.execute(  # one statement: one snapshot, also under READ COMMITTED
            select(ledger_accounts.c.account, ledger_accounts.c.balance)
            .where(ledger_accounts.c.user_id == user_id, ledger_accounts.c.account.in_(WALLET_ACCOUNTS))).all())
        return Wallet(balance_fen=found.get(Account.AVAILABLE, 0), pending_fen=found.get(Account.PENDING, 0),
                      bonus_fen=found.get(Account.BONUS, 0))

    def sum_entries(self, user_id: int, account: str, kinds: tuple[str, ...], *, since: datetime | None = None,
                    reference: str | None = None) -> int:
        where = [ledger_accounts.c.user_id == user_id, ledger_accounts.c.account == account,
                 ledger_postings.c.kind.in_(kinds)]
        if since is not None:
            where.append(ledger_entries.c.created_at >= since)
        if reference is not None:
            where.append(ledger_postings.c.reference == reference)
        return self.session.execute(
            select(integer_sum(ledger_entries.c.amount))
            .select_from(ledger_entries.join(ledger_accounts, ledger_accounts.c.id == ledger_entries.c.account_id)
                         .join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id))
            .where(*where)).scalar_one()

    def entries_after(self, user_id: int, account: str, key: str | None) -> list[LedgerEntry]:
        posted = (select(func.max(ledger_entries.c.id))
                  .join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id)
                  .where(ledger_postings.c.key == key).scalar_subquery() if key is not None else 0)
        rows = self.session.execute(
            select(ledger_entries.c.id, ledger_accounts.c.account, ledger_entries.c.amount,
                   ledger_entries.c.balance_after, ledger_postings.c.kind, ledger_postings.c.reference,
                   ledger_entries.c.created_at)
            .select_from(ledger_entries.join(ledger_accounts, ledger_accounts.c.id == ledger_entries.c.account_id)
                         .join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id))
            .where(ledger_accounts.c.user_id == user_id, ledger_accounts.c.account == account,
                   ledger_entries.c.id > posted)
            .order_by(ledger_entries.c.id)).all()
        return [LedgerEntry(**row._mapping) for row in rows]

    def holders(self, accounts: tuple[str, ...], after_user_id: int, limit: int) -> list[int]:
        return list(self.session.execute(
            select(ledger_accounts.c.user_id).where(ledger_accounts.c.account.in_(accounts),
                                                    ledger_accounts.c.user_id > after_user_id,
                                                    ledger_accounts.c.balance > 0)
            .group_by(ledger_accounts.c.user_id).order_by(ledger_accounts.c.user_id).limit(limit)).scalars())

    def last_settled_entry(self, wait_seconds: float) -> int | None:
        return settled_high_water(self.session, ledger_entries.c.id, wait_seconds=wait_seconds)

    def users_moved(self, account: str, after_entry: int, upto_entry: int, limit: int, *,
                    except_kind: str) -> list[tuple[int, int]]:
        # Through the entries' primary key from `after_entry` on (a page reads about its own entries and the other
        # legs of their postings), each account's later entries through ix_ledger_entries_account_id.
        later, later_posting = ledger_entries.alias("later"), ledger_postings.alias("later_posting")
        moved_later = (select(later.c.id).join(later_posting, later_posting.c.id == later.c.posting_id)
                       .where(later.c.account_id == ledger_entries.c.account_id, later.c.id > ledger_entries.c.id,
                              later.c.id <= upto_entry, later_posting.c.kind != except_kind))
        rows = self.session.execute(
            select(ledger_entries.c.id, ledger_accounts.c.user_id)
            .join(ledger_accounts, ledger_accounts.c.id == ledger_entries.c.account_id)
            .join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id)
            .where(ledger_entries.c.id > after_entry, ledger_entries.c.id <= upto_entry,
                   ledger_accounts.c.account == account, ledger_postings.c.kind != except_kind,
                   ~moved_later.exists())
            .order_by(ledger_entries.c.id).limit(limit)).all()
        return [(row.id, row.user_id) for row in rows]

    def entries(self, user_id: int, accounts: tuple[str, ...], offset: int,
                limit: int) -> tuple[list[LedgerEntry], int]:
        where = (ledger_accounts.c.user_id == user_id, ledger_accounts.c.account.in_(accounts))
        joined = ledger_entries.join(ledger_accounts, ledger_accounts.c.id == ledger_entries.c.account_id)
        total = self.session.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
        rows = self.session.execute(
            select(ledger_entries.c.id, ledger_accounts.c.account, ledger_entries.c.amount,
                   ledger_entries.c.balance_after, ledger_postings.c.key, ledger_postings.c.kind,
                   ledger_postings.c.reference, ledger_entries.c.created_at)
            .select_from(joined.join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id))
            .where(*where).order_by(ledger_entries.c.id.desc()).offset(offset).limit(limit)).all()
        return [LedgerEntry(id=row.id, account=row.account, amount=row.amount, balance_after=row.balance_after,
                            kind=shown_kind(row.key, row.kind), reference=row.reference, created_at=row.created_at)
                for row in rows], total

    def check(self, *, after_account_id: int = 0, limit: int | None = None) -> LedgerCheck:
        # Each account's entries summed through ix_ledger_entries_account_id: a range of accounts reads only theirs.
        total = (select(func.coalesce(integer_sum(ledger_entries.c.amount), 0))
                 .where(ledger_entries.c.account_id == ledger_accounts.c.id).scalar_subquery())
        rows = self.session.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.user_id, ledger_accounts.c.account,
                   ledger_accounts.c.balance, total.label("total"))
            .where(ledger_accounts.c.id > after_account_id).order_by(ledger_accounts.c.id).limit(limit)).all()
        return LedgerCheck(len(rows), [Mismatch(row.id, row.user_id, row.account, row.balance, row.total)
                                       for row in rows if row.balance != row.total], rows[-1].id if rows else 0)


class SqlPointsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def hold(self, order_no: str, *, lock: bool = False) -> PointsHold | None:
        if lock:  # also when there is no hold yet: two first locks of one order must not both insert
            serialize_on(self.session, f"order:{order_no}")
        return self.session.execute(_locked(select(PointsHold).where(points_holds.c.order_no == order_no),
                                            lock)).scalar_one_or_none()

    def add_hold(self, hold: PointsHold) -> None:
        self.session.add(hold)
        self.session.flush()

    def locked_holds(self, user_id: int) -> list[PointsHold] | None:
        """All the user's LOCKED holds, oldest first, each locked; None when another transaction holds one of them
        now. Called with the user's points account locked, it never waits for a hold (SKIP LOCKED): a hold is locked
        before the account elsewhere. Under that lock no hold of the user starts or stops being LOCKED (that posts
        to the account), so counting them tells whether one was skipped."""
        where = (points_holds.c.user_id == user_id, points_holds.c.status == HoldStatus.LOCKED.value)
        holds = list(self.session.execute(_skip_locked(self.session, select(PointsHold).where(*where)
            .order_by(points_holds.c.created_at, points_holds.c.order_no))).scalars())
        total = self.session.execute(select(func.count()).select_from(points_holds).where(*where)).scalar_one()
        return holds if len(holds) == total else None

    def owed(self, user_id: int) -> dict[str, int]:
        serialize_on(self.session, f"points-owed:{user_id}")
        return {kind: points for kind, points in self.session.execute(
            select(points_owed.c.kind, points_owed.c.points).where(points_owed.c.user_id == user_id,
                                                                   points_owed.c.points > 0))}

    def add_owed(self, user_id: int, kind: str, points: int) -> None:
        serialize_on(self.session, f"points-owed:{user_id}")
        changed = self.session.execute(update(points_owed).where(
            points_owed.c.user_id == user_id, points_owed.c.kind == kind).values(points=points_owed.c.points + points))
        if not changed.rowcount:  # type: ignore[attr-defined]
            self.session.execute(insert(points_owed).values(user_id=user_id, kind=kind, points=points))

    def stale_holds(self, created_before: datetime, after_order_no: str, limit: int) -> list[str]:
        return list(self.session.execute(select(points_holds.c.order_no).where(
            points_holds.c.status == HoldStatus.LOCKED.value, points_holds.c.created_at < created_before,
            points_holds.c.order_no > after_order_no).order_by(points_holds.c.order_no).limit(limit)).scalars())

    def lock_stale_hold(self, order_no: str, created_before: datetime) -> PointsHold | None:
        return self.session.execute(_skip_locked(self.session, select(PointsHold).where(
            points_holds.c.order_no == order_no, points_holds.c.status == HoldStatus.LOCKED.value,
            points_holds.c.created_at < created_before))).scalar_one_or_none()

    def credit(self, order_no: str, *, lock: bool = False) -> OrderCredit | None:
        if lock:  # also when there is no credit yet: order-paid and a refund of the order must not miss each other
            serialize_on(self.session, f"order-credit:{order_no}")
        return self.session.execute(_locked(select(OrderCredit).where(order_credits.c.order_no == order_no),
                                            lock)).scalar_one_or_none()

    def add_credit(self, credit: OrderCredit) -> None:
        self.session.add(credit)
        self.session.flush()

    def add_pending_reversal(self, reversal: PendingReversal) -> None:
        self.session.add(reversal)
        self.session.flush()

    def take_pending_reversals(self, order_no: str) -> list[PendingReversal]:
        found = list(self.session.execute(
            select(PendingReversal).where(pending_reversals.c.order_no == order_no)
            .order_by(pending_reversals.c.refunded_at, pending_reversals.c.refund_no)).scalars())
        for reversal in found:
            self.session.delete(reversal)
        self.session.flush()
        return found


class SqlCouponRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_template(self, template: CouponTemplate) -> None:
        self.session.add(template)
        self.session.flush()

    def template(self, template_id: int, *, lock: bool = False) -> CouponTemplate | None:
        if not lock:
            return self.session.get(CouponTemplate, template_id)
        return self.session.execute(_locked(select(CouponTemplate).where(coupon_templates.c.id == template_id),
                                            lock)).scalar_one_or_none()

    def templates_page(self, status: str, offset: int, limit: int) -> tuple[list[CouponTemplate], int]:
        where = [coupon_templates.c.status == status] if status else []
        return counted_page(self.session, CouponTemplate, coupon_templates, where, [coupon_templates.c.id.desc()],
                            offset, limit)

    def count_by_status(self, template_ids: Collection[int]) -> dict[int, dict[str, int]]:
        counted: dict[int, dict[str, int]] = {}
        if not template_ids:
            return counted
        rows = self.session.execute(
            select(coupons.c.template_id, coupons.c.status, func.count())
            .where(coupons.c.template_id.in_(list(template_ids))).group_by(coupons.c.template_id, coupons.c.status))
        for template_id, status, count in rows:
            counted.setdefault(template_id, {})[status] = count
        return counted

    def claimable(self, user_id: int, now: datetime, offset: int,
                  limit: int) -> tuple[list[tuple[CouponTemplate, int]], int]:
        held = (select(func.count()).select_from(coupons).where(
            coupons.c.user_id == user_id, coupons.c.template_id == coupon_templates.c.id)
            .correlate(coupon_templates).scalar_subquery())
        where = (coupon_templates.c.status == TemplateStatus.ACTIVE.value, coupon_templates.c.valid_from <= now,
                 coupon_templates.c.valid_to > now, coupon_templates.c.issued < coupon_templates.c.total,
                 held < coupon_templates.c.per_user_limit,
                 coupon_templates.c.created_by.is_distinct_from(user_id),
                 coupon_templates.c.approved_by.is_distinct_from(user_id))
        total = self.session.execute(select(func.count()).select_from(coupon_templates).where(*where)).scalar_one()
        rows = self.session.execute(select(CouponTemplate, held.label("held")).where(*where)
                                    .order_by(coupon_templates.c.id.desc()).offset(offset).limit(limit)).all()
        return [(row[0], int(row[1])) for row in rows], total

    def take_one(self, template_id: int) -> bool:
        # Re-checked on the row's latest version: a claim waiting behind a disable's row lock issues nothing.
        taken = self.session.execute(update(coupon_templates).where(
            coupon_templates.c.id == template_id, coupon_templates.c.issued < coupon_templates.c.total,
            coupon_templates.c.status == TemplateStatus.ACTIVE.value,
        ).values(issued=coupon_templates.c.issued + 1).returning(coupon_templates.c.issued)).scalar_one_or_none()
        return taken is not None

    def lock_claims(self, user_id: int, template_id: int) -> None:
        serialize_on(self.session, f"coupon-claims:{user_id}:{template_id}")

    def claimed(self, user_id: int, template_id: int) -> int:
        return self.session.execute(select(func.count()).select_from(coupons).where(
            coupons.c.user_id == user_id, coupons.c.template_id == template_id)).scalar_one()

    def add(self, coupon: Coupon) -> None:
        self.session.add(coupon)
        self.session.flush()

    def get(self, coupon_id: int, *, lock: bool = False) -> Coupon | None:
        return self.session.execute(_locked(select(Coupon).where(coupons.c.id == coupon_id),
                                            lock)).scalar_one_or_none()

    def by_order(self, order_no: str, *, lock: bool = False) -> Coupon | None:
        if lock:  # also when no coupon holds the order yet: two coupons must not both be locked for it
            serialize_on(self.session, f"order-coupon:{order_no}")
        return self.session.execute(_locked(select(Coupon).where(coupons.c.order_no == order_no),
                                            lock)).scalar_one_or_none()

    def date_undated_locks(self, now: datetime) -> None:
        self.session.execute(update(coupons).where(coupons.c.status == CouponStatus.LOCKED.value,
                                                   coupons.c.locked_at.is_(None)).values(locked_at=now))

    def stale_locks(self, locked_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        return [(coupon_id, order_no or "") for coupon_id, order_no in self.session.execute(
            select(coupons.c.id, coupons.c.order_no).where(
                coupons.c.status == CouponStatus.LOCKED.value, coupons.c.locked_at < locked_before,
                coupons.c.id > after_id).order_by(coupons.c.id).limit(limit))]

    def lock_stale(self, coupon_id: int, locked_before: datetime) -> Coupon | None:
        return self.session.execute(_skip_locked(self.session, select(Coupon).where(
            coupons.c.id == coupon_id, coupons.c.status == CouponStatus.LOCKED.value,
            coupons.c.locked_at < locked_before))).scalar_one_or_none()

    def add_expired_lock(self, expired: ExpiredCouponLock) -> None:
        self.session.merge(expired)  # an order that locked a coupon again after its first lock expired: the latest
        self.session.flush()

    def expired_lock(self, order_no: str) -> ExpiredCouponLock | None:
        return self.session.get(ExpiredCouponLock, order_no)

    def remove_expired_lock(self, order_no: str) -> None:
        expired = self.session.get(ExpiredCouponLock, order_no)
        if expired is not None:
            self.session.delete(expired)
            self.session.flush()

    def of_user(self, user_id: int, *, status: str, now: datetime, offset: int,
                limit: int) -> tuple[list[tuple[Coupon, CouponTemplate]], int]:
        found = self._read(_shown_as(user_id, status, now), offset, limit)
        return found, self.count_of_user(user_id, status=status, now=now)

    def count_of_user(self, user_id: int, *, status: str, now: datetime) -> int:
        return self.session.execute(select(func.count()).select_from(coupons_with_templates)
                                    .where(*_shown_as(user_id, status, now))).scalar_one()

    def usable_of_user(self, user_id: int, now: datetime) -> list[tuple[Coupon, CouponTemplate]]:
        return self._read([coupons.c.user_id == user_id, usable_coupon(now)], 0, None)

    def _read(self, where: list[ColumnElement[bool]], offset: int,
              limit: int | None) -> list[tuple[Coupon, CouponTemplate]]:
        rows = self.session.execute(select(Coupon, CouponTemplate).select_from(coupons_with_templates).where(*where)
                                    .order_by(coupons.c.id.desc()).offset(offset).limit(limit)).all()
        return [(row[0], row[1]) for row in rows]


def _shown_as(user_id: int, status: str, now: datetime) -> list[ColumnElement[bool]]:
    """The user's coupons the shopper sees in `status` now ("" = every status)."""
    return [coupons.c.user_id == user_id] + ([shown_coupon_status(now) == status] if status else [])


class SqlWithdrawalRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, withdrawal: Withdrawal) -> None:
        self.session.add(withdrawal)
        self.session.flush()

    def add_decision(self, decision: WithdrawalDecision) -> None:
        self.session.add(decision)

    def decisions(self, withdrawal_id: int) -> list[WithdrawalDecision]:
        return list(self.session.execute(select(WithdrawalDecision).where(
            withdrawal_decisions.c.withdrawal_id == withdrawal_id).order_by(withdrawal_decisions.c.id)).scalars())

    def get(self, withdrawal_id: int, *, lock: bool = False) -> Withdrawal | None:
        return self.session.execute(_locked(select(Withdrawal).where(withdrawals.c.id == withdrawal_id),
                                            lock)).scalar_one_or_none()

    def lock_user(self, user_id: int) -> None:
        serialize_on(self.session, f"withdrawals:{user_id}")

    def page(self, status: str, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
        where = [withdrawals.c.status == status] if status else []
        return counted_page(self.session, Withdrawal, withdrawals, where, [withdrawals.c.id], offset, limit)

    def of_user(self, user_id: int, offset: int, limit: int) -> tuple[list[Withdrawal], int]:
        return counted_page(self.session, Withdrawal, withdrawals, [withdrawals.c.user_id == user_id],
                            [withdrawals.c.id.desc()], offset, limit)

    def paying(self, decided_before: datetime, after_id: int, limit: int) -> list[int]:
        return list(self.session.execute(select(withdrawals.c.id).where(
            withdrawals.c.status == WithdrawalStatus.PAYING.value, withdrawals.c.decided_at < decided_before,
            withdrawals.c.id > after_id).order_by(withdrawals.c.id).limit(limit)).scalars())

    def count_paying_before(self, decided_before: datetime) -> tuple[int, datetime | None]:
        count, oldest = self.session.execute(select(func.count(), func.min(withdrawals.c.decided_at)).where(
            withdrawals.c.status == WithdrawalStatus.PAYING.value, withdrawals.c.decided_at < decided_before)).one()
        return count, oldest

    def lock_paying(self, withdrawal_id: int) -> Withdrawal | None:
        return self.session.execute(_skip_locked(self.session, select(Withdrawal).where(
            withdrawals.c.id == withdrawal_id,
            withdrawals.c.status == WithdrawalStatus.PAYING.value))).scalar_one_or_none()

    def recharge_lots(self, user_id: int) -> list[RechargeLot]:
        standing = select(withdrawals.c.withdrawal_no).where(withdrawals.c.user_id == user_id, withdrawals.c.status.not_in(
            (WithdrawalStatus.REJECTED.value, WithdrawalStatus.FAILED.value)))
        drawn = (select(withdrawal_draws.c.recharge_no,
                        integer_sum(withdrawal_draws.c.principal_fen).label("principal"),
                        integer_sum(withdrawal_draws.c.bonus_fen).label("bonus"))
                 .where(withdrawal_draws.c.withdrawal_no.in_(standing))
                 .group_by(withdrawal_draws.c.recharge_no).subquery())
        rows = self.session.execute(
            select(recharges.c.recharge_no, recharges.c.amount_fen, recharges.c.bonus_fen,
                   func.coalesce(drawn.c.principal, 0).label("drawn"), func.coalesce(drawn.c.bonus, 0).label("forfeited"))
            .outerjoin(drawn, drawn.c.recharge_no == recharges.c.recharge_no)
            .where(recharges.c.user_id == user_id, recharges.c.status == RechargeStatus.PAID.value,
                   recharges.c.amount_fen > func.coalesce(drawn.c.principal, 0))
            .order_by(recharges.c.paid_at.desc(), recharges.c.id.desc())).all()
        return [RechargeLot(row.recharge_no, row.amount_fen, row.bonus_fen, row.drawn, row.forfeited)
                for row in rows]

    def add_draws(self, withdrawal_no: str, draws: list[PrincipalDraw]) -> None:
        if draws:
            self.session.execute(withdrawal_draws.insert(), [
                {"withdrawal_no": withdrawal_no, "recharge_no": draw.recharge_no, "principal_fen": draw.principal_fen,
                 "bonus_fen": draw.bonus_fen} for draw in draws])

    def requested_since(self, user_id: int, since: datetime) -> int:
        # what was given back (rejected, or a transfer that failed) does not count against the day's limit
        return self.session.execute(select(integer_sum(withdrawals.c.amount_fen)).where(
            withdrawals.c.user_id == user_id, withdrawals.c.created_at >= since,
            withdrawals.c.status.not_in((WithdrawalStatus.REJECTED.value, WithdrawalStatus.FAILED.value)))
        ).scalar_one()

    def count_pending_review(self, user_id: int) -> int:
        # Under ix_withdrawals_user_created: the shopper's own withdrawals, a few rows.
        return self.session.execute(select(func.count()).select_from(withdrawals).where(
            withdrawals.c.user_id == user_id, withdrawals.c.status == WithdrawalStatus.PENDING_REVIEW.value)
        ).scalar_one()


    def kept_for_spent_bonus(self, user_id: int) -> int:
        self.session.flush()  # a withdrawal this transaction has just marked PAID counts, whatever ran before
        return self.session.execute(select(integer_sum(withdrawals.c.deducted_fen)).where(
            withdrawals.c.user_id == user_id, withdrawals.c.status == WithdrawalStatus.PAID.value)).scalar_one()


class SqlRechargeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, recharge: Recharge) -> None:
        self.session.add(recharge)
        self.session.flush()

    def by_no(self, recharge_no: str, *, lock: bool = False) -> Recharge | None:
        return self.session.execute(_locked(select(Recharge).where(recharges.c.recharge_no == recharge_no),
                                            lock)).scalar_one_or_none()

    def lock_user(self, user_id: int) -> None:
        serialize_on(self.session, f"recharges:{user_id}")

    def count_pending(self, user_id: int) -> int:
        # Under ix_recharges_user_id: the shopper's own recharges, a few rows.
        return self.session.execute(select(func.count()).select_from(recharges).where(
            recharges.c.user_id == user_id, recharges.c.status == RechargeStatus.PENDING.value)).scalar_one()

    def of_user(self, user_id: int, status: str, offset: int, limit: int) -> tuple[list[Recharge], int]:
        where = [recharges.c.user_id == user_id, *([recharges.c.status == status] if status else [])]
        return counted_page(self.session, Recharge, recharges, where, [recharges.c.id.desc()], offset, limit)

    def pending(self, created_after: datetime, created_before: datetime, after_id: int,
                limit: int) -> list[tuple[int, str]]:
        rows = self.session.execute(select(recharges.c.id, recharges.c.recharge_no).where(
            recharges.c.status == RechargeStatus.PENDING.value, recharges.c.created_at > created_after,
            recharges.c.created_at < created_before, recharges.c.id > after_id)
            .order_by(recharges.c.id).limit(limit)).all()
        return [(row.id, row.recharge_no) for row in rows]

    def count_pending_before(self, created_before: datetime) -> tuple[int, datetime | None]:
        # One aggregate under ix (status, created_at) (migration 0009) over the few PENDING rows: cheap for a job.
        count, oldest = self.session.execute(select(func.count(), func.min(recharges.c.created_at)).where(
            recharges.c.status == RechargeStatus.PENDING.value, recharges.c.created_at < created_before)).one()
        return count, oldest

    def lock_pending(self, recharge_no: str) -> Recharge | None:
        return self.session.execute(_skip_locked(self.session, select(Recharge).where(
            recharges.c.recharge_no == recharge_no,
            recharges.c.status == RechargeStatus.PENDING.value))).scalar_one_or_none()


class SqlMemberLookupRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, lookup: MemberLookup) -> None:
        self.session.add(lookup)

    def by_actor(self, actor_id: int) -> list[MemberLookup]:
        return list(self.session.execute(select(MemberLookup).where(member_lookups.c.actor_id == actor_id)
                                         .order_by(member_lookups.c.id)).scalars())


class SqlMemberUnitOfWork(SqlUnitOfWork, MemberUnitOfWork):
    """The member unit of work on the service database (call start_mappers() first)."""

    job_rounds = job_rounds

    def __enter__(self) -> Self:
        super().__enter__()
        self.members = SqlMemberRepository(self.session)
        self.ledger = SqlLedgerRepository(self.session)
        self.points = SqlPointsRepository(self.session)
        self.coupons = SqlCouponRepository(self.session)
        self.withdrawals = SqlWithdrawalRepository(self.session)
        self.recharges = SqlRechargeRepository(self.session)
        self.lookups = SqlMemberLookupRepository(self.session)
        return self
