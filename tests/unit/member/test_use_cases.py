"""Member use cases on the in-memory unit of work: membership, balance, withdrawals, coupons, points, recharges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.member import service
from services.member.domain import PLATFORM, Account, Member, OrderLine, Withdrawal, level_for, transfer
from services.member.uow import MemberUnitOfWork
from tests.fakes import FakeCategories, FakePhones, SimulatedPayment, SimulatedPayout
from tests.fixtures.member_orders import award_points_for_order, reverse_points_for_refund
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE, BOB = 1, 2


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


def fund(uow: FakeMemberUnitOfWork, user_id: int, amount_fen: int, key: str = "seed") -> None:
    uow.ledger.post(transfer(f"{key}:{user_id}", "recharge", key, amount=amount_fen,
                             source=(PLATFORM, Account.CLEARING), target=(user_id, Account.AVAILABLE)), NOW)


def balances(uow: FakeMemberUnitOfWork, user_id: int) -> tuple[int, int]:
    return uow.ledger.balance(user_id, Account.AVAILABLE), uow.ledger.balance(user_id, Account.PENDING)


# membership

def test_signing_up_twice_keeps_the_first_membership(uow: FakeMemberUnitOfWork) -> None:
    first, created = service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    again, created_again = service.sign_up(uow, user_id=ALICE, channel="campaign", invite_code=None, now=NOW)

    assert (created, created_again) == (True, False)
    assert (again.member.member_no, again.member.channel) == (first.member.member_no, "self")


def test_a_shopper_without_a_bound_phone_is_refused_422_phone_required_and_does_not_join(
        uow: FakeMemberUnitOfWork) -> None:
    phones = FakePhones(wechat_only=[ALICE])

    with pytest.raises(DomainError) as raised:
        service.sign_up_by_phone(uow, phones, user_id=ALICE, channel="self", invite_code=None, now=NOW)

    assert (raised.value.code, raised.value.kind, raised.value.details, uow.members.get(ALICE), phones.asked) == (
        "PHONE_REQUIRED", ErrorKind.BUSINESS_RULE, {"phone": "required"}, None, [ALICE])


def test_a_shopper_with_a_bound_phone_joins(uow: FakeMemberUnitOfWork) -> None:
    joined, created = service.sign_up_by_phone(uow, FakePhones(wechat_only=[BOB]), user_id=ALICE, channel="self",
                                               invite_code=None, now=NOW)

    assert (created, joined.member.channel, uow.members.get(ALICE) is not None) == (True, "self", True)


def test_a_member_without_a_bound_phone_who_signs_up_again_gets_their_membership_back_unasked(
        uow: FakeMemberUnitOfWork) -> None:
    first, _ = service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)  # before the phone rule
    phones = FakePhones(wechat_only=[ALICE])

    again, created = service.sign_up_by_phone(uow, phones, user_id=ALICE, channel="self", invite_code=None, now=NOW)

    assert (created, again.member.member_no, phones.asked) == (False, first.member.member_no, [])


def test_a_shopper_cannot_declare_they_joined_by_purchase(uow: FakeMemberUnitOfWork) -> None:
    # "purchase" is what the shop records when a shopper's paid spend reaches AUTO_JOIN_SPEND_FEN (apply_order_paid):
    # declared at signup it would be untrue, and falsify the join channels M1 records.
    with pytest.raises(InvalidInput) as raised:
        service.sign_up(uow, user_id=ALICE, channel="purchase", invite_code=None, now=NOW)

    assert (raised.value.code, list(raised.value.details), uow.members.get(ALICE)) == ("CHANNEL_INVALID", ["channel"],
                                                                                        None)


def test_a_shopper_may_declare_self_invitation_or_campaign(uow: FakeMemberUnitOfWork) -> None:
    inviter, _ = service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    invited, _ = service.sign_up(uow, user_id=BOB, channel="invitation", invite_code=inviter.member.referral_code,
                                 now=NOW)
    campaign, _ = service.sign_up(uow, user_id=3, channel="campaign", invite_code=None, now=NOW)

    assert [m.member.channel for m in (inviter, invited, campaign)] == ["self", "invitation", "campaign"]


def test_joining_by_invitation_needs_the_invite_code(uow: FakeMemberUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.sign_up(uow, user_id=ALICE, channel="invitation", invite_code=None, now=NOW)

    assert raised.value.code == "INVITE_CODE_REQUIRED"


def test_an_invite_code_records_the_inviter_once_and_an_unknown_code_is_refused(uow: FakeMemberUnitOfWork) -> None:
    alice, _ = service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    code = alice.member.referral_code or ""
    with pytest.raises(DomainError) as unknown:
        service.sign_up(uow, user_id=BOB, channel="invitation", invite_code="ZZZZ2345", now=NOW)
    bob, created = service.sign_up(uow, user_id=BOB, channel="invitation", invite_code=code.lower(), now=NOW)
    again, _ = service.sign_up(uow, user_id=BOB, channel="campaign", invite_code="ZZZZ2345", now=NOW)
    with pytest.raises(DomainError) as own:
        Member(user_id=3).join("invitation", "SELF2345", NOW, inviter=Member(user_id=3, joined_at=NOW))

    assert len(code) == 8 and code != bob.member.referral_code
    assert (unknown.value.code, own.value.code) == ("INVITE_CODE_UNKNOWN", "INVITE_CODE_OWN")
    assert (created, bob.member.invited_by, bob.member.invite_code, again.member.invited_by) == (
        True, ALICE, code, ALICE)


def test_member_joined_names_the_inviter_of_an_invited_member_and_no_one_otherwise(
        uow: FakeMemberUnitOfWork) -> None:
    alice, _ = service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    service.sign_up(uow, user_id=BOB, channel="invitation", invite_code=alice.member.referral_code, now=NOW)

    assert [(e.payload.user_id, e.payload.channel, e.payload.invited_by_user_id) for e in uow.published
            if e.event_type == "member-joined"] == [(ALICE, "self", 0), (BOB, "invitation", ALICE)]


def test_a_shopper_who_never_joined_has_no_member_account(uow: FakeMemberUnitOfWork) -> None:
    with pytest.raises(NotFound) as raised:
        service.get_member(uow, user_id=ALICE, now=NOW)

    assert raised.value.code == "MEMBER_NOT_FOUND"


@pytest.mark.parametrize(("spend", "level"), [(0, "normal"), (99_999, "normal"), (100_000, "silver"),
                                              (499_999, "silver"), (500_000, "gold"), (2_000_000, "diamond")])
def test_the_level_follows_total_paid_spend(spend: int, level: str) -> None:
    assert level_for(spend).code == level


def test_the_member_account_shows_balance_pending_points_and_coupons(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    fund(uow, ALICE, 10_000)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=3_000, idempotency_key="k1", now=NOW)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=12_345, now=NOW)

    summary = service.get_member(uow, user_id=ALICE, now=NOW)

    assert (summary.balance_fen, summary.pending_fen, summary.points, summary.member.total_spend_fen,
            summary.coupons_available) == (7_000, 3_000, 123, 12_345, 0)


# balance payment

def test_paying_an_order_with_balance_twice_charges_once(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)

    first = service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)
    again = service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)

    assert (first, again, uow.ledger.balance(PLATFORM, Account.SALES)) == (7_500, 7_500, 2_500)


def test_paying_the_same_order_again_with_another_amount_is_a_conflict(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)

    with pytest.raises(Conflict) as raised:
        service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_600, now=NOW)

    assert (raised.value.code, balances(uow, ALICE), uow.ledger.balance(PLATFORM, Account.SALES)) == (
        "ALREADY_APPLIED_DIFFERENTLY", (7_500, 0), 2_500)


def test_another_wallets_payment_of_the_same_order_is_a_conflict_not_a_replay(uow: FakeMemberUnitOfWork) -> None:
    # The replay check compared amounts only: Alice's payment of an order Bob's wallet had paid answered "paid"
    # without charging her.
    fund(uow, ALICE, 10_000)
    fund(uow, BOB, 10_000, key="seed-bob")
    service.pay_with_balance(uow, user_id=BOB, order_no="O1", amount_fen=2_500, now=NOW)

    with pytest.raises(Conflict) as raised:
        service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)
    assert (raised.value.code, uow.ledger.balance(ALICE, Account.AVAILABLE), uow.ledger.balance(BOB, Account.AVAILABLE),
            uow.ledger.balance(PLATFORM, Account.SALES)) == ("ALREADY_APPLIED_DIFFERENTLY", 10_000, 7_500, 2_500)


def test_paying_more_than_the_balance_is_refused_and_moves_nothing(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 1_000)

    with pytest.raises(DomainError) as raised:
        service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=1_001, now=NOW)

    assert (raised.value.code, balances(uow, ALICE)) == ("INSUFFICIENT_BALANCE", (1_000, 0))


def test_voiding_a_paid_order_answers_what_its_wallet_paid_bonus_included_and_refunds_left_out(
        uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    uow.ledger.post(transfer("promo:1", "recharge_bonus", "R1", amount=500, source=(PLATFORM, Account.PROMOTIONS),
                             target=(ALICE, Account.BONUS)), NOW)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)  # 500 bonus + 2,000
    service.refund_to_balance(uow, user_id=ALICE, refund_no="LATEWO1", order_no="O1", amount_fen=2_500, now=NOW)

    assert service.void_balance_payment(uow, order_no="O1") == service.BalancePayment(user_id=ALICE, amount_fen=2_500)


def test_a_payment_of_a_voided_order_is_refused_and_charges_nothing(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)

    voided = service.void_balance_payment(uow, order_no="O1")
    with pytest.raises(DomainError) as raised:
        service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)

    assert (voided, raised.value.code, raised.value.kind) == (None, "BALANCE_PAYMENT_VOID", ErrorKind.BUSINESS_RULE)
    assert (balances(uow, ALICE), uow.ledger.balance(PLATFORM, Account.SALES)) == ((10_000, 0), 0)


def test_voiding_again_gives_the_same_answer(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)
    charged = service.BalancePayment(user_id=ALICE, amount_fen=2_500)

    answers = [service.void_balance_payment(uow, order_no=order_no) for order_no in ("O1", "O2", "O1", "O2")]

    assert answers == [charged, None, charged, None]


def test_a_paid_order_replays_its_payment_after_a_void(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)
    service.void_balance_payment(uow, order_no="O1")

    again = service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_500, now=NOW)

    assert (again, uow.ledger.balance(PLATFORM, Account.SALES)) == (7_500, 2_500)


def test_a_refused_payment_does_not_keep_its_order_from_being_voided(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 1_000)
    with pytest.raises(DomainError) as raised:
        service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=1_001, now=NOW)

    assert (raised.value.code, balances(uow, ALICE)) == ("INSUFFICIENT_BALANCE", (1_000, 0))
    assert service.void_balance_payment(uow, order_no="O1") is None
    assert (balances(uow, ALICE), uow.ledger.balance(PLATFORM, Account.SALES)) == ((1_000, 0), 0)


def test_voiding_an_order_number_that_is_no_order_number_is_invalid(uow: FakeMemberUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.void_balance_payment(uow, order_no="")

    assert raised.value.code == "ORDER_NO_INVALID"


def test_a_refund_to_balance_is_credited_once_per_refund_no(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 1_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=1_000, now=NOW)
    service.refund_to_balance(uow, user_id=ALICE, refund_no="RF1", order_no="O1", amount_fen=800, now=NOW)
    service.refund_to_balance(uow, user_id=ALICE, refund_no="RF1", order_no="O1", amount_fen=800, now=NOW)

    assert balances(uow, ALICE) == (800, 0)


def test_refunds_to_balance_never_return_more_than_the_wallet_paid_for_the_order(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=3_000, now=NOW)
    service.refund_to_balance(uow, user_id=ALICE, refund_no="RF1", order_no="O1", amount_fen=2_000, now=NOW)
    with pytest.raises(DomainError) as too_much:
        service.refund_to_balance(uow, user_id=ALICE, refund_no="RF2", order_no="O1", amount_fen=1_001, now=NOW)
    service.refund_to_balance(uow, user_id=ALICE, refund_no="RF3", order_no="O1", amount_fen=1_000, now=NOW)
    service.refund_to_balance(uow, user_id=ALICE, refund_no="RF1", order_no="O1", amount_fen=2_000, now=NOW)  # replay

    assert (too_much.value.code, too_much.value.details) == ("REFUND_EXCEEDS_PAYMENT", {"refundable_fen": 1_000})
    assert balances(uow, ALICE) == (10_000, 0)


@pytest.mark.parametrize(("user_id", "order_no"), [(BOB, "O1"), (ALICE, "O2")])
def test_a_refund_to_balance_of_a_payment_the_user_did_not_make_is_refused(
        uow: FakeMemberUnitOfWork, user_id: int, order_no: str) -> None:
    fund(uow, ALICE, 10_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=3_000, now=NOW)
    with pytest.raises(NotFound) as refused:
        service.refund_to_balance(uow, user_id=user_id, refund_no="RF1", order_no=order_no, amount_fen=100, now=NOW)

    assert refused.value.code == "BALANCE_PAYMENT_NOT_FOUND"
    assert (balances(uow, ALICE), balances(uow, BOB)) == ((7_000, 0), (0, 0))


# withdrawals

def test_a_withdrawal_moves_the_amount_from_available_to_pending_at_once(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)

    withdrawal = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)

    assert (withdrawal.status, balances(uow, ALICE)) == ("PENDING_REVIEW", (4_000, 6_000))


def test_the_same_idempotency_key_gives_the_same_withdrawal(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)

    ids = {service.request_withdrawal(uow, user_id=ALICE, amount_fen=1_000, idempotency_key="k1", now=NOW).id
           for _ in range(3)}

    assert (ids, balances(uow, ALICE)) == ({1}, (9_000, 1_000))


def test_a_second_withdrawal_beyond_the_available_balance_is_refused(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)

    with pytest.raises(DomainError) as raised:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k2", now=NOW)

    assert (raised.value.code, balances(uow, ALICE)) == ("INSUFFICIENT_BALANCE", (4_000, 6_000))


def wallet_payment_refused(uow: Callable[[], MemberUnitOfWork]) -> DomainError:
    """Alice recharges 500 yuan (+50 of bonus) and pays a 600-yuan order from her wallet: the refusal. (Also run on
    PostgreSQL, tests/integration/member.)"""
    recharge, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=50_000,
                                          channel="wechat", idempotency_key="r", now=NOW)
    service.credit_recharge(uow(), recharge_no=recharge.recharge_no, paid_fen=50_000, channel_txn_id="T1",
                            channel="wechat", now=NOW)
    with pytest.raises(DomainError) as refused:
        service.pay_with_balance(uow(), user_id=ALICE, order_no="O1", amount_fen=60_000, now=NOW)
    return refused.value


def test_a_wallet_payment_refused_says_what_the_order_needs_and_the_wallet_has_bonus_included(
        uow: FakeMemberUnitOfWork) -> None:
    refused = wallet_payment_refused(lambda: uow)

    assert (refused.code, refused.message, refused.details) == (
        "INSUFFICIENT_BALANCE", "not enough balance: 60000 fen needed, 55000 fen available",
        {"account": "available", "needed_fen": 60_000, "available_fen": 55_000})
    assert (uow.ledger.balance(ALICE, Account.AVAILABLE), uow.ledger.balance(ALICE, Account.BONUS)) == (50_000, 5_000)


def test_holding_more_points_than_held_says_how_many_are_needed_and_available(uow: FakeMemberUnitOfWork) -> None:
    uow.ledger.post(transfer("earned", "points_earned", "O0", amount=77, source=(PLATFORM, Account.POINTS_ISSUED),
                             target=(ALICE, Account.POINTS)), NOW)

    with pytest.raises(DomainError) as refused:
        service.lock_points(uow, user_id=ALICE, order_no="2026112912000000000000abcd1234", points=100,
                            payable_fen=1_000, now=NOW)

    assert (refused.value.code, refused.value.message, refused.value.details) == (
        "INSUFFICIENT_POINTS", "not enough points: 100 points needed, 77 points available",
        {"account": "points", "needed_points": 100, "available_points": 77})


def withdrawal_refused_then_another(uow: Callable[[], MemberUnitOfWork]) -> tuple[str, list[Withdrawal], int]:
    """Alice recharges 500 yuan (+50 of bonus), asks to withdraw 600 (refused: more than she has), then all 500: the
    refusal's code, her withdrawals, and the bonus left. (Also run on PostgreSQL, tests/integration/member.)"""
    recharge, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=50_000,
                                          channel="wechat", idempotency_key="r", now=NOW)
    service.credit_recharge(uow(), recharge_no=recharge.recharge_no, paid_fen=50_000, channel_txn_id="T1",
                            channel="wechat", now=NOW)
    with pytest.raises(DomainError) as refused:
        service.request_withdrawal(uow(), user_id=ALICE, amount_fen=60_000, idempotency_key="w1", now=NOW)
    service.request_withdrawal(uow(), user_id=ALICE, amount_fen=50_000, idempotency_key="w2", now=NOW)
    withdrawals, _ = service.my_withdrawals(uow(), user_id=ALICE, offset=0, limit=10)
    with uow() as tx:
        return refused.value.code, withdrawals, tx.ledger.balance(ALICE, Account.BONUS)


