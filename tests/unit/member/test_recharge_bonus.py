"""Recharge bonus credit and withdrawals: the bonus is never withdrawn, and withdrawing a recharge's principal
forfeits its bonus in proportion (what was already spent of it is kept from the transfer), so recharging and
withdrawing again and again gains nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.member import service
from services.member.channels import Payout, PayoutState
from services.member.domain import PLATFORM, Account, Withdrawal
from tests.fakes import SimulatedPayment, SimulatedPayout
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
ALICE = 1


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


def recharge(uow: FakeMemberUnitOfWork, amount_fen: int, now: datetime = NOW) -> None:
    made, _ = service.create_recharge(uow, SimulatedPayment(), user_id=ALICE, amount_fen=amount_fen,
                                      channel="wechat", idempotency_key=f"r{len(uow.recharges.recharges)}", now=now)
    service.credit_recharge(uow, recharge_no=made.recharge_no, paid_fen=amount_fen, channel_txn_id=f"T{made.id}",
                            now=now)


def withdraw(uow: FakeMemberUnitOfWork, amount_fen: int, now: datetime = NOW) -> Withdrawal:
    return service.request_withdrawal(uow, user_id=ALICE, amount_fen=amount_fen, now=now,
                                      idempotency_key=f"w{len(uow.withdrawals.withdrawals)}")


def decide(uow: FakeMemberUnitOfWork, withdrawal: Withdrawal, *, approve: bool = True) -> Withdrawal:
    return service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=withdrawal.id or 0, approve=approve,
                                     note="", decided_by=9, now=NOW)


def wallet(uow: FakeMemberUnitOfWork) -> tuple[int, int, int]:
    """(available, pending, bonus) of Alice."""
    return tuple(uow.ledger.balance(ALICE, account)  # type: ignore[return-value]
                 for account in (Account.AVAILABLE, Account.PENDING, Account.BONUS))


@pytest.mark.parametrize("spends_the_bonus_first", [False, True])
def test_recharging_and_withdrawing_every_day_gains_nothing(uow: FakeMemberUnitOfWork,
                                                            spends_the_bonus_first: bool) -> None:
    recharged = goods = 0
    for day in range(5):
        today = NOW + timedelta(days=day)
        recharge(uow, 50_000, today)  # 500 yuan earns 50 of bonus
        recharged += 50_000
        if spends_the_bonus_first:  # bonus credit pays first: 50 yuan of goods, none of the principal
            service.pay_with_balance(uow, user_id=ALICE, order_no=f"O{day}", amount_fen=5_000, now=today)
            goods += 5_000
        decide(uow, withdraw(uow, 50_000, today))
    received = recharged + uow.ledger.balance(PLATFORM, Account.CLEARING)  # money in, less money paid out

    assert received + goods - recharged == 0
    assert wallet(uow) == (0, 0, 0)
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0  # every bonus given came back
    assert uow.ledger.check()[1] == []


def test_withdrawing_a_recharge_in_parts_forfeits_its_bonus_in_proportion_rounded_up(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    parts = [withdraw(uow, amount) for amount in (12_345, 12_345, 25_310)]

    # in all, ceil(drawn x 5,000 / 50,000): 1,235 (1,234.5 up), then 2,469 - 1,235, then the rest of 5,000
    assert [(w.amount_fen, w.bonus_forfeited_fen, w.payout_fen) for w in parts] == [
        (12_345, 1_235, 12_345), (12_345, 1_234, 12_345), (25_310, 2_531, 25_310)]
    assert wallet(uow) == (0, 50_000, 0)
    assert [(entry.kind, entry.amount) for entry in service.wallet_entries(uow, user_id=ALICE, offset=0, limit=20)[0]
            if entry.account == Account.BONUS] == [
        ("bonus_forfeited", -2_531), ("bonus_forfeited", -1_234), ("bonus_forfeited", -1_235),
        ("recharge_bonus", 5_000)]


def test_bonus_already_spent_is_kept_from_the_transfer(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_000, now=NOW)  # 2,000 of the bonus
    withdrawal = withdraw(uow, 30_000)  # forfeits 3,000: the 3,000 left of the bonus

    everything = withdraw(uow, 20_000)  # forfeits 2,000 more: spent, so kept from this transfer
    paid = decide(uow, everything)

    assert (withdrawal.bonus_forfeited_fen, withdrawal.payout_fen) == (3_000, 30_000)
    assert (everything.bonus_forfeited_fen, everything.payout_fen) == (2_000, 18_000)
    assert (paid.status, wallet(uow)) == ("PAID", (0, 30_000, 0))
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0  # the whole bonus came back
    assert uow.ledger.balance(PLATFORM, Account.CLEARING) == -50_000 + 18_000


def test_withdrawals_draw_on_the_newest_recharge_first(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    recharge(uow, 10_000, NOW + timedelta(minutes=1))  # no bonus below 500 yuan

    first, second = withdraw(uow, 10_000), withdraw(uow, 10_000)

    assert (first.bonus_forfeited_fen, second.bonus_forfeited_fen) == (0, 1_000)
    assert wallet(uow) == (40_000, 20_000, 4_000)


class TransferThatFails:
    """A payout channel whose transfers are accepted, then fail."""

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.IN_FLIGHT)

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.FAILED, reason="FAIL")


def pays_nothing(uow: FakeMemberUnitOfWork, withdrawal: Withdrawal, how: str) -> None:
    """End `withdrawal` without paying it: finance rejects it ("rejected"), or its transfer fails ("failed")."""
    if how == "rejected":
        decide(uow, withdrawal, approve=False)
        return
    service.decide_withdrawal(uow, TransferThatFails(), withdrawal_id=withdrawal.id or 0, approve=True, note="",
                              decided_by=9, now=NOW)
    service.settle_payouts(lambda: uow, TransferThatFails(), now=NOW + timedelta(minutes=2))


@pytest.mark.parametrize("how", ["rejected", "failed"])
def test_a_withdrawal_that_pays_nothing_gives_its_forfeit_back(uow: FakeMemberUnitOfWork, how: str) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_000, now=NOW)
    withdrawal = withdraw(uow, 50_000)
    asked = (wallet(uow), withdrawal.payout_fen)
    pays_nothing(uow, withdrawal, how)
    given_back = (withdrawal.status, wallet(uow))

    again = withdraw(uow, 50_000)  # the recharge is whole again: the same forfeit

    assert asked == ((0, 48_000, 0), 48_000)  # 3,000 of the bonus forfeited, 2,000 spent kept from the transfer
    assert given_back == (how.upper(), (50_000, 0, 3_000))
    assert (again.bonus_forfeited_fen, again.payout_fen) == (5_000, 48_000)
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0
    assert uow.ledger.check()[1] == []


def test_member_withdrawn_says_the_withdrawals_number_asked_amount_forfeit_payout_and_channel(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_000, now=NOW)  # 2,000 of the bonus
    decide(uow, withdraw(uow, 30_000))  # forfeits the 3,000 left of the bonus
    everything = decide(uow, withdraw(uow, 20_000))  # forfeits 2,000 more, spent: kept from the transfer

    withdrawn = [event.payload for event in uow.published if event.event_type == "member-withdrawn"]

    assert [(e.withdrawal_id, e.withdrawal_no, e.requested_fen, e.bonus_forfeited_fen, e.amount_fen, e.channel)
            for e in withdrawn] == [
        ((everything.id or 0) - 1, withdrawn[0].withdrawal_no, 30_000, 3_000, 30_000, "simulated"),
        (everything.id, everything.withdrawal_no, 20_000, 2_000, 18_000, "simulated")]
    assert withdrawn[0].withdrawal_no.startswith("W") and withdrawn[0].withdrawal_no != everything.withdrawal_no


def refund(uow: FakeMemberUnitOfWork, order_no: str, amount_fen: int, refund_no: str = "") -> None:
    service.refund_to_balance(uow, user_id=ALICE, refund_no=refund_no or f"RF-{order_no}", order_no=order_no,
                              amount_fen=amount_fen, now=NOW)


def paid_out(uow: FakeMemberUnitOfWork) -> int:
    """What transfers paid Alice in all: the clearing account, less the recharges that came in through it."""
    recharged = sum(r.amount_fen for r in uow.recharges.recharges.values() if r.status == "PAID")
    return recharged + uow.ledger.balance(PLATFORM, Account.CLEARING)


def test_a_refund_of_bonus_a_withdrawal_repaid_comes_back_as_cash_which_withdraws_whole(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)  # +5,000 of bonus
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)  # all of it bonus
    first = decide(uow, withdraw(uow, 50_000))  # the bonus is forfeited: spent, so 5,000 kept (repaid)
    refund(uow, "A", 5_000)
    after_refund = wallet(uow)

    second = decide(uow, withdraw(uow, 5_000))

    assert (first.payout_fen, after_refund) == (45_000, (5_000, 0, 0))
    assert (second.bonus_forfeited_fen, second.payout_fen, second.status) == (0, 5_000, "PAID")
    assert (paid_out(uow), wallet(uow)) == (50_000, (0, 0, 0))  # all put in came out: nothing was kept
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0
    assert uow.ledger.check()[1] == []


def test_a_refund_before_any_withdrawal_still_gives_the_bonus_back_as_bonus(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    refund(uow, "A", 5_000)
    after_refund = wallet(uow)

    everything = decide(uow, withdraw(uow, 50_000))

    assert after_refund == (50_000, 0, 5_000)
    assert (everything.bonus_forfeited_fen, everything.payout_fen, wallet(uow)) == (5_000, 50_000, (0, 0, 0))
    assert uow.ledger.check()[1] == []


def test_a_partial_refund_gives_back_as_cash_its_share_of_the_repaid_bonus(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=3_000, now=NOW)  # the bonus pays both
    service.pay_with_balance(uow, user_id=ALICE, order_no="B", amount_fen=2_000, now=NOW)
    decide(uow, withdraw(uow, 50_000))  # 5,000 of spent bonus repaid: kept from the transfer
    refund(uow, "B", 2_000)
    after_refund = wallet(uow)

    rest = decide(uow, withdraw(uow, 2_000))

    assert after_refund == (2_000, 0, 0)
    assert (rest.payout_fen, paid_out(uow)) == (2_000, 47_000)  # only order A's 3,000 was kept
    assert uow.ledger.check()[1] == []


def test_refunds_return_cash_only_up_to_what_withdrawals_repaid_then_bonus(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    part = decide(uow, withdraw(uow, 10_000))  # forfeits 1,000, spent: kept
    refund(uow, "A", 3_000, "RF1")  # 1,000 repaid: cash; 2,000 bonus
    refund(uow, "A", 2_000, "RF2")  # nothing repaid is left: bonus
    after_refunds = wallet(uow)

    everything = decide(uow, withdraw(uow, 41_000))  # forfeits the other 4,000, from the bonus

    assert (part.bonus_forfeited_fen, part.payout_fen, after_refunds) == (1_000, 9_000, (41_000, 0, 4_000))
    assert (everything.bonus_forfeited_fen, everything.payout_fen) == (4_000, 41_000)
    assert (paid_out(uow), wallet(uow)) == (50_000, (0, 0, 0))
    assert sorted((e.kind, e.account, e.amount) for e in service.wallet_entries(uow, user_id=ALICE, offset=0,
                                                                                 limit=50)[0]
                  if e.kind.startswith("bonus_repayment")) == [
        ("bonus_repayment_returned", Account.AVAILABLE, 1_000), ("bonus_repayment_returned", Account.BONUS, -1_000)]
    assert uow.ledger.check()[1] == []


def test_bonus_spent_again_and_withdrawn_again_is_kept_again(uow: FakeMemberUnitOfWork) -> None:
    """Several recharges, orders and withdrawals: cash never comes out for bonus value."""
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    decide(uow, withdraw(uow, 50_000))  # 5,000 repaid
    recharge(uow, 50_000, NOW + timedelta(minutes=1))  # +5,000 of bonus
    service.pay_with_balance(uow, user_id=ALICE, order_no="B", amount_fen=5_000, now=NOW)  # the new bonus
    refund(uow, "B", 5_000)  # the repaid 5,000 comes back as cash: the new bonus now stands for order A
    after_refund = wallet(uow)

    everything = decide(uow, withdraw(uow, 55_000))  # the second recharge's bonus forfeited, spent on A: kept

    assert after_refund == (55_000, 0, 0)
    assert (everything.bonus_forfeited_fen, everything.payout_fen) == (5_000, 50_000)
    assert (paid_out(uow), wallet(uow)) == (95_000, (0, 0, 0))  # 100,000 in, order A's 5,000 kept
    assert uow.ledger.check()[1] == []


def test_a_refund_while_the_repaying_withdrawal_is_under_review_gives_bonus_which_its_payout_turns_to_cash(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    withdrawal = withdraw(uow, 50_000)  # 5,000 to be kept for the spent bonus: repaid once paid out
    refund(uow, "A", 5_000)
    under_review = wallet(uow)
    decide(uow, withdrawal)
    paid = wallet(uow)

    rest = decide(uow, withdraw(uow, 5_000))

    assert (under_review, paid) == ((0, 45_000, 5_000), (5_000, 0, 0))
    assert (rest.payout_fen, paid_out(uow), wallet(uow)) == (5_000, 50_000, (0, 0, 0))
    assert uow.ledger.check()[1] == []


@pytest.mark.parametrize("how", ["rejected", "failed"])
def test_a_refund_while_the_repaying_withdrawal_is_under_review_then_given_back_ends_with_the_bonus(
        uow: FakeMemberUnitOfWork, how: str) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    withdrawal = withdraw(uow, 50_000)
    refund(uow, "A", 5_000)
    pays_nothing(uow, withdrawal, how)
    given_back = (withdrawal.status, wallet(uow))

    again = decide(uow, withdraw(uow, 50_000))

    assert given_back == (how.upper(), (50_000, 0, 5_000))  # as if it had never been asked for
    assert (again.bonus_forfeited_fen, again.payout_fen, paid_out(uow)) == (5_000, 50_000, 50_000)
    assert uow.ledger.check()[1] == []


def test_a_withdrawal_asked_for_while_the_repaying_one_is_under_review_and_then_rejected_leaves_no_bonus_behind(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=10_000, now=NOW)  # 5,000 bonus + 5,000
    first = withdraw(uow, 45_000)  # forfeits 4,500, spent: to be kept
    refund(uow, "A", 10_000)
    second = decide(uow, withdraw(uow, 5_000))  # the last 5,000 of the recharge: forfeits 500 of the bonus
    decide(uow, first, approve=False)

    everything = decide(uow, withdraw(uow, 45_000))

    assert (second.bonus_forfeited_fen, second.payout_fen) == (500, 5_000)
    assert (everything.bonus_forfeited_fen, everything.payout_fen) == (4_500, 45_000)
    assert (paid_out(uow), wallet(uow)) == (50_000, (0, 0, 0))
    assert uow.ledger.check()[1] == []


def test_a_recharge_while_the_repaying_withdrawal_is_under_review_keeps_its_bonus_as_bonus(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)  # all of it bonus
    withdrawal = withdraw(uow, 50_000)  # 5,000 to be kept for the spent bonus
    recharge(uow, 50_000)  # +5,000 of bonus before the withdrawal is decided
    under_review = wallet(uow)
    decide(uow, withdrawal)

    assert (under_review, wallet(uow)) == ((50_000, 45_000, 5_000), (50_000, 0, 5_000))  # as if recharged after
    assert uow.ledger.sum_entries(ALICE, Account.AVAILABLE, (service.REPAYMENT_RETURNED,)) == 0
    assert uow.ledger.check()[1] == []


def test_a_payout_turns_into_cash_only_the_bonus_refunded_while_it_was_under_review_not_a_recharges(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)  # all of it bonus
    withdrawal = withdraw(uow, 50_000)  # 5,000 to be kept
    refund(uow, "A", 2_000)  # 2,000 of bonus back, as bonus: nothing is repaid yet
    recharge(uow, 50_000)  # +5,000 of bonus
    under_review = wallet(uow)
    decide(uow, withdrawal)

    assert (under_review, wallet(uow)) == ((50_000, 45_000, 7_000), (52_000, 0, 5_000))
    assert uow.ledger.sum_entries(ALICE, Account.AVAILABLE, (service.REPAYMENT_RETURNED,)) == 2_000
    assert uow.ledger.check()[1] == []


def test_refunded_bonus_spent_while_under_review_is_taken_from_the_recharges_bonus_first(
        uow: FakeMemberUnitOfWork) -> None:
    """Had the refund come back as cash, the order paid meanwhile would have taken the new recharge's bonus first."""
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    withdrawal = withdraw(uow, 50_000)
    refund(uow, "A", 2_000)
    recharge(uow, 50_000)  # bonus 7,000: 2,000 refunded, 5,000 the recharge's
    service.pay_with_balance(uow, user_id=ALICE, order_no="B", amount_fen=4_000, now=NOW)  # bonus 3,000 left
    decide(uow, withdrawal)

    assert wallet(uow) == (52_000, 0, 1_000)  # as if paid out first: B takes 4,000 of the recharge's 5,000 bonus
    assert uow.ledger.check()[1] == []