def test_a_withdrawal_refused_for_the_balance_leaves_no_withdrawal_and_no_draw_on_a_recharge_behind(
        uow: FakeMemberUnitOfWork) -> None:
    refused, withdrawals, bonus_left = withdrawal_refused_then_another(lambda: uow)

    # as in the database: the refused one's row and its draw on the recharge were rolled back with it, so the one
    # asked after it draws on the whole recharge and forfeits all its bonus
    assert (refused, bonus_left) == ("INSUFFICIENT_BALANCE", 0)
    assert [(w.amount_fen, w.bonus_forfeited_fen, w.status) for w in withdrawals] == [
        (50_000, 5_000, "PENDING_REVIEW")]


def test_withdrawals_below_the_minimum_or_over_the_daily_maximum_are_refused(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 1_000_000)
    first = service.request_withdrawal(uow, user_id=ALICE, amount_fen=150_000, idempotency_key="k1a", now=NOW)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=150_000, idempotency_key="k1b", now=NOW)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=100_000, idempotency_key="k1c", now=NOW)
    service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=first.id or 0, approve=True, note="",
                              decided_by=9, now=NOW)  # paid: still counted in its day, no longer under review

    with pytest.raises(InvalidInput) as too_small:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=99, idempotency_key="k2", now=NOW)
    with pytest.raises(DomainError) as too_much:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=100_001, idempotency_key="k3", now=NOW)
    next_day = service.request_withdrawal(uow, user_id=ALICE, amount_fen=100_001, idempotency_key="k4",
                                          now=NOW + timedelta(days=1))

    assert (too_small.value.code, too_much.value.code, next_day.status) == (
        "WITHDRAWAL_TOO_SMALL", "WITHDRAWAL_DAILY_LIMIT", "PENDING_REVIEW")


def test_a_single_withdrawal_over_a_days_limit_is_refused_as_too_large(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 600_000)

    with pytest.raises(DomainError) as too_large:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=500_001, idempotency_key="k1", now=NOW)
    at_most = service.request_withdrawal(uow, user_id=ALICE, amount_fen=500_000, idempotency_key="k2", now=NOW)

    assert (too_large.value.code, too_large.value.kind, too_large.value.details) == (
        "WITHDRAWAL_TOO_LARGE", ErrorKind.BUSINESS_RULE, {"max_fen": 500_000})
    assert (at_most.amount_fen, at_most.status) == (500_000, "PENDING_REVIEW")
    assert balances(uow, ALICE) == (100_000, 500_000)


def test_a_shopper_reads_their_own_withdrawal_and_never_anyone_elses(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    asked = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)

    mine = service.my_withdrawal(uow, user_id=ALICE, withdrawal_id=asked.id or 0)
    with pytest.raises(NotFound) as not_bobs:
        service.my_withdrawal(uow, user_id=BOB, withdrawal_id=asked.id or 0)

    assert (mine.withdrawal_no, not_bobs.value.code) == (asked.withdrawal_no, "WITHDRAWAL_NOT_FOUND")


def test_an_approved_withdrawal_is_paid_out_once_and_leaves_the_wallet(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    payout = SimulatedPayout()
    withdrawal = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)

    for _ in range(2):
        decided = service.decide_withdrawal(uow, payout, withdrawal_id=withdrawal.id or 0, approve=True, note="ok",
                                            decided_by=9, now=NOW)

    assert (decided.status, balances(uow, ALICE), payout.paid) == ("PAID", (4_000, 0), {withdrawal.withdrawal_no: 6_000})
    assert uow.ledger.balance(PLATFORM, Account.CLEARING) == -10_000 + 6_000