def test_refunded_bonus_a_later_withdrawal_forfeited_under_review_is_not_turned_into_cash_again(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    first = withdraw(uow, 45_000)  # forfeits 4,500, spent: to be kept
    refund(uow, "A", 5_000)  # 5,000 of bonus back, as bonus
    second = withdraw(uow, 5_000)  # the recharge's last 500 of bonus forfeited, from the refunded bonus
    recharge(uow, 50_000)  # +5,000 of bonus
    decide(uow, first)

    assert (second.bonus_forfeited_fen, second.deducted_fen) == (500, 0)
    assert wallet(uow) == (54_500, 5_000, 5_000)  # 4,500 of the refunded bonus back as cash, the recharge's stays
    assert uow.ledger.check()[1] == []


def test_refunded_bonus_spent_while_under_review_before_a_recharge_is_not_turned_into_cash(
        uow: FakeMemberUnitOfWork) -> None:
    """Had the refund come back as cash, the order paid meanwhile would have taken it as cash, and the recharge after
    would have left its whole bonus as bonus."""
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    withdrawal = withdraw(uow, 50_000)
    refund(uow, "A", 2_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="B", amount_fen=2_000, now=NOW)  # the refunded bonus
    recharge(uow, 50_000)
    decide(uow, withdrawal)

    assert wallet(uow) == (50_000, 0, 5_000)
    assert uow.ledger.check()[1] == []


def _refund_between_two_withdrawals(uow: FakeMemberUnitOfWork) -> tuple[Withdrawal, Withdrawal]:
    recharge(uow, 50_000)  # +5,000 of bonus
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)  # all of it bonus
    first = withdraw(uow, 25_000)  # forfeits 2,500, spent: to be kept
    refund(uow, "A", 2_000)  # 2,000 of bonus back, as bonus: nothing is repaid yet
    second = withdraw(uow, 25_000)  # forfeits 2,500: the 2,000 refunded bonus, and 500 spent, kept
    return first, second