def test_a_rejected_withdrawal_returns_the_amount_to_available(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    withdrawal = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)

    service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=withdrawal.id or 0, approve=False, note="no",
                              decided_by=9, now=NOW)

    with pytest.raises(Conflict):
        service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=withdrawal.id or 0, approve=True, note="",
                                  decided_by=9, now=NOW)
    assert balances(uow, ALICE) == (10_000, 0)


def test_a_shopper_with_three_withdrawals_awaiting_review_is_refused_a_fourth_which_holds_nothing(
        uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    for key in ("k1", "k2", "k3"):
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=100, idempotency_key=key, now=NOW)

    with pytest.raises(DomainError) as refused:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=100, idempotency_key="k4", now=NOW)

    assert (refused.value.code, refused.value.kind, refused.value.details) == (
        "TOO_MANY_PENDING_WITHDRAWALS", ErrorKind.BUSINESS_RULE, {"pending_withdrawals": 3, "limit": 3})
    assert (len(uow.withdrawals.withdrawals), balances(uow, ALICE)) == (3, (9_700, 300))


def test_a_decided_withdrawal_frees_its_place_under_review_and_a_replay_is_answered_at_the_limit(
        uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 10_000)
    first = service.request_withdrawal(uow, user_id=ALICE, amount_fen=100, idempotency_key="k1", now=NOW)
    for key in ("k2", "k3"):
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=100, idempotency_key=key, now=NOW)

    replayed = service.request_withdrawal(uow, user_id=ALICE, amount_fen=100, idempotency_key="k1", now=NOW)
    service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=first.id or 0, approve=False, note="no",
                              decided_by=9, now=NOW)
    fourth = service.request_withdrawal(uow, user_id=ALICE, amount_fen=200, idempotency_key="k4", now=NOW)

    assert (replayed.id, fourth.status) == (first.id, "PENDING_REVIEW")
    assert balances(uow, ALICE) == (9_600, 400)


# The withdrawal day is the shop's: Asia/Shanghai (UTC+8), 16:00 UTC to 16:00 UTC.

def test_two_withdrawals_on_one_shanghai_day_share_its_limit(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 1_000_000)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=500_000, idempotency_key="k1",
                               now=datetime(2026, 12, 7, 23, 59, tzinfo=UTC))  # 07:59 on 12-08 in Shanghai

    with pytest.raises(DomainError) as refused:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=100, idempotency_key="k2",
                                   now=datetime(2026, 12, 8, 0, 1, tzinfo=UTC))  # 08:01 on 12-08 in Shanghai

    assert (refused.value.code, refused.value.details) == ("WITHDRAWAL_DAILY_LIMIT", {"remaining_fen": 0})
    assert balances(uow, ALICE) == (500_000, 500_000)


def test_the_next_shanghai_day_starts_at_1600_utc_with_its_whole_limit(uow: FakeMemberUnitOfWork) -> None:
    fund(uow, ALICE, 1_000_000)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=500_000, idempotency_key="k1",
                               now=datetime(2026, 12, 8, 15, 59, tzinfo=UTC))  # 23:59 on 12-08 in Shanghai

    next_day = service.request_withdrawal(uow, user_id=ALICE, amount_fen=500_000, idempotency_key="k2",
                                          now=datetime(2026, 12, 8, 16, 0, tzinfo=UTC))  # 00:00 on 12-09

    assert (next_day.status, balances(uow, ALICE)) == ("PENDING_REVIEW", (0, 1_000_000))


# coupons

def template(uow: FakeMemberUnitOfWork, **overrides: object) -> int:
    fields: dict = {"name": "10% off", "kind": "percent", "amount_fen": 0, "percent_off": 10, "threshold_fen": 0,
                    "cap_fen": 10_000, "total": 10, "per_user_limit": 1, "valid_from": NOW - timedelta(days=1),
                    "valid_to": NOW + timedelta(days=7), "category_ids": [], "needs_approval": False, "now": NOW}
    fields.update(overrides)
    return service.create_coupon_template(uow, FakeCategories(), **fields).id or 0


def test_a_percent_discount_is_rounded_down_to_the_fen_and_capped(uow: FakeMemberUnitOfWork) -> None:
    under_its_cap = template(uow, percent_off=15)
    capped = template(uow, percent_off=15, cap_fen=1_000)
    for template_id in (under_its_cap, capped):
        service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)

    quotes = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(1, 9_999)], now=NOW)

    assert sorted(q.discount_fen for q in quotes) == [1_000, 1_499]  # 9,999 x 15% = 1,499.85


def test_a_fixed_coupon_needs_its_threshold_on_its_categories(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, kind="fixed", amount_fen=500, percent_off=0, cap_fen=0, threshold_fen=5_000,
                           category_ids=[7])
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)

    short = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(7, 4_999), OrderLine(8, 9_000)], now=NOW)
    enough = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(7, 5_000)], coupon_id=coupon.id or 0, now=NOW)

    assert [(q.discount_fen, q.reason) for q in short + enough] == [(0, "COUPON_THRESHOLD_NOT_MET"), (500, "")]


# The catalogue of these tests: 1 数码 > 2 手机 > 9 折叠屏, and 3 家居 (a line's category_path, root first).
PHONE, FOLDABLE, SOFA = (1, 2), (1, 2, 9), (3,)


def test_a_template_for_a_parent_category_applies_to_lines_filed_under_its_children_at_any_depth(
        uow: FakeMemberUnitOfWork) -> None:
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template(uow, category_ids=[1]), now=NOW)
    lines = [OrderLine(2, 6_000, PHONE), OrderLine(9, 4_000, FOLDABLE), OrderLine(3, 50_000, SOFA)]

    [quote] = service.quote_coupons(uow, user_id=ALICE, lines=lines, coupon_id=coupon.id or 0, now=NOW)

    assert (quote.discount_fen, quote.reason) == (1_000, "")  # 10% of the phones' 10,000, nothing of the sofa