def give_back(uow: FakeMemberUnitOfWork, withdrawal: Withdrawal, how: str) -> None:
    """Reject `withdrawal`, or approve it and let its transfer fail."""
    pays_nothing(uow, withdrawal, how)


@pytest.mark.parametrize("how", ["rejected", "failed"])
@pytest.mark.parametrize("given_back_first", [True, False])
def test_a_withdrawal_given_back_leaves_the_repaying_ones_payout_as_if_it_had_never_been_asked_for(
        uow: FakeMemberUnitOfWork, how: str, given_back_first: bool) -> None:
    first, second = _refund_between_two_withdrawals(uow)
    if given_back_first:
        give_back(uow, second, how)
        decide(uow, first)
    else:
        decide(uow, first)  # nothing refunded is left to turn into cash: the second forfeited it
        give_back(uow, second, how)

    assert (second.bonus_forfeited_fen, second.deducted_fen, second.status) == (2_500, 500, how.upper())
    # as with the refund after the second was asked for: the refunded 2,000 is cash, as the first repaid 2,500
    assert (first.payout_fen, wallet(uow)) == (22_500, (27_000, 0, 0))
    assert uow.ledger.sum_entries(ALICE, Account.AVAILABLE, (service.REPAYMENT_RETURNED,)) == 2_000
    assert uow.ledger.check()[1] == []


def test_a_refund_after_both_withdrawals_were_asked_for_ends_the_same(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)
    first, second = withdraw(uow, 25_000), withdraw(uow, 25_000)
    refund(uow, "A", 2_000)
    decide(uow, first)
    decide(uow, second, approve=False)

    assert (first.payout_fen, wallet(uow)) == (22_500, (27_000, 0, 0))


@pytest.mark.parametrize("given_back_first", [True, False])
def test_refunded_bonus_a_rejected_withdrawal_forfeited_all_of_comes_back_as_cash_at_the_repaying_payout(
        uow: FakeMemberUnitOfWork, given_back_first: bool) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)  # all of it bonus
    first = withdraw(uow, 50_000)  # 5,000 to be kept
    recharge(uow, 50_000)  # +5,000 of bonus
    service.pay_with_balance(uow, user_id=ALICE, order_no="B", amount_fen=5_000, now=NOW)  # spends it
    refund(uow, "A", 5_000)  # 5,000 of bonus back, as bonus
    second = withdraw(uow, 45_000)  # forfeits 4,500 of the second recharge's bonus: from the refunded bonus
    if given_back_first:
        decide(uow, second, approve=False)
        decide(uow, first)
    else:
        decide(uow, first)  # turns into cash only the 500 refunded bonus left
        decide(uow, second, approve=False)

    assert (second.bonus_forfeited_fen, second.deducted_fen) == (4_500, 0)
    assert wallet(uow) == (55_000, 0, 0)  # as without the second: the refunded 5,000 repaid is cash
    assert uow.ledger.sum_entries(ALICE, Account.AVAILABLE, (service.REPAYMENT_RETURNED,)) == 5_000
    assert uow.ledger.check()[1] == []