def test_a_template_for_a_parent_category_does_not_apply_to_another_branch_nor_a_child_one_to_its_parent(
        uow: FakeMemberUnitOfWork) -> None:
    for category_ids in ([1], [2]):
        service.claim_coupon(uow, user_id=ALICE, template_id=template(uow, category_ids=category_ids), now=NOW)

    quotes = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(3, 9_000, SOFA), OrderLine(1, 8_000, (1,))],
                                   now=NOW)

    # 数码's coupon takes 10% of the line filed under 数码 itself only; 手机's applies to neither line
    assert sorted((q.discount_fen, q.reason) for q in quotes) == [(0, "COUPON_NOT_APPLICABLE"), (800, "")]


def test_a_parent_category_templates_threshold_counts_only_the_lines_below_it(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, kind="fixed", amount_fen=1_000, percent_off=0, cap_fen=0, threshold_fen=10_000,
                           category_ids=[1])
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    short = [OrderLine(2, 6_000, PHONE), OrderLine(3, 5_000, SOFA)]   # 11,000 in all, 6,000 of it 数码
    enough = [OrderLine(2, 6_000, PHONE), OrderLine(9, 4_000, FOLDABLE), OrderLine(3, 5_000, SOFA)]

    quotes = [service.quote_coupons(uow, user_id=ALICE, lines=lines, coupon_id=coupon.id or 0, now=NOW)[0]
              for lines in (short, enough)]
    locked = service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0, lines=enough, now=NOW)

    assert [(q.discount_fen, q.reason) for q in quotes] == [(0, "COUPON_THRESHOLD_NOT_MET"), (1_000, "")]
    assert locked == service.CouponLock(1_000, (1,))


def test_a_line_without_a_path_is_matched_on_its_own_category_as_before(uow: FakeMemberUnitOfWork) -> None:
    # An order service of the previous release sends no path: its lines still match templates of their category.
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template(uow, category_ids=[2]), now=NOW)

    [quote] = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(2, 6_000), OrderLine(3, 5_000)],
                                    coupon_id=coupon.id or 0, now=NOW)

    assert (quote.discount_fen, quote.reason) == (600, "")


def test_an_expired_coupon_is_listed_as_expired_refused_at_preview_and_not_offered(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, valid_to=NOW + timedelta(hours=1))
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    later = NOW + timedelta(hours=2)

    views, _ = service.list_coupons(uow, user_id=ALICE, offset=0, limit=20, now=later)
    quotes = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(1, 10_000)], coupon_id=coupon.id or 0,
                                   now=later)
    offered = service.quote_coupons(uow, user_id=ALICE, lines=[OrderLine(1, 10_000)], now=later)

    assert ([v.status for v in views], [q.reason for q in quotes], offered) == (["expired"], ["COUPON_EXPIRED"], [])


def test_claims_stop_at_the_total_and_at_the_per_user_limit(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, total=2, per_user_limit=1)
    service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)

    with pytest.raises(DomainError) as again:
        service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    service.claim_coupon(uow, user_id=BOB, template_id=template_id, now=NOW)
    with pytest.raises(DomainError) as sold_out:
        service.claim_coupon(uow, user_id=3, template_id=template_id, now=NOW)

    assert (again.value.code, sold_out.value.code) == ("COUPON_LIMIT_REACHED", "COUPON_SOLD_OUT")


def test_a_retried_claim_with_its_key_answers_the_first_coupon_and_issues_no_second(
        uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, total=5, per_user_limit=3)

    first, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, idempotency_key="tap-1", now=NOW)
    retried, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, idempotency_key="tap-1", now=NOW)

    assert (retried.id, first.id) == (1, 1)
    assert ([v.coupon.id for v in service.list_coupons(uow, user_id=ALICE, offset=0, limit=20, now=NOW)[0]],
            service.coupon_template(uow, template_id=template_id).issued) == ([1], 1)


def test_a_retried_claim_at_the_per_user_limit_answers_the_first_coupon_not_limit_reached(
        uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, per_user_limit=1)
    first, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, idempotency_key="tap-1", now=NOW)

    retried, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, idempotency_key="tap-1", now=NOW)

    assert retried.id == first.id == 1


def test_a_claim_key_reused_for_another_template_is_a_conflict_and_issues_nothing(uow: FakeMemberUnitOfWork) -> None:
    one, other = template(uow), template(uow)
    service.claim_coupon(uow, user_id=ALICE, template_id=one, idempotency_key="tap-1", now=NOW)

    with pytest.raises(Conflict) as raised:
        service.claim_coupon(uow, user_id=ALICE, template_id=other, idempotency_key="tap-1", now=NOW)

    assert (raised.value.code, service.coupon_template(uow, template_id=other).issued) == (
        "IDEMPOTENCY_KEY_REUSED", 0)


def test_claims_without_a_key_each_issue_a_coupon(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, total=5, per_user_limit=2)

    ids = [service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)[0].id for _ in range(2)]

    assert (ids, service.coupon_template(uow, template_id=template_id).issued) == ([1, 2], 2)


def test_one_claim_key_used_by_two_shoppers_gives_each_their_own_coupon(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, total=5)

    alices, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, idempotency_key="tap-1", now=NOW)
    bobs, _ = service.claim_coupon(uow, user_id=BOB, template_id=template_id, idempotency_key="tap-1", now=NOW)

    assert [(c.id, c.user_id) for c in (alices, bobs)] == [(1, ALICE), (2, BOB)]


def test_locking_a_coupon_is_idempotent_by_order_and_release_makes_it_available(uow: FakeMemberUnitOfWork) -> None:
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template(uow), now=NOW)
    lines = [OrderLine(1, 10_000)]

    first = service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0, lines=lines, now=NOW)
    again = service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0, lines=lines, now=NOW)
    with pytest.raises(Conflict):
        service.lock_coupon(uow, user_id=ALICE, order_no="O2", coupon_id=coupon.id or 0, lines=lines, now=NOW)
    service.release_coupon(uow, order_no="O1")

    assert (first, again, coupon.status, coupon.order_no) == (service.CouponLock(1_000), service.CouponLock(1_000), "available", None)


def test_locking_a_category_coupon_answers_its_categories_first_time_and_on_replay(uow: FakeMemberUnitOfWork) -> None:
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template(uow, category_ids=[8, 5]), now=NOW)
    lines = [OrderLine(5, 10_000), OrderLine(3, 2_000)]

    first = service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0, lines=lines, now=NOW)
    again = service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0, lines=lines, now=NOW)

    assert first == again == service.CouponLock(1_000, (5, 8))  # 10% of the category-5 line only


def test_another_users_coupon_is_not_found(uow: FakeMemberUnitOfWork) -> None:
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template(uow), now=NOW)
    service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0, lines=[OrderLine(1, 100)], now=NOW)

    with pytest.raises(NotFound):
        service.lock_coupon(uow, user_id=BOB, order_no="O2", coupon_id=coupon.id or 0, lines=[], now=NOW)
    with pytest.raises(NotFound):
        service.quote_coupons(uow, user_id=BOB, lines=[], coupon_id=coupon.id or 0, now=NOW)
    with pytest.raises(NotFound):
        service.release_coupon(uow, order_no="O1", user_id=BOB)
    assert coupon.status == "locked"


# points

def test_order_paid_awards_points_by_level_once(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=500_000, now=NOW)  # normal; gold after

    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=10_050, now=NOW)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=10_050, now=NOW)

    assert uow.ledger.balance(ALICE, Account.POINTS) == 5_000 * 100 // 100 + 100 * 150 // 100
    assert [e.payload.delta for e in uow.published if e.event_type == "points-changed"] == [5_000, 150]
    assert [(e.event_type, e.payload.level) for e in uow.published if e.event_type == "member-joined"] == [
        ("member-joined", "normal")]


def test_a_shopper_joins_by_purchase_when_paid_spend_reaches_the_threshold(uow: FakeMemberUnitOfWork) -> None:
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_999, now=NOW)
    before = uow.members.get(ALICE)
    assert before is not None and not before.is_member

    award_points_for_order(uow, order_no="O2", user_id=ALICE, paid_fen=1, now=NOW)

    summary = service.get_member(uow, user_id=ALICE, now=NOW)
    assert (summary.member.channel, summary.member.total_spend_fen, summary.points) == ("purchase", 10_000, 0)


def test_a_refund_takes_back_spend_and_points_in_proportion(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=20_000, now=NOW)

    reverse_points_for_refund(uow, order_no="O1", refund_no="RF1", amount_fen=5_000, now=NOW)
    reverse_points_for_refund(uow, order_no="O1", refund_no="RF1", amount_fen=5_000, now=NOW)

    summary = service.get_member(uow, user_id=ALICE, now=NOW)
    assert (summary.points, summary.member.total_spend_fen) == (150, 15_000)


def test_locked_points_come_back_on_release_and_are_spent_when_the_order_is_paid(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=120_000, now=NOW)  # 1,200 points; silver

    locked = service.lock_points(uow, user_id=ALICE, order_no="O1", points=300, payable_fen=1_000, now=NOW)
    service.lock_points(uow, user_id=ALICE, order_no="O1", points=300, payable_fen=1_000, now=NOW)
    released = service.release_points(uow, order_no="O1", now=NOW)
    service.lock_points(uow, user_id=ALICE, order_no="O2", points=200, payable_fen=1_000, now=NOW)
    award_points_for_order(uow, order_no="O2", user_id=ALICE, paid_fen=800, now=NOW)

    assert (locked.discount_fen, released) == (300, 300)
    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (
        1_200 - 200 + 8 * 120 // 100, 0)


def test_points_pay_at_most_half_of_an_order(uow: FakeMemberUnitOfWork) -> None:
    quote = service.quote_points(uow, user_id=ALICE, points=0, payable_fen=999)

    with pytest.raises(DomainError) as raised:
        service.lock_points(uow, user_id=ALICE, order_no="O1", points=500, payable_fen=999, now=NOW)

    assert (quote.usable_points, raised.value.code) == (0, "POINTS_OVER_LIMIT")


@pytest.mark.parametrize("points", [0, -300])
def test_holding_no_points_or_fewer_is_invalid_input_and_holds_nothing(uow: FakeMemberUnitOfWork, points: int) -> None:
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=10_000, now=NOW)

    with pytest.raises(DomainError) as raised:
        service.lock_points(uow, user_id=ALICE, order_no="O1", points=points, payable_fen=10_000, now=NOW)

    assert (raised.value.kind, raised.value.code, raised.value.details) == (
        ErrorKind.INVALID, "POINTS_INVALID", {"points": "at least 1"})
    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED),
            uow.points.hold("O1")) == (100, 0, None)