@pytest.mark.parametrize("given_back_first", [True, False])
def test_refunded_bonus_forfeited_before_the_repaying_withdrawal_and_given_back_comes_back_as_cash(
        uow: FakeMemberUnitOfWork, given_back_first: bool) -> None:
    recharge(uow, 50_000)  # +5,000 of bonus
    service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000, now=NOW)  # all of it bonus
    refund(uow, "A", 2_000)  # 2,000 of bonus back, as bonus: nothing is repaid yet
    earlier = withdraw(uow, 20_000)  # forfeits 2,000: the refunded bonus
    repaying = withdraw(uow, 30_000)  # forfeits 3,000, the bonus 0: all kept
    if given_back_first:
        decide(uow, earlier, approve=False)
        decide(uow, repaying)
    else:
        decide(uow, repaying)
        decide(uow, earlier, approve=False)

    assert (repaying.deducted_fen, repaying.payout_fen) == (3_000, 27_000)
    # as had the earlier never been asked for: the refunded 2,000 the payout repaid is cash
    assert wallet(uow) == (22_000, 0, 0)
    assert paid_out(uow) + wallet(uow)[0] == 49_000
    assert uow.ledger.sum_entries(ALICE, Account.AVAILABLE, (service.REPAYMENT_RETURNED,)) == 2_000
    assert uow.ledger.check()[1] == []