def test_holding_points_for_a_negative_payable_is_invalid_input_and_holds_nothing(uow: FakeMemberUnitOfWork) -> None:
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=10_000, now=NOW)

    with pytest.raises(DomainError) as raised:
        service.lock_points(uow, user_id=ALICE, order_no="O1", points=50, payable_fen=-1_000, now=NOW)

    assert (raised.value.kind, raised.value.code, raised.value.details) == (
        ErrorKind.INVALID, "POINTS_INVALID", {"payable_fen": "must not be negative"})
    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED),
            uow.points.hold("O1")) == (100, 0, None)


def test_holding_points_for_an_order_with_nothing_to_pay_is_over_its_limit_of_none(uow: FakeMemberUnitOfWork) -> None:
    # A payable of 0 (coupons took it all) is a real order: no point may pay half of nothing (the business rule).
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=10_000, now=NOW)

    with pytest.raises(DomainError) as raised:
        service.lock_points(uow, user_id=ALICE, order_no="O1", points=50, payable_fen=0, now=NOW)

    assert (raised.value.kind, raised.value.code, raised.value.details) == (
        ErrorKind.BUSINESS_RULE, "POINTS_OVER_LIMIT", {"max_points": 0})
    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.points.hold("O1")) == (100, None)


# recharges

def test_a_recharge_is_credited_once_for_exactly_its_amount(uow: FakeMemberUnitOfWork) -> None:
    recharge, payment = service.create_recharge(uow, SimulatedPayment(), user_id=ALICE, amount_fen=5_000,
                                                channel="wechat", idempotency_key="r1", now=NOW)

    with pytest.raises(DomainError) as short:
        service.credit_recharge(uow, recharge_no=recharge.recharge_no, paid_fen=4_999, channel_txn_id="T1", now=NOW)
    for _ in range(3):
        service.credit_recharge(uow, recharge_no=recharge.recharge_no, paid_fen=5_000, channel_txn_id="T1", now=NOW)
    with pytest.raises(Conflict):
        service.credit_recharge(uow, recharge_no=recharge.recharge_no, paid_fen=5_000, channel_txn_id="T2", now=NOW)

    assert (short.value.code, payment["out_trade_no"], balances(uow, ALICE)) == (
        "RECHARGE_AMOUNT_MISMATCH", recharge.recharge_no, (5_000, 0))


def test_an_order_whose_points_were_released_cannot_lock_them_again(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=10_000, now=NOW)
    service.lock_points(uow, user_id=ALICE, order_no="O1", points=50, payable_fen=1_000, now=NOW)
    service.release_points(uow, order_no="O1", now=NOW)

    with pytest.raises(Conflict) as raised:
        service.lock_points(uow, user_id=ALICE, order_no="O1", points=50, payable_fen=1_000, now=NOW)

    assert (raised.value.code, uow.ledger.balance(ALICE, Account.POINTS)) == ("POINTS_RELEASED", 100)


# paid plans (M6)

def test_a_plan_is_paid_from_the_balance_once_per_key_and_adds_its_discount(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=500_000, now=NOW)  # gold: 95%
    fund(uow, ALICE, 2_000)

    for _ in range(2):
        summary = service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)

    assert (summary.balance_fen, summary.member.plan_expires_at) == (500, NOW + timedelta(days=31))
    assert summary.member.discount_bp(NOW) == 9_025  # gold 95% x PLUS 95% = 90.25%, exact: not floored to 90%


@pytest.mark.parametrize(("paid_fen", "bp"), [(100_000, 9_310), (500_000, 9_025), (2_000_000, 8_550)],
                         ids=["silver", "gold", "diamond"])
def test_a_plus_members_rate_is_the_levels_times_the_plans_to_the_basis_point(uow: FakeMemberUnitOfWork, paid_fen: int,
                                                                              bp: int) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O0", user_id=ALICE, paid_fen=paid_fen, now=NOW)
    fund(uow, ALICE, 2_000)
    service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)

    # Floored to the percent (93, 90, 85) it gave 100, 250 and 500 fen too much off 100,000.
    assert service.discount_bp(uow, user_id=ALICE, now=NOW) == bp


def test_a_renewal_extends_from_the_current_expiry(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    fund(uow, ALICE, 20_000)
    service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)

    renewed = service.subscribe_plan(uow, user_id=ALICE, plan_id=2, idempotency_key="p2", now=NOW + timedelta(days=10))

    assert renewed.member.plan_expires_at == NOW + timedelta(days=31 + 366)


def test_plan_benefits_end_with_the_term(uow: FakeMemberUnitOfWork) -> None:
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    fund(uow, ALICE, 2_000)
    member = service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW).member
    end = NOW + timedelta(days=31)

    assert [(member.active_plan(t) is not None, member.discount_bp(t)) for t in (end - timedelta(seconds=1), end)] \
        == [(True, 9_500), (False, 10_000)]


def test_a_plan_needs_membership_and_enough_balance(uow: FakeMemberUnitOfWork) -> None:
    with pytest.raises(NotFound):
        service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    with pytest.raises(DomainError) as poor:
        service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p2", now=NOW)
    with pytest.raises(NotFound) as unknown:
        service.subscribe_plan(uow, user_id=ALICE, plan_id=9, idempotency_key="p3", now=NOW)

    assert (poor.value.code, unknown.value.code, uow.members.members[ALICE].plan_id) == (
        "INSUFFICIENT_BALANCE", "PLAN_NOT_FOUND", None)