@settings(max_examples=150, deadline=None)
@given(unspent=st.integers(min_value=0, max_value=5_000), first=st.integers(min_value=100, max_value=50_000),
       recharge_again=st.booleans(), spent_again=st.integers(min_value=0, max_value=5_000),
       share=st.integers(min_value=1, max_value=100), second=st.integers(min_value=100, max_value=100_000),
       first_paid=st.booleans(), given_back_first=st.booleans(), how=st.sampled_from(["rejected", "failed"]),
       refund_first=st.booleans())
def test_a_withdrawal_that_pays_nothing_leaves_the_wallet_as_if_it_had_never_been_asked_for(
        unspent: int, first: int, recharge_again: bool, spent_again: int, share: int, second: int, first_paid: bool,
        given_back_first: bool, how: str, refund_first: bool) -> None:
    """`refund_first`: the refund, then the other withdrawal (its forfeit takes the refunded bonus), then the repaying
    one; otherwise the repaying one, the refund, then the other."""
    if refund_first:  # whole forfeits (10%), which come out the same whichever of the two draws on the recharge first;
        # all the bonus spent, so the other's forfeit takes only refunded bonus (one that took unspent recharge bonus
        # the repaying one would have taken leaves that kept from its transfer: not turned back into cash)
        first, second, unspent = first - first % 10, second - second % 10, 0
    def ends(asks_second: bool) -> tuple[tuple[int, int, int], int]:
        uow = FakeMemberUnitOfWork()
        recharge(uow, 50_000)  # +5,000 of bonus
        service.pay_with_balance(uow, user_id=ALICE, order_no="A", amount_fen=5_000 - unspent or 1, now=NOW)
        if refund_first:
            refund(uow, "A", max(1, (5_000 - unspent or 1) * share // 100))  # as bonus: nothing is repaid yet
            left = wallet(uow)[0] - first
            later = withdraw(uow, min(second, left)) if asks_second and left >= 100 else None
        repaying = withdraw(uow, first)  # what its forfeit finds spent is kept
        if recharge_again:
            recharge(uow, 50_000)
            if spent_again:
                service.pay_with_balance(uow, user_id=ALICE, order_no="B", amount_fen=spent_again, now=NOW)
        if not refund_first:
            refund(uow, "A", max(1, (5_000 - unspent or 1) * share // 100))  # as bonus, first: nothing is repaid yet
            later = withdraw(uow, min(second, wallet(uow)[0])) if asks_second and wallet(uow)[0] >= 100 else None
        if later is not None and given_back_first:
            give_back(uow, later, how)
        decide(uow, repaying, approve=first_paid)
        if later is not None and not given_back_first:
            give_back(uow, later, how)
        assert uow.ledger.check()[1] == []
        return wallet(uow), paid_out(uow)

    asked, never_asked = ends(asks_second=True), ends(asks_second=False)
    if refund_first:  # the other's forfeit took the bonus the repaying one's would have: more kept, then given as cash
        (available, pending, bonus), paid = asked
        asked = (available + paid, pending, bonus)
        (available, pending, bonus), paid = never_asked
        never_asked = (available + paid, pending, bonus)
    assert asked == never_asked
